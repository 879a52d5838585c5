//! The SSM sink over `aws-sdk-ssm`: one PutParameter per delivery.

use aws_sdk_ssm::types::ParameterType;
use aws_sdk_ssm::Client;
use keyturn_core::ports::ApiResult;
use keyturn_core::SecretText;

use crate::errors::from_sdk;

/// SSM Parameter Store.
#[derive(Debug, Clone)]
pub struct ParameterStore {
    client: Client,
}

impl ParameterStore {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// PutParameter: a SecureString, overwritten (a new parameter version each time; rewriting
    /// the same value is harmless), with `kms_key` or SSM's default key `alias/aws/ssm`.
    pub async fn put(
        &self,
        name: &str,
        kms_key: Option<&str>,
        value: &SecretText,
    ) -> ApiResult<()> {
        self.client
            .put_parameter()
            .name(name)
            .value(value.expose())
            .r#type(ParameterType::SecureString)
            .overwrite(true)
            .set_key_id(kms_key.map(str::to_string))
            .description("managed by keyturn: the current access key of a rotated secret")
            .send()
            .await
            .map_err(from_sdk)?;
        Ok(())
    }
}
