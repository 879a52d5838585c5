//! The rotation function's entry point: wiring only.

use keyturn_aws::Aws;
use keyturn_core::Rotator;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::Value;

// One invocation at a time (Lambda sends the next only after the answer): one thread is enough, and
// a multi-threaded runtime would only add workers and allocator arenas to the peak RSS.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    keyturn_lambda::init_tracing();
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        commit = env!("KEYTURN_COMMIT"),
        built = env!("KEYTURN_BUILD_DATE"),
        "keyturn-rotation starting"
    );
    let settings = keyturn_lambda::settings_from_env(|k| std::env::var(k).ok()).map_err(|e| {
        tracing::error!(error = %e, "invalid configuration");
        Error::from(e)
    })?;
    let policy = keyturn_lambda::policies_from_env(|k| std::env::var(k).ok()).map_err(|e| {
        tracing::error!(error = %e, "invalid configuration");
        Error::from(e)
    })?;
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .retry_config(keyturn_aws::retry_config())
        .timeout_config(keyturn_aws::timeout_config())
        .load()
        .await;
    // Built once: every invocation this process serves reuses the clients and connections.
    let github = keyturn_lambda::github_from_env(|k| std::env::var(k).ok());
    let rotator = Rotator::from_ports(Aws::from_config(&config, &github).ports(), settings);
    let (rotator, policy) = (&rotator, &policy);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        keyturn_lambda::handle(rotator, policy, event).await
    }))
    .await
}
