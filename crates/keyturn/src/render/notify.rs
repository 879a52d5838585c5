//! `keyturn notify`'s rows: each notice with its owner, kind and the message a chat channel shows.

use keyturn_core::ports::Notice;
use serde::Serialize;

use crate::safe::term;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NoticeRow {
    secret: String,
    owner: Option<String>,
    /// rotated, due, in-use, failed.
    kind: Option<&'static str>,
    title: Option<String>,
    /// The message as published: the chat integration's custom-notification JSON.
    message: Option<serde_json::Value>,
    dry_run: bool,
    sent: bool,
    error_type: Option<&'static str>,
    error: Option<String>,
}

impl NoticeRow {
    pub fn of(n: &Notice, dry_run: bool, sent: bool) -> Self {
        NoticeRow {
            secret: n.secret.clone(),
            owner: Some(n.owner.clone()),
            kind: Some(n.kind),
            title: Some(n.title.clone()),
            message: serde_json::from_str(&n.message()).ok(),
            dry_run,
            sent,
            error_type: None,
            error: (!dry_run && !sent)
                .then(|| "the topic refused the notice; the log says why".to_string()),
        }
    }

    pub fn failed(secret: String, e: &keyturn_core::RotationError) -> Self {
        NoticeRow {
            secret,
            owner: None,
            kind: None,
            title: None,
            message: None,
            dry_run: false,
            sent: false,
            error_type: Some(e.error_type()),
            error: Some(e.to_string()),
        }
    }

    pub fn fine(&self) -> bool {
        self.error.is_none()
    }
}

/// One line per notice: to whom, what, and whether it went.
pub fn print_notices(rows: &[NoticeRow], dry_run: bool) {
    if rows.is_empty() {
        println!("no notice is due today");
    }
    for row in rows {
        match (&row.error, &row.kind) {
            (Some(e), None) => println!("failed {}: {}", term(&row.secret), term(e)),
            (error, Some(kind)) => println!(
                "{} {} notice to {} about {}: {}{}",
                if dry_run {
                    "would send"
                } else if row.sent {
                    "sent"
                } else {
                    "not sent"
                },
                kind,
                term(row.owner.as_deref().unwrap_or("")),
                term(&row.secret),
                term(row.title.as_deref().unwrap_or("")),
                error
                    .as_ref()
                    .map(|e| format!(" ({})", term(e)))
                    .unwrap_or_default()
            ),
            (None, None) => {}
        }
    }
}
