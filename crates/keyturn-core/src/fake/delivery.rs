//! Sinks and EventBridge in the model: SSM parameters, GitHub Actions secrets (kept in clear: the
//! model's "sealing" is the identity, the adapter's is tested against PyNaCl) and published
//! events; ECS services and GitHub workflows as restart targets, each a list of rollouts that a
//! restart adds to (in progress until the test completes them). A destination can be made to
//! refuse writes.

use crate::ports::{
    ApiError, ApiResult, Delivery, HubFinding, HubImport, HubPage, KeyEvent, Notice, Rollout,
    RolloutState, SealingKey,
};
use crate::secret::SecretText;
use crate::sink::GitHubScope;

use super::World;

/// The model's GitHub public key.
pub const SEALING_KEY_ID: &str = "fake-key-1";

impl Delivery for World {
    async fn put_parameter(
        &self,
        name: &str,
        kms_key: Option<&str>,
        value: &SecretText,
    ) -> ApiResult<()> {
        self.pause().await;
        self.call("ssm:PutParameter", |s| {
            if s.refusing.iter().any(|r| r == name) {
                return Err(ApiError::AccessDenied(format!(
                    "not allowed to put parameter {name}"
                )));
            }
            s.parameters.insert(
                name.to_string(),
                (value.expose().to_string(), kms_key.map(str::to_string)),
            );
            Ok(())
        })
    }

    async fn github_public_key(&self, scope: &GitHubScope) -> ApiResult<SealingKey> {
        let path = scope.secrets_path();
        self.pause().await;
        self.call("github:GetPublicKey", |s| {
            if s.refusing.contains(&path) {
                return Err(ApiError::AccessDenied(format!("403 on {path}/public-key")));
            }
            Ok(SealingKey {
                key_id: SEALING_KEY_ID.into(),
                key: "AAAA".into(),
            })
        })
    }

    async fn github_put_secret(
        &self,
        scope: &GitHubScope,
        name: &str,
        key: &SealingKey,
        value: &SecretText,
    ) -> ApiResult<()> {
        let path = scope.secrets_path();
        self.pause().await;
        self.call("github:PutSecret", |s| {
            if key.key_id != SEALING_KEY_ID {
                return Err(ApiError::InvalidRequest("422: unknown key_id".into()));
            }
            s.github
                .insert(format!("{path}/{name}"), value.expose().to_string());
            Ok(())
        })
    }

    async fn publish(&self, event: &KeyEvent) -> ApiResult<()> {
        self.pause().await;
        self.call("events:PutEvents", |s| {
            if s.refusing.iter().any(|r| r == "events") {
                return Err(ApiError::AccessDenied("not allowed to put events".into()));
            }
            s.events.push(event.clone());
            Ok(())
        })
    }

    async fn notify(&self, topic: &str, notice: &Notice) -> ApiResult<()> {
        self.pause().await;
        self.call("sns:Publish", |s| {
            if s.refusing.iter().any(|r| r == topic) {
                return Err(ApiError::AccessDenied(format!(
                    "not allowed to publish to {topic}"
                )));
            }
            s.notices.push(notice.clone());
            Ok(())
        })
    }

    async fn ecs_force_deployment(&self, cluster: &str, service: &str) -> ApiResult<()> {
        self.pause().await;
        let target = format!("ecs:{cluster}/{service}");
        self.call("ecs:UpdateService", |s| roll_out(s, &target))
    }

    async fn ecs_rollout(&self, cluster: &str, service: &str) -> ApiResult<Option<Rollout>> {
        self.pause().await;
        let target = format!("ecs:{cluster}/{service}");
        self.call("ecs:DescribeServices", |s| latest(s, &target))
    }

    async fn github_dispatch(
        &self,
        owner: &str,
        repo: &str,
        workflow: &str,
        git_ref: &str,
    ) -> ApiResult<()> {
        self.pause().await;
        let target = format!("github:{owner}/{repo}/{workflow}@{git_ref}");
        self.call("github:DispatchWorkflow", |s| roll_out(s, &target))
    }

    async fn github_last_run(
        &self,
        owner: &str,
        repo: &str,
        workflow: &str,
        git_ref: &str,
    ) -> ApiResult<Option<Rollout>> {
        self.pause().await;
        let target = format!("github:{owner}/{repo}/{workflow}@{git_ref}");
        self.call("github:ListWorkflowRuns", |s| latest(s, &target))
    }

    async fn hub_import(&self, hub_account: &str, findings: &[HubFinding]) -> ApiResult<HubImport> {
        self.pause().await;
        self.call("securityhub:BatchImportFindings", |s| {
            if findings.len() > 100 {
                return Err(ApiError::InvalidRequest(format!(
                    "{} findings in one call; at most 100",
                    findings.len()
                )));
            }
            if s.refusing.iter().any(|r| r == "securityhub") {
                return Err(ApiError::AccessDenied(
                    "not allowed to import findings".into(),
                ));
            }
            for f in findings {
                let key = (hub_account.to_string(), f.id.clone());
                let resolved = s.hub.get(&key).is_some_and(|(_, r)| *r) && !f.active;
                s.hub.insert(key, (f.clone(), resolved));
            }
            Ok(HubImport {
                imported: findings.len(),
                failed: Vec::new(),
            })
        })
    }

