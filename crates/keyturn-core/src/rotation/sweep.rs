//! Retiring previous keys after the rotation: deactivate the AWSPREVIOUS key once the grace period
//! has passed and nothing used it since the cut-over; delete it once it has been inactive for a
//! further period; report (never deactivate) one still in use.

use time::{Duration, OffsetDateTime};

use crate::error::{describe_use, parse_rfc3339, rfc3339, RotationError};
use crate::ports::{
    AccessKeys, Clock, Iam, IdentityCheck, KeyStatus, KeyUse, SecretInfo, SecretStore, VersionRef,
    AWSCURRENT, AWSPREVIOUS,
};

use super::claim::Purpose;
use super::{already_gone, aws, cutover_time, in_flight, list_keys, used_since, Opened, Rotator};

pub const GRACE_DAYS_TAG: &str = "keyturn:grace-days";
pub const DELETE_AFTER_DAYS_TAG: &str = "keyturn:delete-after-days";
pub const IN_USE_TAG: &str = "keyturn:in-use";
pub const DEACTIVATED_KEY_TAG: &str = "keyturn:deactivated-key";
pub const DEACTIVATED_AT_TAG: &str = "keyturn:deactivated-at";

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

/// The sweep's policy: the deployment's defaults, overridden per secret by tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SweepPolicy {
    pub grace: Duration,
    pub delete_after: Duration,
    pub in_use: InUsePolicy,
}

impl Default for SweepPolicy {
    fn default() -> Self {
        Self {
            grace: Duration::days(7),
            delete_after: Duration::days(7),
            in_use: InUsePolicy::Report,
        }
    }
}

impl SweepPolicy {
    /// These defaults with the secret's tags applied. A malformed tag is an error naming it.
    pub fn for_secret(&self, info: &SecretInfo) -> Result<Self, RotationError> {
        let days = |tag: &str, default: Duration| -> Result<Duration, RotationError> {
            match info.tags.get(tag) {
                None => Ok(default),
                Some(v) => v
                    .trim()
                    .parse::<u16>()
                    .map(|d| Duration::days(d.into()))
                    .map_err(|_| RotationError::BadPolicy {
                        secret: info.name.clone(),
                        tag: tag.to_string(),
                        value: v.clone(),
                    }),
            }
        };
        let in_use = match info.tags.get(IN_USE_TAG) {
            None => self.in_use,
            Some(v) => InUsePolicy::parse(v).ok_or_else(|| RotationError::BadPolicy {
                secret: info.name.clone(),
                tag: IN_USE_TAG.to_string(),
                value: v.clone(),
            })?,
        };
        Ok(Self {
            grace: days(GRACE_DAYS_TAG, self.grace)?,
            delete_after: days(DELETE_AFTER_DAYS_TAG, self.delete_after)?,
            in_use,
        })
    }
}

/// What the sweep did (or, in a dry run, would do) for one secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SweepOutcome {
    /// No previous key to retire (none, the same as current, or already deleted).
    Nothing(String),
    /// The previous key waits for its grace (or delete-after) period to end.
    Waiting {
        key_id: String,
        until: OffsetDateTime,
        inactive: bool,
    },
    /// The previous key was used after the cut-over: reported, left active.
    InUse {
        key_id: String,
        last_use: KeyUse,
    },
    Deactivated {
        key_id: String,
    },
    Deleted {
        key_id: String,
    },
}

