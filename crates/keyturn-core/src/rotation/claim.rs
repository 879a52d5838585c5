//! Claims: how keyturn's own runs (`keyturn rotate`, `--resume` and sweeps, from the CLI or the
//! function's schedule) keep off each other's secret.
//!
//! Secrets Manager has one operation that refuses a second writer: PutSecretValue with a
//! `ClientRequestToken` whose version already holds a different value fails with
//! `ResourceExistsException` (versions are immutable). A claim is such a version, labelled
//! `KEYTURN_CLAIM`, whose token every run derives from the secret's AWSCURRENT version id and a
//! generation number, and whose value names the run (with a nonce, so two runs never write the same
//! value). Of two runs racing for generation g, exactly one creates the version; the other reads it
//! and stops with `RotationError::Claimed`.
//!
//! A claim is released by the rotation it guards: once AWSCURRENT moves, the next run derives new
//! tokens. A claim whose run ended without moving AWSCURRENT (a sweep, a cancelled or abandoned
//! rotation) is dead once its `until` has passed or, for a rotation, once its version no longer
//! holds AWSPENDING; the next run then takes generation g + 1.
//!
//! Rotations that Secrets Manager drives do not claim (Secrets Manager serialises them itself and
//! the extra call would count against every rotation); keyturn's runs refuse while one is in flight.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::error::{parse_rfc3339, rfc3339, RotationError};
use crate::ports::{
    ApiError, Clock, Iam, IdentityCheck, SecretInfo, SecretStore, VersionRef, AWSCURRENT,
    AWSPENDING,
};
use crate::secret::SecretText;

use super::{aws, Rotator};

/// How long a rotation's claim holds when its run neither finishes nor leaves a rotation in flight
/// (it stopped between the claim and storing its key): longer than any createSecret takes.
pub const ROTATION_LEASE: time::Duration = time::Duration::minutes(5);
/// How long a sweep's claim holds: a sweep of one secret makes two calls after its claim. A
/// rotation right after a sweep waits at most this long.
pub const SWEEP_LEASE: time::Duration = time::Duration::seconds(30);
/// Generations tried before giving up (each dead claim costs one more call).
const MAX_GENERATIONS: u32 = 9;

/// What a run claims a secret for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Purpose {
    /// A new rotation whose pending version will be `token`.
    Rotate(String),
    /// Taking over the rotation in flight, version `token`, whose run stopped.
    Resume(String),
    /// Deactivating or deleting AWSPREVIOUS's key.
    Sweep,
}

/// `Claim::by` of each purpose.
const BY_ROTATE: &str = "rotate";
const BY_RESUME: &str = "resume";
const BY_SWEEP: &str = "sweep";

impl Purpose {
    fn by(&self) -> &'static str {
        match self {
            Purpose::Rotate(_) => BY_ROTATE,
            Purpose::Resume(_) => BY_RESUME,
            Purpose::Sweep => BY_SWEEP,
        }
    }

    fn token(&self) -> Option<&str> {
        match self {
            Purpose::Rotate(t) | Purpose::Resume(t) => Some(t),
            Purpose::Sweep => None,
        }
    }
}

/// The value of a claim version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claim {
    #[serde(rename = "keyturn:claim")]
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    pub at: String,
    pub until: String,
    pub nonce: String,
}

impl Claim {
    /// A version's value as a claim, if keyturn wrote it.
    fn parse(text: &SecretText) -> Option<Claim> {
        serde_json::from_str(text.expose()).ok()
    }

    /// Whether this claim still keeps other runs off the secret, as far as `info` tells: `None`
    /// when that depends on whether the claimed version was ever stored.
    fn live(&self, info: &SecretInfo, now: OffsetDateTime) -> Option<bool> {
        let Some(until) = parse_rfc3339(&self.until) else {
            return Some(false);
        };
        if now >= until {
            return Some(false);
        }
        match &self.token {
            // A rotation's claim dies with its AWSPENDING label (finished or cancelled).
            Some(t) => info
                .versions
                .get(t)
                .map(|labels| labels.iter().any(|l| l == AWSPENDING)),
            None => Some(true),
        }
    }
}

/// The token of generation `generation` of the claim on `current_version`: at most 64
/// characters whatever the version id, and the same in every process.
pub fn claim_token(current_version: &str, generation: u32) -> String {
    let digest = Sha256::digest(current_version.as_bytes());
    let hex: String = digest[..20].iter().map(|b| format!("{b:02x}")).collect();
    format!("keyturn-claim-{generation}-{hex}")
}

