//! The four steps of Secrets Manager's rotation protocol for IAM user access keys.
//!
//! Each step starts with the checks AWS's own rotation functions make (rotation enabled, the token
//! is a version, already AWSCURRENT means done, otherwise it must be AWSPENDING) and is idempotent:
//! running it again after a failure or a crash at any point never creates a second new key, loses
//! a key, or changes what AWSCURRENT holds.

use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::error::{describe_use, parse_rfc3339, rfc3339, KeepReason, KeptKey, RotationError};
use crate::event::{RotationEvent, Step};
use crate::ports::{
    AccessKeys, ApiError, Clock, Iam, IdentityCheck, KeyInfo, KeyUse, SecretInfo, SecretStore,
    VersionRef, AWSCURRENT, AWSPENDING, AWSPREVIOUS, CLAIM_LABEL,
};
use crate::secret::{SecretText, SecretValue};

mod cancel;
pub mod claim;
mod sweep;

pub use cancel::CancelReport;
pub use sweep::{InUsePolicy, SweepOutcome, SweepPolicy, SweepReport};

/// Tag marking a secret as managed by keyturn (what `--all` and the scheduled sweep look for).
pub const MANAGED_TAG: &str = "keyturn:managed";
/// Tag recording when keyturn enrolled or adopted the secret (a start for "due" before any rotation).
pub const ENROLLED_AT_TAG: &str = "keyturn:enrolled-at";
/// Tag overriding the rotation period (days) for `rotate --due`.
pub const ROTATION_DAYS_TAG: &str = "keyturn:rotation-days";
/// Tag naming the IAM user when the value has no user field.
pub const USER_TAG: &str = "keyturn:user";
/// Tags recording the last cut-over: the version that became AWSCURRENT, and when.
pub const CUTOVER_VERSION_TAG: &str = "keyturn:cutover-version";
pub const CUTOVER_AT_TAG: &str = "keyturn:cutover-at";

/// How long to keep trying a new key before deciding it does not authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub attempts: u32,
    pub initial: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    /// 1 + 2 + 4 + 8 + 8 + 8 = 31 s of waiting over 7 attempts: IAM keys usually become valid
    /// everywhere within a few seconds.
    fn default() -> Self {
        Self {
            attempts: 7,
            initial: Duration::from_secs(1),
            max: Duration::from_secs(8),
        }
    }
}

/// Settings of a rotation, fixed for the life of the process.
#[derive(Debug, Clone, Default)]
pub struct RotationSettings {
    /// Refuse to run when rotation is not enabled on the secret (true when Secrets Manager calls
    /// the function; the CLI plays Secrets Manager's part and does not need it).
    pub require_rotation_enabled: bool,
    /// The user for values that name none and secrets without a `keyturn:user` tag
    /// (`IAM_USER_NAME`).
    pub default_user: Option<String>,
    pub test_backoff: Backoff,
}

/// What a step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The token's version is already AWSCURRENT: nothing to do.
    AlreadyCurrent,
    /// createSecret found the pending version already holding a live key.
    AlreadyCreated,
    /// createSecret made a key and stored it as AWSPENDING.
    Created,
    /// setSecret confirmed the pending key exists in IAM.
    Confirmed,
    /// testSecret: the key authenticated as the user after this many attempts.
    Tested { attempts: u32 },
    /// finishSecret moved AWSCURRENT to the token's version.
    Promoted,
}

impl Action {
    pub fn as_str(&self) -> &'static str {
        match self {
            Action::AlreadyCurrent => "already-current",
            Action::AlreadyCreated => "already-created",
            Action::Created => "created",
            Action::Confirmed => "confirmed",
            Action::Tested { .. } => "tested",
            Action::Promoted => "promoted",
        }
    }
}

/// The outcome of one step, for logs and the CLI. Holds key ids only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepReport {
    pub step: Step,
    pub secret: String,
    pub user: Option<String>,
    pub action: Action,
    /// The key the token's version holds (or now holds).
    pub pending_key_id: Option<String>,
    /// The key AWSCURRENT held when the step started.
    pub current_key_id: Option<String>,
    /// A key deleted to make room, with why it was safe.
    pub deleted_key: Option<(String, String)>,
}

