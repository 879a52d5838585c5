//! Sinks: where a secret's new key is delivered, as its `keyturn:sink:NAME` tags declare, and the
//! one parser of those tags. One tag, one sink; a value that does not parse is refused with a
//! reason. Whether the deployment lets a sink point there is a rule ([`crate::rules::sinks`]).
//!
//! Values:
//! - `ssm:PARAMETER` — an SSM SecureString holding the secret's value in its own shape; option
//!   `kms=KEY` for a customer managed key (alias, key id or ARN).
//! - `github:OWNER/REPO`, `github:OWNER/REPO/environments/ENV`, `github-org:ORG` — GitHub Actions
//!   secrets `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY`; options `id=NAME`, `secret=NAME` rename
//!   them, and `visibility=all|private|selected` applies to an organization's secrets (default
//!   `private`).
//!
//! Options follow the destination after `?` and are separated by `&` (`ssm:/app/key?kms=alias/app`),
//! or, because Secrets Manager's tag values may not contain `?` or `&`, after spaces
//! (`ssm:/app/key kms=alias/app`). Both forms mean the same.

use crate::tags::SINK_PREFIX as SINK_TAG_PREFIX;

/// The GitHub Actions secrets' default names.
pub const GITHUB_ID_NAME: &str = "AWS_ACCESS_KEY_ID";
pub const GITHUB_SECRET_NAME: &str = "AWS_SECRET_ACCESS_KEY";

/// Where GitHub keeps the Actions secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GitHubScope {
    Repo {
        owner: String,
        repo: String,
    },
    Environment {
        owner: String,
        repo: String,
        environment: String,
    },
    Org {
        org: String,
        visibility: String,
    },
}

impl GitHubScope {
    /// The REST API path that holds the secrets (`/repos/o/r/actions/secrets`, ...).
    pub fn secrets_path(&self) -> String {
        match self {
            GitHubScope::Repo { owner, repo } => format!("/repos/{owner}/{repo}/actions/secrets"),
            GitHubScope::Environment {
                owner,
                repo,
                environment,
            } => format!("/repos/{owner}/{repo}/environments/{environment}/secrets"),
            GitHubScope::Org { org, .. } => format!("/orgs/{org}/actions/secrets"),
        }
    }

    /// The organization secrets' visibility (GitHub requires one for them).
    pub fn visibility(&self) -> Option<&str> {
        match self {
            GitHubScope::Org { visibility, .. } => Some(visibility),
            _ => None,
        }
    }
}

/// One destination.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SinkKind {
    /// An SSM Parameter Store SecureString.
    Parameter {
        name: String,
        kms_key: Option<String>,
    },
    /// A pair of GitHub Actions secrets.
    GitHub {
        scope: GitHubScope,
        id_name: String,
        secret_name: String,
    },
}

/// A sink as a secret's tag declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sink {
    /// NAME in `keyturn:sink:NAME`.
    pub name: String,
    /// The tag's value, as written (for messages).
    pub spec: String,
    pub kind: SinkKind,
}

impl Sink {
    /// The tag that declares it.
    pub fn tag(&self) -> String {
        format!("{SINK_TAG_PREFIX}{}", self.name)
    }

    /// "sink ci (github:acme/app)".
    pub fn describe(&self) -> String {
        format!("sink {} ({})", self.name, self.spec)
    }

    /// `ssm` or `github`: the kind of call it needs.
    pub fn kind_name(&self) -> &'static str {
        match self.kind {
            SinkKind::Parameter { .. } => "ssm",
            SinkKind::GitHub { .. } => "github",
        }
    }
}

