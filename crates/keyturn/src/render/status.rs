//! `keyturn status` as text: the report's facts, with aligned tables for versions and keys.

use keyturn_core::error::{describe_use, human};
use keyturn_core::status::StatusReport;

use super::{plain_table, print_table};
use crate::safe::term;

pub fn print(out: &StatusReport) {
    let facts = &out.facts;
    println!(
        "secret   {}\nuser     {}",
        term(&out.secret),
        term(&out.user)
    );
    let last = match (facts.last_rotated, out.last_rotated_by) {
        (Some(t), Some("keyturn")) => format!("{} (cut-over by keyturn)", human(t)),
        (Some(t), _) => format!("{} (by Secrets Manager)", human(t)),
        (None, _) => "never".into(),
    };
    println!(
        "rotation {}; last rotated {}; next {}",
        if out.rotation_enabled {
            "scheduled by Secrets Manager"
        } else {
            "not scheduled in Secrets Manager (rotate it with keyturn rotate from cron or CI, or schedule the function with keyturn enroll --adopt SECRET --rotation-lambda ARN)"
        },
        last,
        facts
            .next_rotation
            .map(human)
            .unwrap_or_else(|| "not scheduled".into()),
    );
    let mut versions = plain_table(["VERSION", "LABELS", "KEY"]);
    for v in &out.versions {
        versions.add_row([
            term(&v.version_id).into_owned(),
            term(&v.labels.join(",")).into_owned(),
            term(v.key_id.as_deref().unwrap_or("-")).into_owned(),
        ]);
    }
    println!("versions");
    print_table(&versions);
    if out.versions_not_shown > 0 {
        println!(
            "  and {} older version(s) with no label (--all-versions lists them)",
            out.versions_not_shown
        );
    }
    let mut keys = plain_table(["KEY", "STATUS", "CREATED", "LAST USE", "HELD BY"]);
    for k in &out.keys {
        keys.add_row([
            term(&k.key_id).into_owned(),
            k.status.to_string(),
            human(k.created_at),
            k.last_use
                .as_ref()
                .map(describe_use)
                .unwrap_or_else(|| "last use unknown".into()),
            if k.held_by.is_empty() {
                "nothing".into()
            } else {
                term(&k.held_by.join(",")).into_owned()
            },
        ]);
    }
    println!("keys");
    print_table(&keys);
    if let Some(e) = &facts.switch {
        let previous = match (&e.previous_key, &e.previous_use) {
            (Some(p), Some(u)) => format!("; the previous key {p} was {}", describe_use(u)),
            (Some(p), None) => format!("; the previous key {p}'s last use is unknown"),
            _ => String::new(),
        };
        println!(
            "switch   {}{}",
            term(&if e.switched {
                format!(
                    "consumers moved: the current key {} was used since the cut-over ({})",
                    e.current_key,
                    e.current_use.as_ref().map(describe_use).unwrap_or_default()
                )
            } else {
                format!(
                    "no evidence yet: the current key {} has not been used since the cut-over",
                    e.current_key
                )
            }),
            term(&previous)
        );
    }
    if let Some(until) = facts.previous_settling_until.map(human) {
        println!(
            "settle   the previous key counts as possibly in use until {until}: IAM shows uses hours late (KEYTURN_LAST_USED_SETTLE_SECONDS), so nothing retires it before then"
        );
    }
    if !out.sinks.is_empty() {
        let sinks: Vec<String> = out
            .sinks
            .iter()
            .map(|s| format!("{} ({})", s.name, s.spec))
            .collect();
        println!("sinks    {}", term(&sinks.join(", ")));
    }
    for r in &out.restarts {
        println!(
            "restart  {} ({}): {}",
            term(&r.name),
            term(&r.spec),
            term(&r.detail)
        );
    }
    println!("problems");
    if out.problems.is_empty() {
        println!("  none");
    }
    for p in &out.problems {
        println!("  - {}", term(p));
    }
}