/// Runs rotation steps against the ports.
pub struct Rotator<S, I, V, C> {
    store: S,
    iam: I,
    verifier: V,
    clock: C,
    settings: RotationSettings,
}

/// What every step knows after its opening checks.
struct Opened<'a> {
    secret_id: &'a str,
    token: &'a str,
    info: SecretInfo,
}

impl Opened<'_> {
    fn name(&self) -> &str {
        &self.info.name
    }
}

impl<S, I, V, C> Rotator<S, I, V, C>
where
    S: SecretStore,
    I: Iam,
    V: IdentityCheck,
    C: Clock,
{
    pub fn new(store: S, iam: I, verifier: V, clock: C, settings: RotationSettings) -> Self {
        Self {
            store,
            iam,
            verifier,
            clock,
            settings,
        }
    }

    pub fn store(&self) -> &S {
        &self.store
    }

    pub fn iam(&self) -> &I {
        &self.iam
    }

    pub fn verifier(&self) -> &V {
        &self.verifier
    }

    pub fn settings(&self) -> &RotationSettings {
        &self.settings
    }

    /// DescribeSecret, its failure named as a rotation error.
    pub async fn describe(&self, secret_id: &str) -> Result<SecretInfo, RotationError> {
        self.store
            .describe(secret_id)
            .await
            .map_err(|e| aws("DescribeSecret", secret_id, None, None, e))
    }

    /// Runs one step, as Secrets Manager invokes it.
    pub async fn run(&self, event: &RotationEvent) -> Result<StepReport, RotationError> {
        self.run_step(event, false).await
    }

    /// Runs one step for a caller playing Secrets Manager's part (the CLI): createSecret may
    /// create the token's version itself, since only RotateSecret can make a version with no value,
    /// and it refuses when another rotation is in flight.
    pub async fn run_local(&self, event: &RotationEvent) -> Result<StepReport, RotationError> {
        self.run_step(event, true).await
    }

    async fn run_step(
        &self,
        event: &RotationEvent,
        local: bool,
    ) -> Result<StepReport, RotationError> {
        let secret_id = event.secret_id.as_str();
        let info = self.describe(secret_id).await?;
        if self.settings.require_rotation_enabled && !info.rotation_enabled {
            return Err(RotationError::RotationDisabled { secret: info.name });
        }
        let new_version = [AWSPENDING.to_string()];
        let labels: &[String] = match info.versions.get(&event.token) {
            Some(labels) => labels,
            None if local && event.step == Step::Create => {
                if let Some(other) = in_flight(&info) {
                    return Err(RotationError::RotationInFlight {
                        secret: info.name.clone(),
                        token: other.to_string(),
                    });
                }
                &new_version
            }
            None => {
                return Err(RotationError::UnknownVersion {
                    secret: info.name,
                    token: event.token.clone(),
                })
            }
        };
        if labels.iter().any(|l| l == AWSCURRENT) {
            return Ok(StepReport {
                step: event.step,
                secret: info.name.clone(),
                user: None,
                action: Action::AlreadyCurrent,
                pending_key_id: None,
                current_key_id: None,
                deleted_key: None,
            });
        }
        if !labels.iter().any(|l| l == AWSPENDING) {
            return Err(RotationError::NotPending {
                secret: info.name.clone(),
                token: event.token.clone(),
                labels: if labels.is_empty() {
                    "none".into()
                } else {
                    labels.join(", ")
                },
            });
        }
        let opened = Opened {
            secret_id,
            token: &event.token,
            info,
        };
        match event.step {
            Step::Create => self.create(&opened).await,
            Step::Set => self.set(&opened).await,
            Step::Test => self.test(&opened).await,
            Step::Finish => self.finish(&opened).await,
        }
    }

    /// createSecret: make room if needed, create a key, store it as the token's AWSPENDING version.
    async fn create(&self, o: &Opened<'_>) -> Result<StepReport, RotationError> {
        let current_version =
            o.info
                .version_with(AWSCURRENT)
                .ok_or_else(|| RotationError::NoCurrentVersion {
                    secret: o.name().to_string(),
                })?;
        let current = self
            .read(o, VersionRef::Id(current_version.to_string()), AWSCURRENT)
            .await?
            .ok_or_else(|| RotationError::NoCurrentVersion {
                secret: o.name().to_string(),
            })?;
        let user = self.user_of(o, &current)?;
        let pending = self
            .read(
                o,
                VersionRef::IdWithLabel(o.token.to_string(), AWSPENDING),
                AWSPENDING,
            )
            .await?;
        let keys_api = self.keys_for(o, &current).await?;
        let mut report = StepReport {
            step: Step::Create,
            secret: o.name().to_string(),
            user: Some(user.clone()),
            action: Action::AlreadyCreated,
            pending_key_id: None,
            current_key_id: current.access_key_id().map(str::to_string),
            deleted_key: None,
        };

        if let Some(pending) = pending {
            let keys = list_keys(&keys_api, o, &user).await?;
            let key_id = pending
                .access_key_id()
                .ok_or_else(|| RotationError::NoKeyInValue {
                    secret: o.name().to_string(),
                    version: AWSPENDING.into(),
                })?;
            if keys.iter().any(|k| k.id == key_id) {
                report.pending_key_id = Some(key_id.to_string());
                return Ok(report);
            }
            return Err(RotationError::PendingKeyMissing {
                secret: o.name().to_string(),
                user,
                key_id: key_id.to_string(),
                token: o.token.to_string(),
            });
        }

        // With an AWSPREVIOUS version the user most likely holds two keys: list them and make
        // room first. Without one (a first rotation, or the sweep retired the previous key) the
        // user most likely holds one: create straight away, and list only if IAM says the user
        // is full. Either way the common case makes no call it does not need.
        let expect_two = o.info.version_with(AWSPREVIOUS).is_some();
        let first_try = if expect_two {
            None
        } else {
            match keys_api.create(&user).await {
                Ok(key) => Some(key),
                Err(ApiError::LimitExceeded(_)) => None,
                Err(e) => return Err(user_call_failed("CreateAccessKey", o, &user, e)),
            }
        };
        let new_key = match first_try {
            Some(key) => key,
            None => {
                let keys = list_keys(&keys_api, o, &user).await?;
                if keys.len() >= 2 {
                    let deleted = self
                        .make_room(
                            o,
                            &keys_api,
                            &user,
                            &keys,
                            current_version,
                            current.access_key_id(),
                        )
                        .await?;
                    report.deleted_key = Some(deleted);
                }
                keys_api
                    .create(&user)
                    .await
                    .map_err(|e| aws("CreateAccessKey", o.name(), Some(&user), None, e))?
            }
        };
        let new_id = new_key.id.clone();
        tracing::info!(secret = o.name(), user = %user, key_id = %new_id, "created access key");
        let value = current.with_key(&user, new_key).render();
        report.action = Action::Created;
        report.pending_key_id = Some(new_id.clone());
        match self.store.put_pending(o.secret_id, o.token, &value).await {
            Ok(()) => Ok(report),
            Err(e) => self
                .undo_create(o, &keys_api, &user, &new_id, e)
                .await
                .map(|()| report),
        }
    }

    /// Storing a new key failed: find out whether it was stored after all, and if it surely was
    /// not, delete the key so no unmanaged key is left behind.
    async fn undo_create(
        &self,
        o: &Opened<'_>,
        keys_api: &impl AccessKeys,
        user: &str,
        key_id: &str,
        error: ApiError,
    ) -> Result<(), RotationError> {
        let stored = self
            .store
            .value(
                o.secret_id,
                &VersionRef::IdWithLabel(o.token.to_string(), AWSPENDING),
            )
            .await;
        let stored_id = match &stored {
            Ok(Some(text)) => SecretValue::parse(text)
                .ok()
                .and_then(|v| v.access_key_id().map(str::to_string)),
            _ => None,
        };
        if stored_id.as_deref() == Some(key_id) {
            tracing::warn!(secret = o.name(), user, key_id, error = %error, "PutSecretValue reported a failure but the key was stored");
            return Ok(());
        }
        let cleanup = match stored {
            Err(check) => format!(
                "whether it was stored could not be checked ({check}), so key {key_id} was kept; \
                 the retry of this step finds it stored, or deletes it as an unused key held by no version"
            ),
            Ok(_) => match keys_api.delete(user, key_id).await {
                Ok(()) => {
                    tracing::info!(secret = o.name(), user, key_id, "deleted the new key that could not be stored");
                    format!("key {key_id} was deleted again; the step is safe to retry")
                }
                Err(d) => format!(
                    "deleting key {key_id} failed too ({d}); it is held by no version and unused, \
                     so the retry of this step deletes it"
                ),
            },
        };
        Err(RotationError::StoreFailed {
            secret: o.name().to_string(),
            user: user.to_string(),
            key_id: key_id.to_string(),
            cleanup,
            source: error,
        })
    }

    /// The user has two keys: delete the one not held by AWSCURRENT if the rules allow it.
    /// Returns the deleted key and why it was safe.
    async fn make_room(
        &self,
        o: &Opened<'_>,
        keys_api: &impl AccessKeys,
        user: &str,
        keys: &[KeyInfo],
        current_version: &str,
        current_key_id: Option<&str>,
    ) -> Result<(String, String), RotationError> {
        // Which labelled versions hold which keys (usually just AWSPREVIOUS: one call).
        let mut holders: Vec<(String, String)> = Vec::new();
        for (version, labels) in &o.info.versions {
            // A claim version never holds a key (see `claim`).
            if version == current_version
                || version == o.token
                || labels.iter().all(|l| l == CLAIM_LABEL)
            {
                continue;
            }
            let label = labels.join(",");
            match self
                .store
                .value(o.secret_id, &VersionRef::Id(version.clone()))
                .await
            {
                Ok(Some(text)) => match SecretValue::parse(&text) {
                    Ok(v) => {
                        if let Some(id) = v.access_key_id() {
                            holders.push((id.to_string(), label));
                        }
                    }
                    // An unreadable old version cannot be shown to hold nothing: refuse to guess.
                    Err(reason) => {
                        return Err(RotationError::BadValue {
                            secret: o.name().to_string(),
                            version: label,
                            reason,
                        })
                    }
                },
                Ok(None) => {}
                Err(e) => return Err(aws("GetSecretValue", o.name(), Some(user), None, e)),
            }
        }
        let cutover = cutover_time(&o.info, keys, current_key_id);

        let mut kept = Vec::new();
        let mut orphan = None;
        let mut previous = None;
        for key in keys
            .iter()
            .filter(|k| Some(k.id.as_str()) != current_key_id)
        {
            let last_use = keys_api.last_used(&key.id).await.map_err(|e| {
                aws(
                    "GetAccessKeyLastUsed",
                    o.name(),
                    Some(user),
                    Some(&key.id),
                    e,
                )
            })?;
            let held_by = holders
                .iter()
                .find(|(id, _)| *id == key.id)
                .map(|(_, l)| l.clone());
            let keep = |reason| KeptKey {
                key_id: key.id.clone(),
                held_by: held_by.clone(),
                last_use: last_use.clone(),
                reason,
            };
            match held_by.as_deref() {
                Some(AWSPREVIOUS) => {
                    if used_since(&last_use, cutover) {
                        kept.push(keep(KeepReason::UsedSinceCutover));
                    } else {
                        let why = format!(
                            "AWSPREVIOUS key {}, not used since the cut-over at {}",
                            describe_use(&last_use),
                            cutover.map(rfc3339).unwrap_or_else(|| "?".into())
                        );
                        previous.get_or_insert((key.id.clone(), why));
                    }
                }
                Some(_) => kept.push(keep(KeepReason::HeldByOtherLabel)),
                None if last_use.last_used.is_none() => {
                    orphan.get_or_insert((
                        key.id.clone(),
                        "held by no version and never used (left by an interrupted rotation)"
                            .to_string(),
                    ));
                }
                None => kept.push(keep(KeepReason::UnmanagedAndUsed)),
            }
        }
        let Some((key_id, why)) = orphan.or(previous) else {
            return Err(RotationError::NoRoomForKey {
                secret: o.name().to_string(),
                user: user.to_string(),
                kept,
            });
        };
        already_gone(keys_api.delete(user, &key_id).await)
            .map_err(|e| aws("DeleteAccessKey", o.name(), Some(user), Some(&key_id), e))?;
        tracing::info!(secret = o.name(), user, key_id = %key_id, reason = %why, "deleted access key to make room");
        Ok((key_id, why))
    }

    /// setSecret: nothing to change in IAM (a key is live once created); confirm it exists.
    async fn set(&self, o: &Opened<'_>) -> Result<StepReport, RotationError> {
        let pending = self.pending_value(o).await?;
        let user = self.user_of(o, &pending)?;
        let key_id = key_id_of(o, &pending)?;
        let master_source = match pending.master_arn() {
            // Self-rotation: the IAM calls are signed with AWSCURRENT's key, not the pending one.
            Some(m) if self.is_this_secret(o, m) => Some(
                self.read(o, VersionRef::Label(AWSCURRENT), AWSCURRENT)
                    .await?
                    .ok_or_else(|| RotationError::NoCurrentVersion {
                        secret: o.name().to_string(),
                    })?,
            ),
            _ => None,
        };
        let keys_api = self
            .keys_for(o, master_source.as_ref().unwrap_or(&pending))
            .await?;
        let keys = list_keys(&keys_api, o, &user).await?;
        if !keys.iter().any(|k| k.id == key_id) {
            return Err(RotationError::PendingKeyMissing {
                secret: o.name().to_string(),
                user,
                key_id: key_id.to_string(),
                token: o.token.to_string(),
            });
        }
        Ok(StepReport {
            step: Step::Set,
            secret: o.name().to_string(),
            user: Some(user),
            action: Action::Confirmed,
            pending_key_id: Some(key_id.to_string()),
            current_key_id: None,
            deleted_key: None,
        })
    }

    /// testSecret: the pending key must authenticate as the user, in the secret's account.
    async fn test(&self, o: &Opened<'_>) -> Result<StepReport, RotationError> {
        let pending = self.pending_value(o).await?;
        let user = self.user_of(o, &pending)?;
        let key = pending.key().ok_or_else(|| RotationError::NoKeyInValue {
            secret: o.name().to_string(),
            version: AWSPENDING.into(),
        })?;
        let backoff = self.settings.test_backoff;
        let started = Instant::now();
        let mut delay = backoff.initial;
        let mut waited = Duration::ZERO;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.verifier.whoami(key).await {
                Ok(identity) => {
                    let expected_account = o.info.account_id().unwrap_or_default();
                    if !names_user(&identity.arn, &user)
                        || (!expected_account.is_empty() && identity.account != expected_account)
                    {
                        return Err(RotationError::WrongIdentity {
                            secret: o.name().to_string(),
                            user,
                            key_id: key.id.clone(),
                            expected_account: expected_account.to_string(),
                            actual: identity.arn,
                        });
                    }
                    tracing::debug!(secret = o.name(), key_id = %key.id, attempt, elapsed_ms = started.elapsed().as_millis() as u64, "new key authenticated");
                    return Ok(StepReport {
                        step: Step::Test,
                        secret: o.name().to_string(),
                        user: Some(user),
                        action: Action::Tested { attempts: attempt },
                        pending_key_id: Some(key.id.clone()),
                        current_key_id: None,
                        deleted_key: None,
                    });
                }
                Err(e) if retry_test(&e) && attempt < backoff.attempts => {
                    tracing::info!(secret = o.name(), key_id = %key.id, attempt, delay_ms = delay.as_millis() as u64, error = %e, "new key not valid yet; retrying");
                    self.clock.sleep(delay).await;
                    waited += delay;
                    delay = (delay * 2).min(backoff.max);
                }
                Err(e) if retry_test(&e) => {
                    return Err(RotationError::KeyDoesNotAuthenticate {
                        secret: o.name().to_string(),
                        user,
                        key_id: key.id.clone(),
                        attempts: attempt,
                        waited_secs: waited.as_secs(),
                        last_error: e,
                    })
                }
                Err(e) => {
                    return Err(aws(
                        "GetCallerIdentity",
                        o.name(),
                        Some(&user),
                        Some(&key.id),
                        e,
                    ))
                }
            }
        }
    }

    /// finishSecret: record the cut-over, then move AWSCURRENT to the token's version (Secrets
    /// Manager moves AWSPREVIOUS).
    async fn finish(&self, o: &Opened<'_>) -> Result<StepReport, RotationError> {
        // Never promote a version that holds no key: consumers would lose access.
        let pending = self.pending_value(o).await?;
        let key_id = key_id_of(o, &pending)?.to_string();
        let current_version = o.info.version_with(AWSCURRENT).map(str::to_string);
        // Recorded before the move: if the move then fails, the retry records it again; a time a
        // little early only makes "used since the cut-over" more cautious.
        let tags = [
            (CUTOVER_VERSION_TAG.to_string(), o.token.to_string()),
            (CUTOVER_AT_TAG.to_string(), rfc3339(self.clock.now())),
        ];
        self.store
            .tag(o.secret_id, &tags)
            .await
            .map_err(|e| aws("TagResource", o.name(), None, Some(&key_id), e))?;
        if let Err(e) = self
            .store
            .move_label(
                o.secret_id,
                AWSCURRENT,
                Some(o.token),
                current_version.as_deref(),
            )
            .await
        {
            // The move may have happened with its answer lost (a reset connection, a timeout),
            // so that the SDK's retry is refused: look before reporting a failure.
            let moved = self
                .store
                .describe(o.secret_id)
                .await
                .ok()
                .is_some_and(|i| i.labels_of(o.token).iter().any(|l| l == AWSCURRENT));
            if !moved {
                return Err(aws(
                    "UpdateSecretVersionStage",
                    o.name(),
                    None,
                    Some(&key_id),
                    e,
                ));
            }
            tracing::warn!(secret = o.name(), token = o.token, error = %e, "UpdateSecretVersionStage reported a failure but AWSCURRENT had moved");
        }
        Ok(StepReport {
            step: Step::Finish,
            secret: o.name().to_string(),
            user: pending.user_name().map(str::to_string),
            action: Action::Promoted,
            pending_key_id: Some(key_id),
            current_key_id: None,
            deleted_key: None,
        })
    }

    /// Reads and parses one version. `Ok(None)` when it does not exist or has no value yet.
    async fn read(
        &self,
        o: &Opened<'_>,
        version: VersionRef,
        label: &str,
    ) -> Result<Option<SecretValue>, RotationError> {
        let text = self
            .store
            .value(o.secret_id, &version)
            .await
            .map_err(|e| aws("GetSecretValue", o.name(), None, None, e))?;
        text.map(|t| parse_value(o.name(), label, &t)).transpose()
    }

    async fn pending_value(&self, o: &Opened<'_>) -> Result<SecretValue, RotationError> {
        self.read(
            o,
            VersionRef::IdWithLabel(o.token.to_string(), AWSPENDING),
            AWSPENDING,
        )
        .await?
        .ok_or_else(|| RotationError::PendingValueMissing {
            secret: o.name().to_string(),
            token: o.token.to_string(),
        })
    }

    /// The user a value belongs to: its own user field, else the `keyturn:user` tag, else
    /// `IAM_USER_NAME`.
    fn user_of(&self, o: &Opened<'_>, value: &SecretValue) -> Result<String, RotationError> {
        value
            .user_name()
            .map(str::to_string)
            .or_else(|| o.info.tags.get(USER_TAG).cloned())
            .or_else(|| self.settings.default_user.clone())
            .filter(|u| !u.is_empty())
            .ok_or_else(|| RotationError::NoUserName {
                secret: o.name().to_string(),
            })
    }

    fn is_this_secret(&self, o: &Opened<'_>, id: &str) -> bool {
        id == o.info.arn || id == o.info.name || id == o.secret_id
    }

    /// The identity that makes IAM calls for this secret: the process's own, or the AWSCURRENT key
    /// of the secret named by `masterarn` (which may be this secret: a self-rotating user).
    async fn keys_for(
        &self,
        o: &Opened<'_>,
        value: &SecretValue,
    ) -> Result<I::Keys, RotationError> {
        let Some(master) = value.master_arn() else {
            return Ok(self.iam.own());
        };
        let bad = |reason: String| RotationError::BadMaster {
            secret: o.name().to_string(),
            master: master.to_string(),
            reason,
        };
        if self.is_this_secret(o, master) {
            let key = value
                .key()
                .ok_or_else(|| bad("its AWSCURRENT value holds no key".into()))?;
            return Ok(self.iam.signed_with(key));
        }
        let text = self
            .store
            .value(master, &VersionRef::Label(AWSCURRENT))
            .await
            .map_err(|e| bad(format!("reading it failed: {e}")))?
            .ok_or_else(|| bad("it has no AWSCURRENT value".into()))?;
        let parsed = SecretValue::parse(&text).map_err(|e| bad(e.to_string()))?;
        let key = parsed
            .key()
            .ok_or_else(|| bad("its AWSCURRENT value holds no key".into()))?;
        Ok(self.iam.signed_with(key))
    }
}

