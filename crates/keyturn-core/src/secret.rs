//! Secret material and the secret value's shapes.
//!
//! A secret value is parsed once into [`SecretValue`], which remembers its [`Shape`] and every
//! field it does not own, so a rotation writes the new key back in the shape it found with the
//! other fields kept. Secret material ([`SecretText`], [`SecretKey`]) never prints in clear:
//! `Debug` is redacted, there is no `Display`, and the memory is zeroized on drop.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};

/// A whole secret value as stored in Secrets Manager (it contains a secret access key).
#[derive(Clone)]
pub struct SecretText(SecretString);

impl SecretText {
    pub fn new(text: impl Into<String>) -> Self {
        Self(SecretString::from(text.into()))
    }

    /// The clear text, for the one place that must send it (an SDK call).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretText([redacted])")
    }
}

/// A secret access key.
#[derive(Clone)]
pub struct SecretKey(SecretString);

impl SecretKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(SecretString::from(key.into()))
    }

    /// The clear key, for the one place that must use it (signing a request, writing the secret).
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey([redacted])")
    }
}

impl PartialEq for SecretKey {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

/// An IAM access key pair. Only the id is ever shown.
#[derive(Clone, PartialEq)]
pub struct AccessKey {
    pub id: String,
    pub secret: SecretKey,
}

impl AccessKey {
    pub fn new(id: impl Into<String>, secret: impl Into<String>) -> Self {
        Self {
            id: id.into(),
            secret: SecretKey::new(secret),
        }
    }
}

impl fmt::Debug for AccessKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessKey")
            .field("id", &self.id)
            .field("secret", &self.secret)
            .finish()
    }
}

/// The layouts of a secret value keyturn reads and writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// `{"UserName", "AccessKeyId", "SecretAccessKey"}`: what keyturn writes.
    Canonical,
    /// `{"accessKey", "secretKey"}`: user name given outside the value.
    AccessKeySecretKey,
    /// `{"username", "accesskey", "secretkey", "masterarn"}`.
    Lowercase,
    /// `{}`: a secret made empty for the first rotation to fill; written back canonical.
    Empty,
}

impl Shape {
    /// (user name, access key id, secret access key) field names; `None` where the shape has no
    /// user name field.
    fn fields(self) -> (Option<&'static str>, &'static str, &'static str) {
        match self {
            Shape::Canonical | Shape::Empty => (Some("UserName"), "AccessKeyId", "SecretAccessKey"),
            Shape::AccessKeySecretKey => (None, "accessKey", "secretKey"),
            Shape::Lowercase => (Some("username"), "accesskey", "secretkey"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Shape::Canonical => "canonical",
            Shape::AccessKeySecretKey => "accessKey/secretKey",
            Shape::Lowercase => "username/accesskey/secretkey",
            Shape::Empty => "empty",
        }
    }
}

/// Field names that name the identity whose key makes the IAM calls.
const MASTER_ARN_FIELDS: [&str; 2] = ["masterarn", "MasterArn"];

/// A parsed secret value.
#[derive(Clone)]
pub struct SecretValue {
    shape: Shape,
    user_name: Option<String>,
    key: Option<AccessKey>,
    master_arn: Option<String>,
    /// Every field keyturn does not own (kept verbatim, in order), plus the owned ones' positions.
    fields: Map<String, Value>,
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Other fields may be secret too: show their names only.
        let other: Vec<&String> = self.fields.keys().collect();
        f.debug_struct("SecretValue")
            .field("shape", &self.shape)
            .field("user_name", &self.user_name)
            .field("access_key_id", &self.key.as_ref().map(|k| &k.id))
            .field("master_arn", &self.master_arn)
            .field("fields", &other)
            .finish()
    }
}

/// Why a secret value could not be read. Never contains the value itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("the value is not JSON")]
    NotJson,
    #[error("the value is JSON but not an object")]
    NotObject,
    #[error(
        "the value matches none of the supported shapes (UserName/AccessKeyId/SecretAccessKey, \
         accessKey/secretKey, username/accesskey/secretkey/masterarn, or {{}})"
    )]
    UnknownShape,
    #[error("the value mixes fields of two shapes ({0} and {1})")]
    MixedShapes(&'static str, &'static str),
    #[error("field \"{0}\" is missing")]
    MissingField(&'static str),
    #[error("field \"{0}\" is not a non-empty string")]
    NotAString(String),
}

