//! Driving rotations without Secrets Manager (the CLI's local driver), cancelling them, the
//! sweep, and the defects a rule book had to fix (each as the user met it).

use std::time::Duration;

use keyturn_core::fake::World;
use keyturn_core::ports::{KeyStatus, AWSCURRENT, AWSPREVIOUS};
use keyturn_core::rotation::{LocalMode, LocalOutcome, LocalRequest, SweepOutcome};
use keyturn_core::rules::{InUsePolicy, SweepPolicy};
use keyturn_core::state::in_flight;
use keyturn_core::RotationError;

use super::*;

const DAY: Duration = Duration::from_secs(86_400);

fn local_rotator(world: &World) -> FakeRotator {
    rotator_with(
        world,
        RotationSettings {
            require_rotation_enabled: false,
            ..settings()
        },
    )
}

fn request(mode: LocalMode, dry_run: bool) -> LocalRequest {
    LocalRequest {
        mode,
        dry_run,
        due_days: None,
        new_token: format!("{:08x}-2222-4333-8444-555555555555", rand_ish()),
        exemptions: Default::default(),
    }
}

fn rand_ish() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

async fn local(
    r: &FakeRotator,
    secret: &str,
    mode: LocalMode,
) -> Result<keyturn_core::rotation::LocalReport, RotationError> {
    r.rotate_local(secret, &request(mode, false)).await
}

async fn describe(world: &World, secret: &str) -> keyturn_core::ports::SecretInfo {
    use keyturn_core::ports::SecretStore;
    world.describe(secret).await.expect("describe")
}

fn writes(world: &World) -> Vec<String> {
    world
        .calls()
        .into_iter()
        .filter(|c| {
            [
                "PutSecretValue",
                "UpdateSecret",
                "CreateAccessKey",
                "DeleteAccessKey",
                "UpdateAccessKey",
                "TagResource",
                "UpdateSecretVersionStage",
                "CreateSecret",
            ]
            .iter()
            .any(|w| c.ends_with(&format!(":{w}")))
        })
        .collect()
}

#[tokio::test]
async fn rotate_due_leaves_a_due_secret_whose_user_is_exempt_until_the_date() {
    use keyturn_core::audit::exempt::Exemptions;
    let world = World::new();
    let old = enrolled(&world);
    let r = local_rotator(&world);
    world.advance(DAY * 40);
    let today = world.now().date();
    let file = format!(
        "[[exemption]]\naccount = \"123456789012\"\nuser = \"app*\"\nreason = \"vendor freeze\"\nowner = \"ops\"\nuntil = \"{}\"\n",
        today + time::Duration::days(2)
    );
    let exemptions = Exemptions::parse(&file, today).expect("valid");
    let due = |exemptions: &Exemptions, account: &str| LocalRequest {
        due_days: Some(30),
        exemptions: exemptions.for_account(account),
        ..request(LocalMode::Rotate, false)
    };
    world.clear_calls();
    let report = r
        .rotate_local("keyturn/app1", &due(&exemptions, "123456789012"))
        .await
        .expect("exempt");
    assert_eq!(report.outcome, LocalOutcome::Exempt);
    assert_eq!(report.user.as_deref(), Some("app1"));
    assert!(
        report.detail.contains("vendor freeze") && report.detail.contains("ops"),
        "{}",
        report.detail
    );
    assert!(writes(&world).is_empty(), "{:?}", writes(&world));
    assert_eq!(
        key_at(&world, "keyturn/app1", AWSCURRENT),
        Some(old.clone())
    );

    // Another account's exemption does not apply; after the date the rotation runs.
    let other = r
        .rotate_local(
            "keyturn/app1",
            &LocalRequest {
                dry_run: true,
                ..due(&exemptions, "999988887777")
            },
        )
        .await
        .expect("planned");
    assert_eq!(other.outcome, LocalOutcome::Planned);
    world.advance(DAY * 3);
    let rotated = r
        .rotate_local("keyturn/app1", &due(&exemptions, "123456789012"))
        .await
        .expect("rotated");
    assert_eq!(rotated.outcome, LocalOutcome::Rotated);
    assert_eq!(key_at(&world, "keyturn/app1", AWSPREVIOUS), Some(old));
}

