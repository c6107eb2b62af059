//! Validators: check an event before it is sent.

use super::eventbridge::EventbridgePattern;
use super::schema_entry;
use crate::data_view::DataView;
use crate::error::{Error, Result};
use crate::metadata::Metadata;
use serde_json::{json, Value};

/// Checks events before a producer sends them. Returning an error rejects the event: its push
/// future completes with that error and nothing is stored.
pub trait Validator: Send + Sync {
    /// Accepts (`Ok`) or rejects (normally [`Error::InvalidMetadata`]) one event.
    fn validate(&self, metadata: &Metadata, data: &DataView) -> Result<()>;
    /// The JSON configuration persisted with the topic (should contain `"type"`).
    fn metadata(&self) -> Value;
}

/// Accepts every event (`{"type":"default"}`).
#[derive(Debug, Default, Clone, Copy)]
pub struct DefaultValidator;

impl Validator for DefaultValidator {
    fn validate(&self, _: &Metadata, _: &DataView) -> Result<()> {
        Ok(())
    }
    fn metadata(&self) -> Value {
        json!({"type": "default"})
    }
}

/// Validates metadata against a JSON Schema (draft 7): `{"type":"schema","schema":{...}}`.
pub struct SchemaValidator {
    schema: Value,
    compiled: jsonschema::Validator,
}

impl std::fmt::Debug for SchemaValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SchemaValidator")
            .field("schema", &self.schema)
            .finish()
    }
}

impl SchemaValidator {
    /// Compiles the `"schema"` entry of `config`; a malformed schema is an error.
    pub fn new(config: &Value) -> Result<Self> {
        let schema = schema_entry("validator", "schema", config)?.clone();
        let compiled = jsonschema::draft7::new(&schema)
            .map_err(|e| Error::config("validator", format!("invalid JSON schema: {e}")))?;
        Ok(SchemaValidator { schema, compiled })
    }
}

impl Validator for SchemaValidator {
    fn validate(&self, metadata: &Metadata, _: &DataView) -> Result<()> {
        let errors: Vec<String> = self
            .compiled
            .iter_errors(metadata.json())
            .map(|e| format!("'{}' - '{}': {}", e.instance_path(), e.instance(), e))
            .collect();
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidMetadata(format!(
                "metadata does not comply with the required schema:\n{}",
                errors.join("\n")
            )))
        }
    }
    fn metadata(&self) -> Value {
        json!({"type": "schema", "schema": self.schema})
    }
}

/// Matches metadata against an AWS-EventBridge-like pattern: `{"type":"eventbridge","schema":P}`.
#[derive(Debug)]
pub struct EventbridgeValidator {
    pattern_json: Value,
    pattern: EventbridgePattern,
}

impl EventbridgeValidator {
    /// Compiles the pattern in the `"schema"` entry of `config`.
    pub fn new(config: &Value) -> Result<Self> {
        let obj = config
            .as_object()
            .ok_or_else(|| Error::config("validator", "expected a JSON object"))?;
        let p = obj.get("schema").ok_or_else(|| {
            Error::config(
                "validator",
                "the eventbridge validator expects a \"schema\" entry in its configuration",
            )
        })?;
        if !p.is_object() {
            return Err(Error::config(
                "validator",
                "the \"schema\" entry of an eventbridge validator must be a JSON object",
            ));
        }
        Ok(EventbridgeValidator {
            pattern: EventbridgePattern::compile(p)?,
            pattern_json: p.clone(),
        })
    }
}

impl Validator for EventbridgeValidator {
    fn validate(&self, metadata: &Metadata, _: &DataView) -> Result<()> {
        if self.pattern.matches(metadata.json()) {
            Ok(())
        } else {
            Err(Error::InvalidMetadata(
                "metadata does not satisfy the eventbridge pattern".into(),
            ))
        }
    }
    fn metadata(&self) -> Value {
        json!({"type": "eventbridge", "schema": self.pattern_json})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::components::validator_from_config;

    #[test]
    fn factory_rules() {
        assert!(validator_from_config(&json!({})).is_ok());
        assert!(validator_from_config(&json!(null)).is_ok());
        assert!(validator_from_config(&json!({"type": "default"})).is_ok());
        assert!(matches!(
            validator_from_config(&json!({"type": "unknown"})),
            Err(Error::UnknownComponent { .. })
        ));
        assert!(validator_from_config(&json!({"type": 3})).is_err());
        assert!(validator_from_config(&json!("x")).is_err());
        assert!(validator_from_config(&json!({"type": "schema"})).is_err());
        assert!(validator_from_config(&json!({"type": "schema", "schema": "no"})).is_err());
        assert!(validator_from_config(&json!({"type": "eventbridge"})).is_err());
        assert!(validator_from_config(&json!({"type": "eventbridge", "schema": "x"})).is_err());
        let eb = validator_from_config(
            &json!({"type": "eventbridge", "schema": {"source": ["my.app"], "detail-type": ["my-event"]}}),
        )
        .unwrap();
        let ok = Metadata::new(json!({"source": "my.app", "detail-type": "my-event"}));
        assert!(eb.validate(&ok, &DataView::new()).is_ok());
        let bad = Metadata::new(json!({"source": "other"}));
        assert!(matches!(
            eb.validate(&bad, &DataView::new()),
            Err(Error::InvalidMetadata(_))
        ));
    }

    #[test]
    fn schema_validator_reports_every_error() {
        let v = SchemaValidator::new(&json!({"schema": {
            "type": "object",
            "properties": {"energy": {"type": "number", "maximum": 100}, "name": {"type": "string"}},
            "required": ["energy"]
        }}))
        .unwrap();
        let empty = DataView::new();
        assert!(v
            .validate(&Metadata::new(json!({"energy": 3})), &empty)
            .is_ok());
        let err = v
            .validate(&Metadata::new(json!({"energy": 300, "name": 5})), &empty)
            .unwrap_err()
            .to_string();
        assert!(err.contains("/energy") && err.contains("/name"), "{err}");
        assert_eq!(
            v.metadata(),
            json!({"type": "schema", "schema": {
                "type": "object",
                "properties": {"energy": {"type": "number", "maximum": 100}, "name": {"type": "string"}},
                "required": ["energy"]
            }})
        );
        assert!(SchemaValidator::new(&json!({"schema": {"type": 12}})).is_err());
    }
}
