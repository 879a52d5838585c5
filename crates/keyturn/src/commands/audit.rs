//! `keyturn audit`: the credential report joined with the managed secrets, judged, and rendered as
//! a table, JSON, CSV or a self-contained HTML page.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use keyturn_aws::AwsRotator;
use keyturn_core::audit::{
    age_histogram, audit_with, fetch_report, parse_report, AuditEntry, AuditPolicy, Finding,
    ListedKey, ManagedKey,
};
use keyturn_core::error::{parse_rfc3339, rfc3339};
use keyturn_core::ports::{Clock, Iam, SecretInfo, SecretStore, AWSCURRENT, AWSPREVIOUS};
use keyturn_core::rules::{self, SweepPolicy};
use keyturn_core::state::Needs;
use keyturn_core::tags;
use serde_json::{json, Value};
use time::OffsetDateTime;

use crate::args::{AuditArgs, Output};
use crate::render::{bulk, csv_cell, plain_table, text};
use crate::safe::term;

pub async fn run(rotator: Arc<AwsRotator>, a: AuditArgs, output: Output) -> anyhow::Result<bool> {
    let fail_on = Finding::parse(&a.fail_on).with_context(|| {
        format!(
            "--fail-on {:?}: expected one of {}",
            a.fail_on,
            Finding::ALL.map(Finding::as_str).join(", ")
        )
    })?;
    let as_of = match &a.as_of {
        None => rotator.clock().now(),
        Some(d) => parse_date(d)
            .with_context(|| format!("--as-of {d:?}: expected YYYY-MM-DD or an RFC 3339 time"))?,
    };
    let policy = AuditPolicy {
        as_of,
        max_age: time::Duration::days(a.max_age),
        grace: time::Duration::days(a.grace_days.into()),
    };
    let csv = fetch_report(&rotator.iam().own(), rotator.clock(), std::time::Duration::from_secs(a.report_timeout))
        .await
        .context("the IAM credential report could not be fetched (iam:GenerateCredentialReport, iam:GetCredentialReport)")?;
    let rows = parse_report(&csv).context("the IAM credential report could not be read")?;
    let (managed, listed) = managed_keys(&rotator, a.rotation_days, a.concurrency).await?;
    let entries = audit_with(&rows, &managed, &listed, &policy);

    if let Some(path) = &a.html {
        std::fs::write(path, html(&entries, &policy))
            .with_context(|| format!("writing {} failed", path.display()))?;
    }
    match output {
        Output::Json => crate::render::print_json(
            &json!({"asOf": rfc3339(as_of), "maxAgeDays": a.max_age, "keys": entries.iter().map(entry_json).collect::<Vec<_>>()}),
        ),
        Output::Csv => {
            println!("{}", COLUMNS.join(","));
            for e in &entries {
                let v = entry_json(e);
                println!(
                    "{}",
                    COLUMNS
                        .iter()
                        .map(|c| csv_cell(&v[*c]))
                        .collect::<Vec<_>>()
                        .join(",")
                );
            }
        }
        Output::Table => table(&entries, &policy, fail_on),
    }
    Ok(entries.iter().all(|e| e.worst() < fail_on))
}

const COLUMNS: [&str; 13] = [
    "user",
    "slot",
    "keyId",
    "ageDays",
    "created",
    "lastUsed",
    "lastUsedService",
    "lastUsedRegion",
    "secret",
    "label",
    "rotationEnabled",
    "nextRotation",
    "finding",
];

fn parse_date(d: &str) -> Option<OffsetDateTime> {
    parse_rfc3339(d).or_else(|| {
        let format = time::macros::format_description!("[year]-[month]-[day]");
        time::Date::parse(d, &format)
            .ok()
            .map(|date| date.midnight().assume_utc())
    })
}

