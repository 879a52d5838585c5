//! The local driver: keyturn playing Secrets Manager's part (`keyturn rotate` from cron or CI).
//! It runs the same four steps as the function, refuses a secret whose rotation is in flight
//! unless told to resume or cancel it, and has a dry run that reads and checks what a real run
//! would and writes nothing.
//!
//! Coordination with other keyturn runs writes nothing to the secret: IAM's two-key limit lets
//! only one run at a time hold a new key next to AWSCURRENT's, and a key that no version holds,
//! nobody used and that was created in the last few minutes (`rules::YOUNG_KEY`) is taken for
//! another run's and left alone. A run that fails before storing its key deletes it again, so it
//! leaves nothing that blocks its retry.

use super::read::Read;
use crate::audit::exempt::AccountExemptions;
use crate::error::RotationError;
use crate::event::{RotationEvent, Step};
use crate::ports::{Clock, SecretInfo, SecretStore, VersionRef};
use crate::ports::{KeysOf, Ports};
use crate::rules::{self, CancelPlan, OrphanPolicy, RetireReason, Retirement, YOUNG_KEY};
use crate::state::{in_flight, LastUse, Needs};
use crate::tags::{self, AWSCURRENT, AWSPENDING};

use super::create::CreatePlan;
use super::{Driver, Rotator};

/// What to do with a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalMode {
    /// A new rotation; refused while one is in flight.
    Rotate,
    /// Finish the rotation in flight, or one that stopped after making its key but before
    /// storing it (a key no version holds, never used, made in the last few minutes).
    Resume,
    /// Undo the rotation in flight: delete the key it made, remove its AWSPENDING label.
    Cancel,
}

/// One secret's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalRequest {
    pub mode: LocalMode,
    pub dry_run: bool,
    /// `--due`: act only when the rotation is due, with this default period in days.
    pub due_days: Option<i64>,
    /// The token for a new rotation's version (the caller brings the randomness).
    pub new_token: String,
    /// With `--due`: the account's reviewed exemptions; a due secret whose user one covers today
    /// is left alone (`exempt`).
    pub exemptions: AccountExemptions,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalOutcome {
    Rotated,
    Resumed,
    Cancelled,
    NothingInFlight,
    NotDue,
    /// Due, but its user is exempt until a date (`--exemptions`).
    Exempt,
    /// A dry run: what would happen, nothing written.
    Planned,
}

impl LocalOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            LocalOutcome::Rotated => "rotated",
            LocalOutcome::Resumed => "resumed",
            LocalOutcome::Cancelled => "cancelled",
            LocalOutcome::NothingInFlight => "nothing-in-flight",
            LocalOutcome::NotDue => "not-due",
            LocalOutcome::Exempt => "exempt",
            LocalOutcome::Planned => "planned",
        }
    }
}

/// What the driver did (or, for a dry run, would do) for one secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReport {
    pub secret: String,
    pub outcome: LocalOutcome,
    /// The rotation's version.
    pub token: Option<String>,
    pub user: Option<String>,
    /// The key AWSCURRENT holds now (a dry run: before).
    pub new_key_id: Option<String>,
    /// The key deleted (a dry run: that would be), with the rule that allows it.
    pub retired: Option<Retirement>,
    /// A sentence on what was done or would be.
    pub detail: String,
    /// finishSecret's restarts of the secret's consumers: done, and failed (the rotation stands).
    pub restarts: super::RestartReport,
}

impl LocalReport {
    fn new(secret: &str, outcome: LocalOutcome, detail: impl Into<String>) -> Self {
        Self {
            secret: secret.to_string(),
            outcome,
            token: None,
            user: None,
            new_key_id: None,
            retired: None,
            detail: detail.into(),
            restarts: super::RestartReport::default(),
        }
    }
}

fn retire_text(r: &Retirement) -> String {
    format!(
        "{} key {} ({})",
        r.action().as_str(),
        r.key_id(),
        r.reason()
    )
}

