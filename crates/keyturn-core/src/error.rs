//! Domain errors. Every message names the secret (and the user and key where known) and says what
//! to do next; none contains secret material.

use time::OffsetDateTime;

use crate::ports::{ApiError, KeyUse};
use crate::secret::ShapeError;

/// Why a key that had to be deleted to make room was left alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptKey {
    pub key_id: String,
    /// The staging label of the version that holds it, if any.
    pub held_by: Option<String>,
    pub last_use: KeyUse,
    pub created: OffsetDateTime,
    pub reason: KeepReason,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeepReason {
    /// AWSPREVIOUS key used after the current key took over.
    UsedSinceCutover,
    /// Held by no version, but used: someone relies on it.
    UnmanagedAndUsed,
    /// Held by a version with a label keyturn does not manage.
    HeldByOtherLabel,
    /// Held by no version, never used, made minutes ago: maybe another keyturn run's new key;
    /// `keyturn rotate` takes it for an orphan from `until`.
    MaybeAnotherRun { until: OffsetDateTime },
    /// It signs keyturn's own IAM calls (masterarn).
    Signer,
    /// Its last use could not be read.
    UseUnknown,
    /// AWSPREVIOUS key showing no use since the cut-over, but IAM's last-used record may not show
    /// a recent use before `until` (the settle window).
    NotSettled { until: OffsetDateTime },
}

impl std::fmt::Display for KeptKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let used = describe_use(&self.last_use);
        match self.reason {
            KeepReason::UsedSinceCutover => write!(
                f,
                "{} (AWSPREVIOUS) was {used} after the current key took over",
                self.key_id
            ),
            KeepReason::UnmanagedAndUsed => write!(
                f,
                "{} is held by no version of the secret but was {used}",
                self.key_id
            ),
            KeepReason::HeldByOtherLabel => write!(
                f,
                "{} is held by the version labelled {}",
                self.key_id,
                self.held_by.as_deref().unwrap_or("?")
            ),
            KeepReason::MaybeAnotherRun { .. } => write!(
                f,
                "{} was created at {}, is held by no version and was never used: taken for the new key of another keyturn run that has not stored it yet",
                self.key_id,
                rfc3339(self.created),
            ),
            KeepReason::Signer => write!(
                f,
                "{} signs keyturn's own IAM calls (masterarn)",
                self.key_id
            ),
            KeepReason::UseUnknown => write!(f, "{}'s last use could not be read", self.key_id),
            KeepReason::NotSettled { until } => write!(
                f,
                "{} (AWSPREVIOUS) shows no use since the cut-over, but IAM records uses hours late, so it counts as possibly in use until {} (KEYTURN_LAST_USED_SETTLE_SECONDS)",
                self.key_id,
                rfc3339(until)
            ),
        }
    }
}

/// "last used 2026-11-20T10:00:00Z by s3 in eu-west-1", or "never used".
pub fn describe_use(u: &KeyUse) -> String {
    match u.last_used {
        None => "never used".to_string(),
        Some(t) => format!(
            "last used {} by {} in {}",
            human(t),
            u.service.as_deref().unwrap_or("an unknown service"),
            u.region.as_deref().unwrap_or("an unknown region")
        ),
    }
}

/// Reads a time written by [`rfc3339`] (or any RFC 3339 time); `None` if it is not one.
pub fn parse_rfc3339(s: &str) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s.trim(), &time::format_description::well_known::Rfc3339).ok()
}

