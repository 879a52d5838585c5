//! A stateful in-memory model of Secrets Manager, IAM and STS, for tests (feature `fake`).
//!
//! It keeps what the rotation depends on: versions and staging labels (with Secrets Manager's
//! AWSPREVIOUS move), immutable version values, tags, the two-key limit, key status, last use,
//! authentication of signed calls, and a propagation delay for new keys. Every call is logged, and
//! a [`Fault`] can fail call *k* or stop the "process" right after call *k* took effect.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use time::OffsetDateTime;

mod delivery;
mod iam;
mod secrets;

use crate::ports::{ApiError, ApiResult, KeyStatus, KeyUse, SecretInfo, AWSCURRENT, AWSPENDING};
use crate::secret::AccessKey;

pub use delivery::SEALING_KEY_ID;
pub use iam::FakeKeys;

pub const ACCOUNT: &str = "123456789012";
const REGION: &str = "us-east-1";

/// A fault to inject at the `call`-th call (1-based) counted from when it was armed.
#[derive(Debug, Clone)]
pub enum Fault {
    /// The call fails with `error` and has no effect.
    FailAt { call: usize, error: ApiError },
    /// The call takes effect, then the process stops: it and every later call fail with no effect
    /// until [`World::restart`].
    CrashAfter { call: usize },
}

#[derive(Debug, Clone)]
struct FakeKey {
    id: String,
    secret: String,
    status: KeyStatus,
    created: OffsetDateTime,
    /// The true last use; IAM shows [`FakeKey::visible_use`].
    last_use: KeyUse,
    /// Every use, for IAM's lagging view of the last one.
    uses: Vec<KeyUse>,
}

impl FakeKey {
    /// The last use as IAM shows it `lag` after the fact (GetAccessKeyLastUsed, the report).
    fn visible_use(&self, now: OffsetDateTime, lag: Duration) -> KeyUse {
        self.uses
            .iter()
            .rev()
            .find(|u| u.last_used.is_some_and(|t| t + lag <= now))
            .cloned()
            .unwrap_or_default()
    }

    fn used(&mut self, now: OffsetDateTime, service: &str) {
        let u = KeyUse {
            last_used: Some(now),
            service: Some(service.into()),
            region: Some(REGION.into()),
        };
        self.uses.push(u.clone());
        self.last_use = u;
    }
}

/// What happened in the model, for checks over a whole run (see [`World::history`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// AWSCURRENT of `secret` moved to a version holding `key_id` (a label move).
    Current {
        secret: String,
        key_id: Option<String>,
        at: OffsetDateTime,
    },
    /// A key was deleted (`change` "deleted") or its status set ("Inactive", "Active"), by the
    /// actor [`World::set_actor`] named.
    Key {
        actor: Option<String>,
        user: String,
        key_id: String,
        change: &'static str,
        at: OffsetDateTime,
    },
}

/// A call's yield point when the model interleaves concurrent runs ([`World::set_interleave`]):
/// pending once, so that a scheduler may run another future before the call takes effect.
pub struct Pause {
    done: bool,
}

impl std::future::Future for Pause {
    type Output = ();
    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        if self.done {
            return std::task::Poll::Ready(());
        }
        self.done = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}

/// A key to restore with [`World::restore_key`].
#[derive(Debug, Clone)]
pub struct RestoredKey {
    pub id: String,
    pub secret: String,
    pub status: KeyStatus,
    pub created: OffsetDateTime,
    /// When and by which service it was last used.
    pub last_used: Option<(OffsetDateTime, String)>,
}

/// A secret version to restore with [`World::restore_secret`].
#[derive(Debug, Clone)]
pub struct RestoredVersion {
    pub id: String,
    pub labels: Vec<String>,
    pub value: Option<String>,
    pub created: OffsetDateTime,
}

#[derive(Debug, Clone)]
struct FakeVersion {
    id: String,
    labels: Vec<String>,
    value: Option<String>,
    /// When the version was made (Secrets Manager's CreatedDate).
    created: OffsetDateTime,
}

#[derive(Debug, Clone)]
struct FakeSecret {
    arn: String,
    name: String,
    rotation_enabled: bool,
    versions: Vec<FakeVersion>,
    tags: BTreeMap<String, String>,
}

