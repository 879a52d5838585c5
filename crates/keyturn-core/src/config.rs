//! Settings that the rotation function and the CLI both read, defined once: the variable's name,
//! its default, its bounds and its meaning. Each is parsed here and nowhere else.

use std::time::Duration as StdDuration;

use time::Duration;

use crate::rules::{RestartPolicy, Scope, SinkPolicy};

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

/// One setting: its environment variable, the CLI flag and deployment parameter that set it (where
/// there is one), its default and meaning. The README's configuration table is generated from
/// [`SETTINGS`] (a test compares them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    pub var: &'static str,
    pub flag: Option<&'static str>,
    pub parameter: Option<&'static str>,
    pub default: &'static str,
    pub meaning: &'static str,
}

/// Every `KEYTURN_*` setting (and `IAM_USER_NAME`), read by [`rotation_settings`] and
/// [`sweep_policy`] for the function and the CLI alike.
pub const SETTINGS: &[Setting] = &[
    Setting { var: "KEYTURN_SECRET_PREFIX", flag: Some("--prefix"), parameter: Some("SecretNamePrefix"), default: "keyturn/", meaning: "secrets keyturn selects by itself are under this prefix, which ends in `/`" },
    Setting { var: "KEYTURN_USER_PATH", flag: Some("--user-path"), parameter: Some("UserPath"), default: "/", meaning: "keyturn acts only on IAM users under this path" },
    Setting { var: "KEYTURN_MASTER_SECRETS", flag: Some("--master-secret"), parameter: Some("MasterSecretArns"), default: "none", meaning: "the secrets a `masterarn` may name (comma-separated names or ARNs)" },
    Setting { var: "KEYTURN_EVENTS", flag: Some("--events"), parameter: Some("PublishEvents"), default: "false", meaning: "`true`: an EventBridge event per rotation, rollback, retirement and delivery" },
    Setting { var: "KEYTURN_SSM_PREFIX", flag: Some("--ssm-prefix"), parameter: Some("SsmParameterPrefix"), default: "any", meaning: "SSM sinks write only under this prefix (`/…/`); `none`: no SSM sink" },
    Setting { var: "KEYTURN_SSM_KMS_KEYS", flag: Some("--ssm-kms-key"), parameter: Some("SsmKmsKeyArns"), default: "the account's own", meaning: "the KMS keys an SSM sink's `kms=` may name (comma-separated)" },
    Setting { var: "KEYTURN_GITHUB_TOKEN_SECRET", flag: Some("--github-token-secret"), parameter: Some("GitHubTokenSecretArn"), default: "none: no GitHub sink", meaning: "the secret holding the GitHub token" },
    Setting { var: "KEYTURN_GITHUB_OWNERS", flag: Some("--github-owner"), parameter: Some("GitHubOwners"), default: "any", meaning: "the owners GitHub sinks may name (comma-separated)" },
    Setting { var: "KEYTURN_GITHUB_SECRET_NAMES", flag: Some("--github-secret-name"), parameter: Some("GitHubSecretNames"), default: "the two standard names", meaning: "other GitHub secret names a sink may write (comma-separated)" },
    Setting { var: "KEYTURN_RESTART_ECS_CLUSTERS", flag: Some("--restart-ecs-cluster"), parameter: Some("RestartEcsClusters"), default: "none", meaning: "the ECS clusters whose services a `keyturn:restart:NAME=ecs:CLUSTER/SERVICE` tag may name (comma-separated)" },
    Setting { var: "KEYTURN_RESTART_GITHUB_REPOS", flag: Some("--restart-github-repo"), parameter: Some("RestartGitHubRepos"), default: "none", meaning: "the repositories (`OWNER/REPO`) whose workflows a `keyturn:restart:NAME=github:…` tag may dispatch (comma-separated)" },
    Setting { var: "KEYTURN_NOTICE_TOPIC", flag: Some("--notice-topic"), parameter: Some("NoticeTopicArn"), default: "none: no notice", meaning: "the SNS topic owners' notices go to, with the secret's `keyturn:owner` as the `owner` message attribute" },
    Setting { var: "KEYTURN_NOTICE_DAYS", flag: Some("--notice-days"), parameter: Some("NoticeDays"), default: "7", meaning: "days before a rotation its owner is reminded, where consumers act by hand (1 to 90)" },
    Setting { var: "KEYTURN_ROTATION_DAYS", flag: Some("--rotation-days"), parameter: Some("RotationDays"), default: "30", meaning: "rotation period of a secret without a schedule or `keyturn:rotation-days` tag (1 to 1000)" },
    Setting { var: "KEYTURN_GITHUB_API", flag: Some("--github-api"), parameter: Some("GitHubApiUrl"), default: "https://api.github.com", meaning: "GitHub's REST API (GitHub Enterprise Server: `https://HOST/api/v3`)" },
    Setting { var: LAST_USED_SETTLE_VAR, flag: Some("--last-used-settle-seconds"), parameter: Some("LastUsedSettleSeconds"), default: "14400", meaning: "seconds after a cut-over during which the previous key counts as possibly in use (IAM's last-used lag); 0 to 604800" },
    Setting { var: "KEYTURN_GRACE_DAYS", flag: Some("--grace-days"), parameter: Some("GraceDays"), default: "7", meaning: "days a previous key stays active after the cut-over (tags may only lengthen it)" },
    Setting { var: "KEYTURN_DELETE_AFTER_DAYS", flag: Some("--delete-after-days"), parameter: Some("DeleteAfterDays"), default: "7", meaning: "days a deactivated previous key is kept before it is deleted" },
    Setting { var: "KEYTURN_IN_USE", flag: Some("--in-use"), parameter: Some("InUsePolicy"), default: "report", meaning: "a previous key still in use: `report` it, or also `fail` the sweep" },
    Setting { var: "KEYTURN_REQUIRE_SWITCH", flag: Some("--require-switch"), parameter: Some("RequireSwitch"), default: "false", meaning: "`true`: keep a previous key until the current key was used since the cut-over" },
    Setting { var: "KEYTURN_SECURITY_HUB", flag: Some("--security-hub"), parameter: Some("SecurityHubFindings"), default: "false", meaning: "`true`: the audit imports one finding per key into Security Hub (the function: daily, after the sweep)" },
    Setting { var: "KEYTURN_MAX_AGE_DAYS", flag: Some("--max-age"), parameter: Some("MaxKeyAgeDays"), default: "90", meaning: "the audit's maximum key age: older is overdue (1 to 3650; the CIS benchmark's limit is 90)" },
    Setting { var: "KEYTURN_TEST_ATTEMPTS", flag: None, parameter: None, default: "7", meaning: "the function's attempts at the new key's test (1 to 20)" },
    Setting { var: "KEYTURN_TEST_BACKOFF_MS", flag: None, parameter: None, default: "1000", meaning: "the function's first wait between test attempts, in ms" },
    Setting { var: "KEYTURN_TEST_MAX_BACKOFF_MS", flag: None, parameter: None, default: "8000", meaning: "the function's longest wait between test attempts, in ms" },
    Setting { var: "IAM_USER_NAME", flag: None, parameter: None, default: "none", meaning: "the function's user for values and secrets that name none (hand-made setups)" },
];

