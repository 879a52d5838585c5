//! Hostile input for the three parsers that read what others wrote: the rotation event, the secret
//! value and the credential report. Whatever comes in (empty, huge, deeply nested, not UTF-8, wrong
//! types), they return a clear error or a value, never panic, and never repeat secret material.

use keyturn_core::audit::parse_report;
use keyturn_core::{RotationEvent, SecretText, SecretValue};
use proptest::prelude::*;
use serde_json::{json, Value};

/// Arbitrary JSON, nested up to a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        ".{0,40}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(
                prop_oneof![
                    Just("Step".to_string()),
                    Just("SecretId".to_string()),
                    Just("ClientRequestToken".to_string()),
                    Just("AccessKeyId".to_string()),
                    Just("SecretAccessKey".to_string()),
                    Just("accessKey".to_string()),
                    Just("secretkey".to_string()),
                    Just("masterarn".to_string()),
                    ".{0,12}",
                ],
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, .. ProptestConfig::default() })]

    #[test]
    fn the_event_parser_never_panics(v in any_json()) {
        if let Err(e) = RotationEvent::from_json(&v) {
            prop_assert_eq!(e.error_type(), "BadEvent");
        }
    }

    #[test]
    fn the_secret_parser_never_panics_or_leaks(v in any_json(), secret in "[A-Za-z0-9/+]{20,40}") {
        let mut v = v;
        if let Value::Object(m) = &mut v {
            m.insert("SecretAccessKey".into(), Value::String(secret.clone()));
        }
        match SecretValue::parse(&SecretText::new(v.to_string())) {
            Ok(parsed) => {
                let shown = format!("{parsed:?}");
                prop_assert!(!shown.contains(&secret));
            }
            Err(e) => {
                let shown = e.to_string();
                prop_assert!(!shown.contains(&secret));
            }
        }
    }

    #[test]
    fn the_secret_parser_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = SecretValue::parse(&SecretText::new(String::from_utf8_lossy(&bytes).into_owned()));
    }

    #[test]
    fn the_report_parser_takes_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_report(&bytes);
    }

    #[test]
    fn the_report_parser_takes_damaged_reports(cut in 0usize..600, junk in prop::collection::vec(any::<u8>(), 0..64)) {
        let header = "user,arn,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service\n";
        let row = "app1,arn:aws:iam::1:user/app1,true,2026-01-01T00:00:00+00:00,N/A,N/A,N/A,false,N/A,N/A,N/A,N/A\n";
        let mut report = format!("{header}{row}{row}").into_bytes();
        let at = cut.min(report.len());
        report.splice(at..at, junk);
        let _ = parse_report(&report);
    }
}

#[test]
fn deeply_nested_and_huge_values_are_clear_errors() {
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let err = SecretValue::parse(&SecretText::new(deep)).expect_err("too deep for a secret");
    assert_eq!(err.to_string(), "the value is not JSON");
    let huge = json!({"AccessKeyId": "AKIA1", "SecretAccessKey": "s".repeat(1 << 20), "pad": "x".repeat(4 << 20)});
    let v = SecretValue::parse(&SecretText::new(huge.to_string())).expect("large but valid");
    assert_eq!(v.access_key_id(), Some("AKIA1"));
    let event =
        json!({"Step": "createSecret", "SecretId": "s".repeat(1 << 20), "ClientRequestToken": "t"});
    assert!(RotationEvent::from_json(&event).is_err());
    let nested_event: Value =
        serde_json::from_str(&format!("{}1{}", "[".repeat(100), "]".repeat(100))).expect("json");
    assert!(RotationEvent::from_json(&nested_event).is_err());
    assert!(parse_report(&vec![b','; 1 << 20]).is_err());
}
