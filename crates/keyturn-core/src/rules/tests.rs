//! The rule book, table by table, over hand-built states: every rule of SPEC.md that decides
//! whose key it is and which key may go.

use std::collections::BTreeMap;

use time::macros::datetime;
use time::{Duration, OffsetDateTime};

use super::*;
use crate::ports::{Identity, KeyStatus, KeyUse, SecretInfo};
use crate::secret::ShapeError;
use crate::state::{Held, Holding, KeyFacts, SecretState};
use crate::tags::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};

const NOW: OffsetDateTime = datetime!(2026-10-01 12:00 UTC);
const CUTOVER: OffsetDateTime = datetime!(2026-09-01 12:00 UTC);

fn used(at: OffsetDateTime) -> Option<KeyUse> {
    Some(KeyUse {
        last_used: Some(at),
        service: Some("s3".into()),
        region: Some("us-east-1".into()),
    })
}

fn never() -> Option<KeyUse> {
    Some(KeyUse::default())
}

fn key(id: &str, created: OffsetDateTime, last_use: Option<KeyUse>) -> KeyFacts {
    KeyFacts {
        id: id.into(),
        status: KeyStatus::Active,
        created,
        last_use,
    }
}

/// A secret of user app1: AWSCURRENT (v2) holds CUR, AWSPREVIOUS (v1) holds `previous` if any;
/// the cut-over of v2 is recorded at CUTOVER.
fn state(previous: Option<&str>, keys: Vec<KeyFacts>) -> SecretState {
    let mut versions = BTreeMap::from([("v2".to_string(), vec![AWSCURRENT.to_string()])]);
    let mut holdings = vec![Holding {
        version: "v2".into(),
        labels: vec![AWSCURRENT.into()],
        held: Held::Key("CUR".into()),
        created: Some(CUTOVER - Duration::seconds(30)),
    }];
    if let Some(p) = previous {
        versions.insert("v1".into(), vec![AWSPREVIOUS.into()]);
        holdings.push(Holding {
            version: "v1".into(),
            labels: vec![AWSPREVIOUS.into()],
            held: Held::Key(p.into()),
            created: Some(CUTOVER - Duration::days(30)),
        });
    }
    SecretState {
        info: SecretInfo {
            arn: "arn:aws:secretsmanager:us-east-1:123456789012:secret:keyturn/app1-AbCdEf".into(),
            name: "keyturn/app1".into(),
            rotation_enabled: true,
            versions,
            tags: BTreeMap::from([
                (tags::CUTOVER_VERSION.to_string(), "v2".to_string()),
                (tags::CUTOVER_AT.to_string(), crate::error::rfc3339(CUTOVER)),
            ]),
            last_rotated: None,
            next_rotation: None,
            rotation_days: None,
        },
        user: SecretUser {
            name: "app1".into(),
            source: UserSource::Value,
        },
        holdings,
        keys,
        other_secrets: Vec::new(),
        signer: None,
        now: NOW,
        settle: crate::config::DEFAULT_LAST_USED_SETTLE,
        restarts: Vec::new(),
    }
}

/// The state with the cut-over tag set to `at` (as a tagger could).
fn forged_cutover(mut s: SecretState, at: &str) -> SecretState {
    s.info
        .tags
        .insert(tags::CUTOVER_AT.to_string(), at.to_string());
    s
}

/// The state read at `now`.
fn at(mut s: SecretState, now: OffsetDateTime) -> SecretState {
    s.now = now;
    s
}

fn settle(mut s: SecretState, window: Duration) -> SecretState {
    s.settle = window;
    s
}

fn current() -> KeyFacts {
    key("CUR", CUTOVER - Duration::minutes(1), never())
}

type UserCase<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Result<(&'a str, UserSource), &'a str>,
);
type Decision = Result<Option<String>, Vec<crate::error::KeepReason>>;

#[test]
fn the_user_comes_from_the_value_then_the_tag_then_the_default() {
    let cases: [UserCase; 7] = [
        (Some("a"), None, Some("d"), Ok(("a", UserSource::Value))),
        (None, Some("t"), Some("d"), Ok(("t", UserSource::Tag))),
        (None, None, Some("d"), Ok(("d", UserSource::Default))),
        (Some("a"), Some("a"), None, Ok(("a", UserSource::Value))),
        (Some(" "), Some("t"), None, Ok(("t", UserSource::Tag))),
        (Some("a"), Some("b"), None, Err("UserConflict")),
        (None, Some(""), None, Err("NoUserName")),
    ];
    for (value, tag, default, expected) in cases {
        let got = resolve_user("s", value, tag, default);
        match (got, expected) {
            (Ok(u), Ok((name, source))) => assert_eq!((u.name.as_str(), u.source), (name, source)),
            (Err(e), Err(kind)) => assert_eq!(e.error_type(), kind),
            (got, expected) => panic!("{value:?} {tag:?} {default:?}: {got:?} vs {expected:?}"),
        }
    }
}

