//! The rotation engine against the in-memory model of Secrets Manager and IAM.

mod delivery;
mod faults;
mod interleavings;
mod manage;
mod notices;
mod restarts;
mod rules;
mod shapes;
mod steps;

use std::collections::BTreeMap;
use std::time::Duration;

use keyturn_core::fake::World;
use keyturn_core::ports::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use keyturn_core::{
    AccessKey, Backoff, RotationError, RotationEvent, RotationSettings, Rotator, SecretText,
    SecretValue, Step, StepReport,
};

pub type FakeRotator = Rotator<(World, World, World, World, World)>;

pub fn settings() -> RotationSettings {
    RotationSettings {
        require_rotation_enabled: true,
        default_user: None,
        test_backoff: Backoff {
            attempts: 5,
            initial: Duration::from_secs(1),
            max: Duration::from_secs(4),
        },
        scope: Default::default(),
        events: false,
        // The delivery tests' repository secret is named KEY_ID: the deployment allows it.
        sinks: keyturn_core::rules::SinkPolicy {
            github_secret_names: vec!["KEY_ID".into()],
            ..Default::default()
        },
        // The restart tests' cluster and repository.
        restarts: keyturn_core::rules::RestartPolicy {
            ecs_clusters: vec!["prod".into()],
            github_repos: vec!["acme/app".into()],
            github_disabled: false,
        },
        notices: Default::default(),
        // Most tests rotate twice in a row on a model whose last-used record is live; the
        // settle window's own tests (`settle.rs`) turn it on.
        last_used_settle: time::Duration::ZERO,
    }
}

pub fn rotator(world: &World) -> FakeRotator {
    rotator_with(world, settings())
}

pub fn rotator_with(world: &World, settings: RotationSettings) -> FakeRotator {
    Rotator::new(
        world.clone(),
        world.clone(),
        world.clone(),
        world.clone(),
        settings,
    )
    .with_delivery(world.clone())
}

pub fn event(step: Step, secret: &str, token: &str) -> RotationEvent {
    RotationEvent {
        step,
        secret_id: secret.to_string(),
        token: token.to_string(),
    }
}

pub async fn step(
    r: &FakeRotator,
    s: Step,
    secret: &str,
    token: &str,
) -> Result<StepReport, RotationError> {
    r.run(&event(s, secret, token)).await
}

/// Runs the four steps in order, as Secrets Manager does.
pub async fn rotate(r: &FakeRotator, world: &World, secret: &str) -> Result<String, RotationError> {
    let token = world.start_rotation(secret);
    for s in Step::ALL {
        step(r, s, secret, &token).await?;
    }
    Ok(token)
}

/// A user `app1` with one key held by secret `keyturn/app1` in the canonical shape.
pub fn enrolled(world: &World) -> AccessKey {
    world.add_user("app1");
    let key = world.create_key("app1");
    world.add_secret("keyturn/app1", &canonical("app1", &key), &[]);
    key
}

pub fn canonical(user: &str, key: &AccessKey) -> String {
    SecretValue::canonical(user, key.clone())
        .render()
        .expose()
        .to_string()
}

/// The key held by the version with `label`.
pub fn key_at(world: &World, secret: &str, label: &str) -> Option<AccessKey> {
    let text = world.value_with(secret, label)?;
    SecretValue::parse(&SecretText::new(text))
        .ok()?
        .key()
        .cloned()
}

pub fn label_of(world: &World, secret: &str, version: &str) -> Vec<String> {
    world
        .labels(secret)
        .get(version)
        .cloned()
        .unwrap_or_default()
}

pub fn iam_calls(world: &World) -> Vec<String> {
    world
        .calls()
        .into_iter()
        .filter(|c| c.starts_with("iam:"))
        .collect()
}

/// What must hold after anything keyturn does: AWSCURRENT authenticates as the user, the user has
/// at most two keys, and every key is held by some version (none lost, none orphaned).
pub fn assert_safe(world: &World, secret: &str, user: &str) {
    let current = key_at(world, secret, AWSCURRENT).expect("AWSCURRENT holds a key");
    assert!(
        world.authenticates(&current),
        "AWSCURRENT key {} must authenticate",
        current.id
    );
    let keys = world.keys_of(user);
    assert!(keys.len() <= 2, "at most two keys: {keys:?}");
}

pub fn assert_no_orphans(world: &World, secret: &str, user: &str) {
    let held: Vec<String> = [AWSCURRENT, AWSPREVIOUS, AWSPENDING]
        .iter()
        .filter_map(|l| key_at(world, secret, l).map(|k| k.id))
        .collect();
    for (id, _) in world.keys_of(user) {
        assert!(
            held.contains(&id),
            "key {id} is held by no version: {:?}",
            world.labels(secret)
        );
    }
}

pub fn labels_by_key(world: &World, secret: &str) -> BTreeMap<String, String> {
    [AWSCURRENT, AWSPREVIOUS, AWSPENDING]
        .iter()
        .filter_map(|l| key_at(world, secret, l).map(|k| (l.to_string(), k.id)))
        .collect()
}
