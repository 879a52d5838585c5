//! Where sinks may point: the deployment's bounds ([`SinkPolicy`]), the sinks a secret's tags
//! declare that it allows ([`sinks`]), and that no two secrets deliver to one place
//! ([`check_unshared`]). The tags' forms and their parser are [`crate::sink`].

use crate::error::RotationError;
use crate::ports::SecretInfo;
use crate::sink::{parse, GitHubScope, Sink, SinkKind, GITHUB_ID_NAME, GITHUB_SECRET_NAME};
use crate::tags::SINK_PREFIX as SINK_TAG_PREFIX;

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

#[cfg(test)]
mod tests {
    use super::*;

    use crate::rules::tagged as info;

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
