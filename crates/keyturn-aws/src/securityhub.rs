//! The audit's findings in Security Hub over `aws-sdk-securityhub`: BatchImportFindings with the
//! product ARN of the hub account's default (custom) integration, GetFindings filtered to
//! keyturn's own active findings, BatchUpdateFindings to mark resolved ones RESOLVED.
//!
//! Security Hub takes a provider's severity and types from `FindingProviderFields` on an update
//! (the top-level fields only on creation), so both are set. With the default product ARN the
//! caller must be the finding's `AwsAccountId`: the hub account's.
//!
//! Every call runs on a deep-stacked thread (`stack::Deep`): the finding type is too large for an
//! ordinary thread's stack.

use aws_sdk_securityhub::types::{
    AwsIamAccessKeyDetails, AwsIamAccessKeyStatus, AwsSecurityFinding, AwsSecurityFindingFilters,
    AwsSecurityFindingIdentifier, Compliance, ComplianceStatus, FindingProviderFields,
    FindingProviderSeverity, Note, Partition, Recommendation, RecordState, Remediation, Resource,
    ResourceDetails, Severity, SeverityLabel, StringFilter, StringFilterComparison, Workflow,
    WorkflowStatus, WorkflowUpdate,
};
use aws_sdk_securityhub::Client;
use keyturn_core::error::rfc3339;
use std::sync::{Arc, OnceLock};

use keyturn_core::ports::{
    ApiError, ApiResult, HubFinding, HubImport, HubPage, HubResource, HubSeverity,
};
use time::OffsetDateTime;

use crate::errors::from_sdk;
use crate::stack::Deep;

/// The generator of every keyturn finding (GetFindings filters on it).
pub const GENERATOR: &str = "keyturn-audit";
/// The ASFF version keyturn writes.
const SCHEMA_VERSION: &str = "2018-10-08";

/// Security Hub, as the audit needs it.
#[derive(Debug, Clone)]
pub struct Hub {
    client: Client,
    region: String,
    deep: Arc<OnceLock<Result<Deep, String>>>,
}

impl Hub {
    pub fn new(client: Client, region: &str) -> Self {
        Self {
            client,
            region: region.to_string(),
            deep: Arc::default(),
        }
    }

    /// Runs `work` with a clone of this client on the deep-stacked thread (started on first use).
    async fn deep<T, F, Fut>(&self, work: F) -> ApiResult<T>
    where
        T: Send + 'static,
        F: FnOnce(Hub) -> Fut,
        Fut: std::future::Future<Output = ApiResult<T>> + Send + 'static,
    {
        let deep = self
            .deep
            .get_or_init(|| Deep::start("keyturn-securityhub").map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| {
                ApiError::Unavailable(format!(
                    "no thread for Security Hub's calls could start: {e}"
                ))
            })?;
        deep.run(work(self.clone())).await
    }

    /// The product ARN of `account`'s default integration in this region.
    pub fn product_arn(&self, account: &str) -> String {
        format!(
            "arn:{}:securityhub:{}:{account}:product/{account}/default",
            partition(&self.region),
            self.region
        )
    }

    /// BatchImportFindings: `findings` (at most 100) into `hub_account`'s hub.
    pub async fn import(&self, hub_account: &str, findings: &[HubFinding]) -> ApiResult<HubImport> {
        let (account, findings) = (hub_account.to_string(), findings.to_vec());
        self.deep(|hub| async move { hub.import_here(&account, &findings).await })
            .await
    }

    async fn import_here(
        &self,
        hub_account: &str,
        findings: &[HubFinding],
    ) -> ApiResult<HubImport> {
        let now = rfc3339(OffsetDateTime::now_utc());
        let asff: Vec<AwsSecurityFinding> = findings
            .iter()
            .map(|f| self.asff(hub_account, f, &now))
            .collect();
        let out = self
            .client
            .batch_import_findings()
            .set_findings(Some(asff))
            .send()
            .await
            .map_err(from_sdk)?;
        let failed: Vec<(String, String)> = out
            .failed_findings()
            .iter()
            .map(|f| {
                (
                    f.id().unwrap_or_default().to_string(),
                    format!(
                        "{}: {}",
                        f.error_code().unwrap_or("Error"),
                        f.error_message().unwrap_or("refused")
                    ),
                )
            })
            .collect();
        Ok(HubImport {
            imported: out.success_count().unwrap_or_default().max(0) as usize,
            failed,
        })
    }

    /// GetFindings: one page (100) of keyturn's active findings in `hub_account`'s hub whose id
    /// starts with `prefix`.
    pub async fn active(
        &self,
        hub_account: &str,
        prefix: &str,
        next: Option<String>,
    ) -> ApiResult<HubPage> {
        let (account, prefix) = (hub_account.to_string(), prefix.to_string());
        self.deep(|hub| async move { hub.active_here(&account, &prefix, next).await })
            .await
    }