#[tokio::test]
async fn a_local_rotation_runs_the_four_steps_and_refuses_a_second_in_flight() {
    let world = World::new();
    let old = enrolled(&world);
    let r = local_rotator(&world);
    world.clear_calls();
    let done = local(&r, "keyturn/app1", LocalMode::Rotate)
        .await
        .expect("rotate");
    assert_eq!(done.outcome, LocalOutcome::Rotated);
    // The function's 15, less the pending version's read (the driver makes the version), plus the
    // driver's own DescribeSecret and the removal of AWSPENDING at the end.
    assert_eq!(world.calls().len(), 16, "{:?}", world.calls());
    assert_eq!(key_at(&world, "keyturn/app1", AWSPREVIOUS), Some(old));
    let current = key_at(&world, "keyturn/app1", AWSCURRENT).expect("current");
    assert_eq!(done.new_key_id.as_deref(), Some(current.id.as_str()));
    assert!(in_flight(&describe(&world, "keyturn/app1").await).is_none());
    assert_safe(&world, "keyturn/app1", "app1");

    // A rotation Secrets Manager started and left: refused, then resumed.
    let token = world.start_rotation("keyturn/app1");
    let fn_rotator = rotator(&world);
    step(&fn_rotator, Step::Create, "keyturn/app1", &token)
        .await
        .expect("create");
    let err = local(&r, "keyturn/app1", LocalMode::Rotate)
        .await
        .expect_err("in flight");
    assert!(
        matches!(err, RotationError::RotationInFlight { token: ref t, .. } if *t == token),
        "{err}"
    );
    assert!(err.to_string().contains("keyturn rotate --resume"), "{err}");
    let resumed = local(&r, "keyturn/app1", LocalMode::Resume)
        .await
        .expect("resume");
    assert_eq!(resumed.outcome, LocalOutcome::Resumed);
    assert!(label_of(&world, "keyturn/app1", &token).contains(&AWSCURRENT.to_string()));
    assert_safe(&world, "keyturn/app1", "app1");
    assert_eq!(
        local(&r, "keyturn/app1", LocalMode::Resume)
            .await
            .expect("nothing")
            .outcome,
        LocalOutcome::NothingInFlight
    );
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
    let report = local(&r, "keyturn/app1", LocalMode::Cancel)
        .await
        .expect("cancel");
    assert_eq!(report.outcome, LocalOutcome::Cancelled);
    assert_eq!(
        report.retired.as_ref().map(|x| x.key_id()),
        Some(made.as_str())
    );
    assert_eq!(
        world.keys_of("app1"),
        vec![(old.id.clone(), KeyStatus::Active)]
    );
    assert!(label_of(&world, "keyturn/app1", &token).is_empty());
    assert_eq!(key_at(&world, "keyturn/app1", AWSCURRENT), Some(old));
    assert_eq!(
        local(&r, "keyturn/app1", LocalMode::Cancel)
            .await
            .expect("again")
            .outcome,
        LocalOutcome::NothingInFlight
    );
    rotate(&r, &world, "keyturn/app1")
        .await
        .expect("fresh rotation");
    assert_no_orphans(&world, "keyturn/app1", "app1");
}

