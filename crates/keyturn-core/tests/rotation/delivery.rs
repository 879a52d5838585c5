//! Sinks, events, `deliver` and `rollback` against the model.

use std::time::Duration;

use keyturn_core::fake::World;
use keyturn_core::ports::{KeyEvent, KeyStatus, AWSCURRENT, AWSPREVIOUS};
use keyturn_core::rules::SweepPolicy;
use keyturn_core::RotationError;

use super::*;

const SECRET: &str = "keyturn/app1";
const DAY: Duration = Duration::from_secs(86_400);

/// `app1`'s secret delivering to a parameter (with a customer key) and a repository's secrets.
fn with_sinks(world: &World, extra: &[(&str, &str)]) -> AccessKey {
    world.add_user("app1");
    let key = world.create_key("app1");
    let mut tags = vec![
        ("keyturn:sink:param", "ssm:/app/key kms=alias/app"),
        ("keyturn:sink:ci", "github:acme/app?id=KEY_ID"),
    ];
    tags.extend_from_slice(extra);
    world.add_secret(SECRET, &canonical("app1", &key), &tags);
    key
}

fn with_events(world: &World) -> FakeRotator {
    rotator_with(
        world,
        RotationSettings {
            events: true,
            ..settings()
        },
    )
}

const GH: &str = "/repos/acme/app/actions/secrets";

fn delivered_id(world: &World) -> Option<String> {
    world.github_secret(&format!("{GH}/KEY_ID"))
}

#[tokio::test]
async fn finish_delivers_to_every_sink_before_awscurrent_moves_then_announces() {
    let world = World::new();
    let old = with_sinks(&world, &[]);
    let r = with_events(&world);
    world.clear_calls();
    rotate(&r, &world, SECRET).await.expect("rotation");
    let new = key_at(&world, SECRET, AWSCURRENT).expect("current");
    assert_ne!(new.id, old.id);
    let (value, kms) = world.parameter("/app/key").expect("parameter written");
    assert_eq!(
        Some(value),
        world.value_with(SECRET, AWSCURRENT),
        "the secret's own shape"
    );
    assert_eq!(kms.as_deref(), Some("alias/app"));
    assert_eq!(delivered_id(&world), Some(new.id.clone()));
    assert_eq!(
        world
            .github_secret(&format!("{GH}/AWS_SECRET_ACCESS_KEY"))
            .as_deref(),
        Some(new.secret.expose())
    );
    let calls = world.calls();
    let at = |name: &str| calls.iter().rposition(|c| c == name).expect(name);
    let moved = at("secretsmanager:UpdateSecretVersionStage");
    assert!(at("ssm:PutParameter") < moved && at("github:PutSecret") < moved);
    assert!(at("events:PutEvents") > moved, "announced after the move");
    let events = world.events();
    assert_eq!(events.len(), 1);
    let e = &events[0];
    assert_eq!(e.detail_type, KeyEvent::ROTATION);
    assert_eq!(
        (e.key_id.as_str(), e.user.as_str()),
        (new.id.as_str(), "app1")
    );
    assert_eq!(e.previous_key_id.as_deref(), Some(old.id.as_str()));
    assert_eq!(e.sinks, ["ci", "param"]);
    let json = serde_json::to_string(e).expect("json");
    assert!(!json.contains(new.secret.expose()) && !json.contains(old.secret.expose()));
}

#[tokio::test]
async fn a_failing_sink_fails_finish_with_awscurrent_unchanged_and_the_retry_delivers() {
    for refused in ["/app/key", GH] {
        let world = World::new();
        let old = with_sinks(&world, &[]);
        let r = rotator(&world);
        world.refuse(refused);
        let token = world.start_rotation(SECRET);
        for s in [Step::Create, Step::Set, Step::Test] {
            step(&r, s, SECRET, &token)
                .await
                .expect("steps before finish");
        }
        let e = step(&r, Step::Finish, SECRET, &token)
            .await
            .expect_err("the sink refuses");
        assert_eq!(e.error_type(), "SinkFailed", "{refused}");
        let msg = e.to_string();
        let sink = if refused == GH {
            "sink ci"
        } else {
            "sink param"
        };
        assert!(
            msg.contains(sink) && msg.contains("AWSCURRENT is unchanged"),
            "{msg}"
        );
        assert_eq!(key_at(&world, SECRET, AWSCURRENT), Some(old.clone()));
        assert!(world.authenticates(&old));
        let pending = key_at(&world, SECRET, keyturn_core::ports::AWSPENDING).expect("pending");
        assert!(
            world.authenticates(&pending),
            "both keys are valid meanwhile"
        );
        world.stop_refusing();
        step(&r, Step::Finish, SECRET, &token)
            .await
            .expect("retry delivers");
        let current = key_at(&world, SECRET, AWSCURRENT).expect("current");
        assert_eq!(current, pending);
        assert_eq!(delivered_id(&world), Some(current.id.clone()));
        assert_eq!(
            world.parameter("/app/key").map(|p| p.0),
            world.value_with(SECRET, AWSCURRENT)
        );
        assert!(world.events().is_empty(), "events are off");
    }
}

