//! The EventBridge announcement over `aws-sdk-eventbridge`: one PutEvents per event, default bus.

use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use keyturn_core::ports::{ApiError, ApiResult, KeyEvent};

use crate::errors::{classify, from_sdk};

/// EventBridge's default bus.
#[derive(Debug, Clone)]
pub struct EventBus {
    client: Client,
}

impl EventBus {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// PutEvents with one entry: source `keyturn`, the event's detail type, its ids as the detail
    /// and the secret's ARN as the resource. An entry EventBridge refuses is an error.
    pub async fn publish(&self, event: &KeyEvent) -> ApiResult<()> {
        let detail = serde_json::to_string(event).map_err(|e| ApiError::Other {
            code: "Serialization".into(),
            message: e.to_string(),
        })?;
        let entry = PutEventsRequestEntry::builder()
            .source(KeyEvent::SOURCE)
            .detail_type(event.detail_type)
            .detail(detail)
            .resources(&event.secret_arn)
            .build();
        let out = self
            .client
            .put_events()
            .entries(entry)
            .send()
            .await
            .map_err(from_sdk)?;
        if out.failed_entry_count() > 0 {
            let failed = out.entries().iter().find(|e| e.error_code().is_some());
            return Err(classify(
                failed.and_then(|e| e.error_code()),
                failed
                    .and_then(|e| e.error_message())
                    .unwrap_or("the entry was refused"),
                400,
            ));
        }
        Ok(())
    }
}
