//! CloudWatch metrics in the embedded metric format: one JSON object per log line whose `_aws`
//! member declares the namespace, the dimension sets and each metric's name and unit, with the
//! dimensions' and metrics' values as top-level members. CloudWatch Logs extracts the metrics from
//! the function's log group as it ingests the line: no PutMetricData call, no permission.
//!
//! Every line is in the `keyturn` namespace (the template's dashboard and alarms read it there).

use keyturn_core::audit::{AuditEntry, Finding};
use keyturn_core::rotation::SweepOutcome;
use serde_json::{json, Map, Value};
use time::OffsetDateTime;

pub const NAMESPACE: &str = "keyturn";

/// One metric's value and unit (`Count`, `Milliseconds`, or `None` for a plain number such as
/// days).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metric {
    pub name: &'static str,
    pub unit: &'static str,
    pub value: f64,
}

fn count(name: &'static str, value: usize) -> Metric {
    Metric {
        name,
        unit: "Count",
        value: value as f64,
    }
}

/// One EMF log line: `dimensions` the members each dimension set names (by name, with its
/// value), `sets` the dimension sets (each a list of names; an empty set gives metrics with no
/// dimension).
pub fn line(
    at: OffsetDateTime,
    sets: &[&[&str]],
    dimensions: &[(&str, &str)],
    metrics: &[Metric],
) -> String {
    let mut root = Map::new();
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": (at.unix_timestamp_nanos() / 1_000_000) as i64,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": sets,
                "Metrics": metrics
                    .iter()
                    .map(|m| json!({"Name": m.name, "Unit": m.unit}))
                    .collect::<Vec<_>>(),
            }],
        }),
    );
    for (name, value) in dimensions {
        root.insert((*name).into(), Value::String((*value).into()));
    }
    for m in metrics {
        root.insert(m.name.into(), json!(m.value));
    }
    Value::Object(root).to_string()
}

/// A rotation step's metrics: `Rotations` (1 when finishSecret moved AWSCURRENT), `KeysRetired`
/// (a key the step deleted), `StepDuration`, by step; a failure's `Failures` by step and by step
/// and error type.
pub fn step(
    at: OffsetDateTime,
    step: &str,
    outcome: Result<(bool, bool), &str>,
    duration_ms: u64,
) -> String {
    let duration = Metric {
        name: "StepDuration",
        unit: "Milliseconds",
        value: duration_ms as f64,
    };
    match outcome {
        Ok((rotated, retired)) => line(
            at,
            &[&["Step"]],
            &[("Step", step)],
            &[
                count("Rotations", usize::from(rotated)),
                count("KeysRetired", usize::from(retired)),
                duration,
            ],
        ),
        Err(error_type) => line(
            at,
            &[&["Step"], &["Step", "ErrorType"]],
            &[("Step", step), ("ErrorType", error_type)],
            &[count("Failures", 1), duration],
        ),
    }
}

/// The sweep's metrics, with no dimension: keys retired (deactivated or deleted), secrets whose
/// previous key awaits the switch and the longest wait in whole days since the cut-over, secrets
/// whose retirement was blocked, and secrets that could not be swept.
pub fn sweep(at: OffsetDateTime, outcomes: &[SweepOutcome], failed: usize) -> String {
    let retired = outcomes
        .iter()
        .filter(|o| {
            matches!(
                o,
                SweepOutcome::Deactivated { .. } | SweepOutcome::Deleted { .. }
            )
        })
        .count();
    let awaiting: Vec<Option<OffsetDateTime>> = outcomes
        .iter()
        .filter_map(|o| match o {
            SweepOutcome::AwaitingSwitch { since, .. } => Some(*since),
            _ => None,
        })
        .collect();
    let longest = awaiting
        .iter()
        .map(|since| since.map_or(0, |s| (at - s).whole_days().max(0)))
        .max()
        .unwrap_or(0);
    let blocked = outcomes
        .iter()
        .filter(|o| matches!(o, SweepOutcome::Blocked { .. }))
        .count();
    line(
        at,
        &[&[]],
        &[],
        &[
            count("KeysRetired", retired),
            count("SecretsAwaitingSwitch", awaiting.len()),
            Metric {
                name: "AwaitingSwitchDays",
                unit: "None",
                value: longest as f64,
            },
            count("SweepBlocked", blocked),
            count("SweepFailures", failed),
        ],
    )
}

