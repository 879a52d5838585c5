//! keyturn-aws: thin adapters from keyturn-core's ports to the AWS SDK for Rust.
//!
//! One SDK call per port method; every SDK error goes through [`errors::from_sdk`], the one place
//! that classifies errors (and so decides what is transient). Clients are built once per process
//! from one `SdkConfig` ([`Aws::from_config`]); signing with a key held in a secret derives a
//! client from the same configuration without I/O.

pub mod errors;
pub mod iam;
pub mod secrets;
pub mod sts;
pub mod time;

use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::SdkConfig;
use keyturn_core::{RotationSettings, Rotator};

pub use iam::{IamClients, IamKeys};
pub use secrets::SecretsManager;
pub use sts::Sts;
pub use time::SystemClock;

/// The rotator wired to AWS.
pub type AwsRotator = Rotator<SecretsManager, IamClients, Sts, SystemClock>;

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
}

impl Aws {
    pub fn from_config(config: &SdkConfig) -> Self {
        Self {
            secrets: SecretsManager::new(aws_sdk_secretsmanager::Client::new(config)),
            iam: IamClients::new(aws_sdk_iam::Client::new(config)),
            sts: Sts::new(aws_sdk_sts::Client::new(config)),
        }
    }

    pub fn rotator(self, settings: RotationSettings) -> AwsRotator {
        Rotator::new(self.secrets, self.iam, self.sts, SystemClock, settings)
    }
}