#[test]
fn managed_means_the_tag_with_the_value_true() {
    let tags = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    assert!(is_managed(&tags(&[("keyturn:managed", "true")])));
    assert!(is_managed(&tags(&[("keyturn:managed", " true ")])));
    for not in [
        tags(&[("keyturn:managed", "false")]),
        tags(&[("keyturn:managed", "TRUE-ish")]),
        tags(&[("keyturn:managed-by", "true")]),
        tags(&[]),
    ] {
        assert!(!is_managed(&not), "{not:?}");
    }
}

#[test]
fn an_identity_is_the_user_only_as_an_iam_user_in_the_account() {
    let id = |arn: &str, account: &str| Identity {
        arn: arn.into(),
        account: account.into(),
    };
    let acct = Some("123456789012");
    let cases = [
        (
            id("arn:aws:iam::123456789012:user/app1", "123456789012"),
            true,
        ),
        (
            id("arn:aws:iam::123456789012:user/ci/app1", "123456789012"),
            true,
        ),
        (
            id("arn:aws:iam::123456789012:user/app10", "123456789012"),
            false,
        ),
        (
            id(
                "arn:aws:sts::123456789012:assumed-role/x/app1",
                "123456789012",
            ),
            false,
        ),
        (
            id("arn:aws:iam::210987654321:user/app1", "210987654321"),
            false,
        ),
        (
            id("arn:aws:iam::123456789012:role/app1", "123456789012"),
            false,
        ),
        (id("garbage/app1", "123456789012"), false),
    ];
    for (identity, ok) in cases {
        assert_eq!(
            identity_is_user(&identity, "app1", acct),
            ok,
            "{}",
            identity.arn
        );
    }
}

#[test]
fn whose_key_one_user_one_secret_and_the_current_key_is_the_users() {
    let ok = state(None, vec![current()]);
    assert!(check_whose_key(&ok).is_ok());
    let mut two = ok.clone();
    two.other_secrets = vec!["other/app1".into()];
    assert_eq!(
        check_whose_key(&two).map_err(|e| e.error_type()),
        Err("UserHasOtherSecret")
    );
    let foreign = state(None, vec![key("MINE", CUTOVER, never())]);
    let err = check_whose_key(&foreign).expect_err("another user's key");
    assert_eq!(err.error_type(), "NotUsersKey");
    assert!(
        err.to_string().contains("CUR") && err.to_string().contains("app1"),
        "{err}"
    );
}

/// What free_slot decides: a deleted key id, or the reasons every candidate was kept.
fn decide(
    s: &SecretState,
    orphans: OrphanPolicy,
) -> Result<Option<String>, Vec<crate::error::KeepReason>> {
    match free_slot(s, orphans) {
        Ok(r) => Ok(r.map(|r| {
            assert_eq!(r.action(), RetireAction::Delete);
            assert_eq!(r.user(), "app1");
            r.key_id().to_string()
        })),
        Err(crate::RotationError::NoRoomForKey { kept, .. }) => {
            Err(kept.iter().map(|k| k.reason).collect())
        }
        Err(e) => panic!("unexpected {e}"),
    }
}

