//! `keyturn sweep`'s rows.

use serde::Serialize;

use super::{AccountFailure, Row};

/// One secret's line of `keyturn sweep`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SweepRow {
    /// Absent on an account's error row.
    secret: Option<String>,
    user: Option<String>,
    /// nothing, waiting, in-use, blocked, cleared, deactivated, deleted; absent when the secret
    /// could not be swept (see `error`).
    pub action: Option<&'static str>,
    /// The previous key the action is about.
    key_id: Option<String>,
    detail: Option<String>,
    /// With `awaiting-switch`: the restart targets that have not completed a restart since the
    /// cut-over, and what the sweep did about each.
    pending_restarts: Vec<PendingRestartRow>,
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
        "pendingRestarts",
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
    pub fn failure(
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
            pending_restarts: Vec::new(),
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

pub const NOT_STARTED: &str = "not-started";

/// A restart target the sweep waits for.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingRestartRow {
    name: String,
    spec: String,
    /// needed, running, failed, unknown.
    progress: &'static str,
    detail: String,
    /// `restarted` (the sweep restarted it again), `failed` (and `error` says why), or absent.
    retried: Option<&'static str>,
    error: Option<String>,
}

fn pending_rows(outcome: &keyturn_core::rotation::SweepOutcome) -> Vec<PendingRestartRow> {
    let keyturn_core::rotation::SweepOutcome::AwaitingSwitch { pending, .. } = outcome else {
        return Vec::new();
    };
    pending
        .iter()
        .map(|p| PendingRestartRow {
            name: p.name.clone(),
            spec: p.spec.clone(),
            progress: p.progress,
            detail: p.detail.clone(),
            retried: p.retried.as_ref().map(|r| match r {
                Ok(()) => "restarted",
                Err(_) => "failed",
            }),
            error: p.retried.as_ref().and_then(|r| r.clone().err()),
        })
        .collect()
}

pub fn row(
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
            pending_restarts: pending_rows(&r.outcome),
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