#[derive(Debug)]
struct State {
    now: OffsetDateTime,
    users: BTreeMap<String, Vec<FakeKey>>,
    /// IAM paths of users not at `/`.
    paths: BTreeMap<String, String>,
    secrets: Vec<FakeSecret>,
    calls: Vec<String>,
    armed_at: usize,
    fault: Option<Fault>,
    crashed: bool,
    crashed_actor: Option<String>,
    serial: u64,
    propagation: Duration,
    list_lag: Duration,
    parameters: BTreeMap<String, (String, Option<String>)>,
    github: BTreeMap<String, String>,
    events: Vec<crate::ports::KeyEvent>,
    refusing: Vec<String>,
    /// Restart targets (`ecs:CLUSTER/SERVICE`, `github:OWNER/REPO/WORKFLOW@REF`) and their
    /// rollouts, oldest first.
    rollouts: BTreeMap<String, Vec<crate::ports::Rollout>>,
    notices: Vec<crate::ports::Notice>,
    /// Security Hub: each hub account's findings by id, with whether the workflow is RESOLVED.
    hub: BTreeMap<(String, String), (crate::ports::HubFinding, bool)>,
    interleave: bool,
    last_used_lag: Duration,
    history: Vec<Event>,
    actor: Option<String>,
}

/// The model. Cloning gives another handle on the same state.
#[derive(Debug, Clone)]
pub struct World(Arc<Mutex<State>>);

impl Default for World {
    fn default() -> Self {
        Self::new()
    }
}

