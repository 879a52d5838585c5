//! `keyturn rotate`: the four steps run locally for each secret, as typed rows.

use std::collections::BTreeMap;
use std::sync::Arc;

use keyturn_core::audit::exempt::Exemptions;
use keyturn_core::rotation::{LocalMode, LocalRequest};
use keyturn_core::RotationSettings;
use serde::Serialize;

use crate::accounts::Fleet;
use crate::args::{Output, RotateArgs};
use crate::interrupt::{self, Interrupted};
use crate::render::AccountFailure;
use crate::render::InAccount;
use crate::render::{bulk, print_rows, Row};
use crate::setup::targets;

/// One secret's line of `keyturn rotate`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RotateRow {
    /// Absent on an account's error row.
    secret: Option<String>,
    /// rotated, planned, resumed, cancelled, nothing-in-flight, ... or failed.
    outcome: String,
    user: Option<String>,
    new_key_id: Option<String>,
    deleted_key_id: Option<String>,
    deleted_because: Option<String>,
    detail: Option<String>,
    error_type: Option<&'static str>,
    error: Option<String>,
}

impl Row for RotateRow {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("SECRET", "secret"),
        ("OUTCOME", "outcome"),
        ("NEW KEY", "newKeyId"),
        ("DELETED KEY", "deletedKeyId"),
        ("DETAIL", "detail"),
        ("ERROR", "error"),
    ];
    const FIELDS: &'static [&'static str] = &[
        "secret",
        "outcome",
        "user",
        "newKeyId",
        "deletedKeyId",
        "deletedBecause",
        "detail",
        "errorType",
        "error",
    ];
    fn failed(&self) -> bool {
        self.error.is_some()
    }
}

impl RotateRow {
    fn failed(secret: Option<String>, error_type: &'static str, error: String) -> Self {
        RotateRow {
            secret,
            outcome: "failed".into(),
            user: None,
            new_key_id: None,
            deleted_key_id: None,
            deleted_because: None,
            detail: None,
            error_type: Some(error_type),
            error: Some(error),
        }
    }
}

impl AccountFailure for RotateRow {
    fn account_failed(error: String) -> Self {
        RotateRow::failed(None, "AccountFailed", error)
    }
    fn not_started(secret: Option<String>) -> Self {
        RotateRow {
            detail: Some(
                if secret.is_some() {
                    "interrupted before it started: nothing was changed"
                } else {
                    "interrupted before this account was reached: nothing was changed there"
                }
                .into(),
            ),
            error_type: None,
            error: None,
            outcome: NOT_STARTED.into(),
            ..RotateRow::failed(secret, "", String::new())
        }
    }
}

/// The outcome of a secret a signal kept from starting.
const NOT_STARTED: &str = "not-started";

pub async fn run(
    fleet: &Fleet,
    settings: RotationSettings,
    exemptions: Exemptions,
    a: RotateArgs,
    output: Output,
) -> anyhow::Result<bool> {
    let named = if a.all || a.due {
        Vec::new()
    } else {
        a.secrets.clone()
    };
    let mode = if a.cancel {
        LocalMode::Cancel
    } else if a.resume {
        LocalMode::Resume
    } else {
        LocalMode::Rotate
    };
    let (dry_run, due_days, concurrency) =
        (a.dry_run, a.due.then_some(a.rotation_days), a.concurrency);
    let exemptions = Arc::new(exemptions);
    let ran = fleet
        .run(move |reached| {
            let (named, settings, exemptions) =
                (named.clone(), settings.clone(), exemptions.clone());
            async move {
                let rotator = Arc::new(reached.aws().rotator(settings));
                let secrets = targets(&rotator, named).await?;
                let account_exemptions = exemptions.for_account(&reached.account.id);
                let rows = bulk(secrets, concurrency, reached.progress, move |secret| {
                    let rotator = rotator.clone();
                    let request = LocalRequest {
                        mode,
                        dry_run,
                        due_days,
                        new_token: keyturn_core::rules::local_token(uuid::Uuid::new_v4()),
                        exemptions: account_exemptions.clone(),
                    };
                    async move {
                        let _busy = interrupt::Busy::enter(&secret);
                        row(rotator.rotate_local(&secret, &request).await, secret)
                    }
                })
                .await;
                Ok(rows
                    .into_iter()
                    .map(|r| r.unwrap_or_else(|secret| RotateRow::not_started(Some(secret))))
                    .collect())
            }
        })
        .await?;
    print_rows(&ran.rows, output);
    if interrupt::stopping() {
        return Err(interrupted(&ran.rows, &a.secrets, due_days.is_some(), fleet.selected).into());
    }
    ran.finish(!ran.rows.iter().any(|r| r.row.failed()))
}

