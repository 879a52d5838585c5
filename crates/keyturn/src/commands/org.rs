//! `keyturn org check`: in each selected account, assume the role and try each capability keyturn
//! needs with calls that change nothing (`keyturn_aws::probe`); a table or JSON of account ×
//! capability naming what is missing. Exit 0 when everything holds, 1 when something is missing,
//! 2 when a probe could not tell (throttled, unreachable).

use keyturn_aws::probe::{Probe, Prober};

use crate::accounts::Fleet;
use crate::args::Output;
use crate::render::org::{self, CheckRow, Verdict};
use crate::render::print_json;

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
        Output::Table => org::table(rows),
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
    Ok(rows.iter().all(|r| r.row.all_hold()))
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
