//! keyturn: the command-line tool. Parse (args) → validate (settings per command) → run
//! (commands), on the same engine as the rotation function. Exit codes: 0 ok, 1 findings (a secret
//! failed, a key still in use under `--in-use fail`), 2 error.

mod accounts;
mod args;
mod commands;
mod interrupt;
mod render;
mod safe;
mod setup;

use std::process::ExitCode;

use clap::{CommandFactory, Parser};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = args::Cli::parse();
    // A format the command cannot print is a usage error (exit 2), before any AWS call.
    let output = match cli.command.output(cli.output) {
        Ok(o) => o,
        Err(e) => args::Cli::command()
            .error(clap::error::ErrorKind::InvalidValue, e)
            .exit(),
    };
    // KEYTURN_LOG, then RUST_LOG, then --verbose (keyturn's steps and the SDK's account of each
    // request: retries, credentials, endpoints; the SDK redacts secrets in what it logs), else warn.
    let filter = tracing_subscriber::EnvFilter::try_from_env("KEYTURN_LOG")
        .or_else(|_| tracing_subscriber::EnvFilter::try_from_env("RUST_LOG"))
        .unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new(if cli.verbose {
                "info,keyturn=debug,keyturn_core=debug,keyturn_aws=debug,aws_config=debug,aws_sdk_iam=debug,aws_sdk_secretsmanager=debug,aws_sdk_sts=debug,aws_smithy_runtime::client::retries=debug,aws_smithy_runtime::client::orchestrator=debug,aws_smithy_runtime::client::orchestrator::auth=info"
            } else {
                "warn"
            })
        });
    // Whatever the filter, no dependency's TRACE events: they print request bodies.
    use tracing_subscriber::layer::SubscriberExt;
    let subscriber = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .with_target(cli.verbose)
        .finish()
        .with(tracing_subscriber::filter::filter_fn(keyturn_aws::loggable));
    // Only fails if a subscriber is already set, which nothing before this line does.
    let _ = tracing::subscriber::set_global_default(subscriber);
    match commands::run(cli, output).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            // Messages name secrets, users and tags from AWS: escaped for the terminal.
            eprintln!("keyturn: {}", safe::term(&message(&e)));
            if e.downcast_ref::<interrupt::Interrupted>().is_some() {
                ExitCode::from(interrupt::EXIT)
            } else {
                ExitCode::from(2)
            }
        }
    }
}

/// The error and its causes, each cause once: keyturn's messages already quote their source.
fn message(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}
