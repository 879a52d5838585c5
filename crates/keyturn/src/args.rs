//! Command-line arguments: parsed here, validated into settings by each command.

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `keyturn --version`: the version, the git commit and the build date (build.rs).
pub const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("KEYTURN_COMMIT"),
    " ",
    env!("KEYTURN_BUILD_DATE"),
    ")"
);

#[derive(Debug, Parser)]
#[command(
    name = "keyturn",
    version = VERSION,
    about = "Rotate IAM user access keys held in AWS Secrets Manager, safely."
)]
pub struct Cli {
    #[command(flatten)]
    pub aws: AwsArgs,
    #[command(flatten)]
    pub scope: ScopeArgs,
    #[command(flatten)]
    pub delivery: DeliveryArgs,
    /// Output format (default table; credential-process prints its JSON only; enroll and
    /// status have no CSV form).
    #[arg(long, global = true, value_enum)]
    pub output: Option<Output>,
    /// Log keyturn's steps and the SDK's account of each request (retries, credentials,
    /// endpoints) on standard error; RUST_LOG or KEYTURN_LOG choose finer filters.
    #[arg(short, long, global = true)]
    pub verbose: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// The AWS options every command shares (the standard configuration applies otherwise).
#[derive(Debug, Args)]
#[command(next_help_heading = "AWS options")]
pub struct AwsArgs {
    /// Named profile from the AWS configuration; wins over credentials in the environment.
    #[arg(long, global = true, env = "AWS_PROFILE")]
    pub profile: Option<String>,
    /// AWS region.
    #[arg(long, global = true)]
    pub region: Option<String>,
    /// Endpoint for every service (also read from AWS_ENDPOINT_URL), e.g. a local emulator.
    #[arg(long, global = true)]
    pub endpoint_url: Option<String>,
}

/// What keyturn may act on by itself, and with whose key (see README, "Security model").
#[derive(Debug, Args)]
#[command(next_help_heading = "Scope")]
pub struct ScopeArgs {
    /// Secrets keyturn selects by itself (rotate --all/--due, sweep without names) must be under
    /// this prefix (ending in '/'); enroll names new secrets PREFIX/USER. Named secrets are acted
    /// on wherever they are.
    #[arg(long, global = true, env = "KEYTURN_SECRET_PREFIX", default_value = keyturn_core::rules::DEFAULT_PREFIX)]
    pub prefix: String,
    /// Act only on IAM users under this path (checked with GetUser when it is not '/').
    #[arg(long, global = true, env = "KEYTURN_USER_PATH", default_value = "/")]
    pub user_path: String,
    /// How long after a cut-over the previous key counts as possibly in use, in seconds: IAM's
    /// last-used record shows uses hours late (default 14400, 4 hours; 0 turns it off). The
    /// rotation function reads the same variable.
    #[arg(long, global = true, env = keyturn_core::config::LAST_USED_SETTLE_VAR, value_name = "SECONDS")]
    pub last_used_settle_seconds: Option<String>,
    /// A secret a `masterarn` may name to sign another secret's IAM calls (name or full ARN;
    /// repeatable, or comma-separated). Without it, only self-rotation (masterarn naming the
    /// secret itself) is honoured.
    #[arg(
        long = "master-secret",
        global = true,
        env = "KEYTURN_MASTER_SECRETS",
        value_name = "SECRET",
        value_delimiter = ','
    )]
    pub master_secrets: Vec<String>,
}