/// The keys managed secrets hold (AWSCURRENT and AWSPREVIOUS), each with its report slot (its
/// position among the user's keys by creation), and every key IAM lists for those users (their
/// ids, which the report lacks). A secret that cannot be read (its user gone, its value broken) is
/// reported and its keys show as unmanaged: one must not hide the rest.
async fn managed_keys(
    rotator: &Arc<AwsRotator>,
    default_days: i64,
    concurrency: u16,
) -> anyhow::Result<(Vec<ManagedKey>, Vec<ListedKey>)> {
    let secrets = rotator
        .store()
        .list_tagged(tags::MANAGED, Some(tags::MANAGED_TRUE))
        .await
        .with_context(|| {
            format!(
                "listing the secrets tagged {}={} failed (secretsmanager:ListSecrets)",
                tags::MANAGED,
                tags::MANAGED_TRUE
            )
        })?;
    let secrets: Vec<SecretInfo> = secrets
        .into_iter()
        .filter(|s| rules::is_managed(&s.tags))
        .collect();
    let r = rotator.clone();
    let per_secret = bulk(secrets, concurrency, move |info| {
        let r = r.clone();
        async move {
            let name = info.name.clone();
            held_keys(&r, info, default_days)
                .await
                .map_err(|e| format!("{name}: {e:#}"))
        }
    })
    .await;
    let (mut keys, mut listed) = (Vec::new(), Vec::new());
    for result in per_secret {
        match result {
            Ok((k, l)) => {
                keys.extend(k);
                listed.extend(l);
            }
            Err(e) => eprintln!(
                "keyturn: warning: {}; its keys are reported as unmanaged",
                crate::safe::term(&e)
            ),
        }
    }
    Ok((keys, listed))
}

/// The keys one managed secret holds, read through the one state reader. `info` comes from
/// ListSecrets (labels, tags, rotation settings): no DescribeSecret.
async fn held_keys(
    r: &AwsRotator,
    info: SecretInfo,
    default_days: i64,
) -> anyhow::Result<(Vec<ManagedKey>, Vec<ListedKey>)> {
    let days = rules::rotation_days(&info, default_days);
    let grace = SweepPolicy::default()
        .for_secret(&info)
        .ok()
        .and_then(|p| info.tags.contains_key(tags::GRACE_DAYS).then_some(p.grace));
    let needs = Needs {
        all_versions: true,
        tolerate_bad_values: true,
        ..Needs::default()
    };
    let read = r.read_state(info, None, needs).await?;
    let state = &read.state;
    let mut by_age: Vec<_> = state.keys.iter().collect();
    by_age.sort_by_key(|k| k.created);
    let mut out = Vec::new();
    for label in [AWSCURRENT, AWSPREVIOUS] {
        let Some(key_id) = state.key_of(label) else {
            continue;
        };
        let position = by_age.iter().position(|k| k.id == key_id);
        out.push(ManagedKey {
            secret: state.info.name.clone(),
            label: label.to_string(),
            user: state.user.name.clone(),
            key_id: key_id.to_string(),
            slot: position.map(|i| i as u8 + 1),
            created: position.map(|i| by_age[i].created),
            rotation_enabled: state.info.rotation_enabled,
            next_rotation: state.info.next_rotation,
            rotation_days: days,
            cutover: rules::recorded_cutover(&state.info),
            grace,
            exists: position.is_some(),
        });
    }
    let listed = by_age
        .iter()
        .enumerate()
        .map(|(i, k)| ListedKey {
            user: state.user.name.clone(),
            key_id: k.id.clone(),
            slot: i as u8 + 1,
            created: k.created,
        })
        .collect();
    Ok((out, listed))
}

fn entry_json(e: &AuditEntry) -> Value {
    let m = e.managed.as_ref();
    json!({
        "user": e.user, "arn": e.arn, "slot": e.slot, "keyId": e.key_id, "ageDays": e.age_days,
        "created": e.created.map(rfc3339), "lastUsed": e.last_used.map(rfc3339),
        "lastUsedService": e.last_used_service, "lastUsedRegion": e.last_used_region,
        "secret": m.map(|m| &m.secret), "label": m.map(|m| &m.label),
        "rotationEnabled": m.map(|m| m.rotation_enabled), "nextRotation": m.and_then(|m| m.next_rotation).map(rfc3339),
        "finding": e.worst().as_str(), "findings": e.findings.iter().map(|f| f.as_str()).collect::<Vec<_>>(),
    })
}

/// The finding's colour on a terminal (console honours NO_COLOR, CLICOLOR and CLICOLOR_FORCE).
fn coloured(f: Finding, text: String) -> String {
    let style = console::Style::new().for_stdout();
    let style = match f {
        Finding::Overdue | Finding::CurrentKeyMissing => style.red(),
        Finding::Unmanaged => style.magenta(),
        Finding::StalePrevious | Finding::Due => style.yellow(),
        Finding::NeverUsed => style.cyan(),
        Finding::Ok => style.green(),
    };
    style.apply_to(text).to_string()
}