#[test]
fn making_room_deletes_only_an_unused_previous_key_or_an_old_unused_orphan() {
    use crate::error::KeepReason::*;
    let old = CUTOVER - Duration::days(40);
    let young = NOW - Duration::minutes(1);
    let spare = OrphanPolicy::SpareYoungKeys;
    let any = OrphanPolicy::AnyAge;
    let cases: Vec<(&str, SecretState, OrphanPolicy, Decision)> = vec![
        (
            "one key: a free slot",
            state(None, vec![current()]),
            spare,
            Ok(None),
        ),
        (
            "previous never used",
            state(Some("PREV"), vec![key("PREV", old, never()), current()]),
            spare,
            Ok(Some("PREV".into())),
        ),
        (
            "previous used before the cut-over",
            state(
                Some("PREV"),
                vec![
                    key("PREV", old, used(CUTOVER - Duration::hours(1))),
                    current(),
                ],
            ),
            spare,
            Ok(Some("PREV".into())),
        ),
        (
            "previous used when AWSCURRENT's version was created, exactly",
            state(
                Some("PREV"),
                vec![
                    key("PREV", old, used(CUTOVER - Duration::seconds(30))),
                    current(),
                ],
            ),
            spare,
            Ok(Some("PREV".into())),
        ),
        (
            "previous used after the version existed, before the recorded cut-over: the record \
             cannot hide a use",
            state(
                Some("PREV"),
                vec![key("PREV", old, used(CUTOVER)), current()],
            ),
            spare,
            Err(vec![UsedSinceCutover]),
        ),
        (
            "previous used since the cut-over, the record forged to the future",
            forged_cutover(
                state(
                    Some("PREV"),
                    vec![
                        key("PREV", old, used(CUTOVER + Duration::days(1))),
                        current(),
                    ],
                ),
                "2099-01-01T00:00:00Z",
            ),
            spare,
            Err(vec![UsedSinceCutover]),
        ),
        (
            "previous never used, but the cut-over was an hour ago: IAM may not show a use yet",
            at(
                state(Some("PREV"), vec![key("PREV", old, never()), current()]),
                CUTOVER + Duration::hours(1),
            ),
            spare,
            Err(vec![NotSettled {
                until: CUTOVER + Duration::hours(4),
            }]),
        ),
        (
            "the same with the settle window off",
            settle(
                at(
                    state(Some("PREV"), vec![key("PREV", old, never()), current()]),
                    CUTOVER + Duration::hours(1),
                ),
                Duration::ZERO,
            ),
            spare,
            Ok(Some("PREV".into())),
        ),
        (
            "settle window counted from a cut-over record later than the version's creation",
            forged_cutover(
                state(Some("PREV"), vec![key("PREV", old, never()), current()]),
                "2026-10-01T10:00:00Z",
            ),
            spare,
            Err(vec![NotSettled {
                until: datetime!(2026-10-01 14:00 UTC),
            }]),
        ),
        (
            "previous used since the cut-over",
            state(
                Some("PREV"),
                vec![
                    key("PREV", old, used(CUTOVER + Duration::seconds(1))),
                    current(),
                ],
            ),
            spare,
            Err(vec![UsedSinceCutover]),
        ),
        (
            "old orphan, never used",
            state(None, vec![key("ORPH", old, never()), current()]),
            spare,
            Ok(Some("ORPH".into())),
        ),
        (
            "young orphan, a keyturn rotate",
            state(None, vec![key("ORPH", young, never()), current()]),
            spare,
            Err(vec![MaybeAnotherRun {
                until: young + YOUNG_KEY,
            }]),
        ),
        (
            "young orphan, Secrets Manager's retry or --resume",
            state(None, vec![key("ORPH", young, never()), current()]),
            any,
            Ok(Some("ORPH".into())),
        ),
        (
            "unheld but used",
            state(None, vec![key("USED", old, used(NOW)), current()]),
            any,
            Err(vec![UnmanagedAndUsed]),
        ),
        (
            "last use not read",
            state(Some("PREV"), vec![key("PREV", old, None), current()]),
            any,
            Err(vec![UseUnknown]),
        ),
    ];
    for (label, s, orphans, expected) in cases {
        assert_eq!(decide(&s, orphans), expected, "{label}");
    }
}

#[test]
fn making_room_never_takes_a_key_held_by_another_label_the_signer_or_an_unreadable_version() {
    use crate::error::KeepReason::*;
    let old = CUTOVER - Duration::days(40);
    let mut other_label = state(None, vec![key("HELD", old, never()), current()]);
    other_label.holdings.push(Holding {
        version: "v0".into(),
        labels: vec!["BLUE".into()],
        held: Held::Key("HELD".into()),
        created: None,
    });
    assert_eq!(
        decide(&other_label, OrphanPolicy::AnyAge),
        Err(vec![HeldByOtherLabel])
    );
    // A self-rotating user's keyturn calls are signed with its own key: that key is never taken.
    let mut signer = state(Some("PREV"), vec![key("PREV", old, used(NOW)), current()]);
    signer.signer = Some("PREV".into());
    assert_eq!(decide(&signer, OrphanPolicy::AnyAge), Err(vec![Signer]));
    let mut unreadable = state(Some("PREV"), vec![key("PREV", old, never()), current()]);
    unreadable.holdings[1].held = Held::Unreadable(ShapeError::NotJson);
    assert_eq!(
        free_slot(&unreadable, OrphanPolicy::AnyAge).map_err(|e| e.error_type()),
        Err("BadSecretValue")
    );
}

#[test]
fn a_failed_store_deletes_the_key_only_when_surely_unstored() {
    assert_eq!(
        after_failed_store("app1", "NEW", &StoreCheck::Holds),
        AfterFailedStore::Stored
    );
    assert_eq!(
        after_failed_store("app1", "NEW", &StoreCheck::Unknown("reset".into())),
        AfterFailedStore::Keep
    );
    match after_failed_store("app1", "NEW", &StoreCheck::DoesNotHold) {
        AfterFailedStore::Retire(r) => {
            assert_eq!(
                (r.user(), r.key_id(), r.action()),
                ("app1", "NEW", RetireAction::Delete)
            );
            assert_eq!(r.reason(), &RetireReason::NotStored);
        }
        other => panic!("{other:?}"),
    }
}