async fn list_keys(
    keys_api: &impl AccessKeys,
    o: &Opened<'_>,
    user: &str,
) -> Result<Vec<KeyInfo>, RotationError> {
    keys_api
        .list(user)
        .await
        .map_err(|e| user_call_failed("ListAccessKeys", o, user, e))
}

/// An IAM call about `user` failed: IAM's NoSuchEntity there means the user does not exist.
fn user_call_failed(
    action: &'static str,
    o: &Opened<'_>,
    user: &str,
    e: ApiError,
) -> RotationError {
    match e {
        ApiError::NotFound(_) => RotationError::NoSuchUser {
            secret: o.name().to_string(),
            user: user.to_string(),
        },
        e => aws(action, o.name(), Some(user), None, e),
    }
}

fn key_id_of<'v>(o: &Opened<'_>, value: &'v SecretValue) -> Result<&'v str, RotationError> {
    value
        .access_key_id()
        .ok_or_else(|| RotationError::NoKeyInValue {
            secret: o.name().to_string(),
            version: AWSPENDING.into(),
        })
}

pub(crate) fn parse_value(
    secret: &str,
    label: &str,
    text: &SecretText,
) -> Result<SecretValue, RotationError> {
    SecretValue::parse(text).map_err(|reason| RotationError::BadValue {
        secret: secret.to_string(),
        version: label.to_string(),
        reason,
    })
}