/// Where the deployment lets sinks point. Whoever may tag a secret could otherwise send its key to
/// a parameter or repository of their own: the deployment bounds it (and IAM and the GitHub
/// token's reach bound it again).
/// The sink `keyturn:sink:NAME` = `value` declares, or why it does not parse.
pub fn parse(name: &str, value: &str) -> Result<Sink, String> {
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(
            "the sink's name (after keyturn:sink:) must be letters, digits, '.', '_' or '-'".into(),
        );
    }
    let value = value.trim();
    let (kind, rest) = value
        .split_once(':')
        .ok_or("expected ssm:PARAMETER, github:OWNER/REPO, github:OWNER/REPO/environments/ENV or github-org:ORG")?;
    let (target, mut options) = split_options(rest)?;
    let kind = match kind {
        "ssm" => {
            let name = parameter_name(target)?;
            let kms_key = options.take("kms");
            if let Some(k) = &kms_key {
                if k.is_empty()
                    || !k
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || ":/_-".contains(c))
                {
                    return Err(format!("kms={k:?} is not a KMS key id, alias or ARN"));
                }
            }
            SinkKind::Parameter { name, kms_key }
        }
        "github" => {
            let parts: Vec<&str> = target.split('/').collect();
            let scope = match parts.as_slice() {
                [owner, repo] => GitHubScope::Repo {
                    owner: github_owner(owner)?,
                    repo: github_repo(repo)?,
                },
                [owner, repo, "environments", env] => GitHubScope::Environment {
                    owner: github_owner(owner)?,
                    repo: github_repo(repo)?,
                    environment: github_environment(env)?,
                },
                _ => {
                    return Err(
                        "expected github:OWNER/REPO or github:OWNER/REPO/environments/ENV".into(),
                    )
                }
            };
            github(scope, &mut options)?
        }
        "github-org" => {
            let visibility = options
                .take("visibility")
                .unwrap_or_else(|| "private".into());
            if !["all", "private", "selected"].contains(&visibility.as_str()) {
                return Err(format!(
                    "visibility={visibility:?}: expected all, private or selected"
                ));
            }
            let scope = GitHubScope::Org {
                org: github_owner(target)?,
                visibility,
            };
            github(scope, &mut options)?
        }
        other => {
            return Err(format!(
                "unknown sink kind {other:?}: expected ssm, github or github-org"
            ))
        }
    };
    if let Some((k, _)) = options.0.first() {
        return Err(format!("unknown option {k:?} for this sink"));
    }
    Ok(Sink {
        name: name.to_string(),
        spec: value.to_string(),
        kind,
    })
}

fn github(scope: GitHubScope, options: &mut Options) -> Result<SinkKind, String> {
    if scope.visibility().is_none() && options.0.iter().any(|(k, _)| k == "visibility") {
        return Err("visibility applies to github-org sinks only".into());
    }
    let id_name = github_secret_name(options.take("id").unwrap_or_else(|| GITHUB_ID_NAME.into()))?;
    let secret_name = github_secret_name(
        options
            .take("secret")
            .unwrap_or_else(|| GITHUB_SECRET_NAME.into()),
    )?;
    if id_name == secret_name {
        return Err(format!("id and secret both name {id_name}"));
    }
    Ok(SinkKind::GitHub {
        scope,
        id_name,
        secret_name,
    })
}

pub(crate) struct Options(pub(crate) Vec<(String, String)>);

impl Options {
    pub(crate) fn take(&mut self, key: &str) -> Option<String> {
        let i = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(i).1)
    }
}

/// Splits `TARGET?k=v&k=v` or `TARGET k=v k=v`.
pub(crate) fn split_options(rest: &str) -> Result<(&str, Options), String> {
    let (target, options) = match rest.find(['?', ' ']) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, ""),
    };
    let mut parsed = Vec::new();
    for option in options.split(['&', ' ']).filter(|o| !o.is_empty()) {
        let (k, v) = option
            .split_once('=')
            .ok_or_else(|| format!("option {option:?} is not KEY=VALUE"))?;
        if parsed.iter().any(|(seen, _): &(String, String)| seen == k) {
            return Err(format!("option {k:?} is given twice"));
        }
        parsed.push((k.to_string(), v.to_string()));
    }
    Ok((target, Options(parsed)))
}

/// SSM's parameter names: letters, digits and `_.-/`; a hierarchy starts with `/`; no `aws` or `ssm`
/// prefix; at most 1011 characters.
fn parameter_name(name: &str) -> Result<String, String> {
    let bare = name.trim_start_matches('/').to_ascii_lowercase();
    if name.is_empty()
        || name.len() > 1011
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_.-/".contains(c))
        || (name.contains('/') && !name.starts_with('/'))
        || name.contains("//")
        || name.ends_with('/')
    {
        return Err(format!(
            "{name:?} is not an SSM parameter name (letters, digits, _ . - and /, a hierarchy starting with /)"
        ));
    }
    if bare.starts_with("aws") || bare.starts_with("ssm") {
        return Err(format!(
            "{name:?}: SSM reserves names starting with aws or ssm"
        ));
    }
    Ok(name.to_string())
}