fn pending(mut s: SecretState, key_id: &str) -> SecretState {
    s.info
        .versions
        .insert("tok".into(), vec![AWSPENDING.into()]);
    s.holdings.push(Holding {
        version: "tok".into(),
        labels: vec![AWSPENDING.into()],
        held: Held::Key(key_id.into()),
        created: None,
    });
    s
}

#[test]
fn cancel_deletes_only_the_unused_key_of_the_secrets_own_user_held_by_awspending_alone() {
    let fresh = NOW - Duration::minutes(2);
    let ok = settle(
        pending(
            state(None, vec![current(), key("NEW", fresh, never())]),
            "NEW",
        ),
        Duration::ZERO,
    );
    assert!(matches!(cancel_plan(&ok, "tok"), CancelPlan::Retire(r) if r.key_id() == "NEW"));
    // Within the settle window a use of the new key (testSecret's: a finishSecret may be under
    // way) may not show yet: kept, for the next rotation to free.
    let unsettled = settle(ok.clone(), Duration::hours(4));
    assert!(
        matches!(cancel_plan(&unsettled, "tok"), CancelPlan::Keep { why, .. } if why.contains("may not show"))
    );
    let settled = at(unsettled, fresh + Duration::hours(4));
    assert!(matches!(
        cancel_plan(&settled, "tok"),
        CancelPlan::Retire(_)
    ));
    let used_key = pending(
        state(None, vec![current(), key("NEW", fresh, used(NOW))]),
        "NEW",
    );
    assert!(matches!(
        cancel_plan(&used_key, "tok"),
        CancelPlan::Keep { .. }
    ));
    let foreign = pending(state(None, vec![current()]), "OTHERS");
    assert!(
        matches!(cancel_plan(&foreign, "tok"), CancelPlan::Keep { why, .. } if why.contains("not one of user app1"))
    );
    let current_too = pending(state(None, vec![current()]), "CUR");
    assert!(
        matches!(cancel_plan(&current_too, "tok"), CancelPlan::Keep { why, .. } if why.contains("AWSCURRENT"))
    );
    let mut no_key = state(None, vec![current()]);
    no_key.holdings.push(Holding {
        version: "tok".into(),
        labels: vec![AWSPENDING.into()],
        held: Held::NoValue,
        created: None,
    });
    assert_eq!(cancel_plan(&no_key, "tok"), CancelPlan::NoKey);
}

fn inactive(mut k: KeyFacts) -> KeyFacts {
    k.status = KeyStatus::Inactive;
    k
}