/// Where new keys go besides the secret: the sinks its `keyturn:sink:*` tags name, and events.
#[derive(Debug, Args)]
#[command(next_help_heading = "Delivery")]
pub struct DeliveryArgs {
    /// Publish an EventBridge event (source keyturn, default bus) per rotation, rollback,
    /// retirement and delivery, with key ids only (or KEYTURN_EVENTS=true).
    #[arg(long, global = true)]
    pub events: bool,
    /// The Secrets Manager secret holding the GitHub token that github and github-org sinks use.
    #[arg(
        long,
        global = true,
        env = "KEYTURN_GITHUB_TOKEN_SECRET",
        value_name = "SECRET"
    )]
    pub github_token_secret: Option<String>,
    /// SSM sinks must name parameters under this prefix, which starts and ends with '/' (default:
    /// any the credentials may write; none: no SSM sink).
    #[arg(long, global = true, env = "KEYTURN_SSM_PREFIX", value_name = "PREFIX")]
    pub ssm_prefix: Option<String>,
    /// A KMS key an SSM sink's kms= may name (repeatable, or comma-separated; default: SSM's own
    /// key or a key of the secret's account).
    #[arg(
        long = "ssm-kms-key",
        global = true,
        env = "KEYTURN_SSM_KMS_KEYS",
        value_name = "KEY",
        value_delimiter = ','
    )]
    pub ssm_kms_keys: Vec<String>,
    /// GitHub sinks must name this owner or organization (repeatable, or comma-separated; default:
    /// any the token reaches).
    #[arg(
        long = "github-owner",
        global = true,
        env = "KEYTURN_GITHUB_OWNERS",
        value_name = "OWNER",
        value_delimiter = ','
    )]
    pub github_owners: Vec<String>,
    /// A GitHub secret name a sink's id= or secret= may write besides AWS_ACCESS_KEY_ID and
    /// AWS_SECRET_ACCESS_KEY (repeatable, or comma-separated).
    #[arg(
        long = "github-secret-name",
        global = true,
        env = "KEYTURN_GITHUB_SECRET_NAMES",
        value_name = "NAME",
        value_delimiter = ','
    )]
    pub github_secret_names: Vec<String>,
    /// An ECS cluster whose services a keyturn:restart:NAME=ecs:CLUSTER/SERVICE tag may name
    /// (repeatable, or comma-separated; default: none, so no service is restarted).
    #[arg(
        long = "restart-ecs-cluster",
        global = true,
        env = "KEYTURN_RESTART_ECS_CLUSTERS",
        value_name = "CLUSTER",
        value_delimiter = ','
    )]
    pub restart_ecs_clusters: Vec<String>,
    /// A repository (OWNER/REPO) whose workflows a keyturn:restart:NAME=github:... tag may dispatch
    /// (repeatable, or comma-separated; default: none).
    #[arg(
        long = "restart-github-repo",
        global = true,
        env = "KEYTURN_RESTART_GITHUB_REPOS",
        value_name = "OWNER/REPO",
        value_delimiter = ','
    )]
    pub restart_github_repos: Vec<String>,
    /// The SNS topic owners' notices go to, with the secret's keyturn:owner as the `owner`
    /// message attribute (default: none, so no notice is sent).
    #[arg(
        long,
        global = true,
        env = "KEYTURN_NOTICE_TOPIC",
        value_name = "TOPIC_ARN"
    )]
    pub notice_topic: Option<String>,
    /// Days before a rotation the owner of a secret whose consumers act by hand is reminded (1 to
    /// 90).
    #[arg(long, global = true, env = "KEYTURN_NOTICE_DAYS", value_name = "DAYS")]
    pub notice_days: Option<String>,
    /// GitHub's REST API (GitHub Enterprise Server: https://HOST/api/v3).
    #[arg(long, global = true, env = "KEYTURN_GITHUB_API", value_name = "URL", default_value = keyturn_aws::github::DEFAULT_API_BASE)]
    pub github_api: String,
}