/// The audit's metrics: the keys of each finding (every finding, zero included, so a graph
/// falls to zero when the last key is fixed), by finding; the oldest active key's age in days, by
/// account.
pub fn audit(at: OffsetDateTime, account: &str, entries: &[AuditEntry]) -> Vec<String> {
    let mut lines: Vec<String> = Finding::ALL
        .iter()
        .map(|f| {
            let keys = entries.iter().filter(|e| e.worst() == *f).count();
            line(
                at,
                &[&["Finding"]],
                &[("Finding", f.as_str())],
                &[count("KeysByFinding", keys)],
            )
        })
        .collect();
    let oldest = entries.iter().filter_map(|e| e.age_days).max().unwrap_or(0);
    lines.push(line(
        at,
        &[&["Account"]],
        &[("Account", account)],
        &[Metric {
            name: "OldestActiveKeyDays",
            unit: "None",
            value: oldest as f64,
        }],
    ));
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    /// The format's structure, as CloudWatch's specification states it: `_aws` with an integer
    /// `Timestamp` in ms and `CloudWatchMetrics` (namespace 1 to 255 characters; dimension sets of
    /// at most 30 names, each a top-level string; at most 100 metrics, each named, with a known
    /// unit and a top-level number).
    pub(crate) fn valid(line: &str) -> Result<(), String> {
        let v: Value = serde_json::from_str(line).map_err(|e| e.to_string())?;
        let aws = v.get("_aws").ok_or("no _aws")?;
        aws.get("Timestamp")
            .and_then(Value::as_i64)
            .ok_or("Timestamp")?;
        for d in aws["CloudWatchMetrics"]
            .as_array()
            .ok_or("CloudWatchMetrics")?
        {
            let ns = d["Namespace"].as_str().ok_or("Namespace")?;
            if ns.is_empty() || ns.len() > 255 {
                return Err("Namespace length".into());
            }
            for set in d["Dimensions"].as_array().ok_or("Dimensions")? {
                let set = set.as_array().ok_or("a dimension set")?;
                if set.len() > 30 {
                    return Err("more than 30 dimensions".into());
                }
                for name in set {
                    let name = name.as_str().ok_or("a dimension name")?;
                    v.get(name)
                        .and_then(Value::as_str)
                        .ok_or(format!("dimension {name}"))?;
                }
            }
            let metrics = d["Metrics"].as_array().ok_or("Metrics")?;
            if metrics.len() > 100 {
                return Err("more than 100 metrics".into());
            }
            for m in metrics {
                let name = m["Name"].as_str().ok_or("Name")?;
                let unit = m["Unit"].as_str().ok_or("Unit")?;
                if !["Count", "Milliseconds", "Seconds", "None"].contains(&unit) {
                    return Err(format!("unit {unit}"));
                }
                v.get(name)
                    .and_then(Value::as_f64)
                    .ok_or(format!("metric {name}"))?;
            }
        }
        Ok(())
    }

    #[test]
    fn every_line_is_valid_emf() {
        let at = datetime!(2026-09-01 09:00 UTC);
        let ok = step(at, "finishSecret", Ok((true, false)), 42);
        let failed = step(at, "testSecret", Err("KeyInUse"), 7);
        for l in [&ok, &failed] {
            valid(l).expect("valid");
        }
        let v: Value = serde_json::from_str(&failed).expect("json");
        assert_eq!(v["ErrorType"], "KeyInUse");
        assert_eq!(v["Failures"], 1.0);
        assert_eq!(v["_aws"]["Timestamp"], 1_788_253_200_000i64);
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Step"], ["Step", "ErrorType"]])
        );
        let v: Value = serde_json::from_str(&ok).expect("json");
        assert_eq!(
            (v["Rotations"].as_f64(), v["StepDuration"].as_f64()),
            (Some(1.0), Some(42.0))
        );
        let swept = sweep(at, &[], 0);
        valid(&swept).expect("valid");
        let v: Value = serde_json::from_str(&swept).expect("json");
        assert_eq!(v["_aws"]["CloudWatchMetrics"][0]["Dimensions"], json!([[]]));
        assert_eq!(v["AwaitingSwitchDays"], 0.0);
        assert!(valid(r#"{"_aws":{"Timestamp":1,"CloudWatchMetrics":[{"Namespace":"k","Dimensions":[["Step"]],"Metrics":[{"Name":"X","Unit":"Count"}]}]},"X":1}"#).is_err(), "a dimension without its value");
    }
}
