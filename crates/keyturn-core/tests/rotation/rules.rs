//! The two-slot rules: what createSecret may delete to make room, and what it must refuse.

use std::time::Duration;

use keyturn_core::error::KeepReason;
use keyturn_core::fake::{Fault, World};
use keyturn_core::ports::{ApiError, AWSCURRENT, AWSPENDING, AWSPREVIOUS};
use keyturn_core::rules::Scope;
use keyturn_core::{RotationError, RotationSettings, SecretValue, Step};

use super::*;

const DAY: Duration = Duration::from_secs(86_400);

#[tokio::test]
async fn an_unused_previous_key_is_deleted_to_make_room() {
    let world = World::new();
    let first = enrolled(&world);
    let r = rotator(&world);
    rotate(&r, &world, "keyturn/app1")
        .await
        .expect("first rotation");
    let second = key_at(&world, "keyturn/app1", AWSCURRENT).expect("current");
    world.advance(30 * DAY);
    world.use_key(&second.id, "s3"); // consumers use the current key only
    let token = world.start_rotation("keyturn/app1");
    let report = step(&r, Step::Create, "keyturn/app1", &token)
        .await
        .expect("create");
    let retired = report.retired.expect("made room");
    assert_eq!(retired.key_id(), first.id);
    let why = retired.reason().to_string();
    assert!(why.contains("AWSPREVIOUS"), "{why}");
    assert!(!world.key_exists(&first.id));
    assert!(world.key_exists(&second.id));
    assert_eq!(world.keys_of("app1").len(), 2);
}

#[tokio::test]
async fn a_previous_key_used_since_the_cutover_is_kept_and_named() {
    let world = World::new();
    let first = enrolled(&world);
    let r = rotator(&world);
    rotate(&r, &world, "keyturn/app1")
        .await
        .expect("first rotation");
    world.advance(DAY);
    world.use_key(&first.id, "ec2"); // a consumer still on the old key
    let keys = world.keys_of("app1");
    let token = world.start_rotation("keyturn/app1");
    let err = step(&r, Step::Create, "keyturn/app1", &token)
        .await
        .expect_err("must refuse");
    match &err {
        RotationError::NoRoomForKey { kept, user, .. } => {
            assert_eq!(user, "app1");
            assert_eq!(kept.len(), 1);
            assert_eq!(kept[0].key_id, first.id);
            assert_eq!(kept[0].reason, KeepReason::UsedSinceCutover);
        }
        other => panic!("unexpected {other}"),
    }
    let msg = err.to_string();
    assert!(
        msg.contains(&first.id) && msg.contains("by ec2") && msg.contains("2026-09-02T09:00:00Z"),
        "{msg}"
    );
    assert_eq!(err.error_type(), "KeyInUse");
    assert_eq!(world.keys_of("app1"), keys, "keys intact");
    assert!(
        key_at(&world, "keyturn/app1", AWSPENDING).is_none(),
        "nothing stored"
    );
}

#[tokio::test]
async fn a_previous_key_used_only_before_the_cutover_is_deleted() {
    let world = World::new();
    let first = enrolled(&world);
    world.advance(DAY);
    world.use_key(&first.id, "s3"); // used while it was current
    world.advance(DAY);
    let r = rotator(&world);
    rotate(&r, &world, "keyturn/app1")
        .await
        .expect("first rotation");
    world.advance(DAY);
    let token = world.start_rotation("keyturn/app1");
    let report = step(&r, Step::Create, "keyturn/app1", &token)
        .await
        .expect("create");
    assert_eq!(
        report.retired.map(|d| d.key_id().to_string()),
        Some(first.id)
    );
}

#[tokio::test]
async fn an_unused_orphan_key_is_deleted() {
    let world = World::new();
    enrolled(&world);
    let orphan = world.create_key("app1"); // left by an interrupted attempt, never used
    let r = rotator(&world);
    let token = world.start_rotation("keyturn/app1");
    let report = step(&r, Step::Create, "keyturn/app1", &token)
        .await
        .expect("create");
    assert_eq!(
        report.retired.map(|d| d.key_id().to_string()),
        Some(orphan.id.clone())
    );
    assert!(!world.key_exists(&orphan.id));
}

