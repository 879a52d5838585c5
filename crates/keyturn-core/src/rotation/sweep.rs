//! Retiring previous keys after the rotation, as `rules::sweep_plan` decides: deactivate the
//! AWSPREVIOUS key once the grace period has passed, nothing used it since the cut-over and
//! AWSCURRENT's key exists and is active; delete it once it has been inactive for a further period;
//! report (never deactivate) one still in use. The sweep writes tags and labels, never a value.

use time::OffsetDateTime;

use super::read::Read;
use crate::error::{describe_use, human, RotationError};
use crate::ports::{AccessKeys, KeyEvent, KeyStatus, KeyUse, SecretInfo, SecretStore};
use crate::ports::{KeysOf, Ports};
use crate::rules::{RetireAction, Retirement, SweepDecision, SweepPolicy};
use crate::state::{in_flight, LastUse, Needs};
use crate::tags::AWSPREVIOUS;

use super::deliver::event;
use super::RestartReport;
use super::{aws, Rotator};

/// What the sweep did (or, in a dry run, would do) for one secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SweepOutcome {
    /// No previous key to retire (none, the same as current, or a rotation in flight).
    Nothing(String),
    /// The previous key is already deleted: the AWSPREVIOUS label was removed from its version.
    Cleared {
        key_id: String,
    },
    /// The previous key waits for its grace (or delete-after) period to end, or (`settling`) for
    /// IAM's last-used record to settle.
    Waiting {
        key_id: String,
        until: OffsetDateTime,
        inactive: bool,
        settling: bool,
    },
    /// The previous key was used after the cut-over: reported, left active.
    InUse {
        key_id: String,
        last_use: KeyUse,
    },
    /// Past its grace period, kept active until the switch is proven: every restart target
    /// completed a restart since the cut-over (`pending` lists those that have not) and the new
    /// key was used since it.
    AwaitingSwitch {
        key_id: String,
        current: String,
        pending: Vec<PendingRestart>,
        /// The cut-over the switch is awaited since (the age of the wait).
        since: Option<OffsetDateTime>,
    },
    /// Retiring it would not be safe (for example AWSCURRENT's key is missing or inactive).
    Blocked {
        key_id: String,
        why: String,
    },
    Deactivated {
        key_id: String,
    },
    Deleted {
        key_id: String,
    },
    /// What the plan stood on changed before the sweep acted (another run moved a label or changed
    /// a key): nothing was done; the next sweep decides afresh.
    Changed {
        key_id: String,
        why: String,
    },
    /// The key was deactivated, then found to have become AWSCURRENT (a rollback ran meanwhile):
    /// the sweep reactivated it and reports the race.
    Raced {
        key_id: String,
        why: String,
    },
}