impl World {
    pub fn new() -> Self {
        Self(Arc::new(Mutex::new(State {
            now: time::macros::datetime!(2026-09-01 09:00 UTC),
            users: BTreeMap::new(),
            paths: BTreeMap::new(),
            secrets: Vec::new(),
            calls: Vec::new(),
            armed_at: 0,
            fault: None,
            crashed: false,
            crashed_actor: None,
            serial: 0,
            propagation: Duration::ZERO,
            list_lag: Duration::ZERO,
            parameters: BTreeMap::new(),
            github: BTreeMap::new(),
            events: Vec::new(),
            refusing: Vec::new(),
            rollouts: BTreeMap::new(),
            notices: Vec::new(),
            hub: BTreeMap::new(),
            interleave: false,
            last_used_lag: Duration::ZERO,
            history: Vec::new(),
            actor: None,
        })))
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock already failed; keep the state readable.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one API call: logs it, applies any armed fault, then `f`.
    fn call<T>(&self, name: &str, f: impl FnOnce(&mut State) -> ApiResult<T>) -> ApiResult<T> {
        let mut s = self.state();
        s.calls.push(name.to_string());
        // A crash stops the process it happened in: with runs named (`set_actor`), only the run
        // that crashed; otherwise every call.
        if s.crashed && (s.crashed_actor.is_none() || s.crashed_actor == s.actor) {
            return Err(ApiError::Unavailable("the process has stopped".into()));
        }
        let n = s.calls.len() - s.armed_at;
        match s.fault.clone() {
            Some(Fault::FailAt { call, error }) if call == n => Err(error),
            Some(Fault::CrashAfter { call }) if call == n => {
                let _ = f(&mut s);
                s.crashed = true;
                s.crashed_actor = s.actor.clone();
                Err(ApiError::Unavailable(
                    "the process stopped after this call".into(),
                ))
            }
            _ => f(&mut s),
        }
    }

    // ---- set-up and inspection (not API calls) ----

    pub fn now(&self) -> OffsetDateTime {
        self.state().now
    }

    pub fn advance(&self, d: Duration) {
        self.state().now += d;
    }

    /// Every API call yields once before it takes effect, so that a scheduler polling several
    /// runs can interleave them call by call (the property test of concurrent runs).
    pub fn set_interleave(&self, on: bool) {
        self.state().interleave = on;
    }

    /// The yield point of one call (ready at once unless interleaving).
    pub fn pause(&self) -> Pause {
        Pause {
            done: !self.state().interleave,
        }
    }

    /// IAM shows a key's last use only this long after it happened (GetAccessKeyLastUsed, the
    /// credential report): IAM's last-used record is not live.
    pub fn set_last_used_lag(&self, d: Duration) {
        self.state().last_used_lag = d;
    }

    /// Names the run whose calls follow (for [`Event::Key`]).
    pub fn set_actor(&self, actor: Option<String>) {
        self.state().actor = actor;
    }

    /// Label moves of AWSCURRENT and key retirements, in order.
    pub fn history(&self) -> Vec<Event> {
        self.state().history.clone()
    }

    /// Writes tags directly (as someone allowed to tag the secret would), not through keyturn.
    pub fn tag_secret(&self, secret: &str, tags: &[(&str, &str)]) {
        let mut s = self.state();
        if let Some(x) = s.secrets.iter_mut().find(|x| x.name == secret) {
            for (k, v) in tags {
                x.tags.insert(k.to_string(), v.to_string());
            }
        }
    }

    /// New keys fail authentication at STS until this long after creation.
    pub fn set_propagation_delay(&self, d: Duration) {
        self.state().propagation = d;
    }

    /// ListAccessKeys omits keys created less than this long ago (IAM's read-after-write lag).
    pub fn set_list_lag(&self, d: Duration) {
        self.state().list_lag = d;
    }

    pub fn add_user(&self, user: &str) {
        self.state().users.entry(user.to_string()).or_default();
    }

    /// A user at an IAM path other than `/` (e.g. `/admins/`).
    pub fn add_user_at(&self, user: &str, path: &str) {
        let mut s = self.state();
        s.users.entry(user.to_string()).or_default();
        s.paths.insert(user.to_string(), path.to_string());
    }

    /// Creates a key directly (as an administrator would by hand).
    pub fn create_key(&self, user: &str) -> AccessKey {
        let mut s = self.state();
        new_key(&mut s, user).unwrap_or_else(|e| panic!("create_key({user}): {e}"))
    }

    /// Records a use of the key by a consumer.
    pub fn use_key(&self, key_id: &str, service: &str) {
        let mut s = self.state();
        let now = s.now;
        if let Some(k) = find_key_mut(&mut s, key_id) {
            k.used(now, service);
        }
    }

    /// (key id, status) of the user's keys.
    pub fn keys_of(&self, user: &str) -> Vec<(String, KeyStatus)> {
        self.state()
            .users
            .get(user)
            .map(|ks| ks.iter().map(|k| (k.id.clone(), k.status)).collect())
            .unwrap_or_default()
    }

    /// The secret access keys of every key that exists, for tests that search output for them.
    pub fn secrets_made(&self) -> Vec<String> {
        self.state()
            .users
            .values()
            .flatten()
            .map(|k| k.secret.clone())
            .collect()
    }

    pub fn key_exists(&self, key_id: &str) -> bool {
        self.state()
            .users
            .values()
            .flatten()
            .any(|k| k.id == key_id)
    }

    /// Whether `key` would authenticate right now (exists, active, matching secret, propagated).
    pub fn authenticates(&self, key: &AccessKey) -> bool {
        let s = self.state();
        authenticate(&s, key, true).is_ok()
    }

    // ---- restoring a recorded state (the compatibility fixtures, `tests/compat/`) ----

    /// Sets the clock.
    pub fn set_now(&self, now: OffsetDateTime) {
        self.state().now = now;
    }

    /// Gives `user` a key exactly as AWS recorded it (its id, status, creation and last use).
    pub fn restore_key(&self, user: &str, key: RestoredKey) {
        let last_use = KeyUse {
            last_used: key.last_used.as_ref().map(|(t, _)| *t),
            service: key.last_used.as_ref().map(|(_, s)| s.clone()),
            region: key.last_used.as_ref().map(|_| REGION.into()),
        };
        let restored = FakeKey {
            id: key.id,
            secret: key.secret,
            status: key.status,
            created: key.created,
            uses: vec![last_use.clone()],
            last_use,
        };
        self.state()
            .users
            .entry(user.to_string())
            .or_default()
            .push(restored);
    }

    /// A secret exactly as Secrets Manager recorded it (its versions with their ids, labels,
    /// values and creation, and its tags). Returns its ARN.
    pub fn restore_secret(
        &self,
        name: &str,
        rotation_enabled: bool,
        versions: Vec<RestoredVersion>,
        tags: BTreeMap<String, String>,
    ) -> String {
        let mut s = self.state();
        let arn = next_arn(&mut s, name);
        let versions = versions
            .into_iter()
            .map(|v| FakeVersion {
                id: v.id,
                labels: v.labels,
                value: v.value,
                created: v.created,
            })
            .collect();
        s.secrets.push(FakeSecret {
            arn: arn.clone(),
            name: name.to_string(),
            rotation_enabled,
            versions,
            tags,
        });
        arn
    }

    /// Creates a secret whose first version (AWSCURRENT) holds `value`. Returns its ARN.
    pub fn add_secret(&self, name: &str, value: &str, tags: &[(&str, &str)]) -> String {
        self.add_secret_with(name, |_| value.to_string(), tags)
    }

    /// Like [`World::add_secret`], with the value made from the secret's own ARN (for a value
    /// whose `masterarn` names the secret itself).
    pub fn add_secret_with(
        &self,
        name: &str,
        value: impl FnOnce(&str) -> String,
        tags: &[(&str, &str)],
    ) -> String {
        let mut s = self.state();
        let tags = tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        new_secret(&mut s, name, value, tags)
    }

    /// What Secrets Manager's RotateSecret does before calling createSecret: enables rotation and
    /// adds a version labelled AWSPENDING with no value. Returns its id (the token).
    pub fn start_rotation(&self, secret: &str) -> String {
        let mut s = self.state();
        let token = next_id(&mut s);
        let now = s.now;
        let sec = s
            .secrets
            .iter_mut()
            .find(|x| x.name == secret || x.arn == secret)
            .unwrap_or_else(|| panic!("no secret {secret}"));
        sec.rotation_enabled = true;
        for v in &mut sec.versions {
            v.labels.retain(|l| l != AWSPENDING);
        }
        sec.versions.push(FakeVersion {
            id: token.clone(),
            labels: vec![AWSPENDING.into()],
            value: None,
            created: now,
        });
        token
    }

    /// Version id → labels, for versions that have labels.
    pub fn labels(&self, secret: &str) -> BTreeMap<String, Vec<String>> {
        let s = self.state();
        s.secrets
            .iter()
            .find(|x| x.name == secret)
            .map(|x| {
                x.versions
                    .iter()
                    .filter(|v| !v.labels.is_empty())
                    .map(|v| (v.id.clone(), v.labels.clone()))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The raw value of the version holding `label`.
    pub fn value_with(&self, secret: &str, label: &str) -> Option<String> {
        let s = self.state();
        let sec = s.secrets.iter().find(|x| x.name == secret)?;
        sec.versions
            .iter()
            .find(|v| v.labels.iter().any(|l| l == label))
            .and_then(|v| v.value.clone())
    }

    /// Every value ever stored in the secret's versions.
    pub fn all_values(&self, secret: &str) -> Vec<String> {
        let s = self.state();
        s.secrets
            .iter()
            .filter(|x| x.name == secret)
            .flat_map(|x| x.versions.iter().filter_map(|v| v.value.clone()))
            .collect()
    }

    pub fn tags(&self, secret: &str) -> BTreeMap<String, String> {
        let s = self.state();
        s.secrets
            .iter()
            .find(|x| x.name == secret)
            .map(|x| x.tags.clone())
            .unwrap_or_default()
    }

    /// Every call made so far, by name (`iam:CreateAccessKey`, ...).
    pub fn calls(&self) -> Vec<String> {
        self.state().calls.clone()
    }

    pub fn clear_calls(&self) {
        let mut s = self.state();
        s.calls.clear();
        s.armed_at = 0;
    }

    /// Arms a fault, counting calls from now.
    pub fn arm(&self, fault: Fault) {
        let mut s = self.state();
        s.armed_at = s.calls.len();
        s.fault = Some(fault);
        s.crashed = false;
        s.crashed_actor = None;
    }

    /// A new process after a crash: faults disarmed.
    pub fn restart(&self) {
        let mut s = self.state();
        s.fault = None;
        s.crashed = false;
        s.crashed_actor = None;
    }

    pub fn crashed(&self) -> bool {
        self.state().crashed
    }
}

/// A new secret whose first version (AWSCURRENT) holds `value` (made from the secret's ARN). Returns
/// the ARN.
fn new_secret(
    s: &mut State,
    name: &str,
    value: impl FnOnce(&str) -> String,
    tags: BTreeMap<String, String>,
) -> String {
    let arn = next_arn(s, name);
    let version = next_id(s);
    let now = s.now;
    s.secrets.push(FakeSecret {
        arn: arn.clone(),
        name: name.to_string(),
        rotation_enabled: false,
        versions: vec![FakeVersion {
            id: version,
            labels: vec![AWSCURRENT.into()],
            value: Some(value(&arn)),
            created: now,
        }],
        tags,
    });
    arn
}

/// A new secret's ARN, with Secrets Manager's random suffix played by a serial number.
fn next_arn(s: &mut State, name: &str) -> String {
    s.serial += 1;
    format!(
        "arn:aws:secretsmanager:{REGION}:{ACCOUNT}:secret:{name}-{:06}",
        s.serial
    )
}

fn next_id(s: &mut State) -> String {
    s.serial += 1;
    format!("{:08x}-0000-4000-8000-{:012x}", s.serial, s.serial)
}

fn new_key(s: &mut State, user: &str) -> ApiResult<AccessKey> {
    s.serial += 1;
    let serial = s.serial;
    let now = s.now;
    let keys = s
        .users
        .get_mut(user)
        .ok_or_else(|| ApiError::NotFound(format!("The user with name {user} cannot be found.")))?;
    if keys.len() >= 2 {
        return Err(ApiError::LimitExceeded(format!(
            "Cannot exceed quota for AccessKeysPerUser: 2 (user {user})"
        )));
    }
    let key = AccessKey::new(
        format!("AKIAFAKE{serial:012}"),
        format!("fake-secret-{serial:04}-{}", "x".repeat(24)),
    );
    keys.push(FakeKey {
        id: key.id.clone(),
        secret: key.secret.expose().to_string(),
        status: KeyStatus::Active,
        created: now,
        last_use: KeyUse::default(),
        uses: Vec::new(),
    });
    Ok(key)
}

fn find_key_mut<'s>(s: &'s mut State, key_id: &str) -> Option<&'s mut FakeKey> {
    s.users.values_mut().flatten().find(|k| k.id == key_id)
}

/// The user a key authenticates as, or why it does not.
fn authenticate(s: &State, key: &AccessKey, check_propagation: bool) -> ApiResult<String> {
    for (user, keys) in &s.users {
        if let Some(k) = keys.iter().find(|k| k.id == key.id) {
            if k.secret != key.secret.expose() || k.status != KeyStatus::Active {
                break;
            }
            if check_propagation && s.now < k.created + s.propagation {
                break;
            }
            return Ok(user.clone());
        }
    }
    Err(ApiError::InvalidCredentials(format!(
        "The security token included in the request is invalid (key {})",
        key.id
    )))
}

fn mark_used(s: &mut State, key_id: &str, service: &str) {
    let now = s.now;
    if let Some(k) = find_key_mut(s, key_id) {
        k.used(now, service);
    }
}

/// A secret's metadata as DescribeSecret and ListSecrets return it (labelled versions only).
fn info_of(x: &FakeSecret) -> SecretInfo {
    SecretInfo {
        arn: x.arn.clone(),
        name: x.name.clone(),
        rotation_enabled: x.rotation_enabled,
        versions: x
            .versions
            .iter()
            .filter(|v| !v.labels.is_empty())
            .map(|v| (v.id.clone(), v.labels.clone()))
            .collect(),
        tags: x.tags.clone(),
        last_rotated: None,
        next_rotation: None,
        rotation_days: None,
    }
}

fn secret_mut<'s>(s: &'s mut State, id: &str) -> ApiResult<&'s mut FakeSecret> {
    s.secrets
        .iter_mut()
        .find(|x| x.name == id || x.arn == id)
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "Secrets Manager can't find the specified secret {id}."
            ))
        })
}
