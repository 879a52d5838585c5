//! keyturn's records on a secret: the cut-over (finishSecret, rollback) and the sweep's
//! deactivation. Each has one writer here (`*_tags`) and one reader here.
//!
//! A record is a tag, and whoever may tag the secret may rewrite it. So a recorded time is never
//! believed where it would let keyturn retire a key sooner:
//! - "used since the cut-over" counts from the **earliest** the cut-over can have been by AWS's own
//!   records, which no tagger can set: the AWSCURRENT version's creation in Secrets Manager and
//!   its key's creation in IAM (a version becomes AWSCURRENT only after it exists and holds its
//!   key). The record is not consulted: a later time would hide uses.
//! - the grace period, the last-used settle window and switch evidence count from the **latest**
//!   the record lets it be: the recorded time, never before that AWS bound, never after now (a
//!   record can only make keyturn wait longer).
//! - a deactivation time is believed only from the end of the grace period on (the sweep never
//!   deactivates earlier) and only when the key was not used after it; otherwise the sweep records
//!   the deactivation again, now, and the delete-after period starts over.
//!
//! A record that contradicts AWS's records (before the version existed, in the future, not a time)
//! is a doubt, which `keyturn status` names.

use time::{Duration, OffsetDateTime};

use crate::error::{human, parse_rfc3339, rfc3339};
use crate::ports::SecretInfo;
use crate::state::{KeyFacts, SecretState};
use crate::tags::{self, AWSCURRENT};

/// Clocks differ a little (keyturn's, Secrets Manager's, IAM's): a record this close to a bound is
/// not called a doubt (the values still respect the bound).
const SKEW: Duration = Duration::minutes(2);

/// When AWSCURRENT took over, as far as it can be told without believing a tag where a tag would
/// make keyturn laxer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cutover {
    /// The earliest it can have been, by AWS's records alone: uses of the previous key after this
    /// count as a consumer's. `None`: unknown, every use counts.
    pub earliest: Option<OffsetDateTime>,
    /// The latest the record lets it be: the grace period, the settle window and the switch
    /// evidence count from here.
    pub latest: Option<OffsetDateTime>,
    /// The recorded time, when the record names the current version.
    pub recorded: Option<OffsetDateTime>,
    /// A record that was not believed, and why.
    pub doubt: Option<String>,
}

/// What the tags say of the cut-over of the version AWSCURRENT is on now.
enum Recorded {
    None,
    At(OffsetDateTime),
    NotATime(String),
}

fn recorded(info: &SecretInfo) -> Recorded {
    let Some(current) = info.version_with(AWSCURRENT) else {
        return Recorded::None;
    };
    if info.tags.get(tags::CUTOVER_VERSION).map(String::as_str) != Some(current) {
        return Recorded::None;
    }
    match info.tags.get(tags::CUTOVER_AT) {
        None => Recorded::None,
        Some(t) => parse_rfc3339(t).map_or_else(|| Recorded::NotATime(t.clone()), Recorded::At),
    }
}

/// The recorded cut-over of the current version, at most `now` (a record in the future is read
/// as now). For what only needs a recent-enough time: whether a rotation is due, whether IAM's
/// lists may still lag.
pub fn recorded_cutover(info: &SecretInfo, now: OffsetDateTime) -> Option<OffsetDateTime> {
    match recorded(info) {
        Recorded::At(t) => Some(t.min(now)),
        _ => None,
    }
}