#[tokio::test]
async fn cancel_takes_the_user_from_the_secret_and_never_deletes_a_key_the_rotation_did_not_make() {
    let world = World::new();
    enrolled(&world);
    world.add_user("victim");
    let victims = world.create_key("victim");
    let r = rotator(&world);
    // A pending version naming another user and holding that user's only key.
    let token = world.start_rotation("keyturn/app1");
    {
        use keyturn_core::ports::SecretStore;
        let forged = keyturn_core::SecretText::new(canonical("victim", &victims));
        world
            .put_pending("keyturn/app1", &token, &forged)
            .await
            .expect("forge");
    }
    let report = local(&r, "keyturn/app1", LocalMode::Cancel)
        .await
        .expect("cancel");
    assert!(report.retired.is_none(), "{report:?}");
    assert!(
        report.detail.contains("not one of user app1's keys"),
        "{}",
        report.detail
    );
    assert!(
        world.authenticates(&victims),
        "the other user's only key is untouched"
    );
    // A pending key of the user that something already uses is kept too.
    let token = world.start_rotation("keyturn/app1");
    let made = step(&r, Step::Create, "keyturn/app1", &token)
        .await
        .expect("create")
        .pending_key_id
        .expect("key");
    world.use_key(&made, "s3");
    let kept = local(&r, "keyturn/app1", LocalMode::Cancel)
        .await
        .expect("cancel");
    assert!(
        kept.retired.is_none() && kept.detail.contains("something relies on it"),
        "{kept:?}"
    );
    assert!(world.key_exists(&made));
}

#[tokio::test]
async fn cancel_before_create_only_removes_the_label() {
    let world = World::new();
    enrolled(&world);
    let r = rotator(&world);
    let token = world.start_rotation("keyturn/app1");
    let report = local(&r, "keyturn/app1", LocalMode::Cancel)
        .await
        .expect("cancel");
    assert_eq!((report.token, report.retired), (Some(token), None));
    assert_eq!(world.keys_of("app1").len(), 1);
}

#[tokio::test]
async fn a_dry_run_checks_everything_a_real_run_does_and_writes_nothing() {
    let world = World::new();
    enrolled(&world);
    let r = local_rotator(&world);
    local(&r, "keyturn/app1", LocalMode::Rotate)
        .await
        .expect("rotate");
    let previous = key_at(&world, "keyturn/app1", AWSPREVIOUS).expect("previous");
    world.clear_calls();
    let plan = r
        .rotate_local("keyturn/app1", &request(LocalMode::Rotate, true))
        .await
        .expect("plan");
    assert_eq!(plan.outcome, LocalOutcome::Planned);
    assert_eq!(
        plan.retired.as_ref().map(|x| x.key_id()),
        Some(previous.id.as_str())
    );
    assert!(
        plan.detail.contains(&previous.id) && plan.detail.contains("would delete"),
        "{}",
        plan.detail
    );
    assert_eq!(writes(&world), Vec::<String>::new());
    // The failure a real run would meet, named.
    world.use_key(&previous.id, "s3");
    world.advance(DAY);
    world.use_key(&previous.id, "s3");
    let err = r
        .rotate_local("keyturn/app1", &request(LocalMode::Rotate, true))
        .await
        .expect_err("in use");
    assert_eq!(err.error_type(), "KeyInUse");
    world.add_user("broken");
    world.add_secret("keyturn/broken", "not json", &[("keyturn:user", "broken")]);
    let err = r
        .rotate_local("keyturn/broken", &request(LocalMode::Rotate, true))
        .await
        .expect_err("bad value");
    assert_eq!(err.error_type(), "BadSecretValue");
    assert_eq!(writes(&world), Vec::<String>::new());
}

#[tokio::test]
async fn a_failed_rotate_leaves_nothing_that_blocks_its_retry() {
    let world = World::new();
    enrolled(&world);
    let r = local_rotator(&world);
    local(&r, "keyturn/app1", LocalMode::Rotate)
        .await
        .expect("rotate");
    let previous = key_at(&world, "keyturn/app1", AWSPREVIOUS).expect("previous");
    world.advance(DAY);
    world.use_key(&previous.id, "s3");
    world.clear_calls();
    let err = local(&r, "keyturn/app1", LocalMode::Rotate)
        .await
        .expect_err("in use");
    assert_eq!(err.error_type(), "KeyInUse");
    assert_eq!(
        writes(&world),
        Vec::<String>::new(),
        "a refused run writes nothing"
    );
    // The user retires the stray key as told, and retries at once.
    {
        use keyturn_core::ports::{AccessKeys, Iam};
        world
            .own()
            .delete("app1", &previous.id)
            .await
            .expect("by hand");
    }
    let again = local(&r, "keyturn/app1", LocalMode::Rotate)
        .await
        .expect("retry");
    assert_eq!(again.outcome, LocalOutcome::Rotated);
    assert_safe(&world, "keyturn/app1", "app1");
}

