//! Sinks: where a secret's new key is delivered, as its `keyturn:sink:NAME` tags declare. One tag,
//! one sink; a tag that does not parse is refused (naming the tag) before any key is created.
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

use crate::error::RotationError;
use crate::ports::SecretInfo;
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SinkPolicy {
    /// SSM parameter names must start with this (`KEYTURN_SSM_PREFIX`, the template's
    /// SsmParameterPrefix); `None` allows any, `Some("")` none.
    pub ssm_prefix: Option<String>,
    /// GitHub owners and organizations allowed (`KEYTURN_GITHUB_OWNERS`), compared without case;
    /// empty allows any.
    pub github_owners: Vec<String>,
    /// No GitHub token is configured: a GitHub sink is refused before any key is made.
    pub github_disabled: bool,
    /// GitHub secret names a sink may write besides `AWS_ACCESS_KEY_ID` and
    /// `AWS_SECRET_ACCESS_KEY` (`KEYTURN_GITHUB_SECRET_NAMES`, the template's
    /// GitHubSecretNames): a tag must not be able to overwrite a repository's unrelated secret.
    pub github_secret_names: Vec<String>,
    /// KMS keys an SSM sink's `kms=` may name (`KEYTURN_SSM_KMS_KEYS`, the template's
    /// SsmKmsKeyArns). Empty: SSM's default key, or a key of the secret's own account.
    pub ssm_kms_keys: Vec<String>,
}

impl SinkPolicy {
    /// Whether the deployment lets `kind` be written for a secret of `account`.
    fn check(&self, kind: &SinkKind, account: Option<&str>) -> Result<(), String> {
        match kind {
            SinkKind::Parameter { name, kms_key } => {
                match self.ssm_prefix.as_deref() {
                    Some("") => return Err(
                        "this deployment writes no SSM parameter (set KEYTURN_SSM_PREFIX, the template's SsmParameterPrefix)".into(),
                    ),
                    Some(prefix) if !name.starts_with(prefix) => return Err(format!(
                        "parameter {name} is outside the deployment's SSM prefix {prefix} (KEYTURN_SSM_PREFIX)"
                    )),
                    _ => {}
                }
                match kms_key {
                    Some(key) => self.check_kms(key, account),
                    None => Ok(()),
                }
            }
            SinkKind::GitHub {
                scope,
                id_name,
                secret_name,
            } => {
                for n in [id_name, secret_name] {
                    if n != GITHUB_ID_NAME
                        && n != GITHUB_SECRET_NAME
                        && !self.github_secret_names.iter().any(|a| a == n)
                    {
                        return Err(format!(
                            "GitHub secret name {n} is not one keyturn may write: besides {GITHUB_ID_NAME} and {GITHUB_SECRET_NAME}, the deployment must allow it (KEYTURN_GITHUB_SECRET_NAMES, the template's GitHubSecretNames, or --github-secret-name)"
                        ));
                    }
                }
                if self.github_disabled {
                    return Err("no GitHub token is configured: store one in a Secrets Manager secret and name it with KEYTURN_GITHUB_TOKEN_SECRET (the template's GitHubTokenSecretArn, or --github-token-secret)".into());
                }
                let owner = match scope {
                    GitHubScope::Repo { owner, .. } | GitHubScope::Environment { owner, .. } => {
                        owner
                    }
                    GitHubScope::Org { org, .. } => org,
                };
                let allowed = &self.github_owners;
                if allowed.is_empty() || allowed.iter().any(|a| a.eq_ignore_ascii_case(owner)) {
                    Ok(())
                } else {
                    Err(format!(
                        "GitHub owner {owner} is not one the deployment allows ({}; KEYTURN_GITHUB_OWNERS)",
                        allowed.join(", ")
                    ))
                }
            }
        }
    }
}

impl SinkPolicy {
    /// `kms=KEY`: one the deployment lists, or (with no list) a key of the secret's own account:
    /// an alias or key id (SSM resolves them in the caller's account), or an ARN naming it.
    fn check_kms(&self, key: &str, account: Option<&str>) -> Result<(), String> {
        if !self.ssm_kms_keys.is_empty() {
            return if self.ssm_kms_keys.iter().any(|k| k == key) {
                Ok(())
            } else {
                Err(format!(
                    "kms={key} is not a key the deployment allows ({}; KEYTURN_SSM_KMS_KEYS, the template's SsmKmsKeyArns, or --ssm-kms-key)",
                    self.ssm_kms_keys.join(", ")
                ))
            };
        }
        let Some(arn) = key.strip_prefix("arn:") else {
            return Ok(());
        };
        let key_account = arn.split(':').nth(3);
        match (key_account, account) {
            (Some(k), Some(a)) if k == a => Ok(()),
            _ => Err(format!(
                "kms={key} names a key of another account than the secret's ({}); list it in the deployment's allowed keys (KEYTURN_SSM_KMS_KEYS, the template's SsmKmsKeyArns, or --ssm-kms-key) if it is meant",
                account.unwrap_or("unknown")
            )),
        }
    }
}

