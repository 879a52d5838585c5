//! Periods and dates: when a rotation is due, when the current key took over, whether a key was
//! used since, and the sweep's policy (the deployment's defaults, overridden per secret by tags).

use time::{Duration, OffsetDateTime};

use crate::error::{parse_rfc3339, RotationError};
use crate::ports::{KeyInfo, KeyUse, SecretInfo};
use crate::rules::records::recorded_cutover;
use crate::tags::{self, AWSCURRENT, AWSPREVIOUS};

/// How long after a cut-over a keyturn run may still sign IAM calls with the key it read before
/// it (a `masterarn` master rotated while another secret's rotation was using it): the longest a
/// Lambda invocation runs.
pub const SIGNING_SETTLE: Duration = Duration::minutes(15);

/// Whether a consumer used a key after the cut-over (`cutover`: the earliest it can have been,
/// [`crate::rules::records::Cutover::earliest`]). Unknown cut-over: any use counts. keyturn's own
/// use never counts: its IAM calls signed with a master key happen before that key's successor
/// takes over, or (a run that read the master just before it rotated) within [`SIGNING_SETTLE`]
/// of the cut-over, so a last use by IAM in that window is taken for keyturn's. `tested_from`:
/// when the key's own rotation stored it, where that rotation's testSecret (an STS call within
/// [`TEST_WINDOW`]) may be its last use ([`own_test_from`]). Times compare at full precision: a
/// record rounded down (moto's whole-second version dates) only counts more uses.
pub fn used_since(
    last_use: &KeyUse,
    cutover: Option<OffsetDateTime>,
    tested_from: Option<OffsetDateTime>,
) -> bool {
    let Some(used) = last_use.last_used else {
        return false;
    };
    let service = last_use.service.as_deref();
    let keyturns_test = service == Some("sts")
        && tested_from.is_some_and(|from| used >= from && used <= from + TEST_WINDOW);
    match cutover {
        Some(cut) => {
            let keyturns_own = service == Some("iam") && used <= cut + SIGNING_SETTLE;
            used > cut && !keyturns_own && !keyturns_test
        }
        None => !keyturns_test,
    }
}

/// After a rollback AWS's own records show AWSPREVIOUS on a version newer than AWSCURRENT's: the
/// key rolled back from was made by a rotation after AWSCURRENT's version existed, so the earliest
/// bound of the cut-over precedes that rotation's testSecret, whose STS call with the key must not
/// pass for a consumer's. Then: when AWSPREVIOUS's version was made. Otherwise (a rotation's usual
/// order) `None`: the cut-over's bound already follows the previous key's own test.
pub fn own_test_from(state: &crate::state::SecretState, key_id: &str) -> Option<OffsetDateTime> {
    let created = |label: &str| {
        state
            .holdings
            .iter()
            .find(|h| h.labels.iter().any(|l| l == label))
            .and_then(|h| h.created)
    };
    if state.key_of(AWSPREVIOUS) != Some(key_id) {
        return None;
    }
    let (previous, current) = (created(AWSPREVIOUS)?, created(AWSCURRENT)?);
    // Versions made within one second of each other (a date rounded to the second) cannot be
    // ordered by AWS's records; the rollback's tag breaks the tie. A forged tag only widens the
    // exclusion to STS calls within minutes of a version made in the same second as AWSCURRENT's.
    let rolled_back = state
        .info
        .tags
        .get(tags::ROLLED_BACK_FROM)
        .map(String::as_str)
        == Some(key_id);
    (previous > current || (previous == current && rolled_back)).then_some(previous)
}

/// How long after AWSCURRENT's version was made testSecret may still be calling STS with the new
/// key (its backoff, the SDK's retries): an STS use in that window is taken for keyturn's own.
pub const TEST_WINDOW: Duration = Duration::minutes(5);

/// The evidence that consumers moved to the new key after a rotation: AWSCURRENT's key used since
/// the cut-over, beside the previous key's last use. Since it lets the sweep retire the previous
/// key, it counts only uses after the latest the cut-over can have been, and never an STS call
/// within [`TEST_WINDOW`] of the earliest: testSecret's own call with the new key comes just
/// before the cut-over, and a record moved back to the version's creation must not pass it off as
/// a consumer's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SwitchEvidence {
    pub cutover: Option<OffsetDateTime>,
    pub current_key: String,
    pub current_use: Option<KeyUse>,
    /// AWSCURRENT's key has been used since the cut-over (an unknown last use is no evidence).
    pub switched: bool,
    pub previous_key: Option<String>,
    pub previous_use: Option<KeyUse>,
}

