//! `keyturn deliver` and `keyturn rollback`: keyturn-core's delivery and rollback, as typed rows.

use crate::setup::AwsRotator;

use crate::args::{DeliverArgs, Output, RollbackArgs};
use crate::render::deliver::{self, DeliverRow, RollbackRow};
use crate::render::print_json;

/// Delivers each secret in turn; exit 1 when one failed (the others are still delivered).
pub async fn deliver(r: &AwsRotator, a: DeliverArgs, output: Output) -> anyhow::Result<bool> {
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

/// Rolls one secret back; a refusal is the command's error (exit 2), with nothing changed.
pub async fn rollback(r: &AwsRotator, a: RollbackArgs, output: Output) -> anyhow::Result<bool> {
    let row = RollbackRow::from(r.rollback(&a.secret, a.dry_run).await?);
    match output {
        Output::Json => print_json(&row),
        Output::Table | Output::Csv => deliver::print_rollback(&row),
    }
    Ok(true)
}
