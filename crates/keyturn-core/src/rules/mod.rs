//! The rule book: every decision keyturn makes about keys, as pure functions over facts read once
//! ([`SecretState`], built by one reader in `state`). No async, no I/O, no clock: "now" is a fact
//! of the state.
//!
//! - this file: whose secret and whose key it is (the user, "managed", one user one secret, the
//!   identity a key authenticates as);
//! - [`retire`]: which key keyturn may delete or deactivate, and why: the only place a
//!   [`Retirement`] is issued;
//! - [`policy`]: rotation and sweep periods, due dates, "used since", switch evidence;
//! - [`records`]: keyturn's records on a secret (cut-over, deactivation), each with one writer
//!   and one reader, believed only within what AWS's own records allow;
//! - [`problems`]: what `keyturn status` reports as wrong;
//! - [`sinks`]: where a secret's new key is delivered (its `keyturn:sink:*` tags), and this file's
//!   [`deliverable_key`]: which key may be delivered again;
//! - [`restarts`]: which consumers a secret may name for a restart (its `keyturn:restart:*` tags),
//!   and whether each completed a restart since the cut-over;
//! - [`notices`]: whose a secret is, whether its consumers act by hand, when to remind them;
//! - [`rollback`]: whether AWSCURRENT may go back to AWSPREVIOUS;
//! - [`scope`]: the prefix, user path and master allow-list that bound what keyturn acts on.

pub mod notices;
pub mod policy;
pub mod problems;
pub mod records;
pub mod restarts;
pub mod retire;
pub mod rollback;
pub mod scope;
pub mod sinks;

use std::collections::BTreeMap;

use crate::error::RotationError;
use crate::ports::Identity;
use crate::state::SecretState;
use crate::tags;
use crate::user::{SecretUser, UserSource};

pub use policy::{
    due_at, is_due, previous_key_to_record, recorded_keys, rotation_days, switch_evidence,
    used_since, InUsePolicy, RecordedKeys, SweepPolicy, SwitchEvidence,
};
pub use problems::problems;
pub use records::{recorded_cutover, Cutover, Deactivated};
pub use restarts::{restarts, RestartPolicy, RestartProgress};
pub use retire::{
    after_failed_store, another_runs_key, cancel_plan, finish_must_recheck, free_slot, in_flight,
    local_token, resumes_by_itself, sweep_plan, unanswered_creates, AfterFailedStore, CancelPlan,
    OrphanPolicy, RetireAction, RetireReason, Retirement, StoreCheck, SweepDecision,
    LOCAL_TOKEN_PREFIX, YOUNG_KEY,
};
pub use rollback::{rollback_plan, RollbackPlan};
pub use scope::{Scope, ScopeError, DEFAULT_PREFIX};
pub use sinks::{check_unshared, sinks, SinkPolicy};

/// The user of a secret: the value's user field, else the `keyturn:user` tag, else the default.
/// A value and a tag that name different users are an error: which one is meant cannot be told,
/// and guessing would mint a key for the wrong user.
pub fn resolve_user(
    secret: &str,
    value_user: Option<&str>,
    tag_user: Option<&str>,
    default_user: Option<&str>,
) -> Result<SecretUser, RotationError> {
    fn clean(u: Option<&str>) -> Option<&str> {
        u.map(str::trim).filter(|u| !u.is_empty())
    }
    let (value_user, tag_user, default_user) =
        (clean(value_user), clean(tag_user), clean(default_user));
    if let (Some(v), Some(t)) = (value_user, tag_user) {
        if v != t {
            return Err(RotationError::UserConflict {
                secret: secret.to_string(),
                value_user: v.to_string(),
                tag_user: t.to_string(),
            });
        }
    }
    let found = [
        (value_user, UserSource::Value),
        (tag_user, UserSource::Tag),
        (default_user, UserSource::Default),
    ]
    .into_iter()
    .find_map(|(name, source)| name.map(|n| (n, source)));
    match found {
        Some((name, source)) => Ok(SecretUser {
            name: name.to_string(),
            source,
        }),
        None => Err(RotationError::NoUserName {
            secret: secret.to_string(),
        }),
    }
}

/// Whether a secret is managed by keyturn: the tag `keyturn:managed` with the value `true`.
pub fn is_managed(tags: &BTreeMap<String, String>) -> bool {
    tags.get(tags::MANAGED).map(|v| v.trim()) == Some(tags::MANAGED_TRUE)
}

/// Whether `identity` is IAM user `user` (any path) in `account` (when the account is known).
/// An assumed role, a federated user or a user of the same name elsewhere is not.
pub fn identity_is_user(identity: &Identity, user: &str, account: Option<&str>) -> bool {
    let mut parts = identity.arn.splitn(6, ':');
    let (arn, service, resource_account, resource) =
        (parts.next(), parts.nth(1), parts.nth(1), parts.next());
    let named = arn == Some("arn")
        && service == Some("iam")
        && resource.is_some_and(|r| r.starts_with("user/") && r.rsplit('/').next() == Some(user));
    let in_account = match account.filter(|a| !a.is_empty()) {
        Some(expected) => identity.account == expected && resource_account == Some(expected),
        None => true,
    };
    named && in_account
}

/// The user's IAM path is under the scope's user path.
pub fn check_user_path(
    scope: &Scope,
    secret: &str,
    user: &str,
    path: &str,
) -> Result<(), RotationError> {
    if scope.admits_path(path) {
        return Ok(());
    }
    Err(RotationError::UserOutsidePath {
        secret: secret.to_string(),
        user: user.to_string(),
        path: path.to_string(),
        allowed: scope.user_path().to_string(),
    })
}

