//! The commands. Each returns whether everything it looked at is fine (exit 0) or not (exit 1).

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use aws_config::{BehaviorVersion, Region, SdkConfig};
use keyturn_aws::{Aws, AwsRotator};
use keyturn_core::error::{describe_use, rfc3339};
use keyturn_core::ports::{
    AccessKeys, Iam, SecretStore, VersionRef, AWSCURRENT, AWSPENDING, AWSPREVIOUS,
};
use keyturn_core::rotation::claim::Purpose;
use keyturn_core::rotation::{
    cutover_time, in_flight, is_due, used_since, InUsePolicy, SweepPolicy, MANAGED_TAG, USER_TAG,
};
use keyturn_core::{RotationError, RotationEvent, RotationSettings, SecretValue, Step};
use serde_json::{json, Value};

use crate::args::{
    AwsArgs, Cli, Command, CredentialProcessArgs, Output, RotateArgs, StatusArgs, SweepArgs,
};

pub async fn run(cli: Cli) -> anyhow::Result<bool> {
    let config = sdk_config(&cli.aws).await?;
    let settings = RotationSettings {
        require_rotation_enabled: false,
        ..RotationSettings::default()
    };
    let rotator = Arc::new(Aws::from_config(&config).rotator(settings));
    match cli.command {
        Command::Enroll(a) => {
            let out = crate::enroll::enroll(&rotator, &a).await?;
            match cli.output {
                Output::Json | Output::Csv => println!("{out}"),
                Output::Table => println!(
                    "{} {} for user {} (key {}){}",
                    text(&out["outcome"]),
                    text(&out["secret"]),
                    text(&out["user"]),
                    text(&out["keyId"]),
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
        loader = loader.profile_name(p);
    }
    if let Some(r) = &a.region {
        loader = loader.region(Region::new(r.clone()));
    }
    if let Some(u) = &a.endpoint_url {
        loader = loader.endpoint_url(u);
    }
    let config = loader.load().await;
    if config.region().is_none_or(|r| r.as_ref().trim().is_empty()) {
        bail!("no AWS region: pass --region, set AWS_REGION, or set a region in the profile");
    }
    Ok(config)
}

/// Secrets named on the command line, or every managed secret.
async fn targets(rotator: &AwsRotator, named: Vec<String>) -> anyhow::Result<Vec<String>> {
    if !named.is_empty() {
        return Ok(named);
    }
    let listed = rotator
        .store()
        .list_tagged(MANAGED_TAG)
        .await
        .with_context(|| {
            format!(
                "listing the secrets tagged {MANAGED_TAG} failed; check secretsmanager:ListSecrets"
            )
        })?;
    Ok(listed.into_iter().map(|i| i.name).collect())
}

/// Runs `work` over `items` with at most `concurrency` at once, showing progress on a terminal.
/// Every item runs, whatever the others do; results come back in the items' order.
pub(crate) async fn bulk<I, T, F, Fut>(items: Vec<I>, concurrency: u16, work: F) -> Vec<T>
where
    I: Send + 'static,
    T: Send + 'static,
    F: Fn(I) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let total = items.len();
    let done = Arc::new(AtomicUsize::new(0));
    let gate = Arc::new(tokio::sync::Semaphore::new(concurrency.into()));
    let work = Arc::new(work);
    let show = std::io::stderr().is_terminal() && total > 1;
    let mut tasks = tokio::task::JoinSet::new();
    for (i, item) in items.into_iter().enumerate() {
        let (gate, work, done) = (gate.clone(), work.clone(), done.clone());
        tasks.spawn(async move {
            let _permit = gate.acquire_owned().await;
            let result = work(item).await;
            let n = done.fetch_add(1, Ordering::Relaxed) + 1;
            if show {
                let filled = n * 30 / total;
                eprint!(
                    "\r[{}{}] {n}/{total}",
                    "#".repeat(filled),
                    " ".repeat(30 - filled)
                );
                let _ = std::io::stderr().flush();
            }
            (i, result)
        });
    }
    let mut results: Vec<Option<T>> = (0..total).map(|_| None).collect();
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((i, v)) => results[i] = Some(v),
            Err(e) => tracing::error!(error = %e, "a task panicked"),
        }
    }
    if show {
        eprintln!();
    }
    results.into_iter().flatten().collect()
}