#[test]
fn the_sweep_retires_the_previous_key_only_while_the_current_key_works() {
    let policy = SweepPolicy::default();
    let old = CUTOVER - Duration::days(40);
    let kind = |d: SweepDecision| match d {
        SweepDecision::Nothing(_) => "nothing".to_string(),
        SweepDecision::DropLabel { .. } => "drop-label".into(),
        SweepDecision::Waiting { inactive, .. } => {
            format!("waiting{}", if inactive { "-inactive" } else { "" })
        }
        SweepDecision::RecordDeactivation { .. } => "record".into(),
        SweepDecision::InUse { fail, .. } => format!("in-use{}", if fail { "-fail" } else { "" }),
        SweepDecision::AwaitingSwitch { .. } => "awaiting-switch".into(),
        SweepDecision::Blocked { .. } => "blocked".into(),
        SweepDecision::Retire(r) => r.action().as_str().to_string(),
    };
    let with_tags = |mut s: SecretState, tags: &[(&str, String)]| {
        for (k, v) in tags {
            s.info.tags.insert(k.to_string(), v.clone());
        }
        s
    };
    let deactivated = |at: OffsetDateTime| {
        [
            (tags::DEACTIVATED_KEY, "PREV".to_string()),
            (tags::DEACTIVATED_AT, crate::error::rfc3339(at)),
        ]
    };
    let cases: Vec<(&str, SecretState, &str)> = vec![
        ("no previous", state(None, vec![current()]), "nothing"),
        (
            "previous is current",
            state(Some("CUR"), vec![current()]),
            "nothing",
        ),
        (
            "previous already deleted",
            state(Some("PREV"), vec![current()]),
            "drop-label",
        ),
        (
            "current key missing",
            state(Some("PREV"), vec![key("PREV", old, never())]),
            "blocked",
        ),
        (
            "current key inactive",
            state(
                Some("PREV"),
                vec![key("PREV", old, never()), inactive(current())],
            ),
            "blocked",
        ),
        (
            "used since the cut-over",
            state(Some("PREV"), vec![key("PREV", old, used(NOW)), current()]),
            "in-use",
        ),
        (
            "unused, grace over",
            state(Some("PREV"), vec![key("PREV", old, never()), current()]),
            "deactivate",
        ),
        (
            "another secret is tagged for the user (a forged history)",
            {
                let mut s = state(Some("PREV"), vec![key("PREV", old, never()), current()]);
                s.other_secrets = vec!["keyturn/app1-real".into()];
                s
            },
            "blocked",
        ),
        (
            "inactive, no record",
            state(
                Some("PREV"),
                vec![inactive(key("PREV", old, never())), current()],
            ),
            "record",
        ),
        (
            "inactive, recorded recently",
            with_tags(
                state(
                    Some("PREV"),
                    vec![inactive(key("PREV", old, never())), current()],
                ),
                &deactivated(NOW - Duration::days(2)),
            ),
            "waiting-inactive",
        ),
        (
            "inactive long enough",
            with_tags(
                state(
                    Some("PREV"),
                    vec![inactive(key("PREV", old, never())), current()],
                ),
                &deactivated(NOW - Duration::days(8)),
            ),
            "delete",
        ),
        (
            "stale record: used after it",
            with_tags(
                state(
                    Some("PREV"),
                    vec![
                        inactive(key("PREV", old, used(NOW - Duration::days(1)))),
                        current(),
                    ],
                ),
                &deactivated(NOW - Duration::days(8)),
            ),
            "record",
        ),
        (
            "forged record: deactivated before the grace period ended (moved into the past)",
            with_tags(
                state(
                    Some("PREV"),
                    vec![inactive(key("PREV", old, never())), current()],
                ),
                &deactivated(CUTOVER + Duration::days(1)),
            ),
            "record",
        ),
        (
            "deactivation record not a time",
            with_tags(
                state(
                    Some("PREV"),
                    vec![inactive(key("PREV", old, never())), current()],
                ),
                &[
                    (tags::DEACTIVATED_KEY, "PREV".to_string()),
                    (tags::DEACTIVATED_AT, "yesterday".to_string()),
                ],
            ),
            "record",
        ),
        (
            "forged cut-over in the future: a use since the version existed still counts",
            forged_cutover(
                state(
                    Some("PREV"),
                    vec![
                        key("PREV", old, used(CUTOVER + Duration::days(1))),
                        current(),
                    ],
                ),
                "2099-01-01T00:00:00Z",
            ),
            "in-use",
        ),
        (
            "forged cut-over in the future, previous unused: the grace counts from now",
            forged_cutover(
                state(Some("PREV"), vec![key("PREV", old, never()), current()]),
                "2099-01-01T00:00:00Z",
            ),
            "waiting",
        ),
        (
            "forged cut-over before the version existed: the grace counts from its creation",
            at(
                forged_cutover(
                    state(Some("PREV"), vec![key("PREV", old, never()), current()]),
                    "2020-01-01T00:00:00Z",
                ),
                CUTOVER + Duration::days(3),
            ),
            "waiting",
        ),
        (
            "grace period 0, cut-over an hour ago: the last use has not settled",
            at(
                state(Some("PREV"), vec![key("PREV", old, never()), current()]),
                CUTOVER + Duration::hours(1),
            ),
            "waiting-zero-grace",
        ),
    ];
    let no_grace = SweepPolicy {
        grace: Duration::ZERO,
        ..policy
    };
    for (label, s, expected) in cases {
        match expected.strip_suffix("-zero-grace") {
            Some(expected) => {
                assert_eq!(kind(sweep_plan(&s, &no_grace)), expected, "{label}");
                assert!(
                    matches!(sweep_plan(&s, &no_grace), SweepDecision::Waiting { settling: true, until, .. } if until == CUTOVER + Duration::hours(4)),
                    "{label}: waits for the settle window"
                );
                let off = settle(s, Duration::ZERO);
                assert_eq!(
                    kind(sweep_plan(&off, &no_grace)),
                    "deactivate",
                    "{label}, window off"
                );
            }
            None => assert_eq!(kind(sweep_plan(&s, &policy)), expected, "{label}"),
        }
    }
    // Within the grace period: waiting.
    let mut recent = state(Some("PREV"), vec![key("PREV", old, never()), current()]);
    recent.now = CUTOVER + Duration::days(3);
    assert_eq!(kind(sweep_plan(&recent, &policy)), "waiting");
    // The signer is never retired.
    let mut signer = state(Some("PREV"), vec![key("PREV", old, never()), current()]);
    signer.signer = Some("PREV".into());
    assert_eq!(kind(sweep_plan(&signer, &policy)), "blocked");
    // The in-use policy makes the report a failure.
    let strict = SweepPolicy {
        in_use: InUsePolicy::Fail,
        ..policy
    };
    let in_use = state(Some("PREV"), vec![key("PREV", old, used(NOW)), current()]);
    assert_eq!(kind(sweep_plan(&in_use, &strict)), "in-use-fail");
    // Tags override the policy per secret.
    let tagged = with_tags(
        state(Some("PREV"), vec![key("PREV", old, never()), current()]),
        &[(tags::GRACE_DAYS, "60".into())],
    );
    let per_secret = policy.for_secret(&tagged.info).expect("valid tag");
    assert_eq!(kind(sweep_plan(&tagged, &per_secret)), "waiting");
    let bad = with_tags(
        state(None, vec![current()]),
        &[(tags::GRACE_DAYS, "soon".into())],
    );
    assert_eq!(
        policy.for_secret(&bad.info).map_err(|e| e.error_type()),
        Err("BadPolicy")
    );
}

