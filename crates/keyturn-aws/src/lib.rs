//! keyturn-aws: thin adapters from keyturn-core's ports to the AWS SDK for Rust, and to GitHub's
//! REST API for the Actions-secrets sink (`github`).
//!
//! One SDK call per port method; every SDK error goes through [`errors::from_sdk`], the one place
//! that classifies errors (and so decides what is transient). Clients are built once per process
//! from one `SdkConfig` ([`Aws::from_config`]); signing with a key held in a secret derives a
//! client from the same configuration without I/O.

pub mod delivery;
pub mod ecs;
pub mod errors;
pub mod events;
pub mod github;
pub mod iam;
pub mod org;
pub mod probe;
pub mod secrets;
pub mod securityhub;
pub mod sns;
pub mod ssm;
pub mod stack;
pub mod sts;
pub mod time;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::SdkConfig;

pub use delivery::{GitHubSettings, Sinks};
pub use iam::{IamClients, IamKeys};
pub use org::{OrgAccount, Organization};
pub use secrets::SecretsManager;
pub use sts::{AssumedRole, Sts};
pub use time::SystemClock;

/// Whether a log event may be written, whatever level a filter asks for: events at TRACE come from
/// keyturn's own crates only. The SDK's orchestrator traces every request with its body
/// (PutSecretValue's SecretString, PutParameter's value, AssumeRole's ExternalId) and only redacts
/// sensitive responses, so `RUST_LOG=trace` would print a secret access key; hyper and rustls
/// trace what they send too. Both binaries install this as a filter on every event.
pub fn loggable(metadata: &tracing::Metadata<'_>) -> bool {
    *metadata.level() != tracing::Level::TRACE || metadata.target().starts_with("keyturn")
}

/// keyturn-core's ports, implemented against AWS (and GitHub for the sinks): the bundle a binary
/// gives `Rotator::from_ports`. The adapters implement ports and know nothing of the engine.
pub type AwsPorts = (SecretsManager, IamClients, Sts, SystemClock, Sinks);

/// Retries and timeouts for every keyturn client: bounded attempts with the SDK's standard
/// exponential backoff (which also handles throttling), and timeouts so a hung call cannot eat the
/// Lambda's whole duration.
pub fn retry_config() -> RetryConfig {
    RetryConfig::standard().with_max_attempts(4)
}

pub fn timeout_config() -> TimeoutConfig {
    TimeoutConfig::builder()
        .connect_timeout(Duration::from_secs(3))
        .operation_attempt_timeout(Duration::from_secs(10))
        .operation_timeout(Duration::from_secs(30))
        .build()
}

/// Resolves the configuration's credentials once, before any call, so that a missing source, an
/// unknown profile or a broken credential process is reported as what it is (the SDK would report
/// it later as a failure to dispatch a request). The message never holds a credential.
pub async fn check_credentials(config: &SdkConfig, profile: Option<&str>) -> Result<(), String> {
    use aws_credential_types::provider::error::CredentialsError;
    use aws_credential_types::provider::ProvideCredentials;
    let Some(provider) = config.credentials_provider() else {
        return Err("no AWS credentials provider is configured".into());
    };
    let Err(e) = provider.provide_credentials().await else {
        return Ok(());
    };
    let cause = aws_smithy_types::error::display::DisplayErrorContext(&e);
    Err(match (profile, &e) {
        (Some(p), CredentialsError::CredentialsNotLoaded(_)) => format!(
            "profile {p} was not found in ~/.aws/config or ~/.aws/credentials, or holds no credentials: check the name (aws configure list-profiles), or drop --profile to use the environment's credentials"
        ),
        (Some(p), _) => format!(
            "profile {p}: its credentials could not be loaded ({cause}); check that the profile exists in ~/.aws/config or ~/.aws/credentials (aws configure list-profiles) and, for SSO, run aws sso login --profile {p}"
        ),
        (None, CredentialsError::CredentialsNotLoaded(_)) => "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, name a profile with --profile or AWS_PROFILE, or run where a role provides them".to_string(),
        (None, _) => format!("the AWS credentials could not be loaded: {cause}"),
    })
}

/// A member account's configuration: `config` (region, endpoint, retries, timeouts) signed by the
/// account's role.
pub fn role_config(config: &SdkConfig, role: AssumedRole) -> SdkConfig {
    config
        .to_builder()
        .credentials_provider(aws_credential_types::provider::SharedCredentialsProvider::new(role))
        .build()
}

/// Static credentials for a key held in a secret (their `Debug` redacts the secret).
pub(crate) fn credentials(key: &keyturn_core::AccessKey) -> aws_credential_types::Credentials {
    aws_credential_types::Credentials::new(
        key.id.clone(),
        key.secret.expose().to_string(),
        None,
        None,
        "keyturn-secret",
    )
}

/// The SDK clients keyturn uses, built once.
#[derive(Debug, Clone)]
pub struct Aws {
    pub secrets: SecretsManager,
    pub iam: IamClients,
    pub sts: Sts,
    pub sinks: Sinks,
}

impl Aws {
    pub fn from_config(config: &SdkConfig, github: &GitHubSettings) -> Self {
        Self {
            secrets: SecretsManager::new(aws_sdk_secretsmanager::Client::new(config)),
            iam: IamClients::new(aws_sdk_iam::Client::new(config)),
            sts: Sts::new(aws_sdk_sts::Client::new(config)),
            sinks: Sinks::from_config(config, github),
        }
    }

    /// The clients as keyturn-core's ports, with the system clock.
    pub fn ports(self) -> AwsPorts {
        (self.secrets, self.iam, self.sts, SystemClock, self.sinks)
    }
}