pub(crate) fn github_owner(owner: &str) -> Result<String, String> {
    if owner.is_empty()
        || owner.len() > 39
        || owner.starts_with('-')
        || !owner.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        return Err(format!(
            "{owner:?} is not a GitHub user or organization name"
        ));
    }
    Ok(owner.to_string())
}

pub(crate) fn github_repo(repo: &str) -> Result<String, String> {
    if repo.is_empty()
        || repo.len() > 100
        || repo == "."
        || repo == ".."
        || !repo
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(format!("{repo:?} is not a GitHub repository name"));
    }
    Ok(repo.to_string())
}

fn github_environment(env: &str) -> Result<String, String> {
    if env.is_empty()
        || env.len() > 255
        || !env
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
    {
        return Err(format!(
            "{env:?}: keyturn takes environment names of letters, digits, '.', '_' and '-'"
        ));
    }
    Ok(env.to_string())
}

/// GitHub's secret names: letters, digits and `_`, not starting with a digit or `GITHUB_`.
fn github_secret_name(name: String) -> Result<String, String> {
    if name.is_empty()
        || name.starts_with(|c: char| c.is_ascii_digit())
        || name.to_ascii_uppercase().starts_with("GITHUB_")
        || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(format!(
            "{name:?} is not a GitHub secret name (letters, digits and _, not starting with a digit or GITHUB_)"
        ));
    }
    Ok(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(value: &str) -> Result<Sink, String> {
        parse("ci", value)
    }

    #[test]
    fn every_form_parses() {
        assert_eq!(
            one("ssm:/app/key").map(|s| s.kind),
            Ok(SinkKind::Parameter {
                name: "/app/key".into(),
                kms_key: None
            })
        );
        for v in ["ssm:/app/key?kms=alias/app", "ssm:/app/key kms=alias/app"] {
            assert_eq!(
                one(v).map(|s| s.kind),
                Ok(SinkKind::Parameter {
                    name: "/app/key".into(),
                    kms_key: Some("alias/app".into())
                }),
                "{v}"
            );
        }
        let repo = one("github:acme/app").expect("repo");
        assert_eq!(
            repo.kind,
            SinkKind::GitHub {
                scope: GitHubScope::Repo {
                    owner: "acme".into(),
                    repo: "app".into()
                },
                id_name: GITHUB_ID_NAME.into(),
                secret_name: GITHUB_SECRET_NAME.into()
            }
        );
        let env =
            one("github:acme/app/environments/prod?id=KEY_ID&secret=KEY_SECRET").expect("env");
        match env.kind {
            SinkKind::GitHub {
                scope,
                id_name,
                secret_name,
            } => {
                assert_eq!(
                    scope.secrets_path(),
                    "/repos/acme/app/environments/prod/secrets"
                );
                assert_eq!(
                    (id_name.as_str(), secret_name.as_str()),
                    ("KEY_ID", "KEY_SECRET")
                );
            }
            other => panic!("{other:?}"),
        }
        let org = one("github-org:acme visibility=all").expect("org");
        match org.kind {
            SinkKind::GitHub { scope, .. } => {
                assert_eq!(scope.secrets_path(), "/orgs/acme/actions/secrets");
                assert_eq!(scope.visibility(), Some("all"));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            one("github-org:acme").map(|s| s.kind),
            Ok(SinkKind::GitHub { scope: GitHubScope::Org { ref visibility, .. }, .. }) if visibility == "private"
        ));
    }

    #[test]
    fn malformed_values_are_refused_with_a_reason() {
        for bad in [
            "",
            "ssm",
            "s3:bucket",
            "ssm:",
            "ssm:app/key",
            "ssm:/app//key",
            "ssm:/aws/key",
            "ssm:/app/key?kms=",
            "ssm:/app/key?region=eu-west-1",
            "ssm:/app/key?kms=a&kms=b",
            "ssm:/app/key?kms",
            "github:acme",
            "github:acme/app/extra",
            "github:acme/app/environments/",
            "github:-acme/app",
            "github:acme/app?id=GITHUB_TOKEN",
            "github:acme/app?id=1KEY",
            "github:acme/app?id=X&secret=X",
            "github:acme/app?visibility=all",
            "github-org:acme?visibility=public",
            "github-org:acme/app",
        ] {
            let e = one(bad).expect_err(bad);
            assert!(!e.is_empty(), "{bad}");
        }
        assert!(parse("", "ssm:/a").is_err());
        assert!(parse("a b", "ssm:/a").is_err());
    }
}
