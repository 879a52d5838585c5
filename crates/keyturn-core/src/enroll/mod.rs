//! Enrollment: a new secret holding a fresh key for a user (`keyturn enroll USER`), or the
//! adoption of a hand-made secret (`--adopt`). Both refuse a user another secret is tagged for,
//! tag the secret `keyturn:user`, and schedule rotation when asked. Enroll is crash-safe: when
//! CreateSecret's outcome is unknown it looks before deleting the new key.

use crate::error::{rfc3339, RotationError};
use crate::ports::Ports;
use crate::ports::{AccessKeys, Clock, Iam, SecretInfo, SecretStore};
use crate::rotation::aws;
use crate::rules::{self, AfterFailedStore, StoreCheck};
use crate::secret::SecretValue;
use crate::state::KeyFacts;
use crate::tags;
use crate::Rotator;

mod adopt;

/// A rotation schedule to attach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    pub function_arn: String,
    pub days: i64,
}

/// `keyturn enroll USER`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrollRequest {
    pub user: String,
    pub secret_name: String,
    pub extra_tags: Vec<(String, String)>,
    pub schedule: Option<Schedule>,
}

/// `keyturn enroll --adopt SECRET`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdoptRequest {
    pub secret: String,
    /// The user for a value that names none (recorded as the `keyturn:user` tag).
    pub user: Option<String>,
    pub extra_tags: Vec<(String, String)>,
    pub schedule: Option<Schedule>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EnrollOutcome {
    Enrolled,
    /// The secret was there already, this user's and holding one of the user's keys.
    #[serde(rename = "already-enrolled")]
    AlreadyEnrolled,
    Adopted,
}

impl EnrollOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            EnrollOutcome::Enrolled => "enrolled",
            EnrollOutcome::AlreadyEnrolled => "already-enrolled",
            EnrollOutcome::Adopted => "adopted",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct EnrollReport {
    pub secret: String,
    pub arn: String,
    pub user: String,
    pub outcome: EnrollOutcome,
    pub key_id: Option<String>,
    /// The value's shape (adopt).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shape: Option<&'static str>,
    pub scheduled: bool,
}