/// The cut-over bounded by `anchor`, the earliest AWS's records allow (see [`Cutover`]).
pub fn bound_cutover(
    info: &SecretInfo,
    anchor: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Cutover {
    let mut cut = Cutover {
        earliest: anchor,
        latest: anchor,
        recorded: None,
        doubt: None,
    };
    match recorded(info) {
        Recorded::None => {}
        Recorded::NotATime(v) => {
            cut.doubt = Some(format!(
                "{}={v:?} is not a time: not believed; keyturn counts from the current version's creation",
                tags::CUTOVER_AT
            ));
        }
        Recorded::At(t) => {
            cut.recorded = Some(t);
            let floor = anchor.unwrap_or(t).min(now);
            cut.latest = Some(t.clamp(floor, now));
            if t > now + SKEW {
                cut.doubt = Some(format!(
                    "{}={} lies in the future: not believed; keyturn counts the grace period from now until it is fixed",
                    tags::CUTOVER_AT,
                    human(t)
                ));
            } else if let Some(a) = anchor.filter(|a| t + SKEW < *a) {
                cut.doubt = Some(format!(
                    "{}={} is before AWSCURRENT's version and key existed ({}): not believed; keyturn counts from {}",
                    tags::CUTOVER_AT,
                    human(t),
                    human(a),
                    human(a)
                ));
            }
        }
    }
    cut
}

/// The cut-over of a state read: bounded by AWSCURRENT's version creation (Secrets Manager) and its
/// key's creation (IAM), whichever is later.
pub fn cutover(state: &SecretState) -> Cutover {
    let version_created = state
        .holdings
        .iter()
        .find(|h| h.labels.iter().any(|l| l == AWSCURRENT))
        .and_then(|h| h.created);
    let key_created = state
        .current_key()
        .and_then(|c| state.key(c))
        .map(|k| k.created);
    let anchor = [version_created, key_created].into_iter().flatten().max();
    bound_cutover(&state.info, anchor, state.now)
}

/// The tags finishSecret writes with the cut-over (in the TagResource call it makes anyway).
pub fn cutover_tags(
    token: &str,
    at: OffsetDateTime,
    user: &str,
    key_id: &str,
    previous_key: Option<&str>,
) -> Vec<(String, String)> {
    let mut out = vec![
        (tags::CUTOVER_VERSION.to_string(), token.to_string()),
        (tags::CUTOVER_AT.to_string(), rfc3339(at)),
        (tags::USER.to_string(), user.to_string()),
        (tags::CURRENT_KEY.to_string(), key_id.to_string()),
    ];
    if let Some(previous) = previous_key {
        out.push((tags::PREVIOUS_KEY.to_string(), previous.to_string()));
    }
    out
}

/// The tags a rollback writes: when, the key rolled back from, and a new cut-over (the restored
/// key took over now: the grace period and "used since" start again), clearing a deactivation
/// record of the restored key.
pub fn rollback_tags(
    info: &SecretInfo,
    version: &str,
    key_id: &str,
    from_key: Option<&str>,
    at: OffsetDateTime,
) -> Vec<(String, String)> {
    let from = from_key.unwrap_or_default().to_string();
    let mut out = vec![
        (tags::ROLLED_BACK_AT.to_string(), rfc3339(at)),
        (tags::ROLLED_BACK_FROM.to_string(), from.clone()),
        (tags::CUTOVER_VERSION.to_string(), version.to_string()),
        (tags::CUTOVER_AT.to_string(), rfc3339(at)),
        (tags::CURRENT_KEY.to_string(), key_id.to_string()),
        (tags::PREVIOUS_KEY.to_string(), from),
    ];
    if info.tags.get(tags::DEACTIVATED_KEY).map(String::as_str) == Some(key_id) {
        out.push((tags::DEACTIVATED_KEY.to_string(), String::new()));
    }
    out
}

/// The tags the sweep writes when it deactivates a key, or first finds one inactive.
pub fn deactivation_tags(key_id: &str, at: OffsetDateTime) -> Vec<(String, String)> {
    vec![
        (tags::DEACTIVATED_KEY.to_string(), key_id.to_string()),
        (tags::DEACTIVATED_AT.to_string(), rfc3339(at)),
    ]
}

/// Since when an inactive previous key counts as deactivated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deactivated {
    /// A record the bounds allow: the delete-after period counts from here.
    Since(OffsetDateTime),
    /// No record of this key that can be believed: the sweep records one now.
    Unrecorded,
}

/// The sweep's record of deactivating `key`, read within bounds: it must name the key, be a time,
/// be no earlier than the end of the grace period counted from the latest cut-over (`grace_end`;
/// the sweep never deactivates before it) and no earlier than the key's last use (a key
/// reactivated and used since, then deactivated again by someone else, starts anew). A record in
/// the future is believed (it only delays the deletion) and named as a doubt.
pub fn deactivated_since(
    info: &SecretInfo,
    key: &KeyFacts,
    grace_end: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> (Deactivated, Option<String>) {
    if info.tags.get(tags::DEACTIVATED_KEY) != Some(&key.id) {
        return (Deactivated::Unrecorded, None);
    }
    let Some(raw) = info.tags.get(tags::DEACTIVATED_AT) else {
        return (Deactivated::Unrecorded, None);
    };
    let unrecorded = |why: String| (Deactivated::Unrecorded, Some(why));
    let Some(at) = parse_rfc3339(raw) else {
        return unrecorded(format!(
            "{}={raw:?} is not a time: not believed; the sweep records the deactivation again",
            tags::DEACTIVATED_AT
        ));
    };
    if let Some(used) = key.last_use.as_ref().and_then(|u| u.last_used) {
        if used > at {
            // Stale, not forged: the key was used after it (reactivated by someone).
            return (Deactivated::Unrecorded, None);
        }
    }
    if let Some(end) = grace_end.filter(|end| at + SKEW < *end) {
        return unrecorded(format!(
            "{}={} for key {} is before its grace period ended ({}): not believed; the sweep records the deactivation again",
            tags::DEACTIVATED_AT,
            human(at),
            key.id,
            human(end)
        ));
    }
    let doubt = (at > now + SKEW).then(|| {
        format!(
            "{}={} for key {} lies in the future: the key is kept until then",
            tags::DEACTIVATED_AT,
            human(at),
            key.id
        )
    });
    (Deactivated::Since(at), doubt)
}