pub fn rfc3339(t: OffsetDateTime) -> String {
    t.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// A time for people (messages, tables): to the second, in UTC, `Z`. JSON and tags keep
/// [`rfc3339`]'s full precision.
pub fn human(t: OffsetDateTime) -> String {
    let t = t.to_offset(time::UtcOffset::UTC);
    let format =
        time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    t.format(&format)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// A rotation step that could not be completed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RotationError {
    #[error("the rotation event is malformed: {reason}; expected {{\"Step\", \"SecretId\", \"ClientRequestToken\"}} with Step one of createSecret, setSecret, testSecret, finishSecret")]
    BadEvent { reason: String },

    #[error("secret {secret}: rotation is not enabled; enable it (aws secretsmanager rotate-secret or keyturn enroll) before invoking the rotation function")]
    RotationDisabled { secret: String },

    #[error("secret {secret}: version {token} is not a version of this secret; Secrets Manager must create it (RotateSecret) before the rotation function runs")]
    UnknownVersion { secret: String, token: String },

    #[error("secret {secret}: version {token} is not AWSPENDING (labels: {labels}); start a new rotation instead of replaying this one")]
    NotPending {
        secret: String,
        token: String,
        labels: String,
    },

    #[error("secret {secret}: no version is AWSCURRENT; put a value with the user's current key (keyturn enroll --adopt) before rotating")]
    NoCurrentVersion { secret: String },

    #[error("secret {secret}: the {version} value cannot be read: {reason}; fix the value so it matches a supported shape, nothing was changed in IAM")]
    BadValue {
        secret: String,
        version: String,
        reason: ShapeError,
    },

    #[error("secret {secret}: the {version} value holds no access key; put the pending version's key before this step")]
    NoKeyInValue { secret: String, version: String },

    #[error("secret {secret}: no IAM user name: the value has none, the secret has no keyturn:user tag and IAM_USER_NAME is not set; tag the secret keyturn:user=USER")]
    NoUserName { secret: String },

    #[error("secret {secret}: IAM user {user} does not exist; check the user name in the value, the keyturn:user tag or IAM_USER_NAME")]
    NoSuchUser { secret: String, user: String },

    #[error("IAM user {user} does not exist, so nothing was created; keyturn enroll takes an existing IAM user: check the name, or create the user first (aws iam create-user --user-name {user})")]
    EnrollNoUser { user: String },

    #[error("secret {secret}: master secret {master} (masterarn) holds no usable key: {reason}; fix that secret or remove masterarn to use the function's own role")]
    BadMaster {
        secret: String,
        master: String,
        reason: String,
    },

    #[error("secret {secret}: masterarn names secret {master}, which is neither this secret nor one of the deployment's master secrets ({}); nothing was changed: remove masterarn to use the caller's own rights, or add the master to the allow-list (the template's MasterSecretArns parameter, KEYTURN_MASTER_SECRETS, or keyturn --master-secret) if it is meant to sign this secret's IAM calls", if allowed.is_empty() { "none are allowed".to_string() } else { allowed.join(", ") })]
    MasterNotAllowed {
        secret: String,
        master: String,
        allowed: Vec<String>,
    },

    #[error("secret {secret}: user {user} has IAM path {path}, outside the user path {allowed} keyturn may act on; nothing was changed: move the secret to a user under {allowed}, or widen the user path (the template's UserPath, KEYTURN_USER_PATH, or keyturn --user-path)")]
    UserOutsidePath {
        secret: String,
        user: String,
        path: String,
        allowed: String,
    },

    #[error("secret {secret}: user {user} already has two access keys and neither may be deleted now: {}; {}", kept.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "), no_room_advice(secret, kept))]
    NoRoomForKey {
        secret: String,
        user: String,
        kept: Vec<KeptKey>,
    },

    #[error("secret {secret}: tag {tag}={value:?} is not valid (days: a whole number; keyturn:in-use: report or fail); fix or remove the tag")]
    BadPolicy {
        secret: String,
        tag: String,
        value: String,
    },

    #[error("secret {secret}: a rotation is already in flight (version {token} is AWSPENDING, {}); to finish it now: keyturn rotate --resume {secret}; to undo it: keyturn rotate --cancel {secret}", in_flight_by(*.by_keyturn_rotate, .started, .resumes_by_itself_from))]
    RotationInFlight {
        secret: String,
        token: String,
        /// When its version was stored, where known.
        started: Option<OffsetDateTime>,
        /// Its token is one `keyturn rotate` makes (`rules::local_token`).
        by_keyturn_rotate: bool,
        /// From when a plain `keyturn rotate` finishes it by itself (`rules::resumes_by_itself`).
        resumes_by_itself_from: Option<OffsetDateTime>,
    },

    #[error("secret {secret}: another rotation of user {user}'s key started at the same moment: IAM refused a third key because {other_key} (created {}, held by no version yet) is the other run's new key; nothing was changed: let that run finish (keyturn status {secret} shows it)", human(*.created))]
    AnotherRun {
        secret: String,
        user: String,
        other_key: String,
        created: OffsetDateTime,
    },

    #[error("secret {secret}: the value names user {value_user} but the keyturn:user tag names {tag_user}; nothing was changed: make them agree")]
    UserConflict {
        secret: String,
        value_user: String,
        tag_user: String,
    },

    #[error("secret {secret}: other secrets are tagged keyturn:user={user} too ({}); one user, one managed secret: untag or delete the others, then retry; nothing was changed", others.join(", "))]
    UserHasOtherSecret {
        secret: String,
        user: String,
        others: Vec<String>,
    },

    #[error("secret {secret}: AWSCURRENT holds key {key_id}, which is not one of user {user}'s keys in IAM (another user's key, or deleted); nothing was changed: if AWSPREVIOUS holds a key of the user that still works, keyturn rollback {secret} makes it AWSCURRENT again; otherwise put user {user}'s working key in the secret (or fix the user name), then retry")]
    NotUsersKey {
        secret: String,
        user: String,
        key_id: String,
    },

    #[error("user {user} already has two access keys ({}); IAM allows no third: adopt the secret that holds one (keyturn enroll --adopt SECRET) or delete the key nothing uses, then enroll again; nothing was changed", keys.join(", "))]
    UserFull { user: String, keys: Vec<String> },

    #[error("secret {secret} exists and is not user {user}'s enrolled secret; take it over with keyturn enroll --adopt {secret}, or enroll with another --secret-name; nothing was changed")]
    SecretExists { secret: String, user: String },

    #[error(
        "secret {secret}: CreateAccessKey for user {user} got no answer ({source}); {cleanup}"
    )]
    CreateKeyUnanswered {
        secret: String,
        user: String,
        cleanup: String,
        source: ApiError,
    },

    #[error("secret {secret}: CreateSecret for user {user} failed ({source}); {cleanup}")]
    CreateSecretFailed {
        secret: String,
        user: String,
        key_id: String,
        cleanup: String,
        source: ApiError,
    },

    #[error("secret {secret}: scheduling rotation with {function} failed (RotateSecret: {source}); the secret exists and holds user {user}'s working key {key_id}: fix the function ARN or its permission, then run keyturn enroll --adopt {secret} --rotation-lambda ARN")]
    ScheduleFailed {
        secret: String,
        user: String,
        key_id: String,
        function: String,
        source: ApiError,
    },

    #[error("secret {secret}: the pending version {token} holds AWSCURRENT's key {key_id} of user {user}, not a new one (a copy left by Secrets Manager's configuration test, or written by hand); nothing was changed: remove its AWSPENDING label (aws secretsmanager update-secret-version-stage --secret-id {secret} --version-stage AWSPENDING --remove-from-version-id {token}) and rotate again")]
    PendingIsCurrent {
        secret: String,
        user: String,
        key_id: String,
        token: String,
    },

    #[error("secret {secret}: the pending version {token} holds key {key_id}, which user {user} no longer has in IAM; cancel this rotation (remove its AWSPENDING label, or keyturn rotate --cancel) and rotate again")]
    PendingKeyMissing {
        secret: String,
        user: String,
        key_id: String,
        token: String,
    },

    #[error(
        "secret {secret}: version {token} has no value yet; run createSecret for this token first"
    )]
    PendingValueMissing { secret: String, token: String },

    #[error("secret {secret}: new key {key_id} of user {user} authenticates as {actual}, not as user {user} in account {expected_account}; the secret names the wrong user, fix the value or the keyturn:user tag")]
    WrongIdentity {
        secret: String,
        user: String,
        key_id: String,
        expected_account: String,
        actual: String,
    },

    #[error("secret {secret}: new key {key_id} of user {user} did not authenticate after {attempts} attempts over {waited_secs}s (last error: {last_error}); AWSCURRENT is unchanged, retry the rotation later")]
    KeyDoesNotAuthenticate {
        secret: String,
        user: String,
        key_id: String,
        attempts: u32,
        waited_secs: u64,
        last_error: ApiError,
    },

    #[error("secret {secret}: storing new key {key_id} of user {user} as AWSPENDING failed ({source}); {cleanup}")]
    StoreFailed {
        secret: String,
        user: String,
        key_id: String,
        cleanup: String,
        source: ApiError,
    },

    #[error("secret {secret}: tag {tag}={value:?} does not declare a sink: {reason}; no key was created and nothing was delivered: fix or remove the tag")]
    BadSink {
        secret: String,
        tag: String,
        value: String,
        reason: String,
    },

    #[error("secret {secret}: tag {tag}={value:?} does not declare a restart target keyturn may restart: {reason}; no key was created and nothing was restarted: fix or remove the tag")]
    BadRestart {
        secret: String,
        tag: String,
        value: String,
        reason: String,
    },

    #[error("secret {secret}: {target}: {action} failed ({source}); AWSCURRENT holds key {key_id} of user {user} and stays there; the consumer may still run on the previous key: fix the cause, then run keyturn deliver --restart {secret} (the daily sweep also retries it)")]
    RestartFailed {
        secret: String,
        target: String,
        action: &'static str,
        user: String,
        key_id: String,
        source: ApiError,
    },

    #[error("secret {secret}: {sink} writes {destination}, which secret {other} also delivers to; two secrets may not deliver to one place (each would overwrite the other's key); nothing was created or delivered: remove one of the tags")]
    SinkShared {
        secret: String,
        sink: String,
        other: String,
        destination: String,
    },

    #[error("secret {secret}: delivering key {key_id} of user {user} to {sink} failed ({action}: {source}); {}", if *current_moved { "AWSCURRENT already holds it: run keyturn deliver to retry the delivery" } else { "AWSCURRENT is unchanged and still holds the previous key (both keys are valid): fix the sink (its permission, token or name) and retry, with keyturn rotate --resume or by letting Secrets Manager retry the rotation" })]
    SinkFailed {
        secret: String,
        sink: String,
        action: &'static str,
        user: String,
        key_id: String,
        current_moved: bool,
        source: ApiError,
    },

    #[error("secret {secret}: the {detail_type} of key {key_id} (user {user}) was done, but its EventBridge event was not published (PutEvents: {source}); consumers that act on the event were not told: grant events:PutEvents on the default bus (keyturn deliver {secret} announces the current key again)")]
    EventFailed {
        secret: String,
        user: String,
        key_id: String,
        detail_type: &'static str,
        source: ApiError,
    },

    #[error("secret {secret}: cannot roll back: {why}; nothing was changed")]
    RollbackRefused { secret: String, why: String },

    #[error("secret {secret}: {what} changed while keyturn was about to {action} ({why}); {undone}: run the command again, it decides afresh on what it finds")]
    ChangedMeanwhile {
        secret: String,
        what: &'static str,
        action: String,
        why: String,
        /// What this run changed and put back, in words ("nothing was changed", ...).
        undone: String,
    },

    #[error("secret {secret}: another run changed the secret while keyturn acted on key {key_id} of user {user}: {why}; keyturn put back what it had done ({undone}); check the secret with keyturn status {secret}")]
    RaceUndone {
        secret: String,
        user: String,
        key_id: String,
        why: String,
        undone: String,
    },

    #[error("listing the secrets tagged {tag} failed (ListSecrets: {source}); grant secretsmanager:ListSecrets to the caller")]
    ListFailed { tag: String, source: ApiError },

    #[error("secret {secret}: {action} failed{}{}: {source}; {}", user.as_ref().map(|u| format!(" for user {u}")).unwrap_or_default(), key_id.as_ref().map(|k| format!(" on key {k}")).unwrap_or_default(), next_step(action, source))]
    Aws {
        action: &'static str,
        secret: String,
        user: Option<String>,
        key_id: Option<String>,
        source: ApiError,
    },
}

