//! The one function that deletes or deactivates an access key: [`retire`]. It takes a
//! [`Retirement`], which only the rules (`rules::retire`) issue, so every DeleteAccessKey and
//! UpdateAccessKey keyturn makes carries the rule that allowed it.

use crate::error::RotationError;
use crate::ports::{AccessKeys, ApiError, ApiResult, KeyStatus};
use crate::ports::{KeysOf, Ports};
use crate::rules::{RetireAction, Retirement};

use super::{aws, Rotator};

/// DeleteAccessKey or UpdateAccessKey (to Inactive), as the retirement says. A key already gone
/// counts as done: an earlier attempt whose answer was lost, or another run, retired it.
pub async fn retire(keys: &impl AccessKeys, r: &Retirement) -> ApiResult<()> {
    let result = match r.action() {
        RetireAction::Delete => keys.delete(r.user(), r.key_id()).await,
        RetireAction::Deactivate => {
            keys.set_status(r.user(), r.key_id(), KeyStatus::Inactive)
                .await
        }
    };
    match result {
        Ok(()) | Err(ApiError::NotFound(_)) => {
            tracing::info!(user = r.user(), key_id = r.key_id(), action = r.action().as_str(), reason = %r.reason(), "retired access key");
            Ok(())
        }
        Err(e) => Err(e),
    }
}

impl<P: Ports> Rotator<P> {
    /// [`retire`], its failure named for `secret`.
    pub(crate) async fn retire_key(
        &self,
        keys: &KeysOf<P>,
        secret: &str,
        r: &Retirement,
    ) -> Result<(), RotationError> {
        let action = match r.action() {
            RetireAction::Delete => "DeleteAccessKey",
            RetireAction::Deactivate => "UpdateAccessKey",
        };
        retire(keys, r)
            .await
            .map_err(|e| aws(action, secret, Some(r.user()), Some(r.key_id()), e))
    }
}
