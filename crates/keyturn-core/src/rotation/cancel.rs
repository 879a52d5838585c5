//! Undoing a rotation in flight (`keyturn rotate --cancel`).

use crate::error::RotationError;
use crate::ports::{
    AccessKeys, Clock, Iam, IdentityCheck, SecretStore, VersionRef, AWSCURRENT, AWSPENDING,
};

use super::{already_gone, aws, in_flight, list_keys, Opened, Rotator};

/// What cancelling did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CancelReport {
    pub secret: String,
    /// The version whose AWSPENDING label was removed; `None` when nothing was in flight.
    pub token: Option<String>,
    /// The key the cancelled rotation had made and that was deleted.
    pub deleted_key_id: Option<String>,
}

impl<S, I, V, C> Rotator<S, I, V, C>
where
    S: SecretStore,
    I: Iam,
    V: IdentityCheck,
    C: Clock,
{
    /// Removes the AWSPENDING version of a rotation in flight and deletes the key it made (never
    /// AWSCURRENT's key). The key goes first: if the process stops in between, a second cancel
    /// finds the key gone and removes the label.
    pub async fn cancel(&self, secret_id: &str) -> Result<CancelReport, RotationError> {
        let info = self.describe(secret_id).await?;
        let Some(token) = in_flight(&info).map(str::to_string) else {
            return Ok(CancelReport {
                secret: info.name,
                token: None,
                deleted_key_id: None,
            });
        };
        let o = Opened {
            secret_id,
            token: &token,
            info,
        };
        let current = self
            .read(&o, VersionRef::Label(AWSCURRENT), AWSCURRENT)
            .await?
            .ok_or_else(|| RotationError::NoCurrentVersion {
                secret: o.name().to_string(),
            })?;
        let pending = self
            .read(
                &o,
                VersionRef::IdWithLabel(token.clone(), AWSPENDING),
                AWSPENDING,
            )
            .await?;
        let mut deleted = None;
        if let Some(key_id) = pending.as_ref().and_then(|p| p.access_key_id()) {
            if Some(key_id) != current.access_key_id() {
                let user = self.user_of(&o, pending.as_ref().unwrap_or(&current))?;
                let keys_api = self.keys_for(&o, &current).await?;
                if list_keys(&keys_api, &o, &user)
                    .await?
                    .iter()
                    .any(|k| k.id == key_id)
                {
                    already_gone(keys_api.delete(&user, key_id).await).map_err(|e| {
                        aws("DeleteAccessKey", o.name(), Some(&user), Some(key_id), e)
                    })?;
                    tracing::info!(secret = o.name(), user = %user, key_id, "cancelled rotation: deleted its key");
                    deleted = Some(key_id.to_string());
                }
            }
        }
        self.store
            .move_label(secret_id, AWSPENDING, None, Some(&token))
            .await
            .map_err(|e| aws("UpdateSecretVersionStage", o.name(), None, None, e))?;
        Ok(CancelReport {
            secret: o.name().to_string(),
            token: Some(token),
            deleted_key_id: deleted,
        })
    }
}
