//! [`IdentityCheck`] over `aws-sdk-sts`: GetCallerIdentity signed with the key under test.

use aws_sdk_sts::Client;
use keyturn_core::ports::{ApiError, ApiResult, Identity, IdentityCheck};
use keyturn_core::AccessKey;

use crate::errors::from_sdk;

#[derive(Debug, Clone)]
pub struct Sts {
    base: Client,
}

impl Sts {
    pub fn new(base: Client) -> Self {
        Self { base }
    }
}

impl IdentityCheck for Sts {
    async fn whoami(&self, key: &AccessKey) -> ApiResult<Identity> {
        let creds = crate::credentials(key);
        // The SDK's standard retries absorb throttling and 5xx answers (its classifier never
        // retries a rejected key: InvalidClientTokenId is neither throttling nor transient), so a
        // throttled probe is not spent as a failed test; the rotation's own backoff decides when
        // to try a rejected new key again.
        let conf = self
            .base
            .config()
            .to_builder()
            .credentials_provider(creds)
            .retry_config(aws_sdk_sts::config::retry::RetryConfig::standard().with_max_attempts(3))
            .build();
        let out = Client::from_conf(conf)
            .get_caller_identity()
            .send()
            .await
            .map_err(from_sdk)?;
        match (out.account(), out.arn()) {
            (Some(account), Some(arn)) => Ok(Identity {
                account: account.to_string(),
                arn: arn.to_string(),
            }),
            _ => Err(ApiError::Other {
                code: "MalformedResponse".into(),
                message: format!(
                    "GetCallerIdentity for key {} returned no account or ARN",
                    key.id
                ),
            }),
        }
    }
}
