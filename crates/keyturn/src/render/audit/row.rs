//! One key's row of the audit, from the core's [`AuditEntry`]: the source of its JSON object, its
//! CSV row, its table row and its line on the HTML page.

use keyturn_core::audit::{AuditEntry, Finding};
use keyturn_core::error::rfc3339;
use serde::Serialize;

use crate::render::AccountFailure;

/// One key's line of the audit: its JSON object, its CSV row, the source of its table row and
/// of its line on the HTML page.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRow {
    pub(crate) user: String,
    pub(crate) arn: String,
    /// Its slot in the credential report (1 or 2, by creation); absent for a key IAM no longer has.
    pub(crate) slot: Option<u8>,
    pub(crate) key_id: Option<String>,
    pub(crate) age_days: Option<i64>,
    pub(crate) created: Option<String>,
    pub(crate) last_used: Option<String>,
    pub(crate) last_used_service: Option<String>,
    pub(crate) last_used_region: Option<String>,
    /// The managed secret holding the key, and the label it holds it under.
    pub(crate) secret: Option<String>,
    pub(crate) label: Option<String>,
    pub(crate) rotation_enabled: Option<bool>,
    pub(crate) next_rotation: Option<String>,
    /// An AWSCURRENT key after a keyturn cut-over: used since it (consumers switched) or not.
    pub(crate) used_since_cutover: Option<bool>,
    /// The finding that counts: the most serious of `findings`, or `exempt` while an exemption
    /// holds (or `account-failed` on an account's error row).
    pub(crate) finding: &'static str,
    pub(crate) findings: Vec<&'static str>,
    /// The exemption that covers the key: `holds` or `expired`, with its reason, owner and end.
    pub(crate) exemption: Option<&'static str>,
    pub(crate) exempt_reason: Option<String>,
    pub(crate) exempt_owner: Option<String>,
    pub(crate) exempt_until: Option<String>,
    /// Why the account could not be audited (its error row only).
    pub(crate) error: Option<String>,
    #[serde(skip)]
    pub(crate) worst: Finding,
}

impl AccountFailure for AuditRow {
    fn account_failed(error: String) -> Self {
        AuditRow {
            user: String::new(),
            arn: String::new(),
            slot: None,
            key_id: None,
            age_days: None,
            created: None,
            last_used: None,
            last_used_service: None,
            last_used_region: None,
            secret: None,
            label: None,
            rotation_enabled: None,
            next_rotation: None,
            used_since_cutover: None,
            finding: ACCOUNT_FAILED,
            findings: Vec::new(),
            exemption: None,
            exempt_reason: None,
            exempt_owner: None,
            exempt_until: None,
            error: Some(error),
            // Not a key's finding: the run's exit code (2) says the account failed.
            worst: Finding::Exempt,
        }
    }
}

/// An account's error row's finding.
const ACCOUNT_FAILED: &str = "account-failed";

/// The finding of a credential report row that could not be read.
const UNREADABLE: &str = "report-row-unreadable";

impl AuditRow {
    /// A credential report row that could not be read: its keys cannot be judged, so it fails the
    /// audit (exit 1) as the most serious finding would, and names the line and why.
    pub(crate) fn unreadable(error: String) -> Self {
        AuditRow {
            finding: UNREADABLE,
            worst: Finding::CurrentKeyMissing,
            ..AuditRow::account_failed(error)
        }
    }
}

impl AuditRow {
    pub(crate) fn new(e: &AuditEntry) -> Self {
        let m = e.managed.as_ref();
        AuditRow {
            user: e.user.clone(),
            arn: e.arn.clone(),
            slot: e.slot,
            key_id: e.key_id.clone(),
            age_days: e.age_days,
            created: e.created.map(rfc3339),
            last_used: e.last_used.map(rfc3339),
            last_used_service: e.last_used_service.clone(),
            last_used_region: e.last_used_region.clone(),
            secret: m.map(|m| m.secret.clone()),
            label: m.map(|m| m.label.clone()),
            rotation_enabled: m.map(|m| m.rotation_enabled),
            next_rotation: m.and_then(|m| m.next_rotation).map(rfc3339),
            used_since_cutover: e.used_since_cutover,
            finding: e.worst().as_str(),
            findings: e.findings.iter().map(|f| f.as_str()).collect(),
            exemption: e
                .exemption
                .as_ref()
                .map(|x| if x.holds { "holds" } else { "expired" }),
            exempt_reason: e.exemption.as_ref().map(|x| x.reason.clone()),
            exempt_owner: e.exemption.as_ref().map(|x| x.owner.clone()),
            exempt_until: e.exemption.as_ref().map(|x| x.until.to_string()),
            error: m.filter(|m| m.user_gone).map(|m| {
                format!(
                    "user {} no longer exists in IAM: secret {} holds the key of a deleted user, and whatever reads it fails; delete the secret, or enroll the user again (keyturn enroll)",
                    m.user, m.secret
                )
            }),
            worst: e.worst(),
        }
    }

    pub(crate) fn failed_account(&self) -> bool {
        self.error.is_some()
    }

    /// The findings column: the findings, then the exemption where one covers the key.
    pub(crate) fn findings_text(&self) -> String {
        if let Some(e) = &self.error {
            return format!("{ACCOUNT_FAILED}: {e}");
        }
        let findings = self.findings.join(",");
        match (self.exemption, &self.exempt_until) {
            (Some("holds"), Some(until)) if self.worst == Finding::Exempt => {
                format!("exempt until {until} ({findings})")
            }
            (Some("expired"), Some(until)) => format!("{findings}; exemption ended {until}"),
            _ => findings,
        }
    }

    /// The day of the last use and the service, or `never`.
    pub(crate) fn used(&self) -> String {
        match &self.last_used {
            Some(t) => format!(
                "{} {}",
                t.get(..10).unwrap_or(t),
                self.last_used_service.as_deref().unwrap_or("")
            )
            .trim_end()
            .to_string(),
            None => "never".into(),
        }
    }

    /// `secret (label)`, or `-` for a key no managed secret holds.
    pub(crate) fn held(&self) -> String {
        match (&self.secret, &self.label) {
            (Some(s), Some(l)) => format!("{s} ({l})"),
            (Some(s), None) => s.clone(),
            _ => "-".into(),
        }
    }
}