/// Which accounts a command runs in: the caller's own (none of these given), or accounts of the
/// organization reached by assuming a role in each (see docs/organizations.md).
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Accounts")]
pub struct AccountArgs {
    /// Every ACTIVE account of the organization (the management account with your own
    /// credentials, the others through --role-name).
    #[arg(long, conflicts_with = "ous")]
    pub org: bool,
    /// The accounts in this OU and the OUs nested in it (repeatable).
    #[arg(long = "ou", value_name = "OU_ID")]
    pub ous: Vec<String>,
    /// This account (repeatable; with --ou, added to the OUs' accounts).
    #[arg(long = "account", value_name = "ACCOUNT_ID")]
    pub accounts: Vec<String>,
    /// Leave this account out (repeatable).
    #[arg(long = "exclude-account", value_name = "ACCOUNT_ID")]
    pub exclude: Vec<String>,
    /// The role keyturn assumes in each member account.
    #[arg(long, env = "KEYTURN_ORG_ROLE", default_value = "keyturn-org-access")]
    pub role_name: String,
    /// The external id the member role's trust requires, if any.
    #[arg(long, env = "KEYTURN_EXTERNAL_ID")]
    pub external_id: Option<String>,
    /// How many accounts to work in at once (1 to 64).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub account_concurrency: u16,
}

impl AccountArgs {
    /// Whether any account flag was given (else the command runs in the caller's own account).
    pub fn selects(&self) -> bool {
        self.org || !self.ous.is_empty() || !self.accounts.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    Table,
    Json,
    /// Comma-separated values (audit, rotate and sweep).
    Csv,
}

impl Output {
    pub fn name(self) -> &'static str {
        match self {
            Output::Table => "table",
            Output::Json => "json",
            Output::Csv => "csv",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Enroll a user: a fresh key in a new secret, tagged as managed, with an optional schedule.
    Enroll(EnrollArgs),
    /// Run the four rotation steps locally, playing Secrets Manager's part (for cron and CI).
    Rotate(RotateArgs),
    /// Show a secret's versions, the user's keys, the last cut-over, and what is wrong.
    Status(StatusArgs),
    /// Retire previous keys: deactivate after the grace period if unused, delete later.
    Sweep(SweepArgs),
    /// Every active access key in the account: age, last use, and whether a secret rotates it.
    Audit(AuditArgs),
    /// Print the AWS credential_process JSON for the secret's AWSCURRENT key.
    CredentialProcess(CredentialProcessArgs),
    /// Deliver each secret's AWSCURRENT key to its sinks again (and announce it, with --events), or
    /// restart its consumers (--restart).
    Deliver(DeliverArgs),
    /// Put AWSCURRENT back on the AWSPREVIOUS version while its key exists, and deliver it.
    Rollback(RollbackArgs),
    /// Send the owners' notices due today (a rotation coming that consumers act on by hand, a
    /// previous key still in use), as the daily sweep does; --dry-run prints them instead.
    Notify(NotifyArgs),
    /// Across an AWS Organization: `org check` tries, in each account, what keyturn needs.
    #[command(subcommand)]
    Org(OrgCommand),
}

#[derive(Debug, Subcommand)]
pub enum OrgCommand {
    /// Assume the role in each selected account and try each capability keyturn needs (audit,
    /// rotate, sweep) with calls that change nothing.
    Check(OrgCheckArgs),
}

#[derive(Debug, Args)]
pub struct OrgCheckArgs {
    #[command(flatten)]
    pub accounts: AccountArgs,
}

impl Command {
    /// The command's name as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Enroll(_) => "enroll",
            Command::Rotate(_) => "rotate",
            Command::Status(_) => "status",
            Command::Sweep(_) => "sweep",
            Command::Audit(_) => "audit",
            Command::CredentialProcess(_) => "credential-process",
            Command::Deliver(_) => "deliver",
            Command::Rollback(_) => "rollback",
            Command::Notify(_) => "notify",
            Command::Org(OrgCommand::Check(_)) => "org check",
        }
    }