#[tokio::test]
async fn a_malformed_sink_tag_is_refused_before_any_key_is_created() {
    let world = World::new();
    with_sinks(&world, &[("keyturn:sink:typo", "sm:/app/key")]);
    let r = rotator(&world);
    world.clear_calls();
    let token = world.start_rotation(SECRET);
    let e = step(&r, Step::Create, SECRET, &token)
        .await
        .expect_err("refused");
    assert!(
        matches!(e, RotationError::BadSink { ref tag, .. } if tag == "keyturn:sink:typo"),
        "{e}"
    );
    assert_eq!(world.keys_of("app1").len(), 1);
    assert!(!world.calls().iter().any(|c| c == "iam:CreateAccessKey"));
}

#[tokio::test]
async fn deliver_writes_awscurrent_again_and_refuses_a_key_iam_does_not_have() {
    let world = World::new();
    let key = with_sinks(&world, &[]);
    let r = with_events(&world);
    let report = r.deliver(SECRET).await.expect("deliver");
    assert_eq!(report.key_id, key.id);
    assert_eq!(report.sinks, ["ci", "param"]);
    assert!(report.announced);
    assert_eq!(delivered_id(&world), Some(key.id.clone()));
    assert_eq!(world.events()[0].detail_type, KeyEvent::DELIVERY);
    // A second delivery rewrites the same values: harmless.
    r.deliver(SECRET).await.expect("again");
    assert_eq!(
        world.parameter("/app/key").map(|p| p.0),
        world.value_with(SECRET, AWSCURRENT)
    );

    let gone = World::new();
    let key = with_sinks(&gone, &[]);
    keyturn_core::ports::AccessKeys::delete(&keyturn_core::ports::Iam::own(&gone), "app1", &key.id)
        .await
        .expect("someone deletes the key");
    let e = with_events(&gone)
        .deliver(SECRET)
        .await
        .expect_err("dead key");
    assert_eq!(e.error_type(), "NotUsersKey", "{e}");
    assert!(gone.parameter("/app/key").is_none() && gone.events().is_empty());
}

#[tokio::test]
async fn rollback_puts_the_previous_key_back_delivers_it_and_leaves_the_other_to_the_sweep() {
    let world = World::new();
    let old = with_sinks(&world, &[]);
    let r = with_events(&world);
    rotate(&r, &world, SECRET).await.expect("rotation");
    let new = key_at(&world, SECRET, AWSCURRENT).expect("current");
    let dry = r.rollback(SECRET, true).await.expect("plan");
    assert!(dry.dry_run);
    assert_eq!(
        key_at(&world, SECRET, AWSCURRENT),
        Some(new.clone()),
        "a dry run changes nothing"
    );
    let report = r.rollback(SECRET, false).await.expect("rollback");
    assert_eq!(report.key_id, old.id);
    assert_eq!(report.from_key.as_deref(), Some(new.id.as_str()));
    assert!(!report.reactivated);
    assert_eq!(key_at(&world, SECRET, AWSCURRENT), Some(old.clone()));
    assert_eq!(key_at(&world, SECRET, AWSPREVIOUS), Some(new.clone()));
    assert_eq!(delivered_id(&world), Some(old.id.clone()));
    assert_eq!(
        world.parameter("/app/key").map(|p| p.0),
        world.value_with(SECRET, AWSCURRENT)
    );
    let tags = world.tags(SECRET);
    assert_eq!(tags.get("keyturn:rolled-back-from"), Some(&new.id));
    assert_eq!(tags.get("keyturn:current-key"), Some(&old.id));
    assert_eq!(tags.get("keyturn:previous-key"), Some(&new.id));
    let last = world.events().pop().expect("event");
    assert_eq!(last.detail_type, KeyEvent::ROLLBACK);
    assert_eq!(last.previous_key_id.as_deref(), Some(new.id.as_str()));
    // The rolled-back-from key waits for the grace period from the rollback, then is deactivated.
    let policy = SweepPolicy::default();
    world.advance(DAY);
    let early = r.sweep(SECRET, &policy, false).await.expect("sweep");
    assert_eq!(early.outcome.as_str(), "waiting", "{:?}", early.outcome);
    world.advance(7 * DAY);
    let later = r.sweep(SECRET, &policy, false).await.expect("sweep");
    assert_eq!(later.outcome.as_str(), "deactivated");
    assert!(!world.authenticates(&new));
    assert!(world.authenticates(&old));
}

