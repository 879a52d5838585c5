//! `keyturn rotate`: the four steps run locally for each secret (`Rotator::rotate_local`), as
//! typed rows (`render::rotate`).

use std::sync::Arc;

use keyturn_core::audit::exempt::Exemptions;
use keyturn_core::rotation::{LocalMode, LocalRequest};
use keyturn_core::RotationSettings;

use crate::accounts::Fleet;
use crate::args::{Output, RotateArgs};
use crate::interrupt;
use crate::render::rotate::RotateRow;
use crate::render::rotate::{dropped, interrupted, resume_words, row, SELECTION_FLAGS};
use crate::render::{bulk, print_rows, AccountFailure, Row};
use crate::setup::targets;

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
                let rotator = Arc::new(crate::setup::rotator(reached.aws(), settings));
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
