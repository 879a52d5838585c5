//! `keyturn rotate`'s rows, and what an interrupted run says was done, left, and how to finish.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{AccountFailure, InAccount, Row};
use crate::interrupt::{self, Interrupted};

/// One secret's line of `keyturn rotate`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RotateRow {
    /// Absent on an account's error row.
    secret: Option<String>,
    /// rotated, planned, resumed, cancelled, nothing-in-flight, ... or failed.
    outcome: String,
    user: Option<String>,
    new_key_id: Option<String>,
    deleted_key_id: Option<String>,
    deleted_because: Option<String>,
    detail: Option<String>,
    /// The consumers restarted after the cut-over (`keyturn:restart:NAME`).
    restarted: Vec<String>,
    error_type: Option<&'static str>,
    /// Also set, with `errorType` RestartFailed, when the rotation was done but a restart failed.
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
        "restarted",
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
            restarted: Vec::new(),
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
pub const NOT_STARTED: &str = "not-started";

/// The words of the command line a command naming other secrets leaves out.
pub fn dropped(named: &[String]) -> Vec<&str> {
    SELECTION
        .iter()
        .copied()
        .chain(named.iter().map(String::as_str))
        .collect()
}

/// The words that select secrets, and the flags (with a value) that select accounts: a command
/// that names the secrets left replaces them.
const SELECTION: &[&str] = &["--all", "--due", "--resume", "--cancel", "--dry-run"];
pub const SELECTION_FLAGS: &[&str] = &["--org", "--ou", "--account", "--exclude-account"];

pub fn resume_words(secrets: &[String]) -> Vec<String> {
    std::iter::once("--resume".to_string())
        .chain(secrets.iter().cloned())
        .collect()
}

/// What a signal left: the counts, and the one command that finishes the rest.
pub fn interrupted(
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

pub fn row(
    result: Result<keyturn_core::rotation::LocalReport, keyturn_core::RotationError>,
    secret: String,
) -> RotateRow {
    match result {
        Ok(r) => {
            // The rotation stands; a consumer that could not be restarted is this row's error.
            let failed: Vec<String> = r.restarts.failed.iter().map(|(_, e)| e.clone()).collect();
            RotateRow {
                outcome: r.outcome.as_str().to_string(),
                user: r.user,
                new_key_id: r.new_key_id,
                deleted_key_id: r.retired.as_ref().map(|d| d.key_id().to_string()),
                deleted_because: r.retired.as_ref().map(|d| d.reason().to_string()),
                detail: Some(r.detail).filter(|d| !d.is_empty()),
                restarted: r.restarts.restarted,
                error_type: (!failed.is_empty()).then_some("RestartFailed"),
                error: (!failed.is_empty()).then(|| failed.join("; ")),
                secret: Some(r.secret),
            }
        }
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
