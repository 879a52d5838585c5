//! The audit in AWS Security Hub: one finding per key in the AWS Security Finding Format, with a
//! stable id per account, user and key, so a re-run updates a finding and never duplicates it; a
//! key that is fixed or gone has its finding resolved on the next run.
//!
//! [`findings`] maps judged entries to findings (pure); [`publish`] lists keyturn's active
//! findings for the account, imports the current ones and archives the rest, in batches of at most
//! [`BATCH`] (the API's limit), backing off when Security Hub throttles.

use std::collections::BTreeSet;

use time::OffsetDateTime;

use super::{AuditEntry, Finding};
use crate::ports::{ApiError, ApiResult, Clock, Delivery, HubFinding, HubResource, HubSeverity};

/// BatchImportFindings and BatchUpdateFindings take at most 100 findings a call.
pub const BATCH: usize = 100;

/// The ASFF type of every keyturn finding (`namespace/category/classifier`).
pub const TYPE: &str =
    "Software and Configuration Checks/AWS Security Best Practices/IAM access key rotation";

/// The id of a key's finding: `keyturn/{account}/{user}/{key}`, the key its id, or `slot-N` when
/// the report gave none. IAM user names have no `/`, so the id reads back unambiguously.
pub fn finding_id(account: &str, user: &str, key: &str) -> String {
    format!("{}{user}/{key}", prefix(account))
}

/// The prefix of every keyturn finding about `account`'s keys.
pub fn prefix(account: &str) -> String {
    format!("keyturn/{account}/")
}

/// How serious a finding is in Security Hub: a secret whose current key is gone breaks whatever
/// reads it (critical); a key past the maximum age (high); a key no secret manages or an old key
/// still active after its grace period (medium); a key due for rotation or never used (low); a key
/// under a reviewed exemption (informational). A key with no finding has none.
pub fn severity(finding: Finding) -> Option<HubSeverity> {
    Some(match finding {
        Finding::Ok => return None,
        Finding::Exempt => HubSeverity::Informational,
        Finding::NeverUsed | Finding::Due => HubSeverity::Low,
        Finding::Unmanaged | Finding::StalePrevious => HubSeverity::Medium,
        Finding::Overdue => HubSeverity::High,
        Finding::CurrentKeyMissing => HubSeverity::Critical,
    })
}

fn remediation(finding: Finding, user: &str, secret: Option<&str>) -> String {
    let secret = secret.unwrap_or("SECRET");
    match finding {
        Finding::CurrentKeyMissing => format!(
            "Whatever reads secret {secret} fails: if its AWSPREVIOUS key still works, `keyturn rollback {secret}` makes it current again; otherwise put a working key of user {user} in the secret, then `keyturn rotate {secret}` (`keyturn status {secret}` shows what the secret holds)."
        ),
        Finding::Unmanaged => format!(
            "Put the user under rotation: `keyturn enroll {user}` makes a managed secret with a fresh key (or `keyturn enroll --adopt SECRET` takes over a hand-made secret that holds this key); move its programs to the secret, then deactivate and delete this key."
        ),
        Finding::StalePrevious => format!(
            "Retire the previous key once its consumers switched: `keyturn sweep {secret}` (`keyturn status {secret}` shows whether it is still in use)."
        ),
        Finding::Overdue | Finding::Due => format!(
            "Rotate the key: `keyturn rotate {secret}` (or enroll user {user} with `keyturn enroll {user}` when no secret holds it)."
        ),
        Finding::NeverUsed => format!(
            "A key nothing has used: if no program needs user {user}'s key, deactivate and delete it; `keyturn audit` shows when it was made."
        ),
        Finding::Exempt | Finding::Ok => {
            "Reviewed and exempt until the date in the note: renew the exemption after review, or rotate the key.".into()
        }
    }
}

/// The findings of an account's audited keys: one per key with a finding (an `ok` key has none:
/// its earlier finding is resolved).
pub fn findings(account: &str, entries: &[AuditEntry], as_of: OffsetDateTime) -> Vec<HubFinding> {
    entries
        .iter()
        .filter_map(|e| finding(account, e, as_of))
        .collect()
}

