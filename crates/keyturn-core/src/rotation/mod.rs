//! The four steps of Secrets Manager's rotation protocol for IAM user access keys, and the local
//! driver that plays Secrets Manager's part for `keyturn rotate`.
//!
//! Each step starts with the checks AWS's own rotation functions make (rotation enabled, the token
//! is a version, already AWSCURRENT means done, otherwise it must be AWSPENDING) and is idempotent:
//! running it again after a failure or a crash at any point never creates a second new key, loses
//! a key, or changes what AWSCURRENT holds. What a step decides, the rules (`rules`) decide.

use crate::error::RotationError;
use crate::event::{RotationEvent, Step};
use crate::ports::Ports;
use crate::ports::{
    ApiError, Clock, Delivery, Iam, IdentityCheck, Nowhere, SecretInfo, SecretStore, VersionRef,
};
use crate::rules::{self, OrphanPolicy, Retirement};
use crate::secret::SecretValue;
use crate::state::in_flight;
use crate::tags::{self, AWSCURRENT, AWSPENDING};

mod create;
pub mod deliver;
pub mod local;
pub mod notify;
pub mod read;
pub mod restart;
pub mod retire;
mod steps;
mod sweep;

pub use deliver::{DeliveryReport, RollbackReport};
pub use local::{LocalMode, LocalOutcome, LocalReport, LocalRequest};
pub use read::Read;
pub use restart::{RestartReport, RestartRequest};
pub use sweep::{PendingRestart, SweepOutcome, SweepReport, SweepTally};

pub use crate::config::{Backoff, RotationSettings};

/// What a step did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// The token's version is already AWSCURRENT: nothing to do.
    AlreadyCurrent,
    /// createSecret found the pending version already holding a live key.
    AlreadyCreated,
    /// createSecret made a key and stored it as AWSPENDING.
    Created,
    /// setSecret: nothing to change in IAM.
    Confirmed,
    /// testSecret: the key authenticated as the user after this many attempts.
    Tested { attempts: u32 },
    /// testSecret of Secrets Manager's configuration test (`RotateImmediately=false`): the
    /// pending version holds no key to test; the secret, its user and the function's access were
    /// checked, nothing was created or deleted.
    ConfigurationChecked,
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
            Action::ConfigurationChecked => "configuration-checked",
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
    /// A key deleted to make room, with the rule that allowed it.
    pub retired: Option<Retirement>,
    /// finishSecret: the restart targets restarted, and those whose restart failed.
    pub restarts: RestartReport,
}

impl StepReport {
    fn new(step: Step, secret: &str, action: Action) -> Self {
        Self {
            step,
            secret: secret.to_string(),
            user: None,
            action,
            pending_key_id: None,
            current_key_id: None,
            retired: None,
            restarts: RestartReport::default(),
        }
    }
}

/// Runs rotation steps against the ports. Delivery (sinks and events) is `Nowhere` until
/// [`Rotator::with_delivery`] names one.
pub struct Rotator<P: Ports> {
    store: P::Store,
    iam: P::Iam,
    verifier: P::Identity,
    clock: P::Clock,
    delivery: P::Delivery,
    settings: RotationSettings,
}

/// What every step knows after its opening checks.
struct Opened<'a> {
    token: &'a str,
    info: SecretInfo,
}

impl Opened<'_> {
    fn name(&self) -> &str {
        &self.info.name
    }
}

/// Who is driving the steps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Driver {
    /// Secrets Manager (the rotation function).
    SecretsManager,
    /// keyturn's own local driver: createSecret may create the token's version itself.
    Local(OrphanPolicy),
}

/// The managed secrets, as [`Rotator::managed_secrets`] splits them.
#[derive(Debug, Clone, Default)]
pub struct ManagedSecrets {
    /// Under the scope's prefix: what `--all`, `--due` and the scheduled sweep act on.
    pub inside: Vec<SecretInfo>,
    /// Tagged as managed but outside the prefix: acted on only when named.
    pub outside: Vec<SecretInfo>,
}

impl ManagedSecrets {
    /// Why each managed secret outside the prefix is left alone: one line each, the same words
    /// from the function's log and the CLI's standard error.
    pub fn skipped(&self, prefix: &str) -> Vec<String> {
        self.outside
            .iter()
            .map(|i| {
                format!(
                    "skipped {}: tagged {}={} but outside the prefix {prefix}; name it to act on it, or move it under the prefix",
                    i.name,
                    tags::MANAGED,
                    tags::MANAGED_TRUE
                )
            })
            .collect()
    }

    /// All of them, inside the prefix first (the audit reports every held key).
    pub fn all(self) -> Vec<SecretInfo> {
        let mut all = self.inside;
        all.extend(self.outside);
        all
    }
}

impl<S: SecretStore, I: Iam, V: IdentityCheck, C: Clock> Rotator<(S, I, V, C, Nowhere)> {
    pub fn new(store: S, iam: I, verifier: V, clock: C, settings: RotationSettings) -> Self {
        Self {
            store,
            iam,
            verifier,
            clock,
            delivery: Nowhere,
            settings,
        }
    }
}

impl<S: SecretStore, I: Iam, V: IdentityCheck, C: Clock, D: Delivery> Rotator<(S, I, V, C, D)> {
    /// A rotator over a bundle of ports (the adapters' `ports()`).
    pub fn from_ports(
        (store, iam, verifier, clock, delivery): (S, I, V, C, D),
        settings: RotationSettings,
    ) -> Self {
        Self {
            store,
            iam,
            verifier,
            clock,
            delivery,
            settings,
        }
    }

