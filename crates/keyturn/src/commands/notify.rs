//! `keyturn notify`: the owners' notices due today (`Rotator::notices_today`), sent to the
//! deployment's topic, or printed with `--dry-run`.

use keyturn_core::rules::SweepPolicy;

use crate::args::{NotifyArgs, Output};
use crate::render::notify::{print_notices, NoticeRow};
use crate::render::print_json;
use crate::setup::{targets, AwsRotator};

/// One row per notice (and per secret that could not be read); exit 1 when a secret could not be
/// read or a notice could not be sent.
pub async fn run(
    r: &AwsRotator,
    policy: SweepPolicy,
    a: NotifyArgs,
    output: Output,
) -> anyhow::Result<bool> {
    if !a.dry_run && r.settings().notices.topic.is_none() {
        anyhow::bail!(
            "no notice topic is configured: give --notice-topic (or KEYTURN_NOTICE_TOPIC), or run with --dry-run to see what would be sent"
        );
    }
    let mut rows = Vec::new();
    for secret in targets(r, a.secrets).await? {
        match r.notices_today(&secret, &policy).await {
            Ok(notices) => {
                for notice in notices {
                    let sent = !a.dry_run && r.notify(&notice).await;
                    rows.push(NoticeRow::of(&notice, a.dry_run, sent));
                }
            }
            Err(e) => rows.push(NoticeRow::failed(secret, &e)),
        }
    }
    match output {
        Output::Json => print_json(&rows),
        Output::Table | Output::Csv => print_notices(&rows, a.dry_run),
    }
    Ok(rows.iter().all(NoticeRow::fine))
}
