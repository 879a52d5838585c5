//! The audit's HTML page: one self-contained document (inline CSS and SVG, no scripts, no
//! external assets) from a maud template, which escapes every value it interpolates.

use std::collections::BTreeMap;

use keyturn_core::audit::{AuditPolicy, Finding};
use keyturn_core::error::rfc3339;
use maud::{html, Markup, PreEscaped, DOCTYPE};

use super::AuditRow;
use crate::render::InAccount;

const STYLE: &str = "
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; }
table { border-collapse: collapse; margin-top: 1em; font-size: 0.9em; }
th, td { padding: 4px 8px; border-bottom: 1px solid #ddd; text-align: left; }
td.num { text-align: right; }
td.nowrap, th { white-space: nowrap; }
td.findings { white-space: nowrap; }
tr.current-key-missing td, tr.overdue td { background: #fadbd8; }
tr.unmanaged td { background: #f5eef8; }
tr.stale-previous td, tr.due td { background: #fdebd0; }
tr.never-used td { background: #e8f8f5; }
tr.exempt td { background: #eaf2f8; }
tr.account-failed td { background: #f5b7b1; }
";

/// The chart's geometry: bar width, gap between bars, tallest bar (pixels).
const BAR: usize = 90;
const GAP: usize = 20;
const HEIGHT: usize = 200;

pub fn render(
    rows: &[InAccount<AuditRow>],
    ages: &[(&str, usize)],
    policy: &AuditPolicy,
) -> String {
    let keys = rows.iter().filter(|r| !r.row.failed_account()).count();
    // What needs attention first: accounts that failed, then the most serious finding, then by
    // account and user.
    let mut sorted: Vec<&InAccount<AuditRow>> = rows.iter().collect();
    sorted.sort_by(|a, b| {
        (b.row.failed_account(), b.row.worst)
            .cmp(&(a.row.failed_account(), a.row.worst))
            .then_with(|| a.account.cmp(&b.account))
            .then_with(|| a.row.user.cmp(&b.row.user))
    });
    let date = rfc3339(policy.as_of);
    let date = date.get(..10).unwrap_or(&date);
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "keyturn audit " (date) }
                // A constant of this file, not data: nothing to escape.
                style { (PreEscaped(STYLE)) }
            }
            body {
                h1 { "Access keys as of " (date) }
                p {
                    (keys) " active key(s); overdue means older than "
                    (policy.max_age.whole_days()) " days."
                }
                h2 { "Accounts" }
                (accounts(rows))
                h2 { "Key ages" }
                (chart(ages))
                h2 { "Findings" }
                table {
                    thead {
                        tr {
                            th { "Account" } th { "User" } th { "Slot" } th { "Key" } th { "Age (days)" }
                            th { "Last used" } th { "Secret" } th { "Label" } th { "Findings" }
                        }
                    }
                    tbody {
                        @for InAccount { account, account_name, row: r } in sorted {
                            tr class=(r.finding) {
                                td { (account) @if let Some(n) = account_name { " (" (n) ")" } }
                                td.nowrap { (r.user) }
                                td.num { (dash(r.slot)) }
                                td.nowrap { (r.key_id.as_deref().unwrap_or("-")) }
                                td.num { (dash(r.age_days)) }
                                td.nowrap { (r.used()) }
                                td.nowrap { (r.secret.as_deref().unwrap_or("-")) }
                                td.nowrap { (r.label.as_deref().unwrap_or("-")) }
                                td.findings { (r.findings_text()) }
                            }
                        }
                    }
                }
            }
        }
    }
    .into_string()
}

/// One line per account: its keys and how many have each finding, the accounts with the most
/// serious findings first (an account that could not be audited before all).
fn accounts(rows: &[InAccount<AuditRow>]) -> Markup {
    struct Summary<'a> {
        name: Option<&'a str>,
        counts: BTreeMap<Finding, usize>,
        error: Option<&'a str>,
    }
    let mut by_account: BTreeMap<&str, Summary> = BTreeMap::new();
    for r in rows {
        let s = by_account.entry(r.account.as_str()).or_insert(Summary {
            name: r.account_name.as_deref(),
            counts: BTreeMap::new(),
            error: None,
        });
        match &r.row.error {
            Some(e) => s.error = Some(e),
            None => *s.counts.entry(r.row.worst).or_default() += 1,
        }
    }
    let mut list: Vec<(&str, Summary)> = by_account.into_iter().collect();
    // Worst first: failed accounts, then by the most serious finding and how many keys have it.
    let rank = |s: &Summary| {
        let worst = s.counts.iter().next_back().map(|(f, n)| (*f, *n));
        (s.error.is_some(), worst)
    };
    list.sort_by(|a, b| rank(&b.1).cmp(&rank(&a.1)).then(a.0.cmp(b.0)));
    html! {
        table.accounts {
            thead { tr { th { "Account" } th { "Keys" } th { "Worst" } th { "Findings" } } }
            tbody {
                @for (id, s) in &list {
                    @let worst = s.counts.keys().next_back().map_or("ok", |f| f.as_str());
                    tr class=(if s.error.is_some() { "account-failed" } else { worst }) {
                        td { (id) @if let Some(n) = s.name { " (" (n) ")" } }
                        td.num { (s.counts.values().sum::<usize>()) }
                        td { (if s.error.is_some() { "account-failed" } else { worst }) }
                        td {
                            @if let Some(e) = s.error { (e) }
                            @else {
                                (s.counts.iter().rev().map(|(f, n)| format!("{n} {}", f.as_str())).collect::<Vec<_>>().join(", "))
                            }
                        }
                    }
                }
            }
        }
    }
}

fn dash(v: Option<impl ToString>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// A bar per age bucket; the two oldest buckets red, the one before them orange.
fn chart(ages: &[(&str, usize)]) -> Markup {
    let tallest = ages.iter().map(|(_, n)| *n).max().unwrap_or(0).max(1);
    html! {
        svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="Active access keys by age"
            width=(ages.len() * (BAR + GAP) + GAP) height=(HEIGHT + 60) {
            @for (i, (label, n)) in ages.iter().enumerate() {
                @let h = n * HEIGHT / tallest;
                @let x = GAP + i * (BAR + GAP);
                @let fill = match i { 0 | 1 => "#2e86c1", 2 => "#e67e22", _ => "#c0392b" };
                rect x=(x) y=(HEIGHT + 20 - h) width=(BAR) height=(h) fill=(fill) {}
                text x=(x + BAR / 2) y=(HEIGHT + 15 - h) text-anchor="middle" { (n) }
                text x=(x + BAR / 2) y=(HEIGHT + 40) text-anchor="middle" font-size="12" { (label) }
            }
        }
    }
}
