//! Which key may keyturn delete or deactivate? This file answers it, and nothing else issues a
//! [`Retirement`]: every DeleteAccessKey and UpdateAccessKey keyturn makes carries one, applied by
//! `rotation::retire::retire`, the one function that makes those calls.
//!
//! - createSecret frees a slot ([`free_slot`]): the AWSPREVIOUS key not used since the cut-over,
//!   or an orphan of an interrupted rotation (held by no version, never used);
//! - a new key that could not be stored, or enrolled, and surely is held by no secret
//!   ([`after_failed_store`]);
//! - cancel deletes only the key the cancelled rotation made ([`cancel_plan`]);
//! - the sweep retires the AWSPREVIOUS key ([`sweep_plan`]), only while AWSCURRENT's key exists
//!   and is active.
//!
//! Never: AWSCURRENT's key, a key any other version holds, a used key no version holds, the key
//! that signs keyturn's own IAM calls, a key of another user.

use std::fmt;

use time::{Duration, OffsetDateTime};

use crate::error::{describe_use, human, KeepReason, KeptKey, RotationError};
use crate::ports::{KeyInfo, KeyStatus, KeyUse};
use crate::restart::RestartTarget;
use crate::rules::policy::{own_test_from, used_since, InUsePolicy, SweepPolicy};
use crate::rules::records::{self, Cutover, Deactivated};
use crate::rules::restarts::RestartProgress;
use crate::state::{KeyFacts, SecretState};
use crate::tags::AWSPREVIOUS;

/// A key held by no version and never used, created less than this long ago, may be another
/// keyturn run's new key between CreateAccessKey and PutSecretValue: `keyturn rotate` leaves it
/// alone (IAM's two-key limit then keeps two runs from both making a key).
pub const YOUNG_KEY: Duration = Duration::minutes(5);

/// How the version tokens of the rotations `keyturn rotate` starts begin: one of these found in
/// flight is recognisably keyturn's own (Secrets Manager's and other tools' are bare UUIDs).
pub const LOCAL_TOKEN_PREFIX: &str = "keyturn-rotate-";

/// The token of a rotation `keyturn rotate` starts (at most 64 characters with a UUID).
pub fn local_token(random: impl std::fmt::Display) -> String {
    format!("{LOCAL_TOKEN_PREFIX}{random}")
}

/// Whether a plain `keyturn rotate` finishes the rotation in flight instead of refusing it: one
/// that `keyturn rotate` started (its token) and that has stood for [`YOUNG_KEY`] since its
/// version was stored, longer than any run spends between its steps, so the run that started it
/// was stopped. Finishing it runs the same checks as `--resume`; anyone who can forge the token can
/// write AWSCURRENT directly, so the token grants nothing.
pub fn resumes_by_itself(
    token: &str,
    version_created: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> bool {
    resumes_by_itself_from(token, version_created).is_some_and(|from| now >= from)
}

/// From when [`resumes_by_itself`] holds: for `keyturn rotate`'s own tokens, [`YOUNG_KEY`] after
/// the version was stored.
pub fn resumes_by_itself_from(
    token: &str,
    version_created: Option<OffsetDateTime>,
) -> Option<OffsetDateTime> {
    version_created
        .filter(|_| token.starts_with(LOCAL_TOKEN_PREFIX))
        .map(|created| created + YOUNG_KEY)
}

/// The refusal of a rotation while `token`'s (stored at `started`, where known) is in flight.
pub fn in_flight(secret: &str, token: &str, started: Option<OffsetDateTime>) -> RotationError {
    RotationError::RotationInFlight {
        secret: secret.to_string(),
        token: token.to_string(),
        started,
        by_keyturn_rotate: token.starts_with(LOCAL_TOKEN_PREFIX),
        resumes_by_itself_from: resumes_by_itself_from(token, started),
    }
}

/// What happens to the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RetireAction {
    Delete,
    Deactivate,
}

