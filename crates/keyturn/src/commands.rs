//! The commands. Each returns whether everything it looked at is fine (exit 0) or not (exit 1).

use std::sync::Arc;

use anyhow::{bail, Context};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use keyturn_aws::{Aws, AwsRotator};
use keyturn_core::error::{describe_use, rfc3339};
use keyturn_core::ports::{Clock, SecretStore, VersionRef, AWSCURRENT};
use keyturn_core::rotation::{LocalMode, LocalRequest};
use keyturn_core::rules::{self, InUsePolicy, SweepPolicy};
use keyturn_core::state::{LastUse, Needs};
use keyturn_core::{tags, RotationSettings, SecretValue};
use serde::Serialize;
use serde_json::{json, Value};

use crate::render::{bulk, print_json, print_rows, text, Row};
use crate::safe::term;

use crate::args::{
    AwsArgs, Cli, Command, CredentialProcessArgs, Output, RotateArgs, StatusArgs, SweepArgs,
};

pub async fn run(cli: Cli) -> anyhow::Result<bool> {
    let config = sdk_config(&cli.aws).await?;
    let scope = rules::Scope::new(
        &cli.scope.prefix,
        &cli.scope.user_path,
        cli.scope.master_secrets.clone(),
    )
    .map_err(|e| anyhow::anyhow!("{e}: fix --prefix or --user-path"))?;
    let settings = RotationSettings {
        require_rotation_enabled: false,
        scope,
        ..RotationSettings::default()
    };
    let rotator = Arc::new(Aws::from_config(&config).rotator(settings));
    match cli.command {
        Command::Enroll(a) => {
            let out = crate::enroll::enroll(&rotator, &a).await?;
            let out = serde_json::to_value(&out)?;
            match cli.output {
                Output::Json | Output::Csv => print_json(&out),
                Output::Table => println!(
                    "{} {} for user {} ({}){}",
                    text(&out["outcome"]),
                    term(&text(&out["secret"])),
                    term(&text(&out["user"])),
                    match out["keyId"].as_str() {
                        Some(k) => format!("key {}", term(k)),
                        None => "no key yet: the first rotation makes one".into(),
                    },
                    if out["scheduled"] == true {
                        ", rotation scheduled"
                    } else {
                        ", no rotation scheduled (--rotation-lambda)"
                    }
                ),
            }
            Ok(true)
        }
        Command::Rotate(a) => rotate(rotator, a, cli.output).await,
        Command::Status(a) => status(&rotator, a, cli.output).await,
        Command::Sweep(a) => sweep(rotator, a, cli.output).await,
        Command::CredentialProcess(a) => credential_process(&rotator, a).await,
        Command::Audit(a) => crate::audit::run(rotator, a, cli.output).await,
    }
}

async fn sdk_config(a: &AwsArgs) -> anyhow::Result<SdkConfig> {
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .retry_config(keyturn_aws::retry_config())
        .timeout_config(keyturn_aws::timeout_config());
    if let Some(p) = &a.profile {
        // A named profile wins over credentials in the environment, as with the AWS CLI.
        loader = loader.profile_name(p).credentials_provider(
            aws_config::profile::ProfileFileCredentialsProvider::builder()
                .profile_name(p)
                .build(),
        );
    }
    if let Some(r) = &a.region {
        loader = loader.region(Region::new(r.clone()));
    }
    if let Some(u) = &a.endpoint_url {
        loader = loader.endpoint_url(u);
    }
    let config = loader.load().await;
    if a.profile.is_some() {
        // An unknown profile says so before anything else (its region would be missing too).
        keyturn_aws::check_credentials(&config, a.profile.as_deref())
            .await
            .map_err(anyhow::Error::msg)?;
    }
    if config.region().is_none_or(|r| r.as_ref().trim().is_empty()) {
        bail!("no AWS region: pass --region, set AWS_REGION, or set a region in the profile");
    }
    if a.profile.is_none() {
        keyturn_aws::check_credentials(&config, None)
            .await
            .map_err(anyhow::Error::msg)?;
    }
    Ok(config)
}

/// Secrets named on the command line, or every managed secret (tag `keyturn:managed=true`) under
/// the prefix; a managed secret outside it is skipped with a line on standard error.
async fn targets(rotator: &AwsRotator, named: Vec<String>) -> anyhow::Result<Vec<String>> {
    if !named.is_empty() {
        return Ok(named);
    }
    let listed = rotator
        .store()
        .list_tagged(tags::MANAGED, Some(tags::MANAGED_TRUE))
        .await
        .with_context(|| {
            format!(
                "listing the secrets tagged {}={} failed; check secretsmanager:ListSecrets",
                tags::MANAGED,
                tags::MANAGED_TRUE
            )
        })?;
    let scope = &rotator.settings().scope;
    let (inside, outside): (Vec<_>, Vec<_>) = listed
        .into_iter()
        .filter(|i| rules::is_managed(&i.tags))
        .partition(|i| scope.selects(&i.name));
    for i in &outside {
        eprintln!(
            "keyturn: skipped {}: tagged {}={} but outside the prefix {}; name it to act on it, or pass --prefix",
            term(&i.name),
            tags::MANAGED,
            tags::MANAGED_TRUE,
            term(scope.prefix())
        );
    }
    Ok(inside.into_iter().map(|i| i.name).collect())
}

