//! Restart targets: which ones the deployment lets a secret name ([`RestartPolicy`], [`restarts`]),
//! and whether a target's restart since the cut-over has completed ([`progress`]), judged from the
//! service's own record of its rollouts (ECS's deployments, GitHub's workflow runs), never from a
//! tag. The tags' forms and their parser are [`crate::restart`].

use time::OffsetDateTime;

use crate::error::RotationError;
use crate::ports::{Rollout, RolloutState, SecretInfo};
use crate::restart::{parse, RestartKind, RestartTarget};
use crate::state::SecretState;
use crate::tags::RESTART_PREFIX;

/// Which consumers the deployment lets a secret's tags name for a restart. None by default:
/// whoever may tag a secret could otherwise redeploy any service or dispatch any workflow.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RestartPolicy {
    /// ECS clusters whose services may be restarted (`KEYTURN_RESTART_ECS_CLUSTERS`, the
    /// template's RestartEcsClusters), by name.
    pub ecs_clusters: Vec<String>,
    /// GitHub repositories whose workflows may be dispatched (`KEYTURN_RESTART_GITHUB_REPOS`, the
    /// template's RestartGitHubRepos), `OWNER/REPO`, compared without case.
    pub github_repos: Vec<String>,
    /// No GitHub token is configured: a GitHub target is refused before any key is made.
    pub github_disabled: bool,
}

impl RestartPolicy {
    fn check(&self, kind: &RestartKind) -> Result<(), String> {
        match kind {
            RestartKind::Ecs { cluster, .. } => {
                if self.ecs_clusters.iter().any(|c| c == cluster) {
                    Ok(())
                } else if self.ecs_clusters.is_empty() {
                    Err("this deployment restarts no ECS service (set KEYTURN_RESTART_ECS_CLUSTERS, the template's RestartEcsClusters, or --restart-ecs-cluster)".into())
                } else {
                    Err(format!(
                        "ECS cluster {cluster} is not one the deployment lets keyturn restart services in ({}; KEYTURN_RESTART_ECS_CLUSTERS)",
                        self.ecs_clusters.join(", ")
                    ))
                }
            }
            RestartKind::GitHubWorkflow { owner, repo, .. } => {
                let named = format!("{owner}/{repo}");
                if self.github_repos.is_empty() {
                    return Err("this deployment dispatches no GitHub workflow (set KEYTURN_RESTART_GITHUB_REPOS, the template's RestartGitHubRepos, or --restart-github-repo)".into());
                }
                if !self
                    .github_repos
                    .iter()
                    .any(|r| r.eq_ignore_ascii_case(&named))
                {
                    return Err(format!(
                        "GitHub repository {named} is not one the deployment lets keyturn dispatch workflows in ({}; KEYTURN_RESTART_GITHUB_REPOS)",
                        self.github_repos.join(", ")
                    ));
                }
                if self.github_disabled {
                    return Err("no GitHub token is configured: store one in a Secrets Manager secret and name it with KEYTURN_GITHUB_TOKEN_SECRET (the template's GitHubTokenSecretArn, or --github-token-secret)".into());
                }
                Ok(())
            }
        }
    }
}

/// Every restart target a secret's tags declare, in the order of their names; the first
/// malformed tag, or one the deployment does not allow, is an error that names it (before any
/// key is made).
pub fn restarts(
    info: &SecretInfo,
    policy: &RestartPolicy,
) -> Result<Vec<RestartTarget>, RotationError> {
    info.tags
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(RESTART_PREFIX).map(|name| (k, name, v)))
        .map(|(tag, name, value)| {
            parse(name, value)
                .and_then(|target| policy.check(&target.kind).map(|()| target))
                .map_err(|reason| RotationError::BadRestart {
                    secret: info.name.clone(),
                    tag: tag.clone(),
                    value: value.clone(),
                    reason,
                })
        })
        .collect()
}

