//! `keyturn enroll`: a new secret holding a fresh key, or `--adopt` of a hand-made one.

use anyhow::{bail, Context};
use aws_sdk_secretsmanager::types::{RotationRulesType, Tag};
use keyturn_aws::AwsRotator;
use keyturn_core::error::rfc3339;
use keyturn_core::ports::{AccessKeys, Iam, IdentityCheck, SecretStore, VersionRef, AWSCURRENT};
use keyturn_core::rotation::{ENROLLED_AT_TAG, MANAGED_TAG, USER_TAG};
use keyturn_core::SecretValue;
use serde_json::{json, Value};

use crate::args::EnrollArgs;

pub async fn enroll(r: &AwsRotator, a: &EnrollArgs) -> anyhow::Result<Value> {
    match (&a.adopt, &a.user) {
        (Some(secret), _) => adopt(r, secret, a).await,
        (None, Some(user)) => enroll_user(r, user, a).await,
        (None, None) => bail!("name a USER to enroll, or --adopt SECRET"),
    }
}

async fn enroll_user(r: &AwsRotator, user: &str, a: &EnrollArgs) -> anyhow::Result<Value> {
    let name = a
        .secret_name
        .clone()
        .unwrap_or_else(|| format!("keyturn/{user}"));
    let iam = r.iam().own();
    let keys = iam
        .list(user)
        .await
        .with_context(|| format!("user {user}: ListAccessKeys failed (does the user exist?)"))?;
    if keys.len() >= 2 {
        let ids: Vec<&str> = keys.iter().map(|k| k.id.as_str()).collect();
        bail!(
            "user {user} already has two access keys ({}); IAM allows no third. Adopt the secret that holds one \
             (keyturn enroll --adopt SECRET) or delete the key nothing uses, then enroll again",
            ids.join(", ")
        );
    }
    let key = iam
        .create(user)
        .await
        .with_context(|| format!("user {user}: CreateAccessKey failed"))?;
    let key_id = key.id.clone();
    let value = SecretValue::canonical(user, key).render();
    let now = rfc3339(time::OffsetDateTime::now_utc());
    let mut tags = vec![
        tag(MANAGED_TAG, "true"),
        tag(USER_TAG, user),
        tag(ENROLLED_AT_TAG, &now),
    ];
    tags.extend(a.tags.iter().map(|(k, v)| tag(k, v)));
    let created = r
        .store()
        .client()
        .create_secret()
        .name(&name)
        .secret_string(value.expose())
        .set_tags(Some(tags))
        .send()
        .await;
    let arn = match created {
        Ok(out) => out.arn().unwrap_or(&name).to_string(),
        Err(e) => {
            let cause = keyturn_aws::errors::from_sdk(e);
            let cleanup = match iam.delete(user, &key_id).await {
                Ok(()) => format!("key {key_id} was deleted again"),
                Err(d) => format!("deleting key {key_id} failed too ({d}): delete it by hand"),
            };
            bail!("secret {name}: CreateSecret failed ({cause}); {cleanup}");
        }
    };
    let scheduled = schedule(r, &name, a).await?;
    Ok(
        json!({"secret": name, "arn": arn, "user": user, "outcome": "enrolled", "keyId": key_id, "scheduled": scheduled}),
    )
}

async fn adopt(r: &AwsRotator, secret: &str, a: &EnrollArgs) -> anyhow::Result<Value> {
    let store = r.store();
    let info = store
        .describe(secret)
        .await
        .with_context(|| format!("secret {secret}: DescribeSecret failed"))?;
    let text = store
        .value(secret, &VersionRef::Label(AWSCURRENT))
        .await
        .with_context(|| format!("secret {secret}: reading AWSCURRENT failed"))?
        .with_context(|| format!("secret {secret} has no AWSCURRENT value to adopt"))?;
    let value = SecretValue::parse(&text)
        .map_err(|e| anyhow::anyhow!("secret {secret}: {e}; keyturn cannot adopt it"))?;
    let user = value
        .user_name()
        .map(str::to_string)
        .or_else(|| a.adopt_user.clone())
        .or_else(|| info.tags.get(USER_TAG).cloned())
        .with_context(|| format!("secret {secret}: the value names no user; pass --user USER"))?;
    if let Some(key) = value.key() {
        // The key must be the user's and must work: rotating a broken secret would only hide it.
        let keys = r
            .iam()
            .own()
            .list(&user)
            .await
            .with_context(|| format!("user {user}: ListAccessKeys failed"))?;
        if !keys.iter().any(|k| k.id == key.id) {
            bail!(
                "secret {secret}: key {} is not one of user {user}'s keys; fix the value or --user",
                key.id
            );
        }
        let who =
            r.verifier().whoami(key).await.with_context(|| {
                format!("secret {secret}: key {} does not authenticate", key.id)
            })?;
        if !who.arn.ends_with(&format!("/{user}")) {
            bail!(
                "secret {secret}: key {} authenticates as {}, not user {user}",
                key.id,
                who.arn
            );
        }
    }
    let mut tags = vec![
        (MANAGED_TAG.to_string(), "true".to_string()),
        (
            ENROLLED_AT_TAG.to_string(),
            rfc3339(time::OffsetDateTime::now_utc()),
        ),
    ];
    if value.user_name().is_none() {
        tags.push((USER_TAG.to_string(), user.clone()));
    }
    tags.extend(a.tags.iter().cloned());
    store
        .tag(secret, &tags)
        .await
        .with_context(|| format!("secret {secret}: TagResource failed"))?;
    let scheduled = schedule(r, secret, a).await?;
    Ok(
        json!({"secret": info.name, "arn": info.arn, "user": user, "outcome": "adopted", "shape": value.shape().name(),
        "keyId": value.access_key_id(), "scheduled": scheduled}),
    )
}

/// Attaches the rotation schedule without rotating now.
async fn schedule(r: &AwsRotator, secret: &str, a: &EnrollArgs) -> anyhow::Result<bool> {
    let Some(function) = &a.rotation_lambda else {
        return Ok(false);
    };
    r.store()
        .client()
        .rotate_secret()
        .secret_id(secret)
        .rotation_lambda_arn(function)
        .rotation_rules(
            RotationRulesType::builder()
                .automatically_after_days(a.rotate_every)
                .build(),
        )
        .rotate_immediately(false)
        .send()
        .await
        .map_err(keyturn_aws::errors::from_sdk)
        .with_context(|| {
            format!("secret {secret}: scheduling rotation with {function} failed (RotateSecret)")
        })?;
    Ok(true)
}

fn tag(k: &str, v: &str) -> Tag {
    Tag::builder().key(k).value(v).build()
}
