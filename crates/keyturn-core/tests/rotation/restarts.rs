//! Restart targets against the model: finishSecret restarts them after AWSCURRENT moves, a
//! failure leaves the rotation done and is retried, a target outside the deployment's bounds is
//! refused before a key is made, and the sweep retires the previous key only after every restart
//! completed and the new key was used.

use std::time::Duration;

use keyturn_core::fake::World;
use keyturn_core::ports::{KeyStatus, RolloutState, AWSCURRENT, AWSPREVIOUS};
use keyturn_core::rotation::SweepOutcome;
use keyturn_core::rules::{InUsePolicy, SweepPolicy};
use keyturn_core::RotationError;

use super::*;

const SECRET: &str = "keyturn/app1";
const DAY: Duration = Duration::from_secs(86_400);
const WEB: &str = "ecs:prod/web";
const DEPLOY: &str = "github:acme/app/deploy.yml@main";

/// `app1`'s secret naming an ECS service and a deploy workflow, both existing.
fn with_targets(world: &World, extra: &[(&str, &str)]) -> AccessKey {
    world.add_user("app1");
    let key = world.create_key("app1");
    let mut tags = vec![
        ("keyturn:restart:web", "ecs:prod/web"),
        (
            "keyturn:restart:deploy",
            "github:acme/app workflow=deploy.yml ref=main",
        ),
    ];
    tags.extend_from_slice(extra);
    world.add_secret(SECRET, &canonical("app1", &key), &tags);
    world.add_restart_target(WEB);
    world.add_restart_target(DEPLOY);
    key
}

/// The suite's rotator with events on.
fn announcing(world: &World) -> FakeRotator {
    rotator_with(
        world,
        RotationSettings {
            events: true,
            ..settings()
        },
    )
}

fn policy() -> SweepPolicy {
    SweepPolicy {
        grace: time::Duration::days(7),
        delete_after: time::Duration::days(7),
        in_use: InUsePolicy::Report,
        require_switch: false,
    }
}

fn position(calls: &[String], call: &str) -> usize {
    calls
        .iter()
        .position(|c| c == call)
        .unwrap_or_else(|| panic!("{call} in {calls:?}"))
}

#[tokio::test]
async fn finish_restarts_every_target_after_awscurrent_moves() {
    let world = World::new();
    let old = with_targets(&world, &[]);
    let r = announcing(&world);
    world.clear_calls();
    rotate(&r, &world, SECRET).await.expect("rotation");
    let calls = world.calls();
    let moved = position(&calls, "secretsmanager:UpdateSecretVersionStage");
    assert!(position(&calls, "ecs:UpdateService") > moved, "{calls:?}");
    assert!(
        position(&calls, "github:DispatchWorkflow") > moved,
        "{calls:?}"
    );
    assert_eq!(world.rollouts(WEB).len(), 2, "one restart of the service");
    assert_eq!(world.rollouts(DEPLOY).len(), 2, "one dispatch");
    let new = key_at(&world, SECRET, AWSCURRENT).expect("current");
    assert_ne!(new.id, old.id);
    let event = world.events().pop().expect("the rotation's event");
    assert_eq!(event.restarted, ["deploy", "web"]);
    assert!(event.restart_failed.is_empty());
}

#[tokio::test]
async fn a_failed_restart_leaves_the_rotation_done_and_reported() {
    let world = World::new();
    let old = with_targets(&world, &[]);
    let r = announcing(&world);
    world.refuse(WEB);
    let token = world.start_rotation(SECRET);
    for s in [Step::Create, Step::Set, Step::Test] {
        step(&r, s, SECRET, &token).await.expect("step");
    }
    let finished = step(&r, Step::Finish, SECRET, &token)
        .await
        .expect("finishSecret succeeds although a restart failed");
    assert_eq!(finished.restarts.restarted, ["deploy"]);
    let (target, why) = &finished.restarts.failed[0];
    assert_eq!(target, "web");
    for says in ["keyturn/app1", "restart web", "deliver --restart", "app1"] {
        assert!(why.contains(says), "{says}: {why}");
    }
    let new = key_at(&world, SECRET, AWSCURRENT).expect("current");
    assert_ne!(new.id, old.id, "AWSCURRENT moved and stays");
    assert!(world.authenticates(&old) && world.authenticates(&new));
    let event = world.events().pop().expect("event");
    assert_eq!(event.restart_failed, ["web"]);

    // The sweep, while the previous key waits out its grace period, restarts it again.
    world.stop_refusing();
    world.advance(DAY);
    let swept = r.sweep(SECRET, &policy(), false).await.expect("sweep");
    assert!(
        matches!(swept.outcome, SweepOutcome::Waiting { .. }),
        "{swept:?}"
    );
    assert_eq!(world.rollouts(WEB).len(), 2, "restarted again by the sweep");
    assert_eq!(
        world.rollouts(DEPLOY).len(),
        2,
        "the dispatch that worked is not repeated"
    );

    // And `deliver --restart` restarts on request; with pending_only, only what is not done.
    world.finish_rollout(WEB, RolloutState::Completed);
    world.finish_rollout(DEPLOY, RolloutState::Completed);
    let asked = r.restart(SECRET, true).await.expect("restart");
    assert_eq!(asked.key_id, new.id);
    assert_eq!(
        asked.targets,
        [("deploy".to_string(), "done"), ("web".to_string(), "done")]
    );
    assert_eq!(world.rollouts(WEB).len(), 2);
    let all = r.restart(SECRET, false).await.expect("restart");
    assert!(all.targets.iter().all(|(_, w)| *w == "restarted"));
    assert_eq!(world.rollouts(WEB).len(), 3);
    world.refuse(DEPLOY);
    let e = r.restart(SECRET, false).await.expect_err("refused");
    assert!(
        matches!(e, RotationError::RestartFailed { ref target, .. } if target.contains("deploy")),
        "{e}"
    );
}

