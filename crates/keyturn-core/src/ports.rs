//! The ports through which the core talks to the world, in domain words.
//!
//! Adapters (keyturn-aws) implement them with one AWS call per method; the in-memory model
//! (`fake`, feature `fake`) implements them for tests. Every method is one remote call, so the
//! number of calls a step makes can be read off the step's code.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use time::OffsetDateTime;

use crate::secret::{AccessKey, SecretText};
use crate::sink::GitHubScope;

pub use crate::tags::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};

/// What an AWS call failed with, in domain terms. Messages come from AWS and never hold secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// IAM `NoSuchEntity`, Secrets Manager `ResourceNotFoundException`.
    #[error("not found: {0}")]
    NotFound(String),
    /// IAM `LimitExceeded` (for example a third access key).
    #[error("limit exceeded: {0}")]
    LimitExceeded(String),
    /// The caller is not allowed to make the call.
    #[error("access denied: {0}")]
    AccessDenied(String),
    /// The credentials used do not authenticate (unknown, deleted or inactive key; bad signature).
    #[error("credentials rejected: {0}")]
    InvalidCredentials(String),
    /// The service asked us to slow down (after the SDK's own bounded retries).
    #[error("throttled: {0}")]
    Throttled(String),
    /// A 5xx, a timeout or a connection failure (after the SDK's own bounded retries).
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// Secrets Manager `ResourceExistsException`: a version with this token already exists with
    /// a different value (versions are immutable).
    #[error("already exists: {0}")]
    AlreadyExists(String),
    /// The request was refused as invalid in the resource's current state.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// Anything else, with the service's error code.
    #[error("{code}: {message}")]
    Other { code: String, message: String },
}

impl ApiError {
    /// Whether the same call may succeed if simply tried again later.
    pub fn is_transient(&self) -> bool {
        matches!(self, ApiError::Throttled(_) | ApiError::Unavailable(_))
    }

    /// A short name for logs and Lambda's errorType.
    pub fn kind(&self) -> &'static str {
        match self {
            ApiError::NotFound(_) => "NotFound",
            ApiError::LimitExceeded(_) => "LimitExceeded",
            ApiError::AccessDenied(_) => "AccessDenied",
            ApiError::InvalidCredentials(_) => "InvalidCredentials",
            ApiError::Throttled(_) => "Throttled",
            ApiError::Unavailable(_) => "ServiceUnavailable",
            ApiError::AlreadyExists(_) => "AlreadyExists",
            ApiError::InvalidRequest(_) => "InvalidRequest",
            ApiError::Other { .. } => "AwsError",
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// A secret's metadata: one DescribeSecret.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretInfo {
    pub arn: String,
    pub name: String,
    pub rotation_enabled: bool,
    /// Version id → staging labels (only versions that have labels).
    pub versions: BTreeMap<String, Vec<String>>,
    pub tags: BTreeMap<String, String>,
    pub last_rotated: Option<OffsetDateTime>,
    pub next_rotation: Option<OffsetDateTime>,
    pub rotation_days: Option<i64>,
}

impl SecretInfo {
    /// The version holding `label`, if any.
    pub fn version_with(&self, label: &str) -> Option<&str> {
        self.versions
            .iter()
            .find(|(_, labels)| labels.iter().any(|l| l == label))
            .map(|(id, _)| id.as_str())
    }