impl SweepOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            SweepOutcome::Nothing(_) => "nothing",
            SweepOutcome::Waiting { .. } => "waiting",
            SweepOutcome::InUse { .. } => "in-use",
            SweepOutcome::Deactivated { .. } => "deactivated",
            SweepOutcome::Deleted { .. } => "deleted",
        }
    }

    pub fn describe(&self) -> String {
        match self {
            SweepOutcome::Nothing(why) => why.clone(),
            SweepOutcome::Waiting {
                key_id,
                until,
                inactive: false,
            } => {
                format!("{key_id} stays active until {}", rfc3339(*until))
            }
            SweepOutcome::Waiting {
                key_id,
                until,
                inactive: true,
            } => {
                format!("{key_id} is inactive; deleted after {}", rfc3339(*until))
            }
            SweepOutcome::InUse { key_id, last_use } => format!(
                "{key_id} is still in use ({}); move its consumers to the current key",
                describe_use(last_use)
            ),
            SweepOutcome::Deactivated { key_id } => format!("{key_id} deactivated"),
            SweepOutcome::Deleted { key_id } => format!("{key_id} deleted"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepReport {
    pub secret: String,
    pub user: Option<String>,
    pub outcome: SweepOutcome,
    pub dry_run: bool,
    /// The in-use policy says this secret's outcome is a failure.
    pub failed: bool,
}

impl<S, I, V, C> Rotator<S, I, V, C>
where
    S: SecretStore,
    I: Iam,
    V: IdentityCheck,
    C: Clock,
{
    /// Sweeps one secret. With `dry_run`, decides but changes nothing.
    pub async fn sweep(
        &self,
        secret_id: &str,
        defaults: &SweepPolicy,
        dry_run: bool,
    ) -> Result<SweepReport, RotationError> {
        let info = self.describe(secret_id).await?;
        let policy = defaults.for_secret(&info)?;
        let report = |user: Option<String>, outcome: SweepOutcome, failed: bool| SweepReport {
            secret: info.name.clone(),
            user,
            outcome,
            dry_run,
            failed,
        };
        let (Some(previous_version), Some(current_version)) = (
            info.version_with(AWSPREVIOUS).map(str::to_string),
            info.version_with(AWSCURRENT).map(str::to_string),
        ) else {
            return Ok(report(
                None,
                SweepOutcome::Nothing("no AWSPREVIOUS version".into()),
                false,
            ));
        };
        if let Some(token) = in_flight(&info) {
            return Ok(report(
                None,
                SweepOutcome::Nothing(format!(
                    "a rotation is in flight (version {token} is AWSPENDING); swept after it ends"
                )),
                false,
            ));
        }
        let o = Opened {
            secret_id,
            token: "",
            info: info.clone(),
        };
        let current = self
            .read(&o, VersionRef::Id(current_version.clone()), AWSCURRENT)
            .await?
            .ok_or_else(|| RotationError::NoCurrentVersion {
                secret: o.name().to_string(),
            })?;
        let Some(previous) = self
            .read(&o, VersionRef::Id(previous_version.clone()), AWSPREVIOUS)
            .await?
        else {
            return Ok(report(
                None,
                SweepOutcome::Nothing("AWSPREVIOUS has no value".into()),
                false,
            ));
        };
        let user = self.user_of(&o, &current)?;
        let Some(key_id) = previous.access_key_id().map(str::to_string) else {
            return Ok(report(
                Some(user),
                SweepOutcome::Nothing("AWSPREVIOUS holds no key".into()),
                false,
            ));
        };
        if Some(key_id.as_str()) == current.access_key_id() {
            return Ok(report(
                Some(user),
                SweepOutcome::Nothing("AWSPREVIOUS holds the current key".into()),
                false,
            ));
        }
        let keys_api = self.keys_for(&o, &current).await?;
        let keys = list_keys(&keys_api, &o, &user).await?;
        let Some(key) = keys.iter().find(|k| k.id == key_id) else {
            return Ok(report(
                Some(user),
                SweepOutcome::Nothing(format!("{key_id} is already deleted")),
                false,
            ));
        };
        let now = self.clock.now();
        let outcome = match key.status {
            KeyStatus::Active => {
                let last_use = keys_api.last_used(&key_id).await.map_err(|e| {
                    aws(
                        "GetAccessKeyLastUsed",
                        o.name(),
                        Some(&user),
                        Some(&key_id),
                        e,
                    )
                })?;
                let cutover = cutover_time(&info, &keys, current.access_key_id());
                if used_since(&last_use, cutover) {
                    SweepOutcome::InUse { key_id, last_use }
                } else {
                    let until = cutover.unwrap_or(now) + policy.grace;
                    if now < until {
                        SweepOutcome::Waiting {
                            key_id,
                            until,
                            inactive: false,
                        }
                    } else {
                        if !dry_run {
                            self.claim(&info, &Purpose::Sweep).await?;
                            keys_api
                                .set_status(&user, &key_id, KeyStatus::Inactive)
                                .await
                                .map_err(|e| {
                                    aws("UpdateAccessKey", o.name(), Some(&user), Some(&key_id), e)
                                })?;
                            self.record_deactivation(&o, &key_id, now).await?;
                        }
                        SweepOutcome::Deactivated { key_id }
                    }
                }
            }
            KeyStatus::Inactive => {
                let recorded = (info.tags.get(DEACTIVATED_KEY_TAG) == Some(&key_id))
                    .then(|| info.tags.get(DEACTIVATED_AT_TAG))
                    .flatten()
                    .and_then(|t| parse_rfc3339(t));
                match recorded {
                    // Deactivated by someone else: the wait starts now.
                    None => {
                        if !dry_run {
                            self.record_deactivation(&o, &key_id, now).await?;
                        }
                        SweepOutcome::Waiting {
                            key_id,
                            until: now + policy.delete_after,
                            inactive: true,
                        }
                    }
                    Some(at) if now < at + policy.delete_after => SweepOutcome::Waiting {
                        key_id,
                        until: at + policy.delete_after,
                        inactive: true,
                    },
                    Some(_) => {
                        if !dry_run {
                            self.claim(&info, &Purpose::Sweep).await?;
                            already_gone(keys_api.delete(&user, &key_id).await).map_err(|e| {
                                aws("DeleteAccessKey", o.name(), Some(&user), Some(&key_id), e)
                            })?;
                            // No label is left on a deleted key; and the next createSecret,
                            // seeing no AWSPREVIOUS, expects a free slot and creates at once.
                            self.store
                                .move_label(secret_id, AWSPREVIOUS, None, Some(&previous_version))
                                .await
                                .map_err(|e| {
                                    aws(
                                        "UpdateSecretVersionStage",
                                        o.name(),
                                        Some(&user),
                                        Some(&key_id),
                                        e,
                                    )
                                })?;
                        }
                        SweepOutcome::Deleted { key_id }
                    }
                }
            }
        };
        let failed =
            matches!(outcome, SweepOutcome::InUse { .. }) && policy.in_use == InUsePolicy::Fail;
        Ok(report(Some(user), outcome, failed))
    }

    async fn record_deactivation(
        &self,
        o: &Opened<'_>,
        key_id: &str,
        at: OffsetDateTime,
    ) -> Result<(), RotationError> {
        let tags = [
            (DEACTIVATED_KEY_TAG.to_string(), key_id.to_string()),
            (DEACTIVATED_AT_TAG.to_string(), rfc3339(at)),
        ];
        self.store
            .tag(o.secret_id, &tags)
            .await
            .map_err(|e| aws("TagResource", o.name(), None, Some(key_id), e))
    }
}