#[test]
fn require_switch_keeps_the_previous_key_until_the_current_key_is_used_since_the_cut_over() {
    let old = CUTOVER - Duration::days(40);
    let required = SweepPolicy {
        require_switch: true,
        ..SweepPolicy::default()
    };
    let plan = |current_use: Option<KeyUse>, policy: &SweepPolicy| {
        let mut cur = current();
        cur.last_use = current_use;
        sweep_plan(
            &state(Some("PREV"), vec![key("PREV", old, never()), cur]),
            policy,
        )
    };
    // Never used, used only before the cut-over, or use unknown: no evidence of the switch.
    for no_evidence in [never(), used(CUTOVER - Duration::hours(1)), None] {
        assert!(
            matches!(plan(no_evidence.clone(), &required), SweepDecision::AwaitingSwitch { ref key_id, ref current, .. } if key_id == "PREV" && current == "CUR"),
            "{no_evidence:?}"
        );
        // Without the requirement, the grace period alone decides.
        assert!(matches!(
            plan(no_evidence, &SweepPolicy::default()),
            SweepDecision::Retire(_)
        ));
    }
    assert!(matches!(
        plan(used(CUTOVER + Duration::days(1)), &required),
        SweepDecision::Retire(r) if r.action() == RetireAction::Deactivate
    ));
    // Within the grace period it waits as before; a previous key in use is still in use.
    let mut recent = state(Some("PREV"), vec![key("PREV", old, never()), current()]);
    recent.now = CUTOVER + Duration::days(3);
    assert!(matches!(
        sweep_plan(&recent, &required),
        SweepDecision::Waiting { .. }
    ));
    let in_use = state(Some("PREV"), vec![key("PREV", old, used(NOW)), current()]);
    assert!(matches!(
        sweep_plan(&in_use, &required),
        SweepDecision::InUse { .. }
    ));

    // The tag is a floor: it turns the requirement on, never off; anything else is refused.
    let tagged = |v: &str| {
        let mut s = state(Some("PREV"), vec![current()]);
        s.info.tags.insert(tags::REQUIRE_SWITCH.into(), v.into());
        s.info
    };
    let default = SweepPolicy::default();
    assert!(
        default
            .for_secret(&tagged("true"))
            .expect("valid")
            .require_switch
    );
    assert!(
        !default
            .for_secret(&tagged("false"))
            .expect("valid")
            .require_switch
    );
    assert!(
        required
            .for_secret(&tagged("false"))
            .expect("valid")
            .require_switch
    );
    assert_eq!(
        default
            .for_secret(&tagged("yes please"))
            .map_err(|e| e.error_type()),
        Err("BadPolicy")
    );
}

#[test]
fn status_problems_name_an_inactive_current_key_and_an_unreadable_value() {
    let off = state(None, vec![inactive(current())]);
    assert!(problems(&off)
        .iter()
        .any(|p| p.contains("AWSCURRENT's key CUR is inactive")));
    let mut broken = state(None, vec![current()]);
    broken.holdings[0].held = Held::Unreadable(ShapeError::NotJson);
    assert!(problems(&broken)
        .iter()
        .any(|p| p.contains("cannot be read")));
    assert!(problems(&state(None, vec![current()])).is_empty());
}