    pub fn labels_of(&self, version: &str) -> &[String] {
        self.versions.get(version).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The account id in the secret's ARN (`arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME`).
    pub fn account_id(&self) -> Option<&str> {
        self.arn.split(':').nth(4).filter(|a| !a.is_empty())
    }
}

/// Which version of a secret to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VersionRef {
    /// The version holding a staging label.
    Label(&'static str),
    /// A version id, which must also hold the label (as AWS's rotation functions ask).
    IdWithLabel(String, &'static str),
    /// A version id.
    Id(String),
}

/// A version's value as GetSecretValue returns it, with the version's creation as Secrets Manager
/// records it (no tagger can set it: it bounds when a version can have become AWSCURRENT).
#[derive(Debug, Clone)]
pub struct StoredValue {
    pub text: SecretText,
    pub created: Option<OffsetDateTime>,
}

/// Secrets Manager, as the rotation needs it.
pub trait SecretStore: Send + Sync {
    /// DescribeSecret.
    fn describe(&self, secret_id: &str) -> impl Future<Output = ApiResult<SecretInfo>> + Send;
    /// GetSecretValue: the value and the version's creation. `Ok(None)` when that version does not
    /// exist or has no value yet.
    fn stored(
        &self,
        secret_id: &str,
        version: &VersionRef,
    ) -> impl Future<Output = ApiResult<Option<StoredValue>>> + Send;
    /// GetSecretValue, the value alone (the same one call as [`SecretStore::stored`]).
    fn value(
        &self,
        secret_id: &str,
        version: &VersionRef,
    ) -> impl Future<Output = ApiResult<Option<SecretText>>> + Send {
        let read = self.stored(secret_id, version);
        async move { read.await.map(|v| v.map(|v| v.text)) }
    }
    /// PutSecretValue with `ClientRequestToken = token` and the AWSPENDING label (idempotent for
    /// the same token and value).
    fn put_pending(
        &self,
        secret_id: &str,
        token: &str,
        value: &SecretText,
    ) -> impl Future<Output = ApiResult<()>> + Send;
    /// UpdateSecretVersionStage: move `label` to `to` (removing it from `from`), or only remove it
    /// from `from` when `to` is `None`.
    fn move_label(
        &self,
        secret_id: &str,
        label: &str,
        to: Option<&str>,
        from: Option<&str>,
    ) -> impl Future<Output = ApiResult<()>> + Send;
    /// ListSecrets (every page): the secrets that have the tag `tag_key` (and, when given, a tag
    /// whose value starts with `tag_value`: ListSecrets matches prefixes, callers keep exact
    /// matches), with the metadata ListSecrets returns (labels, tags, rotation settings), so that a
    /// read-only pass over many secrets needs no DescribeSecret each.
    fn list_tagged(
        &self,
        tag_key: &str,
        tag_value: Option<&str>,
    ) -> impl Future<Output = ApiResult<Vec<SecretInfo>>> + Send;
    /// CreateSecret with `value` and `tags`; returns the ARN.
    fn create(
        &self,
        name: &str,
        value: &SecretText,
        tags: &[(String, String)],
    ) -> impl Future<Output = ApiResult<String>> + Send;
    /// RotateSecret with `lambda_arn` every `days` days, not rotating now (RotateImmediately=false).
    fn schedule(
        &self,
        secret_id: &str,
        lambda_arn: &str,
        days: i64,
    ) -> impl Future<Output = ApiResult<()>> + Send;
    /// TagResource.
    fn tag(
        &self,
        secret_id: &str,
        tags: &[(String, String)],
    ) -> impl Future<Output = ApiResult<()>> + Send;
}

/// Whether an IAM access key is usable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    Active,
    Inactive,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStatus::Active => "Active",
            KeyStatus::Inactive => "Inactive",
        }
    }
}

/// One of a user's access keys as ListAccessKeys shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub id: String,
    pub status: KeyStatus,
    pub created: OffsetDateTime,
}

/// When and where a key was last used (GetAccessKeyLastUsed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyUse {
    pub last_used: Option<OffsetDateTime>,
    pub service: Option<String>,
    pub region: Option<String>,
}

