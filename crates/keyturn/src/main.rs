//! keyturn: the command-line tool. Parse (args) → validate (settings per command) → run
//! (commands), on the same engine as the rotation function. Exit codes: 0 ok, 1 findings (a secret
//! failed, a key still in use under `--in-use fail`), 2 error.

mod args;
mod audit;
mod commands;
mod enroll;
mod safe;

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = args::Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KEYTURN_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_target(false)
        .init();
    match commands::run(cli).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            // Messages name secrets, users and tags from AWS: escaped for the terminal.
            eprintln!("keyturn: {}", safe::term(&format!("{e:#}")));
            ExitCode::from(2)
        }
    }
}
