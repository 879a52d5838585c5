//! What keyturn knows about one secret and its user, read once ([`SecretState`]), and the one
//! reader that builds it. The rules (`rules`) decide over it; createSecret, cancel, the sweep,
//! `status` and the dry run all read through [`Rotator::read_state`].

use std::collections::BTreeSet;

use time::OffsetDateTime;

use crate::error::RotationError;
use crate::ports::{
    AccessKeys, Clock, Iam, IdentityCheck, KeyStatus, KeyUse, SecretInfo, SecretStore, VersionRef,
};
use crate::rotation::{aws, user_call_failed, Rotator};
use crate::rules::{self, policy::current_is_recent, SecretUser};
use crate::secret::{AccessKey, SecretValue, ShapeError};
use crate::tags::{self, AWSCURRENT, AWSPENDING};

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

    /// When AWSCURRENT took over: the recorded cut-over, else the current key's creation.
    pub fn cutover(&self) -> Option<OffsetDateTime> {
        rules::recorded_cutover(&self.info).or_else(|| {
            self.current_key()
                .and_then(|c| self.key(c))
                .map(|k| k.created)
        })
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

/// A state read, with the values and the IAM identity the step goes on with.
pub struct Read<K> {
    pub state: SecretState,
    /// AWSCURRENT's value, when it has one that parses.
    pub current: Option<SecretValue>,
    /// The token's value, when it has one that parses.
    pub pending: Option<SecretValue>,
    /// IAM calls for this secret: the process's own identity, or the master key's.
    pub keys_api: K,
}

impl<S, I, V, C> Rotator<S, I, V, C>
where
    S: SecretStore,
    I: Iam,
    V: IdentityCheck,
    C: Clock,
{
    /// Reads AWSCURRENT's value (and the token's, when it is a version), resolves the user, lists
    /// the user's keys (re-reading with bounded backoff while a key keyturn put there moments ago is
    /// missing: IAM's lists lag its writes), then whatever `needs` adds.
    pub async fn read_state(
        &self,
        info: SecretInfo,
        token: Option<&str>,
        needs: Needs,
    ) -> Result<Read<I::Keys>, RotationError> {
        let name = info.name.clone();
        let mut holdings = Vec::new();
        let mut current = None;
        if let Some(version) = info.version_with(AWSCURRENT).map(str::to_string) {
            let (holding, value) = self.read_version(&info, &version, None).await?;
            holdings.push(holding);
            current = value;
        }
        if !needs.tolerate_bad_values {
            if let Some((labels, reason)) = holdings.iter().find_map(|h| match &h.held {
                Held::Unreadable(e) => Some((h.labels.join(","), e.clone())),
                _ => None,
            }) {
                return Err(RotationError::BadValue {
                    secret: name,
                    version: labels,
                    reason,
                });
            }
        }
        let user = rules::resolve_user(
            &name,
            current.as_ref().and_then(SecretValue::user_name),
            info.tags.get(tags::USER).map(String::as_str),
            self.settings().default_user.as_deref(),
        )?;
        let (keys_api, signer) = self.keys_for(&info, current.as_ref()).await?;
        let mut pending = None;
        if let Some(token) = token.filter(|t| info.versions.contains_key(*t)) {
            if !holdings.iter().any(|h| h.version == token) {
                let (holding, value) = self.read_version(&info, token, Some(AWSPENDING)).await?;
                holdings.push(holding);
                pending = value;
            }
        }
        if !needs.tolerate_bad_values {
            if let Some(Held::Unreadable(reason)) = holdings
                .iter()
                .find(|h| Some(h.version.as_str()) == token)
                .map(|h| &h.held)
            {
                return Err(RotationError::BadValue {
                    secret: name,
                    version: AWSPENDING.into(),
                    reason: reason.clone(),
                });
            }
        }
        let other_secrets = if needs.who_else {
            self.secrets_of_user(&info, &user.name).await?
        } else {
            Vec::new()
        };
        let now = self.clock().now();
        let mut state = SecretState {
            info,
            user,
            holdings,
            keys: Vec::new(),
            other_secrets,
            signer,
            now,
        };
        // Keys IAM may not list yet: a pending key (made moments ago by this rotation), and
        // AWSCURRENT's right after a cut-over or an enrollment.
        let mut expected: BTreeSet<String> = token
            .and_then(|t| state.key_of_version(t))
            .map(str::to_string)
            .into_iter()
            .collect();
        if current_is_recent(&state.info, now) {
            expected.extend(state.current_key().map(str::to_string));
        }
        state.keys = self.list_keys(&keys_api, &state, &expected).await?;
        let mut read = Read {
            state,
            current,
            pending,
            keys_api,
        };
        self.read_more(&mut read, needs).await?;
        Ok(read)
    }

    /// Adds what `needs` asks for to a state already read.
    pub async fn read_more(
        &self,
        read: &mut Read<I::Keys>,
        needs: Needs,
    ) -> Result<(), RotationError> {
        let state = &mut read.state;
        if needs.all_versions {
            let unread: Vec<String> = state
                .info
                .versions
                .keys()
                .filter(|v| !state.holdings.iter().any(|h| &h.version == *v))
                .cloned()
                .collect();
            for version in unread {
                let (holding, _) = self.read_version(&state.info, &version, None).await?;
                state.holdings.push(holding);
            }
        }
        let wanted: Vec<String> = match needs.last_use {
            LastUse::Nothing => Vec::new(),
            LastUse::NotCurrent => {
                let current = state.current_key().map(str::to_string);
                state
                    .keys
                    .iter()
                    .filter(|k| Some(&k.id) != current.as_ref())
                    .map(|k| k.id.clone())
                    .collect()
            }
            LastUse::OfVersion(label) => state
                .key_of(label)
                .map(str::to_string)
                .into_iter()
                .collect(),
            LastUse::Every => state.keys.iter().map(|k| k.id.clone()).collect(),
        };
        for id in wanted {
            let Some(index) = state.keys.iter().position(|k| k.id == id) else {
                continue;
            };
            if state.keys[index].last_use.is_some() {
                continue;
            }
            let used = read.keys_api.last_used(&id).await.map_err(|e| {
                aws(
                    "GetAccessKeyLastUsed",
                    &state.info.name,
                    Some(&state.user.name),
                    Some(&id),
                    e,
                )
            })?;
            state.keys[index].last_use = Some(used);
        }
        Ok(())
    }

    /// GetSecretValue of one version, parsed. An unreadable value is recorded, not an error: the
    /// rules decide what it blocks.
    async fn read_version(
        &self,
        info: &SecretInfo,
        version: &str,
        label: Option<&'static str>,
    ) -> Result<(Holding, Option<SecretValue>), RotationError> {
        let labels = info.labels_of(version).to_vec();
        let reference = match label {
            Some(l) => VersionRef::IdWithLabel(version.to_string(), l),
            None => VersionRef::Id(version.to_string()),
        };
        let text = self
            .store()
            .value(&info.arn, &reference)
            .await
            .map_err(|e| aws("GetSecretValue", &info.name, None, None, e))?;
        let (held, value) = match text.map(|t| SecretValue::parse(&t)) {
            None => (Held::NoValue, None),
            Some(Err(e)) => (Held::Unreadable(e), None),
            Some(Ok(v)) => (
                v.access_key_id()
                    .map(|id| Held::Key(id.to_string()))
                    .unwrap_or(Held::NoKey),
                Some(v),
            ),
        };
        Ok((
            Holding {
                version: version.to_string(),
                labels,
                held,
            },
            value,
        ))
    }

    /// ListAccessKeys, re-read with the test's bounded backoff while a key in `expected` is
    /// missing. A key still missing after that is missing: the rules decide what that means.
    async fn list_keys(
        &self,
        keys_api: &I::Keys,
        state: &SecretState,
        expected: &BTreeSet<String>,
    ) -> Result<Vec<KeyFacts>, RotationError> {
        let backoff = self.settings().test_backoff;
        let mut delay = backoff.initial;
        let mut attempt = 1;
        loop {
            let listed = keys_api.list(&state.user.name).await.map_err(|e| {
                user_call_failed("ListAccessKeys", &state.info.name, &state.user.name, e)
            })?;
            let missing = expected
                .iter()
                .find(|id| !listed.iter().any(|k| &k.id == *id));
            match missing {
                Some(id) if attempt < backoff.attempts => {
                    tracing::info!(secret = %state.info.name, user = %state.user.name, key_id = %id, attempt,
                        "IAM does not list a key made moments ago yet; reading again");
                    self.clock().sleep(delay).await;
                    delay = (delay * 2).min(backoff.max);
                    attempt += 1;
                }
                _ => {
                    return Ok(listed
                        .into_iter()
                        .map(|k| KeyFacts {
                            id: k.id,
                            status: k.status,
                            created: k.created,
                            last_use: None,
                        })
                        .collect())
                }
            }
        }
    }

    /// The other secrets tagged `keyturn:user` = `user` (ListSecrets filters by prefix: exact
    /// matches only are kept).
    pub async fn secrets_of_user(
        &self,
        info: &SecretInfo,
        user: &str,
    ) -> Result<Vec<String>, RotationError> {
        let found = self
            .store()
            .list_tagged(tags::USER, Some(user))
            .await
            .map_err(|e| aws("ListSecrets", &info.name, Some(user), None, e))?;
        Ok(found
            .into_iter()
            .filter(|s| s.tags.get(tags::USER).map(String::as_str) == Some(user))
            .filter(|s| s.arn != info.arn && s.name != info.name)
            .map(|s| s.name)
            .collect())
    }

    /// The identity that makes IAM calls for this secret: the process's own, or the AWSCURRENT key
    /// of the secret named by `masterarn` (which may be this secret: a self-rotating user), with
    /// that key's id.
    pub async fn keys_for(
        &self,
        info: &SecretInfo,
        value: Option<&SecretValue>,
    ) -> Result<(I::Keys, Option<String>), RotationError> {
        let Some(master) = value.and_then(SecretValue::master_arn) else {
            return Ok((self.iam().own(), None));
        };
        let bad = |reason: String| RotationError::BadMaster {
            secret: info.name.clone(),
            master: master.to_string(),
            reason,
        };
        let signed = |key: &AccessKey| (self.iam().signed_with(key), Some(key.id.clone()));
        if master == info.arn || master == info.name {
            let key = value
                .and_then(SecretValue::key)
                .ok_or_else(|| bad("its AWSCURRENT value holds no key".into()))?;
            return Ok(signed(key));
        }
        let text = self
            .store()
            .value(master, &VersionRef::Label(AWSCURRENT))
            .await
            .map_err(|e| bad(format!("reading it failed: {e}")))?
            .ok_or_else(|| bad("it has no AWSCURRENT value".into()))?;
        let parsed = SecretValue::parse(&text).map_err(|e| bad(e.to_string()))?;
        let key = parsed
            .key()
            .ok_or_else(|| bad("its AWSCURRENT value holds no key".into()))?;
        Ok(signed(key))
    }
}