#[tokio::test]
async fn a_second_secret_for_the_same_user_is_refused_and_its_key_never_deleted() {
    let world = World::new();
    world.add_user("app4");
    let first = world.create_key("app4");
    world.add_secret(
        "keyturn/app4",
        &canonical("app4", &first),
        &[("keyturn:user", "app4"), ("keyturn:managed", "true")],
    );
    let second = world.create_key("app4");
    world.add_secret(
        "other/app4",
        &canonical("app4", &second),
        &[("keyturn:user", "app4"), ("keyturn:managed", "true")],
    );
    let r = local_rotator(&world);
    world.clear_calls();
    let err = local(&r, "other/app4", LocalMode::Rotate)
        .await
        .expect_err("two secrets");
    assert_eq!(err.error_type(), "UserHasOtherSecret");
    assert!(err.to_string().contains("keyturn/app4"), "{err}");
    assert!(world.authenticates(&first) && world.authenticates(&second));
    assert_eq!(writes(&world), Vec::<String>::new());
    // The same through Secrets Manager's steps.
    let fr = rotator(&world);
    let token = world.start_rotation("keyturn/app4");
    let err = step(&fr, Step::Create, "keyturn/app4", &token)
        .await
        .expect_err("two secrets");
    assert_eq!(err.error_type(), "UserHasOtherSecret");
    assert_eq!(world.keys_of("app4").len(), 2);
}

#[tokio::test]
async fn a_secret_holding_another_users_key_is_refused_before_anything_is_created() {
    let world = World::new();
    world.add_user("app1");
    world.add_user("app2");
    let app1s = world.create_key("app1");
    world.add_secret("keyturn/app2", &canonical("app2", &app1s), &[]);
    let r = local_rotator(&world);
    let err = local(&r, "keyturn/app2", LocalMode::Rotate)
        .await
        .expect_err("wrong user");
    assert_eq!(err.error_type(), "NotUsersKey");
    assert!(world.keys_of("app2").is_empty(), "no key was made for app2");
    assert_eq!(key_at(&world, "keyturn/app2", AWSCURRENT), Some(app1s));
}

#[tokio::test]
async fn a_young_unheld_key_is_another_runs_until_resume_says_the_run_stopped() {
    let world = World::new();
    enrolled(&world);
    // A keyturn rotate that stopped between CreateAccessKey and PutSecretValue.
    let stray = world.create_key("app1");
    let r = local_rotator(&world);
    let err = local(&r, "keyturn/app1", LocalMode::Rotate)
        .await
        .expect_err("maybe another run");
    assert_eq!(err.error_type(), "KeyInUse");
    assert!(err.to_string().contains("keyturn rotate --resume"), "{err}");
    assert!(world.key_exists(&stray.id));
    let resumed = local(&r, "keyturn/app1", LocalMode::Resume)
        .await
        .expect("resume");
    assert_eq!(resumed.outcome, LocalOutcome::Resumed);
    assert!(!world.key_exists(&stray.id));
    assert_safe(&world, "keyturn/app1", "app1");
    assert_no_orphans(&world, "keyturn/app1", "app1");
}