impl SweepOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            SweepOutcome::Nothing(_) => "nothing",
            SweepOutcome::Cleared { .. } => "cleared",
            SweepOutcome::Waiting { .. } => "waiting",
            SweepOutcome::InUse { .. } => "in-use",
            SweepOutcome::AwaitingSwitch { .. } => "awaiting-switch",
            SweepOutcome::Blocked { .. } => "blocked",
            SweepOutcome::Deactivated { .. } => "deactivated",
            SweepOutcome::Deleted { .. } => "deleted",
            SweepOutcome::Changed { .. } => "changed",
            SweepOutcome::Raced { .. } => "raced",
        }
    }

    /// The key the outcome is about, if any.
    pub fn key_id(&self) -> Option<&str> {
        match self {
            SweepOutcome::Nothing(_) => None,
            SweepOutcome::Cleared { key_id }
            | SweepOutcome::Waiting { key_id, .. }
            | SweepOutcome::InUse { key_id, .. }
            | SweepOutcome::AwaitingSwitch { key_id, .. }
            | SweepOutcome::Blocked { key_id, .. }
            | SweepOutcome::Deactivated { key_id }
            | SweepOutcome::Deleted { key_id }
            | SweepOutcome::Changed { key_id, .. }
            | SweepOutcome::Raced { key_id, .. } => Some(key_id),
        }
    }

    /// What a dry run would do, in the future tense.
    pub fn describe_planned(&self) -> String {
        match self {
            SweepOutcome::Deactivated { key_id } => format!("would deactivate {key_id}"),
            SweepOutcome::Deleted { key_id } => format!("would delete {key_id}"),
            SweepOutcome::Cleared { key_id } => format!(
                "would remove AWSPREVIOUS from {key_id}'s version ({key_id} is already deleted)"
            ),
            other => other.describe(),
        }
    }

    pub fn describe(&self) -> String {
        match self {
            SweepOutcome::Nothing(why) => why.clone(),
            SweepOutcome::Cleared { key_id } => {
                format!("{key_id} is already deleted; AWSPREVIOUS no longer points at it")
            }
            SweepOutcome::Waiting {
                key_id,
                until,
                inactive: false,
                settling: false,
            } => format!("{key_id} stays active until {}", human(*until)),
            SweepOutcome::Waiting {
                key_id,
                until,
                inactive: false,
                settling: true,
            } => format!(
                "{key_id} stays active until {}: IAM's last-used record may not show its recent uses before then (KEYTURN_LAST_USED_SETTLE_SECONDS)",
                human(*until)
            ),
            SweepOutcome::Waiting {
                key_id,
                until,
                inactive: true,
                ..
            } => format!("{key_id} is inactive; deleted after {}", human(*until)),
            SweepOutcome::InUse { key_id, last_use } => format!(
                "{key_id} is still in use ({}); move its consumers to the current key",
                describe_use(last_use)
            ),
            SweepOutcome::AwaitingSwitch {
                key_id,
                current,
                pending,
                ..
            } if pending.is_empty() => format!(
                "{key_id} stays active: its grace period is over, but the current key {current} has not been used since the cut-over (the switch is required); move the consumers to the current key"
            ),
            SweepOutcome::AwaitingSwitch { key_id, pending, .. } => format!(
                "{key_id} stays active until every consumer restarted onto the current key: {}",
                pending
                    .iter()
                    .map(PendingRestart::describe)
                    .collect::<Vec<_>>()
                    .join("; ")
            ),
            SweepOutcome::Blocked { key_id, why } => format!("{key_id} kept: {why}"),
            SweepOutcome::Deactivated { key_id } => format!("{key_id} deactivated"),
            SweepOutcome::Deleted { key_id } => format!("{key_id} deleted"),
            SweepOutcome::Changed { key_id, why } => format!(
                "{key_id} left as it is: the secret changed while the sweep was about to act ({why}); the next sweep decides afresh"
            ),
            SweepOutcome::Raced { key_id, why } => format!(
                "{key_id} was deactivated, then {why}: the sweep reactivated it; check the secret with keyturn status"
            ),
        }
    }
}

/// A restart target that has not completed a restart since the cut-over, and what the sweep did
/// about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingRestart {
    pub name: String,
    /// The tag's value.
    pub spec: String,
    /// `needed`, `running`, `failed` or `unknown` (`rules::RestartProgress`).
    pub progress: &'static str,
    /// The progress in words.
    pub detail: String,
    /// The sweep restarted it again (`Some(Ok)`), or tried and failed (`Some(Err(why))`).
    pub retried: Option<Result<(), String>>,
}

impl PendingRestart {
    fn describe(&self) -> String {
        let retried = match &self.retried {
            None => String::new(),
            Some(Ok(())) => "; restarted again".into(),
            Some(Err(e)) => format!("; restarting it again failed: {e}"),
        };
        format!("{} ({}): {}{retried}", self.name, self.spec, self.detail)
    }
}

/// What the scheduled sweep did over many secrets, for the function's answer: how many secrets,
/// the count of each outcome, and every failure in words. (The CLI shows a row per secret instead,
/// and its exit code counts those rows, an account's failure among them.)
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SweepTally {
    pub secrets: usize,
    pub outcomes: std::collections::BTreeMap<&'static str, u64>,
    pub failures: Vec<String>,
}

impl SweepTally {
    pub fn add(&mut self, result: &Result<SweepReport, RotationError>) {
        self.secrets += 1;
        match result {
            Ok(r) => {
                *self.outcomes.entry(r.outcome.as_str()).or_default() += 1;
                if r.failed {
                    self.failures
                        .push(format!("{}: {}", r.secret, r.outcome.describe()));
                }
            }
            Err(e) => {
                *self.outcomes.entry("failed").or_default() += 1;
                self.failures.push(e.to_string());
            }
        }
    }

    pub fn failed(&self) -> bool {
        !self.failures.is_empty()
    }