fn failure(secret: &str, e: &RotationError) -> Value {
    json!({"secret": secret, "outcome": "failed", "errorType": e.error_type(), "error": e.to_string()})
}

async fn rotate(rotator: Arc<AwsRotator>, a: RotateArgs, output: Output) -> anyhow::Result<bool> {
    let named = if a.all || a.due {
        Vec::new()
    } else {
        a.secrets.clone()
    };
    let secrets = targets(&rotator, named).await?;
    let opts = RotateOpts {
        resume: a.resume,
        cancel: a.cancel,
        dry_run: a.dry_run,
        due_days: a.due.then_some(a.rotation_days),
    };
    let results = bulk(secrets, a.concurrency, move |secret| {
        let rotator = rotator.clone();
        async move {
            rotate_one(&rotator, &secret, opts)
                .await
                .unwrap_or_else(|e| failure(&secret, &e))
        }
    })
    .await;
    print_results(
        &results,
        output,
        &[
            "secret",
            "outcome",
            "newKeyId",
            "deletedKeyId",
            "detail",
            "error",
        ],
    );
    Ok(results.iter().all(|r| r["outcome"] != "failed"))
}

#[derive(Debug, Clone, Copy)]
struct RotateOpts {
    resume: bool,
    cancel: bool,
    dry_run: bool,
    /// `--due`: rotate only when due, with this default period in days.
    due_days: Option<i64>,
}

async fn rotate_one(
    r: &AwsRotator,
    secret: &str,
    opts: RotateOpts,
) -> Result<Value, RotationError> {
    let RotateOpts {
        resume,
        cancel,
        dry_run,
        due_days,
    } = opts;
    let info = r.describe(secret).await?;
    let pending = in_flight(&info).map(str::to_string);
    let name = info.name.clone();
    if let Some(days) = due_days {
        if pending.is_none() && !is_due(&info, time::OffsetDateTime::now_utc(), days) {
            return Ok(json!({"secret": name, "outcome": "not-due"}));
        }
    }
    if dry_run {
        let detail = match (&pending, resume, cancel) {
            (Some(t), _, true) => format!("would delete the key of version {t} and remove its AWSPENDING label"),
            (Some(t), true, _) => format!("would finish the rotation in flight (version {t})"),
            (Some(t), false, false) => format!("would refuse: version {t} is in flight (use --resume or --cancel)"),
            (None, _, true) => "nothing in flight to cancel".to_string(),
            (None, true, false) => "would resume a rotation that stopped before storing its key, if any; otherwise nothing".to_string(),
            (None, false, false) => "would create a key, store it as AWSPENDING of a new version, test it, and make it AWSCURRENT".to_string(),
        };
        return Ok(json!({"secret": name, "outcome": "planned", "detail": detail}));
    }
    if cancel {
        let c = r.cancel(secret).await?;
        return Ok(
            json!({"secret": name, "outcome": if c.token.is_some() { "cancelled" } else { "nothing-in-flight" },
            "deletedKeyId": c.deleted_key_id, "detail": c.token.map(|t| format!("removed AWSPENDING from {t}"))}),
        );
    }
    let (token, outcome, purpose) = match pending {
        Some(t) if resume => (t.clone(), "resumed", Purpose::Resume(t)),
        Some(t) => {
            return Err(RotationError::RotationInFlight {
                secret: name,
                token: t,
            })
        }
        // A run that stopped after its claim but before storing its key left nothing in flight;
        // --resume carries on under that run's token.
        None if resume => match r.stopped_rotation(&info).await? {
            Some(t) => (t.clone(), "resumed", Purpose::Resume(t)),
            None => {
                return Ok(json!({"secret": name, "outcome": "nothing-in-flight",
                    "detail": "no rotation is in flight or stopped before storing its key; keyturn rotate starts one"}))
            }
        },
        None => {
            let t = uuid::Uuid::new_v4().to_string();
            (t.clone(), "rotated", Purpose::Rotate(t))
        }
    };
    // Keeps other keyturn runs (a second rotate, a sweep) off this secret until it is done.
    r.claim(&info, &purpose).await?;
    let mut new_key = None;
    let mut deleted = None;
    for step in Step::ALL {
        let ev = RotationEvent {
            step,
            secret_id: secret.to_string(),
            token: token.clone(),
        };
        let report = r.run_local(&ev).await?;
        if step == Step::Create {
            new_key = report.pending_key_id.clone();
            deleted = report.deleted_key.map(|d| d.0);
        }
    }
    // Rotation succeeded: as Secrets Manager may, leave AWSPENDING on no version (AWS documents
    // both this and AWSPENDING on the AWSCURRENT version as a finished rotation).
    if let Err(e) = r
        .store()
        .move_label(secret, AWSPENDING, None, Some(&token))
        .await
    {
        tracing::warn!(secret = %name, token = %token, error = %e, "could not remove AWSPENDING after the rotation; it is harmless on the AWSCURRENT version");
    }
    Ok(
        json!({"secret": name, "outcome": outcome, "newKeyId": new_key, "deletedKeyId": deleted, "detail": format!("version {token}")}),
    )
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
    let results = bulk(secrets, a.concurrency, move |secret| {
        let rotator = rotator.clone();
        async move {
            match rotator.sweep(&secret, &policy, dry_run).await {
                Ok(r) => json!({"secret": r.secret, "user": r.user, "outcome": if r.failed { "failed" } else { r.outcome.as_str() },
                    "action": r.outcome.as_str(), "detail": if r.dry_run { format!("dry run, would do: {}", r.outcome.describe()) } else { r.outcome.describe() }, "dryRun": r.dry_run}),
                Err(e) => failure(&secret, &e),
            }
        }
    })
    .await;
    print_results(&results, output, &["secret", "action", "detail", "error"]);
    Ok(results.iter().all(|r| r["outcome"] != "failed"))
}

