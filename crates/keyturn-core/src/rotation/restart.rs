//! Restarting the consumers a secret names (`keyturn:restart:*`): after finishSecret moved
//! AWSCURRENT, again from the sweep while a target has not completed a restart since the cut-over,
//! and on request (`keyturn deliver --restart`). A restart that fails never undoes the rotation:
//! AWSCURRENT's key works, and the previous key stays active until every target has restarted
//! (the sweep waits for it). Reading a target's rollouts is the state's business
//! ([`Rotator::restart_facts`]); whether it counts is the rules' ([`crate::rules::restarts`]).

use crate::error::RotationError;
use crate::ports::{ApiError, Delivery, Ports, SecretInfo};
use crate::restart::{RestartKind, RestartTarget};
use crate::rules::{self, RestartProgress};
use crate::state::RestartFacts;

use super::Rotator;

/// What restarting a secret's targets did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestartReport {
    /// The targets restarted, by name.
    pub restarted: Vec<String>,
    /// The targets whose restart failed, by name, with the error in words.
    pub failed: Vec<(String, String)>,
}

impl RestartReport {
    /// What became of the target `name`: restarted (`Ok`), failed (`Err(why)`), or not tried.
    pub fn outcome(&self, name: &str) -> Option<Result<(), String>> {
        if self.restarted.iter().any(|n| n == name) {
            return Some(Ok(()));
        }
        self.failed
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, why)| Err(why.clone()))
    }
}

/// What `keyturn deliver --restart` did for one secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartRequest {
    pub secret: String,
    pub user: String,
    /// AWSCURRENT's key, which the restarted consumers read.
    pub key_id: String,
    /// Every target with what was done: `restarted`, or `done` (a restart since the cut-over
    /// already completed) when only the pending ones were asked for.
    pub targets: Vec<(String, &'static str)>,
}

impl<P: Ports> Rotator<P> {
    /// One restart: one call.
    async fn restart_one(&self, target: &RestartTarget) -> Result<(), ApiError> {
        match &target.kind {
            RestartKind::Ecs { cluster, service } => {
                self.delivery().ecs_force_deployment(cluster, service).await
            }
            RestartKind::GitHubWorkflow {
                owner,
                repo,
                workflow,
                git_ref,
            } => {
                self.delivery()
                    .github_dispatch(owner, repo, workflow, git_ref)
                    .await
            }
        }
    }

    /// Restarts each target, in order, whatever the others did; a failure is logged (naming the
    /// secret, target, user and key) and returned with its target, not raised: AWSCURRENT has
    /// moved already.
    async fn restart_each(
        &self,
        info: &SecretInfo,
        targets: &[RestartTarget],
        user: &str,
        key_id: &str,
    ) -> Vec<(String, Result<(), RotationError>)> {
        let mut results = Vec::with_capacity(targets.len());
        for target in targets {
            let result = match self.restart_one(target).await {
                Ok(()) => {
                    tracing::info!(secret = %info.name, restart = %target.name, kind = target.kind_name(), key_id, "restarted");
                    Ok(())
                }
                Err(source) => {
                    let e = RotationError::RestartFailed {
                        secret: info.name.clone(),
                        target: target.describe(),
                        action: target.action(),
                        user: user.to_string(),
                        key_id: key_id.to_string(),
                        source,
                    };
                    tracing::error!(secret = %info.name, restart = %target.name, kind = target.kind_name(), user, key_id, error_type = e.error_type(), error = %e, "restart failed");
                    Err(e)
                }
            };
            results.push((target.name.clone(), result));
        }
        results
    }

    /// [`Rotator::restart_each`], as a report.
    pub(crate) async fn restart_all(
        &self,
        info: &SecretInfo,
        targets: &[RestartTarget],
        user: &str,
        key_id: &str,
    ) -> RestartReport {
        let mut report = RestartReport::default();
        for (name, result) in self.restart_each(info, targets, user, key_id).await {
            match result {
                Ok(()) => report.restarted.push(name),
                Err(e) => report.failed.push((name, e.to_string())),
            }
        }
        report
    }

    /// Each target's latest rollout as ECS or GitHub records it (one call each); a target that
    /// cannot be read is recorded as such, for the rules to treat as not restarted.
    pub async fn restart_facts(&self, targets: &[RestartTarget]) -> Vec<RestartFacts> {
        let mut facts = Vec::with_capacity(targets.len());
        for target in targets {
            let rollout = match &target.kind {
                RestartKind::Ecs { cluster, service } => {
                    self.delivery().ecs_rollout(cluster, service).await
                }
                RestartKind::GitHubWorkflow {
                    owner,
                    repo,
                    workflow,
                    git_ref,
                } => {
                    self.delivery()
                        .github_last_run(owner, repo, workflow, git_ref)
                        .await
                }
            };
            facts.push(RestartFacts {
                target: target.clone(),
                rollout: rollout.map_err(|e| format!("reading its rollouts failed ({e})")),
            });
        }
        facts
    }

    /// The sweep's retry: restarts the pending targets that have no restart since the cut-over,
    /// or whose restart failed.
    pub(crate) async fn restart_pending(
        &self,
        info: &SecretInfo,
        pending: &[(RestartTarget, RestartProgress)],
        user: &str,
        key_id: &str,
    ) -> RestartReport {
        let wanted: Vec<RestartTarget> = pending
            .iter()
            .filter(|(_, p)| p.wants_restart())
            .map(|(t, _)| t.clone())
            .collect();
        self.restart_all(info, &wanted, user, key_id).await
    }

    /// `keyturn deliver --restart`: restart the secret's targets now, for AWSCURRENT's key, which
    /// must be one of the secret's user's active keys (a restart onto a key that does not work
    /// would take the consumer down). With `pending_only`, only the targets without a completed
    /// restart since the cut-over. The first failure is an error naming its target, after every
    /// target was tried.
    pub async fn restart(
        &self,
        secret_id: &str,
        pending_only: bool,
    ) -> Result<RestartRequest, RotationError> {
        let info = self.describe(secret_id).await?;
        let targets = rules::restarts(&info, &self.settings().restarts)?;
        let (mut read, key_id) = self.handed_out(&info).await?;
        let user = read.state.user.name.clone();
        let wanted: Vec<RestartTarget> = if pending_only {
            read.state.restarts = self.restart_facts(&targets).await;
            rules::restarts::pending(&read.state)
                .into_iter()
                .map(|(t, _)| t)
                .collect()
        } else {
            targets.clone()
        };
        let results = self.restart_each(&info, &wanted, &user, &key_id).await;
        if let Some(e) = results.into_iter().find_map(|(_, r)| r.err()) {
            return Err(e);
        }
        Ok(RestartRequest {
            secret: info.name,
            user,
            key_id,
            targets: targets
                .iter()
                .map(|t| {
                    let restarted = wanted.iter().any(|w| w.name == t.name);
                    (t.name.clone(), if restarted { "restarted" } else { "done" })
                })
                .collect(),
        })
    }
}