#[tokio::test]
async fn iam_lists_that_lag_do_not_fail_a_rotation() {
    // ListAccessKeys omits a key for 5 s after it is created; STS refuses it for 3 s.
    let world = World::new();
    world.set_list_lag(Duration::from_secs(5));
    world.set_propagation_delay(Duration::from_secs(3));
    enrolled(&world);
    world.advance(Duration::from_secs(60));
    let r = rotator(&world);
    // Secrets Manager's four steps back to back, a first and a second rotation.
    rotate(&r, &world, "keyturn/app1")
        .await
        .expect("first rotation under lag");
    rotate(&r, &world, "keyturn/app1")
        .await
        .expect("second rotation right after, under lag");
    assert_safe(&world, "keyturn/app1", "app1");
    // A retried createSecret whose key the list does not show yet.
    let token = world.start_rotation("keyturn/app1");
    world.advance(8 * DAY);
    step(&r, Step::Create, "keyturn/app1", &token)
        .await
        .expect("create");
    step(&r, Step::Create, "keyturn/app1", &token)
        .await
        .expect("retried create: not missing, lagging");
    for s in [Step::Set, Step::Test, Step::Finish] {
        step(&r, s, "keyturn/app1", &token).await.expect("the rest");
    }
    // keyturn rotate, twice in a row.
    let local_r = local_rotator(&world);
    world.advance(8 * DAY);
    local(&local_r, "keyturn/app1", LocalMode::Rotate)
        .await
        .expect("local rotation under lag");
    local(&local_r, "keyturn/app1", LocalMode::Rotate)
        .await
        .expect("and again at once");
    assert_safe(&world, "keyturn/app1", "app1");
    assert_no_orphans(&world, "keyturn/app1", "app1");
}

fn policy() -> SweepPolicy {
    SweepPolicy {
        grace: time::Duration::days(7),
        delete_after: time::Duration::days(7),
        in_use: InUsePolicy::Report,
        require_switch: false,
    }
}

