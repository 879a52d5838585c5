//! Driving rotations without Secrets Manager (the CLI), cancelling them, and the sweep.

use std::time::Duration;

use keyturn_core::fake::World;
use keyturn_core::ports::{KeyStatus, AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use keyturn_core::rotation::{in_flight, InUsePolicy, SweepOutcome, SweepPolicy};
use keyturn_core::{RotationError, Step};

use super::*;

const DAY: Duration = Duration::from_secs(86_400);

async fn local(
    r: &FakeRotator,
    s: Step,
    secret: &str,
    token: &str,
) -> Result<keyturn_core::StepReport, RotationError> {
    r.run_local(&event(s, secret, token)).await
}

async fn describe(world: &World, secret: &str) -> keyturn_core::ports::SecretInfo {
    use keyturn_core::ports::SecretStore;
    world.describe(secret).await.expect("describe")
}

#[tokio::test]
async fn a_local_rotation_creates_its_own_version_and_refuses_a_second_in_flight() {
    let world = World::new();
    let old = enrolled(&world);
    let r = rotator_with(
        &world,
        RotationSettings {
            require_rotation_enabled: false,
            ..settings()
        },
    );
    let token = "11111111-2222-4333-8444-555555555555";
    local(&r, Step::Create, "keyturn/app1", token)
        .await
        .expect("create makes the version");
    assert_eq!(
        label_of(&world, "keyturn/app1", token),
        vec![AWSPENDING.to_string()]
    );
    let err = local(
        &r,
        Step::Create,
        "keyturn/app1",
        "99999999-2222-4333-8444-555555555555",
    )
    .await
    .expect_err("in flight");
    assert!(
        matches!(err, RotationError::RotationInFlight { ref token, .. } if token == "11111111-2222-4333-8444-555555555555"),
        "{err}"
    );
    // Resume: the remaining steps with the token in flight.
    let info = describe(&world, "keyturn/app1").await;
    let resumed = in_flight(&info).expect("in flight").to_string();
    for s in Step::ALL {
        local(&r, s, "keyturn/app1", &resumed)
            .await
            .expect("resume");
    }
    assert_eq!(key_at(&world, "keyturn/app1", AWSPREVIOUS), Some(old));
    assert!(in_flight(&describe(&world, "keyturn/app1").await).is_none());
    assert_safe(&world, "keyturn/app1", "app1");
}

#[tokio::test]
async fn cancel_deletes_the_key_the_rotation_made_and_removes_awspending() {
    let world = World::new();
    let old = enrolled(&world);
    let r = rotator(&world);
    let token = world.start_rotation("keyturn/app1");
    let made = step(&r, Step::Create, "keyturn/app1", &token)
        .await
        .expect("create")
        .pending_key_id
        .expect("key");
    step(&r, Step::Set, "keyturn/app1", &token)
        .await
        .expect("set");
    let report = r.cancel("keyturn/app1").await.expect("cancel");
    assert_eq!(report.token.as_deref(), Some(token.as_str()));
    assert_eq!(report.deleted_key_id.as_deref(), Some(made.as_str()));
    assert_eq!(
        world.keys_of("app1"),
        vec![(old.id.clone(), KeyStatus::Active)]
    );
    assert!(label_of(&world, "keyturn/app1", &token).is_empty());
    assert_eq!(key_at(&world, "keyturn/app1", AWSCURRENT), Some(old));
    // Nothing left in flight: cancelling again does nothing, and a new rotation runs.
    assert_eq!(r.cancel("keyturn/app1").await.expect("again").token, None);
    rotate(&r, &world, "keyturn/app1")
        .await
        .expect("fresh rotation");
    assert_no_orphans(&world, "keyturn/app1", "app1");
}

#[tokio::test]
async fn cancel_before_create_only_removes_the_label() {
    let world = World::new();
    enrolled(&world);
    let r = rotator(&world);
    let token = world.start_rotation("keyturn/app1");
    let report = r.cancel("keyturn/app1").await.expect("cancel");
    assert_eq!((report.token, report.deleted_key_id), (Some(token), None));
    assert_eq!(world.keys_of("app1").len(), 1);
}

fn policy() -> SweepPolicy {
    SweepPolicy {
        grace: time::Duration::days(7),
        delete_after: time::Duration::days(7),
        in_use: InUsePolicy::Report,
    }
}

#[tokio::test]
async fn the_sweep_waits_deactivates_then_deletes_an_unused_previous_key() {
    let world = World::new();
    let old = enrolled(&world);
    let r = rotator(&world);
    rotate(&r, &world, "keyturn/app1").await.expect("rotation");
    world.advance(DAY);
    let early = r
        .sweep("keyturn/app1", &policy(), false)
        .await
        .expect("sweep");
    assert!(
        matches!(
            early.outcome,
            SweepOutcome::Waiting {
                inactive: false,
                ..
            }
        ),
        "{early:?}"
    );
    assert!(world.authenticates(&old));

    world.advance(7 * DAY);
    let dry = r
        .sweep("keyturn/app1", &policy(), true)
        .await
        .expect("dry run");
    assert_eq!(
        dry.outcome,
        SweepOutcome::Deactivated {
            key_id: old.id.clone()
        }
    );
    assert!(world.authenticates(&old), "a dry run changes nothing");
    let done = r
        .sweep("keyturn/app1", &policy(), false)
        .await
        .expect("sweep");
    assert_eq!(
        done.outcome,
        SweepOutcome::Deactivated {
            key_id: old.id.clone()
        }
    );
    assert!(!world.authenticates(&old));
    assert!(world.key_exists(&old.id));
    assert_safe(&world, "keyturn/app1", "app1");

    world.advance(3 * DAY);
    let waiting = r
        .sweep("keyturn/app1", &policy(), false)
        .await
        .expect("sweep");
    assert!(
        matches!(
            waiting.outcome,
            SweepOutcome::Waiting { inactive: true, .. }
        ),
        "{waiting:?}"
    );
    world.advance(5 * DAY);
    let deleted = r
        .sweep("keyturn/app1", &policy(), false)
        .await
        .expect("sweep");
    assert_eq!(
        deleted.outcome,
        SweepOutcome::Deleted {
            key_id: old.id.clone()
        }
    );
    assert!(!world.key_exists(&old.id));
    assert!(
        !world
            .labels("keyturn/app1")
            .values()
            .any(|l| l.iter().any(|x| x == AWSPREVIOUS)),
        "no label is left on the deleted key"
    );
    let after = r
        .sweep("keyturn/app1", &policy(), false)
        .await
        .expect("sweep");
    assert!(matches!(after.outcome, SweepOutcome::Nothing(_)));
    assert_safe(&world, "keyturn/app1", "app1");
    // With the previous key retired, the next rotation takes the one-key path: no ListAccessKeys
    // before CreateAccessKey, 15 calls in all.
    world.clear_calls();
    rotate(&r, &world, "keyturn/app1").await.expect("rotation");
    assert_eq!(world.calls().len(), 15, "{:?}", world.calls());
    assert_safe(&world, "keyturn/app1", "app1");
}

#[tokio::test]
async fn the_sweep_reports_but_never_deactivates_a_previous_key_in_use() {
    let world = World::new();
    let old = enrolled(&world);
    let r = rotator(&world);
    rotate(&r, &world, "keyturn/app1").await.expect("rotation");
    world.advance(30 * DAY);
    world.use_key(&old.id, "sqs");
    let report = r
        .sweep("keyturn/app1", &policy(), false)
        .await
        .expect("sweep");
    assert!(
        matches!(report.outcome, SweepOutcome::InUse { ref key_id, .. } if *key_id == old.id),
        "{report:?}"
    );
    assert!(report.outcome.describe().contains("sqs"));
    assert!(!report.failed);
    assert!(world.authenticates(&old), "left active");
    let strict = SweepPolicy {
        in_use: InUsePolicy::Fail,
        ..policy()
    };
    assert!(
        r.sweep("keyturn/app1", &strict, false)
            .await
            .expect("sweep")
            .failed
    );
}

#[tokio::test]
async fn sweep_policy_tags_override_the_defaults() {
    let world = World::new();
    world.add_user("app1");
    let key = world.create_key("app1");
    world.add_secret(
        "keyturn/app1",
        &canonical("app1", &key),
        &[("keyturn:grace-days", "1")],
    );
    world.add_user("app2");
    let key2 = world.create_key("app2");
    world.add_secret(
        "keyturn/app2",
        &canonical("app2", &key2),
        &[("keyturn:grace-days", "soon")],
    );
    let r = rotator(&world);
    rotate(&r, &world, "keyturn/app1").await.expect("rotation");
    rotate(&r, &world, "keyturn/app2").await.expect("rotation");
    world.advance(2 * DAY);
    let report = r
        .sweep("keyturn/app1", &policy(), false)
        .await
        .expect("sweep");
    assert_eq!(report.outcome, SweepOutcome::Deactivated { key_id: key.id });
    let err = r
        .sweep("keyturn/app2", &policy(), false)
        .await
        .expect_err("bad tag");
    assert!(err.to_string().contains("keyturn:grace-days"), "{err}");
    assert!(world.authenticates(&key2));
}

mod claims {
    use keyturn_core::rotation::claim::{Purpose, ROTATION_LEASE, SWEEP_LEASE};

    use super::*;

    const T1: &str = "11111111-2222-4333-8444-000000000001";
    const T2: &str = "11111111-2222-4333-8444-000000000002";

    fn local_rotator(world: &World) -> FakeRotator {
        rotator_with(
            world,
            RotationSettings {
                require_rotation_enabled: false,
                ..settings()
            },
        )
    }

    #[tokio::test]
    async fn of_two_runs_deciding_on_the_same_state_exactly_one_claims() {
        let world = World::new();
        enrolled(&world);
        let (a, b) = (local_rotator(&world), local_rotator(&world));
        let seen = describe(&world, "keyturn/app1").await;
        a.claim(&seen, &Purpose::Rotate(T1.into()))
            .await
            .expect("first claim");
        let err = b
            .claim(&seen, &Purpose::Rotate(T2.into()))
            .await
            .expect_err("second claim");
        assert!(
            matches!(err, RotationError::Claimed { ref by, ref version, .. } if by == "rotate" && version == T1),
            "{err}"
        );
        assert!(err.to_string().contains("changed nothing"), "{err}");
        let sweeper = b
            .claim(&seen, &Purpose::Sweep)
            .await
            .expect_err("a sweep is kept off too");
        assert_eq!(sweeper.error_type(), "Claimed");
        // The winner rotates; AWSCURRENT moves, so the next run claims afresh.
        for s in Step::ALL {
            local(&a, s, "keyturn/app1", T1).await.expect("step");
        }
        let after = describe(&world, "keyturn/app1").await;
        b.claim(&after, &Purpose::Rotate(T2.into()))
            .await
            .expect("the next rotation claims the new current version");
        // A claim version never holds a key and is not mistaken for one.
        assert_safe(&world, "keyturn/app1", "app1");
    }

    #[tokio::test]
    async fn a_cancelled_rotation_or_an_ended_sweep_stops_holding_the_secret() {
        let world = World::new();
        enrolled(&world);
        let r = local_rotator(&world);
        let seen = describe(&world, "keyturn/app1").await;
        r.claim(&seen, &Purpose::Rotate(T1.into()))
            .await
            .expect("claim");
        local(&r, Step::Create, "keyturn/app1", T1)
            .await
            .expect("create");
        r.cancel("keyturn/app1").await.expect("cancel");
        let seen = describe(&world, "keyturn/app1").await;
        r.claim(&seen, &Purpose::Sweep)
            .await
            .expect("the cancelled rotation no longer holds it");
        let err = r
            .claim(&seen, &Purpose::Rotate(T2.into()))
            .await
            .expect_err("the sweep holds it for its lease");
        assert!(matches!(err, RotationError::Claimed { ref by, .. } if by == "sweep"));
        r.claim(&seen, &Purpose::Sweep)
            .await
            .expect("another sweep is let through: it would act the same way");
        world.advance(SWEEP_LEASE.unsigned_abs());
        r.claim(&seen, &Purpose::Rotate(T2.into()))
            .await
            .expect("after the sweep's lease");
    }

    #[tokio::test]
    async fn resume_takes_over_a_run_that_stopped_between_its_claim_and_its_key() {
        let world = World::new();
        let old = enrolled(&world);
        let r = local_rotator(&world);
        let seen = describe(&world, "keyturn/app1").await;
        r.claim(&seen, &Purpose::Rotate(T1.into()))
            .await
            .expect("claim");
        // ... and the process stopped: nothing is in flight.
        assert_eq!(in_flight(&describe(&world, "keyturn/app1").await), None);
        let again = local_rotator(&world);
        assert!(again
            .claim(&seen, &Purpose::Rotate(T2.into()))
            .await
            .is_err());
        assert_eq!(
            again
                .stopped_rotation(&seen)
                .await
                .expect("read")
                .as_deref(),
            Some(T1)
        );
        again
            .claim(&seen, &Purpose::Resume(T1.into()))
            .await
            .expect("resume takes over");
        for s in Step::ALL {
            local(&again, s, "keyturn/app1", T1).await.expect("step");
        }
        assert_eq!(key_at(&world, "keyturn/app1", AWSPREVIOUS), Some(old));
        // A second resume of the same run is kept off while the first holds it.
        let stale = local_rotator(&world);
        world.advance(ROTATION_LEASE.unsigned_abs());
        assert_eq!(stale.stopped_rotation(&seen).await.expect("read"), None);
    }
}
