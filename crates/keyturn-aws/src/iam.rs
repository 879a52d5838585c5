//! [`AccessKeys`] and [`Iam`] over `aws-sdk-iam`.

use aws_sdk_iam::types::StatusType;
use aws_sdk_iam::Client;
use keyturn_core::ports::{AccessKeys, ApiError, ApiResult, Iam, KeyInfo, KeyStatus, KeyUse};
use keyturn_core::AccessKey;

use crate::errors::from_sdk;
use crate::time::to_offset;

/// IAM access-key calls made by one identity.
#[derive(Debug, Clone)]
pub struct IamKeys {
    client: Client,
}

impl IamKeys {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

/// Makes [`IamKeys`] for the process's own credentials or for a key held in a secret. Signed
/// clients share the base client's configuration (endpoint, region, retries, HTTP connections).
#[derive(Debug, Clone)]
pub struct IamClients {
    own: Client,
}

impl IamClients {
    pub fn new(own: Client) -> Self {
        Self { own }
    }
}

impl Iam for IamClients {
    type Keys = IamKeys;

    fn own(&self) -> IamKeys {
        IamKeys::new(self.own.clone())
    }

    fn signed_with(&self, key: &AccessKey) -> IamKeys {
        let creds = crate::credentials(key);
        let conf = self
            .own
            .config()
            .to_builder()
            .credentials_provider(creds)
            .build();
        IamKeys::new(Client::from_conf(conf))
    }
}

/// IAM answers "N/A" where a key was never used.
fn present(s: &str) -> Option<String> {
    (!s.is_empty() && s != "N/A").then(|| s.to_string())
}

impl AccessKeys for IamKeys {
    async fn list(&self, user: &str) -> ApiResult<Vec<KeyInfo>> {
        let out = self
            .client
            .list_access_keys()
            .user_name(user)
            .send()
            .await
            .map_err(from_sdk)?;
        out.access_key_metadata()
            .iter()
            .map(|m| {
                let id = m.access_key_id().ok_or_else(|| ApiError::Other {
                    code: "MalformedResponse".into(),
                    message: format!("ListAccessKeys for {user} returned a key without an id"),
                })?;
                Ok(KeyInfo {
                    id: id.to_string(),
                    status: match m.status() {
                        Some(StatusType::Active) => KeyStatus::Active,
                        _ => KeyStatus::Inactive,
                    },
                    created: m
                        .create_date()
                        .and_then(to_offset)
                        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
                })
            })
            .collect()
    }

    async fn user_path(&self, user: &str) -> ApiResult<String> {
        let out = self
            .client
            .get_user()
            .user_name(user)
            .send()
            .await
            .map_err(from_sdk)?;
        Ok(out
            .user()
            .map(|u| u.path().to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "/".into()))
    }

    async fn last_used(&self, key_id: &str) -> ApiResult<KeyUse> {
        let out = self
            .client
            .get_access_key_last_used()
            .access_key_id(key_id)
            .send()
            .await
            .map_err(from_sdk)?;
        Ok(out
            .access_key_last_used()
            .map(|u| KeyUse {
                last_used: u.last_used_date().and_then(to_offset),
                service: present(u.service_name()),
                region: present(u.region()),
            })
            .unwrap_or_default())
    }

    async fn create(&self, user: &str) -> ApiResult<AccessKey> {
        let out = self
            .client
            .create_access_key()
            .user_name(user)
            .send()
            .await
            .map_err(from_sdk)?;
        let key = out.access_key().ok_or_else(|| ApiError::Other {
            code: "MalformedResponse".into(),
            message: format!("CreateAccessKey for {user} returned no key"),
        })?;
        Ok(AccessKey::new(key.access_key_id(), key.secret_access_key()))
    }

    async fn delete(&self, user: &str, key_id: &str) -> ApiResult<()> {
        self.client
            .delete_access_key()
            .user_name(user)
            .access_key_id(key_id)
            .send()
            .await
            .map_err(from_sdk)?;
        Ok(())
    }

    async fn generate_report(&self) -> ApiResult<bool> {
        let out = self
            .client
            .generate_credential_report()
            .send()
            .await
            .map_err(from_sdk)?;
        Ok(out.state() == Some(&aws_sdk_iam::types::ReportStateType::Complete))
    }

    async fn report(&self) -> ApiResult<Vec<u8>> {
        let out = self
            .client
            .get_credential_report()
            .send()
            .await
            .map_err(from_sdk)?;
        Ok(out
            .content()
            .map(|b| b.as_ref().to_vec())
            .unwrap_or_default())
    }

    async fn set_status(&self, user: &str, key_id: &str, status: KeyStatus) -> ApiResult<()> {
        let status = match status {
            KeyStatus::Active => StatusType::Active,
            KeyStatus::Inactive => StatusType::Inactive,
        };
        self.client
            .update_access_key()
            .user_name(user)
            .access_key_id(key_id)
            .status(status)
            .send()
            .await
            .map_err(from_sdk)?;
        Ok(())
    }
}
