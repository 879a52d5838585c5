//! `keyturn audit`: the credential report joined with the managed secrets, judged, and rendered as
//! a table, JSON, CSV or a self-contained HTML page (`page`).

mod page;
mod row;

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::Context;
use keyturn_aws::AwsRotator;
use keyturn_core::audit::exempt::{self, Exemptions};
use keyturn_core::audit::{
    age_buckets, audit_with, fetch_report, parse_report_rows, AuditPolicy, Finding, ListedKey,
    ManagedKey,
};
use keyturn_core::error::{parse_rfc3339, rfc3339};
use keyturn_core::ports::{
    AccessKeys, Clock, Iam, SecretInfo, SecretStore, AWSCURRENT, AWSPREVIOUS,
};
use keyturn_core::rules::{self, SweepPolicy};
use keyturn_core::state::Needs;
use keyturn_core::{tags, RotationError, RotationSettings};
use serde::Serialize;
use time::OffsetDateTime;

use crate::accounts::Fleet;
use crate::args::{AuditArgs, Output};
use crate::render::InAccount;
use crate::render::{
    account_groups, bulk, plain_table, print_csv, print_json, print_table, ACCOUNT_FIELDS,
};
use crate::safe::term;

use row::AuditRow;

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
    let (rotation_days, concurrency, timeout) = (
        a.rotation_days,
        a.concurrency,
        std::time::Duration::from_secs(a.report_timeout),
    );
    let exemptions = Arc::new(exemptions);
    let ran = fleet
        .run(move |reached| {
            let (settings, exemptions) = (settings.clone(), exemptions.clone());
            async move {
                let rotator = Arc::new(reached.aws().rotator(settings));
                let csv = fetch_report(&rotator.iam().own(), rotator.clock(), timeout)
                    .await
                    .context("the IAM credential report could not be fetched (iam:GenerateCredentialReport, iam:GetCredentialReport)")?;
                let (report, unreadable) = parse_report_rows(&csv).context("the IAM credential report could not be read")?;
                let (managed, mut listed) =
                    managed_keys(&rotator, rotation_days, concurrency, reached.progress).await?;
                // Users with an active key no managed secret covers: their key ids, which the
                // report lacks (one ListAccessKeys each), so an unmanaged key is named.
                listed.extend(unmanaged_keys(&rotator, &report, &listed, concurrency).await);
                let mut entries = audit_with(&report, &managed, &listed, &policy);
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
        std::fs::write(path, page::render(rows, &ages, &policy))
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
        Output::Table => table(rows, &policy, fail_on),
    }
    ran.finish(rows.iter().all(|r| r.row.worst < fail_on))
}

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
    progress: bool,
) -> anyhow::Result<(Vec<ManagedKey>, Vec<ListedKey>)> {
    // Every managed secret, inside the prefix or not: the audit reports every key one holds.
    let secrets = rotator.managed_secrets().await?.all();
    let r = rotator.clone();
    let per_secret = bulk(secrets, concurrency, progress, move |info| {
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
    // audit arms no signal handler: a Ctrl-C ends it at once, so every secret ran.
    for result in per_secret.into_iter().flatten() {
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

/// The keys of the report's users that have an active key and no managed secret listed them
/// already, in slot order (by creation). A user whose keys cannot be listed keeps `-` for the key
/// id, with a warning: the rest of the audit does not depend on it.
async fn unmanaged_keys(
    rotator: &Arc<AwsRotator>,
    report: &[keyturn_core::audit::ReportRow],
    listed: &[ListedKey],
    concurrency: u16,
) -> Vec<ListedKey> {
    let known: std::collections::HashSet<&str> = listed.iter().map(|l| l.user.as_str()).collect();
    let users: Vec<String> = report
        .iter()
        .filter(|row| !known.contains(row.user.as_str()) && row.keys.iter().any(|k| k.active))
        .map(|row| row.user.clone())
        .collect();
    let r = rotator.clone();
    let per_user = bulk(users, concurrency, false, move |user| {
        let r = r.clone();
        async move {
            let keys = r.iam().own().list(&user).await;
            (user, keys)
        }
    })
    .await;
    let mut out = Vec::new();
    for (user, keys) in per_user.into_iter().flatten() {
        match keys {
            Ok(mut keys) => {
                keys.sort_by_key(|k| k.created);
                out.extend(keys.into_iter().enumerate().map(|(i, k)| ListedKey {
                    user: user.clone(),
                    key_id: k.id,
                    slot: i as u8 + 1,
                    created: k.created,
                }));
            }
            Err(e) => eprintln!(
                "keyturn: warning: the keys of user {} could not be listed ({e}); its unmanaged key is shown without its id (grant iam:ListAccessKeys)",
                term(&user)
            ),
        }
    }
    out
}

/// The keys one managed secret holds. Where its tags record them (finishSecret, enroll and adopt
/// do) and the rules accept the record, one ListAccessKeys and no secret value; otherwise through
/// the one state reader, which reads the values. `info` comes from ListSecrets (labels, tags,
/// rotation settings): no DescribeSecret.
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
    if let (Some(user), true) = (
        info.tags.get(tags::USER).cloned(),
        info.tags.contains_key(tags::CURRENT_KEY),
    ) {
        // A failure here is left to the state reader below, which names it as it always has.
        if let Ok(keys) = r.iam().own().list(&user).await {
            if let Some(recorded) = rules::recorded_keys(&info, &keys) {
                let held = [
                    (AWSCURRENT, Some(recorded.current)),
                    (AWSPREVIOUS, recorded.previous),
                ];
                let keys: Vec<(String, OffsetDateTime)> =
                    keys.into_iter().map(|k| (k.id, k.created)).collect();
                return Ok(joined(
                    &info,
                    &user,
                    keys,
                    held,
                    days,
                    grace,
                    r.clock().now(),
                ));
            }
        }
    }
    let needs = Needs {
        all_versions: true,
        tolerate_bad_values: true,
        ..Needs::default()
    };
    let read = match r.read_state(info.clone(), None, needs).await {
        Ok(read) => read,
        Err(RotationError::NoSuchUser { user, .. }) => {
            // The user was deleted with the secret left behind: whatever reads the secret fails.
            // Its AWSCURRENT key is reported missing (the audit's most serious finding), by the id
            // its record names or its value holds.
            let key_id = match info.tags.get(tags::CURRENT_KEY) {
                Some(k) => k.clone(),
                None => r
                    .store()
                    .value(
                        &info.arn,
                        &keyturn_core::ports::VersionRef::Label(AWSCURRENT),
                    )
                    .await
                    .ok()
                    .flatten()
                    .and_then(|t| keyturn_core::SecretValue::parse(&t).ok())
                    .and_then(|v| v.access_key_id().map(str::to_string))
                    .unwrap_or_else(|| "unknown".into()),
            };
            let (mut held, listed) = joined(
                &info,
                &user,
                Vec::new(),
                [(AWSCURRENT, Some(key_id)), (AWSPREVIOUS, None)],
                days,
                grace,
                r.clock().now(),
            );
            for m in &mut held {
                m.user_gone = true;
            }
            return Ok((held, listed));
        }
        Err(e) => return Err(e.into()),
    };
    let state = &read.state;
    let keys = state
        .keys
        .iter()
        .map(|k| (k.id.clone(), k.created))
        .collect();
    let held = [AWSCURRENT, AWSPREVIOUS].map(|l| (l, state.key_of(l).map(str::to_string)));
    Ok(joined(
        &state.info,
        &state.user.name,
        keys,
        held,
        days,
        grace,
        state.now,
    ))
}

/// The held keys joined with the user's keys (id, creation): each held key's report slot (its
/// position among the user's keys by creation), and every key of the user as listed.
fn joined(
    info: &SecretInfo,
    user: &str,
    mut keys: Vec<(String, OffsetDateTime)>,
    held: [(&str, Option<String>); 2],
    rotation_days: i64,
    grace: Option<time::Duration>,
    now: OffsetDateTime,
) -> (Vec<ManagedKey>, Vec<ListedKey>) {
    keys.sort_by_key(|(_, created)| *created);
    // The cut-over, bounded below by the current key's creation in IAM (the audit reads no value,
    // so the version's creation is not at hand) and above by now.
    let current_created = held[0]
        .1
        .as_ref()
        .and_then(|id| keys.iter().find(|(k, _)| k == id))
        .map(|(_, created)| *created);
    let cutover = rules::records::bound_cutover(info, current_created, now).latest;
    let mut out = Vec::new();
    for (label, key_id) in held {
        let Some(key_id) = key_id else {
            continue;
        };
        let position = keys.iter().position(|(id, _)| *id == key_id);
        out.push(ManagedKey {
            secret: info.name.clone(),
            label: label.to_string(),
            user: user.to_string(),
            key_id,
            slot: position.map(|i| i as u8 + 1),
            created: position.map(|i| keys[i].1),
            rotation_enabled: info.rotation_enabled,
            next_rotation: info.next_rotation,
            rotation_days,
            cutover,
            grace,
            exists: position.is_some(),
            user_gone: false,
        });
    }
    let listed = keys
        .into_iter()
        .enumerate()
        .map(|(i, (key_id, created))| ListedKey {
            user: user.to_string(),
            key_id,
            slot: i as u8 + 1,
            created,
        })
        .collect();
    (out, listed)
}

/// The whole audit as `--output json` prints it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct AuditReport<'a> {
    as_of: String,
    max_age_days: i64,
    keys: &'a [InAccount<AuditRow>],
}

/// The CSV columns after the account's, in order (the JSON fields of the same names; `findings`
/// and `arn` are left out: the finding that counts is `finding`).
const CSV_FIELDS: [&str; 19] = [
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
    "usedSinceCutover",
    "finding",
    "exemption",
    "exemptReason",
    "exemptOwner",
    "exemptUntil",
    "error",
];

/// The finding's colour on a terminal (console honours NO_COLOR, CLICOLOR and CLICOLOR_FORCE).
fn coloured(f: Finding, text: String) -> String {
    let style = console::Style::new().for_stdout();
    let style = match f {
        Finding::Exempt => style.blue(),
        Finding::Overdue | Finding::CurrentKeyMissing => style.red(),
        Finding::Unmanaged => style.magenta(),
        Finding::StalePrevious | Finding::Due => style.yellow(),
        Finding::NeverUsed => style.cyan(),
        Finding::Ok => style.green(),
    };
    style.apply_to(text).to_string()
}

fn table(rows: &[InAccount<AuditRow>], policy: &AuditPolicy, fail_on: Finding) {
    // FINDINGS is the last column: its colour codes do not shift the others.
    let mut out = plain_table([
        "ACCOUNT",
        "USER",
        "SLOT",
        "KEY",
        "AGE (DAYS)",
        "LAST USED",
        "SECRET",
        "FINDINGS",
    ]);
    for (r, group) in rows.iter().zip(account_groups(rows)) {
        let (account, r) = (group.unwrap_or_default(), &r.row);
        let findings = if r.failed_account() {
            console::Style::new()
                .for_stdout()
                .red()
                .apply_to(r.findings_text())
                .to_string()
        } else {
            coloured(r.worst, r.findings_text())
        };
        out.add_row([
            term(&account).into_owned(),
            if r.failed_account() {
                "-".into()
            } else {
                term(&r.user).into_owned()
            },
            r.slot.map_or("-".to_string(), |s| s.to_string()),
            term(r.key_id.as_deref().unwrap_or("-")).into_owned(),
            r.age_days.map_or("-".to_string(), |d| d.to_string()),
            if r.failed_account() {
                "-".into()
            } else {
                term(&r.used()).into_owned()
            },
            term(&r.held()).into_owned(),
            findings,
        ]);
    }
    if let Some(age) = out.column_mut(4) {
        age.set_cell_alignment(comfy_table::CellAlignment::Right);
    }
    print_table(&out);
    let keys: Vec<&AuditRow> = rows
        .iter()
        .map(|r| &r.row)
        .filter(|r| !r.failed_account())
        .collect();
    let mut counts: BTreeMap<Finding, usize> = BTreeMap::new();
    for r in &keys {
        *counts.entry(r.worst).or_default() += 1;
    }
    let summary: Vec<String> = counts
        .iter()
        .rev()
        .map(|(f, n)| format!("{n} {}", f.as_str()))
        .collect();
    let accounts = account_groups(rows).flatten().count();
    let failed = rows.len() - keys.len();
    println!(
        "{} active key(s){} as of {}: {}; failing on {} or worse{}",
        keys.len(),
        if accounts > 1 {
            format!(" in {accounts} accounts")
        } else {
            String::new()
        },
        &rfc3339(policy.as_of)[..10],
        if summary.is_empty() {
            "none".into()
        } else {
            summary.join(", ")
        },
        fail_on.as_str(),
        if failed > 0 {
            format!("; {failed} account(s) failed")
        } else {
            String::new()
        }
    );
}