#[test]
fn due_counts_the_period_from_the_latest_record() {
    let day0 = datetime!(2026-01-01 0:00 UTC);
    let info = |tags: &[(&str, String)], next: Option<OffsetDateTime>| SecretInfo {
        arn: "arn:aws:secretsmanager:us-east-1:1:secret:s".into(),
        name: "s".into(),
        rotation_enabled: false,
        versions: BTreeMap::from([("v1".to_string(), vec![AWSCURRENT.to_string()])]),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        last_rotated: None,
        next_rotation: next,
        rotation_days: None,
    };
    let at = |d: i64| day0 + Duration::days(d);
    let rfc = crate::error::rfc3339;
    assert!(is_due(&info(&[], None), day0, 30), "never rotated");
    let enrolled = info(&[(tags::ENROLLED_AT, rfc(day0))], None);
    assert!(!is_due(&enrolled, at(29), 30));
    assert!(is_due(&enrolled, at(30), 30));
    let rotated = info(
        &[
            (tags::ENROLLED_AT, rfc(day0)),
            (tags::CUTOVER_VERSION, "v1".into()),
            (tags::CUTOVER_AT, rfc(at(20))),
        ],
        None,
    );
    assert!(!is_due(&rotated, at(40), 30), "counted from the cut-over");
    let stale = info(
        &[
            (tags::ENROLLED_AT, rfc(day0)),
            (tags::CUTOVER_VERSION, "v0".into()),
            (tags::CUTOVER_AT, rfc(at(20))),
        ],
        None,
    );
    assert!(
        is_due(&stale, at(40), 30),
        "a cut-over of another version does not count"
    );
    let short = info(
        &[
            (tags::ENROLLED_AT, rfc(day0)),
            (tags::ROTATION_DAYS, " 7 ".into()),
        ],
        None,
    );
    assert!(is_due(&short, at(7), 30), "the tag is trimmed");
    assert_eq!(
        rotation_days(&info(&[(tags::ROTATION_DAYS, "0".into())], None), 30),
        30,
        "out of range: the default"
    );
    assert!(
        !is_due(&info(&[], Some(at(5))), at(4), 30),
        "Secrets Manager's date wins"
    );
    assert!(is_due(&info(&[], Some(at(5))), at(5), 30));
}

#[test]
fn used_since_is_strict_and_cautious() {
    let t = OffsetDateTime::UNIX_EPOCH;
    let u = |s| KeyUse {
        last_used: Some(t + Duration::seconds(s)),
        ..KeyUse::default()
    };
    assert!(!used_since(&KeyUse::default(), Some(t), None));
    assert!(!used_since(&u(0), Some(t), None));
    assert!(used_since(&u(1), Some(t), None));
    assert!(used_since(&u(0), None, None));
    // A master key's IAM calls by a keyturn run that read it just before its cut-over are
    // keyturn's own; any other service, or IAM later, is a consumer.
    let by = |s: i64, service: &str| KeyUse {
        last_used: Some(t + Duration::seconds(s)),
        service: Some(service.into()),
        region: None,
    };
    assert!(!used_since(&by(30, "iam"), Some(t), None));
    assert!(used_since(&by(30, "s3"), Some(t), None));
    assert!(used_since(&by(16 * 60, "iam"), Some(t), None));
    // After a rollback: testSecret's STS call with the key rolled back from, within minutes of
    // its version's creation, is keyturn's.
    let stored = t - Duration::minutes(2);
    assert!(!used_since(&by(30, "sts"), Some(t), Some(stored)));
    assert!(used_since(
        &by(30, "sts"),
        Some(t),
        Some(t - Duration::hours(1))
    ));
    assert!(used_since(&by(30, "s3"), Some(t), Some(stored)));
    assert!(used_since(&by(30, "sts"), Some(t), None));
}

#[test]
fn keys_an_unanswered_create_made_are_the_new_unused_ones_only() {
    let fresh = NOW - Duration::seconds(2);
    let before = vec!["A".to_string()];
    let after = vec![
        key("A", NOW - Duration::days(3), never()),
        key("B", fresh, never()),
        key("C", fresh, used(NOW)),
        key("D", fresh, None),
    ];
    let gone: Vec<String> = unanswered_creates("app1", &before, &after)
        .iter()
        .map(|r| r.key_id().to_string())
        .collect();
    assert_eq!(
        gone,
        ["B"],
        "not the key listed before, a used one, or one whose use is unknown"
    );
}

fn recorded_info(versions: &[(&str, &str)], tags: &[(&str, &str)]) -> SecretInfo {
    SecretInfo {
        arn: "arn:aws:secretsmanager:us-east-1:1:secret:keyturn/app1".into(),
        name: "keyturn/app1".into(),
        rotation_enabled: true,
        versions: versions
            .iter()
            .map(|(v, l)| (v.to_string(), vec![l.to_string()]))
            .collect(),
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        last_rotated: None,
        next_rotation: None,
        rotation_days: None,
    }
}

fn user_keys(ids: &[&str]) -> Vec<crate::ports::KeyInfo> {
    ids.iter()
        .map(|id| crate::ports::KeyInfo {
            id: id.to_string(),
            status: KeyStatus::Active,
            created: datetime!(2026-01-01 0:00 UTC),
        })
        .collect()
}

