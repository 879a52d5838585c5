//! The account audit: the IAM credential report joined with the keys managed secrets hold.
//!
//! Pure: the caller fetches the report and the managed keys; this parses, joins and judges. Only
//! active keys count. Ages are evaluated as of a given instant (`--as-of`), so a review can ask what
//! will be overdue at a future date.

use std::collections::HashMap;

use time::{Duration, OffsetDateTime};

use crate::ports::{AccessKeys, ApiError, ApiResult, Clock};

mod account;
pub mod exempt;
mod held;
pub mod hub;
mod report;

pub use account::{AuditFailure, AuditRun, Audited};
pub use held::{joined, listed};
pub use report::{parse_report, parse_report_rows, ReportError, ReportKey, ReportRow};

/// Generates the IAM credential report and waits for it: GenerateCredentialReport polled with
/// exponential backoff (0.25 s doubling to 4 s) until the report is complete or `timeout` passes,
/// then GetCredentialReport's CSV.
pub async fn fetch_report(
    iam: &impl AccessKeys,
    clock: &impl Clock,
    timeout: std::time::Duration,
) -> ApiResult<Vec<u8>> {
    let mut waited = std::time::Duration::ZERO;
    let mut delay = std::time::Duration::from_millis(250);
    while !iam.generate_report().await? {
        if waited + delay > timeout {
            return Err(ApiError::Other {
                code: "ReportTimeout".into(),
                message: format!(
                    "the IAM credential report was not complete after {} s; try again, or allow longer with --report-timeout",
                    timeout.as_secs()
                ),
            });
        }
        clock.sleep(delay).await;
        waited += delay;
        delay = (delay * 2).min(std::time::Duration::from_secs(4));
    }
    iam.report().await
}

/// A key a managed secret holds, as the caller found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagedKey {
    pub secret: String,
    /// AWSCURRENT or AWSPREVIOUS.
    pub label: String,
    pub user: String,
    pub key_id: String,
    /// The key's report slot (its position among the user's keys by creation), if known.
    pub slot: Option<u8>,
    pub created: Option<OffsetDateTime>,
    pub rotation_enabled: bool,
    pub next_rotation: Option<OffsetDateTime>,
    pub rotation_days: i64,
    /// When the current key took over (for a previous key's grace period).
    pub cutover: Option<OffsetDateTime>,
    /// The secret's own grace period (`keyturn:grace-days`), if it sets one.
    pub grace: Option<Duration>,
    /// Whether IAM lists the key for the user (an AWSCURRENT key that does not exist is a finding
    /// of its own).
    pub exists: bool,
    /// The secret's IAM user no longer exists (its key went with it).
    pub user_gone: bool,
}

/// A key ListAccessKeys showed for the user of a managed secret, held by a version or not: it
/// names the key id the credential report leaves out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedKey {
    pub user: String,
    pub key_id: String,
    /// Its position among the user's keys by creation (the report's slot).
    pub slot: u8,
    pub created: OffsetDateTime,
}

/// What the audit says about one active key, from least to most serious.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Finding {
    /// A key with findings that a reviewed exemption covers until its date: it counts for no
    /// `--fail-on` threshold.
    Exempt,
    Ok,
    NeverUsed,
    Due,
    StalePrevious,
    Unmanaged,
    Overdue,
    /// A managed secret's AWSCURRENT key no longer exists in IAM: whatever reads the secret fails.
    CurrentKeyMissing,
}

impl Finding {
    pub const ALL: [Finding; 8] = [
        Finding::Exempt,
        Finding::Ok,
        Finding::NeverUsed,
        Finding::Due,
        Finding::StalePrevious,
        Finding::Unmanaged,
        Finding::Overdue,
        Finding::CurrentKeyMissing,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Finding::Exempt => "exempt",
            Finding::Ok => "ok",
            Finding::NeverUsed => "never-used",
            Finding::Due => "due",
            Finding::StalePrevious => "stale-previous",
            Finding::Unmanaged => "unmanaged",
            Finding::Overdue => "overdue",
            Finding::CurrentKeyMissing => "current-key-missing",
        }
    }

    pub fn parse(s: &str) -> Option<Finding> {
        Finding::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuditPolicy {
    pub as_of: OffsetDateTime,
    /// Older than this is overdue (CIS: 90 days).
    pub max_age: Duration,
    /// How long an AWSPREVIOUS key may stay active after the cut-over.
    pub grace: Duration,
}

/// An exemption (`exempt`) as it applies to one key on the audit's date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    pub reason: String,
    pub owner: String,
    pub until: time::Date,
    /// Whether it holds on the audit's date (else it expired and the key is judged as usual).
    pub holds: bool,
}

