//! Telling owners: whose a secret is (its `keyturn:owner` tag, a key the deployment's topic
//! subscriptions filter on, never a destination), whether its consumers must act by hand on a
//! rotation, and on which days a reminder of a coming rotation is sent.

use time::{Duration, OffsetDateTime};

use crate::ports::SecretInfo;
use crate::tags::{CONSUMERS, OWNER, RESTART_PREFIX, SINK_PREFIX};

/// The secret's owner, or why the tag is not one: 1 to 128 letters, digits and `@._+-` (an
/// address, a team or a channel key). `Ok(None)` without the tag: nobody is told.
pub fn owner(info: &SecretInfo) -> Result<Option<String>, String> {
    let Some(value) = info.tags.get(OWNER) else {
        return Ok(None);
    };
    let value = value.trim();
    if value.is_empty()
        || value.len() > 128
        || !value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "@._+-".contains(c))
    {
        return Err(format!(
            "{OWNER}={value:?} is not an owner (1 to 128 letters, digits and @._+-: an address, a team or a channel key the deployment's subscriptions filter on)"
        ));
    }
    Ok(Some(value.to_string()))
}

/// Whether the consumers must act by hand when the key changes: the secret delivers to no sink,
/// restarts no consumer, and is not marked as read through credential_process.
pub fn acts_by_hand(info: &SecretInfo) -> bool {
    let automated = info
        .tags
        .keys()
        .any(|k| k.starts_with(SINK_PREFIX) || k.starts_with(RESTART_PREFIX));
    let reads_current = info
        .tags
        .get(CONSUMERS)
        .is_some_and(|v| v.trim() == "credential-process");
    !automated && !reads_current
}

/// Whether today's sweep (run daily) sends the reminder of a rotation due at `due`: on the day the
/// `window` before it opens, and on its last day. Two reminders, whatever the schedule's hour.
pub fn remind_today(due: OffsetDateTime, now: OffsetDateTime, window: Duration) -> bool {
    let left = due - now;
    let day = Duration::days(1);
    (left > window - day && left <= window) || (left > Duration::ZERO && left <= day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    use crate::rules::tagged as info;

    #[test]
    fn an_owner_is_a_key_for_the_subscriptions_not_a_destination() {
        assert_eq!(owner(&info(&[])), Ok(None));
        assert_eq!(
            owner(&info(&[("keyturn:owner", " team-payments ")])),
            Ok(Some("team-payments".into()))
        );
        assert_eq!(
            owner(&info(&[("keyturn:owner", "ops@example.com")])),
            Ok(Some("ops@example.com".into()))
        );
        for bad in [
            "",
            "https://hooks.slack.com/x",
            "a b",
            "x".repeat(129).as_str(),
        ] {
            assert!(owner(&info(&[("keyturn:owner", bad)])).is_err(), "{bad}");
        }
    }

    #[test]
    fn consumers_act_by_hand_without_a_sink_a_restart_or_credential_process() {
        assert!(acts_by_hand(&info(&[("keyturn:owner", "t")])));
        assert!(!acts_by_hand(&info(&[("keyturn:sink:a", "ssm:/a")])));
        assert!(!acts_by_hand(&info(&[("keyturn:restart:a", "ecs:c/s")])));
        assert!(!acts_by_hand(&info(&[(
            "keyturn:consumers",
            "credential-process"
        )])));
        assert!(acts_by_hand(&info(&[("keyturn:consumers", "other")])));
    }

    #[test]
    fn a_reminder_goes_when_the_window_opens_and_on_the_last_day() {
        let due = datetime!(2026-12-20 09:00 UTC);
        let window = Duration::days(7);
        let sent: Vec<i64> = (0..20)
            .filter(|d| remind_today(due, due - Duration::days(*d) + Duration::hours(3), window))
            .collect();
        assert_eq!(sent, [1, 7], "days before the due date");
        assert!(
            !remind_today(due, due + Duration::hours(1), window),
            "overdue: the rotation's business"
        );
    }
}
