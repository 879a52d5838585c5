//! `keyturn org check`'s rows: each capability's verdict in each account, and the table.

use serde::Serialize;

use super::{account_groups, plain_table, print_table, AccountFailure, InAccount};
use crate::safe::term;

/// One capability in one account.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Verdict {
    /// Absent when it could not be tried (the role could not be assumed, or a probe could not
    /// tell).
    pub ok: Option<bool>,
    /// The actions denied.
    pub missing: Vec<&'static str>,
}

impl Verdict {
    fn text(&self) -> String {
        match self.ok {
            Some(true) => "ok".into(),
            Some(false) => "missing".into(),
            None => "-".into(),
        }
    }
}

/// One account's line of `keyturn org check`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CheckRow {
    /// How the account was reached: the role's ARN, or `own credentials`.
    pub via: Option<String>,
    pub assume: Verdict,
    pub audit: Verdict,
    pub rotate: Verdict,
    pub sweep: Verdict,
    /// What went wrong, and what to do.
    pub error: Option<String>,
}

impl AccountFailure for CheckRow {
    fn account_failed(error: String) -> Self {
        let untried = Verdict {
            ok: None,
            missing: Vec::new(),
        };
        CheckRow {
            via: None,
            assume: Verdict {
                ok: Some(false),
                missing: vec!["sts:AssumeRole"],
            },
            audit: untried.clone(),
            rotate: untried.clone(),
            sweep: untried,
            error: Some(error),
        }
    }
}

impl CheckRow {
    /// Every capability holds in the account.
    pub fn all_hold(&self) -> bool {
        [&self.assume, &self.audit, &self.rotate, &self.sweep]
            .iter()
            .all(|v| v.ok == Some(true))
    }
}

/// The account × capability table, and what to do about what is missing.
pub fn table(rows: &[InAccount<CheckRow>]) {
    let mut table = plain_table(["ACCOUNT", "ASSUME", "AUDIT", "ROTATE", "SWEEP", "MISSING"]);
    for (r, group) in rows.iter().zip(account_groups(rows)) {
        let c = &r.row;
        let mut missing: Vec<&str> = Vec::new();
        for v in [&c.assume, &c.audit, &c.rotate, &c.sweep] {
            for m in &v.missing {
                if !missing.contains(m) {
                    missing.push(m);
                }
            }
        }
        let mut last = missing.join(", ");
        if let Some(e) = &c.error {
            last = if last.is_empty() {
                e.clone()
            } else {
                format!("{last}; {e}")
            };
        }
        table.add_row([
            term(&group.unwrap_or_default()).into_owned(),
            c.assume.text(),
            c.audit.text(),
            c.rotate.text(),
            c.sweep.text(),
            term(if last.is_empty() { "-" } else { &last }).into_owned(),
        ]);
    }
    print_table(&table);
    let fine = rows.iter().filter(|r| r.row.all_hold()).count();
    println!(
        "{} account(s): {fine} with every capability, {} missing something",
        rows.len(),
        rows.len() - fine
    );
    if fine < rows.len() {
        println!("to grant what is missing, deploy the member role with the policy switched on (deploy/org/member-role.yaml: EnableAuditor for audit, EnableOperator for rotate and sweep), through the organization StackSet");
    }
}