    /// The formats the command prints, its default first.
    pub fn formats(&self) -> &'static [Output] {
        match self {
            Command::Rotate(_) | Command::Sweep(_) | Command::Audit(_) => {
                &[Output::Table, Output::Json, Output::Csv]
            }
            Command::Enroll(_)
            | Command::Status(_)
            | Command::Org(_)
            | Command::Deliver(_)
            | Command::Notify(_)
            | Command::Rollback(_) => &[Output::Table, Output::Json],
            // The AWS SDKs read this JSON; any other form would break them.
            Command::CredentialProcess(_) => &[Output::Json],
        }
    }

    /// `--output` as given, or the command's default; a format it does not print is refused.
    pub fn output(&self, asked: Option<Output>) -> Result<Output, String> {
        let formats = self.formats();
        match asked {
            None => Ok(formats[0]),
            Some(o) if formats.contains(&o) => Ok(o),
            Some(o) => Err(format!(
                "`keyturn {}` has no {} output: use --output {}",
                self.name(),
                o.name(),
                formats
                    .iter()
                    .map(|f| f.name())
                    .collect::<Vec<_>>()
                    .join(" or --output ")
            )),
        }
    }
}

#[derive(Debug, Args)]
#[command(
    override_usage = "keyturn enroll [OPTIONS] USER\n       keyturn enroll [OPTIONS] --adopt SECRET [--user USER]"
)]
pub struct EnrollArgs {
    /// The IAM user to enroll (or --user USER; omit with --adopt).
    #[arg(
        value_name = "USER",
        required_unless_present_any = ["adopt", "adopt_user"],
        conflicts_with_all = ["adopt", "adopt_user"]
    )]
    pub user: Option<String>,
    /// Take over a hand-made secret in any supported shape instead: validate it and schedule it.
    #[arg(long, value_name = "SECRET")]
    pub adopt: Option<String>,
    /// The user: the one to enroll, or with --adopt the user for a value that names none
    /// (recorded as the keyturn:user tag).
    #[arg(long = "user", value_name = "USER")]
    pub adopt_user: Option<String>,
    /// Name of the new secret (default PREFIX/USER, i.e. keyturn/USER).
    #[arg(long, conflicts_with = "adopt")]
    pub secret_name: Option<String>,
    /// Rotation period in days (1 to 1000).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(i64).range(1..=1000))]
    pub rotate_every: i64,
    /// The rotation function to schedule (nothing is scheduled without it; no rotation runs now).
    #[arg(long, value_name = "ARN")]
    pub rotation_lambda: Option<String>,
    /// Extra tags for the secret, KEY=VALUE (repeatable).
    #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
    pub tags: Vec<(String, String)>,
}

