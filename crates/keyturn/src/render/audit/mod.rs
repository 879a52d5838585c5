//! The audit's rows (`row`), its table with the findings coloured, its JSON and CSV shapes, and
//! its HTML page (`page`).

mod page;
mod row;

use std::collections::BTreeMap;

use keyturn_core::audit::{AuditPolicy, Finding};
use keyturn_core::error::rfc3339;
use serde::Serialize;

use super::{account_groups, plain_table, print_table, InAccount};
use crate::safe::term;

pub use page::render as page;
pub use row::AuditRow;

/// The whole audit as `--output json` prints it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditReport<'a> {
    pub as_of: String,
    pub max_age_days: i64,
    pub keys: &'a [InAccount<AuditRow>],
}

/// The CSV columns after the account's, in order (the JSON fields of the same names; `findings`
/// and `arn` are left out: the finding that counts is `finding`).
pub const CSV_FIELDS: [&str; 19] = [
    "user",
    "slot",
    "keyId",
    "ageDays",
    "created",
    "lastUsed",
    "lastUsedService",
    "lastUsedRegion",
    "secret",
    "label",
    "rotationEnabled",
    "nextRotation",
    "usedSinceCutover",
    "finding",
    "exemption",
    "exemptReason",
    "exemptOwner",
    "exemptUntil",
    "error",
];

/// The finding's colour on a terminal (console honours NO_COLOR, CLICOLOR and CLICOLOR_FORCE).
fn coloured(f: Finding, text: String) -> String {
    let style = console::Style::new().for_stdout();
    let style = match f {
        Finding::Exempt => style.blue(),
        Finding::Overdue | Finding::CurrentKeyMissing => style.red(),
        Finding::Unmanaged => style.magenta(),
        Finding::StalePrevious | Finding::Due => style.yellow(),
        Finding::NeverUsed => style.cyan(),
        Finding::Ok => style.green(),
    };
    style.apply_to(text).to_string()
}

pub fn table(rows: &[InAccount<AuditRow>], policy: &AuditPolicy, fail_on: Finding) {
    // FINDINGS is the last column: its colour codes do not shift the others.
    let mut out = plain_table([
        "ACCOUNT",
        "USER",
        "SLOT",
        "KEY",
        "AGE (DAYS)",
        "LAST USED",
        "SECRET",
        "FINDINGS",
    ]);
    for (r, group) in rows.iter().zip(account_groups(rows)) {
        let (account, r) = (group.unwrap_or_default(), &r.row);
        let findings = if r.failed_account() {
            console::Style::new()
                .for_stdout()
                .red()
                .apply_to(r.findings_text())
                .to_string()
        } else {
            coloured(r.worst, r.findings_text())
        };
        out.add_row([
            term(&account).into_owned(),
            if r.failed_account() {
                "-".into()
            } else {
                term(&r.user).into_owned()
            },
            r.slot.map_or("-".to_string(), |s| s.to_string()),
            term(r.key_id.as_deref().unwrap_or("-")).into_owned(),
            r.age_days.map_or("-".to_string(), |d| d.to_string()),
            if r.failed_account() {
                "-".into()
            } else {
                term(&r.used()).into_owned()
            },
            term(&r.held()).into_owned(),
            findings,
        ]);
    }
    if let Some(age) = out.column_mut(4) {
        age.set_cell_alignment(comfy_table::CellAlignment::Right);
    }
    print_table(&out);
    let keys: Vec<&AuditRow> = rows
        .iter()
        .map(|r| &r.row)
        .filter(|r| !r.failed_account())
        .collect();
    let mut counts: BTreeMap<Finding, usize> = BTreeMap::new();
    for r in &keys {
        *counts.entry(r.worst).or_default() += 1;
    }
    let summary: Vec<String> = counts
        .iter()
        .rev()
        .map(|(f, n)| format!("{n} {}", f.as_str()))
        .collect();
    let accounts = account_groups(rows).flatten().count();
    let failed = rows.len() - keys.len();
    println!(
        "{} active key(s){} as of {}: {}; failing on {} or worse{}",
        keys.len(),
        if accounts > 1 {
            format!(" in {accounts} accounts")
        } else {
            String::new()
        },
        &rfc3339(policy.as_of)[..10],
        if summary.is_empty() {
            "none".into()
        } else {
            summary.join(", ")
        },
        fail_on.as_str(),
        if failed > 0 {
            format!("; {failed} account(s) failed")
        } else {
            String::new()
        }
    );
}
