//! Sinks and EventBridge in the model: SSM parameters, GitHub Actions secrets (kept in clear: the
//! model's "sealing" is the identity, the adapter's is tested against PyNaCl) and published
//! events. A destination can be made to refuse writes.

use crate::ports::{ApiError, ApiResult, Delivery, KeyEvent, SealingKey};
use crate::secret::SecretText;
use crate::sink::GitHubScope;

use super::World;

/// The model's GitHub public key.
pub const SEALING_KEY_ID: &str = "fake-key-1";

impl Delivery for World {
    async fn put_parameter(
        &self,
        name: &str,
        kms_key: Option<&str>,
        value: &SecretText,
    ) -> ApiResult<()> {
        self.pause().await;
        self.call("ssm:PutParameter", |s| {
            if s.refusing.iter().any(|r| r == name) {
                return Err(ApiError::AccessDenied(format!(
                    "not allowed to put parameter {name}"
                )));
            }
            s.parameters.insert(
                name.to_string(),
                (value.expose().to_string(), kms_key.map(str::to_string)),
            );
            Ok(())
        })
    }

    async fn github_public_key(&self, scope: &GitHubScope) -> ApiResult<SealingKey> {
        let path = scope.secrets_path();
        self.pause().await;
        self.call("github:GetPublicKey", |s| {
            if s.refusing.contains(&path) {
                return Err(ApiError::AccessDenied(format!("403 on {path}/public-key")));
            }
            Ok(SealingKey {
                key_id: SEALING_KEY_ID.into(),
                key: "AAAA".into(),
            })
        })
    }

    async fn github_put_secret(
        &self,
        scope: &GitHubScope,
        name: &str,
        key: &SealingKey,
        value: &SecretText,
    ) -> ApiResult<()> {
        let path = scope.secrets_path();
        self.pause().await;
        self.call("github:PutSecret", |s| {
            if key.key_id != SEALING_KEY_ID {
                return Err(ApiError::InvalidRequest("422: unknown key_id".into()));
            }
            s.github
                .insert(format!("{path}/{name}"), value.expose().to_string());
            Ok(())
        })
    }

    async fn publish(&self, event: &KeyEvent) -> ApiResult<()> {
        self.pause().await;
        self.call("events:PutEvents", |s| {
            if s.refusing.iter().any(|r| r == "events") {
                return Err(ApiError::AccessDenied("not allowed to put events".into()));
            }
            s.events.push(event.clone());
            Ok(())
        })
    }
}

impl World {
    /// Writes to this destination fail with AccessDenied: an SSM parameter's name, a GitHub
    /// scope's secrets path (`/repos/o/r/actions/secrets`), or `events`.
    pub fn refuse(&self, destination: &str) {
        self.state().refusing.push(destination.to_string());
    }

    pub fn stop_refusing(&self) {
        self.state().refusing.clear();
    }

    /// An SSM parameter's value and KMS key.
    pub fn parameter(&self, name: &str) -> Option<(String, Option<String>)> {
        self.state().parameters.get(name).cloned()
    }

    /// A GitHub secret's clear value, by `{secrets path}/{name}`.
    pub fn github_secret(&self, path: &str) -> Option<String> {
        self.state().github.get(path).cloned()
    }

    pub fn events(&self) -> Vec<KeyEvent> {
        self.state().events.clone()
    }
}
