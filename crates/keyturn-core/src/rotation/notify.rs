//! Telling a secret's owner: notices published to the deployment's topic (`KEYTURN_NOTICE_TOPIC`)
//! with the owner (`keyturn:owner`) as a message attribute, so that one topic with subscription
//! filter policies routes each team's notices, in the shape chat integrations render. Four kinds:
//! a rotation done (or done with a restart that failed), a rotation due soon for a secret whose
//! consumers act by hand, a previous key still in use after its grace period, a failed rotation.
//!
//! A notice is never a reason to fail or undo anything: a topic that refuses is logged
//! ("notice failed") and the work goes on. Notices carry names and key ids, never a secret key.

use crate::error::{describe_use, human, RotationError};
use crate::event::Step;
use crate::ports::{Clock, Delivery, Notice, Ports, SecretInfo, SecretStore};
use crate::rules::{self, notices, SweepPolicy};

use super::{RestartReport, Rotator, SweepOutcome};

/// What finishSecret did, for its notice.
pub(crate) struct Rotated<'a> {
    pub info: &'a SecretInfo,
    pub user: &'a str,
    pub key_id: &'a str,
    pub previous: Option<&'a str>,
    pub delivered: &'a [String],
    pub restarts: &'a RestartReport,
}

impl<P: Ports> Rotator<P> {
    /// Publishes `notice` when the deployment names a topic: whether it was sent.
    pub async fn notify(&self, notice: &Notice) -> bool {
        let Some(topic) = self.settings().notices.topic.as_deref() else {
            return false;
        };
        match self.delivery().notify(topic, notice).await {
            Ok(()) => {
                tracing::info!(secret = %notice.secret, owner = %notice.owner, kind = notice.kind, "notice sent");
                true
            }
            Err(e) => {
                tracing::error!(secret = %notice.secret, owner = %notice.owner, kind = notice.kind, topic, error = %e, "notice failed");
                false
            }
        }
    }

    /// The owner of `info`'s secret, when it names a valid one.
    fn owner_of(&self, info: &SecretInfo) -> Option<String> {
        match notices::owner(info) {
            Ok(owner) => owner,
            Err(why) => {
                tracing::warn!(secret = %info.name, why, "no notice: the owner tag is not valid");
                None
            }
        }
    }

    /// finishSecret's notice: the new key, where it went, what was restarted; `failed` when a
    /// restart failed.
    pub(crate) async fn notify_rotated(&self, r: Rotated<'_>) {
        let Some(owner) = self.owner_of(r.info) else {
            return;
        };
        let mut description = format!(
            "Secret {} now holds key {} of user {}",
            r.info.name, r.key_id, r.user
        );
        if let Some(p) = r.previous {
            description.push_str(&format!(" (it replaces {p})"));
        }
        description.push('.');
        if !r.delivered.is_empty() {
            description.push_str(&format!(" Delivered to {}.", r.delivered.join(", ")));
        }
        if !r.restarts.restarted.is_empty() {
            description.push_str(&format!(" Restarted {}.", r.restarts.restarted.join(", ")));
        }
        let mut next_steps = Vec::new();
        for (name, why) in &r.restarts.failed {
            description.push_str(&format!(" Restarting {name} failed: {why}"));
            next_steps.push(format!(
                "fix the cause, then run keyturn deliver --restart {} (the daily sweep retries it too)",
                r.info.name
            ));
        }
        if let Some(p) = r.previous {
            next_steps.push(format!(
                "consumers still on {p} have until the grace period ends: the sweep then retires it once it is unused"
            ));
        }
        let failed = !r.restarts.failed.is_empty();
        let notice = Notice {
            kind: if failed {
                Notice::FAILED
            } else {
                Notice::ROTATED
            },
            owner,
            secret: r.info.name.clone(),
            account: r.info.account_id().map(str::to_string),
            user: Some(r.user.to_string()),
            title: if failed {
                format!("keyturn rotated {}, but a restart failed", r.info.name)
            } else {
                format!("keyturn rotated {}", r.info.name)
            },
            description,
            next_steps,
            keywords: [r.key_id]
                .into_iter()
                .chain(r.previous)
                .map(str::to_string)
                .collect(),
        };
        self.notify(&notice).await;
    }

