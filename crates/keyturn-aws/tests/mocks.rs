//! The adapters against smithy mocks: each call's request and its mapping, and how AWS errors map.

use aws_sdk_iam::operation::create_access_key::{CreateAccessKeyError, CreateAccessKeyOutput};
use aws_sdk_iam::operation::get_access_key_last_used::GetAccessKeyLastUsedOutput;
use aws_sdk_iam::operation::list_access_keys::{ListAccessKeysError, ListAccessKeysOutput};
use aws_sdk_iam::types::error::{LimitExceededException, NoSuchEntityException};
use aws_sdk_iam::types::{AccessKeyLastUsed, AccessKeyMetadata, StatusType};
use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretOutput;
use aws_sdk_secretsmanager::operation::get_secret_value::{
    GetSecretValueError, GetSecretValueOutput,
};
use aws_sdk_secretsmanager::operation::put_secret_value::PutSecretValueOutput;
use aws_sdk_secretsmanager::operation::update_secret_version_stage::UpdateSecretVersionStageOutput;
use aws_sdk_secretsmanager::types::error::ResourceNotFoundException;
use aws_sdk_secretsmanager::types::Tag;
use aws_sdk_sts::operation::get_caller_identity::GetCallerIdentityOutput;
use aws_smithy_mocks::{mock, mock_client, RuleMode};
use aws_smithy_types::DateTime;
use keyturn_aws::{IamKeys, SecretsManager, Sts};
use keyturn_core::ports::{
    AccessKeys, ApiError, IdentityCheck, KeyStatus, SecretStore, VersionRef,
};
use keyturn_core::{AccessKey, SecretText};

const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:keyturn/app1-AbCdEf";

fn iam_xml_error(code: &str, message: &str) -> Option<String> {
    Some(format!(
        "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message></Error><RequestId>r</RequestId></ErrorResponse>"
    ))
}