/// What a sink writes to, one entry per secret it writes: two sinks that share an entry would
/// overwrite each other's key.
pub fn destinations(sink: &Sink) -> Vec<String> {
    match &sink.kind {
        SinkKind::Parameter { name, .. } => vec![format!("SSM parameter {name}")],
        SinkKind::GitHub {
            scope,
            id_name,
            secret_name,
        } => [id_name, secret_name]
            .into_iter()
            .map(|n| {
                format!(
                    "GitHub secret {n} in {}",
                    scope.secrets_path().to_ascii_lowercase()
                )
            })
            .collect(),
    }
}

/// The first of `ours` whose destination another managed secret's sink already names, with that
/// secret and the destination: two secrets may not deliver to one place.
pub fn shared_destination<'a>(
    ours: &'a [Sink],
    others: &'a [(String, Vec<Sink>)],
) -> Option<(&'a Sink, &'a str, String)> {
    ours.iter().find_map(|sink| {
        let mine = destinations(sink);
        others.iter().find_map(|(other, theirs)| {
            theirs
                .iter()
                .flat_map(destinations)
                .find(|d| mine.contains(d))
                .map(|d| (sink, other.as_str(), d))
        })
    })
}

/// The sinks a secret's tags declare that parse, whatever the deployment allows (to tell where
/// another secret delivers).
pub fn declared(info: &SecretInfo) -> Vec<Sink> {
    info.tags
        .iter()
        .filter_map(|(k, v)| k.strip_prefix(SINK_TAG_PREFIX).map(|name| (name, v)))
        .filter_map(|(name, value)| parse(name, value).ok())
        .collect()
}

/// [`shared_destination`] as an error for `secret`.
pub fn check_unshared(
    secret: &str,
    ours: &[Sink],
    others: &[(String, Vec<Sink>)],
) -> Result<(), RotationError> {
    match shared_destination(ours, others) {
        None => Ok(()),
        Some((sink, other, destination)) => Err(RotationError::SinkShared {
            secret: secret.to_string(),
            sink: sink.describe(),
            other: other.to_string(),
            destination,
        }),
    }
}

/// Every sink a secret's tags declare, in the order of their names; the first malformed tag, or
/// one pointing where `policy` does not allow (for a secret of its account), is an error that
/// names it.
pub fn sinks(info: &SecretInfo, policy: &SinkPolicy) -> Result<Vec<Sink>, RotationError> {
    let (secret, account, tags) = (&info.name, info.account_id(), &info.tags);
    tags.iter()
        .filter_map(|(k, v)| k.strip_prefix(SINK_TAG_PREFIX).map(|name| (k, name, v)))
        .map(|(tag, name, value)| {
            parse(name, value)
                .and_then(|sink| policy.check(&sink.kind, account).map(|()| sink))
                .map_err(|reason| RotationError::BadSink {
                    secret: secret.to_string(),
                    tag: tag.clone(),
                    value: value.clone(),
                    reason,
                })
        })
        .collect()
}