    /// The same rotator, delivering to sinks and publishing events through `delivery`.
    pub fn with_delivery<D2: Delivery>(self, delivery: D2) -> Rotator<(S, I, V, C, D2)> {
        Rotator {
            store: self.store,
            iam: self.iam,
            verifier: self.verifier,
            clock: self.clock,
            delivery,
            settings: self.settings,
        }
    }
}

impl<P: Ports> Rotator<P> {
    pub fn store(&self) -> &P::Store {
        &self.store
    }

    pub fn iam(&self) -> &P::Iam {
        &self.iam
    }

    pub fn verifier(&self) -> &P::Identity {
        &self.verifier
    }

    pub fn clock(&self) -> &P::Clock {
        &self.clock
    }

    pub fn delivery(&self) -> &P::Delivery {
        &self.delivery
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

    /// The key id AWSCURRENT's value holds: `None` when it has no value, or one that does not
    /// parse or names no key.
    pub(crate) async fn current_key_id(&self, arn: &str) -> Result<Option<String>, ApiError> {
        let text = self
            .store
            .value(arn, &VersionRef::Label(AWSCURRENT))
            .await?;
        Ok(text.and_then(|t| {
            SecretValue::parse(&t)
                .ok()
                .and_then(|v| v.access_key_id().map(str::to_string))
        }))
    }

    /// Every managed secret (tag `keyturn:managed=true`, matched exactly: ListSecrets matches
    /// prefixes), with ListSecrets' metadata, split by the scope: `inside` the prefix keyturn may
    /// select by itself; `outside` it names and skips.
    pub async fn managed_secrets(&self) -> Result<ManagedSecrets, RotationError> {
        let listed = self
            .store
            .list_tagged(tags::MANAGED, Some(tags::MANAGED_TRUE))
            .await
            .map_err(|source| RotationError::ListFailed {
                tag: format!("{}={}", tags::MANAGED, tags::MANAGED_TRUE),
                source,
            })?;
        let (inside, outside) = listed
            .into_iter()
            .filter(|s| rules::is_managed(&s.tags))
            .partition(|s| self.settings.scope.selects(&s.name));
        Ok(ManagedSecrets { inside, outside })
    }

    /// The sinks the other managed secrets declare (one ListSecrets), by secret: two secrets may
    /// not deliver to one place. Nothing is listed when `ours` is empty.
    pub async fn other_sinks(
        &self,
        info: &SecretInfo,
        ours: &[crate::sink::Sink],
    ) -> Result<Vec<(String, Vec<crate::sink::Sink>)>, RotationError> {
        if ours.is_empty() {
            return Ok(Vec::new());
        }
        let listed = self
            .store
            .list_tagged(tags::MANAGED, Some(tags::MANAGED_TRUE))
            .await
            .map_err(|e| aws("ListSecrets", &info.name, None, None, e))?;
        Ok(listed
            .into_iter()
            .filter(|s| rules::is_managed(&s.tags) && s.arn != info.arn && s.name != info.name)
            .map(|s| {
                let sinks = rules::sinks::declared(&s);
                (s.name, sinks)
            })
            .filter(|(_, sinks)| !sinks.is_empty())
            .collect())
    }

    /// The secret's sinks as the deployment allows them, none shared with another managed secret.
    pub async fn own_sinks(
        &self,
        info: &SecretInfo,
    ) -> Result<Vec<crate::sink::Sink>, RotationError> {
        let sinks = rules::sinks(info, &self.settings.sinks)?;
        let others = self.other_sinks(info, &sinks).await?;
        rules::check_unshared(&info.name, &sinks, &others)?;
        Ok(sinks)
    }

    /// Runs one step, as Secrets Manager invokes it; a failure is also told to the secret's owner
    /// (`rotation::notify`).
    pub async fn run(&self, event: &RotationEvent) -> Result<StepReport, RotationError> {
        let result = self.run_step(event, Driver::SecretsManager).await;
        if let Err(e) = &result {
            self.notify_failure(&event.secret_id, event.step, e).await;
        }
        result
    }

    async fn run_step(
        &self,
        event: &RotationEvent,
        driver: Driver,
    ) -> Result<StepReport, RotationError> {
        let info = self.describe(&event.secret_id).await?;
        if driver == Driver::SecretsManager
            && self.settings.require_rotation_enabled
            && !info.rotation_enabled
        {
            return Err(RotationError::RotationDisabled { secret: info.name });
        }
        let new_version = [AWSPENDING.to_string()];
        let labels: &[String] = match info.versions.get(&event.token) {
            Some(labels) => labels,
            None if driver != Driver::SecretsManager && event.step == Step::Create => {
                if let Some(other) = in_flight(&info) {
                    // Another run started it between this run's first look and now.
                    return Err(rules::in_flight(
                        &info.name,
                        other,
                        Some(self.clock().now()),
                    ));
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
            return Ok(StepReport::new(
                event.step,
                &info.name,
                Action::AlreadyCurrent,
            ));
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
            token: &event.token,
            info,
        };
        let orphans = match driver {
            Driver::SecretsManager => OrphanPolicy::AnyAge,
            Driver::Local(policy) => policy,
        };
        match event.step {
            Step::Create => self.create(&opened, orphans).await,
            Step::Set => Ok(self.set(&opened)),
            Step::Test => self.test(&opened).await,
            Step::Finish => self.finish(&opened).await,
        }
    }
}

/// An IAM call about `user` failed: IAM's NoSuchEntity there means the user does not exist.
pub(crate) fn user_call_failed(
    action: &'static str,
    secret: &str,
    user: &str,
    e: ApiError,
) -> RotationError {
    match e {
        ApiError::NotFound(_) => RotationError::NoSuchUser {
            secret: secret.to_string(),
            user: user.to_string(),
        },
        e => aws(action, secret, Some(user), None, e),
    }
}

pub(crate) fn aws(
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
