//! setSecret, testSecret and finishSecret.

use std::time::{Duration, Instant};

use crate::error::RotationError;
use crate::event::Step;
use crate::ports::Ports;
use crate::ports::{
    ApiError, Clock, IdentityCheck, KeyEvent, SecretStore, StoredValue, VersionRef,
};
use crate::rules;
use crate::secret::{SecretText, SecretValue};
use crate::tags::{self, AWSCURRENT, AWSPENDING};
use crate::user::SecretUser;

use super::deliver::{event, Parcel};
use super::{aws, Action, Opened, Rotator, StepReport};

/// New keys are rejected until IAM has propagated them; transient faults are retried too.
fn retry_test(e: &ApiError) -> bool {
    matches!(e, ApiError::InvalidCredentials(_)) || e.is_transient()
}

impl<P: Ports> Rotator<P> {
    /// setSecret: nothing to change in IAM. A key is live once created and testSecret proves it;
    /// listing keys here would cost a call and, under IAM's read-after-write lag, raise false alarms.
    pub(super) fn set(&self, o: &Opened<'_>) -> StepReport {
        let mut report = StepReport::new(Step::Set, o.name(), Action::Confirmed);
        // For the log line only; the step reads no value.
        report.user = o.info.tags.get(tags::USER).cloned();
        report
    }