#[test]
fn recorded_key_ids_count_only_when_they_are_the_users_and_belong_to_the_current_cutover() {
    let rotated = [("v1", AWSPREVIOUS), ("v2", AWSCURRENT)];
    let record = [
        (tags::CUTOVER_VERSION, "v2"),
        (tags::CURRENT_KEY, "AKIANEW"),
        (tags::PREVIOUS_KEY, "AKIAOLD"),
    ];
    let keys = user_keys(&["AKIAOLD", "AKIANEW"]);
    assert_eq!(
        recorded_keys(&recorded_info(&rotated, &record), &keys),
        Some(RecordedKeys {
            current: "AKIANEW".into(),
            previous: Some("AKIAOLD".into())
        })
    );
    // A forged id (another user's key, or none of anyone's) is not taken.
    let forged = [
        (tags::CUTOVER_VERSION, "v2"),
        (tags::CURRENT_KEY, "AKIAOTHERUSER"),
        (tags::PREVIOUS_KEY, "AKIAOLD"),
    ];
    assert_eq!(
        recorded_keys(&recorded_info(&rotated, &forged), &keys),
        None
    );
    let forged_previous = [
        (tags::CUTOVER_VERSION, "v2"),
        (tags::CURRENT_KEY, "AKIANEW"),
        (tags::PREVIOUS_KEY, "AKIANEW"),
    ];
    assert_eq!(
        recorded_keys(&recorded_info(&rotated, &forged_previous), &keys),
        None,
        "AWSPREVIOUS recorded as AWSCURRENT's key"
    );
    // A record of an earlier cut-over (AWSCURRENT moved since, by hand): read the values.
    let moved = [("v2", AWSPREVIOUS), ("v3", AWSCURRENT)];
    assert_eq!(recorded_keys(&recorded_info(&moved, &record), &keys), None);
    // AWSPREVIOUS on a version but no record of its key (the first keyturn rotation of a
    // hand-made secret): read the values.
    let first = [
        (tags::CUTOVER_VERSION, "v2"),
        (tags::CURRENT_KEY, "AKIANEW"),
    ];
    assert_eq!(recorded_keys(&recorded_info(&rotated, &first), &keys), None);
    // Enrolled, never rotated: enroll's record of AWSCURRENT's key alone.
    let enrolled = recorded_info(&[("v1", AWSCURRENT)], &[(tags::CURRENT_KEY, "AKIAOLD")]);
    assert_eq!(
        recorded_keys(&enrolled, &keys),
        Some(RecordedKeys {
            current: "AKIAOLD".into(),
            previous: None
        })
    );
    assert_eq!(
        recorded_keys(&enrolled, &user_keys(&["AKIANEW"])),
        None,
        "key gone"
    );
}

#[test]
fn finish_records_the_last_cutovers_key_as_the_previous_one_once() {
    let info = recorded_info(
        &[("v1", AWSCURRENT), ("v2", AWSPENDING)],
        &[
            (tags::CUTOVER_VERSION, "v1"),
            (tags::CURRENT_KEY, "AKIAOLD"),
        ],
    );
    assert_eq!(
        previous_key_to_record(&info, "v2", "AKIANEW").as_deref(),
        Some("AKIAOLD")
    );
    // A retry of the same cut-over: the record already says AWSCURRENT is the new key.
    let retried = recorded_info(
        &[("v1", AWSCURRENT), ("v2", AWSPENDING)],
        &[
            (tags::CUTOVER_VERSION, "v2"),
            (tags::CURRENT_KEY, "AKIANEW"),
        ],
    );
    assert_eq!(previous_key_to_record(&retried, "v2", "AKIANEW"), None);
    let hand_made = recorded_info(&[("v1", AWSCURRENT), ("v2", AWSPENDING)], &[]);
    assert_eq!(previous_key_to_record(&hand_made, "v2", "AKIANEW"), None);
}

#[test]
fn after_a_rollback_the_test_call_of_the_key_rolled_back_from_is_keyturns_own() {
    // AWSCURRENT back on v2 (made at CUTOVER - 30 s); AWSPREVIOUS on v1, made later by the
    // rotation rolled back, whose testSecret called STS with PREV a minute after.
    let made = CUTOVER + Duration::days(1);
    let tested = KeyUse {
        last_used: Some(made + Duration::minutes(1)),
        service: Some("sts".into()),
        region: None,
    };
    let mut s = state(
        Some("PREV"),
        vec![
            key("PREV", made - Duration::seconds(1), Some(tested.clone())),
            current(),
        ],
    );
    s.holdings[1].created = Some(made);
    assert_eq!(policy::own_test_from(&s, "PREV"), Some(made));
    assert!(!matches!(
        sweep_plan(&s, &SweepPolicy::default()),
        SweepDecision::InUse { .. }
    ));
    // A consumer's call, or an STS call later, still counts.
    let mut later = s.clone();
    later.keys[0].last_use = Some(KeyUse {
        last_used: Some(made + Duration::minutes(30)),
        ..tested.clone()
    });
    assert!(matches!(
        sweep_plan(&later, &SweepPolicy::default()),
        SweepDecision::InUse { .. }
    ));
    // In a rotation's usual order (AWSPREVIOUS older than AWSCURRENT) nothing is excluded.
    let mut usual = s.clone();
    usual.holdings[1].created = Some(CUTOVER - Duration::days(30));
    assert_eq!(policy::own_test_from(&usual, "PREV"), None);
}