fn parse_tag(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("{s:?} is not KEY=VALUE")),
    }
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["secrets", "all", "due"])))]
pub struct RotateArgs {
    /// Secrets to rotate (names or ARNs); or --all, or --due.
    #[arg(value_name = "SECRET", conflicts_with_all = ["all", "due"])]
    pub secrets: Vec<String>,
    /// Rotate every secret tagged keyturn:managed under --prefix.
    #[arg(long, conflicts_with = "due")]
    pub all: bool,
    /// Rotate the managed secrets under --prefix whose rotation is due.
    #[arg(long)]
    pub due: bool,
    /// Rotation period for --due where a secret has no schedule or keyturn:rotation-days tag (1 to 1000).
    #[arg(long, env = "KEYTURN_ROTATION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(i64).range(1..=1000))]
    pub rotation_days: i64,
    /// Finish a rotation already in flight instead of refusing.
    #[arg(long, conflicts_with = "cancel")]
    pub resume: bool,
    /// Undo a rotation in flight: delete the key it made and remove its AWSPENDING version.
    #[arg(long)]
    pub cancel: bool,
    /// Print what would be done and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// How many secrets to rotate at once (1 to 256).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// With --due: a reviewed TOML file of [[exemption]] entries; a due secret whose user one
    /// covers is left until its date.
    #[arg(long, value_name = "FILE", requires = "due")]
    pub exemptions: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub accounts: AccountArgs,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// The secret to show (name or ARN).
    #[arg(value_name = "SECRET")]
    pub secret: String,
    /// Show every version, not only those with a staging label (older ones are counted).
    #[arg(long)]
    pub all_versions: bool,
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Secrets to sweep (default: every secret tagged keyturn:managed under --prefix).
    #[arg(value_name = "SECRET")]
    pub secrets: Vec<String>,
    /// Print the plan and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Days a previous key stays active after the cut-over (0 to 65535; tags may only lengthen it).
    #[arg(long, env = "KEYTURN_GRACE_DAYS", default_value_t = 7)]
    pub grace_days: u16,
    /// Days a deactivated previous key is kept before it is deleted (0 to 65535; tags may only lengthen it).
    #[arg(long, env = "KEYTURN_DELETE_AFTER_DAYS", default_value_t = 7)]
    pub delete_after_days: u16,
    /// A previous key still in use is never deactivated: `report` it, or also `fail` the sweep.
    #[arg(long, env = "KEYTURN_IN_USE", default_value = "report")]
    pub in_use: String,
    /// Keep a previous key active past its grace period until the current key has been used since
    /// the cut-over (or KEYTURN_REQUIRE_SWITCH=true; tag keyturn:require-switch=true asks it
    /// per secret).
    #[arg(long)]
    pub require_switch: bool,
    /// How many secrets to sweep at once (1 to 256).
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    #[command(flatten)]
    pub accounts: AccountArgs,
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Keys older than this many days are overdue (1 to 3650; the CIS benchmark's limit is 90).
    #[arg(long, env = "KEYTURN_MAX_AGE_DAYS", default_value_t = 90, value_parser = clap::value_parser!(i64).range(1..=3650))]
    pub max_age: i64,
    /// Evaluate ages as of this date (YYYY-MM-DD or RFC 3339), e.g. the next review.
    #[arg(long)]
    pub as_of: Option<String>,
    /// Exit 1 when a key has this finding or a more serious one:
    /// ok < never-used < due < stale-previous < unmanaged < overdue < current-key-missing
    /// (an exempt key counts for none).
    #[arg(long, default_value = "overdue")]
    pub fail_on: String,
    /// Rotation period of managed secrets without a schedule or keyturn:rotation-days tag (1 to 1000).
    #[arg(long, env = "KEYTURN_ROTATION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(i64).range(1..=1000))]
    pub rotation_days: i64,
    /// Days an AWSPREVIOUS key may stay active after the cut-over.
    #[arg(long, env = "KEYTURN_GRACE_DAYS", default_value_t = 7)]
    pub grace_days: u16,
    /// Also write a self-contained HTML page (chart of key ages, findings table) here.
    #[arg(long, value_name = "FILE")]
    pub html: Option<std::path::PathBuf>,
    /// Seconds to wait for IAM to generate the credential report.
    #[arg(long, default_value_t = 120)]
    pub report_timeout: u64,
    /// How many managed secrets to read at once (1 to 256).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// A reviewed TOML file of [[exemption]] entries (account, user, reason, owner, until): an
    /// exempt key is reported as such and counts for no --fail-on until its date.
    #[arg(long, value_name = "FILE")]
    pub exemptions: Option<std::path::PathBuf>,
    /// Also import one finding per key into AWS Security Hub (each account's own hub, in the
    /// configured region) and resolve the findings of keys that are fixed or gone.
    #[arg(long, env = "KEYTURN_SECURITY_HUB")]
    pub security_hub: bool,
    /// With --security-hub across accounts: import into the caller's own account's hub (the
    /// delegated administrator) instead, each finding naming its member account.
    #[arg(long, requires = "security_hub")]
    pub security_hub_admin: bool,
    #[command(flatten)]
    pub accounts: AccountArgs,
}

#[derive(Debug, Args)]
pub struct CredentialProcessArgs {
    /// The secret whose AWSCURRENT key to print (name or ARN).
    #[arg(long, value_name = "SECRET")]
    pub secret_id: String,
    /// Minutes until the printed key expires, so SDKs read it again and pick up a rotation
    /// (20 to 720). SDKs refresh credentials that expire within their refresh window (botocore
    /// and the AWS CLI: 15 minutes), so a shorter value would run keyturn on every API call.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u16).range(20..=720))]
    pub refresh_minutes: u16,
}

#[derive(Debug, Args)]
pub struct DeliverArgs {
    /// Secrets whose AWSCURRENT key to deliver (names or ARNs).
    #[arg(value_name = "SECRET", required = true)]
    pub secrets: Vec<String>,
    /// Restart the consumers the secret names (keyturn:restart:* tags) instead of delivering:
    /// those without a completed restart since the cut-over (--all-targets: every one).
    #[arg(long)]
    pub restart: bool,
    /// With --restart, restart every target, even one that restarted since the cut-over.
    #[arg(long, requires = "restart")]
    pub all_targets: bool,
}

#[derive(Debug, Args)]
pub struct NotifyArgs {
    /// Secrets whose notices to send (default: every secret tagged keyturn:managed under --prefix).
    #[arg(value_name = "SECRET")]
    pub secrets: Vec<String>,
    /// Print the notices that would be sent today (their chat-shaped JSON with --output json);
    /// send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Rotation period of a secret without a schedule or keyturn:rotation-days tag (1 to 1000).
    #[arg(long, env = "KEYTURN_ROTATION_DAYS", default_value_t = 30, value_parser = clap::value_parser!(i64).range(1..=1000))]
    pub rotation_days: i64,
}

#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The secret to roll back (name or ARN).
    #[arg(value_name = "SECRET")]
    pub secret: String,
    /// Check everything and print the plan; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// The CLI reference (`docs/cli.md`): every command's `--help`, as clap renders it from these
/// definitions, so the reference cannot drift from the flags (`reference_is_current`).
#[cfg(test)]
pub fn reference() -> String {
    use clap::CommandFactory;
    let mut root = Cli::command().term_width(100);
    root.build();
    let mut out = String::from(
        "# keyturn command reference\n\n\
         Generated from the CLI's own definitions (`crates/keyturn/src/args.rs`) by\n\
         `KEYTURN_BLESS=1 cargo test -p keyturn reference_is_current`; a test fails when it differs.\n\
         The README says what each command is for; this is every flag.\n",
    );
    fn section(out: &mut String, path: &str, cmd: &mut clap::Command) {
        out.push_str(&format!("\n## `{path}`\n\n```text\n"));
        // The variables' names, not whatever values this process happens to have.
        let mut shown = cmd.clone().mut_args(|a| a.hide_env_values(true));
        let help = shown.render_long_help().to_string();
        for line in help.lines() {
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out.push_str("```\n");
        let subs: Vec<String> = cmd
            .get_subcommands()
            .filter(|s| !s.is_hide_set() && s.get_name() != "help")
            .map(|s| s.get_name().to_string())
            .collect();
        for name in subs {
            if let Some(sub) = cmd.find_subcommand_mut(&name) {
                let mut sub = sub.clone();
                section(out, &format!("{path} {name}"), &mut sub);
            }
        }
    }
    section(&mut out, "keyturn", &mut root);
    out
}

#[cfg(test)]
mod reference_tests {
    /// docs/cli.md is what `reference()` renders; `KEYTURN_BLESS=1` writes it.
    #[test]
    fn reference_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/cli.md");
        let want = super::reference();
        if std::env::var_os("KEYTURN_BLESS").is_some() {
            std::fs::write(path, &want).expect("docs/cli.md is writable");
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            have == want,
            "docs/cli.md differs from the CLI's definitions: run KEYTURN_BLESS=1 cargo test -p keyturn reference_is_current"
        );
    }
}