    /// "2 of 40 secrets: …" naming every failure.
    pub fn failure_summary(&self) -> String {
        format!(
            "{} of {} secrets: {}",
            self.failures.len(),
            self.secrets,
            self.failures.join("; ")
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepReport {
    pub secret: String,
    pub user: Option<String>,
    pub outcome: SweepOutcome,
    pub dry_run: bool,
    /// The outcome is a failure: a key in use under the `fail` policy, or a blocked retirement.
    pub failed: bool,
}

impl<P: Ports> Rotator<P> {
    /// The sweep over many secrets: the one loop the function and `keyturn sweep` share. At most
    /// `concurrency` secrets at a time; the results come in the secrets' order. `start` is asked
    /// as each secret is about to begin, and what it gives is held while that secret is swept (the
    /// CLI's progress and signal bookkeeping); `None` leaves the secret untouched (a signal came):
    /// its result is `None`.
    pub async fn sweep_each<G>(
        &self,
        secrets: Vec<String>,
        policy: &SweepPolicy,
        dry_run: bool,
        concurrency: usize,
        start: impl Fn(&str) -> Option<G>,
    ) -> Vec<(String, Option<Result<SweepReport, RotationError>>)> {
        use futures_util::StreamExt;
        let start = &start;
        futures_util::stream::iter(secrets)
            .map(|secret| async move {
                let Some(held) = start(&secret) else {
                    return (secret, None);
                };
                let result = self.sweep(&secret, policy, dry_run).await;
                drop(held);
                (secret, Some(result))
            })
            .buffered(concurrency.max(1))
            .collect()
            .await
    }

    /// Sweeps one secret. With `dry_run`, decides but changes nothing.
    pub async fn sweep(
        &self,
        secret_id: &str,
        defaults: &SweepPolicy,
        dry_run: bool,
    ) -> Result<SweepReport, RotationError> {
        let info = self.describe(secret_id).await?;
        self.sweep_described(info, defaults, dry_run).await
    }

    /// [`Rotator::sweep`] of a secret already described.
    pub(crate) async fn sweep_described(
        &self,
        info: SecretInfo,
        defaults: &SweepPolicy,
        dry_run: bool,
    ) -> Result<SweepReport, RotationError> {
        if !dry_run {
            if let Some(reminder) = self.due_notice(&info) {
                self.notify(&reminder).await;
            }
        }
        let policy = defaults.for_secret(&info)?;
        let report = |user: Option<String>, outcome: SweepOutcome, failed: bool| SweepReport {
            secret: info.name.clone(),
            user,
            outcome,
            dry_run,
            failed,
        };
        if info.version_with(AWSPREVIOUS).is_none() {
            return Ok(report(
                None,
                SweepOutcome::Nothing("no AWSPREVIOUS version".into()),
                false,
            ));
        }
        if let Some(token) = in_flight(&info) {
            return Ok(report(
                None,
                SweepOutcome::Nothing(format!(
                    "a rotation is in flight (version {token} is AWSPENDING); swept after it ends"
                )),
                false,
            ));
        }
        let targets = crate::rules::restarts(&info, &self.settings().restarts)?;
        let mut read = self
            .read_state(
                info.clone(),
                None,
                sweep_needs(&policy, !targets.is_empty()),
            )
            .await?;
        read.state.restarts = self.restart_facts(&targets).await;
        let user = read.state.user.name.clone();
        let decision = crate::rules::sweep_plan(&read.state, &policy);
        let retried = self
            .retry_restarts(&read, &decision, dry_run)
            .await
            .unwrap_or_default();
        let (outcome, failed) = self
            .carry_out(&info, &read, decision, &retried, dry_run)
            .await?;
        if !dry_run {
            if let Some(in_use) = self.in_use_notice(&info, Some(&user), &outcome) {
                self.notify(&in_use).await;
            }
        }
        Ok(report(Some(user), outcome, failed))
    }

    /// Does what the rules decided (nothing on a dry run but say what it would do): the outcome,
    /// and whether it fails the sweep.
    async fn carry_out(
        &self,
        info: &SecretInfo,
        read: &Read<KeysOf<P>>,
        decision: SweepDecision,
        retried: &RestartReport,
        dry_run: bool,
    ) -> Result<(SweepOutcome, bool), RotationError> {
        let name = info.name.as_str();
        let now = read.state.now;
        Ok(match decision {
            SweepDecision::Nothing(why) => (SweepOutcome::Nothing(why), false),
            SweepDecision::Waiting {
                key_id,
                until,
                inactive,
                settling,
            } => (
                SweepOutcome::Waiting {
                    key_id,
                    until,
                    inactive,
                    settling,
                },
                false,
            ),
            SweepDecision::InUse {
                key_id,
                last_use,
                fail,
            } => (SweepOutcome::InUse { key_id, last_use }, fail),
            SweepDecision::AwaitingSwitch {
                key_id,
                current,
                pending,
                since,
            } => {
                let pending: Vec<PendingRestart> = pending
                    .into_iter()
                    .map(|(target, progress)| PendingRestart {
                        retried: retried.outcome(&target.name),
                        name: target.name,
                        spec: target.spec,
                        progress: progress.as_str(),
                        detail: progress.describe(),
                    })
                    .collect();
                // A restart that keeps failing is the sweep's failure (and the error alarm's).
                let failed = pending.iter().any(|p| matches!(p.retried, Some(Err(_))));
                (
                    SweepOutcome::AwaitingSwitch {
                        key_id,
                        current,
                        pending,
                        since,
                    },
                    failed,
                )
            }
            SweepDecision::Blocked { key_id, why } => (SweepOutcome::Blocked { key_id, why }, true),
            SweepDecision::DropLabel { key_id, version } => {
                if !dry_run {
                    self.drop_previous(&info.arn, name, &version, &key_id)
                        .await?;
                }
                (SweepOutcome::Cleared { key_id }, false)
            }
            SweepDecision::RecordDeactivation { key_id, until } => {
                if !dry_run {
                    self.record_deactivation(&info.arn, name, &key_id, now)
                        .await?;
                }
                (
                    SweepOutcome::Waiting {
                        key_id,
                        until,
                        inactive: true,
                        settling: false,
                    },
                    false,
                )
            }
            SweepDecision::Retire(r) if dry_run => {
                let key_id = r.key_id().to_string();
                let outcome = match r.action() {
                    RetireAction::Deactivate => SweepOutcome::Deactivated { key_id },
                    RetireAction::Delete => SweepOutcome::Deleted { key_id },
                };
                (outcome, false)
            }
            SweepDecision::Retire(r) => self.retire_previous(info, read, &r).await?,
        })
    }

    /// While the previous key is kept for the consumers (waiting out the grace period, in use, or
    /// awaiting the switch), restarts again every target without a restart since the cut-over or
    /// whose restart failed: a restart that failed in finishSecret is retried here. Never when the
    /// plan is blocked (AWSCURRENT's key may not work: a restart would take the consumer down) or
    /// on a dry run. Each retried target with its failure, if any.
    async fn retry_restarts(
        &self,
        read: &Read<KeysOf<P>>,
        decision: &SweepDecision,
        dry_run: bool,
    ) -> Option<RestartReport> {
        if dry_run || read.state.restarts.is_empty() {
            return None;
        }
        let current = match decision {
            SweepDecision::AwaitingSwitch { current, .. } => current.as_str(),
            SweepDecision::Waiting {
                inactive: false, ..
            }
            | SweepDecision::InUse { .. } => read.state.current_key()?,
            _ => return None,
        };
        let pending = crate::rules::restarts::pending(&read.state);
        Some(
            self.restart_pending(&read.state.info, &pending, &read.state.user.name, current)
                .await,
        )
    }

    /// Retires the previous key as `r` says: re-check, give the sinks AWSCURRENT's key, deactivate
    /// or delete, check after a deactivation that the key did not become AWSCURRENT meanwhile
    /// (undoing it if it did), record, announce.
    async fn retire_previous(
        &self,
        info: &SecretInfo,
        read: &Read<KeysOf<P>>,
        r: &Retirement,
    ) -> Result<(SweepOutcome, bool), RotationError> {
        let (name, user, now) = (info.name.as_str(), &read.state.user.name, read.state.now);
        let key_id = r.key_id().to_string();
        if let Some(why) = self.recheck(read, r).await? {
            return Ok((SweepOutcome::Changed { key_id, why }, false));
        }
        // A sink may still hold the key about to go (a rollback that stopped after delivering
        // it): the sinks get AWSCURRENT's key first.
        let sinks = crate::rules::sinks(info, &self.settings().sinks)?;
        self.deliver_current(read, &sinks).await?;
        self.retire_key(&read.keys_api, name, r).await?;
        let outcome = match r.action() {
            RetireAction::Deactivate => {
                // Check after: a rollback may have made the key AWSCURRENT between the re-read
                // and the deactivation. Never leave AWSCURRENT on it inactive.
                if let Some(why) = self.became_current(info, &key_id).await? {
                    self.reactivate_after_race(read, name, &key_id).await?;
                    return Ok((SweepOutcome::Raced { key_id, why }, true));
                }
                self.record_deactivation(&info.arn, name, &key_id, now)
                    .await?;
                SweepOutcome::Deactivated { key_id }
            }
            RetireAction::Delete => {
                let version = info.version_with(AWSPREVIOUS).unwrap_or_default();
                self.drop_previous(&info.arn, name, version, &key_id)
                    .await?;
                SweepOutcome::Deleted { key_id }
            }
        };
        let mut retired = event(
            KeyEvent::RETIREMENT,
            info,
            user,
            r.key_id(),
            None,
            None,
            &[],
        );
        retired.action = Some(outcome.as_str());
        self.announce(retired).await?;
        Ok((outcome, false))
    }

    /// The sweep's re-read just before it retires a key: the labels must be where the plan found
    /// them, the key still the user's with the status the plan saw, and AWSCURRENT's key still
    /// active. `Some(why)` when something changed.
    async fn recheck(
        &self,
        read: &Read<KeysOf<P>>,
        r: &crate::rules::Retirement,
    ) -> Result<Option<String>, RotationError> {
        let info = &read.state.info;
        let now = self.describe(&info.arn).await?;
        if let Some(moved) = crate::rules::labels_moved(info, &now) {
            return Ok(Some(moved));
        }
        let listed = read
            .keys_api
            .list(&read.state.user.name)
            .await
            .map_err(|e| {
                aws(
                    "ListAccessKeys",
                    &info.name,
                    Some(&read.state.user.name),
                    Some(r.key_id()),
                    e,
                )
            })?;
        let status = |id: &str| listed.iter().find(|k| k.id == id).map(|k| k.status);
        let planned = read.state.key(r.key_id()).map(|k| k.status);
        if status(r.key_id()) != planned {
            return Ok(Some(format!(
                "key {} is now {}",
                r.key_id(),
                status(r.key_id()).map_or("deleted", KeyStatus::as_str)
            )));
        }
        if let Some(current) = read.state.current_key() {
            if status(current) != Some(KeyStatus::Active) {
                return Ok(Some(format!(
                    "AWSCURRENT's key {current} is now {}",
                    status(current).map_or("deleted", KeyStatus::as_str)
                )));
            }
        }
        Ok(None)
    }

    /// After a deactivation: whether the key's version has become AWSCURRENT meanwhile.
    async fn became_current(
        &self,
        info: &crate::ports::SecretInfo,
        key_id: &str,
    ) -> Result<Option<String>, RotationError> {
        let Some(version) = info.version_with(AWSPREVIOUS) else {
            return Ok(None);
        };
        let now = self.describe(&info.arn).await?;
        Ok(now
            .labels_of(version)
            .iter()
            .any(|l| l == crate::tags::AWSCURRENT)
            .then(|| {
                format!("its version {version} became AWSCURRENT (a rollback ran meanwhile); key {key_id} must stay active")
            }))
    }

    async fn reactivate_after_race(
        &self,
        read: &Read<KeysOf<P>>,
        name: &str,
        key_id: &str,
    ) -> Result<(), RotationError> {
        let user = &read.state.user.name;
        read.keys_api
            .set_status(user, key_id, KeyStatus::Active)
            .await
            .map_err(|e| aws("UpdateAccessKey", name, Some(user), Some(key_id), e))?;
        tracing::warn!(secret = %name, user = %user, key_id, "deactivated a key that became AWSCURRENT meanwhile; reactivated it");
        Ok(())
    }

    /// Removes AWSPREVIOUS from the version whose key is gone (no label is left on a deleted key;
    /// and the next createSecret, seeing no AWSPREVIOUS, expects a free slot). A label that moved
    /// meanwhile (a rotation finished) has left that version anyway.
    async fn drop_previous(
        &self,
        arn: &str,
        name: &str,
        version: &str,
        key_id: &str,
    ) -> Result<(), RotationError> {
        let Err(e) = self
            .store()
            .move_label(arn, AWSPREVIOUS, None, Some(version))
            .await
        else {
            return Ok(());
        };
        let moved = self
            .store()
            .describe(arn)
            .await
            .ok()
            .is_some_and(|i| !i.labels_of(version).iter().any(|l| l == AWSPREVIOUS));
        if moved {
            return Ok(());
        }
        Err(aws("UpdateSecretVersionStage", name, None, Some(key_id), e))
    }

    async fn record_deactivation(
        &self,
        arn: &str,
        name: &str,
        key_id: &str,
        at: OffsetDateTime,
    ) -> Result<(), RotationError> {
        let tags = crate::rules::records::deactivation_tags(key_id, at);
        self.store()
            .tag(arn, &tags)
            .await
            .map_err(|e| aws("TagResource", name, None, Some(key_id), e))
    }
}

/// What the sweep reads: every version, and the previous key's last use (under require-switch, or
/// with restart targets, the current key's too: its use is the evidence).
fn sweep_needs(policy: &SweepPolicy, restarts: bool) -> Needs {
    Needs {
        all_versions: true,
        last_use: if policy.require_switch || restarts {
            LastUse::Every
        } else {
            LastUse::OfVersion(AWSPREVIOUS)
        },
        who_else: true,
        tolerate_bad_values: false,
    }
}