impl RetireAction {
    pub fn as_str(self) -> &'static str {
        match self {
            RetireAction::Delete => "delete",
            RetireAction::Deactivate => "deactivate",
        }
    }
}

/// Why the rules allow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RetireReason {
    /// createSecret: the AWSPREVIOUS key, not used since the current key took over.
    UnusedPrevious {
        last_use: KeyUse,
        cutover: Option<OffsetDateTime>,
    },
    /// createSecret: held by no version and never used (left by an interrupted rotation).
    Orphan { created: OffsetDateTime },
    /// The new key could not be stored (createSecret) or enrolled, and surely is held by no secret.
    NotStored,
    /// `rotate --cancel`: the key the cancelled rotation made, held by AWSPENDING alone, unused.
    Cancelled { token: String },
    /// The sweep: the grace period is over and the key was not used since the cut-over.
    GraceOver { cutover: Option<OffsetDateTime> },
    /// The sweep: inactive since `since` (and unused since) for the delete-after period.
    InactiveLongEnough { since: OffsetDateTime },
}

impl fmt::Display for RetireReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |t: &Option<OffsetDateTime>| t.map(human).unwrap_or_else(|| "unknown".into());
        match self {
            RetireReason::UnusedPrevious { last_use, cutover } => write!(
                f,
                "AWSPREVIOUS key {}, not used since the cut-over at {}",
                describe_use(last_use),
                at(cutover)
            ),
            RetireReason::Orphan { created } => write!(
                f,
                "held by no version and never used (left by an interrupted rotation, created {})",
                human(*created)
            ),
            RetireReason::NotStored => {
                f.write_str("the new key could not be stored and no secret holds it")
            }
            RetireReason::Cancelled { token } => write!(
                f,
                "made by the cancelled rotation {token}, held by AWSPENDING alone and never used"
            ),
            RetireReason::GraceOver { cutover } => write!(
                f,
                "AWSPREVIOUS key not used since the cut-over at {}, grace period over, current key active",
                at(cutover)
            ),
            RetireReason::InactiveLongEnough { since } => write!(
                f,
                "inactive since {} and not used since, delete-after period over",
                human(*since)
            ),
        }
    }
}

/// Permission, issued by these rules only, to delete or deactivate one key of one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retirement {
    user: String,
    key_id: String,
    action: RetireAction,
    reason: RetireReason,
}

impl Retirement {
    fn new(user: &str, key_id: &str, action: RetireAction, reason: RetireReason) -> Self {
        Self {
            user: user.to_string(),
            key_id: key_id.to_string(),
            action,
            reason,
        }
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    pub fn action(&self) -> RetireAction {
        self.action
    }

    pub fn reason(&self) -> &RetireReason {
        &self.reason
    }
}

/// Whether keyturn's own `rotate` may take a young unheld key for an orphan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrphanPolicy {
    /// A key younger than [`YOUNG_KEY`] may be another run's: keep it (`keyturn rotate`).
    SpareYoungKeys,
    /// Any unheld unused key is an orphan: Secrets Manager serialises the rotations it drives,
    /// and `--resume` is the operator saying the earlier run stopped.
    AnyAge,
}

fn kept(key: &KeyFacts, held_by: Option<String>, reason: KeepReason) -> KeptKey {
    KeptKey {
        key_id: key.id.clone(),
        held_by,
        last_use: key.last_use.clone().unwrap_or_default(),
        created: key.created,
        reason,
    }
}

