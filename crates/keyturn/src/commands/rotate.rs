//! `keyturn rotate`: the four steps run locally for each secret, as typed rows.

use std::sync::Arc;

use keyturn_aws::AwsRotator;
use keyturn_core::rotation::{LocalMode, LocalRequest};
use serde::Serialize;

use super::targets;
use crate::args::{Output, RotateArgs};
use crate::render::{bulk, print_rows, Row};

/// One secret's line of `keyturn rotate`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RotateRow {
    secret: String,
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

pub async fn run(rotator: Arc<AwsRotator>, a: RotateArgs, output: Output) -> anyhow::Result<bool> {
    let named = if a.all || a.due {
        Vec::new()
    } else {
        a.secrets.clone()
    };
    let secrets = targets(&rotator, named).await?;
    let mode = if a.cancel {
        LocalMode::Cancel
    } else if a.resume {
        LocalMode::Resume
    } else {
        LocalMode::Rotate
    };
    let (dry_run, due_days) = (a.dry_run, a.due.then_some(a.rotation_days));
    let rows = bulk(secrets, a.concurrency, move |secret| {
        let rotator = rotator.clone();
        async move {
            let request = LocalRequest {
                mode,
                dry_run,
                due_days,
                new_token: uuid::Uuid::new_v4().to_string(),
            };
            match rotator.rotate_local(&secret, &request).await {
                Ok(r) => RotateRow {
                    outcome: r.outcome.as_str().to_string(),
                    user: r.user,
                    new_key_id: r.new_key_id,
                    deleted_key_id: r.retired.as_ref().map(|d| d.key_id().to_string()),
                    deleted_because: r.retired.as_ref().map(|d| d.reason().to_string()),
                    detail: Some(r.detail).filter(|d| !d.is_empty()),
                    error_type: None,
                    error: None,
                    secret: r.secret,
                },
                Err(e) => RotateRow {
                    secret,
                    outcome: "failed".into(),
                    user: None,
                    new_key_id: None,
                    deleted_key_id: None,
                    deleted_because: None,
                    detail: None,
                    error_type: Some(e.error_type()),
                    error: Some(e.to_string()),
                },
            }
        }
    })
    .await;
    print_rows(&rows, output);
    Ok(!rows.iter().any(Row::failed))
}
