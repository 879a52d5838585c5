//! Owners' notices against the model: a rotation done (or with a failed restart), a failed step, a
//! key still in use after its grace period, a reminder before a rotation consumers must act on by
//! hand; none without an owner or a topic; never a secret key; a topic that refuses changes
//! nothing else.

use std::time::Duration;

use keyturn_core::config::NoticePolicy;
use keyturn_core::fake::World;
use keyturn_core::ports::{Notice, AWSCURRENT};
use keyturn_core::rotation::SweepOutcome;
use keyturn_core::rules::{InUsePolicy, SweepPolicy};

use super::*;

const SECRET: &str = "keyturn/app1";
const TOPIC: &str = "arn:aws:sns:us-east-1:123456789012:keyturn-notices";
const DAY: Duration = Duration::from_secs(86_400);

fn notifying(world: &World) -> FakeRotator {
    rotator_with(
        world,
        RotationSettings {
            notices: NoticePolicy {
                topic: Some(TOPIC.into()),
                ..NoticePolicy::default()
            },
            ..settings()
        },
    )
}

fn owned(world: &World, tags: &[(&str, &str)]) -> AccessKey {
    world.add_user("app1");
    let key = world.create_key("app1");
    let mut all = vec![("keyturn:owner", "team-payments")];
    all.extend_from_slice(tags);
    world.add_secret(SECRET, &canonical("app1", &key), &all);
    key
}

/// No notice holds a secret access key the world has made.
fn assert_no_secret(world: &World, notices: &[Notice]) {
    let text: String = notices.iter().map(|n| n.message()).collect();
    for secret in world.secrets_made() {
        assert!(!text.contains(&secret), "a secret access key in a notice");
    }
}

#[tokio::test]
async fn a_rotation_tells_its_owner_what_was_done_in_the_chat_shape() {
    let world = World::new();
    let old = owned(&world, &[]);
    let r = notifying(&world);
    rotate(&r, &world, SECRET).await.expect("rotation");
    let new = key_at(&world, SECRET, AWSCURRENT).expect("current");
    let [notice] = world.notices().try_into().expect("one notice");
    assert_eq!(
        (notice.kind, notice.owner.as_str()),
        ("rotated", "team-payments")
    );
    assert!(notice.description.contains(&new.id), "{notice:?}");
    let message: serde_json::Value = serde_json::from_str(&notice.message()).expect("JSON");
    assert_eq!(message["version"], "1.0");
    assert_eq!(message["source"], "custom");
    assert_eq!(message["content"]["textType"], "client-markdown");
    assert_eq!(message["metadata"]["threadId"], "keyturn/keyturn/app1");
    assert_eq!(
        message["metadata"]["additionalContext"]["owner"],
        "team-payments"
    );
    assert_ne!(new.id, old.id);
    assert_no_secret(&world, &world.notices());
}

#[tokio::test]
async fn a_failed_restart_and_a_failed_step_are_notices_of_failure() {
    let world = World::new();
    owned(&world, &[("keyturn:restart:web", "ecs:prod/web")]);
    world.add_restart_target("ecs:prod/web");
    world.refuse("ecs:prod/web");
    let r = notifying(&world);
    rotate(&r, &world, SECRET)
        .await
        .expect("the rotation stands");
    let notice = world.notices().pop().expect("notice");
    assert_eq!(notice.kind, "failed");
    assert!(
        notice.description.contains("Restarting web failed"),
        "{notice:?}"
    );
    assert!(notice
        .next_steps
        .iter()
        .any(|s| s.contains("deliver --restart")));

    // A step that fails (no pending version for this token) is told too.
    let before = world.notices().len();
    let e = step(&r, Step::Create, SECRET, "no-such-token")
        .await
        .expect_err("unknown version");
    let notice = world.notices().pop().expect("notice");
    assert_eq!(world.notices().len(), before + 1);
    assert_eq!(notice.kind, "failed");
    assert!(notice.description.contains(e.error_type()), "{notice:?}");
    assert_no_secret(&world, &world.notices());
}

