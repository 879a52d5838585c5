//! `keyturn rotate`: the four steps run locally for each secret, as typed rows.

use std::sync::Arc;

use keyturn_core::audit::exempt::Exemptions;
use keyturn_core::rotation::{LocalMode, LocalRequest};
use keyturn_core::RotationSettings;
use serde::Serialize;

use super::targets;
use crate::accounts::{AccountFailure, Fleet};
use crate::args::{Output, RotateArgs};
use crate::render::{bulk, print_rows, Row};

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
}

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
                        new_token: uuid::Uuid::new_v4().to_string(),
                        exemptions: account_exemptions.clone(),
                    };
                    async move { row(rotator.rotate_local(&secret, &request).await, secret) }
                })
                .await;
                Ok(rows)
            }
        })
        .await?;
    print_rows(&ran.rows, output);
    ran.finish(!ran.rows.iter().any(|r| r.row.failed()))
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