/// The user has two keys and createSecret needs one slot: the key that may go, or why none may.
/// `Ok(None)` when the user has a free slot. Needs every labelled version's key and the last use
/// of every key but AWSCURRENT's.
pub fn free_slot(
    state: &SecretState,
    orphans: OrphanPolicy,
) -> Result<Option<Retirement>, RotationError> {
    if state.keys.len() < 2 {
        return Ok(None);
    }
    if let Some((version, reason)) = state.unreadable().next() {
        // An unreadable version cannot be shown to hold nothing: refuse to guess.
        return Err(RotationError::BadValue {
            secret: state.info.name.clone(),
            version: version.to_string(),
            reason: reason.clone(),
        });
    }
    let current = state.current_key();
    let cut = crate::rules::records::cutover(state);
    let user = state.user.name.as_str();
    let (mut orphan, mut previous, mut keep) = (None, None, Vec::new());
    for key in state.keys.iter().filter(|k| Some(k.id.as_str()) != current) {
        let labels = state.labels_holding(&key.id);
        let held_by = (!labels.is_empty()).then(|| labels.join(","));
        let Some(last_use) = &key.last_use else {
            keep.push(kept(key, held_by, KeepReason::UseUnknown));
            continue;
        };
        if state.signer.as_deref() == Some(key.id.as_str()) {
            keep.push(kept(key, held_by, KeepReason::Signer));
        } else if labels == [AWSPREVIOUS] {
            if used_since(last_use, cut.earliest, own_test_from(state, &key.id)) {
                keep.push(kept(key, held_by, KeepReason::UsedSinceCutover));
            } else if let Some(until) = settling(state, &cut) {
                keep.push(kept(key, held_by, KeepReason::NotSettled { until }));
            } else {
                let reason = RetireReason::UnusedPrevious {
                    last_use: last_use.clone(),
                    cutover: cut.earliest,
                };
                previous.get_or_insert(Retirement::new(
                    user,
                    &key.id,
                    RetireAction::Delete,
                    reason,
                ));
            }
        } else if !labels.is_empty() {
            keep.push(kept(key, held_by, KeepReason::HeldByOtherLabel));
        } else if last_use.last_used.is_some() {
            keep.push(kept(key, None, KeepReason::UnmanagedAndUsed));
        } else if orphans == OrphanPolicy::SpareYoungKeys && state.now - key.created < YOUNG_KEY {
            keep.push(kept(
                key,
                None,
                KeepReason::MaybeAnotherRun {
                    until: key.created + YOUNG_KEY,
                },
            ));
        } else {
            let reason = RetireReason::Orphan {
                created: key.created,
            };
            orphan.get_or_insert(Retirement::new(user, &key.id, RetireAction::Delete, reason));
        }
    }
    match orphan.or(previous) {
        Some(r) => Ok(Some(r)),
        None => Err(RotationError::NoRoomForKey {
            secret: state.info.name.clone(),
            user: user.to_string(),
            kept: keep,
        }),
    }
}

/// IAM refused a new key although the plan saw a free slot: among the user's keys listed again,
/// the one that appeared since the plan's list and is young enough to be another keyturn run's new
/// key (the same [`YOUNG_KEY`] within which `free_slot` spares an unheld key as another run's).
pub fn another_runs_key<'a>(
    state: &SecretState,
    listed: &'a [KeyInfo],
    now: OffsetDateTime,
) -> Option<&'a KeyInfo> {
    listed
        .iter()
        .find(|k| state.key(&k.id).is_none() && now - k.created < YOUNG_KEY)
}

/// Until when the previous key's "not used since the cut-over" cannot be believed yet: IAM's
/// last-used record lags, so within the settle window counted from the latest the cut-over can
/// have been, a recent use may not show. `None` once the window has passed (or is off).
pub fn settling(state: &SecretState, cut: &Cutover) -> Option<OffsetDateTime> {
    let until = cut.latest.unwrap_or(state.now) + state.settle;
    (state.settle > Duration::ZERO && state.now < until).then_some(until)
}

/// Whether finishSecret checks, after moving AWSCURRENT, that the key it promoted still works. A
/// cancel deletes a pending key only once it is older than the settle window, and a rotation's
/// `keyturn rotate` spares unheld keys younger than [`YOUNG_KEY`]: a key either could delete
/// while a finishSecret is past its checks belongs to a version at least that old. A first
/// rotation's finishSecret (its version made moments ago) makes no extra call; with the window
/// off, IAM is taken to be live and the cancel's "never used" excludes a finish under way.
pub fn finish_must_recheck(
    version_created: Option<OffsetDateTime>,
    now: OffsetDateTime,
    settle: Duration,
) -> bool {
    if settle <= Duration::ZERO {
        return false;
    }
    let threshold = YOUNG_KEY.min(settle / 2);
    version_created.is_none_or(|c| now - c >= threshold)
}

