//! Every staging label and `keyturn:*` tag keyturn reads or writes, defined once.

/// Staging labels Secrets Manager defines.
pub const AWSCURRENT: &str = "AWSCURRENT";
pub const AWSPENDING: &str = "AWSPENDING";
pub const AWSPREVIOUS: &str = "AWSPREVIOUS";

/// Marks a secret as managed by keyturn when its value is `true` (what `--all`, `--due` and the
/// sweep select). Any other value, or a tag merely starting with this name, is not managed.
pub const MANAGED: &str = "keyturn:managed";
/// The value of [`MANAGED`] that means managed.
pub const MANAGED_TRUE: &str = "true";
/// The IAM user whose key the secret holds. keyturn writes it on every secret it enrolls, adopts
/// or rotates, so that "one user, one managed secret" can be checked with one ListSecrets.
pub const USER: &str = "keyturn:user";
/// When keyturn enrolled or adopted the secret (a start for "due" before any rotation).
pub const ENROLLED_AT: &str = "keyturn:enrolled-at";
/// Overrides the rotation period (days) for `rotate --due` and the audit.
pub const ROTATION_DAYS: &str = "keyturn:rotation-days";
/// The last cut-over: the version that became AWSCURRENT, and when.
pub const CUTOVER_VERSION: &str = "keyturn:cutover-version";
pub const CUTOVER_AT: &str = "keyturn:cutover-at";
/// The key ids AWSCURRENT and AWSPREVIOUS hold, recorded by finishSecret (with the cut-over), enroll
/// and adopt, so that an audit can join keys to secrets without reading a value. Trusted only as
/// [`crate::rules::recorded_keys`] says: each must be one of the user's keys, and the record must
/// belong to the current cut-over.
pub const CURRENT_KEY: &str = "keyturn:current-key";
pub const PREVIOUS_KEY: &str = "keyturn:previous-key";
/// Sweep policy overrides.
pub const GRACE_DAYS: &str = "keyturn:grace-days";
pub const DELETE_AFTER_DAYS: &str = "keyturn:delete-after-days";
pub const IN_USE: &str = "keyturn:in-use";
/// `true`: the previous key stays active until the new key has been used since the cut-over.
pub const REQUIRE_SWITCH: &str = "keyturn:require-switch";
/// The sweep's record of a deactivation (IAM keeps no deactivation date).
pub const DEACTIVATED_KEY: &str = "keyturn:deactivated-key";
pub const DEACTIVATED_AT: &str = "keyturn:deactivated-at";
/// `keyturn:sink:NAME`: a place the new key is delivered to (`rules::sinks`).
pub const SINK_PREFIX: &str = "keyturn:sink:";
/// Whom keyturn tells about the secret's rotations (`rules::notices`): a key the deployment's
/// topic subscriptions filter on (a team, a channel, an address), never a destination itself.
pub const OWNER: &str = "keyturn:owner";
/// `credential-process`: the consumers read the key through `keyturn credential-process` (or
/// another reader of AWSCURRENT), so a rotation asks nothing of them and no reminder is sent.
pub const CONSUMERS: &str = "keyturn:consumers";
/// `keyturn:restart:NAME`: a consumer restarted after AWSCURRENT moves (`rules::restarts`).
pub const RESTART_PREFIX: &str = "keyturn:restart:";
/// The last rollback: when, and the key AWSCURRENT held before it.
pub const ROLLED_BACK_AT: &str = "keyturn:rolled-back-at";
pub const ROLLED_BACK_FROM: &str = "keyturn:rolled-back-from";
