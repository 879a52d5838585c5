//! What every command starts from: the one `SdkConfig`, the settings (through keyturn-core's one
//! configuration parser), the exemptions file, the rotator for the caller's own account, and the
//! secrets a command acts on.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{bail, Context};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use keyturn_aws::{Aws, AwsPorts, GitHubSettings};
use keyturn_core::audit::exempt::Exemptions;
use keyturn_core::RotationSettings;
use keyturn_core::Rotator;

use crate::args::{AwsArgs, Cli, Command};
use crate::safe::term;

/// The engine over AWS's ports, delivering to the sinks.
pub type AwsRotator = Rotator<AwsPorts>;

/// The rotator for one account's clients.
pub fn rotator(aws: Aws, settings: RotationSettings) -> AwsRotator {
    Rotator::from_ports(aws.ports(), settings)
}

/// A repeatable or comma-separated flag's values, as the function reads the same variable
/// (`keyturn_core::config::list`): trimmed, empty ones dropped.
/// The CLI's settings keyed by their variables (`keyturn_core::config::SETTINGS`), as
/// `config::rotation_settings` reads them: a flag's value, which clap took from the variable when
/// the flag was not given; a switch (`--events`) given is `true`, else the variable's own value,
/// so that `KEYTURN_EVENTS=yes` is refused here as it is by the function.
pub(crate) fn setting_values(cli: &Cli) -> BTreeMap<&'static str, String> {
    let mut v = BTreeMap::new();
    v.insert("KEYTURN_SECRET_PREFIX", cli.scope.prefix.clone());
    v.insert("KEYTURN_USER_PATH", cli.scope.user_path.clone());
    v.insert("KEYTURN_MASTER_SECRETS", cli.scope.master_secrets.join(","));
    v.insert("KEYTURN_SSM_KMS_KEYS", cli.delivery.ssm_kms_keys.join(","));
    v.insert(
        "KEYTURN_GITHUB_OWNERS",
        cli.delivery.github_owners.join(","),
    );
    v.insert(
        "KEYTURN_GITHUB_SECRET_NAMES",
        cli.delivery.github_secret_names.join(","),
    );
    v.insert("KEYTURN_GITHUB_API", cli.delivery.github_api.clone());
    v.insert(
        "KEYTURN_RESTART_ECS_CLUSTERS",
        cli.delivery.restart_ecs_clusters.join(","),
    );
    v.insert(
        "KEYTURN_RESTART_GITHUB_REPOS",
        cli.delivery.restart_github_repos.join(","),
    );
    let optional = [
        (
            keyturn_core::config::LAST_USED_SETTLE_VAR,
            &cli.scope.last_used_settle_seconds,
        ),
        ("KEYTURN_SSM_PREFIX", &cli.delivery.ssm_prefix),
        ("KEYTURN_NOTICE_TOPIC", &cli.delivery.notice_topic),
        ("KEYTURN_NOTICE_DAYS", &cli.delivery.notice_days),
        (
            "KEYTURN_GITHUB_TOKEN_SECRET",
            &cli.delivery.github_token_secret,
        ),
    ];
    for (var, value) in optional {
        if let Some(value) = value {
            v.insert(var, value.clone());
        }
    }
    switch(&mut v, "KEYTURN_EVENTS", cli.delivery.events);
    // The rotation period is a command's flag where the command needs it.
    let rotation_days = match &cli.command {
        Command::Rotate(a) => Some(a.rotation_days),
        Command::Audit(a) => Some(a.rotation_days),
        Command::Notify(a) => Some(a.rotation_days),
        _ => None,
    };
    if let Some(days) = rotation_days {
        v.insert("KEYTURN_ROTATION_DAYS", days.to_string());
    }
    if let Command::Sweep(a) = &cli.command {
        v.insert("KEYTURN_GRACE_DAYS", a.grace_days.to_string());
        v.insert("KEYTURN_DELETE_AFTER_DAYS", a.delete_after_days.to_string());
        v.insert("KEYTURN_IN_USE", a.in_use.clone());
        switch(&mut v, "KEYTURN_REQUIRE_SWITCH", a.require_switch);
    }
    v
}

