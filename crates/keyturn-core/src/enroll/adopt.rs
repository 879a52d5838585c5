//! `keyturn enroll --adopt`: taking over a hand-made secret.

use crate::error::RotationError;
use crate::ports::Ports;
use crate::ports::{AccessKeys, Iam, IdentityCheck, SecretStore, VersionRef};
use crate::rotation::aws;
use crate::rules;
use crate::secret::SecretValue;
use crate::tags::{self, AWSCURRENT};
use crate::Rotator;

use super::{AdoptRequest, EnrollOutcome, EnrollReport};

impl<P: Ports> Rotator<P> {
    /// Takes over a hand-made secret: its key must be its user's and must work.
    pub async fn adopt(&self, req: &AdoptRequest) -> Result<EnrollReport, RotationError> {
        let info = self.describe(&req.secret).await?;
        let name = info.name.clone();
        let tag_user = info.tags.get(tags::USER).cloned();
        let tag_user = match (&req.user, tag_user) {
            (Some(given), Some(tagged)) if given.trim() != tagged.trim() => {
                return Err(RotationError::UserConflict {
                    secret: name,
                    value_user: given.clone(),
                    tag_user: tagged,
                })
            }
            (given, tagged) => given.clone().or(tagged),
        };
        let text = self
            .store()
            .value(&info.arn, &VersionRef::Label(AWSCURRENT))
            .await
            .map_err(|e| aws("GetSecretValue", &name, None, None, e))?
            .ok_or_else(|| RotationError::NoCurrentVersion {
                secret: name.clone(),
            })?;
        let value = SecretValue::parse(&text).map_err(|reason| RotationError::BadValue {
            secret: name.clone(),
            version: AWSCURRENT.into(),
            reason,
        })?;
        let user = rules::resolve_user(&name, value.user_name(), tag_user.as_deref(), None)?.name;
        let others = self.secrets_of_user(&info.name, &info.arn, &user).await?;
        if !others.is_empty() {
            return Err(RotationError::UserHasOtherSecret {
                secret: name,
                user,
                others,
            });
        }
        self.check_path(&self.iam().own(), &name, &user, false)
            .await?;
        if let Some(key) = value.key() {
            // The key must be the user's and must work: rotating a broken secret would only hide it.
            let keys = self.iam().own().list(&user).await.map_err(|e| {
                crate::rotation::user_call_failed("ListAccessKeys", &name, &user, e)
            })?;
            if !keys.iter().any(|k| k.id == key.id) {
                return Err(RotationError::NotUsersKey {
                    secret: name,
                    user,
                    key_id: key.id.clone(),
                });
            }
            let identity = self
                .verifier()
                .whoami(key)
                .await
                .map_err(|e| aws("GetCallerIdentity", &name, Some(&user), Some(&key.id), e))?;
            if !rules::identity_is_user(&identity, &user, info.account_id()) {
                return Err(RotationError::WrongIdentity {
                    secret: name,
                    user,
                    key_id: key.id.clone(),
                    expected_account: info.account_id().unwrap_or_default().to_string(),
                    actual: identity.arn,
                });
            }
        }
        let tag_list = self.enrollment_tags(&user, value.access_key_id(), &req.extra_tags);
        self.store()
            .tag(&info.arn, &tag_list)
            .await
            .map_err(|e| aws("TagResource", &name, Some(&user), None, e))?;
        let scheduled = self
            .attach_schedule(
                &info.arn,
                &name,
                &user,
                value.access_key_id(),
                req.schedule.as_ref(),
            )
            .await?;
        Ok(EnrollReport {
            secret: name,
            arn: info.arn.clone(),
            user,
            outcome: EnrollOutcome::Adopted,
            key_id: value.access_key_id().map(str::to_string),
            shape: Some(value.shape().name()),
            scheduled,
        })
    }
}
