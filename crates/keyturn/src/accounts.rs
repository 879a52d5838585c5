//! Which accounts a command runs in, and running it in each: the caller's own account, or the
//! accounts `--org`, `--ou` and `--account` select, each reached by AssumeRole (the caller's own
//! account with its own credentials), at most `--account-concurrency` at once. An account that
//! cannot be reached, or where the command fails, becomes one error row; the others go on.

use std::collections::BTreeMap;
use std::sync::Arc;

use anyhow::{bail, Context};
use aws_config::SdkConfig;
use keyturn_aws::{AssumedRole, Aws, GitHubSettings, Organization, Sinks, Sts};

use crate::args::AccountArgs;
use crate::render::{bulk, AccountFailure, InAccount};

/// One account a command runs in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub name: Option<String>,
}

impl Account {
    /// `111122223333 (Prod)`, or the id alone.
    pub fn label(&self) -> String {
        match &self.name {
            Some(n) => format!("{} ({n})", self.id),
            None => self.id.clone(),
        }
    }
}

/// The selected accounts and how to reach them.
#[derive(Debug, Clone)]
pub struct Fleet {
    config: SdkConfig,
    pub accounts: Vec<Account>,
    /// Whether accounts were selected (else: the caller's own account only, whose failure is the
    /// command's error, as before there were accounts).
    pub selected: bool,
    caller: String,
    own: String,
    partition: String,
    role_name: String,
    external_id: Option<String>,
    concurrency: u16,
    session: String,
    /// STS with the caller's credentials, built once: every AssumeRole goes through it.
    sts: Sts,
    github: GitHubSettings,
}

/// An account reached: its configuration (its own credentials) and whether the command may draw
/// its own progress bar (not when a bar over accounts is drawn).
pub struct Reached {
    pub account: Account,
    pub config: SdkConfig,
    pub progress: bool,
    github: GitHubSettings,
}

impl Reached {
    /// The account's clients; GitHub's token secret is read in this account.
    pub fn aws(&self) -> Aws {
        Aws::from_config(&self.config, &self.github)
    }
}

/// What running a command in every selected account gave: the rows, in account order, and how
/// many accounts failed.
pub struct Ran<R> {
    pub rows: Vec<InAccount<R>>,
    pub failed_accounts: usize,
    pub accounts: usize,
}