/// IAM access-key calls, made by one identity.
pub trait AccessKeys: Send + Sync {
    /// ListAccessKeys.
    fn list(&self, user: &str) -> impl Future<Output = ApiResult<Vec<KeyInfo>>> + Send;
    /// GetUser: the user's IAM path (`/` when IAM gives none).
    fn user_path(&self, user: &str) -> impl Future<Output = ApiResult<String>> + Send;
    /// GetAccessKeyLastUsed.
    fn last_used(&self, key_id: &str) -> impl Future<Output = ApiResult<KeyUse>> + Send;
    /// CreateAccessKey.
    fn create(&self, user: &str) -> impl Future<Output = ApiResult<AccessKey>> + Send;
    /// DeleteAccessKey.
    fn delete(&self, user: &str, key_id: &str) -> impl Future<Output = ApiResult<()>> + Send;
    /// UpdateAccessKey.
    fn set_status(
        &self,
        user: &str,
        key_id: &str,
        status: KeyStatus,
    ) -> impl Future<Output = ApiResult<()>> + Send;
    /// GenerateCredentialReport: whether the report is complete.
    fn generate_report(&self) -> impl Future<Output = ApiResult<bool>> + Send;
    /// GetCredentialReport: the report's CSV.
    fn report(&self) -> impl Future<Output = ApiResult<Vec<u8>>> + Send;
}

/// Where IAM calls come from: the function's own identity, or a key held in a secret (`masterarn`).
/// Building one does no I/O.
pub trait Iam: Send + Sync {
    type Keys: AccessKeys;
    /// Calls made with the process's own credentials (the function's role, the CLI's profile).
    fn own(&self) -> Self::Keys;
    /// Calls signed with `key`.
    fn signed_with(&self, key: &AccessKey) -> Self::Keys;
}

/// Who a key authenticates as (STS GetCallerIdentity).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub account: String,
    pub arn: String,
}

/// STS, signed with the key under test.
pub trait IdentityCheck: Send + Sync {
    fn whoami(&self, key: &AccessKey) -> impl Future<Output = ApiResult<Identity>> + Send;
}

/// A GitHub public key that Actions secrets are sealed to (GET `.../secrets/public-key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealingKey {
    pub key_id: String,
    /// The key as GitHub gives it: base64 of 32 bytes (Curve25519).
    pub key: String,
}

/// What keyturn announces on EventBridge's default bus (source `keyturn`): ids and names only,
/// never a secret key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct KeyEvent {
    /// The event's `DetailType`.
    #[serde(skip)]
    pub detail_type: &'static str,
    pub secret: String,
    pub secret_arn: String,
    pub account: Option<String>,
    pub user: String,
    /// The key the event is about: the new AWSCURRENT key, the restored key, the retired key.
    pub key_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous_key_id: Option<String>,
    /// The version that now holds AWSCURRENT (rotation, rollback, delivery).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// A retirement's action: `deactivated` or `deleted`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'static str>,
    /// The sinks the key was delivered to (their names).
    pub sinks: Vec<String>,
    /// The restart targets restarted after the rotation (their names).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restarted: Vec<String>,
    /// The restart targets whose restart failed (retried by the sweep).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restart_failed: Vec<String>,
}

impl KeyEvent {
    pub const ROTATION: &'static str = "keyturn rotation";
    pub const ROLLBACK: &'static str = "keyturn rollback";
    pub const RETIREMENT: &'static str = "keyturn retirement";
    pub const DELIVERY: &'static str = "keyturn delivery";
    /// The event's `Source`.
    pub const SOURCE: &'static str = "keyturn";
}

/// A notice to a secret's owner, published to the deployment's topic with the owner as a message
/// attribute (subscription filter policies route it) and, as the message, the JSON that Amazon Q
/// Developer in chat applications (formerly AWS Chatbot) renders as a custom notification in Slack
/// or Teams. Names and key ids only, never a secret key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// `rotated`, `due`, `in-use`, `failed` (also the `kind` message attribute).
    pub kind: &'static str,
    /// The secret's `keyturn:owner` (the `owner` message attribute).
    pub owner: String,
    pub secret: String,
    pub account: Option<String>,
    pub user: Option<String>,
    pub title: String,
    pub description: String,
    pub next_steps: Vec<String>,
    /// Key ids, targets and the like, as chat keywords.
    pub keywords: Vec<String>,
}

