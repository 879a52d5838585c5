//! The IAM user a secret's key belongs to, and where its name came from. Which user that is, is a
//! rule (`rules::resolve_user`).

/// Where the secret's user name came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserSource {
    /// The value's own user field (`UserName`, `username`).
    Value,
    /// The secret's `keyturn:user` tag (or, for `enroll --adopt`, `--user`).
    Tag,
    /// The deployment's default (`IAM_USER_NAME`).
    Default,
}

/// The IAM user a secret's key belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretUser {
    pub name: String,
    pub source: UserSource,
}
