//! `keyturn org check`: in each selected account, assume the role and try each capability keyturn
//! needs with calls that change nothing (`keyturn_aws::probe`); a table or JSON of account ×
//! capability naming what is missing. Exit 0 when everything holds, 1 when something is missing,
//! 2 when a probe could not tell (throttled, unreachable).

use keyturn_aws::probe::{Probe, Prober};
use serde::Serialize;

use crate::accounts::Fleet;
use crate::args::Output;
use crate::render::AccountFailure;
use crate::render::{account_groups, plain_table, print_json, print_table};
use crate::safe::term;

/// What each capability needs, as actions tried one by one.
const CAPABILITIES: [(&str, &[Probe]); 3] = [
    (
        "audit",
        &[
            Probe::GenerateCredentialReport,
            Probe::GetCredentialReport,
            Probe::ListAccessKeys,
            Probe::ListSecrets,
        ],
    ),
    (
        "rotate",
        &[
            Probe::ListSecrets,
            Probe::DescribeSecret,
            Probe::GetSecretValue,
            Probe::PutSecretValue,
            Probe::UpdateSecretVersionStage,
            Probe::TagResource,
            Probe::GetUser,
            Probe::ListAccessKeys,
            Probe::CreateAccessKey,
            Probe::DeleteAccessKey,
        ],
    ),
    (
        "sweep",
        &[
            Probe::ListSecrets,
            Probe::DescribeSecret,
            Probe::GetSecretValue,
            Probe::TagResource,
            Probe::GetUser,
            Probe::ListAccessKeys,
            Probe::UpdateAccessKey,
            Probe::DeleteAccessKey,
        ],
    ),
];

/// One capability in one account.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct Verdict {
    /// Absent when it could not be tried (the role could not be assumed, or a probe could not
    /// tell).
    ok: Option<bool>,
    /// The actions denied.
    missing: Vec<&'static str>,
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
struct CheckRow {
    /// How the account was reached: the role's ARN, or `own credentials`.
    via: Option<String>,
    assume: Verdict,
    audit: Verdict,
    rotate: Verdict,
    sweep: Verdict,
    /// What went wrong, and what to do.
    error: Option<String>,
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

pub async fn check(fleet: &Fleet, secret_prefix: &str, output: Output) -> anyhow::Result<bool> {
    let probe_id = uuid::Uuid::new_v4().simple().to_string();
    // Names that cannot exist: a random user, and a random secret under the prefix (where the
    // operator policy admits secrets).
    let absent_user = format!("keyturn-org-check-{}", &probe_id[..20]);
    let absent_secret = format!("{secret_prefix}keyturn-org-check-{}", &probe_id[..20]);
    let roles: Vec<(String, String)> = fleet
        .accounts
        .iter()
        .map(|a| (a.id.clone(), fleet.role_arn(&a.id)))
        .collect();
    let own = fleet.own_account().to_string();
    let ran = fleet
        .run(move |reached| {
            let prober = Prober::new(&reached.config, &absent_user, &absent_secret);
            let via = if reached.account.id == own {
                "own credentials".to_string()
            } else {
                roles
                    .iter()
                    .find(|(id, _)| *id == reached.account.id)
                    .map(|(_, arn)| arn.clone())
                    .unwrap_or_default()
            };
            async move { Ok(vec![probe(&prober, via).await]) }
        })
        .await?;
    let rows = &ran.rows;
    match output {
        Output::Table => {
            let mut table =
                plain_table(["ACCOUNT", "ASSUME", "AUDIT", "ROTATE", "SWEEP", "MISSING"]);
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
            let fine = rows.iter().filter(|r| all_hold(&r.row)).count();
            println!(
                "{} account(s): {fine} with every capability, {} missing something",
                rows.len(),
                rows.len() - fine
            );
            if fine < rows.len() {
                println!("to grant what is missing, deploy the member role with the policy switched on (deploy/org/member-role.yaml: EnableAuditor for audit, EnableOperator for rotate and sweep), through the organization StackSet");
            }
        }
        _ => print_json(rows),
    }
    if rows
        .iter()
        .any(|r| r.row.error.is_some() && r.row.assume.ok == Some(true))
    {
        anyhow::bail!(
            "a permission could not be checked in some account (see its error); try again"
        );
    }
    Ok(rows.iter().all(|r| all_hold(&r.row)))
}

fn all_hold(c: &CheckRow) -> bool {
    [&c.assume, &c.audit, &c.rotate, &c.sweep]
        .iter()
        .all(|v| v.ok == Some(true))
}

/// Every capability's probes in one reached account; a probe that cannot tell ends the account's
/// check with its error.
async fn probe(prober: &Prober, via: String) -> CheckRow {
    let mut verdicts = Vec::new();
    let mut error = None;
    let mut known: Vec<(Probe, bool)> = Vec::new();
    'caps: for (_, probes) in CAPABILITIES {
        let mut missing = Vec::new();
        for p in probes.iter().copied() {
            let allowed = match known.iter().find(|(k, _)| *k == p) {
                Some((_, a)) => *a,
                None => match prober.allowed(p).await {
                    Ok(a) => {
                        known.push((p, a));
                        a
                    }
                    Err(e) => {
                        error = Some(format!(
                            "{} could not be checked: {e}; try again, or run with --verbose",
                            p.action()
                        ));
                        break 'caps;
                    }
                },
            };
            if !allowed {
                missing.push(p.action());
            }
        }
        verdicts.push(Verdict {
            ok: Some(missing.is_empty()),
            missing,
        });
    }
    let mut verdicts = verdicts.into_iter();
    let mut next = || {
        verdicts.next().unwrap_or(Verdict {
            ok: None,
            missing: Vec::new(),
        })
    };
    CheckRow {
        via: Some(via),
        assume: Verdict {
            ok: Some(true),
            missing: Vec::new(),
        },
        audit: next(),
        rotate: next(),
        sweep: next(),
        error,
    }
}