impl Notice {
    pub const ROTATED: &'static str = "rotated";
    pub const DUE: &'static str = "due";
    pub const IN_USE: &'static str = "in-use";
    pub const FAILED: &'static str = "failed";

    /// The message: a custom notification (version 1.0, source custom), threaded per secret.
    pub fn message(&self) -> String {
        serde_json::json!({
            "version": "1.0",
            "source": "custom",
            "content": {
                "textType": "client-markdown",
                "title": self.title,
                "description": self.description,
                "nextSteps": self.next_steps,
                "keywords": self.keywords,
            },
            "metadata": {
                "threadId": format!("keyturn/{}", self.secret),
                "summary": self.title,
                "eventType": format!("keyturn {}", self.kind),
                "relatedResources": [self.secret],
                "additionalContext": {
                    "owner": self.owner,
                    "account": self.account,
                    "user": self.user,
                },
            },
        })
        .to_string()
    }
}

/// Where a rollout stands (an ECS deployment's `rolloutState`, a workflow run's status and
/// conclusion).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutState {
    InProgress,
    Completed,
    /// The rollout failed (an ECS deployment rolled back, a run that did not succeed), with what
    /// the service said.
    Failed(String),
}

/// The latest rollout of a restart target, as ECS or GitHub records it: no tagger can set it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rollout {
    /// The deployment's or run's id.
    pub id: String,
    /// When it began (ECS `createdAt`, GitHub `created_at`).
    pub started: OffsetDateTime,
    pub state: RolloutState,
    /// Tasks still running an older deployment (ECS's other deployments' `runningCount`); 0 for a
    /// workflow.
    pub old_tasks: u32,
}

/// How serious a Security Hub finding is (ASFF `Severity.Label`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HubSeverity {
    Informational,
    Low,
    Medium,
    High,
    Critical,
}

impl HubSeverity {
    pub fn as_str(self) -> &'static str {
        match self {
            HubSeverity::Informational => "INFORMATIONAL",
            HubSeverity::Low => "LOW",
            HubSeverity::Medium => "MEDIUM",
            HubSeverity::High => "HIGH",
            HubSeverity::Critical => "CRITICAL",
        }
    }
}

/// A resource a Security Hub finding names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubResource {
    /// `AwsIamAccessKey`, its id `AWS::IAM::AccessKey:{key_id}` (the key id alone when known;
    /// the user and slot when the report gave no id).
    AccessKey {
        key_id: Option<String>,
        user: String,
        account: String,
        created: Option<OffsetDateTime>,
        active: bool,
    },
    /// `AwsIamUser`, by ARN.
    User { arn: String },
    /// `AwsSecretsManagerSecret`, by name or ARN.
    Secret { id: String },
}

/// One key's finding in the AWS Security Finding Format, as keyturn sets it (`audit::hub` builds
/// it; the adapter adds the product ARN, the generator, the times and the schema version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HubFinding {
    /// Stable per account, user and key (`keyturn/{account}/{user}/{key}`): a re-run updates it.
    pub id: String,
    /// The account the key belongs to.
    pub account: String,
    pub severity: HubSeverity,
    /// ASFF types (`namespace/category/classifier`).
    pub types: Vec<String>,
    pub title: String,
    pub description: String,
    /// `FAILED`, `WARNING` (exempt) or `PASSED` (resolved).
    pub compliance: &'static str,
    /// False: the record is archived (the key was fixed or is gone).
    pub active: bool,
    pub resources: Vec<HubResource>,
    pub remediation: String,
    /// The exemption, when one holds (the finding's note).
    pub note: Option<String>,
    /// `ProductFields`: `keyturn/...` names and values.
    pub fields: Vec<(String, String)>,
    /// When the key was created (the finding's `FirstObservedAt`), if known.
    pub first_observed: Option<OffsetDateTime>,
}