#[tokio::test]
async fn require_switch_keeps_the_previous_key_until_the_new_key_is_used() {
    let world = World::new();
    let old = enrolled(&world);
    let r = rotator(&world);
    rotate(&r, &world, "keyturn/app1").await.expect("rotation");
    let new = key_at(&world, "keyturn/app1", AWSCURRENT).expect("current");
    world.advance(8 * DAY);
    let required = SweepPolicy {
        require_switch: true,
        ..policy()
    };
    world.clear_calls();
    let waiting = r
        .sweep("keyturn/app1", &required, false)
        .await
        .expect("sweep");
    assert!(
        matches!(
            &waiting.outcome,
            SweepOutcome::AwaitingSwitch { key_id, current, pending, since: Some(_) }
                if *key_id == old.id && *current == new.id && pending.is_empty()
        ),
        "{:?}",
        waiting.outcome
    );
    assert!(!waiting.failed && world.authenticates(&old));
    assert!(writes(&world).is_empty(), "{:?}", writes(&world));
    assert!(waiting
        .outcome
        .describe()
        .contains("has not been used since the cut-over"));

    // The consumers switch: the new key is used; the next sweep deactivates the old one.
    world.advance(Duration::from_secs(60));
    world.use_key(&new.id, "s3");
    let done = r
        .sweep("keyturn/app1", &required, false)
        .await
        .expect("sweep");
    assert_eq!(
        done.outcome,
        SweepOutcome::Deactivated {
            key_id: old.id.clone()
        }
    );
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
async fn sweep_policy_tags_lengthen_the_periods_but_never_shorten_them() {
    let world = World::new();
    let mut keys = Vec::new();
    for (user, grace) in [("app1", "30"), ("app2", "0"), ("app3", "soon")] {
        world.add_user(user);
        let key = world.create_key(user);
        world.add_secret(
            &format!("keyturn/{user}"),
            &canonical(user, &key),
            &[("keyturn:grace-days", grace)],
        );
        keys.push(key);
    }
    let r = rotator(&world);
    for user in ["app1", "app2", "app3"] {
        rotate(&r, &world, &format!("keyturn/{user}"))
            .await
            .expect("rotation");
    }
    world.advance(2 * DAY);
    let shortened = r
        .sweep("keyturn/app2", &policy(), false)
        .await
        .expect("sweep");
    assert!(
        matches!(
            shortened.outcome,
            SweepOutcome::Waiting {
                inactive: false,
                ..
            }
        ),
        "grace-days=0 may not go below the deployment's 7 days: {shortened:?}"
    );
    assert!(world.authenticates(&keys[1]));
    world.advance(6 * DAY);
    let at_floor = r
        .sweep("keyturn/app2", &policy(), false)
        .await
        .expect("sweep");
    assert_eq!(
        at_floor.outcome,
        SweepOutcome::Deactivated {
            key_id: keys[1].id.clone()
        }
    );
    let lengthened = r
        .sweep("keyturn/app1", &policy(), false)
        .await
        .expect("sweep");
    assert!(
        matches!(
            lengthened.outcome,
            SweepOutcome::Waiting {
                inactive: false,
                ..
            }
        ),
        "grace-days=30 lengthens the period: {lengthened:?}"
    );
    assert!(world.authenticates(&keys[0]));
    let err = r
        .sweep("keyturn/app3", &policy(), false)
        .await
        .expect_err("bad tag");
    assert!(err.to_string().contains("keyturn:grace-days"), "{err}");
    assert!(world.authenticates(&keys[2]));
}

#[tokio::test]
async fn an_in_use_tag_may_make_the_sweep_stricter_but_not_laxer() {
    let info = |value: &str| keyturn_core::ports::SecretInfo {
        arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:keyturn/app1-AbCdEf".into(),
        name: "keyturn/app1".into(),
        rotation_enabled: true,
        versions: Default::default(),
        tags: [("keyturn:in-use".to_string(), value.to_string())].into(),
        last_rotated: None,
        next_rotation: None,
        rotation_days: None,
    };
    let strict = SweepPolicy {
        in_use: InUsePolicy::Fail,
        ..policy()
    };
    assert_eq!(
        strict.for_secret(&info("report")).expect("valid").in_use,
        InUsePolicy::Fail
    );
    assert_eq!(
        policy().for_secret(&info("fail")).expect("valid").in_use,
        InUsePolicy::Fail
    );
}

#[tokio::test]
async fn the_sweep_never_retires_the_previous_key_while_the_current_one_is_broken() {
    let world = World::new();
    let old = enrolled(&world);
    let r = rotator(&world);
    rotate(&r, &world, "keyturn/app1").await.expect("rotation");
    let current = key_at(&world, "keyturn/app1", AWSCURRENT).expect("current");
    world.advance(30 * DAY);
    {
        use keyturn_core::ports::{AccessKeys, Iam};
        world
            .own()
            .set_status("app1", &current.id, KeyStatus::Inactive)
            .await
            .expect("by hand");
    }
    for _ in 0..2 {
        let report = r
            .sweep("keyturn/app1", &policy(), false)
            .await
            .expect("sweep");
        assert!(
            matches!(report.outcome, SweepOutcome::Blocked { .. }),
            "{report:?}"
        );
        assert!(
            report.failed,
            "a blocked retirement is reported as a failure"
        );
    }
    assert!(
        world.authenticates(&old),
        "the user's last working key is kept"
    );
    {
        use keyturn_core::ports::{AccessKeys, Iam};
        world
            .own()
            .delete("app1", &current.id)
            .await
            .expect("by hand");
    }
    let report = r
        .sweep("keyturn/app1", &policy(), false)
        .await
        .expect("sweep");
    assert!(
        matches!(report.outcome, SweepOutcome::Blocked { ref why, .. } if why.contains("is not one of user app1's keys")),
        "{report:?}"
    );
    assert!(world.authenticates(&old));
}

#[tokio::test]
async fn a_stale_deactivation_record_restarts_the_wait_and_a_gone_key_loses_its_label() {
    let world = World::new();
    let old = enrolled(&world);
    let r = rotator(&world);
    rotate(&r, &world, "keyturn/app1").await.expect("rotation");
    world.advance(8 * DAY);
    let done = r
        .sweep("keyturn/app1", &policy(), false)
        .await
        .expect("deactivate");
    assert!(matches!(done.outcome, SweepOutcome::Deactivated { .. }));
    // Someone reactivates it, a program uses it, and it is deactivated again by hand.
    world.advance(8 * DAY);
    {
        use keyturn_core::ports::{AccessKeys, Iam};
        world
            .own()
            .set_status("app1", &old.id, KeyStatus::Active)
            .await
            .expect("reactivate");
        world.use_key(&old.id, "s3");
        world.advance(Duration::from_secs(1));
        world
            .own()
            .set_status("app1", &old.id, KeyStatus::Inactive)
            .await
            .expect("deactivate");
    }
    let report = r
        .sweep("keyturn/app1", &policy(), false)
        .await
        .expect("sweep");
    assert!(
        matches!(report.outcome, SweepOutcome::Waiting { inactive: true, .. }),
        "{report:?}"
    );
    assert!(
        world.key_exists(&old.id),
        "not deleted on the strength of a stale record"
    );
    // The previous key deleted by hand: the sweep removes the label that points at nothing.
    {
        use keyturn_core::ports::{AccessKeys, Iam};
        world.own().delete("app1", &old.id).await.expect("by hand");
    }
    let cleared = r
        .sweep("keyturn/app1", &policy(), false)
        .await
        .expect("sweep");
    assert_eq!(
        cleared.outcome,
        SweepOutcome::Cleared {
            key_id: old.id.clone()
        }
    );
    assert!(!world
        .labels("keyturn/app1")
        .values()
        .any(|l| l.iter().any(|x| x == AWSPREVIOUS)));
}

#[tokio::test]
async fn a_full_sweep_cycle_writes_no_secret_value() {
    let world = World::new();
    enrolled(&world);
    let r = rotator(&world);
    rotate(&r, &world, "keyturn/app1").await.expect("rotation");
    world.clear_calls();
    world.advance(8 * DAY);
    let d = r
        .sweep("keyturn/app1", &policy(), false)
        .await
        .expect("deactivate");
    assert!(matches!(d.outcome, SweepOutcome::Deactivated { .. }));
    world.advance(8 * DAY);
    let x = r
        .sweep("keyturn/app1", &policy(), false)
        .await
        .expect("delete");
    assert!(matches!(x.outcome, SweepOutcome::Deleted { .. }));
    let calls = world.calls();
    assert_eq!(
        calls.len(),
        21,
        "8 calls to decide (ListSecrets for one user, one secret), 2 to re-read before acting \
         (DescribeSecret, ListAccessKeys), and for the deactivation 1 after it (DescribeSecret: \
         did the key become AWSCURRENT meanwhile?): {calls:?}"
    );
    assert!(
        !calls
            .iter()
            .any(|c| c.ends_with(":PutSecretValue") || c.ends_with(":UpdateSecret")),
        "{calls:?}"
    );
}

#[tokio::test]
async fn a_plain_rotate_finishes_a_stale_rotation_keyturn_rotate_started_and_names_a_fresh_one() {
    use keyturn_core::fake::Fault;
    use keyturn_core::rules::{local_token, YOUNG_KEY};
    // Where a local rotation stores its key, from a clean run of the same set-up.
    let probe = World::new();
    enrolled(&probe);
    probe.clear_calls();
    local(&local_rotator(&probe), "keyturn/app1", LocalMode::Rotate)
        .await
        .expect("probe");
    let put = 1 + probe
        .calls()
        .iter()
        .position(|c| c == "secretsmanager:PutSecretValue")
        .expect("a PutSecretValue");

    let world = World::new();
    let old = enrolled(&world);
    let r = local_rotator(&world);
    world.clear_calls();
    world.arm(Fault::CrashAfter { call: put });
    let own = LocalRequest {
        new_token: local_token("6a1f0c55-2222-4333-8444-555555555555"),
        ..request(LocalMode::Rotate, false)
    };
    r.rotate_local("keyturn/app1", &own)
        .await
        .expect_err("stopped after storing its key");
    world.restart();
    assert_eq!(
        in_flight(&describe(&world, "keyturn/app1").await),
        Some(own.new_token.as_str())
    );

    // Minutes later the run that started it may still be going: refused, naming the commands.
    let err = local(&r, "keyturn/app1", LocalMode::Rotate)
        .await
        .expect_err("fresh");
    let text = err.to_string();
    assert!(
        matches!(
            err,
            RotationError::RotationInFlight {
                started: Some(_),
                ..
            }
        ),
        "{text}"
    );
    for words in [
        "started by keyturn rotate at",
        "keyturn rotate finishes it by itself",
        "keyturn rotate --resume keyturn/app1",
        "keyturn rotate --cancel keyturn/app1",
    ] {
        assert!(text.contains(words), "{words}: {text}");
    }

    // Once it has stood for YOUNG_KEY, a plain rotate finishes it: no second key, no refusal.
    world.advance(Duration::from_secs(YOUNG_KEY.whole_seconds() as u64));
    let done = local(&r, "keyturn/app1", LocalMode::Rotate)
        .await
        .expect("finished");
    assert_eq!(done.outcome, LocalOutcome::Resumed, "{}", done.detail);
    assert!(
        done.detail.contains("earlier keyturn rotate"),
        "{}",
        done.detail
    );
    assert!(label_of(&world, "keyturn/app1", &own.new_token).contains(&AWSCURRENT.to_string()));
    assert_eq!(key_at(&world, "keyturn/app1", AWSPREVIOUS), Some(old));
    assert_safe(&world, "keyturn/app1", "app1");

    // Secrets Manager's own rotation left in flight is never finished by a plain rotate.
    let token = world.start_rotation("keyturn/app1");
    world.advance(Duration::from_secs(3600));
    let err = local(&r, "keyturn/app1", LocalMode::Rotate)
        .await
        .expect_err("not keyturn rotate's");
    assert!(
        err.to_string().contains("not started by keyturn rotate"),
        "{err}"
    );
    assert!(label_of(&world, "keyturn/app1", &token).contains(&"AWSPENDING".to_string()));
}

/// The one sweep loop: results in the secrets' order; a secret `start` declines (a signal came)
/// is untouched and has no result; the others are swept as `sweep` alone would.
#[tokio::test]
async fn sweep_each_keeps_order_and_leaves_declined_secrets_untouched() {
    let world = World::new();
    let mut olds = Vec::new();
    for user in ["app1", "app2", "app3"] {
        world.add_user(user);
        let key = world.create_key(user);
        world.add_secret(&format!("keyturn/{user}"), &canonical(user, &key), &[]);
        olds.push(key);
    }
    let r = rotator(&world);
    for user in ["app1", "app2", "app3"] {
        rotate(&r, &world, &format!("keyturn/{user}"))
            .await
            .expect("rotation");
    }
    world.advance(8 * DAY);
    let names: Vec<String> = ["app1", "app2", "app3"]
        .iter()
        .map(|u| format!("keyturn/{u}"))
        .collect();
    let started = std::sync::Mutex::new(Vec::new());
    let results = r
        .sweep_each(names.clone(), &policy(), false, 2, |secret| {
            started.lock().expect("lock").push(secret.to_string());
            (secret != "keyturn/app2").then_some(())
        })
        .await;
    assert_eq!(
        results.iter().map(|(s, _)| s.clone()).collect::<Vec<_>>(),
        names
    );
    assert_eq!(started.lock().expect("lock").len(), 3);
    for ((secret, result), old) in results.iter().zip(&olds) {
        if secret == "keyturn/app2" {
            assert!(result.is_none());
            assert!(
                world
                    .keys_of("app2")
                    .contains(&(old.id.clone(), KeyStatus::Active)),
                "untouched"
            );
        } else {
            let report = result.as_ref().expect("started").as_ref().expect("swept");
            assert_eq!(
                report.outcome,
                SweepOutcome::Deactivated {
                    key_id: old.id.clone()
                }
            );
        }
    }
}