/// The README's configuration table, from [`SETTINGS`].
pub fn reference_table() -> String {
    let mut out = String::from(
        "| variable | CLI flag | deployment parameter | default | meaning |\n|---|---|---|---|---|\n",
    );
    for s in SETTINGS {
        out.push_str(&format!(
            "| `{}` | {} | {} | {} | {} |\n",
            s.var,
            s.flag.map_or("-".into(), |f| format!("`{f}`")),
            s.parameter.map_or("-".into(), |p| format!("`{p}`")),
            s.default,
            s.meaning
        ));
    }
    out
}

/// A variable's value parsed as `T`, `None` when unset; an error names the variable and says what
/// was `expected`.
fn parsed<T: std::str::FromStr>(
    get: &impl Fn(&str) -> Option<String>,
    var: &str,
    expected: &str,
) -> Result<Option<T>, String> {
    get(var)
        .map(|v| {
            v.trim()
                .parse::<T>()
                .map_err(|_| format!("{var}={v:?} is not {expected}"))
        })
        .transpose()
}

/// `true` or `false` (unset or empty: `false`); anything else is an error naming the variable.
fn boolean(get: &impl Fn(&str) -> Option<String>, var: &str) -> Result<bool, String> {
    match get(var).as_deref().map(str::trim) {
        None | Some("") | Some("false") => Ok(false),
        Some("true") => Ok(true),
        Some(v) => Err(format!("{var}={v:?}: expected true or false")),
    }
}