impl<P: Ports> Rotator<P> {
    /// A new secret `secret_name` holding a fresh key of `user`.
    pub async fn enroll(&self, req: &EnrollRequest) -> Result<EnrollReport, RotationError> {
        let (name, user) = (req.secret_name.as_str(), req.user.as_str());
        // Enrolled already (an earlier run whose answer was lost, or a re-run after a stop): say
        // so, changing nothing. Any other secret of that name is not keyturn's to take.
        match self.store().describe(name).await {
            Err(crate::ports::ApiError::NotFound(_)) => {}
            Err(e) => return Err(aws("DescribeSecret", name, Some(user), None, e)),
            Ok(existing) => return self.enrolled_already(existing, user, req).await,
        }
        let others = self.secrets_of_user(name, "", user).await?;
        if !others.is_empty() {
            return Err(RotationError::UserHasOtherSecret {
                secret: name.to_string(),
                user: user.to_string(),
                others,
            });
        }
        let iam = self.iam().own();
        // No such user: there is no secret yet whose value or tag could be wrong.
        let no_user = |e: RotationError| match e {
            RotationError::NoSuchUser { user, .. } => RotationError::EnrollNoUser { user },
            e => e,
        };
        self.check_path(&iam, name, user, false)
            .await
            .map_err(no_user)?;
        let keys = iam
            .list(user)
            .await
            .map_err(|e| crate::rotation::user_call_failed("ListAccessKeys", name, user, e))
            .map_err(no_user)?;
        if keys.len() >= 2 {
            return Err(RotationError::UserFull {
                user: user.to_string(),
                keys: keys.into_iter().map(|k| k.id).collect(),
            });
        }
        let before: Vec<String> = keys.into_iter().map(|k| k.id).collect();
        let key = match iam.create(user).await {
            Ok(key) => key,
            Err(e) if e.is_transient() => {
                return Err(self.unanswered_create(name, user, &before, e).await)
            }
            Err(e) => {
                return Err(crate::rotation::user_call_failed(
                    "CreateAccessKey",
                    name,
                    user,
                    e,
                ))
            }
        };
        let key_id = key.id.clone();
        let value = SecretValue::canonical(user, key).render();
        let tag_list = self.enrollment_tags(user, Some(&key_id), &req.extra_tags);
        let arn = match self.store().create(name, &value, &tag_list).await {
            Ok(arn) => arn,
            Err(error) => {
                // The secret may have been created with the answer lost: look before deleting.
                let (check, arn) = self.holds_key(name, &key_id).await;
                match rules::after_failed_store(user, &key_id, &check) {
                    AfterFailedStore::Stored => {
                        tracing::warn!(secret = name, user, key_id = %key_id, error = %error, "CreateSecret reported a failure but the secret holds the new key");
                        arn.unwrap_or_else(|| name.to_string())
                    }
                    AfterFailedStore::Retire(r) => {
                        let cleanup = match crate::retire(&iam, &r).await {
                            Ok(()) => format!("no secret holds key {key_id}, so it was deleted again; nothing is left behind"),
                            Err(d) => format!("no secret holds key {key_id} and deleting it failed too ({d}): delete it by hand (aws iam delete-access-key --user-name {user} --access-key-id {key_id})"),
                        };
                        return Err(RotationError::CreateSecretFailed {
                            secret: name.to_string(),
                            user: user.to_string(),
                            key_id,
                            cleanup,
                            source: error,
                        });
                    }
                    AfterFailedStore::Keep => {
                        return Err(RotationError::CreateSecretFailed {
                            secret: name.to_string(),
                            user: user.to_string(),
                            cleanup: format!(
                                "whether secret {name} exists could not be checked ({}), so key {key_id} was kept: run keyturn status {name}; if the secret holds it, enrollment succeeded, otherwise delete the key",
                                match &check { StoreCheck::Unknown(w) => w.as_str(), _ => "unknown" }
                            ),
                            key_id,
                            source: error,
                        });
                    }
                }
            }
        };
        let scheduled = self
            .attach_schedule(&arn, name, user, Some(&key_id), req.schedule.as_ref())
            .await?;
        Ok(EnrollReport {
            secret: name.to_string(),
            arn,
            user: user.to_string(),
            outcome: EnrollOutcome::Enrolled,
            key_id: Some(key_id),
            shape: None,
            scheduled,
        })
    }

    /// CreateAccessKey's answers were all lost: delete the keys its attempts made (new since the list
    /// taken before, unused, held by no secret), and say what was done.
    async fn unanswered_create(
        &self,
        name: &str,
        user: &str,
        before: &[String],
        error: crate::ports::ApiError,
    ) -> RotationError {
        let iam = self.iam().own();
        let mut facts = Vec::new();
        let cleanup = match iam.list(user).await {
            Err(e) => format!("the keys could not be listed again ({e}): if user {user} has a key made just now that nothing uses, delete it, then enroll again"),
            Ok(listed) => {
                for k in listed {
                    let last_use = if before.contains(&k.id) {
                        None
                    } else {
                        iam.last_used(&k.id).await.ok()
                    };
                    facts.push(KeyFacts {
                        id: k.id,
                        status: k.status,
                        created: k.created,
                        last_use,
                    });
                }
                let mut done = Vec::new();
                for r in rules::unanswered_creates(user, before, &facts) {
                    match crate::retire(&iam, &r).await {
                        Ok(()) => done.push(format!("deleted {}", r.key_id())),
                        Err(d) => done.push(format!("deleting {} failed ({d}): delete it by hand", r.key_id())),
                    }
                }
                if done.is_empty() {
                    "no key it made is listed (IAM may lag): if one appears that nothing uses, delete it; the enrollment is safe to retry".into()
                } else {
                    format!("the keys its attempts made, held by no secret: {}; the enrollment is safe to retry", done.join(", "))
                }
            }
        };
        RotationError::CreateKeyUnanswered {
            secret: name.to_string(),
            user: user.to_string(),
            cleanup,
            source: error,
        }
    }