impl<P: Ports> Rotator<P> {
    /// Rotates, resumes or cancels one secret as `request` says.
    pub async fn rotate_local(
        &self,
        secret_id: &str,
        request: &LocalRequest,
    ) -> Result<LocalReport, RotationError> {
        let info = self.describe(secret_id).await?;
        let pending = in_flight(&info).map(str::to_string);
        if let Some(days) = request.due_days {
            if pending.is_none() && !rules::is_due(&info, self.clock().now(), days) {
                return Ok(LocalReport::new(
                    &info.name,
                    LocalOutcome::NotDue,
                    "not due yet",
                ));
            }
            if pending.is_none() && !request.exemptions.is_empty() {
                // The user as the state reader resolves it (checked against IAM), not a tag.
                let read = self
                    .read_state(info.clone(), None, Needs::default())
                    .await?;
                let user = read.state.user.name.clone();
                if let Some(x) = request.exemptions.holding(&user, self.clock().now().date()) {
                    let mut report = LocalReport::new(
                        &info.name,
                        LocalOutcome::Exempt,
                        format!(
                            "due, but exempt until {}: {} (owner {})",
                            x.until, x.reason, x.owner
                        ),
                    );
                    report.user = Some(user);
                    return Ok(report);
                }
            }
        }
        match (request.mode, pending) {
            (LocalMode::Cancel, Some(token)) => self.cancel(info, &token, request.dry_run).await,
            (LocalMode::Rotate, Some(token)) => {
                // One of keyturn rotate's own, left by a run that stopped: finished, not refused.
                let started = if token.starts_with(rules::LOCAL_TOKEN_PREFIX) {
                    self.store()
                        .stored(&info.arn, &VersionRef::Id(token.clone()))
                        .await
                        .map_err(|e| super::aws("GetSecretValue", &info.name, None, None, e))?
                        .and_then(|v| v.created)
                } else {
                    None
                };
                if !rules::resumes_by_itself(&token, started, self.clock().now()) {
                    return Err(rules::in_flight(&info.name, &token, started));
                }
                let mut report = self
                    .drive(
                        info,
                        &token,
                        OrphanPolicy::SpareYoungKeys,
                        LocalOutcome::Resumed,
                        request.dry_run,
                    )
                    .await?;
                report.detail = format!(
                    "finished the rotation an earlier keyturn rotate started{} and did not finish ({})",
                    started.map(|t| format!(" at {}", crate::error::human(t))).unwrap_or_default(),
                    report.detail
                );
                Ok(report)
            }
            (LocalMode::Resume, Some(token)) => {
                self.drive(
                    info,
                    &token,
                    OrphanPolicy::AnyAge,
                    LocalOutcome::Resumed,
                    request.dry_run,
                )
                .await
            }
            (LocalMode::Resume, None) => {
                // A run that stopped between making its key and storing it left a young unheld
                // key: resuming is rotating with that key taken for the orphan it is.
                let (_, plan) = self
                    .plan_create(info.clone(), &request.new_token, OrphanPolicy::AnyAge)
                    .await?;
                let young_orphan = matches!(&plan, CreatePlan::Create { retire: Some(r) }
                    if matches!(r.reason(), RetireReason::Orphan { created } if self.clock().now() - *created < YOUNG_KEY));
                if !young_orphan {
                    return Ok(LocalReport::new(
                        &info.name,
                        LocalOutcome::NothingInFlight,
                        "no rotation is in flight or stopped before storing its key; keyturn rotate starts one",
                    ));
                }
                self.drive(
                    info,
                    &request.new_token,
                    OrphanPolicy::AnyAge,
                    LocalOutcome::Resumed,
                    request.dry_run,
                )
                .await
            }
            (LocalMode::Rotate, None) => {
                self.drive(
                    info,
                    &request.new_token,
                    OrphanPolicy::SpareYoungKeys,
                    LocalOutcome::Rotated,
                    request.dry_run,
                )
                .await
            }
            (LocalMode::Cancel, None) => Ok(LocalReport::new(
                &info.name,
                LocalOutcome::NothingInFlight,
                "no rotation is in flight",
            )),
        }
    }