/// The rotation settings from the settings' values (`get(VAR)`), for the function (which reads
/// its environment, and needs rotation enabled on a secret) and the CLI (which hands in its flags,
/// each falling back to its variable) alike. Errors name the variable.
pub fn rotation_settings(
    get: impl Fn(&str) -> Option<String>,
    require_rotation_enabled: bool,
) -> Result<RotationSettings, String> {
    let default = Backoff::default();
    let number = |name: &str, default: u64| -> Result<u64, String> {
        Ok(parsed(&get, name, "a whole number")?.unwrap_or(default))
    };
    let attempts = number("KEYTURN_TEST_ATTEMPTS", u64::from(default.attempts))?;
    if !(1..=20).contains(&attempts) {
        return Err(format!(
            "KEYTURN_TEST_ATTEMPTS={attempts} is out of range (1 to 20)"
        ));
    }
    let scope = Scope::new(
        &get("KEYTURN_SECRET_PREFIX").unwrap_or_else(|| crate::rules::DEFAULT_PREFIX.into()),
        &get("KEYTURN_USER_PATH").unwrap_or_else(|| "/".into()),
        list(get("KEYTURN_MASTER_SECRETS").as_deref()),
    )
    .map_err(|e| {
        let (_, var) = e.setting();
        format!("{var}: {e}")
    })?;
    let sinks = SinkPolicy {
        ssm_prefix: ssm_prefix(get("KEYTURN_SSM_PREFIX").as_deref())
            .map_err(|e| format!("KEYTURN_SSM_PREFIX: {e}"))?,
        github_disabled: get("KEYTURN_GITHUB_TOKEN_SECRET").is_none_or(|t| t.trim().is_empty()),
        github_owners: list(get("KEYTURN_GITHUB_OWNERS").as_deref()),
        github_secret_names: list(get("KEYTURN_GITHUB_SECRET_NAMES").as_deref()),
        ssm_kms_keys: list(get("KEYTURN_SSM_KMS_KEYS").as_deref()),
    };
    let restarts = RestartPolicy {
        ecs_clusters: list(get("KEYTURN_RESTART_ECS_CLUSTERS").as_deref()),
        github_repos: list(get("KEYTURN_RESTART_GITHUB_REPOS").as_deref()),
        github_disabled: sinks.github_disabled,
    };
    let notice_days = days_within(&get, "KEYTURN_NOTICE_DAYS", 7, 1..=90)?;
    let rotation_days = days_within(&get, "KEYTURN_ROTATION_DAYS", 30, 1..=1000)?;
    let notices = NoticePolicy {
        topic: get("KEYTURN_NOTICE_TOPIC")
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty() && t != "none"),
        window: Duration::days(notice_days),
        rotation_days,
    };
    Ok(RotationSettings {
        scope,
        restarts,
        notices,
        events: boolean(&get, "KEYTURN_EVENTS")?,
        sinks,
        last_used_settle: last_used_settle(get(LAST_USED_SETTLE_VAR).as_deref())?,
        require_rotation_enabled,
        default_user: get("IAM_USER_NAME").filter(|u| !u.trim().is_empty()),
        test_backoff: Backoff {
            attempts: attempts as u32,
            initial: std::time::Duration::from_millis(number(
                "KEYTURN_TEST_BACKOFF_MS",
                default.initial.as_millis() as u64,
            )?),
            max: std::time::Duration::from_millis(number(
                "KEYTURN_TEST_MAX_BACKOFF_MS",
                default.max.as_millis() as u64,
            )?),
        },
    })
}