/// The switch evidence of a rotated secret (one with an AWSPREVIOUS version holding another key of
/// the user); `None` for a secret never rotated or whose AWSCURRENT key IAM does not list.
pub fn switch_evidence(state: &crate::state::SecretState) -> Option<SwitchEvidence> {
    let current = state.current_key()?;
    let previous = state.key_of(AWSPREVIOUS).filter(|p| *p != current)?;
    let current_facts = state.key(current)?;
    let cut = crate::rules::records::cutover(state);
    let switched = switched(current_facts.last_use.as_ref(), &cut);
    Some(SwitchEvidence {
        cutover: cut.latest,
        current_key: current.to_string(),
        current_use: current_facts.last_use.clone(),
        switched,
        previous_key: Some(previous.to_string()),
        previous_use: state.key(previous).and_then(|k| k.last_use.clone()),
    })
}

/// Whether AWSCURRENT's key's last use is evidence that consumers switched: after the latest the
/// cut-over can have been, and not an STS call within [`TEST_WINDOW`] of the earliest (testSecret's).
pub fn switched(last_use: Option<&KeyUse>, cut: &crate::rules::records::Cutover) -> bool {
    last_use.is_some_and(|u| {
        let Some(used) = u.last_used else {
            return false;
        };
        let keyturns_test = u.service.as_deref() == Some("sts")
            && cut.earliest.is_none_or(|e| used <= e + TEST_WINDOW);
        cut.latest.is_some_and(|latest| used > latest) && !keyturns_test
    })
}

/// The secret's rotation period in days: the `keyturn:rotation-days` tag (a whole number of days
/// from 1 to 1000, spaces ignored), else its rotation schedule, else `default_days`.
pub fn rotation_days(info: &SecretInfo, default_days: i64) -> i64 {
    info.tags
        .get(tags::ROTATION_DAYS)
        .and_then(|d| d.trim().parse::<i64>().ok())
        .filter(|d| (1..=1000).contains(d))
        .or(info.rotation_days)
        .unwrap_or(default_days)
}

/// Whether a secret's rotation is due at `now`: Secrets Manager's next rotation date if it has one;
/// otherwise the period ([`rotation_days`]) counted from the latest of the recorded cut-over, the
/// last rotation and the enrollment. A secret with none of these has never been rotated: due.
pub fn is_due(info: &SecretInfo, now: OffsetDateTime, default_days: i64) -> bool {
    due_at(info, now, default_days).is_none_or(|due| due <= now)
}

/// When a secret's rotation falls due, as [`is_due`] counts it; `None` for a secret never
/// rotated (due now).
pub fn due_at(info: &SecretInfo, now: OffsetDateTime, default_days: i64) -> Option<OffsetDateTime> {
    if let Some(next) = info.next_rotation {
        return Some(next);
    }
    let days = rotation_days(info, default_days);
    // Tags in the future are read as now: a tag may not put a rotation off for ever.
    let enrolled = info
        .tags
        .get(tags::ENROLLED_AT)
        .and_then(|t| parse_rfc3339(t))
        .map(|t| t.min(now));
    let since = [recorded_cutover(info, now), info.last_rotated, enrolled]
        .into_iter()
        .flatten()
        .max();
    since.map(|t| t + Duration::days(days))
}

/// How long after a change keyturn made (a cut-over or an enrollment) IAM's lists may still lag
/// behind it; a key missing from a list within this window is re-read before anything is concluded.
pub const LAG_WINDOW: Duration = Duration::minutes(10);

/// Whether the secret's AWSCURRENT key was put there within [`LAG_WINDOW`] of `now` (a recorded
/// cut-over or the enrollment), so that IAM may not list it yet.
pub fn current_is_recent(info: &SecretInfo, now: OffsetDateTime) -> bool {
    let enrolled = info
        .tags
        .get(tags::ENROLLED_AT)
        .and_then(|t| parse_rfc3339(t));
    [recorded_cutover(info, now), enrolled]
        .into_iter()
        .flatten()
        .any(|t| now - t < LAG_WINDOW)
}

/// What to do about a previous key still in use after its grace period. It is never deactivated:
/// `Report` lists it, `Fail` also makes the sweep fail (an alarm, a non-zero exit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InUsePolicy {
    Report,
    Fail,
}

impl InUsePolicy {
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "report" | "warn" => Some(Self::Report),
            "fail" => Some(Self::Fail),
            _ => None,
        }
    }
}

