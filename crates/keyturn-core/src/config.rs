//! Settings that the rotation function and the CLI both read, defined once: the variable's name,
//! its default, its bounds and its meaning. Each is parsed here and nowhere else.

use time::Duration;

/// `KEYTURN_LAST_USED_SETTLE_SECONDS`: how long after a cut-over the previous key counts as
/// possibly in use. IAM's last-used record is not live: AWS documents that recent activity
/// "usually appears within 4 hours" in IAM's last-accessed data, and field reports show access
/// keys' last use lagging as long; moto's is immediate. `0` turns the window off.
pub const LAST_USED_SETTLE_VAR: &str = "KEYTURN_LAST_USED_SETTLE_SECONDS";

/// The default settle window: 4 hours (AWS documents no shorter bound for last-used data).
pub const DEFAULT_LAST_USED_SETTLE: Duration = Duration::hours(4);

/// The longest settle window accepted: 7 days (longer would keep every previous key for good).
pub const MAX_LAST_USED_SETTLE: Duration = Duration::days(7);

/// The settle window from the variable's value (`None`: unset, the default).
pub fn last_used_settle(value: Option<&str>) -> Result<Duration, String> {
    let Some(raw) = value.map(str::trim).filter(|v| !v.is_empty()) else {
        return Ok(DEFAULT_LAST_USED_SETTLE);
    };
    let secs: i64 = raw.parse().map_err(|_| {
        format!("{LAST_USED_SETTLE_VAR}={raw:?} is not a whole number of seconds (0 turns the window off; the default is 14400, 4 hours)")
    })?;
    let window = Duration::seconds(secs);
    if secs < 0 || window > MAX_LAST_USED_SETTLE {
        return Err(format!(
            "{LAST_USED_SETTLE_VAR}={raw:?} is out of range: 0 to {} seconds (7 days)",
            MAX_LAST_USED_SETTLE.whole_seconds()
        ));
    }
    Ok(window)
}

/// `KEYTURN_SSM_PREFIX` (`--ssm-prefix`, the template's SsmParameterPrefix): SSM sinks may write
/// only parameters under it. Unset or empty: any parameter (IAM bounds it); `none`: no SSM sink.
/// Otherwise it must start and end with `/` and not be `/` alone: a prefix `/apps` would admit
/// `/apps-evil/stolen`.
pub fn ssm_prefix(value: Option<&str>) -> Result<Option<String>, String> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some("none") => Ok(Some(String::new())),
        Some("/") => Err("the SSM prefix may not be / alone (every parameter): name a hierarchy such as /keyturn/, or none".into()),
        Some(p) if p.starts_with('/') && p.ends_with('/') => Ok(Some(p.to_string())),
        Some(p) => Err(format!(
            "the SSM prefix {p:?} must start and end with / (for example /keyturn/): without the last /, /apps would admit /apps-evil/stolen"
        )),
    }
}

/// A comma-separated list setting (`KEYTURN_GITHUB_OWNERS`, `KEYTURN_GITHUB_SECRET_NAMES`,
/// `KEYTURN_SSM_KMS_KEYS`, ...): its items, trimmed, empty ones dropped.
pub fn list(value: Option<&str>) -> Vec<String> {
    value
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_settle_window_parses_with_bounds() {
        assert_eq!(last_used_settle(None), Ok(Duration::hours(4)));
        assert_eq!(last_used_settle(Some(" ")), Ok(Duration::hours(4)));
        assert_eq!(last_used_settle(Some("0")), Ok(Duration::ZERO));
        assert_eq!(last_used_settle(Some("600")), Ok(Duration::minutes(10)));
        assert!(last_used_settle(Some("-1")).is_err());
        assert!(last_used_settle(Some("4h")).is_err());
        assert!(last_used_settle(Some("604801")).is_err());
    }

    #[test]
    fn an_ssm_prefix_ends_in_a_slash_and_is_not_the_root() {
        assert_eq!(ssm_prefix(None), Ok(None));
        assert_eq!(ssm_prefix(Some("none")), Ok(Some(String::new())));
        assert_eq!(ssm_prefix(Some("/keyturn/")), Ok(Some("/keyturn/".into())));
        for bad in ["/apps", "apps/", "/", "keyturn"] {
            assert!(ssm_prefix(Some(bad)).is_err(), "{bad}");
        }
    }

    #[test]
    fn lists_are_trimmed() {
        assert_eq!(list(Some(" a, ,b ,")), vec!["a", "b"]);
        assert!(list(None).is_empty());
    }
}