/// One active key, judged (or a managed secret's AWSCURRENT key that IAM no longer has, with no
/// slot).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    pub user: String,
    pub arn: String,
    pub slot: Option<u8>,
    pub key_id: Option<String>,
    pub created: Option<OffsetDateTime>,
    pub age_days: Option<i64>,
    pub last_used: Option<OffsetDateTime>,
    pub last_used_service: Option<String>,
    pub last_used_region: Option<String>,
    pub managed: Option<ManagedKey>,
    /// Every finding that applies, most serious first (`[Ok]` when none does), exemption or not.
    pub findings: Vec<Finding>,
    /// The exemption that covers the key ([`exempt::apply`]), holding or expired.
    pub exemption: Option<Applied>,
    /// For a managed secret's AWSCURRENT key with a recorded cut-over: whether it has been used
    /// since (the evidence that consumers switched; `rules::used_since`).
    pub used_since_cutover: Option<bool>,
}

impl AuditEntry {
    /// The finding that counts: the most serious, or `exempt` while an exemption holds for a key
    /// that has any.
    pub fn worst(&self) -> Finding {
        let judged = self.findings.first().copied().unwrap_or(Finding::Ok);
        match &self.exemption {
            Some(x) if x.holds && judged > Finding::Ok => Finding::Exempt,
            _ => judged,
        }
    }
}

/// Joins the report with the managed keys and judges every active key.
pub fn audit(rows: &[ReportRow], managed: &[ManagedKey], policy: &AuditPolicy) -> Vec<AuditEntry> {
    audit_with(rows, managed, &[], policy)
}

/// A key's age in whole days as of `as_of`: calendar days (UTC) from its creation date to the
/// as-of date, so a key made today is 0 days old and 100 days later is 100 days old whatever the
/// hour.
pub fn age_in_days(created: OffsetDateTime, as_of: OffsetDateTime) -> i64 {
    let utc = time::UtcOffset::UTC;
    (as_of.to_offset(utc).date() - created.to_offset(utc).date()).whole_days()
}

/// [`audit`], naming the key ids ListAccessKeys gave for managed users' other keys too, and adding
/// an entry for each managed AWSCURRENT key IAM no longer has.
pub fn audit_with(
    rows: &[ReportRow],
    managed: &[ManagedKey],
    listed: &[ListedKey],
    policy: &AuditPolicy,
) -> Vec<AuditEntry> {
    let index = Index::new(managed, listed);
    let mut entries = Vec::new();
    for row in rows {
        for key in row.keys.iter().filter(|k| k.active) {
            let held = index.held(&row.user, key);
            let age_days = key.created.map(|c| age_in_days(c, policy.as_of));
            entries.push(AuditEntry {
                user: row.user.clone(),
                arn: row.arn.clone(),
                slot: Some(key.slot),
                key_id: held
                    .map(|m| m.key_id.clone())
                    .or_else(|| index.listed_id(&row.user, key)),
                created: key.created,
                age_days,
                last_used: key.last_used,
                last_used_service: key.last_used_service.clone(),
                last_used_region: key.last_used_region.clone(),
                used_since_cutover: held.and_then(|m| used_since_cutover(m, key)),
                managed: held.cloned(),
                findings: findings(key, held, age_days, policy),
                exemption: None,
            });
        }
    }
    let missing = managed
        .iter()
        .filter(|m| !m.exists && m.label == crate::tags::AWSCURRENT);
    entries.extend(missing.map(|m| current_key_missing(m, rows)));
    entries
}

fn same_second(a: Option<OffsetDateTime>, b: Option<OffsetDateTime>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => a.unix_timestamp() == b.unix_timestamp(),
        _ => false,
    }
}

