//! `keyturn sweep`: retire previous keys as the rules decide (`Rotator::sweep`), as typed rows
//! (`render::sweep`).

use std::sync::Arc;

use keyturn_core::rules::SweepPolicy;
use keyturn_core::RotationSettings;

use crate::accounts::Fleet;
use crate::args::{Output, SweepArgs};
use crate::interrupt::{self, Interrupted};
use crate::render::sweep::{row, SweepRow, NOT_STARTED};
use crate::render::AccountFailure;
use crate::render::{print_rows, progress_bar, Row, Tick};
use crate::setup::targets;

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
                let rotator = Arc::new(crate::setup::rotator(reached.aws(), settings));
                let secrets = targets(&rotator, named).await?;
                let bar = progress_bar(secrets.len(), reached.progress);
                // The core's one sweep loop; a secret a signal kept from starting is untouched.
                let start = |secret: &str| {
                    (!interrupt::stopping())
                        .then(|| (interrupt::Busy::enter(secret), Tick(bar.clone())))
                };
                let swept = rotator
                    .sweep_each(secrets, &policy, dry_run, concurrency.into(), start)
                    .await;
                bar.finish();
                Ok(swept
                    .into_iter()
                    .map(|(secret, result)| match result {
                        Some(result) => row(result, secret, dry_run),
                        None => SweepRow::not_started(Some(secret)),
                    })
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