/// CreateAccessKey failed with its outcome unknown (every attempt's answer lost): the keys the user
/// has now that the list taken just before did not show, and that nobody used, are the ones those
/// attempts made. No secret holds them (nothing was stored yet), so they may go. A key the list
/// still omits (IAM's lag) stays; the caller says so.
pub fn unanswered_creates(user: &str, before: &[String], after: &[KeyFacts]) -> Vec<Retirement> {
    after
        .iter()
        .filter(|k| !before.contains(&k.id))
        .filter(|k| k.last_use.as_ref().is_some_and(|u| u.last_used.is_none()))
        .map(|k| Retirement::new(user, &k.id, RetireAction::Delete, RetireReason::NotStored))
        .collect()
}

/// What a failed PutSecretValue (or CreateSecret) left, as found by reading back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreCheck {
    /// The secret holds the new key after all (the write landed, its answer was lost).
    Holds,
    /// The secret surely does not hold it (it does not exist, or holds another key).
    DoesNotHold,
    /// The read-back failed too: whether it holds the key cannot be told.
    Unknown(String),
}

/// What to do with the new key after a failed store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterFailedStore {
    /// It was stored: the write succeeded.
    Stored,
    /// Delete it: nothing holds it.
    Retire(Retirement),
    /// Keep it: it may be held. Deleting it could leave a secret holding a deleted key.
    Keep,
}

/// A new key whose store failed is deleted only when the read-back shows no secret holds it.
pub fn after_failed_store(user: &str, key_id: &str, check: &StoreCheck) -> AfterFailedStore {
    match check {
        StoreCheck::Holds => AfterFailedStore::Stored,
        StoreCheck::Unknown(_) => AfterFailedStore::Keep,
        StoreCheck::DoesNotHold => AfterFailedStore::Retire(Retirement::new(
            user,
            key_id,
            RetireAction::Delete,
            RetireReason::NotStored,
        )),
    }
}

/// What `rotate --cancel` does with the key of the rotation in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelPlan {
    /// The pending version holds no key: only its label goes.
    NoKey,
    /// Delete the key the rotation made.
    Retire(Retirement),
    /// Leave the key and say why (the label still goes).
    Keep { key_id: String, why: String },
}

/// Cancel deletes only a key the rotation made: the secret's own user's key (listed for that user),
/// held by AWSPENDING alone, never used, made longer ago than the settle window (IAM may not show
/// testSecret's or a consumer's use of a younger key yet: a finishSecret of this rotation may be
/// under way), and not the key signing keyturn's calls. A key kept is held by no version once the
/// label goes, and the next rotation frees its slot as an unused orphan.
pub fn cancel_plan(state: &SecretState, token: &str) -> CancelPlan {
    let Some(key_id) = state.key_of_version(token) else {
        return CancelPlan::NoKey;
    };
    let keep = |why: String| CancelPlan::Keep {
        key_id: key_id.to_string(),
        why,
    };
    let user = state.user.name.as_str();
    let others: Vec<&str> = state
        .holders_of(key_id)
        .filter(|(version, _)| *version != token)
        .flat_map(|(_, labels)| labels.iter().map(String::as_str))
        .collect();
    if !others.is_empty() {
        return keep(format!("it is also held by {}", others.join(",")));
    }
    if state.signer.as_deref() == Some(key_id) {
        return keep("it signs keyturn's own IAM calls".into());
    }
    let Some(key) = state.key(key_id) else {
        return keep(format!("it is not one of user {user}'s keys"));
    };
    let settled = key.created + state.settle;
    match &key.last_use {
        Some(u) if u.last_used.is_none() && state.now < settled => keep(format!(
            "it was made at {} and IAM's last-used record may not show its uses (testSecret's, or a consumer's) before {}; the next rotation deletes it once it shows unused",
            human(key.created),
            human(settled)
        )),
        Some(u) if u.last_used.is_none() => CancelPlan::Retire(Retirement::new(
            user,
            key_id,
            RetireAction::Delete,
            RetireReason::Cancelled {
                token: token.to_string(),
            },
        )),
        Some(u) => keep(format!(
            "it was {}: something relies on it",
            describe_use(u)
        )),
        None => keep("its last use could not be read".into()),
    }
}