/// What one BatchImportFindings call did: the count imported and each refused finding with why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HubImport {
    pub imported: usize,
    pub failed: Vec<(String, String)>,
}

/// One page of GetFindings: keyturn's active findings' ids, and the token of the next page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HubPage {
    pub ids: Vec<String>,
    pub next: Option<String>,
}

/// Where new keys are delivered (sinks) and announced (events), and the consumers restarted
/// after AWSCURRENT moves. One remote call per method.
pub trait Delivery: Send + Sync {
    /// SSM PutParameter: a SecureString `name` holding `value`, overwritten, encrypted with
    /// `kms_key` (SSM's default key when `None`).
    fn put_parameter(
        &self,
        name: &str,
        kms_key: Option<&str>,
        value: &SecretText,
    ) -> impl Future<Output = ApiResult<()>> + Send;
    /// GitHub: GET `{scope}/public-key`.
    fn github_public_key(
        &self,
        scope: &GitHubScope,
    ) -> impl Future<Output = ApiResult<SealingKey>> + Send;
    /// GitHub: PUT `{scope}/{name}` with `value` sealed to `key` (a libsodium sealed box).
    fn github_put_secret(
        &self,
        scope: &GitHubScope,
        name: &str,
        key: &SealingKey,
        value: &SecretText,
    ) -> impl Future<Output = ApiResult<()>> + Send;
    /// EventBridge PutEvents on the default bus: one entry, source `keyturn`.
    fn publish(&self, event: &KeyEvent) -> impl Future<Output = ApiResult<()>> + Send;
    /// SNS Publish of `notice` to `topic`, with the `owner` and `kind` message attributes.
    fn notify(&self, topic: &str, notice: &Notice) -> impl Future<Output = ApiResult<()>> + Send;
    /// ECS UpdateService with forceNewDeployment.
    fn ecs_force_deployment(
        &self,
        cluster: &str,
        service: &str,
    ) -> impl Future<Output = ApiResult<()>> + Send;
    /// ECS DescribeServices: the service's primary deployment (`None`: it has none).
    fn ecs_rollout(
        &self,
        cluster: &str,
        service: &str,
    ) -> impl Future<Output = ApiResult<Option<Rollout>>> + Send;
    /// GitHub: POST `/repos/{owner}/{repo}/actions/workflows/{workflow}/dispatches` on `git_ref`.
    fn github_dispatch(
        &self,
        owner: &str,
        repo: &str,
        workflow: &str,
        git_ref: &str,
    ) -> impl Future<Output = ApiResult<()>> + Send;
    /// GitHub: GET the workflow's runs (event `workflow_dispatch`, branch `git_ref`): the latest
    /// (`None`: none).
    fn github_last_run(
        &self,
        owner: &str,
        repo: &str,
        workflow: &str,
        git_ref: &str,
    ) -> impl Future<Output = ApiResult<Option<Rollout>>> + Send;
    /// Security Hub BatchImportFindings (at most 100 findings) into `hub_account`'s hub, with the
    /// product ARN of its default integration: `hub_account` is the findings' `AwsAccountId`.
    fn hub_import(
        &self,
        hub_account: &str,
        findings: &[HubFinding],
    ) -> impl Future<Output = ApiResult<HubImport>> + Send;
    /// Security Hub GetFindings: one page of keyturn's active findings in `hub_account`'s hub
    /// whose id starts with `prefix`.
    fn hub_active(
        &self,
        hub_account: &str,
        prefix: &str,
        next: Option<String>,
    ) -> impl Future<Output = ApiResult<HubPage>> + Send;
    /// Security Hub BatchUpdateFindings (at most 100): the findings' workflow status RESOLVED.
    fn hub_resolved(
        &self,
        hub_account: &str,
        ids: &[String],
    ) -> impl Future<Output = ApiResult<()>> + Send;
}

