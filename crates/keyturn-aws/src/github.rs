//! The GitHub Actions-secrets sink over GitHub's REST API (api.github.com, GitHub Enterprise
//! Server's `https://HOST/api/v3`, or the tests' stand-in on 127.0.0.1): one GET of the scope's
//! public key, one PUT per secret with the value in a libsodium sealed box (`crypto_box`).
//!
//! The token is read once per process from a Secrets Manager secret (its value the token, or JSON
//! with a `token` field) and never logged. Transient answers (a connection failure, 5xx, 429, a
//! 403 that says the rate limit is spent) are retried twice, 0.5 s then 1 s apart.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use keyturn_core::ports::{
    ApiError, ApiResult, Rollout, RolloutState, SealingKey, SecretStore, VersionRef,
};
use keyturn_core::sink::GitHubScope;
use keyturn_core::SecretText;
use tokio::sync::OnceCell;

use crate::SecretsManager;

/// GitHub's public API.
pub const DEFAULT_API_BASE: &str = "https://api.github.com";
const API_VERSION: &str = "2022-11-28";
const ATTEMPTS: u32 = 3;
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);

type Http = Client<HttpsConnector<HttpConnector>, Full<Bytes>>;

/// GitHub's REST API, as the sink needs it.
#[derive(Clone)]
pub struct GitHub {
    api_base: String,
    token_secret: Option<String>,
    secrets: SecretsManager,
    token: Arc<OnceCell<SecretText>>,
    /// Built on first use: loading the system's root certificates costs a cold start that
    /// delivers to no GitHub sink nothing.
    http: Arc<OnceLock<Http>>,
}

impl std::fmt::Debug for GitHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitHub")
            .field("api_base", &self.api_base)
            .field("token_secret", &self.token_secret)
            .finish_non_exhaustive()
    }
}

impl GitHub {
    /// `api_base` without a trailing slash; `token_secret` names the Secrets Manager secret that
    /// holds the token (`None`: a GitHub sink fails, saying how to configure one).
    pub fn new(api_base: &str, token_secret: Option<String>, secrets: SecretsManager) -> Self {
        Self {
            api_base: api_base.trim_end_matches('/').to_string(),
            token_secret: token_secret.filter(|t| !t.trim().is_empty()),
            secrets,
            token: Arc::new(OnceCell::new()),
            http: Arc::new(OnceLock::new()),
        }
    }

    pub async fn public_key(&self, scope: &GitHubScope) -> ApiResult<SealingKey> {
        let path = format!("{}/public-key", scope.secrets_path());
        let body = self.call(Method::GET, &path, None).await?;
        #[derive(serde::Deserialize)]
        struct Key {
            key_id: String,
            key: String,
        }
        let key: Key = serde_json::from_slice(&body).map_err(|e| ApiError::Other {
            code: "GitHubResponse".into(),
            message: format!("GET {path}: the answer is not a public key ({e})"),
        })?;
        Ok(SealingKey {
            key_id: key.key_id,
            key: key.key,
        })
    }

    pub async fn put_secret(
        &self,
        scope: &GitHubScope,
        name: &str,
        key: &SealingKey,
        value: &SecretText,
    ) -> ApiResult<()> {
        let sealed = seal(&key.key, value.expose().as_bytes())?;
        let mut body = serde_json::json!({"encrypted_value": sealed, "key_id": key.key_id});
        if let Some(visibility) = scope.visibility() {
            body["visibility"] = visibility.into();
        }
        let path = format!("{}/{name}", scope.secrets_path());
        self.call(Method::PUT, &path, Some(body.to_string()))
            .await
            .map(|_| ())
    }

    /// POST `.../actions/workflows/{workflow}/dispatches` on `git_ref` (GitHub answers 204). A
    /// retry after a lost answer may dispatch twice: a deploy run twice is harmless.
    pub async fn dispatch(
        &self,
        owner: &str,
        repo: &str,
        workflow: &str,
        git_ref: &str,
    ) -> ApiResult<()> {
        let path = format!("/repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches");
        let body = serde_json::json!({ "ref": git_ref }).to_string();
        self.call(Method::POST, &path, Some(body)).await.map(|_| ())
    }