/// The sweep's policy from the settings' values (`KEYTURN_GRACE_DAYS`, `KEYTURN_DELETE_AFTER_DAYS`,
/// `KEYTURN_IN_USE`, `KEYTURN_REQUIRE_SWITCH`), for the function and the CLI alike.
pub fn sweep_policy(
    get: impl Fn(&str) -> Option<String>,
) -> Result<crate::rules::SweepPolicy, String> {
    let defaults = crate::rules::SweepPolicy::default();
    let days = |name: &str, default: Duration| -> Result<Duration, String> {
        let days: Option<u16> = parsed(&get, name, "a number of days (0 to 65535)")?;
        Ok(days.map_or(default, |d| Duration::days(d.into())))
    };
    let in_use = match get("KEYTURN_IN_USE") {
        None => defaults.in_use,
        Some(v) => crate::rules::InUsePolicy::parse(&v)
            .ok_or_else(|| format!("KEYTURN_IN_USE={v:?}: expected report or fail"))?,
    };
    Ok(crate::rules::SweepPolicy {
        grace: days("KEYTURN_GRACE_DAYS", defaults.grace)?,
        delete_after: days("KEYTURN_DELETE_AFTER_DAYS", defaults.delete_after)?,
        in_use,
        require_switch: boolean(&get, "KEYTURN_REQUIRE_SWITCH")?,
    })
}

/// The function's daily audit into Security Hub (`KEYTURN_SECURITY_HUB`), judged with
/// `KEYTURN_MAX_AGE_DAYS` and the sweep's grace period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HubAudit {
    pub max_age_days: i64,
    pub rotation_days: i64,
}

/// A whole number of days from `var` (`default` when unset), refused outside `range`.
fn days_within(
    get: &impl Fn(&str) -> Option<String>,
    var: &str,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, String> {
    let days = parsed::<i64>(get, var, "a whole number of days")?.unwrap_or(default);
    if !range.contains(&days) {
        return Err(format!(
            "{var}={days} is out of range ({} to {})",
            range.start(),
            range.end()
        ));
    }
    Ok(days)
}

/// [`HubAudit`] from the environment: `None` unless `KEYTURN_SECURITY_HUB=true`.
pub fn hub_audit(get: impl Fn(&str) -> Option<String>) -> Result<Option<HubAudit>, String> {
    if !boolean(&get, "KEYTURN_SECURITY_HUB")? {
        return Ok(None);
    }
    Ok(Some(HubAudit {
        max_age_days: days_within(&get, "KEYTURN_MAX_AGE_DAYS", 90, 1..=3650)?,
        rotation_days: days_within(&get, "KEYTURN_ROTATION_DAYS", 30, 1..=1000)?,
    }))
}

/// How long to keep trying a new key (or re-reading a list that lags) before concluding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub attempts: u32,
    pub initial: StdDuration,
    pub max: StdDuration,
}

impl Default for Backoff {
    /// 1 + 2 + 4 + 8 + 8 + 8 = 31 s of waiting over 7 attempts: IAM keys usually become valid
    /// everywhere within a few seconds.
    fn default() -> Self {
        Self {
            attempts: 7,
            initial: StdDuration::from_secs(1),
            max: StdDuration::from_secs(8),
        }
    }
}