async fn status(r: &AwsRotator, a: StatusArgs, output: Output) -> anyhow::Result<bool> {
    let store = r.store();
    let info = store
        .describe(&a.secret)
        .await
        .with_context(|| format!("secret {}: DescribeSecret failed", a.secret))?;
    let mut versions = Vec::new();
    let mut current = None;
    for (id, labels) in &info.versions {
        let value = store
            .value(&a.secret, &VersionRef::Id(id.clone()))
            .await
            .with_context(|| format!("secret {}: reading version {id} failed", info.name))?
            .map(|t| SecretValue::parse(&t));
        let key_id = match &value {
            Some(Ok(v)) => v.access_key_id().map(str::to_string),
            _ => None,
        };
        if labels.iter().any(|l| l == AWSCURRENT) {
            current = value.and_then(Result::ok);
        }
        versions.push((id.clone(), labels.clone(), key_id));
    }
    let user = current
        .as_ref()
        .and_then(|v| v.user_name().map(str::to_string))
        .or_else(|| info.tags.get(USER_TAG).cloned());
    let mut problems = Vec::new();
    let mut keys = Vec::new();
    if let Some(t) = in_flight(&info) {
        problems.push(format!("a rotation is in flight (version {t} is AWSPENDING): keyturn rotate --resume or --cancel"));
    }
    let current_key = current
        .as_ref()
        .and_then(|v| v.access_key_id().map(str::to_string));
    match &user {
        None => problems.push(format!(
            "no user name: the value has none and the secret has no {USER_TAG} tag"
        )),
        Some(user) => {
            let iam = r.iam().own();
            let listed = iam
                .list(user)
                .await
                .with_context(|| format!("user {user}: ListAccessKeys failed"))?;
            let cutover = cutover_time(&info, &listed, current_key.as_deref());
            for k in &listed {
                let last = iam
                    .last_used(&k.id)
                    .await
                    .with_context(|| format!("key {}: GetAccessKeyLastUsed failed", k.id))?;
                let held: Vec<&str> = versions
                    .iter()
                    .filter(|(_, _, id)| id.as_deref() == Some(k.id.as_str()))
                    .flat_map(|(_, l, _)| l.iter().map(String::as_str))
                    .collect();
                if held.is_empty() {
                    problems.push(format!(
                        "key {} is held by no version of the secret (unmanaged)",
                        k.id
                    ));
                }
                if held.contains(&AWSPREVIOUS)
                    && !held.contains(&AWSCURRENT)
                    && used_since(&last, cutover)
                {
                    problems.push(format!(
                        "previous key {} is still in use ({})",
                        k.id,
                        describe_use(&last)
                    ));
                }
                keys.push(json!({"keyId": k.id, "status": k.status.as_str(), "created": rfc3339(k.created),
                    "lastUsed": describe_use(&last), "heldBy": held}));
            }
            for (id, labels, key_id) in &versions {
                if let Some(key_id) = key_id {
                    let relevant = labels
                        .iter()
                        .any(|l| l == AWSCURRENT || l == AWSPREVIOUS || l == AWSPENDING);
                    if relevant && !listed.iter().any(|k| &k.id == key_id) {
                        problems.push(format!(
                            "{} (version {id}) holds key {key_id}, which no longer exists",
                            labels.join(",")
                        ));
                    }
                }
            }
        }
    }
    let report = json!({
        "secret": info.name, "user": user, "rotationEnabled": info.rotation_enabled,
        "lastRotated": info.last_rotated.map(rfc3339), "nextRotation": info.next_rotation.map(rfc3339),
        "cutover": info.tags.get(keyturn_core::rotation::CUTOVER_AT_TAG),
        "versions": versions.iter().map(|(id, l, k)| json!({"versionId": id, "labels": l, "keyId": k})).collect::<Vec<_>>(),
        "keys": keys, "problems": problems,
    });
    match output {
        Output::Json | Output::Csv => println!("{report:#}"),
        Output::Table => {
            println!(
                "secret   {}\nuser     {}",
                info.name,
                user.as_deref().unwrap_or("?")
            );
            println!(
                "rotation {} (last {}, next {}, cut-over {})",
                if info.rotation_enabled {
                    "enabled"
                } else {
                    "not enabled"
                },
                text(&report["lastRotated"]),
                text(&report["nextRotation"]),
                text(&report["cutover"])
            );
            println!("versions");
            for (id, l, k) in &versions {
                println!(
                    "  {id}  {:<24} {}",
                    l.join(","),
                    k.as_deref().unwrap_or("-")
                );
            }
            println!("keys");
            for k in &keys {
                println!(
                    "  {}  {:<8} created {}  {}  held by {}",
                    text(&k["keyId"]),
                    text(&k["status"]),
                    text(&k["created"]),
                    text(&k["lastUsed"]),
                    k["heldBy"]
                        .as_array()
                        .filter(|a| !a.is_empty())
                        .map(|a| a.iter().map(text).collect::<Vec<_>>().join(","))
                        .unwrap_or_else(|| "nothing".into())
                );
            }
            println!("problems");
            if problems.is_empty() {
                println!("  none");
            }
            for p in &problems {
                println!("  - {p}");
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
        .with_context(|| format!("secret {}: reading AWSCURRENT failed", a.secret_id))?
        .with_context(|| format!("secret {} has no AWSCURRENT value", a.secret_id))?;
    let value =
        SecretValue::parse(&text).map_err(|e| anyhow::anyhow!("secret {}: {e}", a.secret_id))?;
    let key = value
        .key()
        .with_context(|| format!("secret {} holds no access key", a.secret_id))?;
    let expiration =
        time::OffsetDateTime::now_utc() + time::Duration::minutes(a.refresh_minutes.into());
    // The one place keyturn prints a secret: credential_process hands it to the SDK on stdout.
    println!(
        "{}",
        json!({"Version": 1, "AccessKeyId": key.id, "SecretAccessKey": key.secret.expose(), "Expiration": rfc3339(expiration)})
    );
    Ok(true)
}

pub(crate) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn print_results(results: &[Value], output: Output, columns: &[&str]) {
    match output {
        Output::Json => println!("{}", Value::Array(results.to_vec())),
        Output::Csv => {
            println!("{}", columns.join(","));
            for r in results {
                let cells: Vec<String> = columns.iter().map(|c| csv_cell(&r[*c])).collect();
                println!("{}", cells.join(","));
            }
        }
        Output::Table => {
            for r in results {
                let cells: Vec<String> = columns
                    .iter()
                    .filter(|c| !r[**c].is_null())
                    .map(|c| text(&r[*c]))
                    .collect();
                println!("{}", cells.join("  "));
            }
            let failed = results.iter().filter(|r| r["outcome"] == "failed").count();
            println!("{} secret(s), {failed} failed", results.len());
        }
    }
}

/// One CSV field: quoted when it holds a comma, quote or line break.
pub(crate) fn csv_cell(v: &Value) -> String {
    let t = match v {
        Value::Null => String::new(),
        other => text(other),
    };
    if t.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", t.replace('"', "\"\""))
    } else {
        t
    }
}
