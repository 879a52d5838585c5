//! createSecret: check whose key the secret holds, make room if the rules allow, create a key,
//! store it as the token's AWSPENDING version.

use super::read::Read;
use crate::error::RotationError;
use crate::event::Step;
use crate::ports::{AccessKeys, ApiError, Clock, SecretInfo, SecretStore, VersionRef};
use crate::ports::{KeysOf, Ports};
use crate::rules::{self, AfterFailedStore, OrphanPolicy, Retirement, StoreCheck};
use crate::secret::SecretValue;
use crate::state::{Held, LastUse, Needs};
use crate::tags::{AWSCURRENT, AWSPENDING};

use super::{user_call_failed, Action, Opened, Rotator, StepReport};

/// What createSecret would do, decided before anything is written.
pub(crate) enum CreatePlan {
    /// The pending version already holds this key, and IAM has it.
    AlreadyCreated { key_id: String },
    /// Create a key, after retiring this one to free a slot.
    Create { retire: Option<Retirement> },
}

impl<P: Ports> Rotator<P> {
    /// createSecret's reads and decisions, with nothing written: the step and the dry run both
    /// start here, so a dry run meets every check a real run meets.
    pub(crate) async fn plan_create(
        &self,
        info: SecretInfo,
        token: &str,
        orphans: OrphanPolicy,
    ) -> Result<(Read<KeysOf<P>>, CreatePlan), RotationError> {
        let name = info.name.clone();
        // A sink that cannot be delivered to, or that another secret delivers to, would fail
        // finishSecret (or overwrite the other's key) after the key exists.
        self.own_sinks(&info).await?;
        // So would a restart target the deployment does not allow.
        rules::restarts(&info, &self.settings().restarts)?;
        let needs = Needs {
            who_else: true,
            ..Needs::default()
        };
        let mut read = self.read_state(info, Some(token), needs).await?;
        for holding in &read.state.holdings {
            let label = if holding.version == token {
                AWSPENDING
            } else {
                AWSCURRENT
            };
            match &holding.held {
                Held::Unreadable(reason) => {
                    return Err(RotationError::BadValue {
                        secret: name,
                        version: label.into(),
                        reason: reason.clone(),
                    })
                }
                Held::NoValue if label == AWSCURRENT => {
                    return Err(RotationError::NoCurrentVersion { secret: name })
                }
                _ => {}
            }
        }
        if read.current.is_none() {
            return Err(RotationError::NoCurrentVersion { secret: name });
        }
        if let Some(pending) = &read.pending {
            let key_id = pending
                .access_key_id()
                .ok_or_else(|| RotationError::NoKeyInValue {
                    secret: name.clone(),
                    version: AWSPENDING.into(),
                })?
                .to_string();
            rules::check_pending_is_new(&read.state, token, &key_id)?;
            if read.state.key(&key_id).is_none() {
                return Err(RotationError::PendingKeyMissing {
                    secret: name,
                    user: read.state.user.name.clone(),
                    key_id,
                    token: token.to_string(),
                });
            }
            return Ok((read, CreatePlan::AlreadyCreated { key_id }));
        }
        rules::check_whose_key(&read.state)?;
        let mut retire = None;
        if read.state.keys.len() >= 2 {
            let room = Needs {
                all_versions: true,
                last_use: LastUse::NotCurrent,
                who_else: false,
                tolerate_bad_values: false,
            };
            self.read_more(&mut read, room).await?;
            retire = rules::free_slot(&read.state, orphans)?;
        }
        Ok((read, CreatePlan::Create { retire }))
    }

    /// IAM refused a third key although the plan saw a free slot: a key appeared meanwhile. One
    /// the rules take for another run's (`rules::another_runs_key`) makes the error say so;
    /// anything else keeps IAM's own message.
    async fn third_key_refused(
        &self,
        read: &Read<KeysOf<P>>,
        secret: &str,
        why: String,
    ) -> RotationError {
        let user = read.state.user.name.as_str();
        let listed = read.keys_api.list(user).await.unwrap_or_default();
        match rules::another_runs_key(&read.state, &listed, self.clock().now()) {
            Some(k) => RotationError::AnotherRun {
                secret: secret.to_string(),
                user: user.to_string(),
                other_key: k.id.clone(),
                created: k.created,
            },
            None => user_call_failed(
                "CreateAccessKey",
                secret,
                user,
                ApiError::LimitExceeded(why),
            ),
        }
    }

