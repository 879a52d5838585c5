//! `keyturn credential-process`: the AWS credential_process JSON for AWSCURRENT's key.

use crate::setup::AwsRotator;
use anyhow::{bail, Context};
use keyturn_core::error::rfc3339;
use keyturn_core::ports::{Clock, SecretStore, VersionRef, AWSCURRENT};
use keyturn_core::SecretValue;
use serde_json::json;

use crate::args::CredentialProcessArgs;

pub async fn run(r: &AwsRotator, a: CredentialProcessArgs) -> anyhow::Result<bool> {
    let text = r
        .store()
        .value(&a.secret_id, &VersionRef::Label(AWSCURRENT))
        .await
        .with_context(|| format!("secret {}: reading AWSCURRENT failed", a.secret_id))?;
    let Some(text) = text else {
        // No value: the secret is missing (DescribeSecret says so, with what to check), or it
        // has no AWSCURRENT version yet.
        r.describe(&a.secret_id).await?;
        bail!(
            "secret {} has no AWSCURRENT value yet: rotate it once (keyturn rotate {}) or put a key in it",
            a.secret_id,
            a.secret_id
        );
    };
    let value =
        SecretValue::parse(&text).map_err(|e| anyhow::anyhow!("secret {}: {e}", a.secret_id))?;
    let key = value
        .key()
        .with_context(|| format!("secret {} holds no access key", a.secret_id))?;
    let expiration = r.clock().now() + time::Duration::minutes(a.refresh_minutes.into());
    crate::render::print_credentials(
        &json!({"Version": 1, "AccessKeyId": key.id, "SecretAccessKey": key.secret.expose(), "Expiration": rfc3339(expiration)}),
    );
    Ok(true)
}