impl SecretValue {
    /// Parses a stored value. The error never repeats the value.
    pub fn parse(text: &SecretText) -> Result<Self, ShapeError> {
        let value: Value = serde_json::from_str(text.expose()).map_err(|_| ShapeError::NotJson)?;
        let Value::Object(mut fields) = value else {
            return Err(ShapeError::NotObject);
        };
        let shape = detect_shape(&fields)?;
        let (user_field, id_field, secret_field) = shape.fields();
        let user_name = match user_field {
            Some(name) => take_string(&mut fields, name, true)?,
            None => None,
        };
        let key = if shape == Shape::Empty {
            None
        } else {
            let id = take_string(&mut fields, id_field, false)?;
            let secret = take_string(&mut fields, secret_field, false)?;
            match (id, secret) {
                (Some(id), Some(secret)) => Some(AccessKey::new(id, secret)),
                (None, _) => return Err(ShapeError::MissingField(id_field)),
                (_, None) => return Err(ShapeError::MissingField(secret_field)),
            }
        };
        let mut master_arn = None;
        for name in MASTER_ARN_FIELDS {
            // Kept in `fields` (it is the user's field, written back as found).
            if let Some(v) = fields.get(name) {
                match v {
                    Value::String(s) if !s.is_empty() => master_arn = Some(s.clone()),
                    Value::String(_) | Value::Null => {}
                    _ => return Err(ShapeError::NotAString(name.to_string())),
                }
            }
        }
        // Keep the owned fields' positions so the rewrite preserves the layout.
        Ok(Self {
            shape,
            user_name,
            key,
            master_arn,
            fields,
        })
    }

    /// A new value in the canonical shape.
    pub fn canonical(user_name: &str, key: AccessKey) -> Self {
        Self {
            shape: Shape::Canonical,
            user_name: Some(user_name.to_string()),
            key: Some(key),
            master_arn: None,
            fields: Map::new(),
        }
    }

    pub fn shape(&self) -> Shape {
        self.shape
    }

    pub fn user_name(&self) -> Option<&str> {
        self.user_name.as_deref()
    }

    pub fn key(&self) -> Option<&AccessKey> {
        self.key.as_ref()
    }

    pub fn access_key_id(&self) -> Option<&str> {
        self.key.as_ref().map(|k| k.id.as_str())
    }

    /// The secret whose AWSCURRENT key makes the IAM calls, when the value names one.
    pub fn master_arn(&self) -> Option<&str> {
        self.master_arn.as_deref()
    }

    /// The same value holding `key` instead: same shape (the empty shape becomes canonical), other
    /// fields kept. `user_name` fills the user field where the shape has one and it was empty.
    pub fn with_key(&self, user_name: &str, key: AccessKey) -> Self {
        let shape = match self.shape {
            Shape::Empty => Shape::Canonical,
            other => other,
        };
        let user_name = shape.fields().0.map(|_| {
            self.user_name
                .clone()
                .unwrap_or_else(|| user_name.to_string())
        });
        Self {
            shape,
            user_name,
            key: Some(key),
            master_arn: self.master_arn.clone(),
            fields: self.fields.clone(),
        }
    }

    /// Serializes the value: the owned fields first, in the shape's order, then every other field.
    pub fn render(&self) -> SecretText {
        let (user_field, id_field, secret_field) = self.shape.fields();
        let mut out = Map::new();
        if let (Some(field), Some(user)) = (user_field, &self.user_name) {
            out.insert(field.to_string(), Value::String(user.clone()));
        }
        if let Some(key) = &self.key {
            out.insert(id_field.to_string(), Value::String(key.id.clone()));
            out.insert(
                secret_field.to_string(),
                Value::String(key.secret.expose().to_string()),
            );
        }
        for (name, value) in &self.fields {
            out.insert(name.clone(), value.clone());
        }
        // Serializing a map of strings and JSON values cannot fail.
        SecretText::new(Value::Object(out).to_string())
    }
}

fn detect_shape(fields: &Map<String, Value>) -> Result<Shape, ShapeError> {
    const SIGNATURES: [(Shape, &[&str]); 3] = [
        (
            Shape::Canonical,
            &["UserName", "AccessKeyId", "SecretAccessKey"],
        ),
        (Shape::AccessKeySecretKey, &["accessKey", "secretKey"]),
        (Shape::Lowercase, &["username", "accesskey", "secretkey"]),
    ];
    let mut found: Option<Shape> = None;
    for (shape, names) in SIGNATURES {
        if names.iter().any(|n| fields.contains_key(*n)) {
            if let Some(first) = found {
                return Err(ShapeError::MixedShapes(first.name(), shape.name()));
            }
            found = Some(shape);
        }
    }
    match found {
        Some(shape) => Ok(shape),
        None if fields.is_empty() => Ok(Shape::Empty),
        None if fields
            .keys()
            .all(|k| MASTER_ARN_FIELDS.contains(&k.as_str())) =>
        {
            // `{"masterarn": "..."}` alone: empty for key purposes, but the master is kept.
            Ok(Shape::Empty)
        }
        None => Err(ShapeError::UnknownShape),
    }
}