#[tokio::test]
async fn a_used_key_held_by_no_version_is_refused_and_named() {
    let world = World::new();
    enrolled(&world);
    let unmanaged = world.create_key("app1");
    world.advance(DAY);
    world.use_key(&unmanaged.id, "dynamodb");
    let r = rotator(&world);
    let token = world.start_rotation("keyturn/app1");
    let err = step(&r, Step::Create, "keyturn/app1", &token)
        .await
        .expect_err("must refuse");
    match &err {
        RotationError::NoRoomForKey { kept, .. } => {
            assert_eq!(kept[0].key_id, unmanaged.id);
            assert_eq!(kept[0].reason, KeepReason::UnmanagedAndUsed);
        }
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains("dynamodb"), "{err}");
    assert!(world.key_exists(&unmanaged.id));
    assert_eq!(world.keys_of("app1").len(), 2);
}

#[tokio::test]
async fn a_user_that_does_not_exist_is_a_clear_error() {
    let world = World::new();
    world.add_user("ghost");
    let key = world.create_key("ghost");
    world.add_secret("keyturn/nobody", &canonical("nobody", &key), &[]);
    let r = rotator(&world);
    let token = world.start_rotation("keyturn/nobody");
    let err = step(&r, Step::Create, "keyturn/nobody", &token)
        .await
        .expect_err("no user");
    assert!(
        matches!(err, RotationError::NoSuchUser { ref user, .. } if user == "nobody"),
        "{err}"
    );
    assert_eq!(world.keys_of("ghost").len(), 1);
}

#[tokio::test]
async fn a_failed_store_deletes_the_new_key() {
    let world = World::new();
    let old = enrolled(&world);
    let r = rotator(&world);
    let token = world.start_rotation("keyturn/app1");
    // createSecret's calls on a first rotation: Describe, Get current, Get pending, ListSecrets,
    // ListAccessKeys, Create, Put (7th).
    world.arm(Fault::FailAt {
        call: 7,
        error: ApiError::AccessDenied("not allowed to PutSecretValue".into()),
    });
    let err = step(&r, Step::Create, "keyturn/app1", &token)
        .await
        .expect_err("store fails");
    assert!(matches!(err, RotationError::StoreFailed { .. }), "{err}");
    assert!(err.to_string().contains("was deleted again"), "{err}");
    let ids: Vec<String> = world.keys_of("app1").into_iter().map(|k| k.0).collect();
    assert_eq!(ids, vec![old.id.clone()], "only the old key is left");
    world.restart();
    step(&r, Step::Create, "keyturn/app1", &token)
        .await
        .expect("retry");
    assert_eq!(world.keys_of("app1").len(), 2);
}

#[tokio::test]
async fn the_user_comes_from_the_tag_or_iam_user_name() {
    let world = World::new();
    world.add_user("tagged");
    world.add_user("fromenv");
    let k1 = world.create_key("tagged");
    let k2 = world.create_key("fromenv");
    let legacy = |k: &keyturn_core::AccessKey| {
        format!(
            r#"{{"accessKey":"{}","secretKey":"{}"}}"#,
            k.id,
            k.secret.expose()
        )
    };
    world.add_secret("legacy/tagged", &legacy(&k1), &[("keyturn:user", "tagged")]);
    world.add_secret("legacy/env", &legacy(&k2), &[]);
    let r = rotator(&world);
    rotate(&r, &world, "legacy/tagged")
        .await
        .expect("user from tag");
    assert_eq!(world.keys_of("tagged").len(), 2);

    let token = world.start_rotation("legacy/env");
    let err = step(&r, Step::Create, "legacy/env", &token)
        .await
        .expect_err("no user");
    assert!(matches!(err, RotationError::NoUserName { .. }), "{err}");
    let with_env = rotator_with(
        &world,
        RotationSettings {
            default_user: Some("fromenv".into()),
            ..settings()
        },
    );
    for s in Step::ALL {
        step(&with_env, s, "legacy/env", &token)
            .await
            .expect("user from IAM_USER_NAME");
    }
    assert_eq!(world.keys_of("fromenv").len(), 2);
}

