//! The three secret shapes, written back as found; values that are none of them.

use keyturn_core::fake::World;
use keyturn_core::ports::{AWSCURRENT, AWSPREVIOUS};
use keyturn_core::{RotationError, Step};
use serde_json::{json, Value};

use super::*;

fn current_json(world: &World, secret: &str) -> Value {
    serde_json::from_str(&world.value_with(secret, AWSCURRENT).expect("current value"))
        .expect("JSON")
}

#[tokio::test]
async fn each_shape_is_written_back_in_its_own_shape_with_other_fields_kept() {
    let world = World::new();
    let r = rotator(&world);
    type Make = fn(&keyturn_core::AccessKey, &str) -> Value;
    let cases: [(&str, Make, &[&str]); 3] = [
        (
            "canonical",
            |k, u| json!({"UserName": u, "AccessKeyId": k.id, "SecretAccessKey": k.secret.expose(), "owner": "team-a"}),
            &["UserName", "AccessKeyId", "SecretAccessKey", "owner"],
        ),
        (
            "camel",
            |k, _| json!({"accessKey": k.id, "secretKey": k.secret.expose(), "region": "eu-west-1"}),
            &["accessKey", "secretKey", "region"],
        ),
        (
            "lower",
            |k, u| json!({"username": u, "accesskey": k.id, "secretkey": k.secret.expose(), "note": {"nested": [1, 2]}}),
            &["username", "accesskey", "secretkey", "note"],
        ),
    ];
    for (name, make, fields) in cases {
        // One user per case: one user, one secret.
        let user = format!("app-{name}");
        world.add_user(&user);
        let key = world.create_key(&user);
        let before = make(&key, &user);
        let secret = format!("legacy/{name}");
        world.add_secret(&secret, &before.to_string(), &[("keyturn:user", &user)]);
        rotate(&r, &world, &secret)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let after = current_json(&world, &secret);
        let keys: Vec<&str> = after
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, fields.to_vec(), "{name}: same fields, same order");
        let new = key_at(&world, &secret, AWSCURRENT).expect("new key");
        assert_ne!(new.id, key.id, "{name}");
        assert!(world.authenticates(&new), "{name}");
        for f in fields.iter().skip(2) {
            if !f.ends_with("ey") && *f != "SecretAccessKey" && *f != "AccessKeyId" {
                assert_eq!(after[*f], before[*f], "{name}: field {f} kept");
            }
        }
        assert_eq!(key_at(&world, &secret, AWSPREVIOUS), Some(key), "{name}");
    }
}

#[tokio::test]
async fn the_empty_value_gets_the_canonical_shape() {
    let world = World::new();
    world.add_user("fresh");
    world.add_secret("keyturn/fresh", "{}", &[("keyturn:user", "fresh")]);
    let r = rotator(&world);
    rotate(&r, &world, "keyturn/fresh")
        .await
        .expect("first key");
    let after = current_json(&world, "keyturn/fresh");
    assert_eq!(after["UserName"], "fresh");
    let key = key_at(&world, "keyturn/fresh", AWSCURRENT).expect("key");
    assert!(world.authenticates(&key));
}

#[tokio::test]
async fn a_value_that_is_not_json_or_no_known_shape_touches_nothing_in_iam() {
    let world = World::new();
    world.add_user("app1");
    world.create_key("app1");
    let r = rotator(&world);
    for (secret, value, expected) in [
        ("bad/notjson", "AKIA... this is not json", "not JSON"),
        ("bad/array", "[\"a\"]", "not an object"),
        (
            "bad/other",
            r#"{"password":"hunter2"}"#,
            "none of the supported shapes",
        ),
        (
            "bad/half",
            r#"{"AccessKeyId":"AKIA1"}"#,
            "\"SecretAccessKey\" is missing",
        ),
    ] {
        world.add_secret(secret, value, &[("keyturn:user", "app1")]);
        let token = world.start_rotation(secret);
        world.clear_calls();
        let err = step(&r, Step::Create, secret, &token)
            .await
            .expect_err("bad value");
        assert!(
            matches!(err, RotationError::BadValue { .. }),
            "{secret}: {err}"
        );
        let msg = err.to_string();
        assert!(msg.contains(secret) && msg.contains(expected), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        assert!(
            iam_calls(&world).is_empty(),
            "{secret}: IAM was touched: {:?}",
            world.calls()
        );
    }
    assert_eq!(world.keys_of("app1").len(), 1);
}