    /// createSecret: carry out [`Self::plan_create`]'s plan.
    pub(super) async fn create(
        &self,
        o: &Opened<'_>,
        orphans: OrphanPolicy,
    ) -> Result<StepReport, RotationError> {
        let (read, plan) = self.plan_create(o.info.clone(), o.token, orphans).await?;
        let user = read.state.user.name.clone();
        let mut report = StepReport::new(Step::Create, o.name(), Action::AlreadyCreated);
        report.user = Some(user.clone());
        report.current_key_id = read.state.current_key().map(str::to_string);
        let retire = match plan {
            CreatePlan::AlreadyCreated { key_id } => {
                report.pending_key_id = Some(key_id);
                return Ok(report);
            }
            CreatePlan::Create { retire } => retire,
        };
        if let Some(r) = &retire {
            // Check again just before deleting: the rule stood on where the labels were (a
            // rollback may have made the previous key AWSCURRENT meanwhile).
            let now = self.describe(&o.info.arn).await?;
            if let Some(moved) = rules::labels_moved(&o.info, &now) {
                return Err(RotationError::ChangedMeanwhile {
                    secret: o.name().to_string(),
                    what: "the staging labels",
                    action: format!("delete key {} to make room", r.key_id()),
                    why: moved,
                    undone: "nothing was changed".into(),
                });
            }
            // A sink may still hold the key about to go (a rollback that stopped after
            // delivering it): the sinks get AWSCURRENT's key first.
            let sinks = rules::sinks(&o.info, &self.settings().sinks)?;
            self.deliver_current(&read, &sinks).await?;
            self.retire_key(&read.keys_api, o.name(), r).await?;
        }
        report.retired = retire;
        let new_key = match read.keys_api.create(&user).await {
            Ok(key) => key,
            Err(ApiError::LimitExceeded(why)) => {
                return Err(self.third_key_refused(&read, o.name(), why).await)
            }
            Err(e) => return Err(user_call_failed("CreateAccessKey", o.name(), &user, e)),
        };
        let new_id = new_key.id.clone();
        tracing::info!(secret = o.name(), user = %user, key_id = %new_id, "created access key");
        // `plan_create` made sure AWSCURRENT has a value.
        let value = match &read.current {
            Some(current) => current.with_key(&user, new_key),
            None => SecretValue::canonical(&user, new_key),
        }
        .render();
        report.action = Action::Created;
        report.pending_key_id = Some(new_id.clone());
        let Err(error) = self.store().put_pending(&o.info.arn, o.token, &value).await else {
            return Ok(report);
        };
        // The write may have landed with its answer lost: look before deleting the key.
        let check = match self
            .store()
            .value(
                &o.info.arn,
                &VersionRef::IdWithLabel(o.token.to_string(), AWSPENDING),
            )
            .await
        {
            Ok(Some(text)) => match SecretValue::parse(&text) {
                Ok(v) if v.access_key_id() == Some(new_id.as_str()) => StoreCheck::Holds,
                _ => StoreCheck::DoesNotHold,
            },
            Ok(None) => StoreCheck::DoesNotHold,
            Err(e) => StoreCheck::Unknown(e.to_string()),
        };
        let cleanup = match rules::after_failed_store(&user, &new_id, &check) {
            AfterFailedStore::Stored => {
                tracing::warn!(secret = o.name(), user = %user, key_id = %new_id, error = %error, "PutSecretValue reported a failure but the key was stored");
                return Ok(report);
            }
            AfterFailedStore::Retire(r) => match self.retire_key(&read.keys_api, o.name(), &r).await {
                Ok(()) => format!("key {new_id} was deleted again; the step is safe to retry"),
                Err(d) => format!(
                    "deleting key {new_id} failed too ({d}); it is held by no version and unused, \
                     so the retry of this step deletes it"
                ),
            },
            AfterFailedStore::Keep => format!(
                "whether it was stored could not be checked ({}), so key {new_id} was kept; \
                 the retry of this step finds it stored, or deletes it as an unused key held by no version",
                match &check {
                    StoreCheck::Unknown(why) => why.as_str(),
                    _ => "unknown",
                }
            ),
        };
        Err(RotationError::StoreFailed {
            secret: o.name().to_string(),
            user,
            key_id: new_id,
            cleanup,
            source: error,
        })
    }
}