/// One secret's line of `keyturn rotate`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RotateRow {
    secret: String,
    /// rotated, planned, resumed, cancelled, nothing-in-flight, ... or failed.
    outcome: String,
    user: Option<String>,
    new_key_id: Option<String>,
    deleted_key_id: Option<String>,
    deleted_because: Option<String>,
    detail: Option<String>,
    error_type: Option<&'static str>,
    error: Option<String>,
}

impl Row for RotateRow {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("SECRET", "secret"),
        ("OUTCOME", "outcome"),
        ("NEW KEY", "newKeyId"),
        ("DELETED KEY", "deletedKeyId"),
        ("DETAIL", "detail"),
        ("ERROR", "error"),
    ];
    fn failed(&self) -> bool {
        self.error.is_some()
    }
}

async fn rotate(rotator: Arc<AwsRotator>, a: RotateArgs, output: Output) -> anyhow::Result<bool> {
    let named = if a.all || a.due {
        Vec::new()
    } else {
        a.secrets.clone()
    };
    let secrets = targets(&rotator, named).await?;
    let mode = if a.cancel {
        LocalMode::Cancel
    } else if a.resume {
        LocalMode::Resume
    } else {
        LocalMode::Rotate
    };
    let (dry_run, due_days) = (a.dry_run, a.due.then_some(a.rotation_days));
    let rows = bulk(secrets, a.concurrency, move |secret| {
        let rotator = rotator.clone();
        async move {
            let request = LocalRequest {
                mode,
                dry_run,
                due_days,
                new_token: uuid::Uuid::new_v4().to_string(),
            };
            match rotator.rotate_local(&secret, &request).await {
                Ok(r) => RotateRow {
                    outcome: r.outcome.as_str().to_string(),
                    user: r.user,
                    new_key_id: r.new_key_id,
                    deleted_key_id: r.retired.as_ref().map(|d| d.key_id().to_string()),
                    deleted_because: r.retired.as_ref().map(|d| d.reason().to_string()),
                    detail: Some(r.detail).filter(|d| !d.is_empty()),
                    error_type: None,
                    error: None,
                    secret: r.secret,
                },
                Err(e) => RotateRow {
                    secret,
                    outcome: "failed".into(),
                    user: None,
                    new_key_id: None,
                    deleted_key_id: None,
                    deleted_because: None,
                    detail: None,
                    error_type: Some(e.error_type()),
                    error: Some(e.to_string()),
                },
            }
        }
    })
    .await;
    print_rows(&rows, output);
    Ok(!rows.iter().any(Row::failed))
}

/// One secret's line of `keyturn sweep`.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct SweepRow {
    secret: String,
    user: Option<String>,
    /// `failed`, or the action (kept for scripts that read it; `failed` adds the reason).
    outcome: String,
    /// nothing, waiting, in-use, blocked, cleared, deactivated, deleted; absent on an error.
    action: Option<&'static str>,
    key_id: Option<String>,
    detail: Option<String>,
    dry_run: bool,
    error_type: Option<&'static str>,
    error: Option<String>,
}

impl Row for SweepRow {
    const COLUMNS: &'static [(&'static str, &'static str)] = &[
        ("SECRET", "secret"),
        ("ACTION", "action"),
        ("KEY", "keyId"),
        ("DETAIL", "detail"),
        ("ERROR", "error"),
    ];
    fn failed(&self) -> bool {
        self.outcome == "failed"
    }
}

async fn sweep(rotator: Arc<AwsRotator>, a: SweepArgs, output: Output) -> anyhow::Result<bool> {
    let in_use = InUsePolicy::parse(&a.in_use)
        .with_context(|| format!("--in-use {:?}: expected report or fail", a.in_use))?;
    let policy = SweepPolicy {
        grace: time::Duration::days(a.grace_days.into()),
        delete_after: time::Duration::days(a.delete_after_days.into()),
        in_use,
    };
    let secrets = targets(&rotator, a.secrets).await?;
    let dry_run = a.dry_run;
    let rows = bulk(secrets, a.concurrency, move |secret| {
        let rotator = rotator.clone();
        async move {
            match rotator.sweep(&secret, &policy, dry_run).await {
                Ok(r) => SweepRow {
                    outcome: if r.failed {
                        "failed"
                    } else {
                        r.outcome.as_str()
                    }
                    .to_string(),
                    action: Some(r.outcome.as_str()),
                    key_id: r.outcome.key_id().map(str::to_string),
                    detail: Some(if r.dry_run {
                        format!("dry run: {}", r.outcome.describe_planned())
                    } else {
                        r.outcome.describe()
                    }),
                    dry_run: r.dry_run,
                    error_type: None,
                    error: None,
                    secret: r.secret,
                    user: r.user,
                },
                Err(e) => SweepRow {
                    secret,
                    user: None,
                    outcome: "failed".into(),
                    action: None,
                    key_id: None,
                    detail: None,
                    dry_run,
                    error_type: Some(e.error_type()),
                    error: Some(e.to_string()),
                },
            }
        }
    })
    .await;
    print_rows(&rows, output);
    Ok(!rows.iter().any(Row::failed))
}