    /// GET `.../actions/workflows/{workflow}/runs` of `workflow_dispatch` on `git_ref`: the latest
    /// run (GitHub lists the newest first).
    pub async fn last_run(
        &self,
        owner: &str,
        repo: &str,
        workflow: &str,
        git_ref: &str,
    ) -> ApiResult<Option<Rollout>> {
        let path = format!(
            "/repos/{owner}/{repo}/actions/workflows/{workflow}/runs?event=workflow_dispatch&branch={}&per_page=1",
            git_ref.replace('/', "%2F")
        );
        let body = self.call(Method::GET, &path, None).await?;
        run_of(&body).map_err(|e| ApiError::Other {
            code: "GitHubResponse".into(),
            message: format!("GET {path}: the answer is not a list of workflow runs ({e})"),
        })
    }

    /// The token, read from its secret on first use.
    async fn token(&self) -> ApiResult<&SecretText> {
        let Some(secret) = &self.token_secret else {
            return Err(ApiError::InvalidRequest(
                "no GitHub token is configured: store one in a Secrets Manager secret and name it with KEYTURN_GITHUB_TOKEN_SECRET (the template's GitHubTokenSecretArn, or --github-token-secret)".into(),
            ));
        };
        self.token
            .get_or_try_init(|| async {
                let text = self
                    .secrets
                    .value(secret, &VersionRef::Label(keyturn_core::ports::AWSCURRENT))
                    .await
                    .map_err(|e| token_unreadable(secret, e))?
                    .ok_or_else(|| token_unreadable(secret, ApiError::NotFound("no value".into())))?;
                token_of(&text).ok_or_else(|| {
                    ApiError::InvalidRequest(format!(
                        "the GitHub token secret {secret} holds no token (its value must be the token, or JSON with a \"token\" field)"
                    ))
                })
            })
            .await
    }