fn json_error(code: &str, message: &str) -> Option<String> {
    Some(format!(r#"{{"__type":"{code}","message":"{message}"}}"#))
}

#[tokio::test]
async fn describe_maps_versions_tags_and_rotation() {
    let rule = mock!(aws_sdk_secretsmanager::Client::describe_secret)
        .match_requests(|r| r.secret_id() == Some("keyturn/app1"))
        .then_output(|| {
            DescribeSecretOutput::builder()
                .arn(ARN)
                .name("keyturn/app1")
                .rotation_enabled(true)
                .version_ids_to_stages("v1", vec!["AWSCURRENT".into()])
                .version_ids_to_stages("v2", vec!["AWSPENDING".into()])
                .tags(Tag::builder().key("keyturn:user").value("app1").build())
                .build()
        });
    let sm = SecretsManager::new(mock_client!(aws_sdk_secretsmanager, [&rule]));
    let info = sm.describe("keyturn/app1").await.expect("describe");
    assert_eq!(info.name, "keyturn/app1");
    assert!(info.rotation_enabled);
    assert_eq!(info.version_with("AWSPENDING"), Some("v2"));
    assert_eq!(
        info.tags.get("keyturn:user").map(String::as_str),
        Some("app1")
    );
    assert_eq!(info.account_id(), Some("123456789012"));
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn list_tagged_filters_by_tag_and_keeps_what_list_secrets_returns() {
    use aws_sdk_secretsmanager::operation::list_secrets::ListSecretsOutput;
    use aws_sdk_secretsmanager::types::{RotationRulesType, SecretListEntry};
    let first = mock!(aws_sdk_secretsmanager::Client::list_secrets)
        .match_requests(|r| {
            r.next_token().is_none()
                && r.filters().first().map(|f| f.values())
                    == Some(&["keyturn:managed".to_string()][..])
        })
        .then_output(|| {
            ListSecretsOutput::builder()
                .secret_list(
                    SecretListEntry::builder()
                        .arn(ARN)
                        .name("keyturn/app1")
                        .rotation_enabled(true)
                        .rotation_rules(
                            RotationRulesType::builder()
                                .automatically_after_days(45)
                                .build(),
                        )
                        .secret_versions_to_stages("v1", vec!["AWSCURRENT".into()])
                        .secret_versions_to_stages("v0", vec!["AWSPREVIOUS".into()])
                        .tags(Tag::builder().key("keyturn:managed").value("true").build())
                        .build(),
                )
                .next_token("page2")
                .build()
        });
    let second = mock!(aws_sdk_secretsmanager::Client::list_secrets)
        .match_requests(|r| r.next_token() == Some("page2"))
        .then_output(|| {
            ListSecretsOutput::builder()
                .secret_list(SecretListEntry::builder().name("keyturn/app2").build())
                .build()
        });
    let sm = SecretsManager::new(mock_client!(
        aws_sdk_secretsmanager,
        RuleMode::MatchAny,
        [&first, &second]
    ));
    let found = sm.list_tagged("keyturn:managed", None).await.expect("list");
    let names: Vec<&str> = found.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(names, ["keyturn/app1", "keyturn/app2"], "every page");
    assert_eq!(found[0].version_with("AWSPREVIOUS"), Some("v0"));
    assert_eq!(found[0].rotation_days, Some(45));
    assert!(found[0].rotation_enabled && found[0].tags.contains_key("keyturn:managed"));
    assert!(found[1].versions.is_empty() && !found[1].rotation_enabled);
}

#[tokio::test]
async fn value_reads_by_label_or_id_and_treats_not_found_as_no_value() {
    let by_label = mock!(aws_sdk_secretsmanager::Client::get_secret_value)
        .match_requests(|r| r.version_stage() == Some("AWSCURRENT") && r.version_id().is_none())
        .then_output(|| GetSecretValueOutput::builder().secret_string("{}").build());
    let pending = mock!(aws_sdk_secretsmanager::Client::get_secret_value)
        .match_requests(|r| {
            r.version_id() == Some("tok") && r.version_stage() == Some("AWSPENDING")
        })
        .then_error(|| {
            GetSecretValueError::ResourceNotFoundException(
                ResourceNotFoundException::builder()
                    .message("no value")
                    .meta(meta("ResourceNotFoundException"))
                    .build(),
            )
        });
    let denied = mock!(aws_sdk_secretsmanager::Client::get_secret_value)
        .match_requests(|r| r.version_id() == Some("denied"))
        .then_http_response(|| http(400, json_error("AccessDeniedException", "not authorized")));
    let sm = SecretsManager::new(mock_client!(
        aws_sdk_secretsmanager,
        RuleMode::MatchAny,
        [&by_label, &pending, &denied]
    ));
    let current = sm
        .value("s", &VersionRef::Label("AWSCURRENT"))
        .await
        .expect("current");
    assert_eq!(
        current.map(|t| t.expose().to_string()),
        Some("{}".to_string())
    );
    let none = sm
        .value("s", &VersionRef::IdWithLabel("tok".into(), "AWSPENDING"))
        .await
        .expect("no value yet");
    assert!(none.is_none());
    let err = sm
        .value("s", &VersionRef::Id("denied".into()))
        .await
        .expect_err("denied");
    assert!(
        matches!(err, ApiError::AccessDenied(ref m) if m == "not authorized"),
        "{err:?}"
    );
}

#[tokio::test]
async fn put_pending_sends_the_token_and_awspending() {
    let rule = mock!(aws_sdk_secretsmanager::Client::put_secret_value)
        .match_requests(|r| {
            r.client_request_token() == Some("tok")
                && r.version_stages() == ["AWSPENDING".to_string()]
                && r.secret_string() == Some(r#"{"a":1}"#)
        })
        .then_output(|| PutSecretValueOutput::builder().build());
    let sm = SecretsManager::new(mock_client!(aws_sdk_secretsmanager, [&rule]));
    sm.put_pending("s", "tok", &SecretText::new(r#"{"a":1}"#))
        .await
        .expect("put");
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn move_label_moves_and_removes() {
    let rule = mock!(aws_sdk_secretsmanager::Client::update_secret_version_stage)
        .match_requests(|r| {
            r.version_stage() == Some("AWSCURRENT")
                && r.move_to_version_id() == Some("new")
                && r.remove_from_version_id() == Some("old")
        })
        .then_output(|| UpdateSecretVersionStageOutput::builder().build());
    let sm = SecretsManager::new(mock_client!(aws_sdk_secretsmanager, [&rule]));
    sm.move_label("s", "AWSCURRENT", Some("new"), Some("old"))
        .await
        .expect("move");
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn secrets_manager_throttling_and_server_errors_are_transient() {
    for (status, code, kind) in [
        (400, "ThrottlingException", "Throttled"),
        (500, "InternalServiceError", "ServiceUnavailable"),
        (400, "InvalidRequestException", "InvalidRequest"),
    ] {
        let rule = mock!(aws_sdk_secretsmanager::Client::describe_secret)
            .then_http_response(move || http(status, json_error(code, "m")));
        let client = mock_client!(aws_sdk_secretsmanager, RuleMode::MatchAny, [&rule], |c| c
            .retry_config(aws_sdk_secretsmanager::config::retry::RetryConfig::disabled()));
        let err = SecretsManager::new(client)
            .describe("s")
            .await
            .expect_err("fails");
        assert_eq!(err.kind(), kind, "{code}");
    }
}

#[tokio::test]
async fn iam_list_maps_status_and_dates() {
    let rule = mock!(aws_sdk_iam::Client::list_access_keys)
        .match_requests(|r| r.user_name() == Some("app1"))
        .then_output(|| {
            ListAccessKeysOutput::builder()
                .access_key_metadata(
                    AccessKeyMetadata::builder()
                        .access_key_id("AKIA1")
                        .status(StatusType::Active)
                        .create_date(DateTime::from_secs(1_700_000_000))
                        .build(),
                )
                .access_key_metadata(
                    AccessKeyMetadata::builder()
                        .access_key_id("AKIA2")
                        .status(StatusType::Inactive)
                        .build(),
                )
                .build()
                .expect("valid output")
        });
    let keys = IamKeys::new(mock_client!(aws_sdk_iam, [&rule]))
        .list("app1")
        .await
        .expect("list");
    assert_eq!(keys.len(), 2);
    assert_eq!(
        (keys[0].id.as_str(), keys[0].status),
        ("AKIA1", KeyStatus::Active)
    );
    assert_eq!(keys[0].created.unix_timestamp(), 1_700_000_000);
    assert_eq!(keys[1].status, KeyStatus::Inactive);
}

#[tokio::test]
async fn iam_errors_map_to_their_own_variants() {
    let missing = mock!(aws_sdk_iam::Client::list_access_keys)
        .match_requests(|r| r.user_name() == Some("ghost"))
        .then_error(|| {
            ListAccessKeysError::NoSuchEntityException(
                NoSuchEntityException::builder()
                    .message("The user with name ghost cannot be found.")
                    .meta(meta("NoSuchEntity"))
                    .build(),
            )
        });
    let throttled = mock!(aws_sdk_iam::Client::list_access_keys)
        .match_requests(|r| r.user_name() == Some("busy"))
        .then_http_response(|| http(400, iam_xml_error("Throttling", "Rate exceeded")));
    let denied = mock!(aws_sdk_iam::Client::list_access_keys)
        .match_requests(|r| r.user_name() == Some("locked"))
        .then_http_response(|| {
            http(
                403,
                iam_xml_error(
                    "AccessDenied",
                    "not authorized to perform iam:ListAccessKeys",
                ),
            )
        });
    let full = mock!(aws_sdk_iam::Client::create_access_key).then_error(|| {
        CreateAccessKeyError::LimitExceededException(
            LimitExceededException::builder()
                .message("Cannot exceed quota for AccessKeysPerUser: 2")
                .meta(meta("LimitExceeded"))
                .build(),
        )
    });
    let client = mock_client!(
        aws_sdk_iam,
        RuleMode::MatchAny,
        [&missing, &throttled, &denied, &full],
        |c| c.retry_config(aws_sdk_iam::config::retry::RetryConfig::disabled())
    );
    let iam = IamKeys::new(client);
    assert!(matches!(
        iam.list("ghost").await,
        Err(ApiError::NotFound(_))
    ));
    let t = iam.list("busy").await.expect_err("throttled");
    assert!(
        matches!(t, ApiError::Throttled(ref m) if m == "Rate exceeded"),
        "{t:?}"
    );
    assert!(t.is_transient());
    assert!(matches!(
        iam.list("locked").await,
        Err(ApiError::AccessDenied(_))
    ));
    assert!(matches!(
        iam.create("app1").await,
        Err(ApiError::LimitExceeded(_))
    ));
}

#[tokio::test]
async fn iam_last_used_treats_na_as_never() {
    let never = mock!(aws_sdk_iam::Client::get_access_key_last_used)
        .match_requests(|r| r.access_key_id() == Some("AKIANEW"))
        .then_output(|| {
            GetAccessKeyLastUsedOutput::builder()
                .access_key_last_used(
                    AccessKeyLastUsed::builder()
                        .service_name("N/A")
                        .region("N/A")
                        .build()
                        .expect("valid"),
                )
                .build()
        });
    let used = mock!(aws_sdk_iam::Client::get_access_key_last_used)
        .match_requests(|r| r.access_key_id() == Some("AKIAOLD"))
        .then_output(|| {
            GetAccessKeyLastUsedOutput::builder()
                .access_key_last_used(
                    AccessKeyLastUsed::builder()
                        .service_name("s3")
                        .region("eu-west-1")
                        .last_used_date(DateTime::from_secs(1_700_000_000))
                        .build()
                        .expect("valid"),
                )
                .build()
        });
    let iam = IamKeys::new(mock_client!(
        aws_sdk_iam,
        RuleMode::MatchAny,
        [&never, &used]
    ));
    let n = iam.last_used("AKIANEW").await.expect("never");
    assert_eq!((n.last_used, n.service, n.region), (None, None, None));
    let u = iam.last_used("AKIAOLD").await.expect("used");
    assert_eq!(u.service.as_deref(), Some("s3"));
    assert_eq!(u.last_used.map(|t| t.unix_timestamp()), Some(1_700_000_000));
}

#[tokio::test]
async fn iam_create_returns_the_key_without_exposing_it_in_debug() {
    let rule = mock!(aws_sdk_iam::Client::create_access_key).then_output(|| {
        CreateAccessKeyOutput::builder()
            .access_key(
                aws_sdk_iam::types::AccessKey::builder()
                    .user_name("app1")
                    .access_key_id("AKIANEW")
                    .secret_access_key("very-secret-material")
                    .status(StatusType::Active)
                    .build()
                    .expect("valid"),
            )
            .build()
    });
    let key = IamKeys::new(mock_client!(aws_sdk_iam, [&rule]))
        .create("app1")
        .await
        .expect("create");
    assert_eq!(key.id, "AKIANEW");
    assert_eq!(key.secret.expose(), "very-secret-material");
    assert!(!format!("{key:?}").contains("very-secret-material"));
}

#[tokio::test]
async fn sts_whoami_maps_identity_and_rejected_keys() {
    let ok = mock!(aws_sdk_sts::Client::get_caller_identity).then_output(|| {
        GetCallerIdentityOutput::builder()
            .account("123456789012")
            .arn("arn:aws:iam::123456789012:user/app1")
            .user_id("AIDA")
            .build()
    });
    let sts = Sts::new(mock_client!(aws_sdk_sts, [&ok]));
    let id = sts
        .whoami(&AccessKey::new("AKIA1", "s"))
        .await
        .expect("identity");
    assert_eq!(id.arn, "arn:aws:iam::123456789012:user/app1");

    let rejected = mock!(aws_sdk_sts::Client::get_caller_identity).then_http_response(|| {
        http(
            403,
            iam_xml_error(
                "InvalidClientTokenId",
                "The security token included in the request is invalid.",
            ),
        )
    });
    let sts = Sts::new(mock_client!(aws_sdk_sts, [&rejected]));
    let err = sts
        .whoami(&AccessKey::new("AKIA1", "s"))
        .await
        .expect_err("rejected");
    assert!(matches!(err, ApiError::InvalidCredentials(_)), "{err:?}");
    assert_eq!(
        rejected.num_calls(),
        1,
        "the rotation's backoff, not the SDK, retries a rejected key"
    );
}

/// The error metadata the SDK's deserializer attaches to a modeled error on the wire.
fn meta(code: &str) -> aws_smithy_types::error::ErrorMetadata {
    aws_smithy_types::error::ErrorMetadata::builder()
        .code(code)
        .build()
}

fn http(status: u16, body: Option<String>) -> aws_smithy_runtime_api::http::Response {
    aws_smithy_runtime_api::http::Response::new(
        aws_smithy_runtime_api::http::StatusCode::try_from(status).expect("valid status"),
        aws_smithy_types::body::SdkBody::from(body.unwrap_or_default()),
    )
}

#[tokio::test(start_paused = true)]
async fn the_credential_report_is_polled_until_complete() {
    use aws_sdk_iam::operation::generate_credential_report::GenerateCredentialReportOutput;
    use aws_sdk_iam::operation::get_credential_report::GetCredentialReportOutput;
    use aws_sdk_iam::types::ReportStateType;
    let generate = mock!(aws_sdk_iam::Client::generate_credential_report)
        .sequence()
        .output(|| {
            GenerateCredentialReportOutput::builder()
                .state(ReportStateType::Started)
                .build()
        })
        .times(2)
        .output(|| {
            GenerateCredentialReportOutput::builder()
                .state(ReportStateType::Complete)
                .build()
        })
        .build();
    let get = mock!(aws_sdk_iam::Client::get_credential_report).then_output(|| {
        GetCredentialReportOutput::builder()
            .content(aws_smithy_types::Blob::new("user,arn\n"))
            .build()
    });
    let client = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&generate, &get]);
    let started = tokio::time::Instant::now();
    let csv = keyturn_core::audit::fetch_report(
        &keyturn_aws::IamKeys::new(client),
        &keyturn_aws::SystemClock,
        std::time::Duration::from_secs(60),
    )
    .await
    .expect("report");
    assert_eq!(csv, b"user,arn\n");
    assert_eq!(generate.num_calls(), 3);
    // Backoff, not a fixed sleep: 0.25 s then 0.5 s.
    assert_eq!(started.elapsed(), std::time::Duration::from_millis(750));
}

#[tokio::test(start_paused = true)]
async fn a_report_that_never_completes_is_a_clear_timeout() {
    use aws_sdk_iam::operation::generate_credential_report::GenerateCredentialReportOutput;
    use aws_sdk_iam::types::ReportStateType;
    let generate = mock!(aws_sdk_iam::Client::generate_credential_report).then_output(|| {
        GenerateCredentialReportOutput::builder()
            .state(ReportStateType::Inprogress)
            .build()
    });
    let client = mock_client!(aws_sdk_iam, RuleMode::MatchAny, [&generate]);
    let err = keyturn_core::audit::fetch_report(
        &keyturn_aws::IamKeys::new(client),
        &keyturn_aws::SystemClock,
        std::time::Duration::from_secs(10),
    )
    .await
    .expect_err("times out");
    assert!(
        matches!(&err, ApiError::Other { code, message } if code == "ReportTimeout" && message.contains("--report-timeout")),
        "{err:?}"
    );
    assert!(
        generate.num_calls() >= 4 && generate.num_calls() <= 8,
        "bounded polling: {}",
        generate.num_calls()
    );
}

#[tokio::test]
async fn organization_accounts_are_read_to_the_last_page_and_marked_active_by_state() {
    use aws_sdk_organizations::operation::list_accounts::ListAccountsOutput;
    use aws_sdk_organizations::types::{Account, AccountState, AccountStatus};
    let first = mock!(aws_sdk_organizations::Client::list_accounts)
        .match_requests(|r| r.next_token().is_none())
        .then_output(|| {
            ListAccountsOutput::builder()
                .accounts(
                    Account::builder()
                        .id("111111111111")
                        .name("prod")
                        .state(AccountState::Active)
                        .build(),
                )
                .accounts(
                    Account::builder()
                        .id("222222222222")
                        .state(AccountState::Suspended)
                        .status(AccountStatus::Active)
                        .build(),
                )
                .next_token("p2")
                .build()
        });
    let second = mock!(aws_sdk_organizations::Client::list_accounts)
        .match_requests(|r| r.next_token() == Some("p2"))
        .then_output(|| {
            ListAccountsOutput::builder()
                .accounts(
                    Account::builder()
                        .id("333333333333")
                        .status(AccountStatus::Active)
                        .build(),
                )
                .build()
        });
    let org = keyturn_aws::Organization::new(mock_client!(
        aws_sdk_organizations,
        RuleMode::MatchAny,
        [&first, &second]
    ));
    let accounts = org.accounts().await.expect("accounts");
    let seen: Vec<(&str, bool)> = accounts.iter().map(|a| (a.id.as_str(), a.active)).collect();
    assert_eq!(
        seen,
        [
            ("111111111111", true),
            // State wins over the older Status where both are given.
            ("222222222222", false),
            ("333333333333", true)
        ]
    );
    assert_eq!(accounts[0].name.as_deref(), Some("prod"));
}

#[tokio::test]
async fn an_ous_accounts_include_those_of_its_nested_ous() {
    use aws_sdk_organizations::operation::list_accounts_for_parent::ListAccountsForParentOutput;
    use aws_sdk_organizations::operation::list_organizational_units_for_parent::ListOrganizationalUnitsForParentOutput;
    use aws_sdk_organizations::types::{Account, AccountState, OrganizationalUnit};
    let account = |id: &str| {
        Account::builder()
            .id(id)
            .state(AccountState::Active)
            .build()
    };
    let top_accounts = mock!(aws_sdk_organizations::Client::list_accounts_for_parent)
        .match_requests(|r| r.parent_id() == Some("ou-top"))
        .then_output(move || {
            ListAccountsForParentOutput::builder()
                .accounts(account("111111111111"))
                .build()
        });
    let nested_accounts = mock!(aws_sdk_organizations::Client::list_accounts_for_parent)
        .match_requests(|r| r.parent_id() == Some("ou-nested"))
        .then_output(move || {
            ListAccountsForParentOutput::builder()
                .accounts(account("222222222222"))
                .build()
        });
    let top_ous = mock!(aws_sdk_organizations::Client::list_organizational_units_for_parent)
        .match_requests(|r| r.parent_id() == Some("ou-top"))
        .then_output(|| {
            ListOrganizationalUnitsForParentOutput::builder()
                .organizational_units(OrganizationalUnit::builder().id("ou-nested").build())
                .build()
        });
    let nested_ous = mock!(aws_sdk_organizations::Client::list_organizational_units_for_parent)
        .match_requests(|r| r.parent_id() == Some("ou-nested"))
        .then_output(|| ListOrganizationalUnitsForParentOutput::builder().build());
    let org = keyturn_aws::Organization::new(mock_client!(
        aws_sdk_organizations,
        RuleMode::MatchAny,
        [&top_accounts, &nested_accounts, &top_ous, &nested_ous]
    ));
    let ids: Vec<String> = org
        .accounts_under("ou-top")
        .await
        .expect("accounts")
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert_eq!(ids, ["111111111111", "222222222222"]);
    assert_eq!(nested_ous.num_calls(), 1);
}

#[tokio::test]
async fn an_assumed_role_gives_its_first_credentials_then_assumes_again_when_asked() {
    use aws_credential_types::provider::ProvideCredentials;
    use aws_sdk_sts::operation::assume_role::AssumeRoleOutput;
    use aws_sdk_sts::types::Credentials;
    let assume = mock!(aws_sdk_sts::Client::assume_role)
        .match_requests(|r| {
            r.role_arn() == Some("arn:aws:iam::111111111111:role/keyturn-org-access")
                && r.role_session_name() == Some("keyturn-audit")
                && r.external_id() == Some("ext")
        })
        .then_output(|| {
            AssumeRoleOutput::builder()
                .credentials(
                    Credentials::builder()
                        .access_key_id("ASIA1")
                        .secret_access_key("session-secret")
                        .session_token("token")
                        .expiration(DateTime::from_secs(4_000_000_000))
                        .build()
                        .expect("credentials"),
                )
                .build()
        });
    let sts = Sts::new(mock_client!(aws_sdk_sts, RuleMode::MatchAny, [&assume]));
    let role = keyturn_aws::AssumedRole::assume(
        sts,
        "arn:aws:iam::111111111111:role/keyturn-org-access",
        "keyturn-audit",
        Some("ext"),
    )
    .await
    .expect("assumed");
    assert_eq!(assume.num_calls(), 1);
    let first = role.provide_credentials().await.expect("first");
    assert_eq!(first.access_key_id(), "ASIA1");
    assert_eq!(
        assume.num_calls(),
        1,
        "the proving call's credentials are used"
    );
    assert!(!format!("{role:?}{first:?}").contains("session-secret"));
    role.provide_credentials().await.expect("renewed");
    assert_eq!(
        assume.num_calls(),
        2,
        "asked again (the SDK's cache found them expiring)"
    );

    let denied = mock!(aws_sdk_sts::Client::assume_role).then_http_response(|| {
        http(
            403,
            iam_xml_error("AccessDenied", "not authorized to perform: sts:AssumeRole"),
        )
    });
    let sts = Sts::new(mock_client!(aws_sdk_sts, [&denied]));
    let err = keyturn_aws::AssumedRole::assume(sts, "arn:aws:iam::1:role/x", "keyturn-audit", None)
        .await
        .expect_err("denied");
    assert!(matches!(err, ApiError::AccessDenied(_)), "{err:?}");
}

#[tokio::test]
async fn a_probe_is_allowed_on_not_found_denied_on_access_denied_and_an_error_otherwise() {
    use keyturn_aws::probe::{Probe, Prober};
    let denied = mock!(aws_sdk_iam::Client::create_access_key).then_http_response(|| {
        http(
            403,
            iam_xml_error(
                "AccessDenied",
                "not authorized to perform: iam:CreateAccessKey",
            ),
        )
    });
    let missing = mock!(aws_sdk_iam::Client::update_access_key).then_http_response(|| {
        http(
            404,
            iam_xml_error("NoSuchEntity", "The user cannot be found."),
        )
    });
    let throttled = mock!(aws_sdk_iam::Client::delete_access_key)
        .then_http_response(|| http(400, iam_xml_error("Throttling", "Rate exceeded")));
    let iam = mock_client!(
        aws_sdk_iam,
        RuleMode::MatchAny,
        [&denied, &missing, &throttled]
    );
    let sm = mock_client!(aws_sdk_secretsmanager, []);
    let prober = Prober::from_clients(
        iam,
        sm,
        "keyturn-org-check-x",
        "keyturn/keyturn-org-check-x",
    );
    assert!(!prober
        .allowed(Probe::CreateAccessKey)
        .await
        .expect("answered"));
    assert!(prober
        .allowed(Probe::UpdateAccessKey)
        .await
        .expect("answered"));
    assert!(prober.allowed(Probe::DeleteAccessKey).await.is_err());
}

#[tokio::test]
async fn the_ssm_sink_puts_an_overwritten_secure_string_with_the_key_asked_for() {
    use aws_sdk_ssm::operation::put_parameter::PutParameterOutput;
    use aws_sdk_ssm::types::ParameterType;
    let rule = mock!(aws_sdk_ssm::Client::put_parameter)
        .match_requests(|r| {
            r.name() == Some("/keyturn/app1")
                && r.value() == Some(r#"{"k":"v"}"#)
                && r.r#type() == Some(&ParameterType::SecureString)
                && r.overwrite() == Some(true)
                && r.key_id() == Some("alias/app")
        })
        .then_output(|| PutParameterOutput::builder().version(2).build());
    let ssm = keyturn_aws::ssm::ParameterStore::new(mock_client!(aws_sdk_ssm, [&rule]));
    ssm.put(
        "/keyturn/app1",
        Some("alias/app"),
        &SecretText::new(r#"{"k":"v"}"#),
    )
    .await
    .expect("put");
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn an_event_eventbridge_refuses_is_an_error_and_the_detail_holds_ids_only() {
    use aws_sdk_eventbridge::operation::put_events::PutEventsOutput;
    use aws_sdk_eventbridge::types::PutEventsResultEntry;
    use keyturn_core::ports::KeyEvent;
    let event = KeyEvent {
        detail_type: KeyEvent::ROTATION,
        secret: "keyturn/app1".into(),
        secret_arn: ARN.into(),
        account: Some("123456789012".into()),
        user: "app1".into(),
        key_id: "AKIANEW".into(),
        previous_key_id: Some("AKIAOLD".into()),
        version: Some("v2".into()),
        action: None,
        sinks: vec!["ci".into()],
        restarted: Vec::new(),
        restart_failed: Vec::new(),
    };
    let accepted = mock!(aws_sdk_eventbridge::Client::put_events)
        .match_requests(|r| {
            let e = &r.entries()[0];
            e.source() == Some("keyturn")
                && e.detail_type() == Some("keyturn rotation")
                && e.resources() == [ARN.to_string()]
                && e.detail().is_some_and(|d| {
                    d.contains(r#""keyId":"AKIANEW""#) && d.contains(r#""previousKeyId":"AKIAOLD""#)
                })
        })
        .then_output(|| PutEventsOutput::builder().failed_entry_count(0).build());
    let bus = keyturn_aws::events::EventBus::new(mock_client!(aws_sdk_eventbridge, [&accepted]));
    bus.publish(&event).await.expect("published");
    let refused = mock!(aws_sdk_eventbridge::Client::put_events).then_output(|| {
        PutEventsOutput::builder()
            .failed_entry_count(1)
            .entries(
                PutEventsResultEntry::builder()
                    .error_code("AccessDeniedException")
                    .error_message("not authorized")
                    .build(),
            )
            .build()
    });
    let bus = keyturn_aws::events::EventBus::new(mock_client!(aws_sdk_eventbridge, [&refused]));
    let e = bus.publish(&event).await.expect_err("refused entry");
    assert_eq!(e.kind(), "AccessDenied");
}

#[tokio::test]
async fn a_restart_forces_a_new_deployment_and_the_primary_deployment_is_read_back() {
    use aws_sdk_ecs::operation::describe_services::DescribeServicesOutput;
    use aws_sdk_ecs::operation::update_service::UpdateServiceOutput;
    use aws_sdk_ecs::types::{Deployment, DeploymentRolloutState, Failure, Service};
    use keyturn_aws::ecs::Services;
    use keyturn_core::ports::RolloutState;
    let update = mock!(aws_sdk_ecs::Client::update_service)
        .match_requests(|r| {
            r.cluster() == Some("prod")
                && r.service() == Some("web")
                && r.force_new_deployment() == Some(true)
                && r.task_definition().is_none()
        })
        .then_output(|| UpdateServiceOutput::builder().build());
    let describe = mock!(aws_sdk_ecs::Client::describe_services)
        .match_requests(|r| r.cluster() == Some("prod") && r.services() == ["web"])
        .then_output(|| {
            DescribeServicesOutput::builder()
                .services(
                    Service::builder()
                        .service_name("web")
                        .desired_count(2)
                        .deployments(
                            Deployment::builder()
                                .id("ecs-svc/new")
                                .status("PRIMARY")
                                .rollout_state(DeploymentRolloutState::InProgress)
                                .running_count(1)
                                .created_at(DateTime::from_secs(1_800_000_000))
                                .build(),
                        )
                        .deployments(
                            Deployment::builder()
                                .id("ecs-svc/old")
                                .status("ACTIVE")
                                .running_count(1)
                                .created_at(DateTime::from_secs(1_700_000_000))
                                .build(),
                        )
                        .build(),
                )
                .build()
        });
    let missing = mock!(aws_sdk_ecs::Client::describe_services)
        .match_requests(|r| r.services() == ["gone"])
        .then_output(|| {
            DescribeServicesOutput::builder()
                .failures(
                    Failure::builder()
                        .arn("arn:aws:ecs:us-east-1:123456789012:service/prod/gone")
                        .reason("MISSING")
                        .build(),
                )
                .build()
        });
    let ecs = Services::new(mock_client!(
        aws_sdk_ecs,
        RuleMode::MatchAny,
        [&update, &describe, &missing]
    ));
    ecs.force_deployment("prod", "web").await.expect("restart");
    let rollout = ecs
        .rollout("prod", "web")
        .await
        .expect("read")
        .expect("primary");
    assert_eq!(rollout.id, "ecs-svc/new");
    assert_eq!(
        (rollout.state, rollout.old_tasks),
        (RolloutState::InProgress, 1)
    );
    let e = ecs.rollout("prod", "gone").await.expect_err("missing");
    assert!(
        matches!(e, ApiError::NotFound(ref m) if m.contains("MISSING") && m.contains("gone")),
        "{e}"
    );
    assert_eq!((update.num_calls(), describe.num_calls()), (1, 1));
}

#[tokio::test]
async fn a_notice_is_published_with_the_owner_and_kind_as_message_attributes() {
    use aws_sdk_sns::operation::publish::{PublishError, PublishOutput};
    use aws_sdk_sns::types::error::NotFoundException;
    use keyturn_aws::sns::Topics;
    use keyturn_core::ports::Notice;
    let notice = Notice {
        kind: Notice::ROTATED,
        owner: "team-a".into(),
        secret: "keyturn/app1".into(),
        account: Some("123456789012".into()),
        user: Some("app1".into()),
        title: "keyturn rotated keyturn/app1".into(),
        description: "Secret keyturn/app1 now holds key AKIANEW of user app1.".into(),
        next_steps: vec![],
        keywords: vec!["AKIANEW".into()],
    };
    let published = mock!(aws_sdk_sns::Client::publish)
        .match_requests(|r| {
            let attribute = |k: &str| {
                r.message_attributes()
                    .and_then(|a| a.get(k))
                    .and_then(|v| v.string_value())
                    .map(str::to_string)
            };
            r.topic_arn() == Some("arn:aws:sns:us-east-1:123456789012:notices")
                && attribute("owner").as_deref() == Some("team-a")
                && attribute("kind").as_deref() == Some("rotated")
                && r.subject() == Some("keyturn rotated keyturn/app1")
                && r.message()
                    .is_some_and(|m| m.contains(r#""source":"custom""#))
        })
        .then_output(|| PublishOutput::builder().message_id("m1").build());
    let gone = mock!(aws_sdk_sns::Client::publish)
        .match_requests(|r| r.topic_arn() == Some("arn:aws:sns:us-east-1:123456789012:gone"))
        .then_error(|| {
            PublishError::NotFoundException(
                NotFoundException::builder()
                    .message("Topic does not exist")
                    .meta(meta("NotFound"))
                    .build(),
            )
        });
    let sns = Topics::new(mock_client!(
        aws_sdk_sns,
        RuleMode::MatchAny,
        [&published, &gone]
    ));
    sns.publish("arn:aws:sns:us-east-1:123456789012:notices", &notice)
        .await
        .expect("published");
    let e = sns
        .publish("arn:aws:sns:us-east-1:123456789012:gone", &notice)
        .await
        .expect_err("no topic");
    assert_eq!(e.kind(), "NotFound", "{e}");
    assert_eq!(published.num_calls(), 1);
}