fn parse(name: &str, value: &str) -> Result<Sink, String> {
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

struct Options(Vec<(String, String)>);

impl Options {
    fn take(&mut self, key: &str) -> Option<String> {
        let i = self.0.iter().position(|(k, _)| k == key)?;
        Some(self.0.remove(i).1)
    }
}

/// Splits `TARGET?k=v&k=v` or `TARGET k=v k=v`.
fn split_options(rest: &str) -> Result<(&str, Options), String> {
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

fn github_owner(owner: &str) -> Result<String, String> {
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

fn github_repo(repo: &str) -> Result<String, String> {
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

    /// A secret of account 123456789012 with these tags.
    fn info(tags: &[(&str, &str)]) -> SecretInfo {
        SecretInfo {
            arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:keyturn/app-AbCdEf".into(),
            name: "keyturn/app".into(),
            rotation_enabled: true,
            versions: Default::default(),
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            last_rotated: None,
            next_rotation: None,
            rotation_days: None,
        }
    }

    #[test]
    fn the_secrets_sinks_come_from_its_tags_and_a_bad_one_is_named() {
        let tags = [
            ("keyturn:sink:param", "ssm:/app/key"),
            ("keyturn:sink:ci", "github:acme/app"),
            ("keyturn:managed", "true"),
            ("keyturn:sinkish", "ssm:/x"),
        ];
        let found = sinks(&info(&tags), &SinkPolicy::default()).expect("valid");
        assert_eq!(
            found.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(),
            ["ci", "param"]
        );
        assert_eq!(found[0].tag(), "keyturn:sink:ci");
        let mut bad = tags.to_vec();
        bad.push(("keyturn:sink:typo", "sm:/app/key"));
        let e = sinks(&info(&bad), &SinkPolicy::default())
            .expect_err("malformed")
            .to_string();
        assert!(e.contains("keyturn:sink:typo"), "{e}");
        assert!(e.contains("keyturn/app"), "{e}");
        assert!(e.contains("no key was created"), "{e}");
    }

    #[test]
    fn the_deployment_bounds_where_sinks_may_point() {
        let policy = SinkPolicy {
            ssm_prefix: Some("/keyturn/".into()),
            github_owners: vec!["Acme".into()],
            github_secret_names: vec!["OPS_ID".into()],
            ..SinkPolicy::default()
        };
        let one = |v: &str| info(&[("keyturn:sink:x", v)]);
        for ok in [
            "ssm:/keyturn/app",
            "github:acme/app",
            "github-org:ACME",
            "github:acme/app id=OPS_ID",
            "ssm:/keyturn/app kms=alias/app",
            "ssm:/keyturn/app kms=1234abcd-12ab-34cd-56ef-1234567890ab",
            "ssm:/keyturn/app kms=arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        ] {
            assert!(sinks(&one(ok), &policy).is_ok(), "{ok}");
        }
        for (bad, says) in [
            (
                "ssm:/other/app",
                "outside the deployment's SSM prefix /keyturn/",
            ),
            (
                "github:mallory/app",
                "GitHub owner mallory is not one the deployment allows",
            ),
            ("github-org:mallory", "GitHub owner mallory"),
            (
                "github:acme/app id=OPS_ID secret=NPM_TOKEN",
                "GitHub secret name NPM_TOKEN is not one keyturn may write",
            ),
            (
                "ssm:/keyturn/app kms=arn:aws:kms:us-east-1:999999999999:key/1234abcd-12ab-34cd-56ef-1234567890ab",
                "names a key of another account",
            ),
        ] {
            let e = sinks(&one(bad), &policy).expect_err(bad).to_string();
            assert!(e.contains(says) && e.contains("keyturn:sink:x"), "{e}");
        }
        let listed = SinkPolicy {
            ssm_kms_keys: vec!["alias/keyturn".into()],
            ..SinkPolicy::default()
        };
        assert!(sinks(&one("ssm:/a kms=alias/keyturn"), &listed).is_ok());
        let e = sinks(&one("ssm:/a kms=alias/other"), &listed)
            .expect_err("not listed")
            .to_string();
        assert!(e.contains("not a key the deployment allows"), "{e}");
        let closed = SinkPolicy {
            ssm_prefix: Some(String::new()),
            github_disabled: true,
            ..SinkPolicy::default()
        };
        for (bad, says) in [
            ("ssm:/keyturn/app", "writes no SSM parameter"),
            ("github:acme/app", "KEYTURN_GITHUB_TOKEN_SECRET"),
        ] {
            let e = sinks(&one(bad), &closed).expect_err(bad).to_string();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn two_secrets_may_not_deliver_to_one_place() {
        let policy = SinkPolicy {
            github_secret_names: vec!["X_ID".into()],
            ..SinkPolicy::default()
        };
        let ours = |v: &str| sinks(&info(&[("keyturn:sink:x", v)]), &policy).expect(v);
        let theirs = |v: &str| vec![("keyturn/other".to_string(), ours(v))];
        let shared = |a: &str, b: &str| check_unshared("keyturn/app", &ours(a), &theirs(b));
        assert!(shared("ssm:/app/key", "ssm:/app/other").is_ok());
        assert!(shared("github:acme/app", "github:acme/app/environments/prod").is_ok());
        for (a, b) in [
            ("ssm:/app/key", "ssm:/app/key kms=alias/x"),
            ("github:acme/app", "github:ACME/app"),
            ("github:acme/app id=X_ID", "github:acme/app secret=X_ID"),
            ("github-org:acme", "github-org:acme visibility=all"),
        ] {
            let e = shared(a, b).expect_err(a).to_string();
            assert!(
                e.contains("keyturn/other") && e.contains("nothing was created"),
                "{e}"
            );
        }
    }
}
