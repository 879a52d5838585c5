//! keyturn-lambda: the rotation function. Secrets Manager invokes it once per step; it runs the
//! step with keyturn-core's [`Rotator`] and reports the outcome as one structured log line.
//!
//! `main` only wires (tracing, SDK configuration, clients, settings); [`handle`] is generic over
//! the ports so it is tested against the in-memory model, and errors reach Lambda as a
//! [`Diagnostic`] whose `errorType` names the failure (`KeyInUse`, `WrongIdentity`, ...).

use std::time::Instant;

use keyturn_core::audit::{hub, AuditPolicy, AuditRun};
use keyturn_core::config::HubAudit;
use keyturn_core::ports::{Clock, Ports};
use keyturn_core::rotation::SweepTally;
use keyturn_core::rules::SweepPolicy;
use keyturn_core::{RotationError, RotationEvent, RotationSettings, Rotator, StepReport};
use lambda_runtime::{Diagnostic, LambdaEvent};
use serde_json::{json, Value};

/// A failed invocation, as Lambda and CloudWatch see it. Holds no secret material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub error_type: &'static str,
    pub message: String,
}

impl From<Failure> for Diagnostic {
    fn from(f: Failure) -> Self {
        Diagnostic {
            error_type: f.error_type.to_string(),
            error_message: f.message,
        }
    }
}

impl From<RotationError> for Failure {
    fn from(e: RotationError) -> Self {
        Failure {
            error_type: e.error_type(),
            message: e.to_string(),
        }
    }
}

pub mod emf;

/// What the function does besides the rotation steps: the daily sweep's defaults and, when the
/// deployment turns it on, the daily audit into Security Hub.
#[derive(Debug, Clone, Default)]
pub struct Policies {
    pub sweep: SweepPolicy,
    pub audit: Option<HubAudit>,
}

/// Whether the event is the daily schedule (EventBridge) or an explicit `{"keyturn": "sweep"}`.
pub fn is_sweep_event(payload: &Value) -> bool {
    payload.get("source").and_then(Value::as_str) == Some("aws.events")
        || payload.get("detail-type").and_then(Value::as_str) == Some("Scheduled Event")
        || payload.get("keyturn").and_then(Value::as_str) == Some("sweep")
}

