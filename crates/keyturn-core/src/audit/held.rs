//! The keys managed secrets hold, joined with IAM's list of each user's keys: the audit's half of
//! the join that the credential report (which has no key ids) cannot make alone.

use time::{Duration, OffsetDateTime};

use super::{ListedKey, ManagedKey};
use crate::error::RotationError;
use crate::ports::Ports;
use crate::ports::{
    AccessKeys, ApiResult, Clock, Iam, SecretInfo, SecretStore, VersionRef, AWSCURRENT, AWSPREVIOUS,
};
use crate::rotation::Rotator;
use crate::rules::{self, SweepPolicy};
use crate::secret::SecretValue;
use crate::state::Needs;
use crate::tags;

/// A user's keys (id, creation) in slot order: the report's slot is a key's position among the
/// user's keys by creation.
pub fn listed(user: &str, mut keys: Vec<(String, OffsetDateTime)>) -> Vec<ListedKey> {
    keys.sort_by_key(|(_, created)| *created);
    keys.into_iter()
        .enumerate()
        .map(|(i, (key_id, created))| ListedKey {
            user: user.to_string(),
            key_id,
            slot: i as u8 + 1,
            created,
        })
        .collect()
}

/// The held keys joined with the user's keys: each held key's report slot, and every key of the
/// user as listed.
pub fn joined(
    info: &SecretInfo,
    user: &str,
    keys: Vec<(String, OffsetDateTime)>,
    held: [(&str, Option<String>); 2],
    rotation_days: i64,
    grace: Option<Duration>,
    now: OffsetDateTime,
) -> (Vec<ManagedKey>, Vec<ListedKey>) {
    let listed = listed(user, keys);
    let find = |id: &str| listed.iter().find(|l| l.key_id == id);
    // The cut-over, bounded below by the current key's creation in IAM (the audit reads no value,
    // so the version's creation is not at hand) and above by now.
    let current_created = held[0].1.as_deref().and_then(find).map(|l| l.created);
    let cutover = rules::records::bound_cutover(info, current_created, now).latest;
    let managed = held
        .into_iter()
        .filter_map(|(label, key_id)| key_id.map(|k| (label, k)))
        .map(|(label, key_id)| {
            let found = find(&key_id);
            ManagedKey {
                secret: info.name.clone(),
                label: label.to_string(),
                user: user.to_string(),
                slot: found.map(|l| l.slot),
                created: found.map(|l| l.created),
                exists: found.is_some(),
                key_id,
                rotation_enabled: info.rotation_enabled,
                next_rotation: info.next_rotation,
                rotation_days,
                cutover,
                grace,
                user_gone: false,
            }
        })
        .collect();
    (managed, listed)
}

impl<P: Ports> Rotator<P> {
    /// A user's keys in slot order (one ListAccessKeys).
    pub async fn listed_keys(&self, user: &str) -> ApiResult<Vec<ListedKey>> {
        let keys = self.iam().own().list(user).await?;
        Ok(listed(
            user,
            keys.into_iter().map(|k| (k.id, k.created)).collect(),
        ))
    }

    /// The keys one managed secret holds (AWSCURRENT and AWSPREVIOUS) with their slots, and every
    /// key of its user. Where its tags record the key ids (finishSecret, enroll and adopt do) and
    /// the rules accept the record: one ListAccessKeys and no secret value; otherwise through the
    /// one state reader, which reads the values. `info` comes from ListSecrets: no DescribeSecret.
    /// A user deleted with the secret left behind makes its AWSCURRENT key missing (the audit's
    /// most serious finding), by the id its record names or its value holds.
    pub async fn held_keys(
        &self,
        info: SecretInfo,
        default_days: i64,
    ) -> Result<(Vec<ManagedKey>, Vec<ListedKey>), RotationError> {
        let days = rules::rotation_days(&info, default_days);
        let grace = SweepPolicy::default()
            .for_secret(&info)
            .ok()
            .and_then(|p| info.tags.contains_key(tags::GRACE_DAYS).then_some(p.grace));
        let now = self.clock().now();
        if let (Some(user), true) = (
            info.tags.get(tags::USER).cloned(),
            info.tags.contains_key(tags::CURRENT_KEY),
        ) {
            // A failure here is left to the state reader below, which names it as it always has.
            if let Ok(keys) = self.iam().own().list(&user).await {
                if let Some(recorded) = rules::recorded_keys(&info, &keys) {
                    let held = [
                        (AWSCURRENT, Some(recorded.current)),
                        (AWSPREVIOUS, recorded.previous),
                    ];
                    let keys = keys.into_iter().map(|k| (k.id, k.created)).collect();
                    return Ok(joined(&info, &user, keys, held, days, grace, now));
                }
            }
        }
        let needs = Needs {
            all_versions: true,
            tolerate_bad_values: true,
            ..Needs::default()
        };
        match self.read_state(info.clone(), None, needs).await {
            Ok(read) => {
                let state = &read.state;
                let keys = state
                    .keys
                    .iter()
                    .map(|k| (k.id.clone(), k.created))
                    .collect();
                let held =
                    [AWSCURRENT, AWSPREVIOUS].map(|l| (l, state.key_of(l).map(str::to_string)));
                let user = &state.user.name;
                Ok(joined(
                    &state.info,
                    user,
                    keys,
                    held,
                    days,
                    grace,
                    state.now,
                ))
            }
            Err(RotationError::NoSuchUser { user, .. }) => {
                let key_id = match info.tags.get(tags::CURRENT_KEY) {
                    Some(k) => k.clone(),
                    None => self
                        .store()
                        .value(&info.arn, &VersionRef::Label(AWSCURRENT))
                        .await
                        .ok()
                        .flatten()
                        .and_then(|t| SecretValue::parse(&t).ok())
                        .and_then(|v| v.access_key_id().map(str::to_string))
                        .unwrap_or_else(|| "unknown".into()),
                };
                let held = [(AWSCURRENT, Some(key_id)), (AWSPREVIOUS, None)];
                let (mut managed, listed) =
                    joined(&info, &user, Vec::new(), held, days, grace, now);
                for m in &mut managed {
                    m.user_gone = true;
                }
                Ok((managed, listed))
            }
            Err(e) => Err(e),
        }
    }
}