#[tokio::test]
async fn masterarn_makes_the_iam_calls_with_the_master_key() {
    let world = World::new();
    world.add_user("admin");
    world.add_user("app1");
    let admin_key = world.create_key("admin");
    let master_arn = world.add_secret("keyturn/admin", &canonical("admin", &admin_key), &[]);
    let key = world.create_key("app1");
    let value = format!(
        r#"{{"username":"app1","accesskey":"{}","secretkey":"{}","masterarn":"{master_arn}"}}"#,
        key.id,
        key.secret.expose()
    );
    world.add_secret("keyturn/app1", &value, &[]);
    let r = rotator_with(&world, with_masters(&["keyturn/admin"]));
    rotate(&r, &world, "keyturn/app1")
        .await
        .expect("rotation with master");
    assert_eq!(world.keys_of("app1").len(), 2);
    let admin_use = admin_last_use(&world, &admin_key.id).await;
    assert_eq!(
        admin_use.service.as_deref(),
        Some("iam"),
        "IAM calls were signed by the master key"
    );
    let current = key_at(&world, "keyturn/app1", AWSCURRENT).expect("current");
    let text = world.value_with("keyturn/app1", AWSCURRENT).expect("value");
    let parsed = SecretValue::parse(&keyturn_core::SecretText::new(text)).expect("parses");
    assert_eq!(
        parsed.master_arn(),
        Some(master_arn.as_str()),
        "masterarn kept"
    );
    assert!(world.authenticates(&current));
}

/// The default settings with a master allow-list.
fn with_masters(masters: &[&str]) -> RotationSettings {
    RotationSettings {
        scope: Scope::new("keyturn/", "/", masters.iter().map(|m| m.to_string()))
            .expect("valid scope"),
        ..settings()
    }
}

/// A secret for app1 whose masterarn names `master` (the admin's secret).
fn borrowing(world: &World, master: &str) -> (keyturn_core::AccessKey, keyturn_core::AccessKey) {
    world.add_user("admin");
    world.add_user("app1");
    let admin_key = world.create_key("admin");
    world.add_secret("keyturn/admin", &canonical("admin", &admin_key), &[]);
    let key = world.create_key("app1");
    let value = format!(
        r#"{{"username":"app1","accesskey":"{}","secretkey":"{}","masterarn":"{master}"}}"#,
        key.id,
        key.secret.expose()
    );
    world.add_secret("keyturn/app1", &value, &[]);
    (admin_key, key)
}

#[tokio::test]
async fn a_masterarn_outside_the_allow_list_is_refused_before_any_iam_call() {
    for allowed in [&[][..], &["keyturn/other"][..]] {
        let world = World::new();
        let (admin_key, _) = borrowing(&world, "keyturn/admin");
        let r = rotator_with(&world, with_masters(allowed));
        world.clear_calls();
        let err = rotate(&r, &world, "keyturn/app1")
            .await
            .expect_err("master not allowed");
        assert!(
            matches!(err, RotationError::MasterNotAllowed { ref master, .. } if master == "keyturn/admin"),
            "{err}"
        );
        assert!(err.to_string().contains("keyturn/app1"), "{err}");
        assert_eq!(world.keys_of("app1").len(), 1, "no key made");
        assert_eq!(world.keys_of("admin").len(), 1, "no key made");
        let calls = world.calls();
        assert!(
            !calls.iter().any(|c| c.starts_with("iam:")),
            "no IAM call at all: {calls:?}"
        );
        assert!(
            !calls
                .iter()
                .any(|c| c.contains("GetSecretValue") && c.contains("admin")),
            "the master's value is never read: {calls:?}"
        );
        let used = admin_last_use(&world, &admin_key.id).await;
        assert_eq!(used.last_used, None, "the admin key signed nothing");
    }
}

