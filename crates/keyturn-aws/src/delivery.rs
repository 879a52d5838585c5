//! keyturn-core's [`Delivery`] port: SSM, GitHub and EventBridge for sinks and events, ECS and
//! GitHub for restarts, SNS for owners' notices, each one call per method.

use std::sync::{Arc, OnceLock};

use aws_config::SdkConfig;
use keyturn_core::ports::{
    ApiResult, Delivery, HubFinding, HubImport, HubPage, KeyEvent, Notice, Rollout, SealingKey,
};
use keyturn_core::sink::GitHubScope;
use keyturn_core::SecretText;

use crate::ecs::Services;
use crate::events::EventBus;
use crate::github::{GitHub, DEFAULT_API_BASE};
use crate::securityhub::Hub;
use crate::sns::Topics;
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

/// Every sink and the event bus. Each client is built on its first use, from one configuration
/// (no I/O): a rotation without sinks or events builds none of them, and pays neither their
/// memory nor their start-up.
#[derive(Debug, Clone)]
pub struct Sinks {
    config: SdkConfig,
    github_settings: GitHubSettings,
    ssm: Arc<OnceLock<ParameterStore>>,
    events: Arc<OnceLock<EventBus>>,
    github: Arc<OnceLock<GitHub>>,
    ecs: Arc<OnceLock<Services>>,
    sns: Arc<OnceLock<Topics>>,
    hub: Arc<OnceLock<Hub>>,
}

impl Sinks {
    pub fn from_config(config: &SdkConfig, github: &GitHubSettings) -> Self {
        Self {
            config: config.clone(),
            github_settings: github.clone(),
            ssm: Arc::default(),
            events: Arc::default(),
            github: Arc::default(),
            ecs: Arc::default(),
            sns: Arc::default(),
            hub: Arc::default(),
        }
    }

    fn sns(&self) -> &Topics {
        self.sns
            .get_or_init(|| Topics::new(aws_sdk_sns::Client::new(&self.config)))
    }

    fn hub(&self) -> &Hub {
        self.hub.get_or_init(|| {
            let region = self
                .config
                .region()
                .map(|r| r.to_string())
                .unwrap_or_default();
            Hub::new(aws_sdk_securityhub::Client::new(&self.config), &region)
        })
    }

    fn ecs(&self) -> &Services {
        self.ecs
            .get_or_init(|| Services::new(aws_sdk_ecs::Client::new(&self.config)))
    }

    fn ssm(&self) -> &ParameterStore {
        self.ssm
            .get_or_init(|| ParameterStore::new(aws_sdk_ssm::Client::new(&self.config)))
    }

    fn events(&self) -> &EventBus {
        self.events
            .get_or_init(|| EventBus::new(aws_sdk_eventbridge::Client::new(&self.config)))
    }

    fn github(&self) -> &GitHub {
        self.github.get_or_init(|| {
            GitHub::new(
                self.github_settings
                    .api_base
                    .as_deref()
                    .unwrap_or(DEFAULT_API_BASE),
                self.github_settings.token_secret.clone(),
                SecretsManager::new(aws_sdk_secretsmanager::Client::new(&self.config)),
            )
        })
    }
}

impl Delivery for Sinks {
    async fn put_parameter(
        &self,
        name: &str,
        kms_key: Option<&str>,
        value: &SecretText,
    ) -> ApiResult<()> {
        self.ssm().put(name, kms_key, value).await
    }

    async fn github_public_key(&self, scope: &GitHubScope) -> ApiResult<SealingKey> {
        self.github().public_key(scope).await
    }

    async fn github_put_secret(
        &self,
        scope: &GitHubScope,
        name: &str,
        key: &SealingKey,
        value: &SecretText,
    ) -> ApiResult<()> {
        self.github().put_secret(scope, name, key, value).await
    }

    async fn publish(&self, event: &KeyEvent) -> ApiResult<()> {
        self.events().publish(event).await
    }

    async fn notify(&self, topic: &str, notice: &Notice) -> ApiResult<()> {
        self.sns().publish(topic, notice).await
    }

    async fn ecs_force_deployment(&self, cluster: &str, service: &str) -> ApiResult<()> {
        self.ecs().force_deployment(cluster, service).await
    }

    async fn ecs_rollout(&self, cluster: &str, service: &str) -> ApiResult<Option<Rollout>> {
        self.ecs().rollout(cluster, service).await
    }

    async fn github_dispatch(
        &self,
        owner: &str,
        repo: &str,
        workflow: &str,
        git_ref: &str,
    ) -> ApiResult<()> {
        self.github().dispatch(owner, repo, workflow, git_ref).await
    }

    async fn github_last_run(
        &self,
        owner: &str,
        repo: &str,
        workflow: &str,
        git_ref: &str,
    ) -> ApiResult<Option<Rollout>> {
        self.github().last_run(owner, repo, workflow, git_ref).await
    }

    async fn hub_import(&self, hub_account: &str, findings: &[HubFinding]) -> ApiResult<HubImport> {
        self.hub().import(hub_account, findings).await
    }

    async fn hub_active(
        &self,
        hub_account: &str,
        prefix: &str,
        next: Option<String>,
    ) -> ApiResult<HubPage> {
        self.hub().active(hub_account, prefix, next).await
    }

    async fn hub_resolved(&self, hub_account: &str, ids: &[String]) -> ApiResult<()> {
        self.hub().resolved(hub_account, ids).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn built(s: &Sinks) -> [bool; 4] {
        [
            s.ssm.get().is_some(),
            s.events.get().is_some(),
            s.github.get().is_some(),
            s.ecs.get().is_some(),
        ]
    }

    /// A process that delivers nowhere builds no sink's client; each is built on its first use,
    /// once, and shared by the clones the rotator's tasks hold.
    #[test]
    fn clients_are_built_on_first_use_only() {
        let config = SdkConfig::builder()
            .behavior_version(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new("us-east-1"))
            .build();
        let sinks = Sinks::from_config(&config, &GitHubSettings::default());
        let clone = sinks.clone();
        assert_eq!(built(&sinks), [false, false, false, false]);
        sinks.ssm();
        assert_eq!(built(&clone), [true, false, false, false]);
        clone.events();
        clone.github();
        assert_eq!(built(&sinks), [true, true, true, false]);
        clone.ecs();
        assert_eq!(built(&sinks), [true, true, true, true]);
    }
}