/// The sweep's policy: the deployment's values, which a secret's tags may make stricter but never
/// laxer (whoever can tag a secret must not be able to retire its previous key sooner).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepPolicy {
    pub grace: Duration,
    pub delete_after: Duration,
    pub in_use: InUsePolicy,
    /// Keep the previous key active until the new key has been used since the cut-over (the
    /// evidence that consumers switched), whatever the grace period says.
    pub require_switch: bool,
}

impl Default for SweepPolicy {
    fn default() -> Self {
        Self {
            grace: Duration::days(7),
            delete_after: Duration::days(7),
            in_use: InUsePolicy::Report,
            require_switch: false,
        }
    }
}

impl SweepPolicy {
    /// These values with the secret's tags applied as floors: a grace or delete-after tag may only
    /// lengthen the period, an in-use tag may turn `report` into `fail` but not back, and a
    /// require-switch tag may turn the requirement on but not off. A malformed tag is an error
    /// naming it.
    pub fn for_secret(&self, info: &SecretInfo) -> Result<Self, RotationError> {
        let bad = |tag: &str, value: &String| RotationError::BadPolicy {
            secret: info.name.clone(),
            tag: tag.to_string(),
            value: value.clone(),
        };
        let days = |tag: &str, floor: Duration| -> Result<Duration, RotationError> {
            match info.tags.get(tag) {
                None => Ok(floor),
                Some(v) => v
                    .trim()
                    .parse::<u16>()
                    .map(|d| Duration::days(d.into()).max(floor))
                    .map_err(|_| bad(tag, v)),
            }
        };
        let in_use = match info.tags.get(tags::IN_USE) {
            None => self.in_use,
            Some(v) => match InUsePolicy::parse(v).ok_or_else(|| bad(tags::IN_USE, v))? {
                InUsePolicy::Fail => InUsePolicy::Fail,
                InUsePolicy::Report => self.in_use,
            },
        };
        let require_switch = match info.tags.get(tags::REQUIRE_SWITCH).map(|v| v.trim()) {
            None => self.require_switch,
            Some("true") => true,
            Some("false") => self.require_switch,
            Some(_) => return Err(bad(tags::REQUIRE_SWITCH, &info.tags[tags::REQUIRE_SWITCH])),
        };
        Ok(Self {
            grace: days(tags::GRACE_DAYS, self.grace)?,
            delete_after: days(tags::DELETE_AFTER_DAYS, self.delete_after)?,
            in_use,
            require_switch,
        })
    }
}

/// finishSecret's record of AWSPREVIOUS's key: the key the last cut-over recorded as current
/// (it is AWSCURRENT's until this cut-over moves the label). Nothing on a retry of the same
/// cut-over (the record is already written) or when no earlier record exists (the first rotation
/// of a hand-made secret: the audit then reads AWSPREVIOUS's value).
pub fn previous_key_to_record(info: &SecretInfo, token: &str, new_key: &str) -> Option<String> {
    if info.tags.get(tags::CUTOVER_VERSION).map(String::as_str) == Some(token) {
        return None;
    }
    info.tags
        .get(tags::CURRENT_KEY)
        .filter(|k| k.as_str() != new_key)
        .cloned()
}

/// The key ids a secret's tags record for AWSCURRENT and AWSPREVIOUS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedKeys {
    pub current: String,
    pub previous: Option<String>,
}

/// The recorded key ids, when they can stand in for reading the values: the record belongs to the
/// version AWSCURRENT is on now (the cut-over's version; a secret never rotated by keyturn has no
/// cut-over and its record is enroll's or adopt's), AWSCURRENT's id is one of `user_keys` (IAM's
/// list of the secret's user's keys), and where AWSPREVIOUS is on a version, its id is another of
/// them. A forged or stale tag therefore cannot make a key outside the user's look managed; `None`
/// means: read the values.
pub fn recorded_keys(info: &SecretInfo, user_keys: &[KeyInfo]) -> Option<RecordedKeys> {
    let current_version = info.version_with(AWSCURRENT)?;
    if let Some(cutover) = info.tags.get(tags::CUTOVER_VERSION) {
        if cutover != current_version {
            return None;
        }
    }
    let is_users = |id: &str| user_keys.iter().any(|k| k.id == id);
    let current = info.tags.get(tags::CURRENT_KEY).filter(|k| is_users(k))?;
    let previous = match info.version_with(AWSPREVIOUS) {
        None => None,
        Some(_) => Some(
            info.tags
                .get(tags::PREVIOUS_KEY)
                .filter(|k| *k != current && is_users(k))?
                .clone(),
        ),
    };
    Some(RecordedKeys {
        current: current.clone(),
        previous,
    })
}