    /// The four steps with `token`, or (dry run) createSecret's plan.
    async fn drive(
        &self,
        info: SecretInfo,
        token: &str,
        orphans: OrphanPolicy,
        outcome: LocalOutcome,
        dry_run: bool,
    ) -> Result<LocalReport, RotationError> {
        let name = info.name.clone();
        if dry_run {
            let (read, plan) = self.plan_create(info, token, orphans).await?;
            let user = read.state.user.name.clone();
            let mut report = LocalReport::new(&name, LocalOutcome::Planned, "");
            report.user = Some(user.clone());
            report.detail = match plan {
                CreatePlan::AlreadyCreated { key_id } => format!(
                    "would test key {key_id} of the rotation in flight (version {token}) and make it AWSCURRENT"
                ),
                CreatePlan::Create { retire } => {
                    let first = retire
                        .as_ref()
                        .map(|r| format!("would {}, then ", retire_text(r)))
                        .unwrap_or_else(|| "would ".into());
                    report.retired = retire;
                    format!("{first}create a key for user {user}, store it as AWSPENDING, test it and make it AWSCURRENT")
                }
            };
            return Ok(report);
        }
        let mut report = LocalReport::new(&name, outcome, format!("version {token}"));
        report.token = Some(token.to_string());
        for step in Step::ALL {
            let event = RotationEvent {
                step,
                secret_id: info.arn.clone(),
                token: token.to_string(),
            };
            let done = self.run_step(&event, Driver::Local(orphans)).await?;
            if step == Step::Create {
                report.retired = done.retired;
                report.user = done.user;
            }
            report.new_key_id = done.pending_key_id.or(report.new_key_id);
            if step == Step::Finish {
                report.restarts = done.restarts;
            }
        }
        // Rotation succeeded: as Secrets Manager may, leave AWSPENDING on no version (AWS documents
        // both this and AWSPENDING on the AWSCURRENT version as a finished rotation).
        if let Err(e) = self
            .store()
            .move_label(&info.arn, AWSPENDING, None, Some(token))
            .await
        {
            tracing::warn!(secret = %name, token, error = %e, "could not remove AWSPENDING after the rotation; it is harmless on the AWSCURRENT version");
        }
        Ok(report)
    }

    /// A finishSecret that stopped after delivering left the pending key in the sinks: they get
    /// AWSCURRENT's key back before anything is cancelled, so the sinks hold what the secret holds
    /// and no consumer is left with a key the cancel deletes. Nothing to do without sinks.
    async fn redeliver_before_cancel(&self, read: &Read<KeysOf<P>>) -> Result<(), RotationError> {
        let info = &read.state.info;
        let sinks = rules::sinks(info, &self.settings().sinks)?;
        if !sinks.is_empty() {
            self.deliver_current(read, &sinks).await?;
        }
        Ok(())
    }

