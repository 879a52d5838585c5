//! Exemptions as reviewed policy: a TOML file of `[[exemption]]` entries, each naming an account
//! (an id or `*`), a user, a reason, an owner and an end date no more than a year away. An exempt
//! key does not count for `--fail-on` and `rotate --due` leaves it until the date; an expired entry
//! is reported and the key judged as usual.
//!
//! A reviewer must see what an entry covers, so `user` is an IAM user name, or a prefix of at
//! least three characters followed by one `*` (`legacy-ftp-*`); other glob syntax is refused.
//! `user = "*"` (every user) needs `all_users = true` and one account; every user of every
//! account is never exempt.
//!
//! ```toml
//! [[exemption]]
//! account = "111122223333"
//! user = "legacy-ftp-*"
//! reason = "vendor appliance; replacement in change CHG-1234"
//! owner = "storage-team@example.com"
//! until = 2027-03-31
//! ```

use serde::Deserialize;
use time::{Date, Duration};

use super::{Applied, AuditEntry, Finding};

/// The longest an exemption may run from today: reviewed at least once a year.
pub const LONGEST: Duration = Duration::days(365);

/// One entry of the file, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exemption {
    /// A 12-digit account id, or `*` for every account.
    pub account: String,
    /// A user name or a glob (`*`, `?`, `[...]`).
    pub user: String,
    pattern: glob::Pattern,
    pub reason: String,
    pub owner: String,
    /// The last day the exemption holds (inclusive, UTC).
    pub until: Date,
}

impl Exemption {
    pub fn matches(&self, account: &str, user: &str) -> bool {
        (self.account == "*" || self.account == account) && self.pattern.matches(user)
    }

    /// Whether it holds on `day`.
    pub fn holds_on(&self, day: Date) -> bool {
        day <= self.until
    }
}

/// The file's entries in file order; the first that matches a key is the one that applies.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Exemptions(Vec<Exemption>);

/// Why the file was refused: nothing runs with a file that is not all valid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExemptionError {
    #[error("the exemptions file is not valid TOML of [[exemption]] entries: {0}")]
    Syntax(String),
    #[error("exemption {index} (account {account}, user {user}): {problem}")]
    Entry {
        /// 1-based, in file order.
        index: usize,
        account: String,
        user: String,
        problem: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    exemption: Vec<Entry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    account: Option<String>,
    user: Option<String>,
    reason: Option<String>,
    owner: Option<String>,
    until: Option<toml::Value>,
    /// Confirms that `user = "*"` means every user of the account.
    all_users: Option<bool>,
}

/// The characters of an IAM user name.
fn name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "+=,.@_-".contains(c)
}

/// What `user` may be: a name, a prefix of three or more characters and `*`, or (confirmed with
/// `all_users`, in one account) `*`.
fn check_user(user: &str, account: &str, all_users: bool) -> Result<(), String> {
    if user == "*" {
        return match (account, all_users) {
            ("*", _) => Err("user \"*\" in account \"*\" would exempt every user of every account: name the accounts one entry each".into()),
            (_, false) => Err("user \"*\" exempts every user of the account: say so with all_users = true, or name the users".into()),
            (_, true) => Ok(()),
        };
    }
    if all_users {
        return Err("all_users = true goes with user = \"*\" only".into());
    }
    let (prefix, glob) = match user.strip_suffix('*') {
        Some(p) => (p, true),
        None => (user, false),
    };
    if !prefix.chars().all(name_char) {
        return Err("user must be an IAM user name, or a prefix of at least three characters followed by one * (as legacy-ftp-*): other glob syntax could cover more than a reviewer sees".into());
    }
    if glob && prefix.chars().count() < 3 {
        return Err(format!(
            "user {user:?}: a prefix needs at least three characters before the *, so that it says whom it covers"
        ));
    }
    Ok(())
}

fn date_of(v: &toml::Value) -> Option<Date> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    match v {
        toml::Value::String(s) => Date::parse(s.trim(), &format).ok(),
        // A TOML local date (until = 2027-03-31); a date-time is refused: exemptions end on a day.
        toml::Value::Datetime(d) if d.time.is_none() && d.offset.is_none() => {
            let date = d.date?;
            Date::from_calendar_date(
                date.year.into(),
                time::Month::try_from(date.month).ok()?,
                date.day,
            )
            .ok()
        }
        _ => None,
    }
}