#[tokio::test]
async fn the_allow_list_matches_the_master_secrets_full_arn_too() {
    let world = World::new();
    world.add_user("admin");
    let admin_key = world.create_key("admin");
    let master_arn = world.add_secret("keyturn/admin", &canonical("admin", &admin_key), &[]);
    world.add_user("app1");
    let key = world.create_key("app1");
    let value = format!(
        r#"{{"username":"app1","accesskey":"{}","secretkey":"{}","masterarn":"keyturn/admin"}}"#,
        key.id,
        key.secret.expose()
    );
    world.add_secret("keyturn/app1", &value, &[]);
    let r = rotator_with(&world, with_masters(&[master_arn.as_str()]));
    rotate(&r, &world, "keyturn/app1")
        .await
        .expect("a master allowed by ARN, named by name");
    assert_eq!(world.keys_of("app1").len(), 2);
}

#[tokio::test]
async fn a_borrowed_key_acts_only_on_users_under_the_user_path() {
    let world = World::new();
    world.add_user("admin");
    world.add_user_at("boss", "/admins/");
    let admin_key = world.create_key("admin");
    world.add_secret("keyturn/admin", &canonical("admin", &admin_key), &[]);
    let boss_key = world.create_key("boss");
    world.add_secret(
        "keyturn/boss",
        r#"{"masterarn":"keyturn/admin"}"#,
        &[("keyturn:user", "boss")],
    );
    let scoped = RotationSettings {
        scope: Scope::new("keyturn/", "/apps/", ["keyturn/admin".to_string()])
            .expect("valid scope"),
        ..settings()
    };
    let r = rotator_with(&world, scoped);
    let err = rotate(&r, &world, "keyturn/boss")
        .await
        .expect_err("outside the user path");
    assert!(
        matches!(err, RotationError::UserOutsidePath { ref path, .. } if path == "/admins/"),
        "{err}"
    );
    let boss_keys: Vec<String> = world.keys_of("boss").into_iter().map(|k| k.0).collect();
    assert_eq!(boss_keys, vec![boss_key.id], "no key made");
    // With a root user path, a borrowed key still reads the user first (GetUser), then acts.
    let r = rotator_with(&world, with_masters(&["keyturn/admin"]));
    world.clear_calls();
    rotate(&r, &world, "keyturn/boss").await.expect("allowed");
    assert!(world.calls().iter().any(|c| c == "iam:GetUser"));
}

#[test]
fn a_scope_is_validated() {
    assert!(
        Scope::new("keyturn", "/", []).is_err(),
        "prefix without '/'"
    );
    assert!(Scope::new("/keyturn/", "/", []).is_err());
    assert!(Scope::new("keyturn/", "apps", []).is_err());
    let s = Scope::new(" team/ ", "/apps/", [" a ".to_string(), String::new()]).expect("valid");
    assert_eq!((s.prefix(), s.user_path()), ("team/", "/apps/"));
    assert_eq!(s.masters(), ["a".to_string()]);
    assert!(s.selects("team/x") && !s.selects("team-prod-admin") && !s.selects("other/team/x"));
    assert!(s.admits_path("/apps/ci/") && !s.admits_path("/"));
}

