//! [`SecretStore`] over `aws-sdk-secretsmanager`.

use std::collections::BTreeMap;

use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, RotationRulesType, Tag};
use aws_sdk_secretsmanager::Client;
use keyturn_core::ports::{
    ApiError, ApiResult, SecretInfo, SecretStore, StoredValue, VersionRef, AWSPENDING,
};
use keyturn_core::SecretText;

use crate::errors::from_sdk;
use crate::time::to_offset;

/// Secrets Manager, one SDK call per method.
#[derive(Debug, Clone)]
pub struct SecretsManager {
    client: Client,
}

impl SecretsManager {
    pub fn new(client: Client) -> Self {
        Self { client }
    }
}

impl SecretStore for SecretsManager {
    async fn describe(&self, secret_id: &str) -> ApiResult<SecretInfo> {
        let out = self
            .client
            .describe_secret()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(from_sdk)?;
        Ok(SecretInfo {
            arn: out.arn().unwrap_or_default().to_string(),
            name: out.name().unwrap_or(secret_id).to_string(),
            rotation_enabled: out.rotation_enabled().unwrap_or(false),
            versions: stages(out.version_ids_to_stages()),
            tags: tag_map(out.tags()),
            last_rotated: out.last_rotated_date().and_then(to_offset),
            next_rotation: out.next_rotation_date().and_then(to_offset),
            rotation_days: out
                .rotation_rules()
                .and_then(|r| r.automatically_after_days()),
        })
    }

    async fn stored(
        &self,
        secret_id: &str,
        version: &VersionRef,
    ) -> ApiResult<Option<StoredValue>> {
        let req = self.client.get_secret_value().secret_id(secret_id);
        let req = match version {
            VersionRef::Label(label) => req.version_stage(*label),
            VersionRef::Id(id) => req.version_id(id),
            VersionRef::IdWithLabel(id, label) => req.version_id(id).version_stage(*label),
        };
        match req.send().await.map_err(from_sdk) {
            Ok(out) => Ok(out.secret_string().map(|t| StoredValue {
                text: SecretText::new(t),
                created: out.created_date().and_then(to_offset),
            })),
            // The version does not exist, or exists with no value yet (what RotateSecret leaves).
            Err(ApiError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn put_pending(&self, secret_id: &str, token: &str, value: &SecretText) -> ApiResult<()> {
        self.client
            .put_secret_value()
            .secret_id(secret_id)
            .client_request_token(token)
            .secret_string(value.expose())
            .version_stages(AWSPENDING)
            .send()
            .await
            .map_err(from_sdk)?;
        Ok(())
    }

    async fn move_label(
        &self,
        secret_id: &str,
        label: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> ApiResult<()> {
        self.client
            .update_secret_version_stage()
            .secret_id(secret_id)
            .version_stage(label)
            .set_move_to_version_id(to.map(str::to_string))
            .set_remove_from_version_id(from.map(str::to_string))
            .send()
            .await
            .map_err(from_sdk)?;
        Ok(())
    }

    async fn list_tagged(
        &self,
        tag_key: &str,
        tag_value: Option<&str>,
    ) -> ApiResult<Vec<SecretInfo>> {
        let filter = |key: FilterNameStringType, value: &str| {
            Filter::builder().key(key).values(value).build()
        };
        let mut filters = vec![filter(FilterNameStringType::TagKey, tag_key)];
        filters.extend(tag_value.map(|v| filter(FilterNameStringType::TagValue, v)));
        let mut found = Vec::new();
        let mut pages = self
            .client
            .list_secrets()
            .set_filters(Some(filters))
            .max_results(100)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(from_sdk)?;
            found.extend(page.secret_list().iter().filter_map(|s| {
                Some(SecretInfo {
                    arn: s.arn().unwrap_or_default().to_string(),
                    name: s.name()?.to_string(),
                    rotation_enabled: s.rotation_enabled().unwrap_or(false),
                    versions: stages(s.secret_versions_to_stages()),
                    tags: tag_map(s.tags()),
                    last_rotated: s.last_rotated_date().and_then(to_offset),
                    next_rotation: s.next_rotation_date().and_then(to_offset),
                    rotation_days: s
                        .rotation_rules()
                        .and_then(|r| r.automatically_after_days()),
                })
            }));
        }
        Ok(found)
    }

    async fn create(
        &self,
        name: &str,
        value: &SecretText,
        tags: &[(String, String)],
    ) -> ApiResult<String> {
        let out = self
            .client
            .create_secret()
            .name(name)
            .secret_string(value.expose())
            .set_tags(Some(sdk_tags(tags)))
            .send()
            .await
            .map_err(from_sdk)?;
        Ok(out.arn().unwrap_or(name).to_string())
    }

    async fn schedule(&self, secret_id: &str, lambda_arn: &str, days: i64) -> ApiResult<()> {
        self.client
            .rotate_secret()
            .secret_id(secret_id)
            .rotation_lambda_arn(lambda_arn)
            .rotation_rules(
                RotationRulesType::builder()
                    .automatically_after_days(days)
                    .build(),
            )
            .rotate_immediately(false)
            .send()
            .await
            .map_err(from_sdk)?;
        Ok(())
    }

    async fn tag(&self, secret_id: &str, tags: &[(String, String)]) -> ApiResult<()> {
        let tags = sdk_tags(tags);
        self.client
            .tag_resource()
            .secret_id(secret_id)
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(from_sdk)?;
        Ok(())
    }
}

fn sdk_tags(tags: &[(String, String)]) -> Vec<Tag> {
    tags.iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

/// Version id → labels, as DescribeSecret and ListSecrets return them.
fn stages(
    map: Option<&std::collections::HashMap<String, Vec<String>>>,
) -> BTreeMap<String, Vec<String>> {
    map.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

fn tag_map(tags: &[Tag]) -> BTreeMap<String, String> {
    tags.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}
