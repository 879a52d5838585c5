//! Delivering a key to the secret's sinks, announcing it on EventBridge, `keyturn deliver` and
//! `keyturn rollback`.
//!
//! finishSecret delivers to every sink before it moves AWSCURRENT, so a failing sink leaves
//! AWSCURRENT on the old key (both keys are valid) and the retry delivers again; rewriting the same
//! value is harmless. The event follows the move, so that a consumer acting on it reads the new key.

use super::read::Read;
use crate::error::RotationError;
use crate::ports::{
    AccessKeys, ApiError, Clock, Delivery, KeyEvent, KeyStatus, SecretInfo, SecretStore, VersionRef,
};
use crate::ports::{KeysOf, Ports};
use crate::rules;
use crate::secret::{SecretText, SecretValue};
use crate::sink::{Sink, SinkKind};
use crate::state::Needs;
use crate::tags::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};

use super::{aws, Rotator};

/// What `keyturn deliver` did for one secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryReport {
    pub secret: String,
    pub user: String,
    pub key_id: String,
    /// The sinks delivered to, by name.
    pub sinks: Vec<String>,
    /// An event was published.
    pub announced: bool,
}

/// What `keyturn rollback` did (or, in a dry run, would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackReport {
    pub secret: String,
    pub user: String,
    /// The key AWSCURRENT holds again.
    pub key_id: String,
    /// The key it held before, now AWSPREVIOUS and left to the sweep.
    pub from_key: Option<String>,
    pub reactivated: bool,
    pub sinks: Vec<String>,
    pub announced: bool,
    pub dry_run: bool,
}

/// The key being delivered and whose it is, for the calls and their messages.
pub(crate) struct Parcel<'a> {
    pub info: &'a SecretInfo,
    pub text: &'a SecretText,
    pub value: &'a SecretValue,
    /// The label of the version it comes from (for messages).
    pub label: &'static str,
    pub user: &'a str,
    pub key_id: &'a str,
    /// AWSCURRENT already holds the key (deliver, rollback after its move): said in errors.
    pub current_moved: bool,
}