async fn status(r: &AwsRotator, a: StatusArgs, output: Output) -> anyhow::Result<bool> {
    let info = r.describe(&a.secret).await?;
    let needs = Needs {
        all_versions: true,
        last_use: LastUse::Every,
        who_else: true,
        tolerate_bad_values: true,
    };
    let read = r.read_state(info, None, needs).await?;
    let state = &read.state;
    let info = &state.info;
    let problems = rules::problems(state);
    let versions: Vec<Value> = state
        .holdings
        .iter()
        .map(|h| json!({"versionId": h.version, "labels": h.labels, "keyId": h.key_id()}))
        .collect();
    let keys: Vec<Value> = state
        .keys
        .iter()
        .map(|k| {
            json!({"keyId": k.id, "status": k.status.as_str(), "created": rfc3339(k.created),
                "lastUsed": k.last_use.as_ref().map(|u| json!({"at": u.last_used.map(rfc3339), "service": u.service, "region": u.region})),
                "heldBy": state.labels_holding(&k.id)})
        })
        .collect();
    let report = json!({
        "secret": info.name, "user": state.user.name, "rotationEnabled": info.rotation_enabled,
        "lastRotated": info.last_rotated.map(rfc3339), "nextRotation": info.next_rotation.map(rfc3339),
        "cutover": rules::recorded_cutover(info).map(rfc3339),
        "versions": versions, "keys": keys, "problems": problems,
    });
    match output {
        Output::Json | Output::Csv => print_json(&report),
        Output::Table => {
            println!(
                "secret   {}\nuser     {}",
                term(&info.name),
                term(&state.user.name)
            );
            // Secrets Manager's LastRotatedDate is set by its own rotations only; after a
            // `keyturn rotate` the cut-over record says when the key last changed.
            let last = match (info.last_rotated, rules::recorded_cutover(info)) {
                (Some(t), _) => rfc3339(t),
                (None, Some(c)) => format!("{} (cut-over by keyturn)", rfc3339(c)),
                (None, None) => "never".into(),
            };
            println!(
                "rotation {}; last rotated {}; next {}",
                if info.rotation_enabled {
                    "scheduled by Secrets Manager"
                } else {
                    "not scheduled in Secrets Manager (keyturn rotate, or enroll --rotation-lambda)"
                },
                last,
                info.next_rotation
                    .map(rfc3339)
                    .unwrap_or_else(|| "not scheduled".into()),
            );
            println!("versions");
            for h in &state.holdings {
                println!(
                    "  {}  {:<24} {}",
                    term(&h.version),
                    term(&h.labels.join(",")),
                    term(h.key_id().unwrap_or("-"))
                );
            }
            println!("keys");
            for k in &keys {
                println!(
                    "  {}  {:<8} created {}  {}  held by {}",
                    term(&text(&k["keyId"])),
                    text(&k["status"]),
                    text(&k["created"]),
                    state
                        .key(text(&k["keyId"]).as_str())
                        .and_then(|f| f.last_use.as_ref())
                        .map(describe_use)
                        .unwrap_or_else(|| "last use unknown".into()),
                    k["heldBy"]
                        .as_array()
                        .filter(|a| !a.is_empty())
                        .map(|a| term(&a.iter().map(text).collect::<Vec<_>>().join(","))
                            .into_owned())
                        .unwrap_or_else(|| "nothing".into())
                );
            }
            println!("problems");
            if problems.is_empty() {
                println!("  none");
            }
            for p in &problems {
                println!("  - {}", term(p));
            }
        }
    }
    Ok(problems.is_empty())
}

async fn credential_process(r: &AwsRotator, a: CredentialProcessArgs) -> anyhow::Result<bool> {
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
    // The one place keyturn prints a secret: credential_process hands it to the SDK on stdout.
    println!(
        "{}",
        json!({"Version": 1, "AccessKeyId": key.id, "SecretAccessKey": key.secret.expose(), "Expiration": rfc3339(expiration)})
    );
    Ok(true)
}