/// Settings of a rotation, fixed for the life of the process.
#[derive(Debug, Clone)]
pub struct RotationSettings {
    /// Refuse to run when rotation is not enabled on the secret (true when Secrets Manager calls
    /// the function; the CLI plays Secrets Manager's part and does not need it).
    pub require_rotation_enabled: bool,
    /// The user for values that name none and secrets without a `keyturn:user` tag
    /// (`IAM_USER_NAME`).
    pub default_user: Option<String>,
    /// The new key's test, and re-reads of lists that lag IAM's writes.
    pub test_backoff: Backoff,
    /// The prefix, user path and master allow-list (`rules::scope`).
    pub scope: Scope,
    /// Publish an EventBridge event per rotation, rollback, retirement and delivery
    /// (`KEYTURN_EVENTS`).
    pub events: bool,
    /// Where sinks may point (`rules::sinks`).
    pub sinks: SinkPolicy,
    /// Which consumers a secret may name for a restart (`rules::restarts`).
    pub restarts: RestartPolicy,
    /// Where owners' notices go, and when a reminder is sent.
    pub notices: NoticePolicy,
    /// How long after a cut-over the previous key counts as possibly in use, because IAM's
    /// last-used record may not show a use yet (`KEYTURN_LAST_USED_SETTLE_SECONDS`).
    pub last_used_settle: Duration,
}

/// Owners' notices (`rules::notices`, `rotation::notify`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoticePolicy {
    /// The SNS topic (`KEYTURN_NOTICE_TOPIC`); `None`: no notice is sent.
    pub topic: Option<String>,
    /// How long before a rotation the owner of a secret whose consumers act by hand is reminded
    /// (`KEYTURN_NOTICE_DAYS`).
    pub window: Duration,
    /// The rotation period of a secret with no schedule and no `keyturn:rotation-days` tag
    /// (`KEYTURN_ROTATION_DAYS`).
    pub rotation_days: i64,
}

impl Default for NoticePolicy {
    fn default() -> Self {
        Self {
            topic: None,
            window: Duration::days(7),
            rotation_days: 30,
        }
    }
}

impl Default for RotationSettings {
    fn default() -> Self {
        Self {
            require_rotation_enabled: false,
            default_user: None,
            test_backoff: Backoff::default(),
            scope: Scope::default(),
            events: false,
            sinks: SinkPolicy::default(),
            restarts: RestartPolicy::default(),
            notices: NoticePolicy::default(),
            last_used_settle: DEFAULT_LAST_USED_SETTLE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_s_configuration_table_is_generated_from_the_settings() {
        let readme = include_str!("../../../README.md");
        let start = "<!-- configuration table: generated from keyturn_core::config::SETTINGS -->\n";
        let at = readme
            .find(start)
            .expect("the README has the table's marker")
            + start.len();
        let table = &readme[at..];
        let end = table.find("\n\n").map_or(table.len(), |i| i + 1);
        assert_eq!(
            &table[..end],
            reference_table(),
            "regenerate the README's table from config::SETTINGS"
        );
    }

    #[test]
    fn every_variable_named_in_settings_is_read() {
        // Each setting changes what rotation_settings or sweep_policy builds, or is refused when bad.
        // KEYTURN_GITHUB_API is read into the GitHub adapter's settings, not these.
        for s in SETTINGS.iter().filter(|s| s.var != "KEYTURN_GITHUB_API") {
            let bad = |k: &str| (k == s.var).then(|| "!bad value!".to_string());
            // The audit's settings are read when the audit into Security Hub is on.
            let on = |k: &str| (k == "KEYTURN_SECURITY_HUB").then(|| "true".to_string());
            let built = (
                rotation_settings(bad, true).map(|r| format!("{r:?}")),
                sweep_policy(bad).map(|p| format!("{p:?}")),
                hub_audit(|k| bad(k).or_else(|| on(k))).map(|a| format!("{a:?}")),
            );
            let plain = (
                rotation_settings(|_| None, true).map(|r| format!("{r:?}")),
                sweep_policy(|_| None).map(|p| format!("{p:?}")),
                hub_audit(on).map(|a| format!("{a:?}")),
            );
            assert_ne!(built, plain, "{} is not read", s.var);
        }
    }

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