/// A TOML value as the file would have it, for an error message.
fn shown(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => format!("{s:?}"),
        toml::Value::Datetime(d) => d.to_string(),
        other => format!("{other:?}"),
    }
}

impl Exemptions {
    /// Parses and validates the whole file against `today` (the real date, not `--as-of`: how
    /// far an exemption may run is a property of the review, not of the question asked).
    pub fn parse(text: &str, today: Date) -> Result<Self, ExemptionError> {
        let file: File =
            toml::from_str(text).map_err(|e| ExemptionError::Syntax(e.message().to_string()))?;
        let mut out = Vec::new();
        for (i, e) in file.exemption.into_iter().enumerate() {
            let account = e.account.unwrap_or_default().trim().to_string();
            let user = e.user.unwrap_or_default().trim().to_string();
            let refuse = |problem: String| ExemptionError::Entry {
                index: i + 1,
                account: if account.is_empty() {
                    "?".into()
                } else {
                    account.clone()
                },
                user: if user.is_empty() {
                    "?".into()
                } else {
                    user.clone()
                },
                problem,
            };
            if account != "*"
                && !(account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()))
            {
                return Err(refuse(
                    "account must be a 12-digit account id or \"*\" for every account".into(),
                ));
            }
            if user.is_empty() {
                return Err(refuse(
                    "user is missing: name the IAM user or a glob such as \"ci-*\"".into(),
                ));
            }
            check_user(&user, &account, e.all_users.unwrap_or(false)).map_err(refuse)?;
            let pattern = glob::Pattern::new(&user)
                .map_err(|g| refuse(format!("user is not a valid glob ({g})")))?;
            let owner = e.owner.unwrap_or_default().trim().to_string();
            if owner.is_empty() {
                return Err(refuse(
                    "owner is missing: every exemption names who answers for it (a team or an address)".into(),
                ));
            }
            let reason = e.reason.unwrap_or_default().trim().to_string();
            if reason.is_empty() {
                return Err(refuse(
                    "reason is missing: say why the key may not be rotated".into(),
                ));
            }
            let until = match e.until.as_ref() {
                None => {
                    return Err(refuse(
                        "until is missing: every exemption ends on a date (YYYY-MM-DD)".into(),
                    ))
                }
                Some(v) => date_of(v).ok_or_else(|| {
                    refuse(format!(
                        "until {} is not a date: write it as YYYY-MM-DD",
                        shown(v)
                    ))
                })?,
            };
            let latest = today + LONGEST;
            if until > latest {
                return Err(refuse(format!(
                    "until {until} is more than a year from today ({today}): exemptions are reviewed at least yearly; end it on {latest} or earlier"
                )));
            }
            out.push(Exemption {
                account,
                user,
                pattern,
                reason,
                owner,
                until,
            });
        }
        Ok(Self(out))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries that can apply in `account` (its own and the `*` ones), in file order.
    pub fn for_account(&self, account: &str) -> AccountExemptions {
        AccountExemptions {
            account: account.to_string(),
            entries: Exemptions(
                self.0
                    .iter()
                    .filter(|e| e.account == "*" || e.account == account)
                    .cloned()
                    .collect(),
            ),
        }
    }

    /// The first entry that matches the user in the account.
    pub fn find(&self, account: &str, user: &str) -> Option<&Exemption> {
        self.0.iter().find(|e| e.matches(account, user))
    }

    pub fn iter(&self) -> impl Iterator<Item = &Exemption> {
        self.0.iter()
    }
}

/// The exemptions that can apply in one account.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccountExemptions {
    account: String,
    entries: Exemptions,
}

impl AccountExemptions {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first entry that matches the user.
    pub fn find(&self, user: &str) -> Option<&Exemption> {
        self.entries.find(&self.account, user)
    }

    /// The entry that matches the user and holds on `day`.
    pub fn holding(&self, user: &str, day: Date) -> Option<&Exemption> {
        self.find(user).filter(|x| x.holds_on(day))
    }
}

