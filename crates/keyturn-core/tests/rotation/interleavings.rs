//! keyturn's own runs overlapping, against the model, interleaved call by call.
//!
//! Each case is a program of rounds. A round starts up to four runs at once (the CLI's rotate,
//! resume, cancel, sweep, rollback and deliver; the function driven by Secrets Manager; consumers
//! of the secret and of its SSM sink, and long-running ones that keep the key they read; an
//! attacker who may write tags and the values and labels of a decoy secret), with a fault at a
//! random call or a crash of the run that makes it, and a scheduler that picks which run makes
//! its next call from a generated schedule. IAM's last-used record lags, its lists lag, new keys
//! take a second to authenticate. Between rounds time passes (up to three hours; the grace and
//! delete-after periods are an hour, the settle window half an hour, the last-used lag ten
//! minutes). After every round, at rest:
//!
//! 1. every secret's AWSCURRENT holds a key that exists and is active;
//! 2. no key of one secret's user was deleted, deactivated or reactivated by a run aimed at
//!    another secret;
//! 3. no key was retired after a consumer used it once it was no longer AWSCURRENT (or, for a key
//!    never AWSCURRENT, at all), where IAM already showed that use (it happened more than the lag
//!    before the retirement);
//! 4. the SSM sink holds a key that exists.
//!
//! Seeded (`RngSeed::Fixed`), so a failure reproduces; proptest shrinks it to a short program.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use keyturn_core::fake::{Event, Fault, World};
use keyturn_core::ports::{ApiError, SecretStore, AWSCURRENT, AWSPREVIOUS};
use keyturn_core::rotation::{LocalMode, LocalRequest};
use keyturn_core::rules::{SinkPolicy, SweepPolicy};
use keyturn_core::{tags, Backoff, RotationSettings, SecretText, SecretValue, Step};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use time::OffsetDateTime;

use super::{canonical, event, rotator_with, FakeRotator};

/// The two managed secrets and the decoy (an attacker's secret, of user carol).
const SECRETS: [&str; 3] = ["keyturn/alice", "keyturn/bob", "keyturn/decoy"];
const USERS: [&str; 3] = ["alice", "bob", "carol"];
const SINK: &str = "/keyturn/alice";
const LAST_USED_LAG: Duration = Duration::from_secs(600);
const MINUTE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, Copy)]
enum Forgery {
    CutoverFuture,
    CutoverPast,
    CutoverNow,
    /// Just past the grace period and the settle window: the forgery that pays if believed.
    CutoverHourAgo,
    DeactivatedPast,
    UserIsCarol,
    DecoyNamesUser,
    DecoyPendingHoldsCurrent,
    DecoyPreviousHoldsPrevious,
    CurrentKeyIsCarols,
}

#[derive(Debug, Clone, Copy)]
enum Op {
    Rotate(usize),
    Resume(usize),
    Cancel(usize),
    Sweep(usize),
    Rollback(usize),
    Deliver(usize),
    /// Secrets Manager: RotateSecret (or a retry of the rotation in flight), then the steps.
    Function(usize),
    Consumer(usize),
    /// A long-running consumer: keeps using the key it read last from AWSCURRENT.
    Straggler(usize),
    SinkConsumer,
    Attack(usize, Forgery),
}