/// The managed keys by user and slot, and the listed keys by user and slot.
struct Index<'a> {
    by_slot: HashMap<(&'a str, u8), &'a ManagedKey>,
    by_user: HashMap<&'a str, Vec<&'a ManagedKey>>,
    listed_by_slot: HashMap<(&'a str, u8), &'a ListedKey>,
}

impl<'a> Index<'a> {
    fn new(managed: &'a [ManagedKey], listed: &'a [ListedKey]) -> Self {
        let mut index = Index {
            by_slot: HashMap::new(),
            by_user: HashMap::new(),
            listed_by_slot: listed
                .iter()
                .map(|k| ((k.user.as_str(), k.slot), k))
                .collect(),
        };
        for m in managed {
            if let Some(slot) = m.slot {
                index.by_slot.insert((m.user.as_str(), slot), m);
            }
            index.by_user.entry(m.user.as_str()).or_default().push(m);
        }
        index
    }

    /// The managed key a report key is: by slot, confirmed by the creation date; else, among the
    /// user's managed keys of unknown slot, by creation date alone (a key with a known slot
    /// belongs to that slot alone: two keys can share a creation second).
    fn held(&self, user: &str, key: &ReportKey) -> Option<&'a ManagedKey> {
        self.by_slot
            .get(&(user, key.slot))
            .filter(|m| {
                m.created.is_none() || key.created.is_none() || same_second(m.created, key.created)
            })
            .copied()
            .or_else(|| {
                self.by_user.get(user).and_then(|ms| {
                    ms.iter()
                        .find(|m| m.slot.is_none() && same_second(m.created, key.created))
                        .copied()
                })
            })
    }

    /// An unheld key's id from ListAccessKeys, by slot, confirmed by the creation date.
    fn listed_id(&self, user: &str, key: &ReportKey) -> Option<String> {
        self.listed_by_slot
            .get(&(user, key.slot))
            .filter(|l| key.created.is_none() || same_second(Some(l.created), key.created))
            .map(|l| l.key_id.clone())
    }
}

/// Every finding that applies to an active key, most serious first (`[Ok]` when none does).
fn findings(
    key: &ReportKey,
    held: Option<&ManagedKey>,
    age_days: Option<i64>,
    policy: &AuditPolicy,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    if age_days.is_some_and(|a| a > policy.max_age.whole_days()) {
        findings.push(Finding::Overdue);
    }
    match held {
        None => findings.push(Finding::Unmanaged),
        Some(m) if m.label == crate::tags::AWSPREVIOUS => {
            let since = m.cutover.or(m.created);
            let grace = m.grace.unwrap_or(policy.grace);
            if since.is_none_or(|s| policy.as_of - s > grace) {
                findings.push(Finding::StalePrevious);
            }
        }
        Some(m) => {
            if age_days.is_some_and(|a| a > m.rotation_days) {
                findings.push(Finding::Due);
            }
        }
    }
    if key.last_used.is_none() {
        findings.push(Finding::NeverUsed);
    }
    findings.sort_by(|a, b| b.cmp(a));
    if findings.is_empty() {
        findings.push(Finding::Ok);
    }
    findings
}

/// For an AWSCURRENT key after a cut-over: whether it was used since (the same judgement as
/// `status`'s switch evidence; the audit reads no value, so the key's creation bounds the
/// cut-over from below).
fn used_since_cutover(m: &ManagedKey, key: &ReportKey) -> Option<bool> {
    let cut = m.cutover.filter(|_| m.label == crate::tags::AWSCURRENT)?;
    let used = crate::ports::KeyUse {
        last_used: key.last_used,
        service: key.last_used_service.clone(),
        region: key.last_used_region.clone(),
    };
    let bounds = crate::rules::Cutover {
        earliest: m.created,
        latest: Some(cut),
        recorded: None,
        doubt: None,
    };
    Some(crate::rules::policy::switched(Some(&used), &bounds))
}

/// The entry of a managed secret's AWSCURRENT key that IAM no longer has.
fn current_key_missing(m: &ManagedKey, rows: &[ReportRow]) -> AuditEntry {
    AuditEntry {
        user: m.user.clone(),
        arn: rows
            .iter()
            .find(|r| r.user == m.user)
            .map(|r| r.arn.clone())
            .unwrap_or_default(),
        slot: None,
        key_id: Some(m.key_id.clone()),
        created: None,
        age_days: None,
        last_used: None,
        last_used_service: None,
        last_used_region: None,
        managed: Some(m.clone()),
        findings: vec![Finding::CurrentKeyMissing],
        exemption: None,
        used_since_cutover: None,
    }
}

/// Age buckets for the chart: (label, upper bound in days, inclusive).
pub const AGE_BUCKETS: [(&str, i64); 6] = [
    ("0–30 days", 30),
    ("31–60", 60),
    ("61–90", 90),
    ("91–180", 180),
    ("181–365", 365),
    ("over a year", i64::MAX),
];

/// How many keys fall in each age bucket (unknown ages are left out).
pub fn age_histogram(entries: &[AuditEntry]) -> Vec<(&'static str, usize)> {
    age_buckets(entries.iter().filter_map(|e| e.age_days))
}

