//! `keyturn status`: one secret's versions, its user's keys and what is wrong, as one typed report
//! printed as JSON or as text with aligned tables.

use keyturn_aws::AwsRotator;
use keyturn_core::error::{describe_use, human, rfc3339};
use keyturn_core::state::{LastUse, Needs, SecretState};
use keyturn_core::{rules, tags};
use serde::Serialize;

use crate::args::{Output, StatusArgs};
use crate::render::{plain_table, print_json, print_table};
use crate::safe::term;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusReport {
    secret: String,
    user: String,
    rotation_enabled: bool,
    /// When the key last changed: Secrets Manager's LastRotatedDate (its own rotations), else
    /// keyturn's cut-over record; `lastRotatedBy` says which (`secretsmanager`, `keyturn`).
    last_rotated: Option<String>,
    last_rotated_by: Option<&'static str>,
    next_rotation: Option<String>,
    cutover: Option<String>,
    /// The versions with a staging label (every version with --all-versions).
    versions: Vec<VersionRow>,
    /// How many older versions, holding no label, are not listed.
    versions_not_shown: usize,
    keys: Vec<KeyRow>,
    /// After a rotation: whether consumers moved to the new key.
    switch: Option<SwitchRow>,
    /// Until when the previous key counts as possibly in use whatever IAM shows (its last-used
    /// record lags: KEYTURN_LAST_USED_SETTLE_SECONDS); absent once the window has passed.
    previous_settling_until: Option<String>,
    /// Where a rotation delivers the key (`keyturn:sink:NAME` tags); a tag that does not parse or
    /// points where this configuration does not allow is a problem instead.
    sinks: Vec<SinkRow>,
    problems: Vec<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SinkRow {
    name: String,
    kind: &'static str,
    spec: String,
}

/// The switch evidence (`rules::switch_evidence`): the current key used since the cut-over, and
/// when and where the previous key was last used.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SwitchRow {
    current_key_id: String,
    current_used_since_cutover: bool,
    current_last_used: Option<LastUsed>,
    previous_key_id: Option<String>,
    previous_last_used: Option<LastUsed>,
}