    /// `name` exists: it is this user's enrolled secret (tagged for the user and managed, holding one
    /// of the user's keys), or an error saying to adopt it.
    async fn enrolled_already(
        &self,
        info: SecretInfo,
        user: &str,
        req: &EnrollRequest,
    ) -> Result<EnrollReport, RotationError> {
        let name = info.name.clone();
        let ours = rules::is_managed(&info.tags)
            && info.tags.get(tags::USER).map(String::as_str) == Some(user);
        let held = self
            .current_key_id(&info.arn)
            .await
            .map_err(|e| aws("GetSecretValue", &name, Some(user), None, e))?;
        let keys = self
            .iam()
            .own()
            .list(user)
            .await
            .map_err(|e| crate::rotation::user_call_failed("ListAccessKeys", &name, user, e))?;
        match held {
            Some(key_id) if ours && keys.iter().any(|k| k.id == key_id) => {
                let scheduled = self
                    .attach_schedule(&info.arn, &name, user, Some(&key_id), req.schedule.as_ref())
                    .await?;
                Ok(EnrollReport {
                    secret: name,
                    arn: info.arn.clone(),
                    user: user.to_string(),
                    outcome: EnrollOutcome::AlreadyEnrolled,
                    key_id: Some(key_id),
                    shape: None,
                    scheduled,
                })
            }
            _ => Err(RotationError::SecretExists {
                secret: name,
                user: user.to_string(),
            }),
        }
    }

    /// Whether secret `name` exists and its AWSCURRENT holds `key_id` (with its ARN).
    async fn holds_key(&self, name: &str, key_id: &str) -> (StoreCheck, Option<String>) {
        let info = match self.store().describe(name).await {
            Ok(info) => info,
            Err(crate::ports::ApiError::NotFound(_)) => return (StoreCheck::DoesNotHold, None),
            Err(e) => return (StoreCheck::Unknown(e.to_string()), None),
        };
        match self.current_key_id(&info.arn).await {
            Ok(held) if held.as_deref() == Some(key_id) => (StoreCheck::Holds, Some(info.arn)),
            Ok(_) => (StoreCheck::DoesNotHold, Some(info.arn)),
            Err(e) => (StoreCheck::Unknown(e.to_string()), Some(info.arn)),
        }
    }

    /// The tags enroll and adopt write: managed, the user, when, AWSCURRENT's key id (for the
    /// audit, which then reads no value), and the operator's extra tags.
    pub(super) fn enrollment_tags(
        &self,
        user: &str,
        key_id: Option<&str>,
        extra: &[(String, String)],
    ) -> Vec<(String, String)> {
        let mut list = vec![
            (tags::MANAGED.to_string(), tags::MANAGED_TRUE.to_string()),
            (tags::USER.to_string(), user.to_string()),
            (tags::ENROLLED_AT.to_string(), rfc3339(self.clock().now())),
        ];
        if let Some(id) = key_id {
            list.push((tags::CURRENT_KEY.to_string(), id.to_string()));
        }
        list.extend(extra.iter().cloned());
        list
    }

    /// RotateSecret with the function, not rotating now. `Ok(false)` without a schedule.
    pub(super) async fn attach_schedule(
        &self,
        arn: &str,
        name: &str,
        user: &str,
        key_id: Option<&str>,
        schedule: Option<&Schedule>,
    ) -> Result<bool, RotationError> {
        let Some(s) = schedule else {
            return Ok(false);
        };
        self.store()
            .schedule(arn, &s.function_arn, s.days)
            .await
            .map_err(|source| RotationError::ScheduleFailed {
                secret: name.to_string(),
                user: user.to_string(),
                key_id: key_id.unwrap_or("-").to_string(),
                function: s.function_arn.clone(),
                source,
            })?;
        Ok(true)
    }
}