/// Handles one invocation: a rotation step from Secrets Manager, or the scheduled sweep.
pub async fn handle<P: Ports>(
    rotator: &Rotator<P>,
    policies: &Policies,
    event: LambdaEvent<Value>,
) -> Result<Value, Failure> {
    if is_sweep_event(&event.payload) {
        let request_id = &event.context.request_id;
        let swept = sweep_all(rotator, &policies.sweep, request_id).await;
        let Some(audit) = &policies.audit else {
            return swept;
        };
        // The audit runs whatever the sweep did: a failed sweep must not hide the findings.
        let account = event
            .context
            .invoked_function_arn
            .split(':')
            .nth(4)
            .unwrap_or_default()
            .to_string();
        let audited = audit_into_hub(rotator, audit, &policies.sweep, &account, request_id).await;
        return match (swept, audited) {
            (Ok(mut s), Ok(a)) => {
                s["audit"] = a;
                Ok(s)
            }
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        };
    }
    let request_id = event.context.request_id.clone();
    let started = Instant::now();
    let parsed = RotationEvent::from_json(&event.payload);
    let (step, secret) = match &parsed {
        Ok(ev) => (ev.step.as_str(), ev.secret_id.as_str()),
        Err(_) => ("unknown", ""),
    };
    let outcome = match &parsed {
        Ok(ev) => rotator.run(ev).await,
        Err(e) => Err(e.clone()),
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    let at = rotator.clock().now();
    match outcome {
        Ok(report) => {
            log_success(&report, &request_id, duration_ms);
            let rotated = report.action == keyturn_core::Action::Promoted;
            println!(
                "{}",
                emf::step(
                    at,
                    step,
                    Ok((rotated, report.retired.is_some())),
                    duration_ms
                )
            );
            Ok(response(&report))
        }
        Err(e) => {
            println!("{}", emf::step(at, step, Err(e.error_type()), duration_ms));
            tracing::error!(
                request_id = %request_id,
                step,
                secret,
                outcome = "failed",
                error_type = e.error_type(),
                transient = e.is_transient(),
                duration_ms,
                error = %e,
                "rotation step failed"
            );
            Err(e.into())
        }
    }
}

/// Sweeps every managed secret, one after another, logging each outcome. Fails (so the function's
/// error alarm fires) when a secret could not be swept or its in-use policy is `fail`.
async fn sweep_all<P: Ports>(
    rotator: &Rotator<P>,
    policy: &SweepPolicy,
    request_id: &str,
) -> Result<Value, Failure> {
    let managed = rotator.managed_secrets().await.map_err(|e| Failure {
        error_type: e.error_type(),
        message: e.to_string(),
    })?;
    for line in managed.skipped(rotator.settings().scope.prefix()) {
        tracing::warn!(request_id, step = "sweep", outcome = "skipped", "{line}");
    }
    let names = managed.inside.iter().map(|i| i.name.clone()).collect();
    let mut tally = SweepTally::default();
    let mut outcomes = Vec::new();
    // One secret at a time: the scheduled sweep has the whole invocation's time.
    for (secret, result) in rotator
        .sweep_each(names, policy, false, 1, |_| Some(()))
        .await
    {
        let Some(result) = result else { continue };
        if let Ok(r) = &result {
            outcomes.push(r.outcome.clone());
        }
        match &result {
            Ok(r) => {
                tracing::info!(request_id, step = "sweep", secret = %r.secret, user = r.user.as_deref().unwrap_or(""),
                outcome = r.outcome.as_str(), detail = %r.outcome.describe(), failed = r.failed, "sweep done")
            }
            Err(e) => {
                tracing::error!(request_id, step = "sweep", secret = %secret, outcome = "failed", error_type = e.error_type(), error = %e, "sweep failed")
            }
        }
        tally.add(&result);
    }
    let failures = tally.secrets - outcomes.len();
    println!("{}", emf::sweep(rotator.clock().now(), &outcomes, failures));
    if tally.failed() {
        Err(Failure {
            error_type: "SweepFailed",
            message: tally.failure_summary(),
        })
    } else {
        Ok(
            json!({"step": "sweep", "secrets": tally.secrets, "skipped": managed.outside.len(), "outcomes": tally.outcomes}),
        )
    }
}

/// The daily audit of the function's own account into its Security Hub: the account's keys
/// judged as `keyturn audit` judges them (no exemptions file: the CLI's), their findings imported
/// and those of fixed keys resolved; the audit's metrics in EMF. Fails when the audit or the
/// import cannot be done, or Security Hub refused a finding.
async fn audit_into_hub<P: Ports>(
    rotator: &Rotator<P>,
    audit: &HubAudit,
    sweep: &SweepPolicy,
    account: &str,
    request_id: &str,
) -> Result<Value, Failure> {
    let failure = |message: String| Failure {
        error_type: "AuditFailed",
        message,
    };
    if account.len() != 12 {
        return Err(failure(format!(
            "the function's account is unknown (invoked function ARN {account:?}); the audit did not run"
        )));
    }
    let as_of = rotator.clock().now();
    let run = AuditRun {
        policy: AuditPolicy {
            as_of,
            max_age: time::Duration::days(audit.max_age_days),
            grace: sweep.grace,
        },
        rotation_days: audit.rotation_days,
        concurrency: 4,
        report_timeout: std::time::Duration::from_secs(120),
    };
    let audited = rotator
        .audit_account(&run, &|_, _| {})
        .await
        .map_err(|e| failure(format!("the audit of account {account} failed: {e}")))?;
    for w in &audited.warnings {
        tracing::warn!(request_id, step = "audit", account, "{w}");
    }
    for e in &audited.unreadable {
        tracing::warn!(request_id, step = "audit", account, "{e}");
    }
    for line in emf::audit(as_of, account, &audited.entries) {
        println!("{line}");
    }
    let findings = hub::findings(account, &audited.entries, as_of);
    let published = hub::publish(rotator.delivery(), rotator.clock(), account, account, findings)
        .await
        .map_err(|e| {
            failure(format!(
                "the findings of account {account} could not be brought up to date in its Security Hub (securityhub:GetFindings, securityhub:BatchImportFindings): {e}; is Security Hub enabled in this region?"
            ))
        })?;
    tracing::info!(
        request_id,
        step = "audit",
        account,
        keys = audited.entries.len(),
        imported = published.imported,
        resolved = published.resolved.len(),
        refused = published.failed.len(),
        calls = published.calls,
        "audit imported into Security Hub"
    );
    if let Some(e) = &published.workflow_error {
        tracing::warn!(request_id, step = "audit", account, error = %e, "the resolved findings are archived, but their workflow status could not be set to RESOLVED (securityhub:BatchUpdateFindings)");
    }
    if !published.failed.is_empty() {
        let refused: Vec<String> = published
            .failed
            .iter()
            .map(|(id, why)| format!("{id}: {why}"))
            .collect();
        return Err(failure(format!(
            "Security Hub of account {account} refused {} finding(s): {}",
            refused.len(),
            refused.join("; ")
        )));
    }
    Ok(json!({
        "keys": audited.entries.len(),
        "imported": published.imported,
        "resolved": published.resolved.len(),
    }))
}

/// The sweep's defaults from the environment (`keyturn_core::config::sweep_policy`); secrets
/// lengthen them with tags.
pub fn sweep_policy_from_env(get: impl Fn(&str) -> Option<String>) -> Result<SweepPolicy, String> {
    keyturn_core::config::sweep_policy(get)
        .map_err(|e| format!("{e}; fix the function's configuration"))
}

/// The sweep's defaults and the daily audit's settings from the environment.
pub fn policies_from_env(get: impl Fn(&str) -> Option<String>) -> Result<Policies, String> {
    Ok(Policies {
        sweep: sweep_policy_from_env(&get)?,
        audit: keyturn_core::config::hub_audit(&get)
            .map_err(|e| format!("{e}; fix the function's configuration"))?,
    })
}

fn log_success(r: &StepReport, request_id: &str, duration_ms: u64) {
    tracing::info!(
        request_id = %request_id,
        step = r.step.as_str(),
        secret = %r.secret,
        user = r.user.as_deref().unwrap_or(""),
        outcome = r.action.as_str(),
        pending_key_id = r.pending_key_id.as_deref().unwrap_or(""),
        current_key_id = r.current_key_id.as_deref().unwrap_or(""),
        deleted_key_id = r.retired.as_ref().map(|d| d.key_id()).unwrap_or(""),
        deleted_because = r.retired.as_ref().map(|d| d.reason().to_string()).unwrap_or_default(),
        restarted = r.restarts.restarted.join(","),
        restart_failed = r.restarts.failed.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>().join(","),
        duration_ms,
        "rotation step done"
    );
}

/// The function's result (Secrets Manager ignores it; it helps whoever invokes by hand).
fn response(r: &StepReport) -> Value {
    json!({
        "step": r.step.as_str(),
        "secret": r.secret,
        "user": r.user,
        "outcome": r.action.as_str(),
        "pendingKeyId": r.pending_key_id,
        "deletedKeyId": r.retired.as_ref().map(|d| d.key_id()),
        "restarted": r.restarts.restarted,
        "restartFailed": r.restarts.failed.iter().map(|(n, _)| n).collect::<Vec<_>>(),
    })
}

/// Settings from the function's environment, parsed by `keyturn_core::config` as the CLI's are
/// (the variables: `config::SETTINGS`, the README's configuration table).
pub fn settings_from_env(get: impl Fn(&str) -> Option<String>) -> Result<RotationSettings, String> {
    // Secrets Manager calls the function: rotation must be enabled on the secret.
    keyturn_core::config::rotation_settings(get, true)
        .map_err(|e| format!("{e}; fix the function's configuration"))
}

/// GitHub's API base (`KEYTURN_GITHUB_API`) and the secret holding its token
/// (`KEYTURN_GITHUB_TOKEN_SECRET`), for github and github-org sinks.
pub fn github_from_env(get: impl Fn(&str) -> Option<String>) -> keyturn_aws::GitHubSettings {
    keyturn_aws::GitHubSettings {
        api_base: get("KEYTURN_GITHUB_API").filter(|v| !v.trim().is_empty()),
        token_secret: get("KEYTURN_GITHUB_TOKEN_SECRET").filter(|v| !v.trim().is_empty()),
    }
}

/// JSON logs for CloudWatch, one object per line. Level from `AWS_LAMBDA_LOG_LEVEL` or `RUST_LOG`
/// (default `info`; the SDK's own crates stay at `warn` unless named).
pub fn init_tracing() {
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_string())
        .to_lowercase();
    let directives = if level.contains('=') || level.contains(',') {
        level
    } else {
        format!("{level},aws_smithy_runtime=warn,aws_config=warn,hyper=warn,rustls=warn")
    };
    // Whatever the level, no dependency's TRACE events: they print request bodies (the secret
    // value PutSecretValue sends).
    use tracing_subscriber::layer::SubscriberExt;
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(directives))
        .with_target(false)
        .with_current_span(false)
        .flatten_event(true)
        .without_time()
        .finish()
        .with(tracing_subscriber::filter::filter_fn(keyturn_aws::loggable));
    let _ = tracing::subscriber::set_global_default(subscriber);
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyturn_core::fake::World;
    use keyturn_core::ports::AWSCURRENT;
    use keyturn_core::rules;
    use keyturn_core::{SecretText, SecretValue, Step};
    use lambda_runtime::Context;

    fn invoke(payload: Value) -> LambdaEvent<Value> {
        LambdaEvent {
            payload,
            context: Context::default(),
        }
    }

    /// The model behind every port, delivering nowhere.
    type ModelPorts = (World, World, World, World, keyturn_core::ports::Nowhere);

    fn setup() -> (World, Rotator<ModelPorts>) {
        let world = World::new();
        world.add_user("app1");
        let key = world.create_key("app1");
        world.add_secret(
            "keyturn/app1",
            SecretValue::canonical("app1", key).render().expose(),
            &[],
        );
        let settings = settings_from_env(|_| None).expect("defaults");
        let r = Rotator::new(
            world.clone(),
            world.clone(),
            world.clone(),
            world.clone(),
            settings,
        );
        (world, r)
    }

    #[tokio::test]
    async fn four_invocations_rotate_the_key() {
        let (world, r) = setup();
        let token = world.start_rotation("keyturn/app1");
        let before = world.value_with("keyturn/app1", AWSCURRENT);
        for step in Step::ALL {
            let out = handle(
                &r,
                &Policies::default(),
                invoke(json!({"Step": step.as_str(), "SecretId": "keyturn/app1", "ClientRequestToken": token})),
            )
            .await
            .expect("step succeeds");
            assert_eq!(out["step"], step.as_str());
        }
        let after = world.value_with("keyturn/app1", AWSCURRENT);
        assert_ne!(before, after);
        let key = after
            .and_then(|v| SecretValue::parse(&SecretText::new(v)).ok())
            .and_then(|v| v.key().cloned())
            .expect("key");
        assert!(world.authenticates(&key));
    }

    #[tokio::test]
    async fn errors_reach_lambda_with_a_meaningful_error_type() {
        let (world, r) = setup();
        let bad = handle(
            &r,
            &Policies::default(),
            invoke(json!({"Step": "createSecret"})),
        )
        .await
        .expect_err("malformed");
        assert_eq!(bad.error_type, "BadEvent");
        let token = world.start_rotation("keyturn/app1");
        world.add_user("intruder");
        let other = handle(
            &r,
            &Policies::default(),
            invoke(json!({"Step": "finishSecret", "SecretId": "keyturn/app1", "ClientRequestToken": token})),
        )
        .await
        .expect_err("nothing to promote");
        let diag: Diagnostic = other.into();
        assert_eq!(diag.error_type, "PendingValueMissing");
        assert!(diag.error_message.contains("keyturn/app1"));
        let missing = handle(
            &r,
            &Policies::default(),
            invoke(
                json!({"Step": "setSecret", "SecretId": "no/such", "ClientRequestToken": token}),
            ),
        )
        .await
        .expect_err("no secret");
        assert_eq!(missing.error_type, "NotFound");
    }

    /// The key AWSPREVIOUS holds in the model.
    fn previous_key(world: &World, secret: &str) -> keyturn_core::AccessKey {
        let previous = world
            .value_with(secret, keyturn_core::ports::AWSPREVIOUS)
            .expect("previous");
        SecretValue::parse(&SecretText::new(previous))
            .ok()
            .and_then(|v| v.key().cloned())
            .expect("key")
    }

    #[tokio::test]
    async fn the_scheduled_event_sweeps_every_managed_secret() {
        let (world, r) = setup();
        world.add_user("app2");
        let key2 = world.create_key("app2");
        world.add_secret(
            "keyturn/app2",
            SecretValue::canonical("app2", key2).render().expose(),
            &[("keyturn:managed", "true")],
        );
        for secret in ["keyturn/app1", "keyturn/app2"] {
            let token = world.start_rotation(secret);
            for step in Step::ALL {
                handle(&r, &Policies::default(), invoke(json!({"Step": step.as_str(), "SecretId": secret, "ClientRequestToken": token})))
                    .await
                    .expect("rotation");
            }
        }
        world.advance(std::time::Duration::from_secs(8 * 86_400));
        let scheduled =
            json!({"source": "aws.events", "detail-type": "Scheduled Event", "detail": {}});
        let out = handle(&r, &Policies::default(), invoke(scheduled))
            .await
            .expect("sweep");
        assert_eq!(out["secrets"], 1, "only the managed secret");
        assert_eq!(out["outcomes"]["deactivated"], 1);
        let key = previous_key(&world, "keyturn/app2");
        assert!(!world.authenticates(&key), "previous key deactivated");
        let bad = sweep_policy_from_env(|k| (k == "KEYTURN_IN_USE").then(|| "ignore".into()));
        assert!(bad.is_err());
        let switch = |v: &str| {
            let v = v.to_string();
            sweep_policy_from_env(move |k| (k == "KEYTURN_REQUIRE_SWITCH").then(|| v.clone()))
        };
        assert!(switch("true").expect("valid").require_switch);
        assert!(!switch("false").expect("valid").require_switch);
        assert!(
            !sweep_policy_from_env(|_| None)
                .expect("defaults")
                .require_switch
        );
        assert!(switch("maybe").is_err());
    }

    #[tokio::test]
    async fn the_scheduled_sweep_selects_only_secrets_tagged_managed_true() {
        let (world, r) = setup();
        for (name, managed) in [("keyturn/no", "false"), ("keyturn/by", "true-ish")] {
            world.add_user(name.trim_start_matches("keyturn/"));
            let key = world.create_key(name.trim_start_matches("keyturn/"));
            world.add_secret(
                name,
                SecretValue::canonical(name.trim_start_matches("keyturn/"), key)
                    .render()
                    .expose(),
                &[("keyturn:managed", managed), ("keyturn:managed-by", "true")],
            );
        }
        let out = handle(
            &r,
            &Policies::default(),
            invoke(json!({"keyturn": "sweep"})),
        )
        .await
        .expect("sweep");
        assert_eq!(
            out["secrets"], 0,
            "keyturn:managed=false and look-alike tags are not managed"
        );
    }

    #[test]
    fn settings_are_read_and_validated() {
        let s = settings_from_env(|k| match k {
            "IAM_USER_NAME" => Some("app1".into()),
            "KEYTURN_TEST_ATTEMPTS" => Some("3".into()),
            _ => None,
        })
        .expect("valid");
        assert_eq!(s.default_user.as_deref(), Some("app1"));
        assert_eq!(s.test_backoff.attempts, 3);
        assert!(s.require_rotation_enabled);
        let e = settings_from_env(|k| (k == "KEYTURN_TEST_BACKOFF_MS").then(|| "fast".into()))
            .expect_err("not a number");
        assert!(e.contains("KEYTURN_TEST_BACKOFF_MS"), "{e}");
        assert!(settings_from_env(|k| (k == "KEYTURN_TEST_ATTEMPTS").then(|| "0".into())).is_err());
        assert_eq!(s.scope, rules::Scope::default());
        let scoped = settings_from_env(|k| match k {
            "KEYTURN_SECRET_PREFIX" => Some("team/".into()),
            "KEYTURN_USER_PATH" => Some("/apps/".into()),
            "KEYTURN_MASTER_SECRETS" => {
                Some("team/admin, arn:aws:secretsmanager:us-east-1:1:secret:m-AbCdEf".into())
            }
            _ => None,
        })
        .expect("valid");
        assert_eq!(scoped.scope.prefix(), "team/");
        assert_eq!(scoped.scope.user_path(), "/apps/");
        assert_eq!(scoped.scope.masters().len(), 2);
        let e = settings_from_env(|k| (k == "KEYTURN_SECRET_PREFIX").then(|| "keyturn".into()))
            .expect_err("no trailing slash");
        assert!(e.contains("must end in '/'"), "{e}");
    }

    #[tokio::test]
    async fn the_scheduled_sweep_skips_managed_secrets_outside_the_prefix() {
        let (world, r) = setup();
        world.add_user("stray");
        let key = world.create_key("stray");
        world.add_secret(
            "keyturn-prod-admin",
            SecretValue::canonical("stray", key.clone())
                .render()
                .expose(),
            &[("keyturn:managed", "true")],
        );
        let token = world.start_rotation("keyturn-prod-admin");
        for step in Step::ALL {
            handle(&r, &Policies::default(), invoke(json!({"Step": step.as_str(), "SecretId": "keyturn-prod-admin", "ClientRequestToken": token})))
                .await
                .expect("a named secret is rotated wherever it is");
        }
        world.advance(std::time::Duration::from_secs(30 * 86_400));
        let out = handle(
            &r,
            &Policies::default(),
            invoke(json!({"keyturn": "sweep"})),
        )
        .await
        .expect("an outside secret does not fail the sweep");
        assert_eq!(out["secrets"], 0);
        assert_eq!(out["skipped"], 1);
        assert!(world.authenticates(&key), "its previous key is left alone");
    }
}