#[tokio::test]
async fn no_owner_no_topic_or_a_bad_owner_sends_nothing_and_a_refusing_topic_changes_nothing() {
    for (tags, topic) in [
        (vec![], true),
        (vec![("keyturn:owner", "https://hooks.example/x")], true),
        (vec![("keyturn:owner", "team-a")], false),
    ] {
        let world = World::new();
        world.add_user("app1");
        let key = world.create_key("app1");
        world.add_secret(SECRET, &canonical("app1", &key), &tags);
        let r = if topic {
            notifying(&world)
        } else {
            rotator(&world)
        };
        rotate(&r, &world, SECRET).await.expect("rotation");
        assert!(world.notices().is_empty(), "{tags:?} {topic}");
    }
    let world = World::new();
    let old = owned(&world, &[]);
    world.refuse(TOPIC);
    let r = notifying(&world);
    rotate(&r, &world, SECRET)
        .await
        .expect("a refused notice fails nothing");
    assert_ne!(
        key_at(&world, SECRET, AWSCURRENT).expect("current").id,
        old.id
    );
    assert!(world.notices().is_empty());
}

#[tokio::test]
async fn the_sweep_tells_the_owner_of_a_key_in_use_who_must_do_what_by_when() {
    let world = World::new();
    let old = owned(&world, &[]);
    let r = notifying(&world);
    rotate(&r, &world, SECRET).await.expect("rotation");
    world.advance(8 * DAY);
    world.use_key(&old.id, "s3");
    let policy = SweepPolicy {
        grace: time::Duration::days(7),
        delete_after: time::Duration::days(7),
        in_use: InUsePolicy::Report,
        require_switch: false,
    };
    let sent_before = world.notices().len();
    let dry = r.notices_today(SECRET, &policy).await.expect("notices");
    assert_eq!(dry.iter().map(|n| n.kind).collect::<Vec<_>>(), ["in-use"]);
    assert_eq!(
        world.notices().len(),
        sent_before,
        "notices_today sends nothing"
    );
    let swept = r.sweep(SECRET, &policy, false).await.expect("sweep");
    assert!(matches!(swept.outcome, SweepOutcome::InUse { .. }));
    let notice = world.notices().pop().expect("notice");
    assert_eq!(notice.kind, "in-use");
    assert!(notice.title.contains(&old.id));
    assert!(
        notice.next_steps.iter().any(|s| s.contains("by ")),
        "{notice:?}"
    );
}

#[tokio::test]
async fn a_reminder_goes_before_a_rotation_consumers_must_act_on_by_hand_and_not_otherwise() {
    let world = World::new();
    let enrolled = keyturn_core::error::rfc3339(world.now() - time::Duration::days(23));
    owned(&world, &[("keyturn:enrolled-at", &enrolled)]);
    let r = notifying(&world);
    let policy = SweepPolicy::default();
    let dry = r.notices_today(SECRET, &policy).await.expect("notices");
    assert_eq!(dry.iter().map(|n| n.kind).collect::<Vec<_>>(), ["due"]);
    assert!(dry[0]
        .next_steps
        .iter()
        .any(|s| s.contains("keyturn:consumers=credential-process")));
    r.sweep(SECRET, &policy, false).await.expect("sweep");
    assert_eq!(world.notices().last().map(|n| n.kind), Some("due"));
    // The next day: no reminder; a secret with a sink: none at all.
    world.advance(DAY);
    assert!(r
        .notices_today(SECRET, &policy)
        .await
        .expect("notices")
        .is_empty());
    let other = World::new();
    let enrolled = keyturn_core::error::rfc3339(other.now() - time::Duration::days(23));
    owned(
        &other,
        &[
            ("keyturn:enrolled-at", &enrolled),
            ("keyturn:sink:p", "ssm:/app/key"),
        ],
    );
    assert!(notifying(&other)
        .notices_today(SECRET, &policy)
        .await
        .expect("notices")
        .is_empty());
}
