//! `keyturn audit`: the credential report joined with the managed secrets, judged, and rendered as
//! a table, JSON, CSV or a self-contained HTML page (`render::audit`).

use std::sync::Arc;

use anyhow::Context;
use keyturn_aws::Sinks;
use keyturn_core::audit::exempt::{self, Exemptions};
use keyturn_core::audit::hub::{self, Published};
use keyturn_core::audit::{age_buckets, AuditPolicy, AuditRun, Finding};
use keyturn_core::error::{parse_rfc3339, rfc3339};
use keyturn_core::ports::Clock;
use keyturn_core::RotationSettings;
use time::OffsetDateTime;

use crate::accounts::Fleet;
use crate::args::{AuditArgs, Output};
use crate::render::audit::{self, AuditReport, AuditRow, CSV_FIELDS};
use crate::render::{print_csv, print_json, progress_bar, ACCOUNT_FIELDS};
use crate::safe::term;

pub async fn run(
    fleet: &Fleet,
    settings: RotationSettings,
    exemptions: Exemptions,
    a: AuditArgs,
    output: Output,
) -> anyhow::Result<bool> {
    let fail_on = Finding::parse(&a.fail_on).with_context(|| {
        format!(
            "--fail-on {:?}: expected one of {}",
            a.fail_on,
            Finding::ALL.map(Finding::as_str).join(", ")
        )
    })?;
    let as_of = match &a.as_of {
        None => keyturn_aws::SystemClock.now(),
        Some(d) => parse_date(d)
            .with_context(|| format!("--as-of {d:?}: expected YYYY-MM-DD or an RFC 3339 time"))?,
    };
    let policy = AuditPolicy {
        as_of,
        max_age: time::Duration::days(a.max_age),
        grace: time::Duration::days(a.grace_days.into()),
    };
    let run = AuditRun {
        policy,
        rotation_days: a.rotation_days,
        concurrency: a.concurrency.into(),
        report_timeout: std::time::Duration::from_secs(a.report_timeout),
    };
    let exemptions = Arc::new(exemptions);
    // Where findings go: each account's own hub, or (--security-hub-admin) the caller's.
    let hub = match (a.security_hub, a.security_hub_admin) {
        (false, _) => None,
        (true, false) => Some(Hub::EachAccount),
        (true, true) => Some(Hub::Caller(
            Arc::new(fleet.own_sinks()),
            fleet.own_account().to_string(),
        )),
    };
    // A finding Security Hub refused fails the run (after the report): the security team would
    // not see it.
    let refused = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let any_refused = refused.clone();
    let ran = fleet
        .run(move |reached| {
            let (settings, exemptions, hub) = (settings.clone(), exemptions.clone(), hub.clone());
            let refused = refused.clone();
            async move {
                let rotator = crate::setup::rotator(reached.aws(), settings);
                // A bar over the account's secrets, made once their number is known.
                let bar = std::sync::OnceLock::new();
                let tick = |done: usize, total: usize| {
                    bar.get_or_init(|| progress_bar(total, reached.progress))
                        .set_position(done as u64);
                };
                let audited = rotator.audit_account(&run, &tick).await?;
                if let Some(bar) = bar.get() {
                    bar.finish();
                }
                for w in &audited.warnings {
                    eprintln!("keyturn: warning: {}", term(w));
                }
                let (mut entries, unreadable) = (audited.entries, audited.unreadable);
                exempt::apply(
                    &mut entries,
                    &exemptions.for_account(&reached.account.id),
                    policy.as_of.date(),
                );
                for e in &entries {
                    if let Some(x) = e.exemption.as_ref().filter(|x| !x.holds) {
                        eprintln!(
                            "keyturn: warning: the exemption of user {} in account {} (owner {}) ended on {}: its key is judged as usual; renew the exemption after review, or rotate the key",
                            term(&e.user),
                            reached.account.id,
                            term(&x.owner),
                            x.until
                        );
                    }
                }
                if let Some(target) = &hub {
                    let account = reached.account.id.as_str();
                    let findings = hub::findings(account, &entries, policy.as_of);
                    let (sinks, hub_account) = match target {
                        Hub::Caller(sinks, own) => (sinks.as_ref(), own.as_str()),
                        Hub::EachAccount => (rotator.delivery(), account),
                    };
                    let published = hub::publish(sinks, rotator.clock(), hub_account, account, findings)
                        .await
                        .with_context(|| format!("the findings about account {account} could not be brought up to date in the Security Hub of account {hub_account} (securityhub:GetFindings, securityhub:BatchImportFindings); is Security Hub enabled there in this region, and does the role allow them?"))?;
                    report_hub(account, hub_account, &published);
                    if !published.failed.is_empty() {
                        refused.store(true, std::sync::atomic::Ordering::Relaxed);
                    }
                }
                let mut rows: Vec<AuditRow> = entries.iter().map(AuditRow::new).collect();
                // A row of the report that cannot be read is a row of its own; the rest is audited.
                rows.extend(unreadable.iter().map(|e| AuditRow::unreadable(e.to_string())));
                Ok(rows)
            }
        })
        .await?;
    let rows = ran.rows.as_slice();

    if let Some(path) = &a.html {
        let ages = age_buckets(rows.iter().filter_map(|r| r.row.age_days));
        std::fs::write(path, audit::page(rows, &ages, &policy))
            .with_context(|| format!("writing the HTML page to {} failed", path.display()))?;
        // Standard error: standard output stays the report in the format asked for.
        eprintln!(
            "keyturn: wrote the audit page to {} (open it in a browser)",
            std::path::absolute(path)
                .unwrap_or_else(|_| path.clone())
                .display()
        );
    }
    match output {
        Output::Json => print_json(&AuditReport {
            as_of: rfc3339(as_of),
            max_age_days: a.max_age,
            keys: rows,
        }),
        Output::Csv => {
            let fields: Vec<&str> = ACCOUNT_FIELDS.into_iter().chain(CSV_FIELDS).collect();
            print_csv(rows, &fields)
        }
        Output::Table => audit::table(rows, &policy, fail_on),
    }
    let refused = any_refused.load(std::sync::atomic::Ordering::Relaxed);
    ran.finish(!refused && rows.iter().all(|r| r.row.worst < fail_on))
}

/// Whose Security Hub the findings go to.
#[derive(Clone)]
enum Hub {
    /// Each audited account's own (its own clients).
    EachAccount,
    /// The caller's (`--security-hub-admin`): its clients and account id.
    Caller(Arc<Sinks>, String),
}

/// What the import did, on standard error (standard output stays the report).
fn report_hub(account: &str, hub_account: &str, p: &Published) {
    eprintln!(
        "keyturn: Security Hub of account {hub_account}: {} finding(s) about account {account} imported, {} resolved ({} call(s))",
        p.imported,
        p.resolved.len(),
        p.calls
    );
    for (id, why) in &p.failed {
        eprintln!(
            "keyturn: warning: Security Hub of account {hub_account} refused finding {}: {}",
            term(id),
            term(why)
        );
    }
    if let Some(e) = &p.workflow_error {
        eprintln!(
            "keyturn: warning: the resolved findings about account {account} are archived, but their workflow status could not be set to RESOLVED in the Security Hub of account {hub_account} ({}); check that the role allows securityhub:BatchUpdateFindings",
            term(e)
        );
    }
}

fn parse_date(d: &str) -> Option<OffsetDateTime> {
    parse_rfc3339(d).or_else(|| {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        time::Date::parse(d, &format)
            .ok()
            .map(|date| date.midnight().assume_utc())
    })
}