    async fn call(&self, method: Method, path: &str, body: Option<String>) -> ApiResult<Bytes> {
        let token = self.token().await?;
        let url = format!("{}{path}", self.api_base);
        let mut delay = Duration::from_millis(500);
        let mut attempt = 1;
        loop {
            let request = Request::builder()
                .method(method.clone())
                .uri(&url)
                .header("accept", "application/vnd.github+json")
                .header("x-github-api-version", API_VERSION)
                .header("user-agent", concat!("keyturn/", env!("CARGO_PKG_VERSION")))
                .header("authorization", format!("Bearer {}", token.expose()))
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(body.clone().unwrap_or_default())))
                .map_err(|e| ApiError::InvalidRequest(format!("{method} {url}: {e}")))?;
            let outcome = match tokio::time::timeout(
                ATTEMPT_TIMEOUT,
                self.http.get_or_init(http_client).request(request),
            )
            .await
            {
                Err(_) => Err(ApiError::Unavailable(format!("{method} {url}: timed out"))),
                Ok(Err(e)) => Err(ApiError::Unavailable(format!(
                    "{method} {url}: could not connect ({})",
                    connect_error(&e)
                ))),
                Ok(Ok(response)) => {
                    let status = response.status();
                    let spent = response
                        .headers()
                        .get("x-ratelimit-remaining")
                        .is_some_and(|v| v.as_bytes() == b"0");
                    let bytes = response
                        .into_body()
                        .collect()
                        .await
                        .map(|b| b.to_bytes())
                        .map_err(|e| ApiError::Unavailable(format!("{method} {url}: {e}")))?;
                    if status.is_success() {
                        return Ok(bytes);
                    }
                    Err(classify(status, spent, &format!("{method} {url}"), &bytes))
                }
            };
            match outcome {
                Err(e) if e.is_transient() && attempt < ATTEMPTS => {
                    tracing::info!(%method, path, attempt, error = %e, "GitHub call failed; retrying");
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }
}

fn http_client() -> Http {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = match hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_native_roots(provider.clone())
    {
        Ok(b) => b,
        Err(e) => {
            // No system roots: plain HTTP (a local stand-in) still works, and HTTPS fails as a TLS
            // error naming the certificate.
            tracing::warn!(error = %e, "no trusted root certificates found; HTTPS to GitHub will fail");
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map(|b| {
                    b.with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth()
                });
            match config {
                Ok(c) => hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(c),
                Err(_) => hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(
                    rustls::ClientConfig::builder()
                        .with_root_certificates(rustls::RootCertStore::empty())
                        .with_no_client_auth(),
                ),
            }
        }
    };
    let connector = builder.https_or_http().enable_http1().build();
    Client::builder(TokioExecutor::new()).build(connector)
}

/// The cause of a connection failure, without the request (which carries the token).
fn connect_error(e: &hyper_util::client::legacy::Error) -> String {
    use std::error::Error;
    let mut cause = e.source();
    let mut last = e.to_string();
    while let Some(c) = cause {
        last = c.to_string();
        cause = c.source();
    }
    last
}

/// The first run of a workflow-runs answer as a rollout: `completed` with conclusion `success` is
/// completed, another conclusion failed, any other status in progress.
fn run_of(body: &[u8]) -> Result<Option<Rollout>, String> {
    #[derive(serde::Deserialize)]
    struct Runs {
        workflow_runs: Vec<Run>,
    }
    #[derive(serde::Deserialize)]
    struct Run {
        id: u64,
        created_at: String,
        status: Option<String>,
        conclusion: Option<String>,
    }
    let runs: Runs = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let Some(run) = runs.workflow_runs.into_iter().next() else {
        return Ok(None);
    };
    let started = keyturn_core::error::parse_rfc3339(&run.created_at)
        .ok_or_else(|| format!("created_at {:?} is not a time", run.created_at))?;
    let state = match (run.status.as_deref(), run.conclusion.as_deref()) {
        (Some("completed"), Some("success")) => RolloutState::Completed,
        (Some("completed"), conclusion) => RolloutState::Failed(format!(
            "run {} concluded {}",
            run.id,
            conclusion.unwrap_or("without a conclusion")
        )),
        _ => RolloutState::InProgress,
    };
    Ok(Some(Rollout {
        id: run.id.to_string(),
        started,
        state,
        old_tasks: 0,
    }))
}

/// A GitHub answer as a domain error. GitHub's messages hold no secrets.
fn classify(status: StatusCode, rate_limit_spent: bool, call: &str, body: &[u8]) -> ApiError {
    let message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| {
            v.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string)
        })
        .unwrap_or_else(|| status.canonical_reason().unwrap_or("").to_string());
    let message = format!("{call}: {} {message}", status.as_u16());
    match status.as_u16() {
        401 => ApiError::InvalidCredentials(format!(
            "{message} (GitHub rejected the token: check the token secret)"
        )),
        403 if rate_limit_spent => ApiError::Throttled(message),
        403 => ApiError::AccessDenied(format!(
            "{message} (the token needs the Secrets permission on this repository, environment or organization for a sink, the Actions permission on the repository for a workflow dispatch)"
        )),
        404 => ApiError::NotFound(format!(
            "{message} (no such repository, environment or organization, or the token cannot see it)"
        )),
        422 => ApiError::InvalidRequest(message),
        429 => ApiError::Throttled(message),
        s if s >= 500 => ApiError::Unavailable(message),
        _ => ApiError::Other {
            code: format!("HTTP {}", status.as_u16()),
            message,
        },
    }
}

fn token_unreadable(secret: &str, e: ApiError) -> ApiError {
    match e {
        ApiError::NotFound(_) => ApiError::NotFound(format!(
            "the GitHub token secret {secret} does not exist or has no value"
        )),
        ApiError::AccessDenied(m) => ApiError::AccessDenied(format!(
            "reading the GitHub token secret {secret}: {m} (grant secretsmanager:GetSecretValue on it)"
        )),
        other => other,
    }
}

/// The token in a secret's value: the value itself, or its JSON `token` field.
fn token_of(text: &SecretText) -> Option<SecretText> {
    let raw = text.expose().trim();
    let token = match serde_json::from_str::<serde_json::Value>(raw) {
        Ok(v) => v.get("token")?.as_str()?.trim().to_string(),
        Err(_) => raw.to_string(),
    };
    (!token.is_empty() && !token.contains(char::is_whitespace)).then(|| SecretText::new(token))
}