    /// Cancels the rotation in flight: puts AWSCURRENT's key back in the sinks, removes the
    /// AWSPENDING label (from then on no step of that rotation passes its opening check), re-reads
    /// the secret, and only then deletes the key it made, when the rules say it is that rotation's
    /// own (`rules::cancel_plan`). If the process stops in between, the key is held by no version
    /// and unused: the next rotation frees its slot. A finishSecret that was already past its
    /// checks and promotes the version anyway is found by the re-read after the delete, and
    /// AWSCURRENT goes back to the key it held (reported as a race).
    async fn cancel(
        &self,
        info: SecretInfo,
        token: &str,
        dry_run: bool,
    ) -> Result<LocalReport, RotationError> {
        let name = info.name.clone();
        let needs = Needs {
            all_versions: true,
            last_use: LastUse::OfVersion(AWSPENDING),
            who_else: true,
            tolerate_bad_values: false,
        };
        let read = self.read_state(info, Some(token), needs).await?;
        // The same whose-key checks as a rotation: no other secret of the user, and AWSCURRENT's
        // key is the user's (a forged secret cannot point a cancel at another secret's key).
        rules::check_whose_key(&read.state)?;
        let plan = rules::cancel_plan(&read.state, token);
        let (outcome, verb) = if dry_run {
            (LocalOutcome::Planned, "would ")
        } else {
            (LocalOutcome::Cancelled, "")
        };
        let mut report = LocalReport::new(&name, outcome, "");
        report.token = Some(token.to_string());
        report.user = Some(read.state.user.name.clone());
        let key_part = match &plan {
            CancelPlan::NoKey => String::new(),
            CancelPlan::Retire(r) => format!("{verb}{}; ", retire_text(r)),
            CancelPlan::Keep { key_id, why } => format!("kept key {key_id} ({why}); "),
        };
        report.detail = format!("{verb}remove AWSPENDING from version {token}; {key_part}");
        report.detail = report.detail.trim_end_matches("; ").to_string();
        if dry_run {
            if let CancelPlan::Retire(r) = plan {
                report.retired = Some(r);
            }
            return Ok(report);
        }
        let arn = read.state.info.arn.clone();
        self.redeliver_before_cancel(&read).await?;
        self.store()
            .move_label(&arn, AWSPENDING, None, Some(token))
            .await
            .map_err(|e| super::aws("UpdateSecretVersionStage", &name, None, None, e))?;
        let CancelPlan::Retire(r) = plan else {
            return Ok(report);
        };
        // Check again before deleting: the plan stood on AWSCURRENT being elsewhere and on no
        // finishSecret of this rotation having recorded its cut-over.
        let now = self.describe(&arn).await?;
        let finishing = now.labels_of(token).iter().any(|l| l == AWSCURRENT)
            || now.tags.get(tags::CUTOVER_VERSION).map(String::as_str) == Some(token);
        if finishing || rules::labels_moved_except(&read.state.info, &now, AWSPENDING).is_some() {
            report.detail = format!(
                "removed AWSPENDING from version {token}; kept key {} (the secret changed meanwhile: {}); check it with keyturn status",
                r.key_id(),
                if finishing {
                    "a finishSecret of this rotation is under way or done".to_string()
                } else {
                    rules::labels_moved_except(&read.state.info, &now, AWSPENDING).unwrap_or_default()
                }
            );
            return Ok(report);
        }
        self.retire_key(&read.keys_api, &name, &r).await?;
        report.retired = Some(r.clone());
        // And after: a finishSecret past its checks may have promoted the version meanwhile.
        let after = self.describe(&arn).await?;
        if after.labels_of(token).iter().any(|l| l == AWSCURRENT) {
            return Err(self.undo_promotion(&read, &after, token, &r).await);
        }
        Ok(report)
    }

    /// A finishSecret promoted the version whose key this cancel deleted: AWSCURRENT goes back to
    /// the version that held it before (its key still exists: nothing retires AWSCURRENT's key),
    /// and that key back to the sinks. Returns the error that reports it.
    async fn undo_promotion(
        &self,
        read: &Read<KeysOf<P>>,
        after: &SecretInfo,
        token: &str,
        retired: &Retirement,
    ) -> RotationError {
        let name = read.state.info.name.clone();
        let back_to = read.state.info.version_with(crate::tags::AWSCURRENT);
        let mut undone = Vec::new();
        if let Some(back_to) = back_to {
            match self
                .store()
                .move_label(&after.arn, AWSCURRENT, Some(back_to), Some(token))
                .await
            {
                Ok(()) => undone.push(format!("AWSCURRENT is on version {back_to} again")),
                Err(e) => undone.push(format!(
                    "moving AWSCURRENT back to version {back_to} failed ({e}): run keyturn rollback {name}"
                )),
            }
            if let Err(e) = self.redeliver_before_cancel(read).await {
                undone.push(format!(
                    "re-delivering it failed ({e}): run keyturn deliver {name}"
                ));
            }
        }
        RotationError::RaceUndone {
            secret: name,
            user: read.state.user.name.clone(),
            key_id: retired.key_id().to_string(),
            why: format!(
                "a finishSecret of the cancelled rotation made version {token} AWSCURRENT after its key was deleted"
            ),
            undone: undone.join("; "),
        }
    }
}