/// What to do when no key may make room: wait out the settle window when that is all that stands
/// in the way; otherwise move the consumers.
fn no_room_advice(secret: &str, kept: &[KeptKey]) -> String {
    let settling = kept.iter().filter_map(|k| match k.reason {
        KeepReason::NotSettled { until } => Some(until),
        _ => None,
    });
    let young = kept.iter().filter_map(|k| match k.reason {
        KeepReason::MaybeAnotherRun { until } => Some(until),
        _ => None,
    });
    if let Some(from) = young.max().filter(|_| kept.len() == 1) {
        return format!(
            "nothing was changed: let that run finish; if no keyturn run is under way, keyturn rotate --resume {secret} takes the key for the orphan it is (from {} keyturn rotate does so by itself)",
            human(from)
        );
    }
    match settling.max() {
        Some(until) if kept.len() == 1 => format!(
            "nothing was changed: retry after {} (keyturn rotate then, or Secrets Manager's next attempt), or set KEYTURN_LAST_USED_SETTLE_SECONDS lower if IAM's records are known to be current",
            human(until)
        ),
        _ => "nothing was changed: move what uses it to the current key, then deactivate or delete it yourself (keyturn sweep retires an AWSPREVIOUS key once it is unused), and retry".to_string(),
    }
}

fn next_step(action: &str, e: &ApiError) -> &'static str {
    match e {
        ApiError::NotFound(_) if action.contains("Secret") => {
            "no such secret where keyturn looked: check its name or ARN, the region, and the account the credentials belong to"
        }
        ApiError::Unavailable(m) if m.contains("could not connect") => {
            "check the endpoint (--endpoint-url, AWS_ENDPOINT_URL), the network and any proxy, then retry"
        }
        ApiError::Throttled(_) | ApiError::Unavailable(_) => {
            "this is transient: the step is safe to retry"
        }
        ApiError::AccessDenied(_) => {
            "grant the permission to the identity making the call (the function's role, or the masterarn key)"
        }
        ApiError::InvalidCredentials(_) => {
            "the credentials making the call were rejected: check the function's role or the masterarn secret's key"
        }
        ApiError::LimitExceeded(_) => "free a slot (the user may hold two keys) and retry",
        ApiError::Other { code, .. } if code.starts_with("HTTP ") => {
            "the service gave no reason: check the region (--region, AWS_REGION) and the endpoint (--endpoint-url, AWS_ENDPOINT_URL); if the call was a write, look at the secret with keyturn status before retrying"
        }
        ApiError::NotFound(_) => "check that the secret and user exist, then retry",
        ApiError::InvalidRequest(_) | ApiError::AlreadyExists(_) | ApiError::Other { .. } => {
            "nothing more was changed; check the secret's state with keyturn status, then retry"
        }
    }
}

