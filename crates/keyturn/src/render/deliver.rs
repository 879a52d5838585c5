//! `keyturn deliver` and `keyturn rollback`: their rows, and their lines of text.

use keyturn_core::rotation::{DeliveryReport, RestartRequest, RollbackReport};
use serde::Serialize;

use crate::safe::term;

/// One secret's line of `keyturn deliver`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeliverRow {
    secret: String,
    user: Option<String>,
    key_id: Option<String>,
    /// The sinks delivered to, by name (the NAME of `keyturn:sink:NAME`).
    sinks: Vec<String>,
    /// An EventBridge event was published (--events).
    announced: bool,
    error_type: Option<&'static str>,
    pub error: Option<String>,
}

impl DeliverRow {
    pub fn of(secret: String, result: Result<DeliveryReport, keyturn_core::RotationError>) -> Self {
        match result {
            Ok(r) => DeliverRow {
                secret: r.secret,
                user: Some(r.user),
                key_id: Some(r.key_id),
                sinks: r.sinks,
                announced: r.announced,
                error_type: None,
                error: None,
            },
            Err(e) => DeliverRow {
                secret,
                user: None,
                key_id: None,
                sinks: Vec::new(),
                announced: false,
                error_type: Some(e.error_type()),
                error: Some(e.to_string()),
            },
        }
    }
}

/// One secret's line of `keyturn deliver --restart`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RestartRow {
    secret: String,
    user: Option<String>,
    /// AWSCURRENT's key, which the restarted consumers read.
    key_id: Option<String>,
    /// Each restart target (the NAME of `keyturn:restart:NAME`) with what was done: `restarted`,
    /// or `done` (it already restarted since the cut-over).
    targets: Vec<RestartTargetRow>,
    error_type: Option<&'static str>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct RestartTargetRow {
    name: String,
    result: &'static str,
}

impl RestartRow {
    pub fn of(secret: String, result: Result<RestartRequest, keyturn_core::RotationError>) -> Self {
        match result {
            Ok(r) => RestartRow {
                secret: r.secret,
                user: Some(r.user),
                key_id: Some(r.key_id),
                targets: r
                    .targets
                    .into_iter()
                    .map(|(name, result)| RestartTargetRow { name, result })
                    .collect(),
                error_type: None,
                error: None,
            },
            Err(e) => RestartRow {
                secret,
                user: None,
                key_id: None,
                targets: Vec::new(),
                error_type: Some(e.error_type()),
                error: Some(e.to_string()),
            },
        }
    }
}

/// One line per secret: which consumers were restarted, or why not.
pub fn print_restarts(rows: &[RestartRow]) {
    for row in rows {
        match &row.error {
            Some(e) => println!("failed {}: {}", term(&row.secret), term(e)),
            None if row.targets.is_empty() => println!(
                "{}: no restart target (the secret has no keyturn:restart:* tag)",
                term(&row.secret)
            ),
            None => println!(
                "{} key {}: {}",
                term(&row.secret),
                term(row.key_id.as_deref().unwrap_or("")),
                row.targets
                    .iter()
                    .map(|t| format!("{} {}", term(&t.name), t.result))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// `keyturn rollback`'s report.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RollbackRow {
    secret: String,
    user: String,
    /// The key AWSCURRENT holds again.
    key_id: String,
    /// The key it held before: now AWSPREVIOUS, retired by the sweep's normal rules.
    rolled_back_from: Option<String>,
    reactivated: bool,
    sinks: Vec<String>,
    announced: bool,
    dry_run: bool,
}

impl From<RollbackReport> for RollbackRow {
    fn from(r: RollbackReport) -> Self {
        RollbackRow {
            secret: r.secret,
            user: r.user,
            key_id: r.key_id,
            rolled_back_from: r.from_key,
            reactivated: r.reactivated,
            sinks: r.sinks,
            announced: r.announced,
            dry_run: r.dry_run,
        }
    }
}

/// One line per secret: what was delivered where, or why not.
pub fn print_deliveries(rows: &[DeliverRow]) {
    for row in rows {
        match (&row.error, &row.key_id) {
            (Some(e), _) => println!("failed {}: {}", term(&row.secret), term(e)),
            (None, key) => println!(
                "delivered {} key {} to {}{}",
                term(&row.secret),
                term(key.as_deref().unwrap_or("")),
                if row.sinks.is_empty() {
                    "no sink (the secret has no keyturn:sink:* tag)".to_string()
                } else {
                    format!("sink(s) {}", term(&row.sinks.join(", ")))
                },
                if row.announced {
                    "; event published"
                } else {
                    ""
                }
            ),
        }
    }
}

/// Where AWSCURRENT is now (or would be, on a dry run).
pub fn print_rollback(row: &RollbackRow) {
    println!(
        "{}{}: AWSCURRENT {} key {} of user {}{}{}{}",
        if row.dry_run { "dry run: " } else { "" },
        term(&row.secret),
        if row.dry_run {
            "would go back to"
        } else {
            "is back on"
        },
        term(&row.key_id),
        term(&row.user),
        match &row.rolled_back_from {
            Some(k) => format!(" (from {}, now AWSPREVIOUS, left to the sweep)", term(k)),
            None => String::new(),
        },
        if row.reactivated {
            if row.dry_run {
                "; it would be reactivated"
            } else {
                "; it was reactivated"
            }
        } else {
            ""
        },
        if row.sinks.is_empty() {
            String::new()
        } else {
            format!("; delivered to {}", term(&row.sinks.join(", ")))
        }
    );
}
