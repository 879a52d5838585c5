//! One account's audit as keyturn runs it, from `keyturn audit` (per account) and from the
//! function's daily run: the credential report fetched and read, the keys the managed secrets
//! hold, the key ids of users no managed secret covers, joined and judged ([`audit_with`]).

use futures_util::StreamExt;

use super::{audit_with, fetch_report, parse_report_rows, AuditEntry, AuditPolicy, ListedKey};
use super::{ManagedKey, ReportError, ReportRow};
use crate::ports::{ApiError, Iam, Ports};
use crate::{RotationError, Rotator};

/// Why an account could not be audited at all (one unreadable secret or user is a warning).
#[derive(Debug, thiserror::Error)]
pub enum AuditFailure {
    #[error("the IAM credential report could not be fetched (iam:GenerateCredentialReport, iam:GetCredentialReport): {0}")]
    Report(ApiError),
    #[error("the IAM credential report could not be read: {0}")]
    Unreadable(ReportError),
    #[error("the managed secrets could not be listed: {0}")]
    Secrets(RotationError),
}

/// An account's audit: every active key judged (exemptions not yet applied), each report row that
/// could not be read, and what could not be read but did not stop the audit.
#[derive(Debug, Default)]
pub struct Audited {
    pub entries: Vec<AuditEntry>,
    pub unreadable: Vec<ReportError>,
    pub warnings: Vec<String>,
}

/// How an account is audited.
#[derive(Debug, Clone, Copy)]
pub struct AuditRun {
    pub policy: AuditPolicy,
    /// The rotation period of managed secrets without a schedule or tag.
    pub rotation_days: i64,
    /// Secrets (and users) read at once.
    pub concurrency: usize,
    /// How long to wait for IAM to generate the credential report.
    pub report_timeout: std::time::Duration,
}

impl<P: Ports> Rotator<P> {
    /// Audits this rotator's account. `progress` is told (done, total) as the managed secrets are
    /// read.
    pub async fn audit_account(
        &self,
        run: &AuditRun,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<Audited, AuditFailure> {
        let csv = fetch_report(&self.iam().own(), self.clock(), run.report_timeout)
            .await
            .map_err(AuditFailure::Report)?;
        let (report, unreadable) = parse_report_rows(&csv).map_err(AuditFailure::Unreadable)?;
        let mut warnings = Vec::new();
        let (managed, mut listed) = self.managed_keys(run, progress, &mut warnings).await?;
        // Users with an active key no managed secret covers: their key ids, which the report
        // lacks (one ListAccessKeys each), so an unmanaged key is named.
        listed.extend(
            self.unmanaged_keys(&report, &listed, run.concurrency, &mut warnings)
                .await,
        );
        Ok(Audited {
            entries: audit_with(&report, &managed, &listed, &run.policy),
            unreadable,
            warnings,
        })
    }

    /// The keys managed secrets hold and every key of their users (`held_keys`), the secrets read
    /// `concurrency` at a time. A secret that cannot be read (its value broken, say) is a warning
    /// and its keys show as unmanaged: one must not hide the rest.
    async fn managed_keys(
        &self,
        run: &AuditRun,
        progress: &(dyn Fn(usize, usize) + Sync),
        warnings: &mut Vec<String>,
    ) -> Result<(Vec<ManagedKey>, Vec<ListedKey>), AuditFailure> {
        // Every managed secret, inside the prefix or not: the audit reports every key one holds.
        let secrets = self
            .managed_secrets()
            .await
            .map_err(AuditFailure::Secrets)?
            .all();
        let total = secrets.len();
        let mut done = 0;
        progress(done, total);
        let mut per_secret = futures_util::stream::iter(secrets)
            .map(|info| async move {
                let name = info.name.clone();
                (name, self.held_keys(info, run.rotation_days).await)
            })
            .buffered(run.concurrency.max(1));
        let (mut keys, mut listed) = (Vec::new(), Vec::new());
        while let Some((name, result)) = per_secret.next().await {
            done += 1;
            progress(done, total);
            match result {
                Ok((k, l)) => {
                    keys.extend(k);
                    listed.extend(l);
                }
                Err(e) => warnings.push(format!("{name}: {e}; its keys are reported as unmanaged")),
            }
        }
        Ok((keys, listed))
    }

    /// The keys of the report's users that have an active key and no managed secret listed them
    /// already (one ListAccessKeys each). A user whose keys cannot be listed keeps no key id, with
    /// a warning: the rest of the audit does not depend on it.
    async fn unmanaged_keys(
        &self,
        report: &[ReportRow],
        listed: &[ListedKey],
        concurrency: usize,
        warnings: &mut Vec<String>,
    ) -> Vec<ListedKey> {
        let known: std::collections::HashSet<&str> =
            listed.iter().map(|l| l.user.as_str()).collect();
        let users: Vec<String> = report
            .iter()
            .filter(|row| !known.contains(row.user.as_str()) && row.keys.iter().any(|k| k.active))
            .map(|row| row.user.clone())
            .collect();
        let per_user: Vec<_> = futures_util::stream::iter(users)
            .map(|user| async move {
                let keys = self.listed_keys(&user).await;
                (user, keys)
            })
            .buffered(concurrency.max(1))
            .collect()
            .await;
        let mut out = Vec::new();
        for (user, keys) in per_user {
            match keys {
                Ok(keys) => out.extend(keys),
                Err(e) => warnings.push(format!(
                    "the keys of user {user} could not be listed ({e}); its unmanaged key is shown without its id (grant iam:ListAccessKeys)"
                )),
            }
        }
        out
    }
}