    async fn hub_active(
        &self,
        hub_account: &str,
        prefix: &str,
        next: Option<String>,
    ) -> ApiResult<HubPage> {
        self.pause().await;
        self.call("securityhub:GetFindings", |s| {
            // Pages of two, so a test sees paging.
            let ids: Vec<String> = s
                .hub
                .iter()
                .filter(|((a, id), (f, _))| a == hub_account && id.starts_with(prefix) && f.active)
                .map(|((_, id), _)| id.clone())
                .filter(|id| next.as_ref().is_none_or(|n| id > n))
                .collect();
            let more = ids.len() > 2;
            let page: Vec<String> = ids.into_iter().take(2).collect();
            Ok(HubPage {
                next: more.then(|| page[1].clone()),
                ids: page,
            })
        })
    }

    async fn hub_resolved(&self, hub_account: &str, ids: &[String]) -> ApiResult<()> {
        self.pause().await;
        self.call("securityhub:BatchUpdateFindings", |s| {
            for id in ids {
                if let Some((_, resolved)) = s.hub.get_mut(&(hub_account.to_string(), id.clone())) {
                    *resolved = true;
                }
            }
            Ok(())
        })
    }
}

/// A restart: a new rollout, in progress, unless the target refuses or does not exist.
fn roll_out(s: &mut super::State, target: &str) -> ApiResult<()> {
    if s.refusing.iter().any(|r| r == target) {
        return Err(ApiError::AccessDenied(format!(
            "not allowed to restart {target}"
        )));
    }
    let now = s.now;
    let rollouts = s
        .rollouts
        .get_mut(target)
        .ok_or_else(|| ApiError::NotFound(format!("{target} does not exist")))?;
    let id = format!("rollout-{}", rollouts.len() + 1);
    rollouts.push(Rollout {
        id,
        started: now,
        state: RolloutState::InProgress,
        old_tasks: 1,
    });
    Ok(())
}

fn latest(s: &mut super::State, target: &str) -> ApiResult<Option<Rollout>> {
    s.rollouts
        .get(target)
        .map(|r| r.last().cloned())
        .ok_or_else(|| ApiError::NotFound(format!("{target} does not exist")))
}

impl World {
    /// Writes to this destination fail with AccessDenied: an SSM parameter's name, a GitHub
    /// scope's secrets path (`/repos/o/r/actions/secrets`), or `events`.
    pub fn refuse(&self, destination: &str) {
        self.state().refusing.push(destination.to_string());
    }

    pub fn stop_refusing(&self) {
        self.state().refusing.clear();
    }

    /// An SSM parameter's value and KMS key.
    pub fn parameter(&self, name: &str) -> Option<(String, Option<String>)> {
        self.state().parameters.get(name).cloned()
    }

    /// A GitHub secret's clear value, by `{secrets path}/{name}`.
    pub fn github_secret(&self, path: &str) -> Option<String> {
        self.state().github.get(path).cloned()
    }

    pub fn events(&self) -> Vec<KeyEvent> {
        self.state().events.clone()
    }

    /// The findings in `hub_account`'s Security Hub, by id, each with whether its workflow is
    /// RESOLVED.
    pub fn hub_findings(&self, hub_account: &str) -> Vec<(HubFinding, bool)> {
        self.state()
            .hub
            .iter()
            .filter(|((a, _), _)| a == hub_account)
            .map(|(_, f)| f.clone())
            .collect()
    }

    /// The notices published, in order.
    pub fn notices(&self) -> Vec<Notice> {
        self.state().notices.clone()
    }

    /// A restart target that exists, with one completed rollout from before now: `ecs:C/S` or
    /// `github:O/R/WORKFLOW@REF`.
    pub fn add_restart_target(&self, target: &str) {
        let mut s = self.state();
        let started = s.now - time::Duration::days(60);
        s.rollouts.insert(
            target.to_string(),
            vec![Rollout {
                id: "rollout-0".into(),
                started,
                state: RolloutState::Completed,
                old_tasks: 0,
            }],
        );
    }

    /// The target's latest rollout ends as `state` (its old tasks gone).
    pub fn finish_rollout(&self, target: &str, state: RolloutState) {
        if let Some(r) = self
            .state()
            .rollouts
            .get_mut(target)
            .and_then(|r| r.last_mut())
        {
            r.state = state;
            r.old_tasks = 0;
        }
    }

    /// The target's rollouts, oldest first.
    pub fn rollouts(&self, target: &str) -> Vec<Rollout> {
        self.state()
            .rollouts
            .get(target)
            .cloned()
            .unwrap_or_default()
    }
}