impl<P: Ports> Rotator<P> {
    /// Delivers `parcel` to every sink, in order; the first failure stops and names its sink.
    /// Calls: one PutParameter per SSM sink; per GitHub sink one GET of the public key and one PUT
    /// per secret name (two).
    pub(crate) async fn deliver_to(
        &self,
        sinks: &[Sink],
        parcel: &Parcel<'_>,
    ) -> Result<Vec<String>, RotationError> {
        let failed =
            |sink: &Sink, action: &'static str, source: ApiError| RotationError::SinkFailed {
                secret: parcel.info.name.clone(),
                sink: sink.describe(),
                action,
                user: parcel.user.to_string(),
                key_id: parcel.key_id.to_string(),
                current_moved: parcel.current_moved,
                source,
            };
        let mut delivered = Vec::with_capacity(sinks.len());
        for sink in sinks {
            match &sink.kind {
                SinkKind::Parameter { name, kms_key } => self
                    .delivery()
                    .put_parameter(name, kms_key.as_deref(), parcel.text)
                    .await
                    .map_err(|e| failed(sink, "PutParameter", e))?,
                SinkKind::GitHub {
                    scope,
                    id_name,
                    secret_name,
                } => {
                    let key = parcel
                        .value
                        .key()
                        .ok_or_else(|| RotationError::NoKeyInValue {
                            secret: parcel.info.name.clone(),
                            version: parcel.label.into(),
                        })?;
                    let sealing = self
                        .delivery()
                        .github_public_key(scope)
                        .await
                        .map_err(|e| failed(sink, "GitHub GET public-key", e))?;
                    let id = SecretText::new(key.id.clone());
                    let secret = SecretText::new(key.secret.expose());
                    for (name, value) in [(id_name, &id), (secret_name, &secret)] {
                        self.delivery()
                            .github_put_secret(scope, name, &sealing, value)
                            .await
                            .map_err(|e| failed(sink, "GitHub PUT secret", e))?;
                    }
                }
            }
            tracing::info!(secret = %parcel.info.name, sink = %sink.name, kind = sink.kind_name(), key_id = parcel.key_id, "delivered");
            delivered.push(sink.name.clone());
        }
        Ok(delivered)
    }

    /// Publishes `event` when events are enabled; `Ok(false)` when they are not.
    pub(crate) async fn announce(&self, event: KeyEvent) -> Result<bool, RotationError> {
        if !self.settings().events {
            return Ok(false);
        }
        self.delivery()
            .publish(&event)
            .await
            .map_err(|source| RotationError::EventFailed {
                secret: event.secret.clone(),
                user: event.user.clone(),
                key_id: event.key_id.clone(),
                detail_type: event.detail_type,
                source,
            })?;
        tracing::info!(secret = %event.secret, detail_type = event.detail_type, key_id = %event.key_id, "event published");
        Ok(true)
    }

    /// `keyturn deliver`: AWSCURRENT's key to every sink, again, and the event. The key must be
    /// one of the secret's user's active keys in IAM: a key that does not work is never delivered.
    pub async fn deliver(&self, secret_id: &str) -> Result<DeliveryReport, RotationError> {
        let info = self.describe(secret_id).await?;
        let sinks = self.own_sinks(&info).await?;
        let (read, key_id) = self.handed_out(&info).await?;
        let user = read.state.user.name.clone();
        let delivered = self.deliver_current(&read, &sinks).await?;
        // Check again: a rotation or rollback that moved AWSCURRENT meanwhile has delivered its own
        // key, which this delivery may just have overwritten with an older one. Then the sinks get
        // what AWSCURRENT holds now.
        if !sinks.is_empty() {
            let now = self.describe(&info.arn).await?;
            if now.version_with(AWSCURRENT) != info.version_with(AWSCURRENT) {
                let moved = rules::labels_moved(&info, &now).unwrap_or_default();
                let fixed = self.deliver_fresh_current(&read, &sinks).await;
                return Err(RotationError::ChangedMeanwhile {
                    secret: info.name.clone(),
                    what: "AWSCURRENT",
                    action: format!("deliver key {key_id}"),
                    why: moved,
                    undone: match fixed {
                        Ok(()) => "the sinks hold what AWSCURRENT holds now".into(),
                        Err(e) => {
                            format!("giving the sinks what AWSCURRENT holds now failed ({e})")
                        }
                    },
                });
            }
        }
        let announced = self
            .announce(event(
                KeyEvent::DELIVERY,
                &info,
                &user,
                &key_id,
                None,
                info.version_with(AWSCURRENT),
                &delivered,
            ))
            .await?;
        Ok(DeliveryReport {
            secret: info.name,
            user,
            key_id,
            sinks: delivered,
            announced,
        })
    }

    /// The state, and AWSCURRENT's key when it may be handed to consumers again (`deliver`,
    /// `deliver --restart`): the secret has an AWSCURRENT, it is the user's one managed secret, and
    /// the key is one of the user's active keys in IAM.
    pub(crate) async fn handed_out(
        &self,
        info: &SecretInfo,
    ) -> Result<(Read<KeysOf<P>>, String), RotationError> {
        let needs = Needs {
            who_else: true,
            ..Needs::default()
        };
        let read = self.read_state(info.clone(), None, needs).await?;
        if read.current.is_none() {
            return Err(RotationError::NoCurrentVersion {
                secret: info.name.clone(),
            });
        }
        rules::check_whose_key(&read.state)?;
        let key_id = rules::deliverable_key(&read.state)?;
        Ok((read, key_id))
    }

    /// AWSCURRENT's value, as `read` holds it, to every sink: `keyturn deliver`, and a cancel
    /// putting the sinks back on the key the secret keeps. An AWSCURRENT without a value delivers
    /// nothing.
    pub(crate) async fn deliver_current(
        &self,
        read: &Read<KeysOf<P>>,
        sinks: &[Sink],
    ) -> Result<Vec<String>, RotationError> {
        let Some(current) = read.current.as_ref() else {
            return Ok(Vec::new());
        };
        let text = current.render();
        let parcel = Parcel {
            info: &read.state.info,
            text: &text,
            value: current,
            label: AWSCURRENT,
            user: &read.state.user.name,
            key_id: current.access_key_id().unwrap_or_default(),
            current_moved: true,
        };
        self.deliver_to(sinks, &parcel).await
    }

    /// The sinks get what AWSCURRENT holds now, read afresh (another run may have moved it since
    /// `read`): after a delivery that lost a race, and when a rollback gives up. Nothing to do
    /// without sinks.
    pub(crate) async fn deliver_fresh_current(
        &self,
        read: &Read<KeysOf<P>>,
        sinks: &[Sink],
    ) -> Result<(), RotationError> {
        if sinks.is_empty() {
            return Ok(());
        }
        let info = &read.state.info;
        let Some(text) = self
            .store()
            .value(&info.arn, &VersionRef::Label(AWSCURRENT))
            .await
            .map_err(|e| aws("GetSecretValue", &info.name, None, None, e))?
        else {
            return Ok(());
        };
        let value = SecretValue::parse(&text).map_err(|reason| RotationError::BadValue {
            secret: info.name.clone(),
            version: AWSCURRENT.into(),
            reason,
        })?;
        let parcel = Parcel {
            info,
            text: &text,
            value: &value,
            label: AWSCURRENT,
            user: &read.state.user.name,
            key_id: value.access_key_id().unwrap_or_default(),
            current_moved: true,
        };
        self.deliver_to(sinks, &parcel).await.map(|_| ())
    }

    /// `keyturn rollback`: AWSCURRENT back to the AWSPREVIOUS version, as `rules::rollback_plan`
    /// allows. Order: reactivate the key if the sweep deactivated it, deliver it to the sinks,
    /// re-read the labels and the user's keys (refusing, with AWSCURRENT's key delivered back, if
    /// anything the plan stood on changed), record the rollback in the tags, move AWSCURRENT,
    /// check the key again (another run may have retired it meanwhile: AWSCURRENT then goes back),
    /// announce. A failure after the delivery puts AWSCURRENT's key back in the sinks. With
    /// `dry_run`, plans and changes nothing.
    pub async fn rollback(
        &self,
        secret_id: &str,
        dry_run: bool,
    ) -> Result<RollbackReport, RotationError> {
        let info = self.describe(secret_id).await?;
        let name = info.name.clone();
        let sinks = rules::sinks(&info, &self.settings().sinks)?;
        let needs = Needs {
            all_versions: true,
            who_else: true,
            ..Needs::default()
        };
        let read = self.read_state(info.clone(), None, needs).await?;
        // One user, one managed secret: a forged secret cannot bring back another's retired key.
        // (AWSCURRENT's key may be broken: that is what a rollback is for.)
        rules::check_one_secret(&read.state)?;
        let plan =
            rules::rollback_plan(&read.state).map_err(|why| RotationError::RollbackRefused {
                secret: name.clone(),
                why,
            })?;
        let user = read.state.user.name.clone();
        let text = self
            .store()
            .value(
                &info.arn,
                &VersionRef::IdWithLabel(plan.version.clone(), AWSPREVIOUS),
            )
            .await
            .map_err(|e| aws("GetSecretValue", &name, Some(&user), Some(&plan.key_id), e))?
            .ok_or_else(|| RotationError::RollbackRefused {
                secret: name.clone(),
                why: format!("the AWSPREVIOUS version {} has no value", plan.version),
            })?;
        let value = SecretValue::parse(&text).map_err(|reason| RotationError::BadValue {
            secret: name.clone(),
            version: AWSPREVIOUS.into(),
            reason,
        })?;
        if value.access_key_id() != Some(plan.key_id.as_str()) {
            return Err(RotationError::RollbackRefused {
                secret: name,
                why: "the AWSPREVIOUS version changed while keyturn read it; run again".into(),
            });
        }
        let mut report = RollbackReport {
            secret: name.clone(),
            user: user.clone(),
            key_id: plan.key_id.clone(),
            from_key: plan.from_key.clone(),
            reactivated: plan.reactivate,
            sinks: sinks.iter().map(|s| s.name.clone()).collect(),
            announced: self.settings().events,
            dry_run,
        };
        if dry_run {
            return Ok(report);
        }
        if plan.reactivate {
            read.keys_api
                .set_status(&user, &plan.key_id, KeyStatus::Active)
                .await
                .map_err(|e| aws("UpdateAccessKey", &name, Some(&user), Some(&plan.key_id), e))?;
            tracing::info!(secret = %name, user = %user, key_id = %plan.key_id, "reactivated for the rollback");
        }
        let parcel = Parcel {
            info: &info,
            text: &text,
            value: &value,
            label: AWSPREVIOUS,
            user: &user,
            key_id: &plan.key_id,
            current_moved: false,
        };
        report.sinks = self.deliver_to(&sinks, &parcel).await?;
        // From here on the sinks may hold the restored key: any failure gives them AWSCURRENT's back.
        match self.roll_back_labels(&read, &plan).await {
            Ok(()) => {}
            Err(e) => {
                if let Err(d) = self.deliver_fresh_current(&read, &sinks).await {
                    tracing::error!(secret = %name, error = %d, "could not give the sinks AWSCURRENT's key back after a failed rollback: run keyturn deliver");
                }
                return Err(e);
            }
        }
        tracing::info!(secret = %name, user = %user, key_id = %plan.key_id, from_key = plan.from_key.as_deref().unwrap_or(""), "rolled back");
        report.announced = self
            .announce(event(
                KeyEvent::ROLLBACK,
                &info,
                &user,
                &plan.key_id,
                plan.from_key.clone(),
                Some(&plan.version),
                &report.sinks,
            ))
            .await?;
        Ok(report)
    }

    /// The rollback's writes to the secret, each checked: re-read the labels and the user's keys
    /// (the plan stood on them), record, clear a finished rotation's AWSPENDING, move AWSCURRENT,
    /// then make sure the restored key still exists and is active. If another run deleted it in
    /// the meantime, AWSCURRENT goes back to the version it was on.
    async fn roll_back_labels(
        &self,
        read: &Read<KeysOf<P>>,
        plan: &rules::RollbackPlan,
    ) -> Result<(), RotationError> {
        let info = &read.state.info;
        let (name, user) = (info.name.as_str(), read.state.user.name.as_str());
        let changed = |what: &'static str, why: String| RotationError::ChangedMeanwhile {
            secret: name.to_string(),
            what,
            action: format!("roll back to key {}", plan.key_id),
            why,
            undone: "AWSCURRENT was not moved and the sinks hold AWSCURRENT's key again".into(),
        };
        let now = self.describe(&info.arn).await?;
        if let Some(moved) = rules::labels_moved(info, &now) {
            return Err(changed("the staging labels", moved));
        }
        match self.key_status(read, &plan.key_id).await? {
            None => {
                return Err(changed(
                    "the key to restore",
                    format!("key {} no longer exists", plan.key_id),
                ))
            }
            Some(KeyStatus::Inactive) => {
                // Another run deactivated it, or IAM's list still shows the status from before the
                // reactivation above: either way the rollback wants it active.
                read.keys_api
                    .set_status(user, &plan.key_id, KeyStatus::Active)
                    .await
                    .map_err(|e| aws("UpdateAccessKey", name, Some(user), Some(&plan.key_id), e))?;
            }
            Some(KeyStatus::Active) => {}
        }
        let record = rules::records::rollback_tags(
            info,
            &plan.version,
            &plan.key_id,
            plan.from_key.as_deref(),
            self.clock().now(),
        );
        self.store()
            .tag(&info.arn, &record)
            .await
            .map_err(|e| aws("TagResource", name, Some(user), Some(&plan.key_id), e))?;
        if plan.clear_pending {
            self.store()
                .move_label(&info.arn, AWSPENDING, None, Some(&plan.from_version))
                .await
                .map_err(|e| {
                    aws(
                        "UpdateSecretVersionStage",
                        name,
                        Some(user),
                        plan.from_key.as_deref(),
                        e,
                    )
                })?;
        }
        self.store()
            .move_label(
                &info.arn,
                AWSCURRENT,
                Some(&plan.version),
                Some(&plan.from_version),
            )
            .await
            .map_err(|e| {
                aws(
                    "UpdateSecretVersionStage",
                    name,
                    Some(user),
                    Some(&plan.key_id),
                    e,
                )
            })?;
        match self.key_status(read, &plan.key_id).await? {
            Some(KeyStatus::Active) => Ok(()),
            Some(KeyStatus::Inactive) => {
                // Deactivated after the check (a sweep that planned before the rollback): the
                // rollback's own intent is an active key, so it reactivates it.
                read.keys_api
                    .set_status(user, &plan.key_id, KeyStatus::Active)
                    .await
                    .map_err(|e| aws("UpdateAccessKey", name, Some(user), Some(&plan.key_id), e))?;
                tracing::warn!(secret = %name, key_id = %plan.key_id, "the restored key was deactivated by another run during the rollback; reactivated");
                Ok(())
            }
            None => {
                let back = self
                    .store()
                    .move_label(
                        &info.arn,
                        AWSCURRENT,
                        Some(&plan.from_version),
                        Some(&plan.version),
                    )
                    .await;
                Err(RotationError::RaceUndone {
                    secret: name.to_string(),
                    user: user.to_string(),
                    key_id: plan.key_id.clone(),
                    why: "another run deleted the restored key while the rollback moved AWSCURRENT to it".into(),
                    undone: match back {
                        Ok(()) => format!(
                            "AWSCURRENT is on version {} again and the sinks hold its key",
                            plan.from_version
                        ),
                        Err(e) => format!(
                            "moving AWSCURRENT back to version {} failed ({e}): rotate now (keyturn rotate {name})",
                            plan.from_version
                        ),
                    },
                })
            }
        }
    }

    /// The status of one of the user's keys as IAM lists it now (`None`: not listed).
    async fn key_status(
        &self,
        read: &Read<KeysOf<P>>,
        key_id: &str,
    ) -> Result<Option<KeyStatus>, RotationError> {
        let user = &read.state.user.name;
        let keys = read.keys_api.list(user).await.map_err(|e| {
            aws(
                "ListAccessKeys",
                &read.state.info.name,
                Some(user),
                Some(key_id),
                e,
            )
        })?;
        Ok(keys.into_iter().find(|k| k.id == key_id).map(|k| k.status))
    }
}

/// An event about `key_id` of `user` in `info`'s secret.
pub(crate) fn event(
    detail_type: &'static str,
    info: &SecretInfo,
    user: &str,
    key_id: &str,
    previous_key_id: Option<String>,
    version: Option<&str>,
    sinks: &[String],
) -> KeyEvent {
    KeyEvent {
        detail_type,
        secret: info.name.clone(),
        secret_arn: info.arn.clone(),
        account: info.account_id().map(str::to_string),
        user: user.to_string(),
        key_id: key_id.to_string(),
        previous_key_id,
        version: version.map(str::to_string),
        action: None,
        sinks: sinks.to_vec(),
        restarted: Vec::new(),
        restart_failed: Vec::new(),
    }
}
