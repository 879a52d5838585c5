//! `keyturn sweep`: retire previous keys as the rules decide, as typed rows.

use std::sync::Arc;

use keyturn_core::rules::SweepPolicy;
use keyturn_core::RotationSettings;
use serde::Serialize;

use crate::accounts::Fleet;
use crate::args::{Output, SweepArgs};
use crate::interrupt::{self, Interrupted};
use crate::render::AccountFailure;
use crate::render::{bulk, print_rows, Row};
use crate::setup::targets;

/// One secret's line of `keyturn sweep`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SweepRow {
    /// Absent on an account's error row.
    secret: Option<String>,
    user: Option<String>,
    /// nothing, waiting, in-use, blocked, cleared, deactivated, deleted; absent when the secret
    /// could not be swept (see `error`).
    action: Option<&'static str>,
    /// The previous key the action is about.
    key_id: Option<String>,
    detail: Option<String>,
    dry_run: bool,
    /// Whether this secret fails the sweep (exit 1): an error, a `blocked` key, or a key in use
    /// under `--in-use fail`.
    failed: bool,
    error_type: Option<&'static str>,
    error: Option<String>,
}

impl Row for SweepRow {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("SECRET", "secret"),
        ("ACTION", "action"),
        ("KEY", "keyId"),
        ("DETAIL", "detail"),
        ("ERROR", "error"),
    ];
    const FIELDS: &'static [&'static str] = &[
        "secret",
        "user",
        "action",
        "keyId",
        "detail",
        "dryRun",
        "failed",
        "errorType",
        "error",
    ];
    fn failed(&self) -> bool {
        self.failed
    }
}

impl SweepRow {
    fn failure(
        secret: Option<String>,
        dry_run: bool,
        error_type: &'static str,
        error: String,
    ) -> Self {
        SweepRow {
            secret,
            user: None,
            action: None,
            key_id: None,
            detail: None,
            dry_run,
            failed: true,
            error_type: Some(error_type),
            error: Some(error),
        }
    }
}

impl AccountFailure for SweepRow {
    fn account_failed(error: String) -> Self {
        SweepRow::failure(None, false, "AccountFailed", error)
    }
    fn not_started(secret: Option<String>) -> Self {
        SweepRow {
            action: Some(NOT_STARTED),
            detail: Some("interrupted before it started: nothing was changed".into()),
            failed: false,
            error_type: None,
            error: None,
            ..SweepRow::failure(secret, false, "", String::new())
        }
    }
}

const NOT_STARTED: &str = "not-started";

/// Arms the signal handler for a sweep that writes. Sweeping is idempotent: the same command
/// again picks up where a stopped one left off.
pub fn arm() {
    interrupt::arm(Box::new(|cut| {
        format!(
            "A sweep cut off may have deactivated a key without its check after the change: \
             keyturn status {} shows whether AWSCURRENT's key is active (status names the problem \
             if not); then run the same command again: {}",
            cut.join(" / "),
            interrupt::command_line(&[], &[], &[])
        )
    }));
}

/// `policy`: the flags parsed by the function's parser (`commands::setting_values`).
pub async fn run(
    fleet: &Fleet,
    settings: RotationSettings,
    policy: SweepPolicy,
    a: SweepArgs,
    output: Output,
) -> anyhow::Result<bool> {
    let (named, dry_run, concurrency) = (a.secrets, a.dry_run, a.concurrency);
    let ran = fleet
        .run(move |reached| {
            let (named, settings) = (named.clone(), settings.clone());
            async move {
                let rotator = Arc::new(reached.aws().rotator(settings));
                let secrets = targets(&rotator, named).await?;
                let rows = bulk(secrets, concurrency, reached.progress, move |secret| {
                    let rotator = rotator.clone();
                    async move {
                        let _busy = interrupt::Busy::enter(&secret);
                        row(
                            rotator.sweep(&secret, &policy, dry_run).await,
                            secret,
                            dry_run,
                        )
                    }
                })
                .await;
                Ok(rows
                    .into_iter()
                    .map(|r| r.unwrap_or_else(|secret| SweepRow::not_started(Some(secret))))
                    .collect())
            }
        })
        .await?;
    print_rows(&ran.rows, output);
    if interrupt::stopping() {
        let left = ran
            .rows
            .iter()
            .filter(|r| r.row.action == Some(NOT_STARTED))
            .count();
        return Err(Interrupted(format!(
            "interrupted: {} secret(s) swept (see the table), {left} not started and untouched; to sweep the rest, run the same command again: {}",
            ran.rows.len() - left,
            interrupt::command_line(&[], &[], &[])
        ))
        .into());
    }
    ran.finish(!ran.rows.iter().any(|r| r.row.failed()))
}

fn row(
    result: Result<keyturn_core::rotation::SweepReport, keyturn_core::RotationError>,
    secret: String,
    dry_run: bool,
) -> SweepRow {
    match result {
        Ok(r) => SweepRow {
            failed: r.failed,
            action: Some(r.outcome.as_str()),
            key_id: r.outcome.key_id().map(str::to_string),
            detail: Some(if r.dry_run {
                format!("dry run: {}", r.outcome.describe_planned())
            } else {
                r.outcome.describe()
            }),
            dry_run: r.dry_run,
            error_type: None,
            error: None,
            secret: Some(r.secret),
            user: r.user,
        },
        Err(e) => SweepRow::failure(Some(secret), dry_run, e.error_type(), e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_has_every_json_field() {
        crate::render::fields_match_json(&SweepRow::failure(None, true, "X", "e".into()))
            .expect("same");
    }
}
