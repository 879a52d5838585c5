//! Permission probes for `keyturn org check`: each action keyturn needs, tried with a call that
//! changes nothing. Calls that write name a user and a secret that do not exist (random names the
//! caller brings), so IAM and Secrets Manager answer "not found" when the action is allowed and
//! "access denied" when it is not; nothing is created, changed or deleted.

use aws_config::SdkConfig;
use keyturn_core::ports::{ApiError, ApiResult};

use crate::errors::from_sdk;

/// An action keyturn needs in a member account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    GenerateCredentialReport,
    GetCredentialReport,
    ListAccessKeys,
    GetUser,
    CreateAccessKey,
    UpdateAccessKey,
    DeleteAccessKey,
    ListSecrets,
    DescribeSecret,
    GetSecretValue,
    PutSecretValue,
    UpdateSecretVersionStage,
    TagResource,
}

impl Probe {
    /// The IAM policy action.
    pub fn action(self) -> &'static str {
        match self {
            Probe::GenerateCredentialReport => "iam:GenerateCredentialReport",
            Probe::GetCredentialReport => "iam:GetCredentialReport",
            Probe::ListAccessKeys => "iam:ListAccessKeys",
            Probe::GetUser => "iam:GetUser",
            Probe::CreateAccessKey => "iam:CreateAccessKey",
            Probe::UpdateAccessKey => "iam:UpdateAccessKey",
            Probe::DeleteAccessKey => "iam:DeleteAccessKey",
            Probe::ListSecrets => "secretsmanager:ListSecrets",
            Probe::DescribeSecret => "secretsmanager:DescribeSecret",
            Probe::GetSecretValue => "secretsmanager:GetSecretValue",
            Probe::PutSecretValue => "secretsmanager:PutSecretValue",
            Probe::UpdateSecretVersionStage => "secretsmanager:UpdateSecretVersionStage",
            Probe::TagResource => "secretsmanager:TagResource",
        }
    }
}

/// A key id of the right form that no key has: IAM key ids are random, this one is a constant.
const NO_KEY: &str = "AKIAKEYTURNORGCHECK0";

/// Probes one account's permissions with its configuration's credentials.
#[derive(Debug, Clone)]
pub struct Prober {
    iam: aws_sdk_iam::Client,
    secrets: aws_sdk_secretsmanager::Client,
    /// A user name and a secret name that do not exist (random).
    user: String,
    secret: String,
}

impl Prober {
    pub fn new(config: &SdkConfig, absent_user: &str, absent_secret: &str) -> Self {
        Self::from_clients(
            aws_sdk_iam::Client::new(config),
            aws_sdk_secretsmanager::Client::new(config),
            absent_user,
            absent_secret,
        )
    }

    pub fn from_clients(
        iam: aws_sdk_iam::Client,
        secrets: aws_sdk_secretsmanager::Client,
        absent_user: &str,
        absent_secret: &str,
    ) -> Self {
        Self {
            iam,
            secrets,
            user: absent_user.to_string(),
            secret: absent_secret.to_string(),
        }
    }

    /// Whether the action is allowed: `false` on access denied, `true` on success or on an answer
    /// given only after the request was authorised (not found, invalid in the resource's state, no
    /// report yet); an answer that says nothing about the permission (a validation error,
    /// throttled, unreachable, credentials rejected) is returned as the error it is.
    pub async fn allowed(&self, probe: Probe) -> ApiResult<bool> {
        let (iam, sm, user, secret) = (&self.iam, &self.secrets, &self.user, &self.secret);
        let result: ApiResult<()> = match probe {
            Probe::GenerateCredentialReport => iam
                .generate_credential_report()
                .send()
                .await
                .map(drop)
                .map_err(from_sdk),
            Probe::GetCredentialReport => iam
                .get_credential_report()
                .send()
                .await
                .map(drop)
                .map_err(from_sdk),
            Probe::ListAccessKeys => iam
                .list_access_keys()
                .user_name(user)
                .send()
                .await
                .map(drop)
                .map_err(from_sdk),
            Probe::GetUser => iam
                .get_user()
                .user_name(user)
                .send()
                .await
                .map(drop)
                .map_err(from_sdk),
            Probe::CreateAccessKey => {
                match iam.create_access_key().user_name(user).send().await {
                    // The user cannot exist (a random name); were it there, its new key goes
                    // at once.
                    Ok(out) => {
                        if let Some(k) = out.access_key() {
                            let _ = iam
                                .delete_access_key()
                                .user_name(user)
                                .access_key_id(k.access_key_id())
                                .send()
                                .await;
                        }
                        Ok(())
                    }
                    Err(e) => Err(from_sdk(e)),
                }
            }
            Probe::UpdateAccessKey => iam
                .update_access_key()
                .user_name(user)
                .access_key_id(NO_KEY)
                .status(aws_sdk_iam::types::StatusType::Inactive)
                .send()
                .await
                .map(drop)
                .map_err(from_sdk),
            Probe::DeleteAccessKey => iam
                .delete_access_key()
                .user_name(user)
                .access_key_id(NO_KEY)
                .send()
                .await
                .map(drop)
                .map_err(from_sdk),
            Probe::ListSecrets => sm
                .list_secrets()
                .max_results(1)
                .send()
                .await
                .map(drop)
                .map_err(from_sdk),
            Probe::DescribeSecret => sm
                .describe_secret()
                .secret_id(secret)
                .send()
                .await
                .map(drop)
                .map_err(from_sdk),
            Probe::GetSecretValue => sm
                .get_secret_value()
                .secret_id(secret)
                .send()
                .await
                .map(drop)
                .map_err(from_sdk),
            Probe::PutSecretValue => sm
                .put_secret_value()
                .secret_id(secret)
                .secret_string("{}")
                .send()
                .await
                .map(drop)
                .map_err(from_sdk),
            Probe::UpdateSecretVersionStage => sm
                .update_secret_version_stage()
                .secret_id(secret)
                .version_stage("keyturn-org-check")
                .send()
                .await
                .map(drop)
                .map_err(from_sdk),
            Probe::TagResource => sm
                .tag_resource()
                .secret_id(secret)
                .tags(
                    aws_sdk_secretsmanager::types::Tag::builder()
                        .key("keyturn:org-check")
                        .value("probe")
                        .build(),
                )
                .send()
                .await
                .map(drop)
                .map_err(from_sdk),
        };
        match result {
            Ok(()) => Ok(true),
            Err(ApiError::AccessDenied(_)) => Ok(false),
            Err(ApiError::NotFound(_) | ApiError::InvalidRequest(_)) => Ok(true),
            // No report yet, or one being made: the call was authorised.
            Err(ApiError::Other { code, .. })
                if matches!(
                    code.as_str(),
                    "ReportNotPresent" | "ReportExpired" | "ReportInProgress"
                ) =>
            {
                Ok(true)
            }
            Err(e) => Err(e),
        }
    }
}