/// The sweep's decision for one secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SweepDecision {
    /// No previous key to retire.
    Nothing(String),
    /// The previous key is already gone: remove AWSPREVIOUS from its version.
    DropLabel { key_id: String, version: String },
    /// The previous key waits for its grace (or delete-after) period to end, or (`settling`) for
    /// IAM's last-used record to settle.
    Waiting {
        key_id: String,
        until: OffsetDateTime,
        inactive: bool,
        settling: bool,
    },
    /// Found inactive without a (valid) record of keyturn deactivating it: the wait starts now.
    RecordDeactivation {
        key_id: String,
        until: OffsetDateTime,
    },
    /// Used after the cut-over: reported, left active. `fail` when the policy says so.
    InUse {
        key_id: String,
        last_use: KeyUse,
        fail: bool,
    },
    /// The grace period is over but the switch is required (by the policy, or because the secret
    /// names restart targets) and not proven: a target has not completed a restart since the
    /// cut-over (`pending`), or the new key has not been used since it. The previous key stays
    /// active (consumers may not have moved).
    AwaitingSwitch {
        key_id: String,
        current: String,
        pending: Vec<(RestartTarget, RestartProgress)>,
        /// The cut-over the switch is awaited since.
        since: Option<OffsetDateTime>,
    },
    /// Retiring it would leave the user without a working key, or is otherwise not safe.
    Blocked { key_id: String, why: String },
    /// Deactivate or delete it.
    Retire(Retirement),
}

/// The sweep of one secret: deactivate the AWSPREVIOUS key once the grace period has passed, it
/// was not used since the cut-over, AWSCURRENT's key exists and is active and, under
/// `require_switch` or for a secret with restart targets, AWSCURRENT's key has been used since the
/// cut-over (and each target completed a restart since it); delete it once it has been
/// inactive (and unused) for the delete-after period; report one still in use.
pub fn sweep_plan(state: &SecretState, policy: &SweepPolicy) -> SweepDecision {
    let Some(version) = state.info.version_with(AWSPREVIOUS) else {
        return SweepDecision::Nothing("no AWSPREVIOUS version".into());
    };
    let Some(key_id) = state.key_of_version(version).map(str::to_string) else {
        return SweepDecision::Nothing("AWSPREVIOUS holds no key".into());
    };
    if state.current_key() == Some(key_id.as_str()) {
        return SweepDecision::Nothing("AWSPREVIOUS holds the current key".into());
    }
    let Some(key) = state.key(&key_id) else {
        return SweepDecision::DropLabel {
            key_id,
            version: version.to_string(),
        };
    };
    let current = match sweep_blocker(state, &key_id) {
        Ok(current) => current,
        Err(why) => return SweepDecision::Blocked { key_id, why },
    };
    let Some(last_use) = key.last_use.clone() else {
        return SweepDecision::Blocked {
            key_id,
            why: "its last use could not be read".into(),
        };
    };
    let cut = crate::rules::records::cutover(state);
    match key.status {
        KeyStatus::Active if used_since(&last_use, cut.earliest, own_test_from(state, &key.id)) => {
            SweepDecision::InUse {
                key_id,
                last_use,
                fail: policy.in_use == InUsePolicy::Fail,
            }
        }
        KeyStatus::Active => plan_active(state, policy, &cut, key_id, current),
        KeyStatus::Inactive => plan_inactive(state, policy, &cut, key),
    }
}