fn table(entries: &[AuditEntry], policy: &AuditPolicy, fail_on: Finding) {
    // FINDINGS is the last column: its colour codes do not shift the others.
    let mut out = plain_table([
        "USER",
        "SLOT",
        "KEY",
        "AGE (DAYS)",
        "LAST USED",
        "SECRET",
        "FINDINGS",
    ]);
    for e in entries {
        let used = match (&e.last_used, &e.last_used_service) {
            (Some(t), s) => format!("{} {}", &rfc3339(*t)[..10], s.as_deref().unwrap_or("")),
            (None, _) => "never".into(),
        };
        let held = e
            .managed
            .as_ref()
            .map(|m| format!("{} ({})", m.secret, m.label))
            .unwrap_or_else(|| "-".into());
        let findings = e
            .findings
            .iter()
            .map(|f| f.as_str())
            .collect::<Vec<_>>()
            .join(",");
        out.add_row([
            term(&e.user).into_owned(),
            e.slot.map_or("-".to_string(), |s| s.to_string()),
            term(e.key_id.as_deref().unwrap_or("-")).into_owned(),
            e.age_days.map_or("-".to_string(), |d| d.to_string()),
            term(used.trim_end()).into_owned(),
            term(&held).into_owned(),
            coloured(e.worst(), findings),
        ]);
    }
    if let Some(age) = out.column_mut(3) {
        age.set_cell_alignment(comfy_table::CellAlignment::Right);
    }
    println!("{out}");
    let mut counts: BTreeMap<Finding, usize> = BTreeMap::new();
    for e in entries {
        *counts.entry(e.worst()).or_default() += 1;
    }
    let summary: Vec<String> = counts
        .iter()
        .rev()
        .map(|(f, n)| format!("{n} {}", f.as_str()))
        .collect();
    println!(
        "{} active key(s) as of {}: {}; failing on {} or worse",
        entries.len(),
        &rfc3339(policy.as_of)[..10],
        if summary.is_empty() {
            "none".into()
        } else {
            summary.join(", ")
        },
        fail_on.as_str()
    );
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// One self-contained page: inline CSS and SVG, no scripts, no external assets.
fn html(entries: &[AuditEntry], policy: &AuditPolicy) -> String {
    let buckets = age_histogram(entries);
    let max = buckets.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    let (bar_w, gap, height) = (90usize, 20usize, 200usize);
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" role="img" aria-label="Active access keys by age">"#,
        buckets.len() * (bar_w + gap) + gap,
        height + 60
    );
    for (i, (label, n)) in buckets.iter().enumerate() {
        let h = n * height / max;
        let x = gap + i * (bar_w + gap);
        let fill = if i >= 3 {
            "#c0392b"
        } else if i == 2 {
            "#e67e22"
        } else {
            "#2e86c1"
        };
        svg.push_str(&format!(
            r#"<rect x="{x}" y="{}" width="{bar_w}" height="{h}" fill="{fill}"/><text x="{}" y="{}" text-anchor="middle">{n}</text><text x="{}" y="{}" text-anchor="middle" font-size="12">{}</text>"#,
            height + 20 - h, x + bar_w / 2, height + 15 - h, x + bar_w / 2, height + 40, escape(label)
        ));
    }
    svg.push_str("</svg>");
    let rows: String = entries
        .iter()
        .map(|e| {
            let v = entry_json(e);
            format!(
                "<tr class=\"{f}\"><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                escape(&e.user), e.slot.map_or("-".to_string(), |s| s.to_string()), escape(&text(&v["keyId"])), text(&v["ageDays"]), escape(text(&v["lastUsed"]).get(..10).unwrap_or("never")),
                escape(&text(&v["secret"])), escape(&text(&v["label"])),
                e.findings.iter().map(|f| f.as_str()).collect::<Vec<_>>().join(", "),
                f = e.worst().as_str()
            )
        })
        .collect();
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>keyturn audit {date}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin-top: 1em; }} th, td {{ padding: 4px 10px; border-bottom: 1px solid #ddd; text-align: left; }}
tr.overdue td {{ background: #fadbd8; }} tr.unmanaged td {{ background: #f5eef8; }}
tr.stale-previous td, tr.due td {{ background: #fdebd0; }} tr.never-used td {{ background: #e8f8f5; }}
</style></head><body>
<h1>Access keys as of {date}</h1>
<p>{n} active key(s); overdue means older than {max} days.</p>
<h2>Key ages</h2>
{svg}
<h2>Findings</h2>
<table><thead><tr><th>User</th><th>Slot</th><th>Key</th><th>Age (days)</th><th>Last used</th><th>Secret</th><th>Label</th><th>Findings</th></tr></thead>
<tbody>{rows}</tbody></table>
</body></html>
"#,
        date = &rfc3339(policy.as_of)[..10],
        n = entries.len(),
        max = policy.max_age.whole_days(),
    )
}