fn finding(account: &str, e: &AuditEntry, as_of: OffsetDateTime) -> Option<HubFinding> {
    let worst = e.worst();
    let severity = severity(worst)?;
    let key = match (&e.key_id, e.slot) {
        (Some(id), _) => id.clone(),
        (None, Some(slot)) => format!("slot-{slot}"),
        (None, None) => return None,
    };
    let judged = e.findings.first().copied().unwrap_or(Finding::Ok);
    let secret = e.managed.as_ref().map(|m| m.secret.as_str());
    let named = e.key_id.as_deref().unwrap_or("(id not listed)");
    let all: Vec<&str> = e.findings.iter().map(|f| f.as_str()).collect();
    let title = match worst {
        Finding::Exempt => format!(
            "IAM access key {named} of {} is exempt ({})",
            e.user,
            judged.as_str()
        ),
        Finding::CurrentKeyMissing => format!(
            "The current key {named} of secret {} no longer exists in IAM",
            secret.unwrap_or("-")
        ),
        Finding::Overdue => format!(
            "IAM access key {named} of {} is overdue for rotation",
            e.user
        ),
        Finding::Due => format!("IAM access key {named} of {} is due for rotation", e.user),
        Finding::Unmanaged => format!("IAM access key {named} of {} is not under rotation", e.user),
        Finding::StalePrevious => format!(
            "The previous key {named} of {} is still active after its grace period",
            e.user
        ),
        Finding::NeverUsed => format!("IAM access key {named} of {} has never been used", e.user),
        Finding::Ok => return None,
    };
    let age = e
        .age_days
        .map_or_else(|| "of unknown age".to_string(), |d| format!("{d} days old"));
    let held = match (&e.managed, secret) {
        (Some(m), Some(s)) => format!("held as {} by secret {s}", m.label),
        _ => "held by no keyturn secret".to_string(),
    };
    let mut description = format!(
        "keyturn's audit of account {account} on {}: the key of IAM user {} is {age}, {held}; findings: {}.",
        as_of.date(),
        e.user,
        all.join(", ")
    );
    let note = e
        .exemption
        .as_ref()
        .filter(|x| x.holds)
        .map(|x| format!("Exempt until {} (owner {}): {}", x.until, x.owner, x.reason));
    if let Some(n) = &note {
        description.push_str(&format!(" {n}."));
    }
    let mut resources = vec![HubResource::AccessKey {
        key_id: e.key_id.clone(),
        user: e.user.clone(),
        account: account.to_string(),
        created: e.created,
        active: worst != Finding::CurrentKeyMissing,
    }];
    if !e.arn.is_empty() {
        resources.push(HubResource::User { arn: e.arn.clone() });
    }
    if let Some(s) = secret {
        resources.push(HubResource::Secret { id: s.to_string() });
    }
    let mut fields = vec![
        ("keyturn/finding".to_string(), worst.as_str().to_string()),
        ("keyturn/findings".to_string(), all.join(",")),
        ("keyturn/account".to_string(), account.to_string()),
        ("keyturn/user".to_string(), e.user.clone()),
        ("keyturn/key".to_string(), key.clone()),
    ];
    if let Some(d) = e.age_days {
        fields.push(("keyturn/ageDays".to_string(), d.to_string()));
    }
    if let Some(s) = secret {
        fields.push(("keyturn/secret".to_string(), s.to_string()));
    }
    if let Some(x) = e.exemption.as_ref().filter(|x| x.holds) {
        fields.push(("keyturn/exemptOwner".to_string(), x.owner.clone()));
        fields.push(("keyturn/exemptUntil".to_string(), x.until.to_string()));
    }
    Some(HubFinding {
        id: finding_id(account, &e.user, &key),
        account: account.to_string(),
        severity,
        types: vec![TYPE.to_string()],
        title,
        description: clip(description, 1024),
        compliance: if worst == Finding::Exempt {
            "WARNING"
        } else {
            "FAILED"
        },
        active: true,
        resources,
        remediation: clip(remediation(judged, &e.user, secret), 512),
        note: note.map(|n| clip(n, 512)),
        fields,
        first_observed: e.created,
    })
}

