//! Secrets Manager in the model: versions, labels (with AWSPREVIOUS's move), immutable values,
//! tags, ListSecrets' filters.

use crate::ports::{
    ApiError, ApiResult, SecretInfo, SecretStore, StoredValue, VersionRef, AWSCURRENT, AWSPENDING,
    AWSPREVIOUS,
};
use crate::secret::{SecretText, SecretValue};

use super::{info_of, new_secret, secret_mut, Event, FakeVersion, World};

impl SecretStore for World {
    async fn describe(&self, secret_id: &str) -> ApiResult<SecretInfo> {
        self.pause().await;
        self.call("secretsmanager:DescribeSecret", |s| {
            secret_mut(s, secret_id).map(|x| info_of(x))
        })
    }

    async fn stored(
        &self,
        secret_id: &str,
        version: &VersionRef,
    ) -> ApiResult<Option<StoredValue>> {
        self.pause().await;
        self.call("secretsmanager:GetSecretValue", |s| {
            let x = secret_mut(s, secret_id)?;
            let found = match version {
                VersionRef::Label(l) => x.versions.iter().find(|v| v.labels.iter().any(|x| x == l)),
                VersionRef::Id(id) => x.versions.iter().find(|v| &v.id == id),
                VersionRef::IdWithLabel(id, l) => {
                    let v = x.versions.iter().find(|v| &v.id == id);
                    if let Some(v) = v {
                        if !v.labels.iter().any(|x| x == l) {
                            return Err(ApiError::InvalidRequest(format!(
                                "version {id} does not have staging label {l}"
                            )));
                        }
                    }
                    v
                }
            };
            Ok(found.and_then(|v| {
                v.value.clone().map(|t| StoredValue {
                    text: SecretText::new(t),
                    created: Some(v.created),
                })
            }))
        })
    }

    async fn put_pending(&self, secret_id: &str, token: &str, value: &SecretText) -> ApiResult<()> {
        self.pause().await;
        self.call("secretsmanager:PutSecretValue", |s| {
            let x = secret_mut(s, secret_id)?;
            if let Some(v) = x.versions.iter().find(|v| v.id == token) {
                match &v.value {
                    Some(old) if old == value.expose() => return Ok(()),
                    Some(_) => {
                        return Err(ApiError::AlreadyExists(format!(
                            "version {token} already has a different value"
                        )))
                    }
                    None => {}
                }
            }
            let now = s.now;
            let x = secret_mut(s, secret_id)?;
            for v in &mut x.versions {
                v.labels.retain(|l| l != AWSPENDING);
            }
            match x.versions.iter_mut().find(|v| v.id == token) {
                Some(v) => {
                    v.value = Some(value.expose().to_string());
                    v.labels.push(AWSPENDING.into());
                    v.created = now;
                }
                None => x.versions.push(FakeVersion {
                    id: token.to_string(),
                    labels: vec![AWSPENDING.into()],
                    value: Some(value.expose().to_string()),
                    created: now,
                }),
            }
            Ok(())
        })
    }

    async fn move_label(
        &self,
        secret_id: &str,
        label: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> ApiResult<()> {
        self.pause().await;
        self.call("secretsmanager:UpdateSecretVersionStage", |s| {
            let now = s.now;
            let mut moved = None;
            let x = secret_mut(s, secret_id)?;
            let holder = x
                .versions
                .iter()
                .find(|v| v.labels.iter().any(|l| l == label))
                .map(|v| v.id.clone());
            if holder.is_some() && holder.as_deref() != from && holder.as_deref() != to {
                return Err(ApiError::InvalidRequest(format!(
                    "{label} is attached to version {}; name it in RemoveFromVersionId",
                    holder.unwrap_or_default()
                )));
            }
            if let Some(from) = from {
                if holder.as_deref() != Some(from) {
                    return Err(ApiError::InvalidRequest(format!(
                        "version {from} does not hold {label}"
                    )));
                }
            }
            if let Some(to) = to {
                if !x.versions.iter().any(|v| v.id == to) {
                    return Err(ApiError::InvalidRequest(format!(
                        "not a valid version: {to}"
                    )));
                }
            }
            for v in &mut x.versions {
                if Some(v.id.as_str()) == from {
                    v.labels.retain(|l| l != label);
                }
            }
            if let Some(to) = to {
                if let Some(v) = x.versions.iter_mut().find(|v| v.id == to) {
                    if !v.labels.iter().any(|l| l == label) {
                        v.labels.push(label.to_string());
                    }
                }
            }
            if label == AWSCURRENT {
                if let Some(to) = to {
                    let key_id = x
                        .versions
                        .iter()
                        .find(|v| v.id == to)
                        .and_then(|v| v.value.as_deref())
                        .and_then(|t| SecretValue::parse(&SecretText::new(t)).ok())
                        .and_then(|v| v.access_key_id().map(str::to_string));
                    let event = Event::Current {
                        secret: x.name.clone(),
                        key_id,
                        at: now,
                    };
                    moved = Some(event);
                }
                if let (Some(from), Some(to)) = (from, to) {
                    if from != to {
                        for v in &mut x.versions {
                            v.labels.retain(|l| l != AWSPREVIOUS);
                            if v.id == from {
                                v.labels.push(AWSPREVIOUS.into());
                            }
                        }
                    }
                }
            }
            if let Some(event) = moved {
                s.history.push(event);
            }
            Ok(())
        })
    }

    async fn list_tagged(
        &self,
        tag_key: &str,
        tag_value: Option<&str>,
    ) -> ApiResult<Vec<SecretInfo>> {
        self.pause().await;
        self.call("secretsmanager:ListSecrets", |s| {
            // As ListSecrets filters: a tag with this key, and a tag whose value starts with this.
            Ok(s.secrets
                .iter()
                .filter(|x| x.tags.contains_key(tag_key))
                .filter(|x| tag_value.is_none_or(|p| x.tags.values().any(|v| v.starts_with(p))))
                .map(info_of)
                .collect())
        })
    }

    async fn create(
        &self,
        name: &str,
        value: &SecretText,
        tags: &[(String, String)],
    ) -> ApiResult<String> {
        self.pause().await;
        self.call("secretsmanager:CreateSecret", |s| {
            if s.secrets.iter().any(|x| x.name == name) {
                return Err(ApiError::AlreadyExists(format!(
                    "the secret {name} already exists"
                )));
            }
            let arn = new_secret(
                s,
                name,
                |_| value.expose().to_string(),
                tags.iter().cloned().collect(),
            );
            Ok(arn)
        })
    }

    async fn schedule(&self, secret_id: &str, _lambda_arn: &str, _days: i64) -> ApiResult<()> {
        self.pause().await;
        self.call("secretsmanager:RotateSecret", |s| {
            secret_mut(s, secret_id)?.rotation_enabled = true;
            Ok(())
        })
    }

    async fn tag(&self, secret_id: &str, tags: &[(String, String)]) -> ApiResult<()> {
        self.pause().await;
        self.call("secretsmanager:TagResource", |s| {
            let x = secret_mut(s, secret_id)?;
            for (k, v) in tags {
                x.tags.insert(k.clone(), v.clone());
            }
            Ok(())
        })
    }
}