fn last_used(u: &keyturn_core::ports::KeyUse) -> LastUsed {
    LastUsed {
        at: u.last_used.map(rfc3339),
        service: u.service.clone(),
        region: u.region.clone(),
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct VersionRow {
    version_id: String,
    labels: Vec<String>,
    key_id: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct KeyRow {
    key_id: String,
    status: &'static str,
    created: String,
    last_used: Option<LastUsed>,
    held_by: Vec<String>,
}

/// GetAccessKeyLastUsed's answer: `at` is absent for a key never used.
#[derive(Debug, Serialize)]
struct LastUsed {
    at: Option<String>,
    service: Option<String>,
    region: Option<String>,
}

/// When the key last changed, and by whom: Secrets Manager's LastRotatedDate is set by its own
/// rotations only; after a `keyturn rotate` the cut-over record says when.
fn last_rotation(state: &SecretState) -> Option<(time::OffsetDateTime, &'static str)> {
    match (
        state.info.last_rotated,
        rules::recorded_cutover(&state.info, state.now),
    ) {
        (Some(t), _) => Some((t, "secretsmanager")),
        (None, Some(c)) => Some((c, "keyturn")),
        (None, None) => None,
    }
}

/// Until when the previous key counts as possibly in use (the settle window), if it still does.
fn previous_settling(state: &SecretState) -> Option<time::OffsetDateTime> {
    state
        .key_of(tags::AWSPREVIOUS)
        .filter(|p| Some(*p) != state.current_key())
        .and_then(|_| rules::retire::settling(state, &rules::records::cutover(state)))
}

fn report(
    state: &SecretState,
    sinks: &rules::SinkPolicy,
    shared: Option<String>,
    all_versions: bool,
) -> StatusReport {
    let info = &state.info;
    let last = last_rotation(state);
    let shown = |h: &&keyturn_core::state::Holding| all_versions || !h.labels.is_empty();
    let mut problems = rules::problems(state);
    problems.extend(shared);
    let sinks = match rules::sinks(info, sinks) {
        Ok(found) => found
            .into_iter()
            .map(|s| SinkRow {
                kind: s.kind_name(),
                name: s.name,
                spec: s.spec,
            })
            .collect(),
        Err(e) => {
            problems.push(e.to_string());
            Vec::new()
        }
    };
    StatusReport {
        secret: info.name.clone(),
        user: state.user.name.clone(),
        rotation_enabled: info.rotation_enabled,
        last_rotated: last.map(|(t, _)| rfc3339(t)),
        last_rotated_by: last.map(|(_, by)| by),
        next_rotation: info.next_rotation.map(rfc3339),
        cutover: rules::recorded_cutover(info, state.now).map(rfc3339),
        versions_not_shown: state.holdings.len() - state.holdings.iter().filter(shown).count(),
        versions: state
            .holdings
            .iter()
            .filter(shown)
            .map(|h| VersionRow {
                version_id: h.version.clone(),
                labels: h.labels.clone(),
                key_id: h.key_id().map(str::to_string),
            })
            .collect(),
        keys: state
            .keys
            .iter()
            .map(|k| KeyRow {
                key_id: k.id.clone(),
                status: k.status.as_str(),
                created: rfc3339(k.created),
                last_used: k.last_use.as_ref().map(last_used),
                held_by: state
                    .labels_holding(&k.id)
                    .into_iter()
                    .map(str::to_string)
                    .collect(),
            })
            .collect(),
        previous_settling_until: previous_settling(state).map(rfc3339),
        switch: rules::switch_evidence(state).map(|e| SwitchRow {
            current_key_id: e.current_key,
            current_used_since_cutover: e.switched,
            current_last_used: e.current_use.as_ref().map(last_used),
            previous_key_id: e.previous_key,
            previous_last_used: e.previous_use.as_ref().map(last_used),
        }),
        sinks,
        problems,
    }
}

pub async fn run(r: &AwsRotator, a: StatusArgs, output: Output) -> anyhow::Result<bool> {
    let info = r.describe(&a.secret).await?;
    let needs = Needs {
        all_versions: true,
        last_use: LastUse::Every,
        who_else: true,
        tolerate_bad_values: true,
    };
    let read = r.read_state(info, None, needs).await?;
    let state = &read.state;
    // A destination another managed secret delivers to too: a rotation would refuse it.
    let ours = rules::sinks(&state.info, &r.settings().sinks).unwrap_or_default();
    let others = r.other_sinks(&state.info, &ours).await?;
    let shared = rules::check_unshared(&state.info.name, &ours, &others)
        .err()
        .map(|e| e.to_string());
    let out = report(state, &r.settings().sinks, shared, a.all_versions);
    match output {
        Output::Json => print_json(&out),
        // CSV was refused before the run (Command::output).
        Output::Table | Output::Csv => print_text(state, &out),
    }
    Ok(out.problems.is_empty())
}

fn print_text(state: &SecretState, out: &StatusReport) {
    let info = &state.info;
    println!(
        "secret   {}\nuser     {}",
        term(&out.secret),
        term(&out.user)
    );
    let last = match last_rotation(state) {
        Some((t, "keyturn")) => format!("{} (cut-over by keyturn)", human(t)),
        Some((t, _)) => format!("{} (by Secrets Manager)", human(t)),
        None => "never".into(),
    };
    println!(
        "rotation {}; last rotated {}; next {}",
        if info.rotation_enabled {
            "scheduled by Secrets Manager"
        } else {
            "not scheduled in Secrets Manager (rotate it with keyturn rotate from cron or CI, or schedule the function with keyturn enroll --adopt SECRET --rotation-lambda ARN)"
        },
        last,
        info.next_rotation
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
    for (k, facts) in out.keys.iter().zip(&state.keys) {
        keys.add_row([
            term(&k.key_id).into_owned(),
            k.status.to_string(),
            human(facts.created),
            facts
                .last_use
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
    if let Some(e) = rules::switch_evidence(state) {
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
    if let Some(until) = previous_settling(state).map(human) {
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
    println!("problems");
    if out.problems.is_empty() {
        println!("  none");
    }
    for p in &out.problems {
        println!("  - {}", term(p));
    }
}