/// What keeps the sweep from retiring the previous key `key_id` whatever its use: another secret
/// of the user, AWSCURRENT without an active key of the user, or the key signing keyturn's calls.
/// `Ok` gives AWSCURRENT's key.
fn sweep_blocker<'a>(state: &'a SecretState, key_id: &str) -> Result<&'a str, String> {
    if !state.other_secrets.is_empty() {
        return Err(format!(
            "other secrets are tagged keyturn:user={} too ({}): one user, one managed secret; untag or delete the others",
            state.user.name,
            state.other_secrets.join(", ")
        ));
    }
    let current = match state.current_key().map(|c| (c, state.key(c))) {
        None => return Err("AWSCURRENT holds no key".into()),
        Some((c, None)) => {
            return Err(format!(
                "AWSCURRENT's key {c} is not one of user {}'s keys in IAM (deleted, or another user's): the previous key may be the user's last working one; put a working key of the user in AWSCURRENT first",
                state.user.name
            ))
        }
        Some((c, Some(k))) if k.status != KeyStatus::Active => {
            return Err(format!(
                "AWSCURRENT's key {c} is inactive: the previous key may be the user's last working one; reactivate the current key first"
            ))
        }
        Some((c, Some(_))) => c,
    };
    if state.signer.as_deref() == Some(key_id) {
        return Err("it signs keyturn's own IAM calls".into());
    }
    Ok(current)
}

/// An active previous key unused since the cut-over: wait out the grace period and the settle
/// window, then (with switch evidence where it is required) deactivate it.
fn plan_active(
    state: &SecretState,
    policy: &SweepPolicy,
    cut: &Cutover,
    key_id: String,
    current: &str,
) -> SweepDecision {
    let now = state.now;
    let grace_end = cut.latest.unwrap_or(now) + policy.grace;
    let settled = settling(state, cut);
    let until = settled.map_or(grace_end, |s| s.max(grace_end));
    let switched = super::policy::switch_evidence(state).is_some_and(|e| e.switched);
    let pending = super::restarts::pending(state);
    if now < until {
        SweepDecision::Waiting {
            key_id,
            until,
            inactive: false,
            settling: settled.is_some_and(|s| s > grace_end),
        }
    } else if (policy.require_switch || !state.restarts.is_empty())
        && (!switched || !pending.is_empty())
    {
        SweepDecision::AwaitingSwitch {
            key_id,
            current: current.to_string(),
            pending,
            since: cut.latest,
        }
    } else {
        SweepDecision::Retire(Retirement::new(
            &state.user.name,
            &key_id,
            RetireAction::Deactivate,
            RetireReason::GraceOver {
                cutover: cut.latest,
            },
        ))
    }
}

/// An inactive previous key: record when it was found deactivated (unless a believable record
/// says so), then delete it once the delete-after period has passed.
fn plan_inactive(
    state: &SecretState,
    policy: &SweepPolicy,
    cut: &Cutover,
    key: &KeyFacts,
) -> SweepDecision {
    let (now, key_id) = (state.now, key.id.clone());
    let grace_end = cut.latest.map(|l| l + policy.grace);
    match records::deactivated_since(&state.info, key, grace_end, now).0 {
        Deactivated::Unrecorded => SweepDecision::RecordDeactivation {
            key_id,
            until: now + policy.delete_after,
        },
        Deactivated::Since(at) if now < at + policy.delete_after => SweepDecision::Waiting {
            key_id,
            until: at + policy.delete_after,
            inactive: true,
            settling: false,
        },
        Deactivated::Since(at) => SweepDecision::Retire(Retirement::new(
            &state.user.name,
            &key_id,
            RetireAction::Delete,
            RetireReason::InactiveLongEnough { since: at },
        )),
    }
}