#[tokio::test]
async fn a_target_outside_the_deployments_bounds_is_refused_before_a_key_is_made() {
    for (tag, value) in [
        ("keyturn:restart:other", "ecs:staging/web"),
        (
            "keyturn:restart:other",
            "github:mallory/app workflow=deploy.yml ref=main",
        ),
        ("keyturn:restart:bad", "ecs:prod"),
    ] {
        let world = World::new();
        let old = with_targets(&world, &[(tag, value)]);
        let r = rotator(&world);
        world.clear_calls();
        let e = rotate(&r, &world, SECRET).await.expect_err(value);
        assert!(
            matches!(e, RotationError::BadRestart { tag: ref t, .. } if t == tag),
            "{e}"
        );
        assert!(e.to_string().contains("no key was created"), "{e}");
        assert!(!iam_calls(&world).iter().any(|c| c == "iam:CreateAccessKey"));
        assert_eq!(world.keys_of("app1").len(), 1);
        assert_eq!(key_at(&world, SECRET, AWSCURRENT), Some(old));
        assert!(world.rollouts(WEB).len() == 1 && world.rollouts(DEPLOY).len() == 1);
    }
}

#[tokio::test]
async fn the_sweep_retires_the_previous_key_only_after_every_restart_completed_and_the_new_key_was_used(
) {
    let world = World::new();
    let old = with_targets(&world, &[]);
    let r = rotator(&world);
    rotate(&r, &world, SECRET).await.expect("rotation");
    let new = key_at(&world, SECRET, AWSCURRENT).expect("current");
    world.advance(8 * DAY);

    // Both rollouts still running: awaiting the switch, naming each target.
    let swept = r.sweep(SECRET, &policy(), false).await.expect("sweep");
    let SweepOutcome::AwaitingSwitch { ref pending, .. } = swept.outcome else {
        panic!("{swept:?}");
    };
    assert_eq!(
        pending
            .iter()
            .map(|p| (p.name.as_str(), p.progress))
            .collect::<Vec<_>>(),
        [("deploy", "running"), ("web", "running")]
    );
    assert!(
        pending.iter().all(|p| p.retried.is_none()),
        "not restarted again while running"
    );
    assert!(swept.outcome.describe().contains("web (ecs:prod/web)"));
    assert!(world
        .keys_of("app1")
        .contains(&(old.id.clone(), KeyStatus::Active)));

    // The service's deployment completes; the workflow run fails: the sweep dispatches it again.
    world.finish_rollout(WEB, RolloutState::Completed);
    world.finish_rollout(DEPLOY, RolloutState::Failed("failure".into()));
    let swept = r.sweep(SECRET, &policy(), false).await.expect("sweep");
    let SweepOutcome::AwaitingSwitch { ref pending, .. } = swept.outcome else {
        panic!("{swept:?}");
    };
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (pending[0].name.as_str(), pending[0].progress),
        ("deploy", "failed")
    );
    assert_eq!(pending[0].retried, Some(Ok(())));
    assert_eq!(world.rollouts(DEPLOY).len(), 3);
    world.finish_rollout(DEPLOY, RolloutState::Completed);

    // Every restart done, but the new key not used since the cut-over: still awaiting.
    let swept = r.sweep(SECRET, &policy(), false).await.expect("sweep");
    assert!(
        matches!(swept.outcome, SweepOutcome::AwaitingSwitch { ref pending, .. } if pending.is_empty()),
        "{swept:?}"
    );
    assert!(world
        .keys_of("app1")
        .contains(&(old.id.clone(), KeyStatus::Active)));

    // The restarted consumers use the new key: the previous one is deactivated.
    world.advance(Duration::from_secs(60));
    world.use_key(&new.id, "s3");
    let swept = r.sweep(SECRET, &policy(), false).await.expect("sweep");
    assert_eq!(
        swept.outcome,
        SweepOutcome::Deactivated {
            key_id: old.id.clone()
        }
    );
    assert!(world.value_with(SECRET, AWSPREVIOUS).is_some());
}
