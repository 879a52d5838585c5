//! What keyturn knows about one secret and its user, read once ([`SecretState`]): facts only. The
//! one reader that builds it is the first operation of every use case
//! (`Rotator::read_state`, in `rotation::read`); the rules (`rules`) decide over it.

use time::{Duration, OffsetDateTime};

use crate::ports::{KeyStatus, KeyUse, SecretInfo};
use crate::secret::ShapeError;
use crate::tags::{AWSCURRENT, AWSPENDING};
use crate::user::SecretUser;

/// One of the user's keys as IAM lists it, with its last use when that was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFacts {
    pub id: String,
    pub status: KeyStatus,
    pub created: OffsetDateTime,
    /// `None` when GetAccessKeyLastUsed was not called for it.
    pub last_use: Option<KeyUse>,
}

/// What a version's value holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Held {
    Key(String),
    /// A value with no key (the empty shape).
    NoKey,
    /// No value (a version RotateSecret made, before createSecret).
    NoValue,
    Unreadable(ShapeError),
}

/// A labelled version and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holding {
    pub version: String,
    pub labels: Vec<String>,
    pub held: Held,
    /// The version's creation in Secrets Manager (when its value was read).
    pub created: Option<OffsetDateTime>,
}

impl Holding {
    pub fn key_id(&self) -> Option<&str> {
        match &self.held {
            Held::Key(id) => Some(id),
            _ => None,
        }
    }
}

/// The facts about one secret the rules decide on.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretState {
    pub info: SecretInfo,
    pub user: SecretUser,
    /// The versions read (AWSCURRENT always; the others when the decision needs them).
    pub holdings: Vec<Holding>,
    /// The user's keys as IAM lists them.
    pub keys: Vec<KeyFacts>,
    /// Other secrets tagged `keyturn:user` with the same user (when looked for).
    pub other_secrets: Vec<String>,
    /// The key that signs keyturn's IAM calls, when it is a key from a secret (`masterarn`).
    pub signer: Option<String>,
    pub now: OffsetDateTime,
    /// How long after a cut-over IAM's last-used record may still not show a use of the previous
    /// key (`KEYTURN_LAST_USED_SETTLE_SECONDS`): until then the key counts as possibly in use.
    pub settle: Duration,
    /// The secret's restart targets and their latest rollouts (when the decision needs them: the
    /// sweep, `status`).
    pub restarts: Vec<RestartFacts>,
}

/// What was read of one restart target: its latest rollout as ECS or GitHub records it, or why it
/// could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestartFacts {
    pub target: crate::restart::RestartTarget,
    pub rollout: Result<Option<crate::ports::Rollout>, String>,
}

impl SecretState {
    pub fn key_of(&self, label: &str) -> Option<&str> {
        self.holdings
            .iter()
            .find(|h| h.labels.iter().any(|l| l == label))
            .and_then(Holding::key_id)
    }

    pub fn key_of_version(&self, version: &str) -> Option<&str> {
        self.holdings
            .iter()
            .find(|h| h.version == version)
            .and_then(Holding::key_id)
    }

    pub fn current_key(&self) -> Option<&str> {
        self.key_of(AWSCURRENT)
    }

    /// (version, labels) of every version read that holds `key_id`.
    pub fn holders_of<'a>(
        &'a self,
        key_id: &'a str,
    ) -> impl Iterator<Item = (&'a str, &'a [String])> + 'a {
        self.holdings
            .iter()
            .filter(move |h| h.key_id() == Some(key_id))
            .map(|h| (h.version.as_str(), h.labels.as_slice()))
    }

    /// Every label of the versions that hold `key_id`.
    pub fn labels_holding<'a>(&'a self, key_id: &'a str) -> Vec<&'a str> {
        self.holders_of(key_id)
            .flat_map(|(_, labels)| labels.iter().map(String::as_str))
            .collect()
    }

    pub fn key(&self, id: &str) -> Option<&KeyFacts> {
        self.keys.iter().find(|k| k.id == id)
    }

    /// (labels, reason) of every version whose value cannot be read.
    pub fn unreadable(&self) -> impl Iterator<Item = (String, &ShapeError)> {
        self.holdings.iter().filter_map(|h| match &h.held {
            Held::Unreadable(e) => Some((h.labels.join(","), e)),
            _ => None,
        })
    }
}

/// The token of a rotation in flight: a version labelled AWSPENDING that is not AWSCURRENT.
pub fn in_flight(info: &SecretInfo) -> Option<&str> {
    info.versions
        .iter()
        .find(|(_, l)| l.iter().any(|x| x == AWSPENDING) && !l.iter().any(|x| x == AWSCURRENT))
        .map(|(id, _)| id.as_str())
}

/// Whose last use to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LastUse {
    #[default]
    Nothing,
    /// Every key but AWSCURRENT's (making room).
    NotCurrent,
    /// The key of one version (cancel: the pending key; sweep: the previous key).
    OfVersion(&'static str),
    Every,
}

/// What a decision needs read beyond AWSCURRENT, the user and the user's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Needs {
    /// Every labelled version's value.
    pub all_versions: bool,
    pub last_use: LastUse,
    /// Other secrets tagged for the same user (one ListSecrets).
    pub who_else: bool,
    /// Record an unreadable AWSCURRENT or pending value instead of failing at once (status,
    /// audit). Otherwise it is a `BadValue` error before IAM is touched.
    pub tolerate_bad_values: bool,
}
