//! `keyturn deliver` and `keyturn rollback`: keyturn-core's delivery and rollback, as typed rows.

use crate::setup::AwsRotator;

use crate::args::{DeliverArgs, Output, RollbackArgs};
use crate::render::deliver::{self, DeliverRow, RestartRow, RollbackRow};
use crate::render::print_json;

/// Delivers each secret in turn; exit 1 when one failed (the others are still delivered). With
/// `--restart`, restarts each secret's consumers instead.
pub async fn deliver(r: &AwsRotator, a: DeliverArgs, output: Output) -> anyhow::Result<bool> {
    if a.restart {
        return restart(r, a, output).await;
    }
    let mut rows = Vec::with_capacity(a.secrets.len());
    for secret in a.secrets {
        let result = r.deliver(&secret).await;
        rows.push(DeliverRow::of(secret, result));
    }
    match output {
        Output::Json => print_json(&rows),
        Output::Table | Output::Csv => deliver::print_deliveries(&rows),
    }
    Ok(rows.iter().all(|r| r.error.is_none()))
}

/// Restarts each secret's consumers in turn; exit 1 when one failed (the others are still tried).
async fn restart(r: &AwsRotator, a: DeliverArgs, output: Output) -> anyhow::Result<bool> {
    let mut rows = Vec::with_capacity(a.secrets.len());
    for secret in a.secrets {
        let result = r.restart(&secret, !a.all_targets).await;
        rows.push(RestartRow::of(secret, result));
    }
    match output {
        Output::Json => print_json(&rows),
        Output::Table | Output::Csv => deliver::print_restarts(&rows),
    }
    Ok(rows.iter().all(|r| r.error.is_none()))
}

/// Rolls one secret back; a refusal is the command's error (exit 2), with nothing changed.
pub async fn rollback(r: &AwsRotator, a: RollbackArgs, output: Output) -> anyhow::Result<bool> {
    let row = RollbackRow::from(r.rollback(&a.secret, a.dry_run).await?);
    match output {
        Output::Json => print_json(&row),
        Output::Table | Output::Csv => deliver::print_rollback(&row),
    }
    Ok(true)
}
