//! keyturn-lambda: the rotation function. Secrets Manager invokes it once per step; it runs the
//! step with keyturn-core's [`Rotator`] and reports the outcome as one structured log line.
//!
//! `main` only wires (tracing, SDK configuration, clients, settings); [`handle`] is generic over
//! the ports so it is tested against the in-memory model, and errors reach Lambda as a
//! [`Diagnostic`] whose `errorType` names the failure (`KeyInUse`, `WrongIdentity`, ...).

use std::time::{Duration, Instant};

use keyturn_core::ports::{Clock, Iam, IdentityCheck, SecretStore};
use keyturn_core::{Backoff, RotationError, RotationEvent, RotationSettings, Rotator, StepReport};
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

/// Handles one invocation.
pub async fn handle<S, I, V, C>(
    rotator: &Rotator<S, I, V, C>,
    event: LambdaEvent<Value>,
) -> Result<Value, Failure>
where
    S: SecretStore,
    I: Iam,
    V: IdentityCheck,
    C: Clock,
{
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
    match outcome {
        Ok(report) => {
            log_success(&report, &request_id, duration_ms);
            Ok(response(&report))
        }
        Err(e) => {
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

fn log_success(r: &StepReport, request_id: &str, duration_ms: u64) {
    tracing::info!(
        request_id = %request_id,
        step = r.step.as_str(),
        secret = %r.secret,
        user = r.user.as_deref().unwrap_or(""),
        outcome = r.action.as_str(),
        pending_key_id = r.pending_key_id.as_deref().unwrap_or(""),
        current_key_id = r.current_key_id.as_deref().unwrap_or(""),
        deleted_key_id = r.deleted_key.as_ref().map(|d| d.0.as_str()).unwrap_or(""),
        deleted_because = r.deleted_key.as_ref().map(|d| d.1.as_str()).unwrap_or(""),
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
        "deletedKeyId": r.deleted_key.as_ref().map(|d| &d.0),
    })
}

/// Settings from the function's environment:
/// `IAM_USER_NAME` (user for values and secrets that name none), `KEYTURN_TEST_ATTEMPTS`,
/// `KEYTURN_TEST_BACKOFF_MS` and `KEYTURN_TEST_MAX_BACKOFF_MS` (the new-key test's backoff).
pub fn settings_from_env(get: impl Fn(&str) -> Option<String>) -> Result<RotationSettings, String> {
    let default = Backoff::default();
    let number = |name: &str, default: u64| -> Result<u64, String> {
        match get(name) {
            None => Ok(default),
            Some(v) => v.trim().parse::<u64>().map_err(|_| {
                format!("environment variable {name}={v:?} is not a whole number; fix the function's configuration")
            }),
        }
    };
    let attempts = number("KEYTURN_TEST_ATTEMPTS", u64::from(default.attempts))?;
    if !(1..=20).contains(&attempts) {
        return Err(format!(
            "KEYTURN_TEST_ATTEMPTS={attempts} is out of range (1 to 20)"
        ));
    }
    Ok(RotationSettings {
        require_rotation_enabled: true,
        default_user: get("IAM_USER_NAME").filter(|u| !u.trim().is_empty()),
        test_backoff: Backoff {
            attempts: attempts as u32,
            initial: Duration::from_millis(number(
                "KEYTURN_TEST_BACKOFF_MS",
                default.initial.as_millis() as u64,
            )?),
            max: Duration::from_millis(number(
                "KEYTURN_TEST_MAX_BACKOFF_MS",
                default.max.as_millis() as u64,
            )?),
        },
    })
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
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(tracing_subscriber::EnvFilter::new(directives))
        .with_target(false)
        .with_current_span(false)
        .flatten_event(true)
        .without_time()
        .init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use keyturn_core::fake::World;
    use keyturn_core::ports::AWSCURRENT;
    use keyturn_core::{SecretText, SecretValue, Step};
    use lambda_runtime::Context;

    fn invoke(payload: Value) -> LambdaEvent<Value> {
        LambdaEvent {
            payload,
            context: Context::default(),
        }
    }

    fn setup() -> (World, Rotator<World, World, World, World>) {
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
        let bad = handle(&r, invoke(json!({"Step": "createSecret"})))
            .await
            .expect_err("malformed");
        assert_eq!(bad.error_type, "BadEvent");
        let token = world.start_rotation("keyturn/app1");
        world.add_user("intruder");
        let other = handle(
            &r,
            invoke(json!({"Step": "finishSecret", "SecretId": "keyturn/app1", "ClientRequestToken": token})),
        )
        .await
        .expect_err("nothing to promote");
        let diag: Diagnostic = other.into();
        assert_eq!(diag.error_type, "PendingValueMissing");
        assert!(diag.error_message.contains("keyturn/app1"));
        let missing = handle(
            &r,
            invoke(
                json!({"Step": "setSecret", "SecretId": "no/such", "ClientRequestToken": token}),
            ),
        )
        .await
        .expect_err("no secret");
        assert_eq!(missing.error_type, "NotFound");
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
    }
}