/// Removes `name` from `fields` and returns it as a string. Missing, null or (when
/// `allow_empty`) empty values give `None`.
fn take_string(
    fields: &mut Map<String, Value>,
    name: &str,
    allow_empty: bool,
) -> Result<Option<String>, ShapeError> {
    match fields.shift_remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.is_empty() && allow_empty => Ok(None),
        Some(Value::String(s)) if !s.is_empty() => Ok(Some(s)),
        Some(_) => Err(ShapeError::NotAString(name.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SecretValue, ShapeError> {
        SecretValue::parse(&SecretText::new(text))
    }

    fn reparse(v: &SecretValue) -> Value {
        serde_json::from_str(v.render().expose()).expect("rendered value is JSON")
    }

    #[test]
    fn canonical_round_trip_keeps_other_fields() {
        let v =
            parse(r#"{"UserName":"app1","AccessKeyId":"AKIA1","SecretAccessKey":"s1","team":"x"}"#)
                .expect("canonical parses");
        assert_eq!(v.shape(), Shape::Canonical);
        assert_eq!(v.user_name(), Some("app1"));
        assert_eq!(v.access_key_id(), Some("AKIA1"));
        let next = v.with_key("ignored", AccessKey::new("AKIA2", "s2"));
        assert_eq!(
            reparse(&next),
            serde_json::json!({"UserName":"app1","AccessKeyId":"AKIA2","SecretAccessKey":"s2","team":"x"})
        );
    }

    #[test]
    fn access_key_secret_key_shape_is_written_back_without_a_user_field() {
        let v = parse(r#"{"accessKey":"AKIA1","secretKey":"s1","region":"eu-west-1"}"#)
            .expect("parses");
        assert_eq!(v.shape(), Shape::AccessKeySecretKey);
        assert_eq!(v.user_name(), None);
        let next = v.with_key("app1", AccessKey::new("AKIA2", "s2"));
        assert_eq!(
            reparse(&next),
            serde_json::json!({"accessKey":"AKIA2","secretKey":"s2","region":"eu-west-1"})
        );
    }

    #[test]
    fn lowercase_shape_keeps_masterarn() {
        let v = parse(
            r#"{"username":"app1","accesskey":"AKIA1","secretkey":"s1","masterarn":"arn:aws:secretsmanager:us-east-1:1:secret:m"}"#,
        )
        .expect("parses");
        assert_eq!(v.shape(), Shape::Lowercase);
        assert_eq!(
            v.master_arn(),
            Some("arn:aws:secretsmanager:us-east-1:1:secret:m")
        );
        let next = v.with_key("app1", AccessKey::new("AKIA2", "s2"));
        assert_eq!(
            reparse(&next),
            serde_json::json!({"username":"app1","accesskey":"AKIA2","secretkey":"s2","masterarn":"arn:aws:secretsmanager:us-east-1:1:secret:m"})
        );
    }

    #[test]
    fn empty_becomes_canonical() {
        let v = parse("{}").expect("parses");
        assert_eq!(v.shape(), Shape::Empty);
        assert!(v.key().is_none());
        let next = v.with_key("app1", AccessKey::new("AKIA2", "s2"));
        assert_eq!(
            reparse(&next),
            serde_json::json!({"UserName":"app1","AccessKeyId":"AKIA2","SecretAccessKey":"s2"})
        );
    }

    #[test]
    fn bad_values_are_named_errors_without_the_value() {
        assert_eq!(parse("not json").err(), Some(ShapeError::NotJson));
        assert_eq!(parse("[1]").err(), Some(ShapeError::NotObject));
        assert_eq!(
            parse(r#"{"password":"hunter2"}"#).err(),
            Some(ShapeError::UnknownShape)
        );
        assert_eq!(
            parse(r#"{"AccessKeyId":"AKIA1"}"#).err(),
            Some(ShapeError::MissingField("SecretAccessKey"))
        );
        assert_eq!(
            parse(r#"{"AccessKeyId":"AKIA1","SecretAccessKey":7}"#).err(),
            Some(ShapeError::NotAString("SecretAccessKey".into()))
        );
        assert!(matches!(
            parse(r#"{"AccessKeyId":"A","SecretAccessKey":"s","accessKey":"B"}"#),
            Err(ShapeError::MixedShapes(_, _))
        ));
        let msg = parse(r#"{"SecretAccessKey":"sekrit-value"}"#)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(!msg.contains("sekrit-value"), "{msg}");
    }

    #[test]
    fn debug_never_shows_secret_material() {
        let v = parse(r#"{"UserName":"app1","AccessKeyId":"AKIA1","SecretAccessKey":"sekrit-value","pw":"other-secret"}"#)
            .expect("parses");
        let shown = format!("{v:?} {:?} {:?}", v.render(), v.key());
        assert!(!shown.contains("sekrit-value"), "{shown}");
        assert!(!shown.contains("other-secret"), "{shown}");
        assert!(shown.contains("AKIA1"));
    }
}