    /// testSecret: the pending key must authenticate as the user, in the secret's account, within
    /// a bounded backoff (new keys take seconds to be valid everywhere).
    pub(super) async fn test(&self, o: &Opened<'_>) -> Result<StepReport, RotationError> {
        let text = self.pending_text(o).await?.map(|s| s.text);
        if rules::is_configuration_test(text.as_ref()) {
            return self.check_configuration(o).await;
        }
        let (_, pending) = self.parse_pending(o, text)?;
        let user = self.user_of(o, &pending)?.name;
        let key = pending.key().ok_or_else(|| RotationError::NoKeyInValue {
            secret: o.name().to_string(),
            version: AWSPENDING.into(),
        })?;
        let backoff = self.settings().test_backoff;
        let started = Instant::now();
        let mut delay = backoff.initial;
        let mut waited = Duration::ZERO;
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.verifier().whoami(key).await {
                Ok(identity) => {
                    let account = o.info.account_id();
                    if !rules::identity_is_user(&identity, &user, account) {
                        return Err(RotationError::WrongIdentity {
                            secret: o.name().to_string(),
                            user,
                            key_id: key.id.clone(),
                            expected_account: account.unwrap_or_default().to_string(),
                            actual: identity.arn,
                        });
                    }
                    tracing::debug!(secret = o.name(), key_id = %key.id, attempt, elapsed_ms = started.elapsed().as_millis() as u64, "new key authenticated");
                    let mut report =
                        StepReport::new(Step::Test, o.name(), Action::Tested { attempts: attempt });
                    report.user = Some(user);
                    report.pending_key_id = Some(key.id.clone());
                    return Ok(report);
                }
                Err(e) if retry_test(&e) && attempt < backoff.attempts => {
                    tracing::info!(secret = o.name(), key_id = %key.id, attempt, delay_ms = delay.as_millis() as u64, error = %e, "new key not valid yet; retrying");
                    self.clock().sleep(delay).await;
                    waited += delay;
                    delay = (delay * 2).min(backoff.max);
                }
                Err(e) if retry_test(&e) => {
                    // Secrets Manager's configuration test may hold a copy of AWSCURRENT, whose key
                    // is then the one that failed: that test succeeds and changes nothing. Read
                    // AWSCURRENT only here, on the failure path, so a rotation pays no extra call.
                    let current = self.current_key_id(&o.info.arn).await.ok().flatten();
                    if rules::is_copy_of_current(&key.id, current.as_deref()) {
                        return self.check_configuration(o).await;
                    }
                    return Err(RotationError::KeyDoesNotAuthenticate {
                        secret: o.name().to_string(),
                        user,
                        key_id: key.id.clone(),
                        attempts: attempt,
                        waited_secs: waited.as_secs(),
                        last_error: e,
                    });
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

    /// finishSecret: record the cut-over (and the secret's user, so that "one user, one secret"
    /// finds it), then move AWSCURRENT to the token's version (Secrets Manager moves AWSPREVIOUS).
    pub(super) async fn finish(&self, o: &Opened<'_>) -> Result<StepReport, RotationError> {
        // Never promote a version that holds no key: consumers would lose access.
        let stored = self.pending_text(o).await?;
        let pending_created = stored.as_ref().and_then(|s| s.created);
        let (text, pending) = self.parse_pending(o, stored.map(|s| s.text))?;
        let key_id = pending
            .access_key_id()
            .ok_or_else(|| RotationError::NoKeyInValue {
                secret: o.name().to_string(),
                version: AWSPENDING.into(),
            })?
            .to_string();
        let user = self.user_of(o, &pending)?.name;
        let current_version = o.info.version_with(AWSCURRENT).map(str::to_string);
        // Every sink has the new key before AWSCURRENT moves: a failure here leaves AWSCURRENT on
        // the old key (both are valid) and the retry delivers again.
        let sinks = rules::sinks(&o.info, &self.settings().sinks)?;
        let targets = rules::restarts(&o.info, &self.settings().restarts)?;
        let delivered = self
            .deliver_to(
                &sinks,
                &Parcel {
                    info: &o.info,
                    text: &text,
                    value: &pending,
                    label: AWSPENDING,
                    user: &user,
                    key_id: &key_id,
                    current_moved: false,
                },
            )
            .await?;
        let previous = rules::previous_key_to_record(&o.info, o.token, &key_id);
        // The event and the owner's notice name the key it replaces; read only when one of them
        // is sent (one call).
        let told = self.settings().notices.topic.is_some() && o.info.tags.contains_key(tags::OWNER);
        let replaced = match self.settings().events || told {
            true => self.current_key_id(&o.info.arn).await.ok().flatten(),
            false => None,
        };
        // Recorded before the move: if the move then fails, the retry records it again; a time a
        // little early only makes "used since the cut-over" more cautious.
        let tags = rules::records::cutover_tags(
            o.token,
            self.clock().now(),
            &user,
            &key_id,
            previous.as_deref(),
        );
        self.store()
            .tag(&o.info.arn, &tags)
            .await
            .map_err(|e| aws("TagResource", o.name(), None, Some(&key_id), e))?;
        if let Err(e) = self
            .store()
            .move_label(
                &o.info.arn,
                AWSCURRENT,
                Some(o.token),
                current_version.as_deref(),
            )
            .await
        {
            // The move may have happened with its answer lost (a reset connection, a timeout),
            // so that the SDK's retry is refused: look before reporting a failure.
            let moved = self
                .store()
                .describe(&o.info.arn)
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
        if rules::finish_must_recheck(
            pending_created,
            self.clock().now(),
            self.settings().last_used_settle,
        ) {
            self.recheck_promoted(o, &pending, &user, current_version.as_deref())
                .await?;
        }
        // Consumers that read the key at start are restarted only now, so that they read the
        // new key; a restart that fails is reported and retried (the sweep, deliver --restart),
        // never a reason to undo the rotation.
        let restarts = self.restart_all(&o.info, &targets, &user, &key_id).await;
        let mut announced = event(
            KeyEvent::ROTATION,
            &o.info,
            &user,
            &key_id,
            replaced.filter(|r| *r != key_id),
            Some(o.token),
            &delivered,
        );
        announced.restarted = restarts.restarted.clone();
        announced.restart_failed = restarts.failed.iter().map(|(n, _)| n.clone()).collect();
        let previous_key = announced.previous_key_id.clone();
        self.announce(announced).await?;
        self.notify_rotated(super::notify::Rotated {
            info: &o.info,
            user: &user,
            key_id: &key_id,
            previous: previous_key.as_deref(),
            delivered: &delivered,
            restarts: &restarts,
        })
        .await;
        let mut report = StepReport::new(Step::Finish, o.name(), Action::Promoted);
        report.user = Some(user);
        report.pending_key_id = Some(key_id);
        report.restarts = restarts;
        Ok(report)
    }

    /// After promoting a version made long ago (a rotation resumed or retried late), make sure its
    /// key still authenticates: a `--cancel` may have deleted it while this step was past its
    /// checks. If it does not, AWSCURRENT goes back to the version it was on. One STS call, with
    /// the key itself, so it needs no IAM permission.
    async fn recheck_promoted(
        &self,
        o: &Opened<'_>,
        pending: &SecretValue,
        user: &str,
        back_to: Option<&str>,
    ) -> Result<(), RotationError> {
        let Some(key) = pending.key() else {
            return Ok(());
        };
        match self.verifier().whoami(key).await {
            Err(ApiError::InvalidCredentials(why)) => {
                let undone = match back_to {
                    Some(v) => match self
                        .store()
                        .move_label(&o.info.arn, AWSCURRENT, Some(v), Some(o.token))
                        .await
                    {
                        Ok(()) => format!("AWSCURRENT is on version {v} again"),
                        Err(e) => format!(
                            "moving AWSCURRENT back to version {v} failed ({e}): run keyturn rollback {}",
                            o.name()
                        ),
                    },
                    None => "there was no version to move AWSCURRENT back to: rotate again".into(),
                };
                Err(RotationError::RaceUndone {
                    secret: o.name().to_string(),
                    user: user.to_string(),
                    key_id: key.id.clone(),
                    why: format!(
                        "after version {} became AWSCURRENT its key no longer authenticates ({why}): another run retired it (a cancel)",
                        o.token
                    ),
                    undone,
                })
            }
            // A throttled or failing STS proves nothing either way: the key passed testSecret.
            _ => Ok(()),
        }
    }

    /// The token's AWSPENDING value as stored (with the version's creation), if it has one.
    async fn pending_text(&self, o: &Opened<'_>) -> Result<Option<StoredValue>, RotationError> {
        self.store()
            .stored(
                &o.info.arn,
                &VersionRef::IdWithLabel(o.token.to_string(), AWSPENDING),
            )
            .await
            .map_err(|e| aws("GetSecretValue", o.name(), None, None, e))
    }

    /// The pending value as stored, and parsed.
    fn parse_pending(
        &self,
        o: &Opened<'_>,
        text: Option<SecretText>,
    ) -> Result<(SecretText, SecretValue), RotationError> {
        let text = text.ok_or_else(|| RotationError::PendingValueMissing {
            secret: o.name().to_string(),
            token: o.token.to_string(),
        })?;
        let value = SecretValue::parse(&text).map_err(|reason| RotationError::BadValue {
            secret: o.name().to_string(),
            version: AWSPENDING.into(),
            reason,
        })?;
        Ok((text, value))
    }

    /// Secrets Manager's configuration test: what a rotation would read first, read now, with
    /// nothing created, deleted or written. AWSCURRENT's value must parse and name a user, the
    /// function must be able to list that user's keys (and read a trusted master), and AWSCURRENT's
    /// key must be one of them.
    async fn check_configuration(&self, o: &Opened<'_>) -> Result<StepReport, RotationError> {
        let read = self
            .read_state(o.info.clone(), None, crate::state::Needs::default())
            .await?;
        if read.current.is_none() {
            return Err(RotationError::NoCurrentVersion {
                secret: o.name().to_string(),
            });
        }
        rules::check_whose_key(&read.state)?;
        tracing::info!(secret = o.name(), user = %read.state.user.name, "configuration test: no new key to test; the secret, its user and this function's access checked");
        let mut report = StepReport::new(Step::Test, o.name(), Action::ConfigurationChecked);
        report.user = Some(read.state.user.name.clone());
        report.current_key_id = read.state.current_key().map(str::to_string);
        Ok(report)
    }

    /// The user a value of this secret belongs to, by the rules.
    fn user_of(&self, o: &Opened<'_>, value: &SecretValue) -> Result<SecretUser, RotationError> {
        rules::resolve_user(
            o.name(),
            value.user_name(),
            o.info.tags.get(tags::USER).map(String::as_str),
            self.settings().default_user.as_deref(),
        )
    }
}