/// The token of a rotation in flight: a version labelled AWSPENDING that is not AWSCURRENT.
pub fn in_flight(info: &SecretInfo) -> Option<&str> {
    info.versions
        .iter()
        .find(|(_, l)| l.iter().any(|x| x == AWSPENDING) && !l.iter().any(|x| x == AWSCURRENT))
        .map(|(id, _)| id.as_str())
}

/// The cut-over finishSecret recorded, if it names the version that is AWSCURRENT now.
pub fn recorded_cutover(info: &SecretInfo) -> Option<OffsetDateTime> {
    let current = info.version_with(AWSCURRENT)?;
    (info.tags.get(CUTOVER_VERSION_TAG).map(String::as_str) == Some(current))
        .then(|| info.tags.get(CUTOVER_AT_TAG))
        .flatten()
        .and_then(|t| parse_rfc3339(t))
}

/// When AWSCURRENT took over: the recorded cut-over; otherwise the current key's creation (always
/// earlier, so "used since" errs towards keeping a key).
pub fn cutover_time(
    info: &SecretInfo,
    keys: &[KeyInfo],
    current_key_id: Option<&str>,
) -> Option<OffsetDateTime> {
    recorded_cutover(info).or_else(|| {
        keys.iter()
            .find(|k| Some(k.id.as_str()) == current_key_id)
            .map(|k| k.created)
    })
}