/// Whether a target's restart since the cut-over has completed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestartProgress {
    /// No rollout began after the cut-over: the target may still run on the previous key. The
    /// sweep restarts it again.
    Needed,
    /// A rollout since the cut-over is still going (or old tasks still run).
    Running { id: String, old_tasks: u32 },
    /// A rollout since the cut-over completed and nothing older runs.
    Done { id: String },
    /// The rollout since the cut-over failed. The sweep restarts it again.
    Failed { id: String, why: String },
    /// It cannot be told (the service could not be read, or the cut-over's time is unknown).
    Unknown(String),
}

impl RestartProgress {
    pub fn is_done(&self) -> bool {
        matches!(self, RestartProgress::Done { .. })
    }

    /// Whether the sweep should restart the target again.
    pub fn wants_restart(&self) -> bool {
        matches!(
            self,
            RestartProgress::Needed | RestartProgress::Failed { .. }
        )
    }

    /// `needed`, `running`, `done`, `failed`, `unknown`.
    pub fn as_str(&self) -> &'static str {
        match self {
            RestartProgress::Needed => "needed",
            RestartProgress::Running { .. } => "running",
            RestartProgress::Done { .. } => "done",
            RestartProgress::Failed { .. } => "failed",
            RestartProgress::Unknown(_) => "unknown",
        }
    }

    /// A sentence for `status` and the sweep's report.
    pub fn describe(&self) -> String {
        match self {
            RestartProgress::Needed => "not restarted since the cut-over".into(),
            RestartProgress::Running { id, old_tasks: 0 } => format!("rollout {id} in progress"),
            RestartProgress::Running { id, old_tasks } => {
                format!("rollout {id}: {old_tasks} task(s) of an older deployment still run")
            }
            RestartProgress::Done { id } => format!("rollout {id} completed"),
            RestartProgress::Failed { id, why } => format!("rollout {id} failed: {why}"),
            RestartProgress::Unknown(why) => format!("cannot tell: {why}"),
        }
    }
}

/// Whether `rollout` is a completed restart since `cutover` (the latest the cut-over can have
/// been by keyturn's record: a rollout that began before it may have read the previous key),
/// compared to the second.
pub fn progress(
    rollout: &Result<Option<Rollout>, String>,
    cutover: Option<OffsetDateTime>,
) -> RestartProgress {
    let rollout = match rollout {
        Err(why) => return RestartProgress::Unknown(why.clone()),
        Ok(None) => return RestartProgress::Needed,
        Ok(Some(r)) => r,
    };
    let Some(cutover) = cutover else {
        return RestartProgress::Unknown("the cut-over's time is unknown".into());
    };
    // GitHub gives a run's creation to the second: a run begun in the cut-over's second counts.
    let cutover = cutover.replace_nanosecond(0).unwrap_or(cutover);
    if rollout.started < cutover {
        return RestartProgress::Needed;
    }
    let id = rollout.id.clone();
    match &rollout.state {
        RolloutState::Failed(why) => RestartProgress::Failed {
            id,
            why: why.clone(),
        },
        RolloutState::InProgress => RestartProgress::Running {
            id,
            old_tasks: rollout.old_tasks,
        },
        RolloutState::Completed if rollout.old_tasks > 0 => RestartProgress::Running {
            id,
            old_tasks: rollout.old_tasks,
        },
        RolloutState::Completed => RestartProgress::Done { id },
    }
}