/// A switch: `true` when its flag was given, else its variable's value as set.
fn switch(v: &mut BTreeMap<&'static str, String>, var: &'static str, given: bool) {
    let value = if given {
        Some("true".to_string())
    } else {
        std::env::var(var).ok()
    };
    if let Some(value) = value {
        v.insert(var, value);
    }
}

/// A setting's error with the flag that sets it: `config` names the variable first.
pub(crate) fn cli_setting_error(e: &str) -> String {
    match keyturn_core::config::SETTINGS
        .iter()
        .find(|s| e.starts_with(s.var))
    {
        Some(keyturn_core::config::Setting {
            var,
            flag: Some(flag),
            ..
        }) => format!("{e}; fix {flag} (or {var}); nothing was run"),
        _ => format!("{e}; nothing was run"),
    }
}

/// The rotator for the caller's own account (the commands that act on one secret).
pub(crate) fn own(
    config: &SdkConfig,
    github: &GitHubSettings,
    settings: RotationSettings,
) -> Arc<AwsRotator> {
    Arc::new(rotator(Aws::from_config(config, github), settings))
}

pub(crate) fn load_exemptions(path: Option<&std::path::Path>) -> anyhow::Result<Exemptions> {
    let Some(path) = path else {
        return Ok(Exemptions::default());
    };
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "--exemptions {}: the file could not be read",
            path.display()
        )
    })?;
    let today = time::OffsetDateTime::now_utc().date();
    Exemptions::parse(&text, today)
        .map_err(|e| anyhow::anyhow!("--exemptions {}: {e}; nothing was run", path.display()))
}

pub(crate) async fn sdk_config(a: &AwsArgs) -> anyhow::Result<SdkConfig> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(keyturn_aws::retry_config())
        .timeout_config(keyturn_aws::timeout_config());
    if let Some(p) = &a.profile {
        // A named profile wins over credentials in the environment, as with the AWS CLI.
        loader = loader.profile_name(p).credentials_provider(
            aws_config::profile::ProfileFileCredentialsProvider::builder()
                .profile_name(p)
                .build(),
        );
    }
    if let Some(r) = &a.region {
        loader = loader.region(Region::new(r.clone()));
    }
    if let Some(u) = &a.endpoint_url {
        loader = loader.endpoint_url(u);
    }
    let config = loader.load().await;
    if a.profile.is_some() {
        // An unknown profile says so before anything else (its region would be missing too).
        keyturn_aws::check_credentials(&config, a.profile.as_deref())
            .await
            .map_err(anyhow::Error::msg)?;
    }
    if config.region().is_none_or(|r| r.as_ref().trim().is_empty()) {
        bail!("no AWS region: pass --region, set AWS_REGION, or set a region in the profile");
    }
    if a.profile.is_none() {
        keyturn_aws::check_credentials(&config, None)
            .await
            .map_err(anyhow::Error::msg)?;
    }
    Ok(config)
}

