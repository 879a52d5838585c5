//! Each step, each step twice, and the checks every step makes first.

use std::time::Duration;

use keyturn_core::fake::World;
use keyturn_core::ports::{KeyStatus, AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use keyturn_core::{Action, RotationError, Step};

use super::*;

#[tokio::test]
async fn a_full_rotation_promotes_a_new_key_and_keeps_the_old_one_active() {
    let world = World::new();
    let old = enrolled(&world);
    let r = rotator(&world);
    let token = world.start_rotation("keyturn/app1");

    let created = step(&r, Step::Create, "keyturn/app1", &token)
        .await
        .expect("createSecret");
    assert_eq!(created.action, Action::Created);
    let new_id = created.pending_key_id.clone().expect("a new key id");
    assert_ne!(new_id, old.id);
    assert_eq!(
        key_at(&world, "keyturn/app1", AWSPENDING).map(|k| k.id),
        Some(new_id.clone())
    );
    assert_eq!(
        key_at(&world, "keyturn/app1", AWSCURRENT),
        Some(old.clone()),
        "AWSCURRENT untouched"
    );

    let set = step(&r, Step::Set, "keyturn/app1", &token)
        .await
        .expect("setSecret");
    assert_eq!(set.action, Action::Confirmed);
    let tested = step(&r, Step::Test, "keyturn/app1", &token)
        .await
        .expect("testSecret");
    assert_eq!(tested.action, Action::Tested { attempts: 1 });
    let finished = step(&r, Step::Finish, "keyturn/app1", &token)
        .await
        .expect("finishSecret");
    assert_eq!(finished.action, Action::Promoted);

    let current = key_at(&world, "keyturn/app1", AWSCURRENT).expect("current");
    assert_eq!(current.id, new_id);
    assert!(world.authenticates(&current));
    assert_eq!(
        key_at(&world, "keyturn/app1", AWSPREVIOUS),
        Some(old.clone())
    );
    assert!(
        world.authenticates(&old),
        "the previous key stays active for its grace period"
    );
    assert_eq!(
        label_of(&world, "keyturn/app1", &token),
        vec![AWSPENDING.to_string(), AWSCURRENT.to_string()]
    );
    let tags = world.tags("keyturn/app1");
    assert_eq!(tags.get("keyturn:cutover-version"), Some(&token));
    assert!(tags.contains_key("keyturn:cutover-at"));
}

#[tokio::test]
async fn every_step_run_twice_changes_nothing_the_second_time() {
    let world = World::new();
    let old = enrolled(&world);
    let r = rotator(&world);
    let token = world.start_rotation("keyturn/app1");
    for s in Step::ALL {
        let first = step(&r, s, "keyturn/app1", &token)
            .await
            .unwrap_or_else(|e| panic!("{s} once: {e}"));
        let keys = world.keys_of("app1");
        let labels = world.labels("keyturn/app1");
        let values = world.all_values("keyturn/app1");
        let second = step(&r, s, "keyturn/app1", &token)
            .await
            .unwrap_or_else(|e| panic!("{s} twice: {e}"));
        assert_eq!(
            world.keys_of("app1"),
            keys,
            "{s} twice made or removed a key"
        );
        assert_eq!(
            world.labels("keyturn/app1"),
            labels,
            "{s} twice moved labels"
        );
        assert_eq!(
            world.all_values("keyturn/app1"),
            values,
            "{s} twice stored a value"
        );
        let expected_second = match s {
            Step::Create => Action::AlreadyCreated,
            Step::Finish => Action::AlreadyCurrent,
            _ => first.action.clone(),
        };
        assert_eq!(second.action, expected_second, "{s}");
    }
    assert_eq!(world.keys_of("app1").len(), 2);
    assert_eq!(key_at(&world, "keyturn/app1", AWSPREVIOUS), Some(old));
    assert_safe(&world, "keyturn/app1", "app1");
    assert_no_orphans(&world, "keyturn/app1", "app1");
}

#[tokio::test]
async fn a_token_that_is_not_a_version_fails_every_step() {
    let world = World::new();
    enrolled(&world);
    let r = rotator(&world);
    world.start_rotation("keyturn/app1");
    for s in Step::ALL {
        let err = step(
            &r,
            s,
            "keyturn/app1",
            "ffffffff-0000-4000-8000-000000000000",
        )
        .await
        .expect_err("unknown token");
        assert!(
            matches!(err, RotationError::UnknownVersion { .. }),
            "{s}: {err}"
        );
        assert!(err.to_string().contains("keyturn/app1"));
    }
    assert!(iam_calls(&world).is_empty());
}

#[tokio::test]
async fn a_token_already_awscurrent_succeeds_doing_nothing() {
    let world = World::new();
    enrolled(&world);
    let r = rotator(&world);
    let token = rotate(&r, &world, "keyturn/app1").await.expect("rotation");
    let keys = world.keys_of("app1");
    world.clear_calls();
    for s in Step::ALL {
        let report = step(&r, s, "keyturn/app1", &token).await.expect("no-op");
        assert_eq!(report.action, Action::AlreadyCurrent, "{s}");
    }
    assert_eq!(world.keys_of("app1"), keys);
    assert_eq!(
        world.calls(),
        vec!["secretsmanager:DescribeSecret"; 4],
        "one call per no-op step"
    );
}

#[tokio::test]
async fn a_version_that_is_not_pending_fails() {
    let world = World::new();
    enrolled(&world);
    let r = rotator(&world);
    let first = rotate(&r, &world, "keyturn/app1").await.expect("first");
    rotate(&r, &world, "keyturn/app1").await.expect("second");
    // `first` is now AWSPREVIOUS only.
    let err = step(&r, Step::Create, "keyturn/app1", &first)
        .await
        .expect_err("previous version");
    assert!(matches!(err, RotationError::NotPending { .. }), "{err}");
    assert!(err.to_string().contains("AWSPREVIOUS"), "{err}");
}

#[tokio::test]
async fn rotation_must_be_enabled_when_secrets_manager_calls() {
    let world = World::new();
    enrolled(&world);
    let r = rotator(&world);
    // A version labelled AWSPENDING but rotation never enabled.
    let err = step(
        &r,
        Step::Create,
        "keyturn/app1",
        "00000000-0000-4000-8000-000000000000",
    )
    .await
    .expect_err("disabled");
    assert!(
        matches!(err, RotationError::RotationDisabled { .. }),
        "{err}"
    );
    assert_eq!(err.error_type(), "RotationDisabled");
}

#[tokio::test]
async fn test_step_waits_for_a_new_key_to_propagate_with_bounded_backoff() {
    let world = World::new();
    enrolled(&world);
    world.set_propagation_delay(Duration::from_secs(5));
    let r = rotator(&world);
    let token = world.start_rotation("keyturn/app1");
    step(&r, Step::Create, "keyturn/app1", &token)
        .await
        .expect("create");
    step(&r, Step::Set, "keyturn/app1", &token)
        .await
        .expect("set");
    let before = world.now();
    let tested = step(&r, Step::Test, "keyturn/app1", &token)
        .await
        .expect("test");
    // Waits of 1, 2, then 4 s (capped): valid at 7 s, on the fourth attempt.
    assert_eq!(tested.action, Action::Tested { attempts: 4 });
    assert_eq!(world.now() - before, time::Duration::seconds(7));
}

#[tokio::test]
async fn a_key_that_never_authenticates_fails_the_test_and_current_is_unchanged() {
    let world = World::new();
    let old = enrolled(&world);
    world.set_propagation_delay(Duration::from_secs(3600));
    let r = rotator(&world);
    let token = world.start_rotation("keyturn/app1");
    step(&r, Step::Create, "keyturn/app1", &token)
        .await
        .expect("create");
    let err = step(&r, Step::Test, "keyturn/app1", &token)
        .await
        .expect_err("never valid");
    match &err {
        RotationError::KeyDoesNotAuthenticate {
            attempts,
            waited_secs,
            ..
        } => {
            assert_eq!(*attempts, 5);
            assert_eq!(*waited_secs, 1 + 2 + 4 + 4);
        }
        other => panic!("unexpected {other}"),
    }
    assert!(err.is_transient());
    assert_eq!(key_at(&world, "keyturn/app1", AWSCURRENT), Some(old));
}

#[tokio::test]
async fn a_key_of_another_user_fails_the_test() {
    let world = World::new();
    world.add_user("app1");
    world.add_user("intruder");
    let wrong = world.create_key("intruder");
    // The secret claims user app1 but holds intruder's key; its pending version too.
    world.add_secret("keyturn/app1", &canonical("app1", &wrong), &[]);
    let token = world.start_rotation("keyturn/app1");
    let r = rotator(&world);
    use keyturn_core::ports::SecretStore;
    world
        .put_pending(
            "keyturn/app1",
            &token,
            &keyturn_core::SecretText::new(canonical("app1", &wrong)),
        )
        .await
        .expect("put");
    let err = step(&r, Step::Test, "keyturn/app1", &token)
        .await
        .expect_err("wrong user");
    assert!(matches!(err, RotationError::WrongIdentity { .. }), "{err}");
    assert!(err.to_string().contains("user/intruder"), "{err}");
}

#[tokio::test]
async fn finish_refuses_to_promote_a_version_without_a_key() {
    let world = World::new();
    let old = enrolled(&world);
    let r = rotator(&world);
    let token = world.start_rotation("keyturn/app1");
    let err = step(&r, Step::Finish, "keyturn/app1", &token)
        .await
        .expect_err("nothing to promote");
    assert!(
        matches!(err, RotationError::PendingValueMissing { .. }),
        "{err}"
    );
    assert_eq!(key_at(&world, "keyturn/app1", AWSCURRENT), Some(old));
}

#[tokio::test]
async fn a_rotation_makes_the_minimum_calls() {
    let world = World::new();
    enrolled(&world);
    let r = rotator(&world);
    world.clear_calls();
    rotate(&r, &world, "keyturn/app1").await.expect("rotation");
    let calls = world.calls();
    assert_eq!(
        calls,
        [
            // createSecret: AWSCURRENT and the pending version; whose key (one user, one secret;
            // the current key is the user's, which also tells whether a slot is free)
            "secretsmanager:DescribeSecret",
            "secretsmanager:GetSecretValue",
            "secretsmanager:GetSecretValue",
            "secretsmanager:ListSecrets",
            "iam:ListAccessKeys",
            "iam:CreateAccessKey",
            "secretsmanager:PutSecretValue",
            // setSecret: the opening checks only
            "secretsmanager:DescribeSecret",
            // testSecret
            "secretsmanager:DescribeSecret",
            "secretsmanager:GetSecretValue",
            "sts:GetCallerIdentity",
            // finishSecret
            "secretsmanager:DescribeSecret",
            "secretsmanager:GetSecretValue",
            "secretsmanager:TagResource",
            "secretsmanager:UpdateSecretVersionStage",
        ]
    );
    // The second rotation also reads AWSPREVIOUS, asks when its key was last used, re-reads the
    // labels just before deleting it (a rollback may have moved them) and deletes it.
    world.clear_calls();
    rotate(&r, &world, "keyturn/app1")
        .await
        .expect("second rotation");
    assert_eq!(world.calls().len(), 19, "{:?}", world.calls());
    assert_eq!(
        world
            .keys_of("app1")
            .iter()
            .filter(|(_, s)| *s == KeyStatus::Active)
            .count(),
        2
    );
}

/// Every call that writes: a configuration test makes none of them.
fn writes(world: &World) -> Vec<String> {
    world
        .calls()
        .into_iter()
        .filter(|c| {
            [
                "CreateAccessKey",
                "DeleteAccessKey",
                "UpdateAccessKey",
                "PutSecretValue",
                "UpdateSecretVersionStage",
                "TagResource",
                "UntagResource",
            ]
            .iter()
            .any(|w| c.contains(w))
        })
        .collect()
}

#[tokio::test]
async fn the_configuration_test_passes_on_an_empty_pending_version_and_changes_nothing() {
    // RotateImmediately=false: Secrets Manager runs testSecret alone, on a pending version with no
    // value, and removes it afterwards.
    let world = World::new();
    let old = enrolled(&world);
    let r = rotator(&world);
    let token = world.start_rotation("keyturn/app1");
    world.clear_calls();
    let tested = step(&r, Step::Test, "keyturn/app1", &token)
        .await
        .expect("the configuration test passes");
    assert_eq!(tested.action, Action::ConfigurationChecked);
    assert_eq!(tested.user.as_deref(), Some("app1"));
    assert_eq!(tested.current_key_id.as_deref(), Some(old.id.as_str()));
    assert_eq!(writes(&world), Vec::<String>::new(), "nothing written");
    assert!(
        world.calls().iter().any(|c| c == "iam:ListAccessKeys"),
        "the function's IAM access is exercised: {:?}",
        world.calls()
    );
    assert_eq!(world.keys_of("app1").len(), 1, "no key made");

    // A configuration that cannot rotate fails the test: AWSCURRENT holding a key the user does
    // not have.
    world.add_user("app2");
    let stray = world.create_key("app2");
    world.add_secret("keyturn/app2", &canonical("app1", &stray), &[]);
    let token = world.start_rotation("keyturn/app2");
    let err = step(&r, Step::Test, "keyturn/app2", &token)
        .await
        .expect_err("AWSCURRENT's key is not app1's");
    assert!(err.to_string().contains("keyturn/app2"), "{err}");
    assert_eq!(writes(&world), Vec::<String>::new(), "nothing written");
}

#[tokio::test]
async fn a_pending_copy_of_awscurrent_passes_the_configuration_test_but_is_never_rotated_to() {
    use keyturn_core::ports::SecretStore;
    use keyturn_core::secret::SecretText;
    let world = World::new();
    let old = enrolled(&world);
    let r = rotator(&world);
    let token = world.start_rotation("keyturn/app1");
    let copy = world
        .value_with("keyturn/app1", AWSCURRENT)
        .expect("current value");
    world
        .put_pending("keyturn/app1", &token, &SecretText::new(copy))
        .await
        .expect("copy stored");
    world.clear_calls();
    let tested = step(&r, Step::Test, "keyturn/app1", &token)
        .await
        .expect("the copy's key (AWSCURRENT's) authenticates");
    assert_eq!(tested.action, Action::Tested { attempts: 1 });
    assert_eq!(writes(&world), Vec::<String>::new(), "nothing written");

    // The copy's key (AWSCURRENT's) no longer authenticating does not fail the configuration
    // test either: it is told from a new key that never authenticates, and nothing is written.
    {
        use keyturn_core::ports::{AccessKeys, Iam, KeyStatus};
        world
            .own()
            .set_status("app1", &old.id, KeyStatus::Inactive)
            .await
            .expect("deactivated");
        world.clear_calls();
        let tested = step(&r, Step::Test, "keyturn/app1", &token)
            .await
            .expect("a configuration test with a broken current key still passes");
        assert_eq!(tested.action, Action::ConfigurationChecked);
        assert_eq!(writes(&world), Vec::<String>::new(), "nothing written");
        world
            .own()
            .set_status("app1", &old.id, KeyStatus::Active)
            .await
            .expect("reactivated");
        world.clear_calls();
    }

    // A rotation that found the copy refuses before making anything: finishing it would report
    // success while every consumer kept the old key.
    let err = step(&r, Step::Create, "keyturn/app1", &token)
        .await
        .expect_err("pending holds AWSCURRENT's key");
    assert!(
        matches!(err, RotationError::PendingIsCurrent { ref key_id, .. } if *key_id == old.id),
        "{err}"
    );
    assert!(
        err.to_string()
            .contains("update-secret-version-stage --secret-id keyturn/app1"),
        "{err}"
    );
    assert_eq!(writes(&world), Vec::<String>::new(), "nothing written");
    assert_eq!(world.keys_of("app1").len(), 1, "no key made");
}

#[tokio::test]
async fn finish_records_the_key_ids_the_labels_hold_so_the_audit_needs_no_value() {
    use keyturn_core::ports::{AccessKeys, Iam, SecretStore};
    use keyturn_core::rules::recorded_keys;
    let world = World::new();
    enrolled(&world);
    let r = rotator(&world);
    let recorded = || async {
        let info = world.describe("keyturn/app1").await.expect("described");
        let keys = world.own().list("app1").await.expect("listed");
        recorded_keys(&info, &keys)
    };
    // A hand-made secret rotated once: AWSCURRENT's key is recorded, AWSPREVIOUS's is not yet
    // (the audit reads that value).
    rotate(&r, &world, "keyturn/app1").await.expect("first");
    assert_eq!(recorded().await, None);
    assert_eq!(
        world
            .tags("keyturn/app1")
            .get("keyturn:current-key")
            .cloned(),
        key_at(&world, "keyturn/app1", AWSCURRENT).map(|k| k.id)
    );
    // From the second rotation on, both, matching what the labels hold.
    rotate(&r, &world, "keyturn/app1").await.expect("second");
    let got = recorded().await.expect("both recorded");
    assert_eq!(
        Some(got.current),
        key_at(&world, "keyturn/app1", AWSCURRENT).map(|k| k.id)
    );
    assert_eq!(
        got.previous,
        key_at(&world, "keyturn/app1", AWSPREVIOUS).map(|k| k.id)
    );
}
