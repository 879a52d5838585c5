//! AWS Organizations, read only: the organization's accounts, and the accounts under an OU and
//! its nested OUs. Every list is read to its last page.

use std::collections::BTreeMap;

use aws_sdk_organizations::types::{AccountState, AccountStatus};
use aws_sdk_organizations::Client;
use keyturn_core::ports::{ApiError, ApiResult};

use crate::errors::from_sdk;

/// One member account as Organizations lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrgAccount {
    pub id: String,
    pub name: Option<String>,
    /// ACTIVE (Organizations' `State`, or its older `Status` where `State` is absent).
    pub active: bool,
}

#[derive(Debug, Clone)]
pub struct Organization {
    client: Client,
}

fn account(a: &aws_sdk_organizations::types::Account) -> Option<OrgAccount> {
    let active = match (a.state(), a.status()) {
        (Some(state), _) => *state == AccountState::Active,
        (None, Some(status)) => *status == AccountStatus::Active,
        (None, None) => false,
    };
    Some(OrgAccount {
        id: a.id()?.to_string(),
        name: a.name().map(str::to_string),
        active,
    })
}

impl Organization {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    pub fn from_config(config: &aws_config::SdkConfig) -> Self {
        Self::new(Client::new(config))
    }

    /// Every account of the organization (ListAccounts, every page).
    pub async fn accounts(&self) -> ApiResult<Vec<OrgAccount>> {
        let mut pages = self.client.list_accounts().into_paginator().send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(from_sdk)?;
            out.extend(page.accounts().iter().filter_map(account));
        }
        Ok(out)
    }

    /// The accounts directly under `parent` (an OU or the root), every page.
    async fn accounts_for_parent(&self, parent: &str) -> ApiResult<Vec<OrgAccount>> {
        let mut pages = self
            .client
            .list_accounts_for_parent()
            .parent_id(parent)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(from_sdk)?;
            out.extend(page.accounts().iter().filter_map(account));
        }
        Ok(out)
    }

    /// The OUs directly under `parent`, every page.
    async fn ous_for_parent(&self, parent: &str) -> ApiResult<Vec<String>> {
        let mut pages = self
            .client
            .list_organizational_units_for_parent()
            .parent_id(parent)
            .into_paginator()
            .send();
        let mut out = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(from_sdk)?;
            out.extend(
                page.organizational_units()
                    .iter()
                    .filter_map(|ou| ou.id().map(str::to_string)),
            );
        }
        Ok(out)
    }

    /// Every account under `ou` and the OUs nested in it, each once, by id.
    pub async fn accounts_under(&self, ou: &str) -> ApiResult<Vec<OrgAccount>> {
        let mut found = BTreeMap::new();
        let mut queue = vec![ou.to_string()];
        // An OU tree is at most five levels deep below the root; a cycle is impossible, but a
        // bound keeps a misbehaving endpoint from looping forever.
        let mut visited = 0usize;
        while let Some(parent) = queue.pop() {
            visited += 1;
            if visited > 10_000 {
                return Err(ApiError::Other {
                    code: "TooManyOUs".into(),
                    message: format!("more than 10000 OUs under {ou}"),
                });
            }
            for a in self.accounts_for_parent(&parent).await? {
                found.insert(a.id.clone(), a);
            }
            queue.extend(self.ous_for_parent(&parent).await?);
        }
        Ok(found.into_values().collect())
    }
}
