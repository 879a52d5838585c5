//! Scope: what keyturn may act on by itself, and with whose key. The deployment (or the operator's
//! flags) fixes it; nothing in a secret's value or tags widens it.
//!
//! - a secret keyturn selects by itself (`rotate --all`, `--due`, a sweep without names, the
//!   function's scheduled sweep) is under the prefix; a secret named explicitly is acted on
//!   wherever it is;
//! - a user keyturn acts on is under the user path (checked with GetUser where IAM's own policy
//!   cannot be relied on: a master secret's key makes the calls, or the path is not `/`);
//! - a `masterarn` is honoured only when it names the secret itself or a secret in the allow-list.

use crate::ports::SecretInfo;

/// The prefix, user path and master allow-list. Built only by [`Scope::new`], which validates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    prefix: String,
    user_path: String,
    masters: Vec<String>,
}

/// The default prefix for secrets keyturn selects by itself (and names at enrollment).
pub const DEFAULT_PREFIX: &str = "keyturn/";

impl Default for Scope {
    fn default() -> Self {
        Self {
            prefix: DEFAULT_PREFIX.into(),
            user_path: "/".into(),
            masters: Vec::new(),
        }
    }
}

impl Scope {
    /// A scope from its parts, trimmed. The prefix must end in `/` (so `keyturn` cannot match
    /// `keyturn-prod-admin`); the user path must begin and end with `/`, as IAM paths do; master
    /// entries are secret names or full ARNs (empty entries are dropped).
    pub fn new(
        prefix: &str,
        user_path: &str,
        masters: impl IntoIterator<Item = String>,
    ) -> Result<Self, ScopeError> {
        let prefix = prefix.trim();
        if prefix.is_empty() || !prefix.ends_with('/') || prefix.starts_with('/') {
            return Err(ScopeError::Prefix(format!(
                "secret name prefix {prefix:?} must end in '/' (and not begin with one), e.g. {}/: without it, keyturn would also match {}-prod-admin",
                prefix.trim_matches('/'),
                prefix.trim_matches('/'),
            )));
        }
        let user_path = user_path.trim();
        if !user_path.starts_with('/') || !user_path.ends_with('/') {
            return Err(ScopeError::UserPath(format!(
                "user path {user_path:?} must begin and end with '/', e.g. / or /keyturn/"
            )));
        }
        let masters = masters
            .into_iter()
            .map(|m| m.trim().to_string())
            .filter(|m| !m.is_empty())
            .collect();
        Ok(Self {
            prefix: prefix.to_string(),
            user_path: user_path.to_string(),
            masters,
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn user_path(&self) -> &str {
        &self.user_path
    }

    pub fn masters(&self) -> &[String] {
        &self.masters
    }

    /// Whether keyturn may select the secret by itself: its name is under the prefix.
    pub fn selects(&self, name: &str) -> bool {
        name.starts_with(&self.prefix)
    }

    /// The secret's own name ARN-or-name reference: whether `master` names the secret itself.
    pub fn is_self(info: &SecretInfo, master: &str) -> bool {
        master == info.arn || master == info.name
    }

    /// Whether the master secret (as DescribeSecret returned it, so a partial ARN cannot match a
    /// look-alike name) is in the allow-list, by name or full ARN.
    pub fn trusts_master(&self, master: &SecretInfo) -> bool {
        self.masters
            .iter()
            .any(|m| *m == master.name || *m == master.arn)
    }

    /// Whether a user's IAM path is under the user path.
    pub fn admits_path(&self, path: &str) -> bool {
        path.starts_with(&self.user_path)
    }

    /// Whether the user's path must be read before acting: a master secret's key makes the IAM
    /// calls (its rights are not the deployment's, so IAM's policy on the caller bounds nothing),
    /// or the scope narrows the path. A self-rotating key acts only on its own user, as IAM
    /// lets it: under `/` it needs no GetUser.
    pub fn checks_path(&self, master_key: bool) -> bool {
        master_key || self.user_path != "/"
    }
}

/// A scope setting that does not parse: which one, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScopeError {
    /// The secret name prefix (`--prefix`, `KEYTURN_SECRET_PREFIX`).
    #[error("{0}")]
    Prefix(String),
    /// The IAM user path (`--user-path`, `KEYTURN_USER_PATH`).
    #[error("{0}")]
    UserPath(String),
}

impl ScopeError {
    /// The CLI flag and the environment variable that set it.
    pub fn setting(&self) -> (&'static str, &'static str) {
        match self {
            ScopeError::Prefix(_) => ("--prefix", "KEYTURN_SECRET_PREFIX"),
            ScopeError::UserPath(_) => ("--user-path", "KEYTURN_USER_PATH"),
        }
    }
}