/// Whether a secret's rotation is due at `now`: Secrets Manager's next rotation date if it has one;
/// otherwise the period (tag `keyturn:rotation-days`, the secret's rotation rules, or
/// `default_days`) counted from the latest of the recorded cut-over, the last rotation and the
/// enrollment. A secret with none of these has never been rotated by keyturn: due.
pub fn is_due(info: &SecretInfo, now: OffsetDateTime, default_days: i64) -> bool {
    if let Some(next) = info.next_rotation {
        return next <= now;
    }
    let days = info
        .tags
        .get(ROTATION_DAYS_TAG)
        .and_then(|d| d.trim().parse::<i64>().ok())
        .or(info.rotation_days)
        .unwrap_or(default_days);
    let enrolled = info
        .tags
        .get(ENROLLED_AT_TAG)
        .and_then(|t| parse_rfc3339(t));
    let since = [recorded_cutover(info), info.last_rotated, enrolled]
        .into_iter()
        .flatten()
        .max();
    match since {
        Some(t) => t + time::Duration::days(days) <= now,
        None => true,
    }
}

/// Whether a key was used after the cut-over. Unknown cut-over: any use counts.
pub fn used_since(last_use: &KeyUse, cutover: Option<OffsetDateTime>) -> bool {
    match (last_use.last_used, cutover) {
        (None, _) => false,
        (Some(used), Some(cut)) => used > cut,
        (Some(_), None) => true,
    }
}