/// Whether a testSecret is Secrets Manager's configuration test rather than a rotation's: with
/// `RotateImmediately=false`, Secrets Manager runs testSecret alone on a temporary AWSPENDING
/// version, which holds no value (or a copy of AWSCURRENT, whose key the test then authenticates).
/// A rotation's testSecret always follows a createSecret that stored a new key there, so a
/// pending version without a value has no new key to test: the configuration is checked instead.
pub fn is_configuration_test(pending_value: Option<&crate::secret::SecretText>) -> bool {
    pending_value.is_none()
}

/// A pending key that never authenticated is the configuration test's copy of AWSCURRENT (that
/// test then succeeds) when AWSCURRENT holds the same key; otherwise it is a new key that failed.
pub fn is_copy_of_current(pending_key_id: &str, current_key_id: Option<&str>) -> bool {
    current_key_id == Some(pending_key_id)
}

/// createSecret found AWSPENDING already holding a key: it must be a new key, not AWSCURRENT's
/// (a configuration test's copy, or a hand-made write), or finishSecret would "rotate" to the
/// same key and every consumer would keep the old one while the rotation reports success.
pub fn check_pending_is_new(
    state: &SecretState,
    token: &str,
    pending_key_id: &str,
) -> Result<(), RotationError> {
    if state.current_key() == Some(pending_key_id) {
        return Err(RotationError::PendingIsCurrent {
            secret: state.info.name.clone(),
            user: state.user.name.clone(),
            key_id: pending_key_id.to_string(),
            token: token.to_string(),
        });
    }
    Ok(())
}

/// One user, one managed secret: no other secret is tagged for the state's user. Every command
/// that changes keys or labels checks it (a rotation, cancel, rollback, deliver, the sweep).
pub fn check_one_secret(state: &SecretState) -> Result<(), RotationError> {
    if state.other_secrets.is_empty() {
        return Ok(());
    }
    Err(RotationError::UserHasOtherSecret {
        secret: state.info.name.clone(),
        user: state.user.name.clone(),
        others: state.other_secrets.clone(),
    })
}

/// Before anything is created or retired: no other secret is tagged for the same user (one user,
/// one managed secret), and the key AWSCURRENT holds is one of the user's keys in IAM (a secret
/// that names one user but holds another's key would silently change a program's identity).
pub fn check_whose_key(state: &SecretState) -> Result<(), RotationError> {
    check_one_secret(state)?;
    if let Some(current) = state.current_key() {
        if state.key(current).is_none() {
            return Err(RotationError::NotUsersKey {
                secret: state.info.name.clone(),
                user: state.user.name.clone(),
                key_id: current.to_string(),
            });
        }
    }
    Ok(())
}

/// What moved between two reads of a secret's staging labels (AWSCURRENT, AWSPENDING,
/// AWSPREVIOUS), in words; `None` when they are where they were. Every write that a plan stood on
/// re-reads the labels just before it acts and refuses when this says something moved.
pub fn labels_moved(
    before: &crate::ports::SecretInfo,
    after: &crate::ports::SecretInfo,
) -> Option<String> {
    [tags::AWSCURRENT, tags::AWSPENDING, tags::AWSPREVIOUS]
        .into_iter()
        .find_map(|label| {
            let (was, is) = (before.version_with(label), after.version_with(label));
            (was != is).then(|| {
                format!(
                    "{label} moved from {} to {}",
                    was.map_or("no version".to_string(), |v| format!("version {v}")),
                    is.map_or("no version".to_string(), |v| format!("version {v}"))
                )
            })
        })
}

/// [`labels_moved`], leaving out one label (the one the caller itself just moved).
pub fn labels_moved_except(
    before: &crate::ports::SecretInfo,
    after: &crate::ports::SecretInfo,
    mine: &str,
) -> Option<String> {
    let strip = |info: &crate::ports::SecretInfo| {
        let mut info = info.clone();
        for labels in info.versions.values_mut() {
            labels.retain(|l| l != mine);
        }
        info
    };
    labels_moved(&strip(before), &strip(after))
}

/// The key `keyturn deliver` may hand to the sinks: AWSCURRENT's, and one of the user's active
/// keys in IAM (a key that does not work is never delivered).
pub fn deliverable_key(state: &SecretState) -> Result<String, RotationError> {
    let secret = state.info.name.clone();
    let key_id = state
        .current_key()
        .ok_or_else(|| RotationError::NoKeyInValue {
            secret: secret.clone(),
            version: tags::AWSCURRENT.into(),
        })?
        .to_string();
    match state.key(&key_id) {
        Some(k) if k.status == crate::ports::KeyStatus::Active => Ok(key_id),
        _ => Err(RotationError::NotUsersKey {
            secret,
            user: state.user.name.clone(),
            key_id,
        }),
    }
}

#[cfg(test)]
mod tests;

/// A secret `keyturn/app` of account 123456789012 with these tags, for the rules' tests.
#[cfg(test)]
pub(crate) fn tagged(tags: &[(&str, &str)]) -> crate::ports::SecretInfo {
    crate::ports::SecretInfo {
        arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:keyturn/app-AbCdEf".into(),
        name: "keyturn/app".into(),
        rotation_enabled: true,
        versions: Default::default(),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        last_rotated: None,
        next_rotation: None,
        rotation_days: None,
    }
}
