//! The commands, one module each. Each returns whether everything it looked at is fine (exit 0)
//! or not (exit 1). This file builds the one `SdkConfig` and the rotator, and selects targets.

mod audit;
mod credential_process;
mod deliver;
mod enroll;
mod org;
mod rotate;
mod status;
mod sweep;

use std::sync::Arc;

use anyhow::{bail, Context};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use keyturn_aws::{Aws, AwsRotator, GitHubSettings};
use keyturn_core::audit::exempt::Exemptions;
use keyturn_core::rotation::ManagedSecrets;
use keyturn_core::rules;
use keyturn_core::{tags, RotationSettings};

use crate::accounts::Fleet;
use crate::args::{AwsArgs, Cli, Command, OrgCommand, Output};
use crate::safe::term;

pub async fn run(cli: Cli, output: Output) -> anyhow::Result<bool> {
    // A reviewed exemptions file is checked before anything else runs.
    let exemptions = match &cli.command {
        Command::Audit(a) => load_exemptions(a.exemptions.as_deref())?,
        Command::Rotate(a) => load_exemptions(a.exemptions.as_deref())?,
        _ => Exemptions::default(),
    };
    let config = sdk_config(&cli.aws).await?;
    let scope = rules::Scope::new(
        &cli.scope.prefix,
        &cli.scope.user_path,
        cli.scope.master_secrets.clone(),
    )
    .map_err(|e| {
        let (flag, env) = e.setting();
        anyhow::anyhow!("{e}; fix {flag} (or {env}); nothing was run")
    })?;
    let last_used_settle =
        keyturn_core::config::last_used_settle(cli.scope.last_used_settle_seconds.as_deref())
            .map_err(|e| anyhow::anyhow!("{e}; nothing was run"))?;
    let settings = RotationSettings {
        require_rotation_enabled: false,
        scope,
        last_used_settle,
        events: cli.delivery.events,
        sinks: rules::SinkPolicy {
            ssm_prefix: keyturn_core::config::ssm_prefix(cli.delivery.ssm_prefix.as_deref())
                .map_err(|e| anyhow::anyhow!("--ssm-prefix: {e}; nothing was run"))?,
            github_owners: trimmed(&cli.delivery.github_owners),
            github_disabled: cli.delivery.github_token_secret.is_none(),
            github_secret_names: trimmed(&cli.delivery.github_secret_names),
            ssm_kms_keys: trimmed(&cli.delivery.ssm_kms_keys),
        },
        ..RotationSettings::default()
    };
    let github = GitHubSettings {
        api_base: Some(cli.delivery.github_api.clone()),
        token_secret: cli.delivery.github_token_secret.clone(),
    };
    let name = cli.command.name();
    match cli.command {
        Command::Enroll(a) => enroll::run(&own(&config, &github, settings), &a, output).await,
        Command::Rotate(a) => {
            if !a.dry_run {
                rotate::arm(a.secrets.clone());
            }
            let fleet = Fleet::select(&config, &a.accounts, name, &github).await?;
            rotate::run(&fleet, settings, exemptions, a, output).await
        }
        Command::Status(a) => status::run(&own(&config, &github, settings), a, output).await,
        Command::Sweep(a) => {
            if !a.dry_run {
                sweep::arm();
            }
            let fleet = Fleet::select(&config, &a.accounts, name, &github).await?;
            sweep::run(&fleet, settings, a, output).await
        }
        // Json, the one format it has (checked in main).
        Command::CredentialProcess(a) => {
            credential_process::run(&own(&config, &github, settings), a).await
        }
        Command::Deliver(a) => deliver::deliver(&own(&config, &github, settings), a, output).await,
        Command::Rollback(a) => {
            deliver::rollback(&own(&config, &github, settings), a, output).await
        }
        Command::Audit(a) => {
            let fleet = Fleet::select(&config, &a.accounts, name, &github).await?;
            audit::run(&fleet, settings, exemptions, a, output).await
        }
        Command::Org(OrgCommand::Check(a)) => {
            let fleet = Fleet::select(&config, &a.accounts, name, &github).await?;
            org::check(&fleet, &cli.scope.prefix, output).await
        }
    }
}

/// A repeatable or comma-separated flag's values, as the function reads the same variable
/// (`keyturn_core::config::list`): trimmed, empty ones dropped.
fn trimmed(values: &[String]) -> Vec<String> {
    keyturn_core::config::list(Some(&values.join(",")))
}

/// The rotator for the caller's own account (the commands that act on one secret).
fn own(config: &SdkConfig, github: &GitHubSettings, settings: RotationSettings) -> Arc<AwsRotator> {
    Arc::new(Aws::from_config(config, github).rotator(settings))
}

fn load_exemptions(path: Option<&std::path::Path>) -> anyhow::Result<Exemptions> {
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

async fn sdk_config(a: &AwsArgs) -> anyhow::Result<SdkConfig> {
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
    let ManagedSecrets { inside, outside } = rotator.managed_secrets().await?;
    let scope = &rotator.settings().scope;
    for i in &outside {
        eprintln!(
            "keyturn: skipped {}: tagged {}={} but outside the prefix {}; name it to act on it, or pass --prefix",
            term(&i.name),
            tags::MANAGED,
            tags::MANAGED_TRUE,
            term(scope.prefix())
        );
    }
    Ok(inside.into_iter().map(|i| i.name).collect())
}
