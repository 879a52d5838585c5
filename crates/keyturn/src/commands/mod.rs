//! The commands, one module each. Each returns whether everything it looked at is fine (exit 0)
//! or not (exit 1). This file only dispatches: what every command starts from is `setup`.

mod audit;
mod credential_process;
mod deliver;
mod enroll;
mod notify;
mod org;
mod rotate;
mod status;
mod sweep;

use keyturn_aws::GitHubSettings;
use keyturn_core::audit::exempt::Exemptions;

use crate::accounts::Fleet;
use crate::args::{Cli, Command, OrgCommand, Output};
use crate::setup::{cli_setting_error, load_exemptions, own, sdk_config, setting_values};

pub async fn run(cli: Cli, output: Output) -> anyhow::Result<bool> {
    // A reviewed exemptions file is checked before anything else runs.
    let exemptions = match &cli.command {
        Command::Audit(a) => load_exemptions(a.exemptions.as_deref())?,
        Command::Rotate(a) => load_exemptions(a.exemptions.as_deref())?,
        _ => Exemptions::default(),
    };
    let config = sdk_config(&cli.aws).await?;
    // The same parser as the function's, fed the flags (each already falling back to its variable).
    let values = setting_values(&cli);
    let settings = keyturn_core::config::rotation_settings(|k| values.get(k).cloned(), false)
        .map_err(|e| anyhow::anyhow!("{}", cli_setting_error(&e)))?;
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
            let policy = keyturn_core::config::sweep_policy(|k| values.get(k).cloned())
                .map_err(|e| anyhow::anyhow!("{}", cli_setting_error(&e)))?;
            if !a.dry_run {
                sweep::arm();
            }
            let fleet = Fleet::select(&config, &a.accounts, name, &github).await?;
            sweep::run(&fleet, settings, policy, a, output).await
        }
        // Json, the one format it has (checked in main).
        Command::CredentialProcess(a) => {
            credential_process::run(&own(&config, &github, settings), a).await
        }
        Command::Deliver(a) => deliver::deliver(&own(&config, &github, settings), a, output).await,
        Command::Rollback(a) => {
            deliver::rollback(&own(&config, &github, settings), a, output).await
        }
        Command::Notify(a) => {
            // The sweep's policy decides "still in use"; its flags are the sweep's, read here
            // from their variables.
            let policy = keyturn_core::config::sweep_policy(|k| {
                values.get(k).cloned().or_else(|| std::env::var(k).ok())
            })
            .map_err(|e| anyhow::anyhow!("{}", cli_setting_error(&e)))?;
            notify::run(&own(&config, &github, settings), policy, a, output).await
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
