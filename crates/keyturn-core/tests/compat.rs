//! keyturn's contract with its own past. What each released version wrote into Secrets Manager and
//! IAM (`tests/compat/VERSION/*.json`, recorded by `tests/compat/capture.py` with that release's
//! binaries against moto) is restored into the model exactly (key ids, version ids, labels, values,
//! tags, creation and last-use times) and this build must read it and act on it correctly: status
//! finds nothing wrong, a rotation keeps the key in use as the previous key, and the sweep believes
//! the records (cut-over, deactivation, rollback) that version wrote.
//!
//! A change that breaks one of these is a breaking change: CHANGELOG.md says so, with an upgrade
//! note, and the old fixtures stay.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use keyturn_core::fake::{RestoredKey, RestoredVersion, World};
use keyturn_core::ports::{KeyStatus, AWSCURRENT, AWSPREVIOUS};
use keyturn_core::rotation::{LocalMode, LocalOutcome, LocalRequest, SweepOutcome};
use keyturn_core::rules::SweepPolicy;
use keyturn_core::{Backoff, RotationSettings, Rotator};
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

#[derive(Debug, Deserialize)]
struct Fixture {
    written_by: String,
    captured_at: String,
    user: String,
    secret: Secret,
    keys: Vec<Key>,
}

#[derive(Debug, Deserialize)]
struct Secret {
    name: String,
    rotation_enabled: bool,
    tags: BTreeMap<String, String>,
    versions: Vec<Version>,
}