/// How many of these ages (in days) fall in each age bucket.
pub fn age_buckets(ages: impl Iterator<Item = i64> + Clone) -> Vec<(&'static str, usize)> {
    AGE_BUCKETS
        .iter()
        .enumerate()
        .map(|(i, (label, upper))| {
            let lower = if i == 0 {
                i64::MIN
            } else {
                AGE_BUCKETS[i - 1].1
            };
            let n = ages.clone().filter(|d| *d > lower && d <= upper).count();
            (*label, n)
        })
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use time::macros::datetime;

    pub(crate) const HEADER: &str = "user,arn,user_creation_time,password_enabled,password_last_used,password_last_changed,password_next_rotation,mfa_active,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service,cert_1_active,cert_1_last_rotated,cert_2_active,cert_2_last_rotated";

    pub(crate) fn row(user: &str, k1: &str, k2: &str) -> String {
        format!("{user},arn:aws:iam::123456789012:user/{user},2026-01-01T00:00:00+00:00,false,not_supported,N/A,N/A,false,{k1},{k2},false,N/A,false,N/A")
    }

    pub(crate) fn report(rows: &[String]) -> Vec<u8> {
        format!("{HEADER}\n{}\n", rows.join("\n")).into_bytes()
    }

    fn managed(label: &str, slot: u8, created: OffsetDateTime) -> ManagedKey {
        ManagedKey {
            secret: "keyturn/app1".into(),
            label: label.into(),
            user: "app1".into(),
            key_id: format!("AKIA{slot}"),
            slot: Some(slot),
            created: Some(created),
            rotation_enabled: true,
            next_rotation: None,
            rotation_days: 30,
            cutover: Some(datetime!(2026-03-01 00:00 UTC)),
            grace: None,
            exists: true,
            user_gone: false,
        }
    }

    #[test]
    fn findings_follow_age_management_and_use() {
        let rows = parse_report(&report(&[
            row(
                "app1",
                "true,2026-01-01T00:00:00+00:00,2026-02-01T00:00:00+00:00,us-east-1,s3",
                "true,2026-03-01T00:00:00+00:00,2026-03-02T00:00:00+00:00,us-east-1,s3",
            ),
            row(
                "stray",
                "true,2026-03-01T00:00:00+00:00,N/A,N/A,N/A",
                "false,N/A,N/A,N/A,N/A",
            ),
        ]))
        .expect("report");
        let keys = [
            managed("AWSPREVIOUS", 1, datetime!(2026-01-01 00:00 UTC)),
            managed("AWSCURRENT", 2, datetime!(2026-03-01 00:00 UTC)),
        ];
        let judge = |as_of| {
            let p = AuditPolicy {
                as_of,
                max_age: Duration::days(90),
                grace: Duration::days(7),
            };
            audit(&rows, &keys, &p)
                .iter()
                .map(|e| (e.user.clone(), e.slot.unwrap_or(0), e.findings.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            judge(datetime!(2026-03-05 00:00 UTC)),
            vec![
                ("app1".into(), 1, vec![Finding::Ok]),
                ("app1".into(), 2, vec![Finding::Ok]),
                (
                    "stray".into(),
                    1,
                    vec![Finding::Unmanaged, Finding::NeverUsed]
                ),
            ]
        );
        assert_eq!(
            judge(datetime!(2026-04-05 00:00 UTC)),
            vec![
                (
                    "app1".into(),
                    1,
                    vec![Finding::Overdue, Finding::StalePrevious]
                ),
                ("app1".into(), 2, vec![Finding::Due]),
                (
                    "stray".into(),
                    1,
                    vec![Finding::Unmanaged, Finding::NeverUsed]
                ),
            ]
        );
        let p = AuditPolicy {
            as_of: datetime!(2026-04-05 00:00 UTC),
            max_age: Duration::days(90),
            grace: Duration::days(7),
        };
        let entries = audit(&rows, &keys, &p);
        assert_eq!(entries[1].key_id.as_deref(), Some("AKIA2"));
        assert_eq!(
            age_histogram(&entries),
            vec![
                ("0–30 days", 0),
                ("31–60", 2),
                ("61–90", 0),
                ("91–180", 1),
                ("181–365", 0),
                ("over a year", 0)
            ]
        );
    }

    #[test]
    fn a_managed_key_matches_its_own_slot_only() {
        // Two keys made in the same second: slot 1 is managed, slot 2 is not.
        let rows = parse_report(&report(&[row(
            "app1",
            "true,2026-03-01T00:00:00+00:00,N/A,N/A,N/A",
            "true,2026-03-01T00:00:00+00:00,2026-03-02T00:00:00+00:00,us-east-1,sts",
        )]))
        .expect("report");
        let keys = [managed(
            "AWSCURRENT",
            1,
            datetime!(2026-03-01 00:00:00.4 UTC),
        )];
        let p = AuditPolicy {
            as_of: datetime!(2026-03-05 00:00 UTC),
            max_age: Duration::days(90),
            grace: Duration::days(7),
        };
        let entries = audit(&rows, &keys, &p);
        assert_eq!(entries[0].key_id.as_deref(), Some("AKIA1"));
        assert_eq!(entries[1].key_id, None);
        assert_eq!(entries[1].findings, vec![Finding::Unmanaged]);
        // Without slot information, the creation date decides.
        let unslotted = [ManagedKey {
            slot: None,
            ..keys[0].clone()
        }];
        assert_eq!(
            audit(&rows, &unslotted, &p)[0].key_id.as_deref(),
            Some("AKIA1")
        );
    }

    #[test]
    fn ages_are_whole_calendar_days_and_unheld_keys_of_managed_users_are_named() {
        let rows = parse_report(&report(&[row(
            "app1",
            "true,2026-03-01T00:10:00+00:00,N/A,N/A,N/A",
            "true,2026-03-01T23:50:00+00:00,N/A,N/A,N/A",
        )]))
        .expect("report");
        let keys = [managed("AWSCURRENT", 1, datetime!(2026-03-01 00:10 UTC))];
        let listed = [ListedKey {
            user: "app1".into(),
            key_id: "AKIASTRAY".into(),
            slot: 2,
            created: datetime!(2026-03-01 23:50 UTC),
        }];
        let p = AuditPolicy {
            // --as-of 2026-06-09: 100 days after 2026-03-01, whatever the hour of creation.
            as_of: datetime!(2026-06-09 00:00 UTC),
            max_age: Duration::days(100),
            grace: Duration::days(7),
        };
        let entries = audit_with(&rows, &keys, &listed, &p);
        assert_eq!(
            entries.iter().map(|e| e.age_days).collect::<Vec<_>>(),
            [Some(100), Some(100)]
        );
        assert!(
            !entries[0].findings.contains(&Finding::Overdue),
            "100 days is not older than 100"
        );
        assert_eq!(entries[1].key_id.as_deref(), Some("AKIASTRAY"));
        assert_eq!(entries[1].worst(), Finding::Unmanaged);
        assert_eq!(
            age_in_days(
                datetime!(2026-03-01 23:59 UTC),
                datetime!(2026-03-02 00:01 UTC)
            ),
            1
        );
    }

    #[test]
    fn a_managed_current_key_that_iam_no_longer_has_is_the_most_serious_finding() {
        let rows = parse_report(&report(&[row(
            "app1",
            "false,N/A,N/A,N/A,N/A",
            "false,N/A,N/A,N/A,N/A",
        )]))
        .expect("report");
        let gone = ManagedKey {
            slot: None,
            created: None,
            exists: false,
            user_gone: false,
            key_id: "AKIAGONE".into(),
            ..managed("AWSCURRENT", 1, datetime!(2026-03-01 00:00 UTC))
        };
        let p = AuditPolicy {
            as_of: datetime!(2026-03-05 00:00 UTC),
            max_age: Duration::days(90),
            grace: Duration::days(7),
        };
        let entries = audit(&rows, &[gone], &p);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].worst(), Finding::CurrentKeyMissing);
        assert_eq!(entries[0].key_id.as_deref(), Some("AKIAGONE"));
        assert_eq!(entries[0].slot, None);
        assert!(Finding::ALL
            .iter()
            .all(|f| *f <= Finding::CurrentKeyMissing));
    }

    #[test]
    fn a_large_report_parses_and_joins() {
        let rows: Vec<String> = (0..10_000)
            .map(|i| {
                row(
                    &format!("user{i}"),
                    "true,2026-01-01T00:00:00+00:00,2026-02-01T00:00:00+00:00,us-east-1,s3",
                    "false,N/A,N/A,N/A,N/A",
                )
            })
            .collect();
        let parsed = parse_report(&report(&rows)).expect("10k rows");
        let p = AuditPolicy {
            as_of: datetime!(2026-06-01 00:00 UTC),
            max_age: Duration::days(90),
            grace: Duration::days(7),
        };
        let entries = audit(&parsed, &[], &p);
        assert_eq!(entries.len(), 10_000);
        assert!(entries
            .iter()
            .all(|e| e.findings == vec![Finding::Overdue, Finding::Unmanaged]));
    }
}