impl Op {
    /// The secret a run of keyturn is aimed at (consumers and the attacker are not keyturn).
    fn keyturn_target(self) -> Option<usize> {
        match self {
            Op::Rotate(i)
            | Op::Resume(i)
            | Op::Cancel(i)
            | Op::Sweep(i)
            | Op::Rollback(i)
            | Op::Deliver(i)
            | Op::Function(i) => Some(i),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Round {
    ops: Vec<Op>,
    /// A fault at this call of the round (1-based): `true` a crash after it, `false` a failure.
    fault: Option<(usize, bool)>,
    /// Minutes that pass after the round.
    advance: u32,
}

fn secret_index() -> impl Strategy<Value = usize> {
    prop_oneof![3 => Just(0usize), 3 => Just(1usize), 2 => Just(2usize)]
}

fn forgery() -> impl Strategy<Value = Forgery> {
    prop_oneof![
        Just(Forgery::CutoverFuture),
        Just(Forgery::CutoverHourAgo),
        Just(Forgery::CutoverHourAgo),
        Just(Forgery::CutoverPast),
        Just(Forgery::CutoverNow),
        Just(Forgery::DeactivatedPast),
        Just(Forgery::UserIsCarol),
        Just(Forgery::DecoyNamesUser),
        Just(Forgery::DecoyPendingHoldsCurrent),
        Just(Forgery::DecoyPreviousHoldsPrevious),
        Just(Forgery::CurrentKeyIsCarols),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => secret_index().prop_map(Op::Rotate),
        1 => secret_index().prop_map(Op::Resume),
        2 => secret_index().prop_map(Op::Cancel),
        3 => secret_index().prop_map(Op::Sweep),
        2 => secret_index().prop_map(Op::Rollback),
        1 => secret_index().prop_map(Op::Deliver),
        3 => secret_index().prop_map(Op::Function),
        2 => (0..2usize).prop_map(Op::Consumer),
        2 => (0..2usize).prop_map(Op::Straggler),
        1 => Just(Op::SinkConsumer),
        3 => ((0..2usize), forgery()).prop_map(|(i, f)| Op::Attack(i, f)),
    ]
}

fn round() -> impl Strategy<Value = Round> {
    (
        prop::collection::vec(op(), 1..=4),
        prop::option::weighted(0.3, ((1usize..40), any::<bool>())),
        prop_oneof![Just(0u32), 1u32..20, 20u32..180],
    )
        .prop_map(|(ops, fault, advance)| Round {
            ops,
            fault,
            advance,
        })
}

/// One run: its name (`round-index:target-secret`) and its future.
type Run<'a> = (String, Pin<Box<dyn Future<Output = ()> + 'a>>);

/// Polls the runs one call at a time, choosing the next run from `schedule` (cycled).
fn interleave(world: &World, runs: Vec<Run<'_>>, schedule: &[u8]) {
    let mut live = runs;
    let mut cx = Context::from_waker(Waker::noop());
    let mut step = 0usize;
    while !live.is_empty() {
        let pick = schedule
            .get(step % schedule.len().max(1))
            .map_or(0, |b| *b as usize)
            % live.len();
        step += 1;
        world.set_actor(Some(live[pick].0.clone()));
        if let Poll::Ready(()) = live[pick].1.as_mut().poll(&mut cx) {
            drop(live.swap_remove(pick));
        }
        assert!(step < 200_000, "a run never finished");
    }
    world.set_actor(None);
}

struct Bed {
    world: World,
    cli: FakeRotator,
    function: FakeRotator,
    policy: SweepPolicy,
    /// (key id, when) of every consumer use.
    uses: RefCell<Vec<(String, OffsetDateTime)>>,
    tokens: RefCell<u64>,
    /// Each secret's key before any run.
    initial: [String; 3],
    /// What each secret's long-running consumer read once and keeps using.
    cached: [RefCell<Option<String>>; 2],
    /// How each run ended, counted over every case.
    outcomes: RefCell<std::collections::BTreeMap<String, u32>>,
}

/// The hand-made shape `{"accessKey", "secretKey"}`: no user in the value.
fn hand_made(key: &keyturn_core::AccessKey) -> String {
    format!(
        r#"{{"accessKey":"{}","secretKey":"{}"}}"#,
        key.id,
        key.secret.expose()
    )
}

fn settings(require_rotation_enabled: bool) -> RotationSettings {
    RotationSettings {
        require_rotation_enabled,
        test_backoff: Backoff {
            attempts: 4,
            initial: Duration::from_secs(1),
            max: Duration::from_secs(2),
        },
        sinks: SinkPolicy {
            ssm_prefix: Some("/keyturn/".into()),
            ..SinkPolicy::default()
        },
        last_used_settle: time::Duration::minutes(30),
        ..RotationSettings::default()
    }
}

impl Bed {
    fn new() -> Self {
        let world = World::new();
        for user in USERS {
            world.add_user(user);
        }
        let alice = world.create_key("alice");
        world.add_secret(
            SECRETS[0],
            &canonical("alice", &alice),
            &[
                (tags::MANAGED, "true"),
                (tags::USER, "alice"),
                ("keyturn:sink:app", "ssm:/keyturn/alice"),
            ],
        );
        // bob's secret has the hand-made shape: the user comes from the tag.
        let bob = world.create_key("bob");
        world.add_secret(
            SECRETS[1],
            &hand_made(&bob),
            &[(tags::MANAGED, "true"), (tags::USER, "bob")],
        );
        // The decoy is the attacker's own secret, in the hand-made shape: its user comes from its
        // tag, which the attacker may point at a victim.
        let carol = world.create_key("carol");
        world.add_secret(SECRETS[2], &hand_made(&carol), &[(tags::USER, "carol")]);
        let initial = [alice.id.clone(), bob.id.clone(), carol.id.clone()];
        world.set_interleave(true);
        world.set_last_used_lag(LAST_USED_LAG);
        world.set_list_lag(Duration::from_secs(2));
        world.set_propagation_delay(Duration::from_secs(1));
        Bed {
            cli: rotator_with(&world, settings(false)),
            function: rotator_with(&world, settings(true)),
            world,
            policy: SweepPolicy {
                grace: time::Duration::hours(1),
                delete_after: time::Duration::hours(1),
                ..SweepPolicy::default()
            },
            uses: RefCell::new(Vec::new()),
            tokens: RefCell::new(0),
            initial,
            outcomes: RefCell::new(Default::default()),
            cached: Default::default(),
        }
    }

    fn token(&self) -> String {
        let mut n = self.tokens.borrow_mut();
        *n += 1;
        format!("{:08x}-5555-4666-8777-888888888888", *n)
    }

    fn key_in(&self, text: Option<String>) -> Option<keyturn_core::AccessKey> {
        SecretValue::parse(&SecretText::new(text?))
            .ok()?
            .key()
            .cloned()
    }

    /// A consumer: reads a key and, when it works, uses it.
    async fn consume(&self, text: Option<String>) {
        self.world.pause().await;
        if let Some(key) = self.key_in(text) {
            if self.world.authenticates(&key) {
                self.world.use_key(&key.id, "s3");
                self.uses.borrow_mut().push((key.id, self.world.now()));
            }
        }
    }

    async fn attack(&self, i: usize, f: Forgery) {
        self.world.pause().await;
        let secret = SECRETS[i];
        let w = &self.world;
        let previous = self.key_in(w.value_with(secret, AWSPREVIOUS));
        match f {
            Forgery::CutoverFuture => {
                w.tag_secret(secret, &[(tags::CUTOVER_AT, "2099-01-01T00:00:00Z")])
            }
            Forgery::CutoverPast => {
                w.tag_secret(secret, &[(tags::CUTOVER_AT, "2000-01-01T00:00:00Z")])
            }
            Forgery::CutoverNow => {
                let now = keyturn_core::error::rfc3339(w.now());
                w.tag_secret(secret, &[(tags::CUTOVER_AT, &now)]);
            }
            Forgery::CutoverHourAgo => {
                let t = keyturn_core::error::rfc3339(w.now() - time::Duration::minutes(61));
                w.tag_secret(secret, &[(tags::CUTOVER_AT, &t)]);
            }
            Forgery::DeactivatedPast => {
                if let Some(p) = previous {
                    w.tag_secret(
                        secret,
                        &[
                            (tags::DEACTIVATED_KEY, &p.id),
                            (tags::DEACTIVATED_AT, "2000-01-01T00:00:00Z"),
                        ],
                    );
                }
            }
            Forgery::UserIsCarol => w.tag_secret(secret, &[(tags::USER, "carol")]),
            Forgery::DecoyNamesUser => w.tag_secret(
                SECRETS[2],
                &[(tags::USER, USERS[i]), (tags::MANAGED, "true")],
            ),
            Forgery::DecoyPendingHoldsCurrent => {
                w.tag_secret(
                    SECRETS[2],
                    &[(tags::USER, USERS[i]), (tags::MANAGED, "true")],
                );
                // The decoy's owner writes a pending version naming the victim's current key id
                // (public in the keyturn:current-key tag) with a made-up secret.
                if let Some(k) = self.key_in(w.value_with(secret, AWSCURRENT)) {
                    let value = format!(r#"{{"accessKey":"{}","secretKey":"forged"}}"#, k.id);
                    let _ = w
                        .put_pending(SECRETS[2], &self.token(), &SecretText::new(value))
                        .await;
                }
            }
            Forgery::DecoyPreviousHoldsPrevious => {
                w.tag_secret(
                    SECRETS[2],
                    &[(tags::USER, USERS[i]), (tags::MANAGED, "true")],
                );
                // A version naming the victim's previous key, made AWSPREVIOUS of the decoy by
                // moving AWSCURRENT onto it and back.
                if let Some(p) = previous {
                    let token = self.token();
                    let value = format!(r#"{{"accessKey":"{}","secretKey":"forged"}}"#, p.id);
                    let decoy = SECRETS[2];
                    let current = w
                        .labels(decoy)
                        .into_iter()
                        .find(|(_, l)| l.iter().any(|x| x == AWSCURRENT))
                        .map(|(v, _)| v);
                    if let Some(current) = current {
                        if w.put_pending(decoy, &token, &SecretText::new(value))
                            .await
                            .is_ok()
                            && w.move_label(decoy, "AWSPENDING", None, Some(&token))
                                .await
                                .is_ok()
                            && w.move_label(decoy, AWSCURRENT, Some(&token), Some(&current))
                                .await
                                .is_ok()
                        {
                            let _ = w
                                .move_label(decoy, AWSCURRENT, Some(&current), Some(&token))
                                .await;
                        }
                    }
                }
            }
            Forgery::CurrentKeyIsCarols => {
                if let Some(k) = self.key_in(w.value_with(SECRETS[2], AWSCURRENT)) {
                    w.tag_secret(secret, &[(tags::CURRENT_KEY, &k.id)]);
                }
            }
        }
    }

    fn request(&self, mode: LocalMode) -> LocalRequest {
        LocalRequest {
            mode,
            dry_run: false,
            due_days: None,
            new_token: self.token(),
            exemptions: Default::default(),
        }
    }

    /// Secrets Manager's part: retry the rotation in flight, or start one; then the four steps.
    async fn secrets_manager(&self, i: usize) {
        self.world.pause().await;
        let secret = SECRETS[i];
        let in_flight = self
            .world
            .labels(secret)
            .into_iter()
            .find(|(_, l)| {
                l.iter().any(|x| x == "AWSPENDING") && !l.iter().any(|x| x == AWSCURRENT)
            })
            .map(|(v, _)| v);
        let token = in_flight.unwrap_or_else(|| self.world.start_rotation(secret));
        for s in Step::ALL {
            if let Err(e) = self.function.run(&event(s, secret, &token)).await {
                self.count(format!("function failed {} {}", s.as_str(), e.error_type()));
                return;
            }
        }
        self.count("function rotated".into());
    }

    fn count(&self, what: String) {
        *self.outcomes.borrow_mut().entry(what).or_default() += 1;
    }

    fn count_result<T>(
        &self,
        op: &str,
        r: Result<T, keyturn_core::RotationError>,
        ok: impl Fn(&T) -> String,
    ) {
        self.count(match r {
            Ok(v) => format!("{op} {}", ok(&v)),
            Err(e) => format!("{op} failed {}", e.error_type()),
        });
    }

    async fn run(&self, op: Op) {
        let local = |i: usize, mode, name: &'static str| {
            let request = self.request(mode);
            async move {
                let r = self.cli.rotate_local(SECRETS[i], &request).await;
                self.count_result(name, r, |r| r.outcome.as_str().to_string());
            }
        };
        match op {
            Op::Rotate(i) => local(i, LocalMode::Rotate, "rotate").await,
            Op::Resume(i) => local(i, LocalMode::Resume, "resume").await,
            Op::Cancel(i) => local(i, LocalMode::Cancel, "cancel").await,
            Op::Sweep(i) => {
                let r = self.cli.sweep(SECRETS[i], &self.policy, false).await;
                self.count_result("sweep", r, |r| r.outcome.as_str().to_string());
            }
            Op::Rollback(i) => {
                let r = self.cli.rollback(SECRETS[i], false).await;
                self.count_result("rollback", r, |_| "done".into());
            }
            Op::Deliver(i) => {
                let r = self.cli.deliver(SECRETS[i]).await;
                self.count_result("deliver", r, |_| "done".into());
            }
            Op::Function(i) => self.secrets_manager(i).await,
            Op::Consumer(i) => {
                self.world.pause().await;
                self.consume(self.world.value_with(SECRETS[i], AWSCURRENT))
                    .await
            }
            Op::Straggler(i) => {
                self.world.pause().await;
                let cached = self.cached[i].borrow().clone();
                let text = cached.or_else(|| self.world.value_with(SECRETS[i], AWSCURRENT));
                *self.cached[i].borrow_mut() = text.clone();
                self.consume(text).await
            }
            Op::SinkConsumer => {
                self.world.pause().await;
                self.consume(self.world.parameter(SINK).map(|(v, _)| v))
                    .await
            }
            Op::Attack(i, f) => self.attack(i, f).await,
        }
    }

    fn play(&self, rounds: &[Round], schedule: &[u8]) -> Result<(), String> {
        for (n, round) in rounds.iter().enumerate() {
            match round.fault {
                Some((call, true)) => self.world.arm(Fault::CrashAfter { call }),
                Some((call, false)) => self.world.arm(Fault::FailAt {
                    call,
                    error: ApiError::Unavailable("injected".into()),
                }),
                None => {}
            }
            let runs = round
                .ops
                .iter()
                .enumerate()
                .map(|(k, op)| {
                    let name = match op.keyturn_target() {
                        Some(i) => format!("{k}:{i}"),
                        None => format!("{k}:-"),
                    };
                    let fut: Pin<Box<dyn Future<Output = ()> + '_>> = Box::pin(self.run(*op));
                    (name, fut)
                })
                .collect();
            interleave(&self.world, runs, schedule);
            self.count("~ rounds interleaved".into());
            self.world.restart();
            self.check()
                .map_err(|e| format!("after round {n} ({round:?}): {e}"))?;
            self.world.advance(MINUTE * round.advance);
        }
        Ok(())
    }

    fn check(&self) -> Result<(), String> {
        let w = &self.world;
        // 1. AWSCURRENT works.
        for (i, secret) in SECRETS.iter().enumerate().take(2) {
            let key = self
                .key_in(w.value_with(secret, AWSCURRENT))
                .ok_or(format!("{secret}: AWSCURRENT holds no key"))?;
            if !w.key_exists(&key.id)
                || !w
                    .keys_of(USERS[i])
                    .iter()
                    .any(|(k, s)| *k == key.id && s.as_str() == "Active")
            {
                return Err(format!(
                    "{secret}: AWSCURRENT holds {}, which is missing or inactive",
                    key.id
                ));
            }
        }
        let history = w.history();
        for (at_index, e) in history.iter().enumerate() {
            let Event::Key {
                actor: Some(actor),
                user,
                key_id,
                change,
                at,
            } = e
            else {
                continue;
            };
            // 2. Whose key (a reactivation too).
            if let Some(target) = actor
                .split(':')
                .nth(1)
                .and_then(|t| t.parse::<usize>().ok())
            {
                if USERS[target] != user {
                    return Err(format!(
                        "a run aimed at {} touched key {key_id} of user {user} ({change})",
                        SECRETS[target]
                    ));
                }
            }
            if *change == "Active" {
                continue;
            }
            // 3. In use.
            let Some(owner) = USERS.iter().position(|u| u == user) else {
                continue;
            };
            let cut = cut_of(
                &self.initial[owner],
                &history[..at_index],
                SECRETS[owner],
                key_id,
            );
            for (used, when) in self.uses.borrow().iter() {
                if used != key_id || *when + LAST_USED_LAG > *at {
                    continue;
                }
                let in_use = match cut {
                    Some(Some(c)) => *when > c,
                    // Still AWSCURRENT: point 1 judges that.
                    Some(None) => false,
                    // Never AWSCURRENT (a pending key a sink handed out): any use.
                    None => true,
                };
                if in_use {
                    return Err(format!(
                        "key {key_id} of {user} was {change} at {at} after a consumer used it at {when} (AWSCURRENT moved off it at {cut:?})"
                    ));
                }
            }
        }
        // 4. The sink.
        if let Some(key) = self.key_in(w.parameter(SINK).map(|(v, _)| v)) {
            if !w.key_exists(&key.id) {
                return Err(format!("the SSM sink holds {}, which was deleted", key.id));
            }
        }
        Ok(())
    }
}

/// When `key` stopped being AWSCURRENT of `secret`, by the label moves in `history` from the
/// secret's first key `initial`: `Some(Some(t))` at `t`; `Some(None)` it still is; `None` never was.
fn cut_of(
    initial: &str,
    history: &[Event],
    secret: &str,
    key: &str,
) -> Option<Option<OffsetDateTime>> {
    let mut current = Some(initial.to_string());
    let mut cut = (initial == key).then_some(None);
    for e in history {
        let Event::Current {
            secret: s,
            key_id: k,
            at,
        } = e
        else {
            continue;
        };
        if s != secret {
            continue;
        }
        if current.as_deref() == Some(key) && k.as_deref() != Some(key) {
            cut = Some(Some(*at));
        }
        if k.as_deref() == Some(key) {
            cut = Some(None);
        }
        current = k.clone();
    }
    cut
}

/// How many programs the test plays (each up to 8 rounds of up to 4 overlapping runs).
const CASES: u32 = 10000;

#[test]
fn overlapping_runs_never_break_a_key_in_use() {
    let mut runner = TestRunner::new(Config {
        cases: CASES,
        rng_seed: RngSeed::Fixed(0x6b65_7974_7572_6e00),
        failure_persistence: None,
        ..Config::default()
    });
    let totals = RefCell::new(std::collections::BTreeMap::<String, u32>::new());
    let strategy = (
        prop::collection::vec(round(), 1..=8),
        prop::collection::vec(any::<u8>(), 1..64),
    );
    let result = runner.run(&strategy, |(rounds, schedule)| {
        let bed = Bed::new();
        let result = bed.play(&rounds, &schedule);
        let calls = bed.world.calls().len() as u32;
        bed.outcomes
            .borrow_mut()
            .insert("~ calls made".into(), calls);
        for (k, v) in bed.outcomes.borrow().iter() {
            *totals.borrow_mut().entry(k.clone()).or_default() += v;
        }
        prop_assert!(result.is_ok(), "{}", result.unwrap_err());
        Ok(())
    });
    let totals = totals.into_inner();
    eprintln!("{CASES} programs; how the runs ended: {totals:#?}");
    if let Err(e) = result {
        panic!("{e}");
    }
    // The programs reach what the invariants are about: keys retired while other runs act,
    // rollbacks and rotations that complete, and races that the re-checks catch.
    let at_least = |prefix: &str| {
        totals
            .iter()
            .filter(|(k, _)| k.starts_with(prefix))
            .map(|(_, v)| v)
            .sum::<u32>()
    };
    for what in [
        "sweep deactivated",
        "sweep deleted",
        "rollback done",
        "rotate rotated",
        "function rotated",
        "cancel cancelled",
    ] {
        assert!(at_least(what) > 0, "no run ended as {what:?}: {totals:?}");
    }
    assert!(
        at_least("sweep changed")
            + at_least("sweep raced")
            + at_least("rollback failed ChangedMeanwhile")
            + at_least("rollback failed RaceUndone")
            > 0,
        "no race was ever caught: {totals:?}"
    );
}