/// A finding that no longer holds, rebuilt from its id: archived, compliance PASSED. `None` for
/// an id keyturn did not make.
pub fn resolved(id: &str, as_of: OffsetDateTime) -> Option<HubFinding> {
    let rest = id.strip_prefix("keyturn/")?;
    let mut parts = rest.splitn(3, '/');
    let (account, user, key) = (parts.next()?, parts.next()?, parts.next()?);
    if account.is_empty() || user.is_empty() || key.is_empty() || key.contains('/') {
        return None;
    }
    let key_id = (!key.starts_with("slot-")).then(|| key.to_string());
    Some(HubFinding {
        id: id.to_string(),
        account: account.to_string(),
        severity: HubSeverity::Informational,
        types: vec![TYPE.to_string()],
        title: format!("Resolved: IAM access key {key} of {user}"),
        description: format!(
            "keyturn's audit of account {account} on {} found nothing wrong with this key any more (rotated, retired, deleted or put under rotation).",
            as_of.date()
        ),
        compliance: "PASSED",
        active: false,
        resources: vec![HubResource::AccessKey {
            key_id,
            user: user.to_string(),
            account: account.to_string(),
            created: None,
            active: false,
        }],
        remediation: "None needed.".into(),
        note: None,
        fields: vec![
            ("keyturn/finding".to_string(), "resolved".to_string()),
            ("keyturn/account".to_string(), account.to_string()),
            ("keyturn/user".to_string(), user.to_string()),
            ("keyturn/key".to_string(), key.to_string()),
        ],
        first_observed: None,
    })
}

/// Cuts text to at most `max` characters (ASFF's field limits), on a character boundary.
fn clip(mut text: String, max: usize) -> String {
    if text.chars().count() > max {
        text = text.chars().take(max - 1).collect();
        text.push('…');
    }
    text
}

/// What [`publish`] did in one hub.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Published {
    /// Findings imported as active (new or updated).
    pub imported: usize,
    /// Ids whose findings were archived and marked RESOLVED.
    pub resolved: Vec<String>,
    /// Findings Security Hub refused, with why.
    pub failed: Vec<(String, String)>,
    /// The workflow status could not be set to RESOLVED (the findings are archived all the same).
    pub workflow_error: Option<String>,
    /// Remote calls made (GetFindings pages, import and update batches, retries included).
    pub calls: usize,
}

/// Brings `hub_account`'s Security Hub up to date with `current`, the findings about
/// `key_account`'s keys: lists keyturn's active findings about that account (GetFindings, every
/// page), imports `current` and an archived, PASSED record of each listed finding that is not in
/// it (BatchImportFindings, [`BATCH`] at a time), then marks those RESOLVED (BatchUpdateFindings).
/// A throttled call is retried after 1, 2 then 4 s.
pub async fn publish(
    delivery: &impl Delivery,
    clock: &impl Clock,
    hub_account: &str,
    key_account: &str,
    current: Vec<HubFinding>,
) -> ApiResult<Published> {
    let mut out = Published::default();
    let prefix = prefix(key_account);
    let mut active = BTreeSet::new();
    let mut next = None;
    loop {
        let page = patiently(clock, &mut out.calls, || {
            delivery.hub_active(hub_account, &prefix, next.clone())
        })
        .await?;
        // Only keyturn's own ids about this account, whatever the filter did.
        active.extend(page.ids.into_iter().filter(|id| id.starts_with(&prefix)));
        match page.next {
            Some(n) if !n.is_empty() => next = Some(n),
            _ => break,
        }
    }
    let now: BTreeSet<&str> = current.iter().map(|f| f.id.as_str()).collect();
    let as_of = clock.now();
    let gone: Vec<HubFinding> = active
        .iter()
        .filter(|id| !now.contains(id.as_str()))
        .filter_map(|id| resolved(id, as_of))
        .collect();
    let all: Vec<HubFinding> = current.into_iter().chain(gone).collect();
    for batch in all.chunks(BATCH) {
        let done = patiently(clock, &mut out.calls, || {
            delivery.hub_import(hub_account, batch)
        })
        .await?;
        out.failed.extend(done.failed);
    }
    let refused: BTreeSet<&str> = out.failed.iter().map(|(id, _)| id.as_str()).collect();
    let taken = all.iter().filter(|f| !refused.contains(f.id.as_str()));
    out.imported = taken.clone().filter(|f| f.active).count();
    out.resolved = taken.filter(|f| !f.active).map(|f| f.id.clone()).collect();
    for batch in out.resolved.chunks(BATCH) {
        if let Err(e) = patiently(clock, &mut out.calls, || {
            delivery.hub_resolved(hub_account, batch)
        })
        .await
        {
            out.workflow_error = Some(e.to_string());
            break;
        }
    }
    Ok(out)
}

