//! Owners' notices over `aws-sdk-sns`: one Publish per notice, the owner and the notice's kind as
//! message attributes (what subscription filter policies match), the chat-shaped JSON as the
//! message.

use aws_sdk_sns::types::MessageAttributeValue;
use aws_sdk_sns::Client;
use keyturn_core::ports::{ApiError, ApiResult, Notice};

use crate::errors::from_sdk;

/// SNS, as notices need it.
#[derive(Debug, Clone)]
pub struct Topics {
    client: Client,
}

impl Topics {
    pub fn new(client: Client) -> Self {
        Self { client }
    }

    /// Publish to `topic`, with the `owner` and `kind` attributes.
    pub async fn publish(&self, topic: &str, notice: &Notice) -> ApiResult<()> {
        let attribute = |value: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()
                .map_err(|e| ApiError::InvalidRequest(format!("message attribute: {e}")))
        };
        self.client
            .publish()
            .topic_arn(topic)
            .subject(subject(&notice.title))
            .message(notice.message())
            .message_attributes("owner", attribute(&notice.owner)?)
            .message_attributes("kind", attribute(notice.kind)?)
            .send()
            .await
            .map_err(from_sdk)?;
        Ok(())
    }
}

/// An e-mail subscription's subject: SNS takes at most 100 printable ASCII characters.
fn subject(title: &str) -> String {
    let clean: String = title
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect();
    match clean.char_indices().nth(100) {
        Some((i, _)) => clean[..i].to_string(),
        None => clean,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_subject_is_what_sns_accepts() {
        assert_eq!(
            subject("keyturn rotated keyturn/app"),
            "keyturn rotated keyturn/app"
        );
        assert_eq!(subject("a\nb é").as_str(), "a?b ?");
        assert_eq!(subject(&"x".repeat(150)).len(), 100);
    }
}