/// A libsodium sealed box of `value` to the base64 Curve25519 `public_key`, base64-encoded: what
/// GitHub's `encrypted_value` takes.
pub fn seal(public_key: &str, value: &[u8]) -> ApiResult<String> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let bad = || ApiError::InvalidRequest("GitHub's public key is not 32 bytes of base64".into());
    let bytes: [u8; crypto_box::KEY_SIZE] = b64
        .decode(public_key.trim())
        .map_err(|_| bad())?
        .try_into()
        .map_err(|_| bad())?;
    let sealed = crypto_box::PublicKey::from(bytes)
        .seal(&mut crypto_box::aead::OsRng, value)
        .map_err(|_| ApiError::Other {
            code: "Seal".into(),
            message: "sealing the value failed".into(),
        })?;
    Ok(b64.encode(sealed))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_box_opens_with_the_matching_secret_key_only() {
        let b64 = base64::engine::general_purpose::STANDARD;
        let secret = crypto_box::SecretKey::generate(&mut crypto_box::aead::OsRng);
        let public = b64.encode(secret.public_key().as_bytes());
        let sealed = b64
            .decode(seal(&public, b"wJalr/secret").expect("seal"))
            .expect("b64");
        assert_eq!(secret.unseal(&sealed).expect("opens"), b"wJalr/secret");
        let other = crypto_box::SecretKey::generate(&mut crypto_box::aead::OsRng);
        assert!(other.unseal(&sealed).is_err());
        assert!(seal("not base64!", b"x").is_err());
        assert!(seal(&b64.encode([0u8; 31]), b"x").is_err());
    }

    #[test]
    fn tokens_are_read_from_a_plain_or_json_value() {
        let t = |v: &str| token_of(&SecretText::new(v)).map(|t| t.expose().to_string());
        assert_eq!(t("ghp_abc\n").as_deref(), Some("ghp_abc"));
        assert_eq!(t(r#"{"token": "ghs_x"}"#).as_deref(), Some("ghs_x"));
        assert_eq!(t(r#"{"other": "x"}"#), None);
        assert_eq!(t(""), None);
        assert_eq!(t("two words"), None);
    }

    #[test]
    fn a_workflow_run_is_read_as_a_rollout() {
        let run = |status: &str, conclusion: &str| {
            run_of(
                format!(r#"{{"total_count": 1, "workflow_runs": [{{"id": 7, "created_at": "2026-12-03T10:00:00Z", "status": "{status}", "conclusion": {conclusion}}}]}}"#)
                    .as_bytes(),
            )
            .expect("parses")
            .expect("a run")
        };
        assert_eq!(
            run("completed", r#""success""#).state,
            RolloutState::Completed
        );
        assert!(
            matches!(run("completed", r#""failure""#).state, RolloutState::Failed(ref w) if w.contains("failure"))
        );
        assert_eq!(run("in_progress", "null").state, RolloutState::InProgress);
        assert_eq!(run("queued", "null").id, "7");
        assert_eq!(
            run_of(br#"{"total_count": 0, "workflow_runs": []}"#),
            Ok(None)
        );
        assert!(run_of(b"[]").is_err());
    }

    #[test]
    fn answers_map_to_domain_errors_with_the_reason() {
        let e = |s: u16, spent: bool| {
            classify(
                StatusCode::from_u16(s).expect("status"),
                spent,
                "PUT /repos/a/b/actions/secrets/X",
                br#"{"message": "Bad credentials"}"#,
            )
        };
        assert_eq!(e(401, false).kind(), "InvalidCredentials");
        assert!(e(401, false).to_string().contains("Bad credentials"));
        assert_eq!(e(403, false).kind(), "AccessDenied");
        assert!(e(403, true).is_transient());
        assert_eq!(e(404, false).kind(), "NotFound");
        assert_eq!(e(422, false).kind(), "InvalidRequest");
        assert!(e(429, false).is_transient() && e(502, false).is_transient());
    }
}