/// One call, retried after 1, 2 then 4 s while Security Hub throttles it.
async fn patiently<T, F, Fut>(clock: &impl Clock, calls: &mut usize, mut call: F) -> ApiResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ApiResult<T>>,
{
    let mut delay = std::time::Duration::from_secs(1);
    loop {
        *calls += 1;
        match call().await {
            Err(ApiError::Throttled(_)) if delay <= std::time::Duration::from_secs(4) => {
                clock.sleep(delay).await;
                delay *= 2;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Applied;
    use crate::fake::{Fault, World};
    use time::macros::{date, datetime};

    const ACCOUNT: &str = "111122223333";
    const AS_OF: OffsetDateTime = datetime!(2026-09-01 09:00 UTC);

    fn entry(user: &str, key: Option<&str>, findings: &[Finding]) -> AuditEntry {
        AuditEntry {
            user: user.into(),
            arn: format!("arn:aws:iam::{ACCOUNT}:user/{user}"),
            slot: Some(1),
            key_id: key.map(str::to_string),
            created: Some(datetime!(2026-01-01 00:00 UTC)),
            age_days: Some(243),
            last_used: None,
            last_used_service: None,
            last_used_region: None,
            managed: None,
            findings: findings.to_vec(),
            exemption: None,
            used_since_cutover: None,
        }
    }

    #[test]
    fn each_finding_has_its_severity_a_stable_id_and_what_to_do() {
        let mut exempt = entry(
            "vendor",
            Some("AKIAVENDOR"),
            &[Finding::Overdue, Finding::Unmanaged],
        );
        exempt.exemption = Some(Applied {
            reason: "appliance".into(),
            owner: "sec@example.test".into(),
            until: date!(2026 - 12 - 01),
            holds: true,
        });
        let entries = [
            entry("ok", Some("AKIAOK"), &[Finding::Ok]),
            entry(
                "old",
                Some("AKIAOLD"),
                &[Finding::Overdue, Finding::NeverUsed],
            ),
            entry("stray", None, &[Finding::Unmanaged]),
            exempt,
        ];
        let found = findings(ACCOUNT, &entries, AS_OF);
        let by_id: Vec<(&str, HubSeverity, &str)> = found
            .iter()
            .map(|f| (f.id.as_str(), f.severity, f.compliance))
            .collect();
        assert_eq!(
            by_id,
            [
                (
                    "keyturn/111122223333/old/AKIAOLD",
                    HubSeverity::High,
                    "FAILED"
                ),
                (
                    "keyturn/111122223333/stray/slot-1",
                    HubSeverity::Medium,
                    "FAILED"
                ),
                (
                    "keyturn/111122223333/vendor/AKIAVENDOR",
                    HubSeverity::Informational,
                    "WARNING"
                ),
            ],
            "no finding for an ok key; a key without an id by its slot"
        );
        assert!(
            found[0].remediation.contains("keyturn enroll old"),
            "{}",
            found[0].remediation
        );
        assert!(found[0]
            .fields
            .contains(&("keyturn/findings".into(), "overdue,never-used".into())));
        let note = found[2].note.as_deref().expect("the exemption's note");
        assert!(
            note.contains("2026-12-01")
                && note.contains("sec@example.test")
                && note.contains("appliance"),
            "{note}"
        );
        let expected = [
            (Finding::CurrentKeyMissing, Some(HubSeverity::Critical)),
            (Finding::Overdue, Some(HubSeverity::High)),
            (Finding::Unmanaged, Some(HubSeverity::Medium)),
            (Finding::StalePrevious, Some(HubSeverity::Medium)),
            (Finding::Due, Some(HubSeverity::Low)),
            (Finding::NeverUsed, Some(HubSeverity::Low)),
            (Finding::Exempt, Some(HubSeverity::Informational)),
            (Finding::Ok, None),
        ];
        for (finding, severity_) in expected {
            assert_eq!(severity(finding), severity_, "{finding:?}");
        }
        let back = resolved("keyturn/111122223333/old/AKIAOLD", AS_OF).expect("keyturn's id");
        assert_eq!((back.active, back.compliance), (false, "PASSED"));
        assert!(
            matches!(&back.resources[0], HubResource::AccessKey { key_id: Some(k), user, .. } if k == "AKIAOLD" && user == "old")
        );
        for foreign in [
            "other/1/u/k",
            "keyturn/1/u",
            "keyturn/1/u/k/extra",
            "keyturn//u/k",
        ] {
            assert_eq!(resolved(foreign, AS_OF), None, "{foreign}");
        }
        assert_eq!(clip("é".repeat(2000), 1024).chars().count(), 1024);
    }

    #[tokio::test]
    async fn publish_batches_by_100_reads_every_page_resolves_the_rest_and_waits_out_throttling() {
        let world = World::new();
        // Earlier findings: two that still hold and three that no longer do.
        let earlier: Vec<HubFinding> = (0..5)
            .map(|i| {
                let mut f =
                    resolved(&finding_id(ACCOUNT, &format!("u{i}"), "AKIA"), AS_OF).expect("id");
                f.active = true;
                f
            })
            .collect();
        world.hub_import(ACCOUNT, &earlier).await.expect("seeded");
        // Another account's finding is not this account's to resolve.
        let other = resolved(&finding_id("999999999999", "x", "AKIA"), AS_OF).map(|mut f| {
            f.active = true;
            f
        });
        world
            .hub_import(ACCOUNT, &[other.expect("id")])
            .await
            .expect("seeded");
        world.clear_calls();
        let current: Vec<HubFinding> = (0..230)
            .map(|i| {
                findings(
                    ACCOUNT,
                    &[entry(&format!("u{i}"), Some("AKIA"), &[Finding::Unmanaged])],
                    AS_OF,
                )
                .remove(0)
            })
            .filter(|f| {
                !matches!(
                    f.id.as_str(),
                    "keyturn/111122223333/u2/AKIA"
                        | "keyturn/111122223333/u3/AKIA"
                        | "keyturn/111122223333/u4/AKIA"
                )
            })
            .collect();
        assert_eq!(current.len(), 227);
        // The first import is throttled once (calls count from 1).
        let pages = 3; // five active findings of this account, two a page
        world.arm(Fault::FailAt {
            call: pages + 1,
            error: ApiError::Throttled("Rate exceeded".into()),
        });
        let before = world.now();
        let out = publish(&world, &world, ACCOUNT, ACCOUNT, current)
            .await
            .expect("published");
        assert_eq!(out.imported, 227);
        assert_eq!(
            out.resolved,
            [2, 3, 4].map(|i| finding_id(ACCOUNT, &format!("u{i}"), "AKIA"))
        );
        assert_eq!((out.failed.len(), out.workflow_error.clone()), (0, None));
        let calls = world.calls();
        let imports = calls
            .iter()
            .filter(|c| *c == "securityhub:BatchImportFindings")
            .count();
        // 230 findings (227 current, 3 resolved) in 3 batches, one of them retried.
        assert_eq!(imports, 4, "{calls:?}");
        assert_eq!(out.calls, calls.len());
        assert!(
            world.now() - before >= time::Duration::seconds(1),
            "waited before the retry"
        );
        let hub = world.hub_findings(ACCOUNT);
        assert_eq!(
            hub.len(),
            231,
            "one finding per id: the other account's stays"
        );
        for (f, resolved_) in &hub {
            let gone = out.resolved.contains(&f.id);
            assert_eq!((f.active, *resolved_), (!gone, gone), "{}", f.id);
        }
    }
}