/// The state's restart targets that have not completed a restart since the cut-over, each with
/// its progress.
pub fn pending(state: &SecretState) -> Vec<(RestartTarget, RestartProgress)> {
    let cut = crate::rules::records::cutover(state);
    state
        .restarts
        .iter()
        .map(|f| (f.target.clone(), progress(&f.rollout, cut.latest)))
        .filter(|(_, p)| !p.is_done())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    use crate::rules::tagged as info;

    #[test]
    fn the_deployment_bounds_which_targets_a_tag_may_name() {
        let one = |v: &str| info(&[("keyturn:restart:x", v)]);
        let closed = RestartPolicy::default();
        for (v, says) in [
            ("ecs:prod/web", "restarts no ECS service"),
            (
                "github:acme/app workflow=deploy.yml ref=main",
                "dispatches no GitHub workflow",
            ),
        ] {
            let e = restarts(&one(v), &closed).expect_err(v).to_string();
            assert!(
                e.contains(says) && e.contains("keyturn:restart:x") && e.contains("no key"),
                "{e}"
            );
        }
        let open = RestartPolicy {
            ecs_clusters: vec!["prod".into()],
            github_repos: vec!["Acme/App".into()],
            github_disabled: false,
        };
        assert!(restarts(&one("ecs:prod/web"), &open).is_ok());
        assert!(restarts(&one("github:acme/app workflow=deploy.yml ref=main"), &open).is_ok());
        for (v, says) in [
            ("ecs:other/web", "ECS cluster other is not one"),
            (
                "github:acme/other workflow=deploy.yml ref=main",
                "GitHub repository acme/other is not one",
            ),
            ("ecs:prod", "expected ecs:CLUSTER/SERVICE"),
        ] {
            let e = restarts(&one(v), &open).expect_err(v).to_string();
            assert!(e.contains(says), "{e}");
        }
        let no_token = RestartPolicy {
            github_disabled: true,
            ..open
        };
        let e = restarts(
            &one("github:acme/app workflow=deploy.yml ref=main"),
            &no_token,
        )
        .expect_err("no token")
        .to_string();
        assert!(e.contains("KEYTURN_GITHUB_TOKEN_SECRET"), "{e}");
        let found = restarts(
            &info(&[
                ("keyturn:restart:b", "ecs:prod/b"),
                ("keyturn:restart:a", "ecs:prod/a"),
                ("keyturn:sink:a", "ssm:/x"),
            ]),
            &no_token,
        )
        .expect("valid");
        assert_eq!(
            found.iter().map(|t| t.name.as_str()).collect::<Vec<_>>(),
            ["a", "b"]
        );
    }

    #[test]
    fn only_a_completed_rollout_begun_after_the_cut_over_counts() {
        let cut = datetime!(2026-12-03 10:00 UTC);
        let rollout = |started, state, old_tasks| {
            Ok(Some(Rollout {
                id: "d1".into(),
                started,
                state,
                old_tasks,
            }))
        };
        let after = datetime!(2026-12-03 10:01 UTC);
        let before = datetime!(2026-12-03 09:59 UTC);
        let cases = [
            (Ok(None), Some(cut), "needed"),
            (Err("denied".to_string()), Some(cut), "unknown"),
            (
                rollout(before, RolloutState::Completed, 0),
                Some(cut),
                "needed",
            ),
            (rollout(after, RolloutState::Completed, 0), None, "unknown"),
            (
                rollout(after, RolloutState::InProgress, 0),
                Some(cut),
                "running",
            ),
            (
                rollout(after, RolloutState::Completed, 2),
                Some(cut),
                "running",
            ),
            (
                rollout(after, RolloutState::Failed("rolled back".into()), 0),
                Some(cut),
                "failed",
            ),
            (
                rollout(after, RolloutState::Completed, 0),
                Some(cut),
                "done",
            ),
            (rollout(cut, RolloutState::Completed, 0), Some(cut), "done"),
            // GitHub's times are whole seconds: a run in the cut-over's second counts.
            (
                rollout(cut, RolloutState::Completed, 0),
                Some(cut + time::Duration::milliseconds(600)),
                "done",
            ),
        ];
        for (i, (r, c, want)) in cases.into_iter().enumerate() {
            let p = progress(&r, c);
            assert_eq!(p.as_str(), want, "case {i}: {p:?}");
            assert_eq!(
                p.wants_restart(),
                matches!(want, "needed" | "failed"),
                "case {i}"
            );
        }
    }
}