impl RotationError {
    /// A stable name for CloudWatch (Lambda's errorType) and for `--output json`.
    pub fn error_type(&self) -> &'static str {
        match self {
            RotationError::BadEvent { .. } => "BadEvent",
            RotationError::RotationDisabled { .. } => "RotationDisabled",
            RotationError::UnknownVersion { .. } => "UnknownVersion",
            RotationError::NotPending { .. } => "VersionNotPending",
            RotationError::NoCurrentVersion { .. } => "NoCurrentVersion",
            RotationError::BadValue { .. } => "BadSecretValue",
            RotationError::NoKeyInValue { .. } => "NoKeyInSecretValue",
            RotationError::NoUserName { .. } => "NoUserName",
            RotationError::NoSuchUser { .. } | RotationError::EnrollNoUser { .. } => "NoSuchUser",
            RotationError::BadMaster { .. } => "BadMasterSecret",
            RotationError::MasterNotAllowed { .. } => "MasterNotAllowed",
            RotationError::UserOutsidePath { .. } => "UserOutsidePath",
            RotationError::NoRoomForKey { .. } => "KeyInUse",
            RotationError::PendingKeyMissing { .. } => "PendingKeyMissing",
            RotationError::PendingIsCurrent { .. } => "PendingIsCurrent",
            RotationError::RotationInFlight { .. } => "RotationInFlight",
            RotationError::AnotherRun { .. } => "AnotherRun",
            RotationError::UserConflict { .. } => "UserConflict",
            RotationError::UserHasOtherSecret { .. } => "UserHasOtherSecret",
            RotationError::NotUsersKey { .. } => "NotUsersKey",
            RotationError::UserFull { .. } => "UserFull",
            RotationError::SecretExists { .. } => "SecretExists",
            RotationError::CreateSecretFailed { .. } => "CreateSecretFailed",
            RotationError::CreateKeyUnanswered { .. } => "CreateKeyUnanswered",
            RotationError::ScheduleFailed { .. } => "ScheduleFailed",
            RotationError::BadPolicy { .. } => "BadPolicy",
            RotationError::PendingValueMissing { .. } => "PendingValueMissing",
            RotationError::WrongIdentity { .. } => "WrongIdentity",
            RotationError::KeyDoesNotAuthenticate { .. } => "KeyDoesNotAuthenticate",
            RotationError::StoreFailed { .. } => "StoreFailed",
            RotationError::BadSink { .. } => "BadSink",
            RotationError::BadRestart { .. } => "BadRestart",
            RotationError::RestartFailed { .. } => "RestartFailed",
            RotationError::SinkFailed { .. } => "SinkFailed",
            RotationError::SinkShared { .. } => "SinkShared",
            RotationError::EventFailed { .. } => "EventFailed",
            RotationError::RollbackRefused { .. } => "RollbackRefused",
            RotationError::ChangedMeanwhile { .. } => "ChangedMeanwhile",
            RotationError::RaceUndone { .. } => "RaceUndone",
            RotationError::Aws { source, .. } | RotationError::ListFailed { source, .. } => {
                source.kind()
            }
        }
    }

    /// Whether retrying the same step later may succeed without anyone changing anything.
    pub fn is_transient(&self) -> bool {
        match self {
            RotationError::Aws { source, .. }
            | RotationError::ListFailed { source, .. }
            | RotationError::StoreFailed { source, .. }
            | RotationError::CreateSecretFailed { source, .. }
            | RotationError::SinkFailed { source, .. }
            | RotationError::RestartFailed { source, .. }
            | RotationError::EventFailed { source, .. } => source.is_transient(),
            RotationError::KeyDoesNotAuthenticate { .. }
            | RotationError::ChangedMeanwhile { .. } => true,
            _ => false,
        }
    }
}

/// Who started the rotation in flight, as far as its token and version tell.
fn in_flight_by(
    by_keyturn_rotate: bool,
    started: &Option<OffsetDateTime>,
    resumes_from: &Option<OffsetDateTime>,
) -> String {
    match (by_keyturn_rotate, started) {
        (true, Some(at)) => format!(
            "started by keyturn rotate at {}: that run may still be going{}",
            human(*at),
            resumes_from
                .map(|from| format!(
                    "; from {} keyturn rotate finishes it by itself",
                    human(from)
                ))
                .unwrap_or_default()
        ),
        (true, None) => "started by keyturn rotate".into(),
        (false, _) => {
            "not started by keyturn rotate: by Secrets Manager's rotation function or another tool"
                .into()
        }
    }
}
