//! What is wrong with a secret, for `keyturn status`: judgements over the same state the
//! rotation decides on.

use crate::error::describe_use;
use crate::ports::KeyStatus;
use crate::rules::policy::{own_test_from, used_since};
use crate::rules::records;
use crate::state::SecretState;
use crate::tags::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};

/// What is wrong with a secret, for `keyturn status`, most serious first.
pub fn problems(state: &SecretState) -> Vec<String> {
    let mut out = Vec::new();
    for (version, reason) in state.unreadable() {
        out.push(format!(
            "the {version} value cannot be read: {reason}; no rotation can run until it is fixed"
        ));
    }
    if !state.other_secrets.is_empty() {
        out.push(format!(
            "other secrets are tagged for user {} too ({}): one user, one managed secret; rotations refuse until one is untagged",
            state.user.name,
            state.other_secrets.join(", ")
        ));
    }
    for holding in &state.holdings {
        let Some(key_id) = holding.key_id() else {
            continue;
        };
        let relevant = holding
            .labels
            .iter()
            .any(|l| l == AWSCURRENT || l == AWSPREVIOUS || l == AWSPENDING);
        match state.key(key_id) {
            None if relevant => out.push(format!(
                "{} (version {}) holds key {key_id}, which no longer exists for user {} (deleted, or another user's key)",
                holding.labels.join(","),
                holding.version,
                state.user.name
            )),
            Some(k) if holding.labels.iter().any(|l| l == AWSCURRENT) && k.status != KeyStatus::Active => {
                out.push(format!(
                    "AWSCURRENT's key {key_id} is inactive: programs reading the secret cannot authenticate"
                ))
            }
            _ => {}
        }
    }
    if let Some(token) = crate::state::in_flight(&state.info) {
        // Never recommend a command the rules would refuse: with another secret tagged for the
        // user, --resume and --cancel refuse until that is resolved.
        out.push(if state.other_secrets.is_empty() {
            format!(
                "a rotation is in flight (version {token} is AWSPENDING): keyturn rotate --resume or --cancel"
            )
        } else {
            format!(
                "a rotation is in flight (version {token} is AWSPENDING), and --resume and --cancel refuse while other secrets are tagged for user {}: resolve that first",
                state.user.name
            )
        });
    }
    let cut = crate::rules::records::cutover(state);
    if let Some(doubt) = &cut.doubt {
        out.push(format!("the cut-over record is not believed: {doubt}"));
    }
    if let Some(previous) = state.key_of(AWSPREVIOUS).and_then(|p| state.key(p)) {
        // Without the deployment's grace period at hand, the bound is the cut-over itself.
        let (_, doubt) = records::deactivated_since(&state.info, previous, cut.latest, state.now);
        if let Some(doubt) = doubt {
            out.push(format!("the deactivation record is not believed: {doubt}"));
        }
    }
    for key in &state.keys {
        let labels = state.labels_holding(&key.id);
        if labels.is_empty() {
            out.push(format!(
                "key {} is held by no version of the secret (unmanaged)",
                key.id
            ));
        }
        if labels.contains(&AWSPREVIOUS) && !labels.contains(&AWSCURRENT) {
            if let Some(u) = key
                .last_use
                .as_ref()
                .filter(|u| used_since(u, cut.earliest, own_test_from(state, &key.id)))
            {
                out.push(format!(
                    "previous key {} is still in use ({})",
                    key.id,
                    describe_use(u)
                ));
            }
        }
    }
    out
}