    /// A rotation step that failed (the function's), to the secret's owner. One DescribeSecret
    /// for the owner; nothing when it fails too.
    pub(crate) async fn notify_failure(&self, secret_id: &str, step: Step, e: &RotationError) {
        if self.settings().notices.topic.is_none() {
            return;
        }
        let Ok(info) = self.store().describe(secret_id).await else {
            return;
        };
        let Some(owner) = self.owner_of(&info) else {
            return;
        };
        let notice = Notice {
            kind: Notice::FAILED,
            owner,
            secret: info.name.clone(),
            account: info.account_id().map(str::to_string),
            user: info.tags.get(crate::tags::USER).cloned(),
            title: format!("keyturn could not rotate {}", info.name),
            description: format!("{} failed ({}): {e}", step.as_str(), e.error_type()),
            next_steps: vec![format!(
                "AWSCURRENT still holds a working key; keyturn status {} shows the secret's state, and Secrets Manager retries the rotation",
                info.name
            )],
            keywords: vec![e.error_type().to_string()],
        };
        self.notify(&notice).await;
    }

    /// The reminder a secret whose consumers act by hand gets before its rotation (on the day the
    /// window opens and on its last day), if today is one.
    pub(crate) fn due_notice(&self, info: &SecretInfo) -> Option<Notice> {
        let owner = self.owner_of(info)?;
        if !notices::acts_by_hand(info) {
            return None;
        }
        let policy = &self.settings().notices;
        let now = self.clock().now();
        let due = rules::due_at(info, now, policy.rotation_days)?;
        if !notices::remind_today(due, now, policy.window) {
            return None;
        }
        Some(Notice {
            kind: Notice::DUE,
            owner,
            secret: info.name.clone(),
            account: info.account_id().map(str::to_string),
            user: info.tags.get(crate::tags::USER).cloned(),
            title: format!("{} rotates on {}", info.name, human(due)),
            description: format!(
                "The access key in secret {} will be replaced on {}. Its consumers read the key by hand (the secret names no sink and no restart target), so they keep the old key until someone gives them the new one.",
                info.name,
                human(due)
            ),
            next_steps: vec![
                format!("after the rotation, give the consumers the new key (keyturn status {} shows it) before the grace period ends", info.name),
                "or let keyturn do it: a keyturn:sink:* or keyturn:restart:* tag, or keyturn credential-process (then tag keyturn:consumers=credential-process)".into(),
            ],
            keywords: vec![human(due)],
        })
    }

    /// The sweep's notice of a previous key still in use: who must do what, by when.
    pub(crate) fn in_use_notice(
        &self,
        info: &SecretInfo,
        user: Option<&str>,
        outcome: &SweepOutcome,
    ) -> Option<Notice> {
        let SweepOutcome::InUse { key_id, last_use } = outcome else {
            return None;
        };
        let owner = self.owner_of(info)?;
        let policy = &self.settings().notices;
        let by = rules::due_at(info, self.clock().now(), policy.rotation_days)
            .map_or_else(|| "now".to_string(), human);
        Some(Notice {
            kind: Notice::IN_USE,
            owner,
            secret: info.name.clone(),
            account: info.account_id().map(str::to_string),
            user: user.map(str::to_string),
            title: format!("{} still uses its previous key {key_id}", info.name),
            description: format!(
                "Key {key_id} was replaced in secret {} but is still in use ({}) after its grace period; keyturn keeps it active while it is used.",
                info.name,
                describe_use(last_use)
            ),
            next_steps: vec![
                format!("the consumers of {} must switch to the current key (keyturn status {} names it)", info.name, info.name),
                format!("by {by}: the next rotation needs the slot {key_id} holds, and keyturn never deletes a key in use, so that rotation fails"),
            ],
            keywords: vec![key_id.clone()],
        })
    }

    /// `keyturn notify`: the notices the sweep would send for one secret today (a reminder, a key
    /// in use), from a dry run of the sweep.
    pub async fn notices_today(
        &self,
        secret_id: &str,
        policy: &SweepPolicy,
    ) -> Result<Vec<Notice>, RotationError> {
        let info = self.describe(secret_id).await?;
        let mut found: Vec<Notice> = self.due_notice(&info).into_iter().collect();
        if notices::owner(&info).ok().flatten().is_some() {
            let swept = self.sweep_described(info.clone(), policy, true).await?;
            found.extend(self.in_use_notice(&info, swept.user.as_deref(), &swept.outcome));
        }
        Ok(found)
    }
}
