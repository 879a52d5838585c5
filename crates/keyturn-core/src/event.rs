//! The rotation event Secrets Manager sends to the rotation function.

use serde_json::Value;

use crate::error::RotationError;

/// One of the four steps of Secrets Manager's rotation protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    Create,
    Set,
    Test,
    Finish,
}

impl Step {
    pub const ALL: [Step; 4] = [Step::Create, Step::Set, Step::Test, Step::Finish];

    /// The name Secrets Manager uses in the event.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::Create => "createSecret",
            Step::Set => "setSecret",
            Step::Test => "testSecret",
            Step::Finish => "finishSecret",
        }
    }

    pub fn parse(name: &str) -> Option<Step> {
        Step::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `{"Step": "...", "SecretId": "...", "ClientRequestToken": "..."}` (`RotationToken` may be present
/// and is not needed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationEvent {
    pub step: Step,
    pub secret_id: String,
    pub token: String,
}

/// Longest secret id (an ARN) or token accepted; Secrets Manager's own limits are 2048 and 64.
const MAX_FIELD_LEN: usize = 2048;

impl RotationEvent {
    /// Reads an event, rejecting anything that is not exactly what Secrets Manager sends.
    pub fn from_json(value: &Value) -> Result<Self, RotationError> {
        let bad = |reason: String| RotationError::BadEvent { reason };
        let Value::Object(fields) = value else {
            return Err(bad("it is not a JSON object".into()));
        };
        let text = |name: &str| -> Result<String, RotationError> {
            match fields.get(name) {
                Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_FIELD_LEN => {
                    Ok(s.clone())
                }
                Some(Value::String(s)) if s.is_empty() => Err(bad(format!("\"{name}\" is empty"))),
                Some(Value::String(_)) => Err(bad(format!(
                    "\"{name}\" is longer than {MAX_FIELD_LEN} characters"
                ))),
                Some(_) => Err(bad(format!("\"{name}\" is not a string"))),
                None => Err(bad(format!("\"{name}\" is missing"))),
            }
        };
        let step_name = text("Step")?;
        let step = Step::parse(&step_name).ok_or_else(|| {
            bad(format!(
                "\"Step\" is {:?}, not a rotation step",
                truncate(&step_name, 40)
            ))
        })?;
        Ok(Self {
            step,
            secret_id: text("SecretId")?,
            token: text("ClientRequestToken")?,
        })
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_the_event_secrets_manager_sends() {
        let ev = RotationEvent::from_json(&json!({
            "Step": "createSecret", "SecretId": "arn:aws:secretsmanager:us-east-1:123456789012:secret:k-AbCdEf",
            "ClientRequestToken": "6a12030a-8dc6-4981-b7e2-16639168b4c5", "RotationToken": "x"
        }))
        .expect("valid event");
        assert_eq!(ev.step, Step::Create);
        assert_eq!(ev.token, "6a12030a-8dc6-4981-b7e2-16639168b4c5");
    }

    #[test]
    fn rejects_malformed_events_with_the_reason() {
        let cases = [
            (json!([]), "not a JSON object"),
            (
                json!({"SecretId": "s", "ClientRequestToken": "t"}),
                "\"Step\" is missing",
            ),
            (
                json!({"Step": "dropSecret", "SecretId": "s", "ClientRequestToken": "t"}),
                "not a rotation step",
            ),
            (
                json!({"Step": "setSecret", "SecretId": 7, "ClientRequestToken": "t"}),
                "\"SecretId\" is not a string",
            ),
            (
                json!({"Step": "setSecret", "SecretId": "s", "ClientRequestToken": ""}),
                "\"ClientRequestToken\" is empty",
            ),
            (
                json!({"Step": "setSecret", "SecretId": "s".repeat(5000), "ClientRequestToken": "t"}),
                "longer than",
            ),
        ];
        for (input, expected) in cases {
            let err = RotationEvent::from_json(&input).expect_err("must be rejected");
            assert!(err.to_string().contains(expected), "{input}: {err}");
            assert_eq!(err.error_type(), "BadEvent");
        }
    }
}