/// Secrets named on the command line, or every managed secret (tag `keyturn:managed=true`) under
/// the prefix; a managed secret outside it is skipped with a line on standard error.
pub(crate) async fn targets(
    rotator: &AwsRotator,
    named: Vec<String>,
) -> anyhow::Result<Vec<String>> {
    if !named.is_empty() {
        return Ok(named);
    }
    let managed = rotator.managed_secrets().await?;
    for line in managed.skipped(rotator.settings().scope.prefix()) {
        eprintln!("keyturn: {}", term(&line));
    }
    Ok(managed.inside.into_iter().map(|i| i.name).collect())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    /// The function reads these from its environment; the CLI is given the same as flags.
    const VALUES: &[(&str, &str, &str)] = &[
        ("KEYTURN_SECRET_PREFIX", "--prefix", "team/"),
        ("KEYTURN_USER_PATH", "--user-path", "/apps/"),
        (
            "KEYTURN_MASTER_SECRETS",
            "--master-secret",
            "team/admin, other",
        ),
        ("KEYTURN_SSM_PREFIX", "--ssm-prefix", "none"),
        ("KEYTURN_SSM_KMS_KEYS", "--ssm-kms-key", "alias/a,alias/b"),
        ("KEYTURN_GITHUB_TOKEN_SECRET", "--github-token-secret", "gh"),
        ("KEYTURN_GITHUB_OWNERS", "--github-owner", " acme , beta"),
        (
            "KEYTURN_RESTART_ECS_CLUSTERS",
            "--restart-ecs-cluster",
            "prod",
        ),
        (
            "KEYTURN_NOTICE_TOPIC",
            "--notice-topic",
            "arn:aws:sns:us-east-1:123456789012:keyturn-notices",
        ),
        ("KEYTURN_NOTICE_DAYS", "--notice-days", "5"),
        (
            "KEYTURN_RESTART_GITHUB_REPOS",
            "--restart-github-repo",
            "acme/app,acme/web",
        ),
        (
            "KEYTURN_GITHUB_SECRET_NAMES",
            "--github-secret-name",
            "X_ID",
        ),
        (
            "KEYTURN_LAST_USED_SETTLE_SECONDS",
            "--last-used-settle-seconds",
            "600",
        ),
        ("KEYTURN_GRACE_DAYS", "--grace-days", "3"),
        ("KEYTURN_DELETE_AFTER_DAYS", "--delete-after-days", "9"),
        ("KEYTURN_IN_USE", "--in-use", "fail"),
    ];

    #[test]
    fn the_cli_and_the_function_build_the_same_settings_from_the_same_values() {
        let mut argv: Vec<String> = vec!["keyturn".into()];
        for (_, flag, value) in VALUES {
            argv.extend([format!("{flag}={value}")]);
        }
        argv.extend(["--events".into(), "sweep".into(), "--require-switch".into()]);
        // Placed after the subcommand, the sweep's own flags.
        let (global, sweep): (Vec<String>, Vec<String>) = argv.into_iter().partition(|a| {
            !["--grace-days", "--delete-after-days", "--in-use"]
                .iter()
                .any(|f| a.starts_with(f))
        });
        let cli = Cli::try_parse_from(global.into_iter().chain(sweep)).expect("valid flags");
        let from_cli = setting_values(&cli);
        let env = |k: &str| {
            VALUES
                .iter()
                .find(|(v, _, _)| *v == k)
                .map(|(_, _, value)| value.to_string())
                .or_else(|| {
                    ["KEYTURN_EVENTS", "KEYTURN_REQUIRE_SWITCH"]
                        .contains(&k)
                        .then(|| "true".into())
                })
        };
        let cli_settings =
            keyturn_core::config::rotation_settings(|k| from_cli.get(k).cloned(), true)
                .expect("valid");
        let fn_settings = keyturn_core::config::rotation_settings(env, true).expect("valid");
        assert_eq!(format!("{cli_settings:?}"), format!("{fn_settings:?}"));
        assert_eq!(
            format!(
                "{:?}",
                keyturn_core::config::sweep_policy(|k| from_cli.get(k).cloned())
            ),
            format!("{:?}", keyturn_core::config::sweep_policy(env))
        );
        // The values took effect (not two sets of defaults).
        assert_eq!(cli_settings.scope.prefix(), "team/");
        assert_eq!(cli_settings.sinks.github_owners, ["acme", "beta"]);
        assert_eq!(cli_settings.restarts.ecs_clusters, ["prod"]);
        assert_eq!(cli_settings.notices.window, time::Duration::days(5));
        assert!(cli_settings.notices.topic.is_some());
        assert_eq!(cli_settings.restarts.github_repos, ["acme/app", "acme/web"]);
        assert_eq!(cli_settings.sinks.ssm_prefix.as_deref(), Some(""));
        assert!(cli_settings.events);
    }

    #[test]
    fn a_bad_setting_names_its_flag_and_variable() {
        let e = keyturn_core::config::rotation_settings(
            |k| (k == "KEYTURN_SSM_PREFIX").then(|| "/apps".into()),
            false,
        )
        .expect_err("no trailing slash");
        let shown = cli_setting_error(&e);
        assert!(
            shown.contains("fix --ssm-prefix (or KEYTURN_SSM_PREFIX); nothing was run"),
            "{shown}"
        );
    }
}