#[tokio::test]
async fn managed_secrets_are_matched_exactly_and_split_by_the_prefix() {
    let world = World::new();
    world.add_secret("keyturn/in", "{}", &[("keyturn:managed", "true")]);
    world.add_secret("legacy/out", "{}", &[("keyturn:managed", "true")]);
    world.add_secret("keyturn/almost", "{}", &[("keyturn:managed", "true-ish")]);
    world.add_secret("keyturn/untagged", "{}", &[]);
    let r = rotator_with(&world, settings());
    let m = r.managed_secrets().await.expect("listed");
    let names = |v: &[keyturn_core::ports::SecretInfo]| {
        v.iter().map(|s| s.name.clone()).collect::<Vec<_>>()
    };
    assert_eq!(names(&m.inside), ["keyturn/in"]);
    assert_eq!(names(&m.outside), ["legacy/out"]);
    assert_eq!(names(&m.clone().all()), ["keyturn/in", "legacy/out"]);

    world.arm(Fault::FailAt {
        call: 1,
        error: ApiError::AccessDenied(
            "not authorized to perform secretsmanager:ListSecrets".into(),
        ),
    });
    let err = r.managed_secrets().await.expect_err("denied");
    assert!(matches!(err, RotationError::ListFailed { .. }), "{err}");
    assert_eq!(err.error_type(), "AccessDenied");
    let text = err.to_string();
    assert!(
        text.contains("keyturn:managed=true") && text.contains("grant secretsmanager:ListSecrets"),
        "{text}"
    );
}

async fn admin_last_use(world: &World, key_id: &str) -> keyturn_core::ports::KeyUse {
    use keyturn_core::ports::{AccessKeys, Iam};
    world.own().last_used(key_id).await.expect("last used")
}

/// A user whose own AWSCURRENT key makes the IAM calls (masterarn names the secret itself).
fn self_rotating(world: &World) -> (&'static str, keyturn_core::AccessKey) {
    world.add_user("selfie");
    let k1 = world.create_key("selfie");
    world.add_secret_with(
        "keyturn/selfie",
        |arn| {
            format!(
                r#"{{"username":"selfie","accesskey":"{}","secretkey":"{}","masterarn":"{arn}"}}"#,
                k1.id,
                k1.secret.expose()
            )
        },
        &[],
    );
    ("keyturn/selfie", k1)
}

#[tokio::test]
async fn a_self_rotating_user_rotates_its_own_key_period_after_period() {
    let world = World::new();
    let (secret, k1) = self_rotating(&world);
    let r = rotator(&world);
    let mut before_last: Option<keyturn_core::AccessKey> = None;
    let mut current = k1;
    for period in 1..=3 {
        world.advance(30 * DAY);
        world.use_key(&current.id, "s3"); // the program using the key
        rotate(&r, &world, secret)
            .await
            .unwrap_or_else(|e| panic!("self-rotation {period}: {e}"));
        let next = key_at(&world, secret, AWSCURRENT).expect("current");
        assert_ne!(next.id, current.id, "period {period} made a new key");
        assert!(world.authenticates(&next));
        assert_eq!(
            key_at(&world, secret, AWSPREVIOUS).map(|k| k.id),
            Some(current.id.clone())
        );
        assert!(
            world.authenticates(&current),
            "the previous key stays active"
        );
        if let Some(old) = &before_last {
            assert!(
                !world.key_exists(&old.id),
                "period {period} deleted the key before last"
            );
        }
        assert_safe(&world, secret, "selfie");
        assert_no_orphans(&world, secret, "selfie");
        before_last = Some(current);
        current = next;
    }
    let last_use = admin_last_use(&world, &current.id).await;
    assert_eq!(
        last_use.service.as_deref(),
        Some("sts"),
        "only keyturn's test used the newest key"
    );
}

#[tokio::test]
async fn two_self_rotations_in_a_row_with_no_time_between() {
    let world = World::new();
    let (secret, k1) = self_rotating(&world);
    let r = rotator(&world);
    rotate(&r, &world, secret)
        .await
        .expect("first self-rotation");
    let k2 = key_at(&world, secret, AWSCURRENT).expect("current");
    // keyturn's own IAM calls signed with k1 happened before the cut-over: k1 is not "in use".
    rotate(&r, &world, secret)
        .await
        .expect("second self-rotation at once");
    let k3 = key_at(&world, secret, AWSCURRENT).expect("current");
    assert!(!world.key_exists(&k1.id));
    assert_eq!(
        key_at(&world, secret, AWSPREVIOUS).map(|k| k.id),
        Some(k2.id)
    );
    assert!(world.authenticates(&k3));
    assert_safe(&world, secret, "selfie");
}