/// Marks each entry of the account that an exemption covers, judged on `day` (the `--as-of`
/// date). A key that is fine (`ok`) stays `ok`, and a managed secret whose AWSCURRENT key IAM no
/// longer has is never exempt: that secret is broken for whoever reads it, whatever the review
/// said about the key's age.
pub fn apply(entries: &mut [AuditEntry], exemptions: &AccountExemptions, day: Date) {
    for e in entries.iter_mut() {
        if e.findings.contains(&Finding::CurrentKeyMissing) {
            continue;
        }
        if let Some(x) = exemptions.find(&e.user) {
            e.exemption = Some(Applied {
                reason: x.reason.clone(),
                owner: x.owner.clone(),
                until: x.until,
                holds: x.holds_on(day),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    const TODAY: Date = date!(2026 - 12 - 02);

    fn parse(text: &str) -> Result<Exemptions, ExemptionError> {
        Exemptions::parse(text, TODAY)
    }

    #[test]
    fn a_valid_file_parses_and_matches_by_account_and_glob() {
        let x = parse(
            r#"
[[exemption]]
account = "111122223333"
user = "legacy-*"
reason = "vendor appliance"
owner = "storage@example.com"
until = 2027-03-31

[[exemption]]
account = "*"
user = "break-glass"
reason = "sealed envelope"
owner = "security"
until = "2026-12-31"
"#,
        )
        .expect("valid");
        assert!(x.find("111122223333", "legacy-ftp").is_some());
        assert!(x.find("999988887777", "legacy-ftp").is_none());
        assert!(x.find("999988887777", "break-glass").is_some());
        assert!(x.find("111122223333", "ci").is_none());
        assert!(x.for_account("999988887777").find("legacy-ftp").is_none());
        assert!(x.for_account("999988887777").find("break-glass").is_some());
        let first = x.find("111122223333", "legacy-ftp").expect("match");
        assert_eq!(first.until, date!(2027 - 03 - 31));
        assert!(first.holds_on(date!(2027 - 03 - 31)));
        assert!(!first.holds_on(date!(2027 - 04 - 01)));
    }

    fn entry(fields: &str) -> String {
        format!("[[exemption]]\n{fields}\n")
    }

    #[test]
    fn an_entry_without_owner_reason_or_date_or_running_over_a_year_is_refused() {
        let base = [
            ("account", "\"111122223333\""),
            ("user", "\"svc\""),
            ("reason", "\"r\""),
            ("owner", "\"o\""),
            ("until", "2027-01-01"),
        ];
        for missing in ["owner", "reason", "until", "user", "account"] {
            let text: Vec<String> = base
                .iter()
                .filter(|(k, _)| *k != missing)
                .map(|(k, v)| format!("{k} = {v}"))
                .collect();
            let err = parse(&entry(&text.join("\n"))).expect_err(missing);
            assert!(err.to_string().contains("exemption 1"), "{err}");
        }
        let too_long = entry(
            "account = \"*\"\nuser = \"a\"\nreason = \"r\"\nowner = \"o\"\nuntil = 2027-12-03",
        );
        let err = parse(&too_long).expect_err("over a year");
        assert!(err.to_string().contains("more than a year"), "{err}");
        assert!(err.to_string().contains("2027-12-02"), "{err}");
        let exactly_a_year = entry(
            "account = \"*\"\nuser = \"a\"\nreason = \"r\"\nowner = \"o\"\nuntil = 2027-12-02",
        );
        assert!(parse(&exactly_a_year).is_ok());
        let blank_owner = entry(
            "account = \"*\"\nuser = \"a\"\nreason = \"r\"\nowner = \"  \"\nuntil = 2027-01-01",
        );
        assert!(parse(&blank_owner)
            .expect_err("blank")
            .to_string()
            .contains("owner"));
    }

    #[test]
    fn malformed_files_and_fields_are_refused() {
        for text in [
            "[[exemption]]\naccount = \"12\"\nuser = \"a\"\nreason = \"r\"\nowner = \"o\"\nuntil = 2027-01-01",
            "[[exemption]]\naccount = \"*\"\nuser = \"[a\"\nreason = \"r\"\nowner = \"o\"\nuntil = 2027-01-01",
            "[[exemption]]\naccount = \"*\"\nuser = \"a\"\nreason = \"r\"\nowner = \"o\"\nuntil = 2027-01-01T00:00:00Z",
            "[[exemption]]\naccount = \"*\"\nuser = \"a\"\nreason = \"r\"\nowner = \"o\"\nuntil = \"soon\"",
            "[[exemption]]\naccount = \"*\"\nuser = \"a\"\nreason = \"r\"\nowner = \"o\"\nuntill = 2027-01-01",
            "[[exemption]\n",
            "exemptions = 3",
        ] {
            assert!(parse(text).is_err(), "{text}");
        }
        assert!(parse("").expect("empty file").is_empty());
    }

    #[test]
    fn a_glob_covers_only_what_it_says() {
        let with = |account: &str, user: &str, extra: &str| {
            parse(&entry(&format!(
                "account = \"{account}\"\nuser = \"{user}\"\nreason = \"r\"\nowner = \"o\"\nuntil = 2027-01-01\n{extra}"
            )))
        };
        for ok in ["svc", "ops,deploy", "legacy-*", "ci.*"] {
            assert!(with("111122223333", ok, "").is_ok(), "{ok}");
        }
        assert!(with("111122223333", "*", "all_users = true").is_ok());
        for (account, user, extra, says) in [
            ("*", "*", "all_users = true", "every user of every account"),
            ("111122223333", "*", "", "all_users = true"),
            ("111122223333", "*ftp*", "", "other glob syntax"),
            ("111122223333", "a?c", "", "other glob syntax"),
            ("111122223333", "[a-z]*", "", "other glob syntax"),
            ("111122223333", "ab*", "", "at least three characters"),
            ("111122223333", "svc", "all_users = true", "goes with user"),
        ] {
            let e = with(account, user, extra).expect_err(user).to_string();
            assert!(e.contains(says), "{user}: {e}");
        }
    }
}

#[cfg(test)]
mod judged {
    use super::*;
    use crate::audit::tests::{report, row};
    use crate::audit::{audit, parse_report, AuditPolicy};
    use time::macros::{date, datetime};

    #[test]
    fn an_exempt_key_counts_as_exempt_until_its_date_then_as_judged() {
        let csv = report(&[
            row(
                "legacy",
                "true,2025-01-01T00:00:00+00:00,N/A,N/A,N/A",
                "false,N/A,N/A,N/A,N/A",
            ),
            row(
                "fresh",
                "true,2026-11-30T00:00:00+00:00,2026-12-01T00:00:00+00:00,us-east-1,iam",
                "false,N/A,N/A,N/A,N/A",
            ),
        ]);
        let rows = parse_report(&csv).expect("report");
        let file = Exemptions::parse(
            "[[exemption]]\naccount = \"*\"\nuser = \"legacy\"\nreason = \"vendor\"\nowner = \"ops\"\nuntil = 2027-01-31\n\n[[exemption]]\naccount = \"*\"\nuser = \"fresh\"\nreason = \"vendor\"\nowner = \"ops\"\nuntil = 2027-01-31\n",
            date!(2026 - 12 - 02),
        )
        .expect("valid");
        let policy = |as_of| AuditPolicy {
            as_of,
            max_age: Duration::days(90),
            grace: Duration::days(7),
        };
        for (as_of, legacy) in [
            (datetime!(2026-12-02 0:00 UTC), Finding::Exempt),
            (datetime!(2027-01-31 0:00 UTC), Finding::Exempt),
            (datetime!(2027-02-01 0:00 UTC), Finding::Overdue),
        ] {
            let p = policy(as_of);
            let mut entries = audit(&rows, &[], &p);
            apply(
                &mut entries,
                &file.for_account("123456789012"),
                as_of.date(),
            );
            let legacy_entry = entries.iter().find(|e| e.user == "legacy").expect("legacy");
            assert_eq!(legacy_entry.worst(), legacy, "{as_of}");
            assert_eq!(
                legacy_entry.findings[0],
                Finding::Overdue,
                "the findings stay"
            );
            let x = legacy_entry.exemption.as_ref().expect("recorded");
            assert_eq!(x.holds, legacy == Finding::Exempt);
            assert_eq!(x.owner, "ops");
        }
        let p = policy(datetime!(2026-12-02 0:00 UTC));
        let mut entries = audit(&rows, &[], &p);
        apply(
            &mut entries,
            &file.for_account("123456789012"),
            date!(2026 - 12 - 02),
        );
        let fresh = entries.iter().find(|e| e.user == "fresh").expect("fresh");
        // Unmanaged is a finding: exempt. A key with no finding at all would stay ok.
        assert_eq!(fresh.worst(), Finding::Exempt);
        assert!(
            Finding::Exempt < Finding::Ok,
            "exempt counts for no --fail-on threshold"
        );
    }
}