    async fn active_here(
        &self,
        hub_account: &str,
        prefix: &str,
        next: Option<String>,
    ) -> ApiResult<HubPage> {
        let equals = |value: &str| {
            StringFilter::builder()
                .value(value)
                .comparison(StringFilterComparison::Equals)
                .build()
        };
        let filters = AwsSecurityFindingFilters::builder()
            .product_arn(equals(&self.product_arn(hub_account)))
            .generator_id(equals(GENERATOR))
            .record_state(equals("ACTIVE"))
            .id(StringFilter::builder()
                .value(prefix)
                .comparison(StringFilterComparison::Prefix)
                .build())
            .build();
        let out = self
            .client
            .get_findings()
            .filters(filters)
            .max_results(100)
            .set_next_token(next)
            .send()
            .await
            .map_err(from_sdk)?;
        // The filter again, here: what Security Hub (or a stand-in) returns is checked, not trusted.
        let ids = out
            .findings()
            .iter()
            .filter(|f| {
                f.generator_id() == Some(GENERATOR)
                    && f.record_state() != Some(&RecordState::Archived)
            })
            .filter_map(|f| f.id().filter(|id| id.starts_with(prefix)))
            .map(str::to_string)
            .collect();
        Ok(HubPage {
            ids,
            next: out
                .next_token()
                .filter(|t| !t.is_empty())
                .map(str::to_string),
        })
    }

    /// BatchUpdateFindings: the findings' workflow status RESOLVED.
    pub async fn resolved(&self, hub_account: &str, ids: &[String]) -> ApiResult<()> {
        let (account, ids) = (hub_account.to_string(), ids.to_vec());
        self.deep(|hub| async move { hub.resolved_here(&account, &ids).await })
            .await
    }

    async fn resolved_here(&self, hub_account: &str, ids: &[String]) -> ApiResult<()> {
        let product = self.product_arn(hub_account);
        let identifiers = ids
            .iter()
            .map(|id| {
                AwsSecurityFindingIdentifier::builder()
                    .id(id)
                    .product_arn(&product)
                    .build()
            })
            .collect();
        self.client
            .batch_update_findings()
            .set_finding_identifiers(Some(identifiers))
            .workflow(
                WorkflowUpdate::builder()
                    .status(WorkflowStatus::Resolved)
                    .build(),
            )
            .send()
            .await
            .map_err(from_sdk)?;
        Ok(())
    }

    /// The finding in ASFF.
    fn asff(&self, hub_account: &str, f: &HubFinding, now: &str) -> AwsSecurityFinding {
        let label = label(f.severity);
        let mut b = AwsSecurityFinding::builder()
            .schema_version(SCHEMA_VERSION)
            .id(&f.id)
            .product_arn(self.product_arn(hub_account))
            .product_name("keyturn")
            .company_name("keyturn")
            .generator_id(GENERATOR)
            .aws_account_id(hub_account)
            .region(&self.region)
            .set_types(Some(f.types.clone()))
            // When the issue began (the key's creation) where known: stable across runs.
            .created_at(f.first_observed.map_or_else(|| now.to_string(), rfc3339))
            .updated_at(now)
            .severity(
                Severity::builder()
                    .label(label.clone())
                    .original(f.severity.as_str())
                    .build(),
            )
            .finding_provider_fields(
                FindingProviderFields::builder()
                    .severity(
                        FindingProviderSeverity::builder()
                            .label(label)
                            .original(f.severity.as_str())
                            .build(),
                    )
                    .set_types(Some(f.types.clone()))
                    .build(),
            )
            .title(&f.title)
            .description(&f.description)
            .remediation(
                Remediation::builder()
                    .recommendation(Recommendation::builder().text(&f.remediation).build())
                    .build(),
            )
            .compliance(
                Compliance::builder()
                    .status(ComplianceStatus::from(f.compliance))
                    .build(),
            )
            .record_state(if f.active {
                RecordState::Active
            } else {
                RecordState::Archived
            })
            .set_resources(Some(f.resources.iter().map(|r| self.resource(r)).collect()));
        if let Some(first) = f.first_observed {
            b = b.first_observed_at(rfc3339(first));
        }
        if !f.active {
            // Honoured on creation only; `resolved` (BatchUpdateFindings) sets it on an update.
            b = b.workflow(Workflow::builder().status(WorkflowStatus::Resolved).build());
        }
        if let Some(text) = &f.note {
            b = b.note(
                Note::builder()
                    .text(text)
                    .updated_by("keyturn")
                    .updated_at(now)
                    .build(),
            );
        }
        for (k, v) in &f.fields {
            b = b.product_fields(k, v);
        }
        b.build()
    }

