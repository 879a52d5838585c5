//! May AWSCURRENT go back to the AWSPREVIOUS version? Only while that version's key still exists
//! in IAM as one of the secret's user's keys, and no rotation is in flight. The key AWSCURRENT
//! held becomes AWSPREVIOUS and is left to the sweep's normal rules.

use crate::ports::KeyStatus;
use crate::state::{in_flight, SecretState};
use crate::tags::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};

/// What a rollback will do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackPlan {
    /// The AWSPREVIOUS version, which becomes AWSCURRENT.
    pub version: String,
    /// Its key, which consumers get back.
    pub key_id: String,
    /// The key is inactive (the sweep deactivated it): reactivate it before anything moves.
    pub reactivate: bool,
    /// The AWSCURRENT version and key being rolled back from.
    pub from_version: String,
    pub from_key: Option<String>,
    /// The AWSCURRENT version still carries AWSPENDING from its rotation (a state AWS documents
    /// as complete): the label goes first, or the demoted version would look like a rotation in
    /// flight.
    pub clear_pending: bool,
}

/// The plan, or why a rollback is refused (in words for the error).
pub fn rollback_plan(state: &SecretState) -> Result<RollbackPlan, String> {
    if let Some(token) = in_flight(&state.info) {
        return Err(format!(
            "a rotation is in flight (version {token} is AWSPENDING); finish it with keyturn rotate --resume or undo it with keyturn rotate --cancel first"
        ));
    }
    let from_version = state
        .info
        .version_with(AWSCURRENT)
        .ok_or("the secret has no AWSCURRENT version")?
        .to_string();
    let version = state
        .info
        .version_with(AWSPREVIOUS)
        .ok_or("the secret has no AWSPREVIOUS version: there is nothing to roll back to")?
        .to_string();
    let key_id = state
        .key_of_version(&version)
        .ok_or_else(|| format!("the AWSPREVIOUS version {version} holds no key"))?
        .to_string();
    let from_key = state.current_key().map(str::to_string);
    if from_key.as_deref() == Some(key_id.as_str()) {
        return Err(format!(
            "AWSPREVIOUS holds the same key as AWSCURRENT ({key_id}): there is nothing to roll back to"
        ));
    }
    let user = &state.user.name;
    let key = state.key(&key_id).ok_or_else(|| {
        format!(
            "AWSPREVIOUS's key {key_id} is not one of user {user}'s keys in IAM (the sweep deleted it, or it is another user's): putting it back would leave consumers a key that does not authenticate; rotate instead (keyturn rotate)"
        )
    })?;
    Ok(RollbackPlan {
        version,
        key_id,
        reactivate: key.status == KeyStatus::Inactive,
        clear_pending: state
            .info
            .labels_of(&from_version)
            .iter()
            .any(|l| l == AWSPENDING),
        from_version,
        from_key,
    })
}
