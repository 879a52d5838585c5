//! Restart targets: consumers that read the key once, at start, and keep it until they are
//! restarted, as a secret's `keyturn:restart:NAME` tags declare them, and the one parser of those
//! tags. One tag, one target; a value that does not parse is refused with a reason. Whether the
//! deployment lets a target be named is a rule ([`crate::rules::restarts`]).
//!
//! Values:
//! - `ecs:CLUSTER/SERVICE` — an ECS service in the secret's account and region whose task
//!   definition injects the secret at task start: UpdateService with forceNewDeployment.
//! - `github:OWNER/REPO workflow=FILE ref=BRANCH` — a deploy workflow with a `workflow_dispatch`
//!   trigger, dispatched through GitHub's REST API on BRANCH (`FILE` is the workflow's file name,
//!   such as `deploy.yml`, or its numeric id).
//!
//! Options follow the destination after `?` and `&`, or after spaces, as for sinks.

use crate::sink::{github_owner, github_repo, split_options};
use crate::tags::RESTART_PREFIX;

/// What a restart does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestartKind {
    /// UpdateService with forceNewDeployment: ECS replaces every task, and each new task reads the
    /// secret again.
    Ecs { cluster: String, service: String },
    /// A `workflow_dispatch` of a workflow on a branch.
    GitHubWorkflow {
        owner: String,
        repo: String,
        workflow: String,
        git_ref: String,
    },
}

/// A restart target as a secret's tag declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartTarget {
    /// NAME in `keyturn:restart:NAME`.
    pub name: String,
    /// The tag's value, as written (for messages).
    pub spec: String,
    pub kind: RestartKind,
}

impl RestartTarget {
    /// The tag that declares it.
    pub fn tag(&self) -> String {
        format!("{RESTART_PREFIX}{}", self.name)
    }

    /// "restart web (ecs:prod/web)".
    pub fn describe(&self) -> String {
        format!("restart {} ({})", self.name, self.spec)
    }

    /// `ecs` or `github`.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            RestartKind::Ecs { .. } => "ecs",
            RestartKind::GitHubWorkflow { .. } => "github",
        }
    }

    /// What a restart of it is called in AWS's or GitHub's terms (for errors).
    pub fn action(&self) -> &'static str {
        match self.kind {
            RestartKind::Ecs { .. } => "ECS UpdateService (forceNewDeployment)",
            RestartKind::GitHubWorkflow { .. } => "GitHub workflow dispatch",
        }
    }
}

/// The restart target `keyturn:restart:NAME` = `value` declares, or why it does not parse.
pub fn parse(name: &str, value: &str) -> Result<RestartTarget, String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(
            "the target's name (after keyturn:restart:) must be letters, digits, '.', '_' or '-'"
                .into(),
        );
    }
    let value = value.trim();
    let (kind, rest) = value
        .split_once(':')
        .ok_or("expected ecs:CLUSTER/SERVICE or github:OWNER/REPO workflow=FILE ref=BRANCH")?;
    let (target, mut options) = split_options(rest)?;
    let kind = match kind {
        "ecs" => {
            let (cluster, service) = target
                .split_once('/')
                .ok_or("expected ecs:CLUSTER/SERVICE")?;
            RestartKind::Ecs {
                cluster: ecs_name(cluster, "cluster")?,
                service: ecs_name(service, "service")?,
            }
        }
        "github" => {
            let (owner, repo) = target
                .split_once('/')
                .ok_or("expected github:OWNER/REPO workflow=FILE ref=BRANCH")?;
            let workflow = options
                .take("workflow")
                .ok_or("a GitHub restart names its workflow: workflow=FILE (deploy.yml)")?;
            let git_ref = options
                .take("ref")
                .ok_or("a GitHub restart names the branch to run on: ref=BRANCH")?;
            RestartKind::GitHubWorkflow {
                owner: github_owner(owner)?,
                repo: github_repo(repo)?,
                workflow: workflow_file(&workflow)?,
                git_ref: branch(&git_ref)?,
            }
        }
        other => {
            return Err(format!(
                "unknown restart kind {other:?}: expected ecs or github"
            ))
        }
    };
    if let Some((k, _)) = options.0.first() {
        return Err(format!("unknown option {k:?} for this restart target"));
    }
    Ok(RestartTarget {
        name: name.to_string(),
        spec: value.to_string(),
        kind,
    })
}

/// ECS cluster and service names: 1 to 255 letters, digits, hyphens and underscores.
fn ecs_name(name: &str, what: &str) -> Result<String, String> {
    if name.is_empty()
        || name.len() > 255
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-".contains(c))
    {
        return Err(format!(
            "{name:?} is not an ECS {what} name (letters, digits, '-' and '_')"
        ));
    }
    Ok(name.to_string())
}

/// A workflow's file name (`deploy.yml`, `.yaml`) or its numeric id.
fn workflow_file(file: &str) -> Result<String, String> {
    let numeric = !file.is_empty() && file.chars().all(|c| c.is_ascii_digit());
    let named = (file.ends_with(".yml") || file.ends_with(".yaml"))
        && file.len() <= 255
        && file
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if numeric || named {
        Ok(file.to_string())
    } else {
        Err(format!(
            "workflow={file:?} is not a workflow file name (deploy.yml) or id"
        ))
    }
}

/// A branch name as git allows it, narrowed to what a tag can carry safely.
fn branch(name: &str) -> Result<String, String> {
    if name.is_empty()
        || name.len() > 255
        || name.starts_with(['-', '/', '.'])
        || name.ends_with(['/', '.'])
        || name.contains("..")
        || name.contains("//")
        || name.ends_with(".lock")
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-/".contains(c))
    {
        return Err(format!("ref={name:?} is not a branch name"));
    }
    Ok(name.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_form_parses() {
        assert_eq!(
            parse("web", "ecs:prod/web").map(|t| t.kind),
            Ok(RestartKind::Ecs {
                cluster: "prod".into(),
                service: "web".into()
            })
        );
        for v in [
            "github:acme/app workflow=deploy.yml ref=main",
            "github:acme/app?workflow=deploy.yml&ref=main",
        ] {
            let t = parse("deploy", v).expect(v);
            assert_eq!(
                t.kind,
                RestartKind::GitHubWorkflow {
                    owner: "acme".into(),
                    repo: "app".into(),
                    workflow: "deploy.yml".into(),
                    git_ref: "main".into()
                }
            );
            assert_eq!(t.tag(), "keyturn:restart:deploy");
            assert_eq!(t.kind_name(), "github");
        }
        assert!(parse("d", "github:acme/app workflow=1234 ref=release/v2").is_ok());
    }

    #[test]
    fn malformed_values_are_refused_with_a_reason() {
        for bad in [
            "",
            "ecs",
            "ecs:prod",
            "ecs:prod/",
            "ecs:/web",
            "ecs:prod/web/extra",
            "ecs:prod/web x=1",
            "lambda:fn",
            "github:acme/app",
            "github:acme/app workflow=deploy.yml",
            "github:acme/app ref=main",
            "github:acme workflow=deploy.yml ref=main",
            "github:acme/app workflow=../deploy.yml ref=main",
            "github:acme/app workflow=deploy.sh ref=main",
            "github:acme/app workflow=deploy.yml ref=../main",
            "github:acme/app workflow=deploy.yml ref=-x",
            "github:acme/app workflow=deploy.yml ref=main extra=1",
        ] {
            let e = parse("x", bad).expect_err(bad);
            assert!(!e.is_empty(), "{bad}");
        }
        assert!(parse("", "ecs:a/b").is_err());
        assert!(parse("a b", "ecs:a/b").is_err());
    }
}