    fn resource(&self, r: &HubResource) -> Resource {
        let base = Resource::builder()
            .partition(Partition::from(partition(&self.region)))
            .region(&self.region);
        match r {
            HubResource::AccessKey {
                key_id,
                user,
                account,
                created,
                active,
            } => {
                let mut details = AwsIamAccessKeyDetails::builder()
                    .principal_name(user)
                    .principal_type("IAMUser")
                    .account_id(account)
                    .status(if *active {
                        AwsIamAccessKeyStatus::Active
                    } else {
                        AwsIamAccessKeyStatus::Inactive
                    });
                if let Some(c) = created {
                    details = details.created_at(rfc3339(*c));
                }
                base.r#type("AwsIamAccessKey")
                    .id(format!(
                        "AWS::IAM::AccessKey:{}",
                        key_id.as_deref().unwrap_or(user)
                    ))
                    .details(
                        ResourceDetails::builder()
                            .aws_iam_access_key(details.build())
                            .build(),
                    )
                    .build()
            }
            HubResource::User { arn } => base.r#type("AwsIamUser").id(arn).build(),
            HubResource::Secret { id } => base.r#type("AwsSecretsManagerSecret").id(id).build(),
        }
    }
}

fn label(s: HubSeverity) -> SeverityLabel {
    SeverityLabel::from(s.as_str())
}

/// The partition of a region.
fn partition(region: &str) -> &'static str {
    if region.starts_with("cn-") {
        "aws-cn"
    } else if region.starts_with("us-gov-") {
        "aws-us-gov"
    } else {
        "aws"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_securityhub::operation::batch_import_findings::BatchImportFindingsOutput;
    use aws_sdk_securityhub::types::ImportFindingsError;
    use aws_smithy_mocks::{mock, mock_client};

    fn finding(active: bool) -> HubFinding {
        HubFinding {
            id: "keyturn/111122223333/app1/AKIAEXAMPLE".into(),
            account: "111122223333".into(),
            severity: HubSeverity::High,
            types: vec![keyturn_core::audit::hub::TYPE.into()],
            title: "t".into(),
            description: "d".into(),
            compliance: "FAILED",
            active,
            resources: vec![HubResource::AccessKey {
                key_id: Some("AKIAEXAMPLE".into()),
                user: "app1".into(),
                account: "111122223333".into(),
                created: None,
                active: true,
            }],
            remediation: "r".into(),
            note: Some("Exempt".into()),
            fields: vec![("keyturn/finding".into(), "overdue".into())],
            first_observed: None,
        }
    }

    #[test]
    fn a_finding_is_asff_with_the_default_product_and_provider_fields() {
        let hub = Hub::new(mock_client!(aws_sdk_securityhub, []), "eu-west-1");
        let f = hub.asff("111122223333", &finding(true), "2026-12-03T00:00:00Z");
        assert_eq!(
            f.product_arn(),
            Some("arn:aws:securityhub:eu-west-1:111122223333:product/111122223333/default")
        );
        assert_eq!(f.aws_account_id(), Some("111122223333"));
        assert_eq!(f.generator_id(), Some(GENERATOR));
        assert_eq!(
            f.finding_provider_fields()
                .and_then(|p| p.severity())
                .and_then(|s| s.label()),
            Some(&SeverityLabel::High)
        );
        assert_eq!(f.record_state(), Some(&RecordState::Active));
        assert_eq!(
            f.workflow(),
            None,
            "a provider leaves an active finding's workflow alone"
        );
        assert_eq!(f.note().and_then(|n| n.text()), Some("Exempt"));
        assert_eq!(
            f.resources()[0].id(),
            Some("AWS::IAM::AccessKey:AKIAEXAMPLE")
        );
        let archived = hub.asff("111122223333", &finding(false), "2026-12-03T00:00:00Z");
        assert_eq!(archived.record_state(), Some(&RecordState::Archived));
        assert_eq!(
            archived.workflow().and_then(|w| w.status()),
            Some(&WorkflowStatus::Resolved)
        );
        assert_eq!(partition("cn-north-1"), "aws-cn");
    }

    #[tokio::test]
    async fn refused_findings_are_reported_with_why() {
        let rule = mock!(Client::batch_import_findings).then_output(|| {
            BatchImportFindingsOutput::builder()
                .success_count(0)
                .failed_count(1)
                .failed_findings(
                    ImportFindingsError::builder()
                        .id("keyturn/111122223333/app1/AKIAEXAMPLE")
                        .error_code("InvalidInput")
                        .error_message("bad")
                        .build(),
                )
                .build()
        });
        let hub = Hub::new(mock_client!(aws_sdk_securityhub, [&rule]), "eu-west-1");
        let out = hub
            .import("111122223333", &[finding(true)])
            .await
            .expect("answered");
        assert_eq!(out.imported, 0);
        assert_eq!(
            out.failed,
            [(
                "keyturn/111122223333/app1/AKIAEXAMPLE".to_string(),
                "InvalidInput: bad".to_string()
            )]
        );
    }
}