#[tokio::test]
async fn rollback_reactivates_a_key_the_sweep_deactivated() {
    let world = World::new();
    let old = with_sinks(&world, &[]);
    let r = with_events(&world);
    rotate(&r, &world, SECRET).await.expect("rotation");
    world.advance(8 * DAY);
    let swept = r
        .sweep(SECRET, &SweepPolicy::default(), false)
        .await
        .expect("sweep");
    assert_eq!(swept.outcome.as_str(), "deactivated");
    let retired = world.events().pop().expect("retirement event");
    assert_eq!(
        (retired.detail_type, retired.action),
        (KeyEvent::RETIREMENT, Some("deactivated"))
    );
    assert_eq!(retired.key_id, old.id);
    assert!(!world.authenticates(&old));
    let report = r.rollback(SECRET, false).await.expect("rollback");
    assert!(report.reactivated);
    assert!(world.authenticates(&old));
    assert_eq!(key_at(&world, SECRET, AWSCURRENT), Some(old.clone()));
    assert!(world
        .keys_of("app1")
        .iter()
        .all(|(_, status)| *status == KeyStatus::Active));
    assert_eq!(
        world
            .tags(SECRET)
            .get("keyturn:deactivated-key")
            .map(String::as_str),
        Some("")
    );
}

#[tokio::test]
async fn rollback_refuses_without_a_previous_key_or_during_a_rotation_and_changes_nothing() {
    let world = World::new();
    with_sinks(&world, &[]);
    let r = rotator(&world);
    let e = r.rollback(SECRET, false).await.expect_err("never rotated");
    assert!(e.to_string().contains("no AWSPREVIOUS version"), "{e}");

    rotate(&r, &world, SECRET).await.expect("rotation");
    let labels = world.labels(SECRET);
    let previous = key_at(&world, SECRET, AWSPREVIOUS).expect("previous");
    keyturn_core::ports::AccessKeys::delete(
        &keyturn_core::ports::Iam::own(&world),
        "app1",
        &previous.id,
    )
    .await
    .expect("someone deletes the previous key");
    world.clear_calls();
    let e = r
        .rollback(SECRET, false)
        .await
        .expect_err("previous key deleted");
    assert_eq!(e.error_type(), "RollbackRefused");
    assert!(
        e.to_string().contains(&previous.id) && e.to_string().contains("nothing was changed"),
        "{e}"
    );
    assert_eq!(world.labels(SECRET), labels);
    assert!(world
        .parameter("/app/key")
        .is_some_and(|p| Some(p.0) == world.value_with(SECRET, AWSCURRENT)));

    let other = World::new();
    with_sinks(&other, &[]);
    let r = rotator(&other);
    rotate(&r, &other, SECRET).await.expect("rotation");
    other.start_rotation(SECRET);
    let labels = other.labels(SECRET);
    let e = r.rollback(SECRET, false).await.expect_err("in flight");
    assert!(e.to_string().contains("in flight"), "{e}");
    assert_eq!(other.labels(SECRET), labels);
}

#[tokio::test]
async fn cancelling_after_a_delivery_gives_the_sinks_awscurrent_back_before_the_key_goes() {
    use keyturn_core::fake::Fault;
    use keyturn_core::rotation::{LocalMode, LocalRequest};
    let world = World::new();
    let old = with_sinks(&world, &[]);
    let r = rotator_with(
        &world,
        RotationSettings {
            require_rotation_enabled: false,
            ..settings()
        },
    );
    let token = world.start_rotation(SECRET);
    for s in [Step::Create, Step::Set, Step::Test] {
        step(&r, s, SECRET, &token).await.expect("steps");
    }
    // finishSecret (DescribeSecret, GetSecretValue, then the sinks by name: ci's public key and two
    // secrets, then param) stops right after GitHub took the new key.
    world.arm(Fault::CrashAfter { call: 5 });
    assert!(step(&r, Step::Finish, SECRET, &token).await.is_err());
    assert!(world.crashed(), "{:?}", world.calls());
    world.restart();
    let pending = key_at(&world, SECRET, keyturn_core::ports::AWSPENDING).expect("pending");
    assert_eq!(
        delivered_id(&world),
        Some(pending.id.clone()),
        "the new key reached GitHub"
    );
    let request = LocalRequest {
        mode: LocalMode::Cancel,
        dry_run: false,
        due_days: None,
        new_token: "00000000-1111-4222-8333-444444444444".into(),
        exemptions: Default::default(),
    };
    let report = r.rotate_local(SECRET, &request).await.expect("cancel");
    assert_eq!(report.outcome.as_str(), "cancelled");
    // The rules decide whether the rotation's key goes (testSecret used it: it is kept).
    assert_eq!(world.key_exists(&pending.id), report.retired.is_none());
    assert_eq!(
        delivered_id(&world),
        Some(old.id.clone()),
        "GitHub has AWSCURRENT's key again"
    );
    assert_eq!(
        world.parameter("/app/key").map(|p| p.0),
        world.value_with(SECRET, AWSCURRENT)
    );
}