/// No sinks and no events: for callers that deliver nowhere (tests, read-only commands).
#[derive(Debug, Clone, Copy, Default)]
pub struct Nowhere;

impl Delivery for Nowhere {
    async fn put_parameter(&self, name: &str, _: Option<&str>, _: &SecretText) -> ApiResult<()> {
        Err(ApiError::InvalidRequest(format!(
            "parameter {name}: this process delivers to no sink"
        )))
    }
    async fn github_public_key(&self, scope: &GitHubScope) -> ApiResult<SealingKey> {
        Err(ApiError::InvalidRequest(format!(
            "{}: this process delivers to no sink",
            scope.secrets_path()
        )))
    }
    async fn github_put_secret(
        &self,
        scope: &GitHubScope,
        _: &str,
        _: &SealingKey,
        _: &SecretText,
    ) -> ApiResult<()> {
        self.github_public_key(scope).await.map(|_| ())
    }
    async fn publish(&self, _: &KeyEvent) -> ApiResult<()> {
        Err(ApiError::InvalidRequest(
            "this process publishes no events".into(),
        ))
    }
    async fn notify(&self, topic: &str, _: &Notice) -> ApiResult<()> {
        Err(ApiError::InvalidRequest(format!(
            "topic {topic}: this process sends no notices"
        )))
    }
    async fn ecs_force_deployment(&self, cluster: &str, service: &str) -> ApiResult<()> {
        Err(ApiError::InvalidRequest(format!(
            "ECS service {cluster}/{service}: this process restarts nothing"
        )))
    }
    async fn ecs_rollout(&self, cluster: &str, service: &str) -> ApiResult<Option<Rollout>> {
        self.ecs_force_deployment(cluster, service)
            .await
            .map(|()| None)
    }
    async fn github_dispatch(&self, owner: &str, repo: &str, _: &str, _: &str) -> ApiResult<()> {
        Err(ApiError::InvalidRequest(format!(
            "GitHub repository {owner}/{repo}: this process restarts nothing"
        )))
    }
    async fn github_last_run(
        &self,
        owner: &str,
        repo: &str,
        workflow: &str,
        git_ref: &str,
    ) -> ApiResult<Option<Rollout>> {
        self.github_dispatch(owner, repo, workflow, git_ref)
            .await
            .map(|()| None)
    }
    async fn hub_import(&self, hub_account: &str, _: &[HubFinding]) -> ApiResult<HubImport> {
        Err(ApiError::InvalidRequest(format!(
            "Security Hub of account {hub_account}: this process imports no findings"
        )))
    }
    async fn hub_active(
        &self,
        hub_account: &str,
        _: &str,
        _: Option<String>,
    ) -> ApiResult<HubPage> {
        self.hub_import(hub_account, &[])
            .await
            .map(|_| HubPage::default())
    }
    async fn hub_resolved(&self, hub_account: &str, _: &[String]) -> ApiResult<()> {
        self.hub_import(hub_account, &[]).await.map(|_| ())
    }
}

/// Time, injected so tests are deterministic.
pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send;
}

/// Every port the engine needs, as one bundle: `Rotator<P>` instead of five type parameters. A
/// tuple `(store, iam, identity check, clock, delivery)` of ports is one.
pub trait Ports {
    type Store: SecretStore;
    type Iam: Iam;
    type Identity: IdentityCheck;
    type Clock: Clock;
    type Delivery: Delivery;
}

impl<S, I, V, C, D> Ports for (S, I, V, C, D)
where
    S: SecretStore,
    I: Iam,
    V: IdentityCheck,
    C: Clock,
    D: Delivery,
{
    type Store = S;
    type Iam = I;
    type Identity = V;
    type Clock = C;
    type Delivery = D;
}

/// The IAM calls of a bundle's keys (the process's own identity, or a master key's).
pub type KeysOf<P> = <<P as Ports>::Iam as Iam>::Keys;
