//! keyturn-core's [`Delivery`] port: SSM, GitHub and EventBridge, each one call per method.

use aws_config::SdkConfig;
use keyturn_core::ports::{ApiResult, Delivery, KeyEvent, SealingKey};
use keyturn_core::sink::GitHubScope;
use keyturn_core::SecretText;

use crate::events::EventBus;
use crate::github::{GitHub, DEFAULT_API_BASE};
use crate::ssm::ParameterStore;
use crate::SecretsManager;

/// Where GitHub is and which secret holds its token.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitHubSettings {
    /// `KEYTURN_GITHUB_API` (default `https://api.github.com`).
    pub api_base: Option<String>,
    /// `KEYTURN_GITHUB_TOKEN_SECRET`.
    pub token_secret: Option<String>,
}

/// Every sink and the event bus, built once from one configuration (no I/O).
#[derive(Debug, Clone)]
pub struct Sinks {
    ssm: ParameterStore,
    events: EventBus,
    github: GitHub,
}

impl Sinks {
    pub fn from_config(config: &SdkConfig, github: &GitHubSettings) -> Self {
        Self {
            ssm: ParameterStore::new(aws_sdk_ssm::Client::new(config)),
            events: EventBus::new(aws_sdk_eventbridge::Client::new(config)),
            github: GitHub::new(
                github.api_base.as_deref().unwrap_or(DEFAULT_API_BASE),
                github.token_secret.clone(),
                SecretsManager::new(aws_sdk_secretsmanager::Client::new(config)),
            ),
        }
    }
}

impl Delivery for Sinks {
    async fn put_parameter(
        &self,
        name: &str,
        kms_key: Option<&str>,
        value: &SecretText,
    ) -> ApiResult<()> {
        self.ssm.put(name, kms_key, value).await
    }

    async fn github_public_key(&self, scope: &GitHubScope) -> ApiResult<SealingKey> {
        self.github.public_key(scope).await
    }

    async fn github_put_secret(
        &self,
        scope: &GitHubScope,
        name: &str,
        key: &SealingKey,
        value: &SecretText,
    ) -> ApiResult<()> {
        self.github.put_secret(scope, name, key, value).await
    }

    async fn publish(&self, event: &KeyEvent) -> ApiResult<()> {
        self.events.publish(event).await
    }
}
