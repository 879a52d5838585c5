//! The one place that turns SDK errors into [`ApiError`]s and decides what is transient.

use aws_sdk_iam::error::ProvideErrorMetadata;
use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
use aws_smithy_runtime_api::client::result::SdkError;
use keyturn_core::ports::ApiError;

/// Classifies an SDK error. The SDK has already retried transient faults within its bounds.
pub fn from_sdk<E: ProvideErrorMetadata + std::error::Error + 'static>(
    err: SdkError<E, HttpResponse>,
) -> ApiError {
    match &err {
        SdkError::TimeoutError(_) => ApiError::Unavailable("the request timed out".into()),
        SdkError::DispatchFailure(f) => ApiError::Unavailable(if f.is_timeout() {
            "the request timed out before it was answered".to_string()
        } else if f.is_io() {
            "could not connect to the AWS endpoint (refused, unreachable or reset)".to_string()
        } else {
            // Raised before sending too: the credentials could not be resolved, for example.
            format!(
                "the request could not be sent ({})",
                aws_smithy_types::error::display::DisplayErrorContext(&err)
            )
        }),
        SdkError::ResponseError(_) => {
            ApiError::Unavailable("the response could not be read".into())
        }
        SdkError::ServiceError(e) => classify(
            e.err().code(),
            e.err().message().unwrap_or_default(),
            e.raw().status().as_u16(),
        ),
        // Raised before anything is sent (a missing region, an invalid endpoint): its cause is
        // configuration, never secret material.
        SdkError::ConstructionFailure(_) => ApiError::Other {
            code: "ConstructionFailure".into(),
            message: format!(
                "the request could not be built ({}); check the region and endpoint",
                aws_smithy_types::error::display::DisplayErrorContext(&err)
            ),
        },
        _ => ApiError::Other {
            code: "Unknown".into(),
            message: "unexpected SDK error".into(),
        },
    }
}

/// Maps an AWS error code (and HTTP status, for codes not listed) to a domain error.
pub fn classify(code: Option<&str>, message: &str, status: u16) -> ApiError {
    // AWS's messages end in a full stop; keyturn's sentences go on after them.
    let message = message.trim().trim_end_matches('.').to_string();
    let code = code.unwrap_or_default();
    // No code and no message (a region the endpoint does not serve, a proxy's error page): the
    // HTTP status is all there is. Only a gateway's 502-504 says the fault is passing, so a bare
    // 500 is not called transient.
    let bare = code.is_empty() && message.is_empty();
    let message = if bare {
        "the service answered with no error code or message".to_string()
    } else if message.is_empty() {
        format!("{code}, with no message")
    } else {
        message
    };
    match code {
        // ECS names the missing cluster or service; SNS a missing topic "NotFound".
        "NoSuchEntity"
        | "NoSuchEntityException"
        | "ResourceNotFoundException"
        | "ServiceNotFoundException"
        | "ClusterNotFoundException"
        | "NotFound"
        | "NotFoundException" => ApiError::NotFound(message),
        "LimitExceeded" | "LimitExceededException" => ApiError::LimitExceeded(message),
        // SNS says "AuthorizationError"; ECS "AccessDeniedException".
        "AccessDenied"
        | "AccessDeniedException"
        | "UnauthorizedOperation"
        | "AuthorizationError" => ApiError::AccessDenied(message),
        "InvalidClientTokenId"
        | "SignatureDoesNotMatch"
        | "UnrecognizedClientException"
        | "InvalidAccessKeyId"
        | "ExpiredToken"
        | "ExpiredTokenException"
        | "IncompleteSignature" => ApiError::InvalidCredentials(message),
        "Throttling"
        | "ThrottlingException"
        | "TooManyRequestsException"
        | "RequestLimitExceeded"
        | "RequestThrottled"
        | "Throttled" => ApiError::Throttled(message),
        "ServiceFailure"
        | "ServiceFailureException"
        | "InternalServiceError"
        | "InternalServiceErrorException"
        | "InternalFailure"
        | "ServiceUnavailable"
        | "ServiceUnavailableException"
        | "EntityTemporarilyUnmodifiable" => ApiError::Unavailable(message),
        "ResourceExistsException" => ApiError::AlreadyExists(message),
        "InvalidRequestException"
        | "InvalidParameterException"
        | "InvalidParameterValue"
        | "InvalidInput"
        | "EntityAlreadyExists"
        | "ServiceNotActiveException"
        | "SecretStageVersionMismatchException" => ApiError::InvalidRequest(message),
        _ if status == 429 => ApiError::Throttled(message),
        _ if status >= 500 && (!bare || (502..=504).contains(&status)) => {
            ApiError::Unavailable(message)
        }
        _ if status == 403 => ApiError::AccessDenied(message),
        other => ApiError::Other {
            code: if other.is_empty() {
                format!("HTTP {status}")
            } else {
                other.to_string()
            },
            message,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_without_code_or_message_is_named_and_not_called_transient() {
        let e = classify(None, "", 500);
        assert!(!e.is_transient(), "{e}");
        assert_eq!(
            e.to_string(),
            "HTTP 500: the service answered with no error code or message"
        );
        assert!(classify(None, "", 503).is_transient());
        assert_eq!(classify(None, "", 403).kind(), "AccessDenied");
        let named = classify(Some("ThrottlingException"), " ", 400);
        assert_eq!(
            named.to_string(),
            "throttled: ThrottlingException, with no message"
        );
    }

    #[test]
    fn codes_map_to_domain_errors() {
        let cases: [(&str, u16, &str); 20] = [
            ("ServiceNotFoundException", 400, "NotFound"),
            ("ClusterNotFoundException", 400, "NotFound"),
            ("NotFound", 404, "NotFound"),
            ("AuthorizationError", 403, "AccessDenied"),
            ("Throttled", 429, "Throttled"),
            ("ResourceExistsException", 400, "AlreadyExists"),
            ("NoSuchEntity", 404, "NotFound"),
            ("ResourceNotFoundException", 400, "NotFound"),
            ("LimitExceeded", 409, "LimitExceeded"),
            ("AccessDenied", 403, "AccessDenied"),
            ("AccessDeniedException", 400, "AccessDenied"),
            ("InvalidClientTokenId", 403, "InvalidCredentials"),
            ("SignatureDoesNotMatch", 403, "InvalidCredentials"),
            ("Throttling", 400, "Throttled"),
            ("ThrottlingException", 400, "Throttled"),
            ("ServiceFailure", 500, "ServiceUnavailable"),
            ("InternalServiceError", 500, "ServiceUnavailable"),
            ("InvalidRequestException", 400, "InvalidRequest"),
            ("SomethingNew", 503, "ServiceUnavailable"),
            ("SomethingNew", 400, "AwsError"),
        ];
        for (code, status, kind) in cases {
            assert_eq!(
                classify(Some(code), "m", status).kind(),
                kind,
                "{code} {status}"
            );
        }
        assert!(classify(Some("Throttling"), "", 400).is_transient());
        assert!(classify(None, "", 502).is_transient());
        assert!(!classify(Some("AccessDenied"), "", 403).is_transient());
        assert_eq!(
            classify(None, "x", 418),
            ApiError::Other {
                code: "HTTP 418".into(),
                message: "x".into()
            }
        );
    }
}
