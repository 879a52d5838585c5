//! A fault at every call of a rotation, or a stop right after it, followed by Secrets Manager's
//! retry of the step: no key is lost or duplicated and AWSCURRENT always authenticates; a restart
//! or a notice that failed never undid the rotation, and the sweep restarts what was missed.

use keyturn_core::fake::{Fault, World};
use keyturn_core::ports::{ApiError, AWSCURRENT, AWSPREVIOUS};
use keyturn_core::Step;

use super::*;

/// Plays Secrets Manager: each step until it succeeds (at most `max` retries), restarting the
/// process after each failure and checking the invariants every time.
async fn rotate_retrying(r: &FakeRotator, world: &World, secret: &str, user: &str) -> usize {
    let token = world.start_rotation(secret);
    let mut failures = 0;
    for s in Step::ALL {
        let mut tries = 0;
        while let Err(e) = step(r, s, secret, &token).await {
            world.restart();
            assert_safe(world, secret, user);
            tries += 1;
            failures += 1;
            assert!(tries <= 3, "{s} still failing after {tries} retries: {e}");
        }
    }
    failures
}

/// The matrix's rotator: the suite's settings, with owners' notices on (a secret with an owner
/// tag sends them).
fn matrix_rotator(world: &World) -> FakeRotator {
    rotator_with(
        world,
        RotationSettings {
            notices: keyturn_core::config::NoticePolicy {
                topic: Some("arn:aws:sns:us-east-1:123456789012:notices".into()),
                ..Default::default()
            },
            ..settings()
        },
    )
}

/// Calls made by a clean rotation from this state (to know how many k to try).
async fn calls_of_clean_rotation(setup: fn(&World)) -> usize {
    let world = World::new();
    setup(&world);
    let r = matrix_rotator(&world);
    world.clear_calls();
    rotate(&r, &world, "keyturn/app1")
        .await
        .expect("clean rotation");
    world.calls().len()
}

fn one_key(world: &World) {
    enrolled(world);
}

/// One key, and a secret that delivers to an SSM parameter and a GitHub repository.
fn with_sinks(world: &World) {
    world.add_user("app1");
    let key = world.create_key("app1");
    world.add_secret(
        "keyturn/app1",
        &canonical("app1", &key),
        &[
            ("keyturn:sink:param", "ssm:/app/key"),
            ("keyturn:sink:ci", "github:acme/app"),
        ],
    );
}

const WEB: &str = "ecs:prod/web";
const DEPLOY: &str = "github:acme/app/deploy.yml@main";

/// One key, and a secret that restarts an ECS service and a deploy workflow and has an owner.
fn with_restarts(world: &World) {
    world.add_user("app1");
    let key = world.create_key("app1");
    world.add_secret(
        "keyturn/app1",
        &canonical("app1", &key),
        &[
            ("keyturn:restart:web", "ecs:prod/web"),
            (
                "keyturn:restart:deploy",
                "github:acme/app workflow=deploy.yml ref=main",
            ),
            ("keyturn:owner", "team-a"),
        ],
    );
    world.add_restart_target(WEB);
    world.add_restart_target(DEPLOY);
}

/// After one rotation: AWSCURRENT and an unused AWSPREVIOUS, so createSecret must delete.
fn two_keys(world: &World) {
    enrolled(world);
    let r = rotator(world);
    let token = world.start_rotation("keyturn/app1");
    futures_run(async {
        for s in Step::ALL {
            step(&r, s, "keyturn/app1", &token)
                .await
                .expect("setup rotation");
        }
    });
    world.advance(std::time::Duration::from_secs(86_400));
}

fn futures_run(f: impl std::future::Future<Output = ()>) {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f));
}

/// A fault kind, given the call to put it at.
type MakeFault = fn(usize) -> Fault;

async fn fault_matrix(setup: fn(&World), label: &str) {
    let n = calls_of_clean_rotation(setup).await;
    let faults: [(&str, MakeFault); 4] = [
        ("crash after", |k| Fault::CrashAfter { call: k }),
        ("throttled at", |k| Fault::FailAt {
            call: k,
            error: ApiError::Throttled("Rate exceeded".into()),
        }),
        ("5xx at", |k| Fault::FailAt {
            call: k,
            error: ApiError::Unavailable("InternalFailure".into()),
        }),
        ("denied at", |k| Fault::FailAt {
            call: k,
            error: ApiError::AccessDenied("not authorized".into()),
        }),
    ];
    for (name, fault) in &faults {
        for k in 1..=n {
            let world = World::new();
            setup(&world);
            let before_current = key_at(&world, "keyturn/app1", AWSCURRENT).expect("current");
            let r = matrix_rotator(&world);
            world.arm(fault(k));
            rotate_retrying(&r, &world, "keyturn/app1", "app1").await;
            let ctx = format!("{label}: {name} call {k} of {n}");
            let current = key_at(&world, "keyturn/app1", AWSCURRENT).expect("current");
            assert_ne!(current.id, before_current.id, "{ctx}: rotation completed");
            assert!(world.authenticates(&current), "{ctx}");
            assert_eq!(
                key_at(&world, "keyturn/app1", AWSPREVIOUS),
                Some(before_current.clone()),
                "{ctx}"
            );
            assert!(
                world.authenticates(&before_current),
                "{ctx}: previous key still active"
            );
            assert_eq!(world.keys_of("app1").len(), 2, "{ctx}");
            assert_no_orphans(&world, "keyturn/app1", "app1");
            if world
                .tags("keyturn/app1")
                .contains_key("keyturn:sink:param")
            {
                // AWSCURRENT moved only after every sink had the new key.
                assert_eq!(
                    world.parameter("/app/key").map(|p| p.0),
                    world.value_with("keyturn/app1", AWSCURRENT),
                    "{ctx}: the parameter holds AWSCURRENT's value"
                );
                assert_eq!(
                    world.github_secret("/repos/acme/app/actions/secrets/AWS_ACCESS_KEY_ID"),
                    Some(current.id.clone()),
                    "{ctx}: GitHub holds the current key"
                );
            }
            if world
                .tags("keyturn/app1")
                .contains_key("keyturn:restart:web")
            {
                // A restart the fault cost is made up by the next sweep (the previous key waits
                // out its grace period meanwhile); none is restarted more than twice.
                world.restart();
                world.advance(std::time::Duration::from_secs(3_600));
                r.sweep("keyturn/app1", &Default::default(), false)
                    .await
                    .unwrap_or_else(|e| panic!("{ctx}: sweep: {e}"));
                for target in [WEB, DEPLOY] {
                    let rollouts = world.rollouts(target);
                    assert!(
                        (2..=3).contains(&rollouts.len()),
                        "{ctx}: {target} restarted after the rotation: {rollouts:?}"
                    );
                }
                assert!(world.authenticates(&before_current), "{ctx}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn every_call_of_a_first_rotation_faulted_then_retried() {
    fault_matrix(one_key, "one key").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn every_call_of_a_rotation_that_deletes_the_previous_key_faulted_then_retried() {
    fault_matrix(two_keys, "two keys").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn every_call_of_a_rotation_with_sinks_faulted_then_retried() {
    fault_matrix(with_sinks, "sinks").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn every_call_of_a_rotation_with_restarts_and_an_owner_faulted_then_retried() {
    fault_matrix(with_restarts, "restarts").await;
}