#[derive(Debug, Deserialize)]
struct Version {
    id: String,
    labels: Vec<String>,
    created: String,
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Key {
    id: String,
    status: String,
    created: String,
    last_used: Option<Used>,
}

#[derive(Debug, Deserialize)]
struct Used {
    at: String,
    service: String,
}

type FakeRotator = Rotator<(World, World, World, World, World)>;

const DAY: Duration = Duration::from_secs(86_400);

fn at(text: &str) -> OffsetDateTime {
    OffsetDateTime::parse(text, &Rfc3339).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Every fixture of every released version, by path.
fn fixtures() -> Vec<(PathBuf, Fixture)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/compat");
    let mut found = Vec::new();
    for release in std::fs::read_dir(&root).expect("tests/compat") {
        let release = release.expect("entry").path();
        if !release.is_dir() {
            continue;
        }
        for file in std::fs::read_dir(&release).expect("release dir") {
            let path = file.expect("entry").path();
            if path.extension().is_some_and(|e| e == "json") {
                let text = std::fs::read_to_string(&path).expect("fixture");
                let fixture = serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                found.push((path, fixture));
            }
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    // 0.1.0's four states at least: a lost directory must not pass as "nothing to check".
    assert!(
        found.len() >= 4,
        "no compatibility fixtures under {}",
        root.display()
    );
    found
}

/// The model holding exactly what the fixture recorded, its clock at the moment of recording.
fn restore(f: &Fixture) -> World {
    let world = World::new();
    world.set_now(at(&f.captured_at));
    world.add_user(&f.user);
    for k in &f.keys {
        world.restore_key(
            &f.user,
            RestoredKey {
                id: k.id.clone(),
                // What capture.py put in each value in place of the key's secret.
                secret: format!("fixture-secret-of-{}", k.id)
                    .chars()
                    .chain(std::iter::repeat('0'))
                    .take(40)
                    .collect(),
                status: if k.status == "Active" {
                    KeyStatus::Active
                } else {
                    KeyStatus::Inactive
                },
                created: at(&k.created),
                last_used: k.last_used.as_ref().map(|u| (at(&u.at), u.service.clone())),
            },
        );
    }
    let versions = f
        .secret
        .versions
        .iter()
        .map(|v| RestoredVersion {
            id: v.id.clone(),
            labels: v.labels.clone(),
            value: v.value.clone(),
            created: at(&v.created),
        })
        .collect();
    world.restore_secret(
        &f.secret.name,
        f.secret.rotation_enabled,
        versions,
        f.secret.tags.clone(),
    );
    world
}

fn rotator(world: &World) -> FakeRotator {
    let settings = RotationSettings {
        require_rotation_enabled: false,
        default_user: None,
        test_backoff: Backoff {
            attempts: 3,
            initial: Duration::from_millis(10),
            max: Duration::from_millis(10),
        },
        scope: Default::default(),
        events: false,
        sinks: Default::default(),
        restarts: Default::default(),
        notices: Default::default(),
        // The default: IAM's last-used record settles for four hours after a cut-over.
        last_used_settle: time::Duration::hours(4),
    };
    Rotator::new(
        world.clone(),
        world.clone(),
        world.clone(),
        world.clone(),
        settings,
    )
    .with_delivery(world.clone())
}

fn key_in(world: &World, secret: &str, label: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(&world.value_with(secret, label)?).ok()?;
    value["AccessKeyId"].as_str().map(str::to_string)
}

fn status_of(world: &World, user: &str, key: &str) -> Option<KeyStatus> {
    world
        .keys_of(user)
        .into_iter()
        .find(|(id, _)| id == key)
        .map(|(_, s)| s)
}

fn name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn status_reads_every_fixture_and_finds_nothing_wrong() {
    for (path, f) in fixtures() {
        let world = restore(&f);
        let report = rotator(&world)
            .status(&f.secret.name, true)
            .await
            .unwrap_or_else(|e| panic!("{} ({}): {e}", path.display(), f.written_by));
        assert_eq!(report.user, f.user, "{}", path.display());
        assert!(
            report.problems.is_empty(),
            "{}: {:?}",
            path.display(),
            report.problems
        );
        let current = key_in(&world, &f.secret.name, AWSCURRENT).expect("AWSCURRENT key");
        assert!(
            report
                .keys
                .iter()
                .any(|k| k.key_id == current && k.held_by.iter().any(|h| h.contains(AWSCURRENT))),
            "{}: status does not show {current} held by AWSCURRENT: {:?}",
            path.display(),
            report.keys
        );
    }
}

#[tokio::test]
async fn a_rotation_from_every_fixture_keeps_the_key_in_use_as_the_previous_key() {
    for (path, f) in fixtures() {
        let world = restore(&f);
        // A day on: past the settle window of the recorded cut-over.
        world.advance(DAY);
        let in_use = key_in(&world, &f.secret.name, AWSCURRENT).expect("AWSCURRENT key");
        let request = LocalRequest {
            mode: LocalMode::Rotate,
            dry_run: false,
            due_days: None,
            new_token: "0c0ffee0-2222-4333-8444-555555555555".into(),
            exemptions: Default::default(),
        };
        let report = rotator(&world)
            .rotate_local(&f.secret.name, &request)
            .await
            .unwrap_or_else(|e| panic!("{} ({}): {e}", path.display(), f.written_by));
        assert_eq!(report.outcome, LocalOutcome::Rotated, "{}", path.display());
        let new = key_in(&world, &f.secret.name, AWSCURRENT).expect("new AWSCURRENT key");
        assert_ne!(new, in_use, "{}", path.display());
        assert_eq!(
            key_in(&world, &f.secret.name, AWSPREVIOUS).as_deref(),
            Some(in_use.as_str()),
            "{}",
            path.display()
        );
        assert_eq!(
            status_of(&world, &f.user, &in_use),
            Some(KeyStatus::Active),
            "{}: the key in use must stay active",
            path.display()
        );
    }
}

#[tokio::test]
async fn the_sweep_believes_the_records_each_version_wrote() {
    for (path, f) in fixtures() {
        let world = restore(&f);
        let r = rotator(&world);
        // The policy capture.py's sweep ran with (grace 0): a deactivation record is believed only
        // if it is no earlier than the grace period's end under the policy that reads it.
        let policy = SweepPolicy {
            grace: time::Duration::ZERO,
            ..SweepPolicy::default()
        };
        let current = key_in(&world, &f.secret.name, AWSCURRENT).expect("AWSCURRENT key");
        let previous = key_in(&world, &f.secret.name, AWSPREVIOUS);
        // At once: the sweep retires nothing yet (IAM's last-used record of the recorded cut-over
        // is still settling, or the delete-after period counts from the recorded deactivation).
        let now = r.sweep(&f.secret.name, &policy, false).await;
        let now = now.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let tag = |t: &str| f.secret.tags.get(t).map(|v| at(v));
        match (name(&path).as_str(), &now.outcome) {
            ("enrolled", SweepOutcome::Nothing(_)) => {}
            // The settle window counts from the recorded cut-over (a rollback is one).
            (
                "rotated" | "rolled-back",
                SweepOutcome::Waiting {
                    until,
                    settling: true,
                    ..
                },
            ) => {
                let cutover = tag("keyturn:cutover-at").expect("cut-over record");
                assert_eq!(
                    *until,
                    cutover + time::Duration::hours(4),
                    "{}",
                    path.display()
                );
            }
            // The delete-after period counts from the recorded deactivation.
            (
                "swept",
                SweepOutcome::Waiting {
                    until,
                    inactive: true,
                    ..
                },
            ) => {
                let deactivated = tag("keyturn:deactivated-at").expect("deactivation record");
                assert_eq!(
                    *until,
                    deactivated + policy.delete_after,
                    "{}",
                    path.display()
                );
            }
            (fixture, outcome) => panic!("{}: {fixture}: {outcome:?}", path.display()),
        }
        // Eight days on: past the settle window and the delete-after period.
        world.advance(DAY * 8);
        let later = r.sweep(&f.secret.name, &policy, false).await;
        let later = later.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let expected = match (name(&path).as_str(), previous) {
            ("enrolled", None) => "nothing",
            ("rotated" | "rolled-back", Some(_)) => "deactivated",
            ("swept", Some(_)) => "deleted",
            (other, previous) => panic!(
                "{}: no expectation for {other} ({previous:?})",
                path.display()
            ),
        };
        assert_eq!(
            later.outcome.as_str(),
            expected,
            "{}: {:?}",
            path.display(),
            later.outcome
        );
        assert_eq!(
            status_of(&world, &f.user, &current),
            Some(KeyStatus::Active),
            "{}: AWSCURRENT's key must stay active",
            path.display()
        );
    }
}

#[tokio::test]
async fn the_audit_joins_keys_to_secrets_by_the_recorded_key_ids_without_reading_a_value() {
    use keyturn_core::ports::SecretStore;
    for (path, f) in fixtures() {
        let world = restore(&f);
        let info = world.describe(&f.secret.name).await.expect("describe");
        world.clear_calls();
        let (held, _) = rotator(&world)
            .held_keys(info, 90)
            .await
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let by_label: BTreeMap<String, String> =
            held.into_iter().map(|k| (k.label, k.key_id)).collect();
        let mut expected = BTreeMap::new();
        for label in [AWSCURRENT, AWSPREVIOUS] {
            if let Some(key) = key_in(&world, &f.secret.name, label) {
                expected.insert(label.to_string(), key);
            }
        }
        assert_eq!(by_label, expected, "{}", path.display());
        // The records (keyturn:current-key, keyturn:previous-key, the cut-over) were believed:
        // the join read no secret value.
        let reads: Vec<String> = world
            .calls()
            .into_iter()
            .filter(|c| c == "secretsmanager:GetSecretValue")
            .collect();
        assert!(reads.is_empty(), "{}: {reads:?}", path.display());
    }
}