/// Arms the signal handler for a run that writes: an abort names the secrets it cut off and the
/// `--resume` that finishes them.
pub fn arm(named: Vec<String>) {
    interrupt::arm(Box::new(move |cut| {
        format!(
            "A rotation cut off may be in flight (AWSPENDING) or have left a key no version holds; \
             finish them with: {}",
            interrupt::command_line(&dropped(&named), SELECTION_FLAGS, &resume_words(cut))
        )
    }));
}

/// The words of the command line a command naming other secrets leaves out.
fn dropped(named: &[String]) -> Vec<&str> {
    SELECTION
        .iter()
        .copied()
        .chain(named.iter().map(String::as_str))
        .collect()
}

/// The words that select secrets, and the flags (with a value) that select accounts: a command
/// that names the secrets left replaces them.
const SELECTION: &[&str] = &["--all", "--due", "--resume", "--cancel", "--dry-run"];
const SELECTION_FLAGS: &[&str] = &["--org", "--ou", "--account", "--exclude-account"];

fn resume_words(secrets: &[String]) -> Vec<String> {
    std::iter::once("--resume".to_string())
        .chain(secrets.iter().cloned())
        .collect()
}

/// What a signal left: the counts, and the one command that finishes the rest.
fn interrupted(
    rows: &[InAccount<RotateRow>],
    named: &[String],
    due: bool,
    fleet: bool,
) -> Interrupted {
    let left: Vec<&InAccount<RotateRow>> = rows
        .iter()
        .filter(|r| r.row.outcome == NOT_STARTED)
        .collect();
    let done = rows.len() - left.len();
    let next = if left.is_empty() {
        "nothing was left".to_string()
    } else if due {
        // The rotated ones are no longer due, and the exemptions still apply.
        format!(
            "to rotate the rest, run the same command again: {}",
            interrupt::command_line(&[], &[], &[])
        )
    } else {
        let mut by_account: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        for r in &left {
            by_account
                .entry(r.account.as_str())
                .or_default()
                .extend(r.row.secret.clone());
        }
        let lines: Vec<String> = by_account
            .iter()
            .map(|(account, secrets)| {
                let mut words: Vec<String> = Vec::new();
                if fleet {
                    words.extend(["--account".to_string(), account.to_string()]);
                }
                if secrets.is_empty() {
                    // A whole account not reached: its selection, again.
                    words.push("--all".into());
                }
                words.extend(secrets.iter().cloned());
                interrupt::command_line(&dropped(named), SELECTION_FLAGS, &words)
            })
            .collect();
        format!("to rotate the rest, run: {}", lines.join(" ; "))
    };
    Interrupted(format!(
        "interrupted: {done} secret(s) reached a safe point (see the table), {} not started and untouched; {next}",
        left.len()
    ))
}

fn row(
    result: Result<keyturn_core::rotation::LocalReport, keyturn_core::RotationError>,
    secret: String,
) -> RotateRow {
    match result {
        Ok(r) => RotateRow {
            outcome: r.outcome.as_str().to_string(),
            user: r.user,
            new_key_id: r.new_key_id,
            deleted_key_id: r.retired.as_ref().map(|d| d.key_id().to_string()),
            deleted_because: r.retired.as_ref().map(|d| d.reason().to_string()),
            detail: Some(r.detail).filter(|d| !d.is_empty()),
            error_type: None,
            error: None,
            secret: Some(r.secret),
        },
        Err(e) => RotateRow::failed(Some(secret), e.error_type(), e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_every_json_field() {
        crate::render::fields_match_json(&RotateRow::failed(None, "X", "e".into())).expect("same");
        crate::render::fields_match_json(&RotateRow::not_started(Some("s".into()))).expect("same");
    }
}
