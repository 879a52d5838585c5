//! The audit's reads across secrets and users, `--concurrency` at a time: the keys managed secrets
//! hold (`Rotator::held_keys`) and the keys of users no managed secret covers
//! (`Rotator::listed_keys`).

use std::sync::Arc;

use crate::setup::AwsRotator;
use keyturn_core::audit::{ListedKey, ManagedKey, ReportRow};

use crate::render::bulk;
use crate::safe::term;

/// The keys managed secrets hold and every key of their users (`Rotator::held_keys`), the secrets
/// read `--concurrency` at a time. A secret that cannot be read (its user gone, its value broken)
/// is reported and its keys show as unmanaged: one must not hide the rest.
pub async fn managed_keys(
    rotator: &Arc<AwsRotator>,
    default_days: i64,
    concurrency: u16,
    progress: bool,
) -> anyhow::Result<(Vec<ManagedKey>, Vec<ListedKey>)> {
    // Every managed secret, inside the prefix or not: the audit reports every key one holds.
    let secrets = rotator.managed_secrets().await?.all();
    let r = rotator.clone();
    let per_secret = bulk(secrets, concurrency, progress, move |info| {
        let r = r.clone();
        async move {
            let name = info.name.clone();
            r.held_keys(info, default_days)
                .await
                .map_err(|e| format!("{name}: {e}"))
        }
    })
    .await;
    let (mut keys, mut listed) = (Vec::new(), Vec::new());
    // audit arms no signal handler: a Ctrl-C ends it at once, so every secret ran.
    for result in per_secret.into_iter().flatten() {
        match result {
            Ok((k, l)) => {
                keys.extend(k);
                listed.extend(l);
            }
            Err(e) => eprintln!(
                "keyturn: warning: {}; its keys are reported as unmanaged",
                term(&e)
            ),
        }
    }
    Ok((keys, listed))
}

/// The keys of the report's users that have an active key and no managed secret listed them
/// already (`Rotator::listed_keys`, one ListAccessKeys each). A user whose keys cannot be listed
/// keeps `-` for the key id, with a warning: the rest of the audit does not depend on it.
pub async fn unmanaged_keys(
    rotator: &Arc<AwsRotator>,
    report: &[ReportRow],
    listed: &[ListedKey],
    concurrency: u16,
) -> Vec<ListedKey> {
    let known: std::collections::HashSet<&str> = listed.iter().map(|l| l.user.as_str()).collect();
    let users: Vec<String> = report
        .iter()
        .filter(|row| !known.contains(row.user.as_str()) && row.keys.iter().any(|k| k.active))
        .map(|row| row.user.clone())
        .collect();
    let r = rotator.clone();
    let per_user = bulk(users, concurrency, false, move |user| {
        let r = r.clone();
        async move {
            let keys = r.listed_keys(&user).await;
            (user, keys)
        }
    })
    .await;
    let mut out = Vec::new();
    for (user, keys) in per_user.into_iter().flatten() {
        match keys {
            Ok(keys) => out.extend(keys),
            Err(e) => eprintln!(
                "keyturn: warning: the keys of user {} could not be listed ({e}); its unmanaged key is shown without its id (grant iam:ListAccessKeys)",
                term(&user)
            ),
        }
    }
    out
}
