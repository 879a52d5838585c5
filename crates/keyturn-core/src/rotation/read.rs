//! The one reader: [`Rotator::read_state`] builds a [`SecretState`] for every decision.

use std::collections::BTreeSet;

use super::{aws, user_call_failed, Rotator};
use crate::error::RotationError;
use crate::ports::{AccessKeys, Clock, Iam, SecretInfo, SecretStore, VersionRef};
use crate::ports::{KeysOf, Ports};
use crate::rules::{self, policy::current_is_recent, Scope};
use crate::secret::{AccessKey, SecretValue};
use crate::tags::{self, AWSCURRENT, AWSPENDING};

use crate::state::{Held, Holding, KeyFacts, LastUse, Needs, SecretState};

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

impl<P: Ports> Rotator<P> {
    /// Reads AWSCURRENT's value (and the token's, when it is a version), resolves the user, lists
    /// the user's keys (re-reading with bounded backoff while a key keyturn put there moments ago is
    /// missing: IAM's lists lag its writes), then whatever `needs` adds.
    pub async fn read_state(
        &self,
        info: SecretInfo,
        token: Option<&str>,
        needs: Needs,
    ) -> Result<Read<KeysOf<P>>, RotationError> {
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
        // A master's key (not the secret's own key rotating itself) has rights the deployment
        // did not grant: the user's path is checked before it acts.
        let master_key = signer.is_some()
            && signer.as_deref() != current.as_ref().and_then(SecretValue::access_key_id);
        self.check_path(&keys_api, &name, &user.name, master_key)
            .await?;
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
            self.secrets_of_user(&info.name, &info.arn, &user.name)
                .await?
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
            settle: self.settings().last_used_settle,
            restarts: Vec::new(),
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
        read: &mut Read<KeysOf<P>>,
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
        let stored = self
            .store()
            .stored(&info.arn, &reference)
            .await
            .map_err(|e| aws("GetSecretValue", &info.name, None, None, e))?;
        let created = stored.as_ref().and_then(|s| s.created);
        let (held, value) = match stored.map(|s| SecretValue::parse(&s.text)) {
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
                created,
            },
            value,
        ))
    }

    /// ListAccessKeys, re-read with the test's bounded backoff while a key in `expected` is
    /// missing. A key still missing after that is missing: the rules decide what that means.
    async fn list_keys(
        &self,
        keys_api: &KeysOf<P>,
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

    /// The secrets other than `name` (ARN `arn`, empty for one not created yet) tagged
    /// `keyturn:user` = `user` (ListSecrets filters by prefix: exact matches only are kept).
    pub async fn secrets_of_user(
        &self,
        name: &str,
        arn: &str,
        user: &str,
    ) -> Result<Vec<String>, RotationError> {
        let found = self
            .store()
            .list_tagged(tags::USER, Some(user))
            .await
            .map_err(|e| aws("ListSecrets", name, Some(user), None, e))?;
        Ok(found
            .into_iter()
            .filter(|s| s.tags.get(tags::USER).map(String::as_str) == Some(user))
            .filter(|s| s.arn != arn && s.name != name)
            .map(|s| s.name)
            .collect())
    }

    /// GetUser, when the scope asks for it: the user's path must be under the user path.
    pub async fn check_path(
        &self,
        keys_api: &KeysOf<P>,
        secret: &str,
        user: &str,
        master_key: bool,
    ) -> Result<(), RotationError> {
        let scope = &self.settings().scope;
        if !scope.checks_path(master_key) {
            return Ok(());
        }
        let path = keys_api
            .user_path(user)
            .await
            .map_err(|e| user_call_failed("GetUser", secret, user, e))?;
        rules::check_user_path(scope, secret, user, &path)
    }

    /// The identity that makes IAM calls for this secret: the process's own, or the AWSCURRENT key
    /// of the secret named by `masterarn` (which may be this secret: a self-rotating user), with
    /// that key's id.
    pub async fn keys_for(
        &self,
        info: &SecretInfo,
        value: Option<&SecretValue>,
    ) -> Result<(KeysOf<P>, Option<String>), RotationError> {
        let Some(master) = value.and_then(SecretValue::master_arn) else {
            return Ok((self.iam().own(), None));
        };
        let bad = |reason: String| RotationError::BadMaster {
            secret: info.name.clone(),
            master: master.to_string(),
            reason,
        };
        let signed = |key: &AccessKey| (self.iam().signed_with(key), Some(key.id.clone()));
        // The secret's own key, when masterarn names the secret itself: as written, or (after
        // DescribeSecret) by another name or ARN that resolves to it.
        let own_key = || {
            value
                .and_then(SecretValue::key)
                .map(signed)
                .ok_or_else(|| bad("its AWSCURRENT value holds no key".into()))
        };
        if Scope::is_self(info, master) {
            return own_key();
        }
        // Described first: the allow-list is matched against the name and full ARN Secrets
        // Manager resolves the reference to, never the reference as written.
        let described = self
            .store()
            .describe(master)
            .await
            .map_err(|e| bad(format!("describing it failed: {e}")))?;
        if described.arn == info.arn {
            return own_key();
        }
        let scope = &self.settings().scope;
        if !scope.trusts_master(&described) {
            return Err(RotationError::MasterNotAllowed {
                secret: info.name.clone(),
                master: described.name,
                allowed: scope.masters().to_vec(),
            });
        }
        let text = self
            .store()
            .value(&described.arn, &VersionRef::Label(AWSCURRENT))
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
