//! `keyturn sweep`: retire previous keys as the rules decide, as typed rows.

use std::sync::Arc;

use anyhow::Context;
use keyturn_aws::AwsRotator;
use keyturn_core::rules::{InUsePolicy, SweepPolicy};
use serde::Serialize;

use super::targets;
use crate::args::{Output, SweepArgs};
use crate::render::{bulk, print_rows, Row};

/// One secret's line of `keyturn sweep`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SweepRow {
    secret: String,
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
    fn failed(&self) -> bool {
        self.failed
    }
}

pub async fn run(rotator: Arc<AwsRotator>, a: SweepArgs, output: Output) -> anyhow::Result<bool> {
    let in_use = InUsePolicy::parse(&a.in_use)
        .with_context(|| format!("--in-use {:?}: expected report or fail", a.in_use))?;
    let policy = SweepPolicy {
        grace: time::Duration::days(a.grace_days.into()),
        delete_after: time::Duration::days(a.delete_after_days.into()),
        in_use,
    };
    let secrets = targets(&rotator, a.secrets).await?;
    let dry_run = a.dry_run;
    let rows = bulk(secrets, a.concurrency, move |secret| {
        let rotator = rotator.clone();
        async move {
            match rotator.sweep(&secret, &policy, dry_run).await {
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
                    secret: r.secret,
                    user: r.user,
                },
                Err(e) => SweepRow {
                    secret,
                    user: None,
                    failed: true,
                    action: None,
                    key_id: None,
                    detail: None,
                    dry_run,
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
