//! IAM, STS and the clock in the model: the two-key limit, status, last use, authentication of
//! signed calls, list lag and propagation delay, the credential report.

use std::time::Duration;

use time::OffsetDateTime;

use crate::ports::{
    AccessKeys, ApiError, ApiResult, Clock, Iam, Identity, IdentityCheck, KeyInfo, KeyStatus,
    KeyUse,
};
use crate::secret::AccessKey;

use super::{
    authenticate, find_key_mut, mark_used, new_key, Event, FakeKey, State, World, ACCOUNT,
};

/// IAM calls made by one identity of the model.
#[derive(Debug, Clone)]
pub struct FakeKeys {
    world: World,
    signer: Option<AccessKey>,
}

impl FakeKeys {
    async fn pause(&self) {
        self.world.pause().await;
    }

    fn call<T>(&self, name: &str, f: impl FnOnce(&mut State) -> ApiResult<T>) -> ApiResult<T> {
        self.world.call(name, |s| {
            if let Some(signer) = &self.signer {
                authenticate(s, signer, false)?;
                mark_used(s, &signer.id, "iam");
            }
            f(s)
        })
    }
}

impl AccessKeys for FakeKeys {
    async fn list(&self, user: &str) -> ApiResult<Vec<KeyInfo>> {
        self.pause().await;
        self.call("iam:ListAccessKeys", |s| {
            let keys = s.users.get(user).ok_or_else(|| {
                ApiError::NotFound(format!("The user with name {user} cannot be found."))
            })?;
            Ok(keys
                .iter()
                .filter(|k| s.now >= k.created + s.list_lag)
                .map(|k| KeyInfo {
                    id: k.id.clone(),
                    status: k.status,
                    created: k.created,
                })
                .collect())
        })
    }

    async fn user_path(&self, user: &str) -> ApiResult<String> {
        self.pause().await;
        self.call("iam:GetUser", |s| {
            if !s.users.contains_key(user) {
                return Err(ApiError::NotFound(format!(
                    "The user with name {user} cannot be found."
                )));
            }
            Ok(s.paths.get(user).cloned().unwrap_or_else(|| "/".into()))
        })
    }

    async fn last_used(&self, key_id: &str) -> ApiResult<KeyUse> {
        self.pause().await;
        self.call("iam:GetAccessKeyLastUsed", |s| {
            let (now, lag) = (s.now, s.last_used_lag);
            find_key_mut(s, key_id)
                .map(|k| k.visible_use(now, lag))
                .ok_or_else(|| {
                    ApiError::NotFound(format!("The Access Key with id {key_id} cannot be found"))
                })
        })
    }

    async fn create(&self, user: &str) -> ApiResult<AccessKey> {
        self.pause().await;
        self.call("iam:CreateAccessKey", |s| new_key(s, user))
    }

    async fn delete(&self, user: &str, key_id: &str) -> ApiResult<()> {
        self.pause().await;
        self.call("iam:DeleteAccessKey", |s| {
            let keys = s.users.get_mut(user).ok_or_else(|| {
                ApiError::NotFound(format!("The user with name {user} cannot be found."))
            })?;
            let before = keys.len();
            keys.retain(|k| k.id != key_id);
            if keys.len() == before {
                return Err(ApiError::NotFound(format!(
                    "The Access Key with id {key_id} cannot be found"
                )));
            }
            let event = Event::Key {
                actor: s.actor.clone(),
                user: user.to_string(),
                key_id: key_id.to_string(),
                change: "deleted",
                at: s.now,
            };
            s.history.push(event);
            Ok(())
        })
    }

    async fn set_status(&self, user: &str, key_id: &str, status: KeyStatus) -> ApiResult<()> {
        self.pause().await;
        self.call("iam:UpdateAccessKey", |s| {
            let key = s
                .users
                .get_mut(user)
                .and_then(|ks| ks.iter_mut().find(|k| k.id == key_id))
                .ok_or_else(|| {
                    ApiError::NotFound(format!("The Access Key with id {key_id} cannot be found"))
                })?;
            key.status = status;
            let event = Event::Key {
                actor: s.actor.clone(),
                user: user.to_string(),
                key_id: key_id.to_string(),
                change: status.as_str(),
                at: s.now,
            };
            s.history.push(event);
            Ok(())
        })
    }

    async fn generate_report(&self) -> ApiResult<bool> {
        self.pause().await;
        self.call("iam:GenerateCredentialReport", |_| Ok(true))
    }

    async fn report(&self) -> ApiResult<Vec<u8>> {
        self.pause().await;
        self.call("iam:GetCredentialReport", |s| {
            let when = |t: Option<OffsetDateTime>| t.map(crate::error::rfc3339).unwrap_or_else(|| "N/A".into());
            let mut csv = String::from("user,arn,access_key_1_active,access_key_1_last_rotated,access_key_1_last_used_date,access_key_1_last_used_region,access_key_1_last_used_service,access_key_2_active,access_key_2_last_rotated,access_key_2_last_used_date,access_key_2_last_used_region,access_key_2_last_used_service\n");
            let (now, lag) = (s.now, s.last_used_lag);
            for (user, keys) in &s.users {
                let mut keys: Vec<&FakeKey> = keys.iter().collect();
                keys.sort_by_key(|k| k.created);
                csv.push_str(&format!("{user},arn:aws:iam::{ACCOUNT}:user/{user}"));
                for slot in 0..2 {
                    match keys.get(slot) {
                        Some(k) => { let u = k.visible_use(now, lag); csv.push_str(&format!(
                            ",{},{},{},{},{}",
                            k.status == KeyStatus::Active,
                            when(Some(k.created)),
                            when(u.last_used),
                            u.region.as_deref().unwrap_or("N/A"),
                            u.service.as_deref().unwrap_or("N/A")
                        )) }
                        None => csv.push_str(",false,N/A,N/A,N/A,N/A"),
                    }
                }
                csv.push('\n');
            }
            Ok(csv.into_bytes())
        })
    }
}

impl Iam for World {
    type Keys = FakeKeys;

    fn own(&self) -> FakeKeys {
        FakeKeys {
            world: self.clone(),
            signer: None,
        }
    }

    fn signed_with(&self, key: &AccessKey) -> FakeKeys {
        FakeKeys {
            world: self.clone(),
            signer: Some(key.clone()),
        }
    }
}

impl IdentityCheck for World {
    async fn whoami(&self, key: &AccessKey) -> ApiResult<Identity> {
        self.pause().await;
        self.call("sts:GetCallerIdentity", |s| {
            let user = authenticate(s, key, true)?;
            mark_used(s, &key.id, "sts");
            Ok(Identity {
                account: ACCOUNT.into(),
                arn: format!("arn:aws:iam::{ACCOUNT}:user/{user}"),
            })
        })
    }
}

impl Clock for World {
    fn now(&self) -> OffsetDateTime {
        self.state().now
    }

    async fn sleep(&self, duration: Duration) {
        self.advance(duration);
    }
}