fn nonce(now: OffsetDateTime) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        now.unix_timestamp_nanos(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

impl<S, I, V, C> Rotator<S, I, V, C>
where
    S: SecretStore,
    I: Iam,
    V: IdentityCheck,
    C: Clock,
{
    /// Whether `c` holds the secret: a rotation's claim whose version is not labelled holds it
    /// only while that version was never stored (its run stopped before storing its key);
    /// one GetSecretValue tells.
    async fn holds(
        &self,
        info: &SecretInfo,
        c: &Claim,
        now: OffsetDateTime,
    ) -> Result<bool, RotationError> {
        if let Some(live) = c.live(info, now) {
            return Ok(live);
        }
        let token = c.token.clone().unwrap_or_default();
        Ok(self.read_version(info, token).await?.is_none())
    }

    /// GetSecretValue of the version `token` (a claim, or the version a claim names).
    async fn read_version(
        &self,
        info: &SecretInfo,
        token: String,
    ) -> Result<Option<SecretText>, RotationError> {
        self.store
            .value(&info.arn, &VersionRef::Id(token))
            .await
            .map_err(|e| aws("GetSecretValue (claim)", &info.name, None, None, e))
    }

    /// Claims the secret for `purpose` (one PutSecretValue when nobody else holds it), or fails
    /// with `RotationError::Claimed` naming the run that does. `info` is the DescribeSecret the
    /// caller decided on.
    pub async fn claim(&self, info: &SecretInfo, purpose: &Purpose) -> Result<(), RotationError> {
        let current =
            info.version_with(AWSCURRENT)
                .ok_or_else(|| RotationError::NoCurrentVersion {
                    secret: info.name.clone(),
                })?;
        let now = self.clock.now();
        let lease = match purpose {
            Purpose::Sweep => SWEEP_LEASE,
            _ => ROTATION_LEASE,
        };
        let mine = Claim {
            by: purpose.by().to_string(),
            token: purpose.token().map(str::to_string),
            at: rfc3339(now),
            until: rfc3339(now + lease),
            nonce: nonce(now),
        };
        let text = serde_json::to_string(&mine).map_err(|e| RotationError::BadEvent {
            reason: format!("claim could not be written: {e}"),
        })?;
        for generation in 1..=MAX_GENERATIONS {
            let token = claim_token(current, generation);
            let failed = match self.store.put_claim(&info.arn, &token, &text).await {
                Ok(()) => {
                    tracing::info!(secret = %info.name, by = mine.by, claim = %token, "claimed");
                    return Ok(());
                }
                Err(e) => e,
            };
            if !matches!(failed, ApiError::AlreadyExists(_)) {
                return Err(aws(
                    "PutSecretValue (claim)",
                    &info.name,
                    None,
                    None,
                    failed,
                ));
            }
            let held = self.read_version(info, token).await?;
            let Some(other) = held.as_ref().and_then(Claim::parse) else {
                // Not a claim keyturn wrote: skip that token rather than guess.
                continue;
            };
            // --resume takes over the rotation whose run stopped: its own rotation claim is
            // not in the way (another resume's claim is).
            let taken_over = matches!(purpose, Purpose::Resume(t) if other.by == BY_ROTATE && other.token.as_deref() == Some(t));
            // Sweeps act on the same key the same way: one holding it lets another through.
            let shared = *purpose == Purpose::Sweep && other.by == BY_SWEEP;
            if !taken_over && self.holds(info, &other, now).await? {
                if shared {
                    return Ok(());
                }
                return Err(RotationError::Claimed {
                    secret: info.name.clone(),
                    by: other.by,
                    at: other.at,
                    until: other.until,
                    version: other.token.unwrap_or_else(|| "none".into()),
                });
            }
        }
        Err(RotationError::Claimed {
            secret: info.name.clone(),
            by: "earlier runs".into(),
            at: format!("{MAX_GENERATIONS} claims on the current version"),
            until: "AWSCURRENT moves".into(),
            version: "none".into(),
        })
    }

    /// The rotation a stopped `keyturn rotate` claimed but never stored (it stopped between its
    /// claim and storing its key, so nothing is in flight): its token, for `--resume` to carry
    /// on under, or `None`. Reads the claims on the current version, one call each.
    pub async fn stopped_rotation(
        &self,
        info: &SecretInfo,
    ) -> Result<Option<String>, RotationError> {
        let Some(current) = info.version_with(AWSCURRENT) else {
            return Ok(None);
        };
        let now = self.clock.now();
        let mut found = None;
        for generation in 1..=MAX_GENERATIONS {
            let token = claim_token(current, generation);
            let Some(text) = self.read_version(info, token).await? else {
                break;
            };
            if let Some(c) = Claim::parse(&text) {
                let unstored = c.token.is_some() && c.live(info, now).is_none();
                if c.by == BY_ROTATE && unstored && self.holds(info, &c, now).await? {
                    found = c.token;
                }
            }
        }
        Ok(found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claim_tokens_fit_secrets_manager_and_differ_by_version_and_generation() {
        let long = "x".repeat(64);
        for v in ["a1b2", long.as_str()] {
            let t = claim_token(v, 9);
            assert!((32..=64).contains(&t.len()), "{t}");
        }
        assert_eq!(claim_token("v1", 1), claim_token("v1", 1));
        assert_ne!(claim_token("v1", 1), claim_token("v2", 1));
        assert_ne!(claim_token("v1", 1), claim_token("v1", 2));
    }

    #[test]
    fn nonces_differ_within_one_process_at_one_instant() {
        let now = OffsetDateTime::UNIX_EPOCH;
        assert_ne!(nonce(now), nonce(now));
    }
}