/// Whether `arn` (`arn:aws:iam::ACCOUNT:user/PATH/NAME`) is IAM user `user`.
fn names_user(arn: &str, user: &str) -> bool {
    let resource = arn.splitn(6, ':').nth(5).unwrap_or_default();
    resource.starts_with("user/") && resource.rsplit('/').next() == Some(user)
}

/// New keys are rejected until IAM has propagated them; transient faults are retried too.
fn retry_test(e: &ApiError) -> bool {
    matches!(e, ApiError::InvalidCredentials(_)) || e.is_transient()
}

/// A DeleteAccessKey that finds the key gone has what it wanted: its own earlier attempt (whose
/// answer was lost, so the SDK retried) or another run deleted it.
fn already_gone(result: Result<(), ApiError>) -> Result<(), ApiError> {
    match result {
        Err(ApiError::NotFound(_)) => Ok(()),
        other => other,
    }
}

fn aws(
    action: &'static str,
    secret: &str,
    user: Option<&str>,
    key_id: Option<&str>,
    source: ApiError,
) -> RotationError {
    RotationError::Aws {
        action,
        secret: secret.to_string(),
        user: user.map(str::to_string),
        key_id: key_id.map(str::to_string),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_user_reads_paths() {
        assert!(names_user("arn:aws:iam::123456789012:user/app1", "app1"));
        assert!(names_user("arn:aws:iam::123456789012:user/ci/app1", "app1"));
        assert!(!names_user("arn:aws:iam::123456789012:user/app10", "app1"));
        assert!(!names_user(
            "arn:aws:sts::123456789012:assumed-role/app1/s",
            "app1"
        ));
        assert!(!names_user("garbage", "app1"));
    }

    #[test]
    fn due_counts_the_period_from_the_latest_record() {
        use std::collections::BTreeMap;
        let day0 = time::macros::datetime!(2026-01-01 0:00 UTC);
        let info = |tags: &[(&str, String)], next: Option<OffsetDateTime>| SecretInfo {
            arn: "arn:aws:secretsmanager:us-east-1:1:secret:s".into(),
            name: "s".into(),
            rotation_enabled: false,
            versions: BTreeMap::from([("v1".to_string(), vec![AWSCURRENT.to_string()])]),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            last_rotated: None,
            next_rotation: next,
            rotation_days: None,
        };
        let at = |d: i64| day0 + time::Duration::days(d);
        assert!(is_due(&info(&[], None), day0, 30), "never rotated");
        let enrolled = info(&[(ENROLLED_AT_TAG, rfc3339(day0))], None);
        assert!(!is_due(&enrolled, at(29), 30));
        assert!(is_due(&enrolled, at(30), 30));
        let rotated = info(
            &[
                (ENROLLED_AT_TAG, rfc3339(day0)),
                (CUTOVER_VERSION_TAG, "v1".into()),
                (CUTOVER_AT_TAG, rfc3339(at(20))),
            ],
            None,
        );
        assert!(!is_due(&rotated, at(40), 30), "counted from the cut-over");
        let stale_cutover = info(
            &[
                (ENROLLED_AT_TAG, rfc3339(day0)),
                (CUTOVER_VERSION_TAG, "v0".into()),
                (CUTOVER_AT_TAG, rfc3339(at(20))),
            ],
            None,
        );
        assert!(
            is_due(&stale_cutover, at(40), 30),
            "a cut-over of another version does not count"
        );
        let short = info(
            &[
                (ENROLLED_AT_TAG, rfc3339(day0)),
                (ROTATION_DAYS_TAG, "7".into()),
            ],
            None,
        );
        assert!(is_due(&short, at(7), 30));
        assert!(
            !is_due(&info(&[], Some(at(5))), at(4), 30),
            "Secrets Manager's date wins"
        );
        assert!(is_due(&info(&[], Some(at(5))), at(5), 30));
    }

    #[test]
    fn used_since_is_strict_and_cautious() {
        let t = OffsetDateTime::UNIX_EPOCH;
        let used = |s| KeyUse {
            last_used: Some(t + Duration::from_secs(s)),
            ..KeyUse::default()
        };
        assert!(!used_since(&KeyUse::default(), Some(t)));
        assert!(!used_since(&used(0), Some(t)));
        assert!(used_since(&used(1), Some(t)));
        assert!(used_since(&used(0), None));
    }
}
