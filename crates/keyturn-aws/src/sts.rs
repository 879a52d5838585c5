//! [`IdentityCheck`] over `aws-sdk-sts`: GetCallerIdentity signed with the key under test; the
//! caller's own identity; and a member account's role by AssumeRole, renewed as it expires.

use std::sync::Mutex;

use aws_credential_types::provider::{self, error::CredentialsError, ProvideCredentials};
use aws_credential_types::Credentials;
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

    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        Self::new(Client::new(config))
    }

    /// The account and ARN of the configuration's own credentials.
    pub async fn caller(&self) -> ApiResult<Identity> {
        let out = self
            .base
            .get_caller_identity()
            .send()
            .await
            .map_err(from_sdk)?;
        identity(&out, "GetCallerIdentity")
    }

    /// One AssumeRole call: the role's temporary credentials (their `Debug` redacts the secret).
    pub async fn assume(
        &self,
        role_arn: &str,
        session_name: &str,
        external_id: Option<&str>,
    ) -> ApiResult<Credentials> {
        let out = self
            .base
            .assume_role()
            .role_arn(role_arn)
            .role_session_name(session_name)
            .set_external_id(external_id.map(str::to_string))
            .duration_seconds(3600)
            .send()
            .await
            .map_err(from_sdk)?;
        let c = out
            .credentials()
            .ok_or_else(|| malformed("AssumeRole returned no credentials"))?;
        let expiry = std::time::SystemTime::try_from(*c.expiration()).ok();
        Ok(Credentials::new(
            c.access_key_id(),
            c.secret_access_key(),
            Some(c.session_token().to_string()),
            expiry,
            "keyturn-assume-role",
        ))
    }
}

/// GetCallerIdentity's account and ARN; `call` names the call in the error when either is missing.
fn identity(
    out: &aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityOutput,
    call: &str,
) -> ApiResult<Identity> {
    match (out.account(), out.arn()) {
        (Some(account), Some(arn)) => Ok(Identity {
            account: account.to_string(),
            arn: arn.to_string(),
        }),
        _ => Err(malformed(&format!("{call} returned no account or ARN"))),
    }
}

fn malformed(message: &str) -> ApiError {
    ApiError::Other {
        code: "MalformedResponse".into(),
        message: message.into(),
    }
}

/// A member account's role as a credentials provider: the credentials of the AssumeRole call that
/// proved the role could be assumed first, then a new AssumeRole whenever the SDK's credentials
/// cache finds them about to expire (a long run outlives one session).
#[derive(Debug)]
pub struct AssumedRole {
    sts: Sts,
    role_arn: String,
    session_name: String,
    external_id: Option<String>,
    first: Mutex<Option<Credentials>>,
}

impl AssumedRole {
    /// Assumes the role once; the error is the AssumeRole call's.
    pub async fn assume(
        sts: Sts,
        role_arn: &str,
        session_name: &str,
        external_id: Option<&str>,
    ) -> ApiResult<Self> {
        let first = sts.assume(role_arn, session_name, external_id).await?;
        Ok(Self {
            sts,
            role_arn: role_arn.to_string(),
            session_name: session_name.to_string(),
            external_id: external_id.map(str::to_string),
            first: Mutex::new(Some(first)),
        })
    }
}

impl ProvideCredentials for AssumedRole {
    fn provide_credentials<'a>(&'a self) -> provider::future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        provider::future::ProvideCredentials::new(async move {
            let first = self.first.lock().ok().and_then(|mut f| f.take());
            match first {
                Some(c) => Ok(c),
                None => self
                    .sts
                    .assume(
                        &self.role_arn,
                        &self.session_name,
                        self.external_id.as_deref(),
                    )
                    .await
                    .map_err(|e| {
                        CredentialsError::provider_error(format!(
                            "renewing the session of {} failed: {e}",
                            self.role_arn
                        ))
                    }),
            }
        })
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
        identity(&out, &format!("GetCallerIdentity for key {}", key.id))
    }
}