impl<R> Ran<R> {
    /// The command's result once its rows are printed: an error (exit 2) when an account failed.
    pub fn finish(&self, fine: bool) -> anyhow::Result<bool> {
        if self.failed_accounts > 0 {
            bail!(
                "{} of {} account(s) could not be reached or failed: see their error rows",
                self.failed_accounts,
                self.accounts
            );
        }
        Ok(fine)
    }
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_ou_or_root(s: &str) -> bool {
    let ok = |rest: &str| {
        !rest.is_empty()
            && rest
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    s.strip_prefix("ou-").is_some_and(ok) || s.strip_prefix("r-").is_some_and(ok)
}

impl Fleet {
    /// Validates the flags, then resolves them to accounts (Organizations calls only for --org and
    /// --ou). `command` names the AssumeRole session (`keyturn-audit`), so CloudTrail in each
    /// member account shows who came and why.
    pub async fn select(
        config: &SdkConfig,
        a: &AccountArgs,
        command: &str,
        github: &GitHubSettings,
    ) -> anyhow::Result<Self> {
        for id in a.accounts.iter().chain(&a.exclude) {
            if !is_account_id(id) {
                bail!(
                    "{id:?} is not an account id (12 digits): fix --account or --exclude-account"
                );
            }
        }
        for ou in &a.ous {
            if !is_ou_or_root(ou) {
                bail!("{ou:?} is not an OU id (ou-...) or a root id (r-...): fix --ou");
            }
        }
        if a.role_name.is_empty() || a.role_name.contains(':') {
            bail!(
                "--role-name {:?}: expected a role name such as keyturn-org-access",
                a.role_name
            );
        }
        let sts = Sts::from_config(config);
        let caller = sts
            .caller()
            .await
            .map_err(|e| anyhow::anyhow!("GetCallerIdentity failed, so the caller's own account is unknown: {e}; check the credentials and the endpoint"))?;
        let partition = caller.arn.split(':').nth(1).unwrap_or("aws").to_string();
        let mut found: BTreeMap<String, Account> = BTreeMap::new();
        if !a.selects() {
            found.insert(
                caller.account.clone(),
                Account {
                    id: caller.account.clone(),
                    name: None,
                },
            );
        } else {
            let org = Organization::from_config(config);
            let org_hint = "run from the organization's management account or a delegated administrator (organizations:ListAccounts, ListAccountsForParent, ListOrganizationalUnitsForParent), or name accounts with --account";
            // What Organizations lists for --org and each --ou, with where it was found.
            let mut listed = Vec::new();
            if a.org {
                let all = org.accounts().await.map_err(|e| {
                    anyhow::anyhow!("listing the organization's accounts failed: {e}; {org_hint}")
                })?;
                listed.extend(
                    all.into_iter()
                        .map(|acc| (acc, "in the organization".to_string())),
                );
            }
            for ou in &a.ous {
                let under = org.accounts_under(ou).await.map_err(|e| {
                    anyhow::anyhow!("listing the accounts under {ou} failed: {e}; {org_hint}")
                })?;
                listed.extend(under.into_iter().map(|acc| (acc, format!("under {ou}"))));
            }
            let mut names: BTreeMap<String, Option<String>> = BTreeMap::new();
            for (acc, place) in listed {
                names.insert(acc.id.clone(), acc.name.clone());
                if acc.active {
                    found.insert(
                        acc.id.clone(),
                        Account {
                            id: acc.id,
                            name: acc.name,
                        },
                    );
                } else {
                    eprintln!(
                        "keyturn: skipped account {} {place}: it is not ACTIVE",
                        acc.id
                    );
                }
            }
            for id in &a.accounts {
                let name = names.get(id).cloned().flatten();
                found.insert(
                    id.clone(),
                    Account {
                        id: id.clone(),
                        name,
                    },
                );
            }
        }
        for id in &a.exclude {
            found.remove(id);
        }
        if found.is_empty() {
            bail!("no account is selected: check --org, --ou, --account and --exclude-account");
        }
        Ok(Self {
            config: config.clone(),
            accounts: found.into_values().collect(),
            selected: a.selects(),
            caller: caller.arn,
            own: caller.account,
            partition,
            role_name: a.role_name.clone(),
            external_id: a.external_id.clone(),
            concurrency: a.account_concurrency,
            session: format!("keyturn-{}", command.replace(' ', "-")),
            sts,
            github: github.clone(),
        })
    }

    /// The caller's own account (reached with its own credentials).
    pub fn own_account(&self) -> &str {
        &self.own
    }

    /// The caller's own account's sinks (its own credentials): no other client is built.
    pub fn own_sinks(&self) -> Sinks {
        Sinks::from_config(&self.config, &self.github)
    }

    pub fn role_arn(&self, account: &str) -> String {
        format!(
            "arn:{}:iam::{account}:role/{}",
            self.partition, self.role_name
        )
    }

    /// How `account` is reached, for messages.
    fn via(&self, account: &str) -> String {
        if account == self.own {
            "with your own credentials".to_string()
        } else {
            format!("through {}", self.role_arn(account))
        }
    }

    /// Reaches one account: the caller's own with its configuration, any other by AssumeRole.
    pub async fn reach(&self, account: &Account, progress: bool) -> Result<Reached, String> {
        if account.id == self.own {
            return Ok(Reached {
                account: account.clone(),
                config: self.config.clone(),
                progress,
                github: self.github.clone(),
            });
        }
        let role = self.role_arn(&account.id);
        match AssumedRole::assume(self.sts.clone(), &role, &self.session, self.external_id.as_deref()).await {
            Ok(assumed) => Ok(Reached {
                account: account.clone(),
                config: keyturn_aws::role_config(&self.config, assumed),
                progress,
                github: self.github.clone(),
            }),
            Err(e) => Err(format!(
                "account {}: could not assume {role}: {e}; deploy the member role there (deploy/org/member-role.yaml, or the organization StackSet), check that its trust admits {}{}, or leave the account out with --exclude-account {}",
                account.label(),
                self.caller,
                if self.external_id.is_some() { " with this external id" } else { "" },
                account.id
            )),
        }
    }

    /// Runs `work` in every selected account. Without account flags it is the caller's account
    /// alone and its error is the command's; otherwise each account is reached and worked in, at
    /// most `--account-concurrency` at once behind a progress bar over accounts, and an account
    /// that fails becomes `R::account_failed` naming the account, the role and what to do.
    pub async fn run<R, F, Fut>(&self, work: F) -> anyhow::Result<Ran<R>>
    where
        R: AccountFailure + Send + 'static,
        F: Fn(Reached) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = anyhow::Result<Vec<R>>> + Send + 'static,
    {
        if !self.selected {
            let account = self.accounts.first().cloned().context("no account")?;
            let reached = self
                .reach(&account, true)
                .await
                .map_err(anyhow::Error::msg)?;
            let rows = work(reached).await?;
            return Ok(Ran {
                rows: rows
                    .into_iter()
                    .map(|row| in_account(&account, row))
                    .collect(),
                failed_accounts: 0,
                accounts: 1,
            });
        }
        let fleet = Arc::new(self.clone());
        let work = Arc::new(work);
        let total = self.accounts.len();
        let per_account = bulk(self.accounts.clone(), self.concurrency, true, move |account| {
            let (fleet, work) = (fleet.clone(), work.clone());
            async move {
                let result = match fleet.reach(&account, false).await {
                    Err(e) => Err(e),
                    Ok(reached) => work(reached).await.map_err(|e| {
                        format!(
                            "account {} ({}): {}; see what the role allows with keyturn org check --account {}",
                            account.label(),
                            fleet.via(&account.id),
                            crate::message(&e),
                            account.id
                        )
                    }),
                };
                (account, result)
            }
        })
        .await;
        let mut rows = Vec::new();
        let mut failed_accounts = 0;
        for ran in per_account {
            let (account, result) = match ran {
                Ok(ran) => ran,
                Err(account) => {
                    // An account a signal kept from starting is one row that says so.
                    rows.push(in_account(&account, R::not_started(None)));
                    continue;
                }
            };
            match result {
                Ok(r) => rows.extend(r.into_iter().map(|row| in_account(&account, row))),
                Err(e) => {
                    failed_accounts += 1;
                    rows.push(in_account(&account, R::account_failed(e)));
                }
            }
        }
        Ok(Ran {
            rows,
            failed_accounts,
            accounts: total,
        })
    }
}

fn in_account<R>(account: &Account, row: R) -> InAccount<R> {
    InAccount {
        account: account.id.clone(),
        account_name: account.name.clone(),
        row,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_before_anything_runs() {
        assert!(is_account_id("111122223333"));
        assert!(!is_account_id("11112222333"));
        assert!(!is_account_id("11112222333a"));
        assert!(is_ou_or_root("ou-ab12-cd34ef56"));
        assert!(is_ou_or_root("r-ab12"));
        assert!(!is_ou_or_root("ou-"));
        assert!(!is_ou_or_root("prod"));
        assert!(!is_ou_or_root("ou-AB12"));
    }
}
