//! The topic pipeline: validators, partition selectors and serializers.
//!
//! Each topic has one of each. They are configured by JSON documents (`{"type": "...", ...}`)
//! that drivers persist with the topic, exactly as the C++ reference does, and are rebuilt from
//! those documents when the topic is opened. Built-in types:
//!
//! | component | types |
//! |---|---|
//! | [`Validator`] | `default` (accepts all), `schema` (JSON Schema draft 7), `eventbridge` (pattern) |
//! | [`PartitionSelector`] | `default` (round robin, or `requested % n`) |
//! | [`Serializer`] | `default` and `schema` (8-byte little-endian length + compact JSON) |
//!
//! Applications add their own with [`register_validator`], [`register_partition_selector`] and
//! [`register_serializer`]; the name they register is the `type` of the persisted document.

pub(crate) mod eventbridge;
mod partition_selector;
mod registry;
mod serializer;
mod validator;

pub use partition_selector::{DefaultPartitionSelector, PartitionSelector};
pub use registry::{register_partition_selector, register_serializer, register_validator, Factory};
pub(crate) use serializer::{decode_length_prefixed_into, is_length_prefixed};
pub use serializer::{DefaultSerializer, Serializer};
pub use validator::{DefaultValidator, EventbridgeValidator, SchemaValidator, Validator};

use crate::error::{Error, Result};
use serde_json::Value;
use std::sync::Arc;

/// Builds a validator from its JSON configuration (`{"type": ...}`; no type means `default`).
pub fn validator_from_config(config: &Value) -> Result<Arc<dyn Validator>> {
    registry::create(registry::validators(), "validator", config)
}

/// Builds a partition selector from its JSON configuration.
pub fn partition_selector_from_config(config: &Value) -> Result<Arc<dyn PartitionSelector>> {
    registry::create(registry::selectors(), "partition selector", config)
}

/// Builds a serializer from its JSON configuration.
pub fn serializer_from_config(config: &Value) -> Result<Arc<dyn Serializer>> {
    registry::create(registry::serializers(), "serializer", config)
}

/// The three components of a topic.
#[derive(Clone)]
pub struct TopicComponents {
    /// Checks each event before it is sent.
    pub validator: Arc<dyn Validator>,
    /// Chooses each event's partition.
    pub partition_selector: Arc<dyn PartitionSelector>,
    /// Turns metadata into bytes and back.
    pub serializer: Arc<dyn Serializer>,
}

impl Default for TopicComponents {
    fn default() -> Self {
        TopicComponents {
            validator: Arc::new(DefaultValidator),
            partition_selector: Arc::new(DefaultPartitionSelector::default()),
            serializer: Arc::new(DefaultSerializer),
        }
    }
}

impl std::fmt::Debug for TopicComponents {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicComponents")
            .field("validator", &self.validator.metadata())
            .field("partition_selector", &self.partition_selector.metadata())
            .field("serializer", &self.serializer.metadata())
            .finish()
    }
}

impl TopicComponents {
    /// Builds the components from their configurations (each may be `null` for the default).
    pub fn from_configs(validator: &Value, selector: &Value, serializer: &Value) -> Result<Self> {
        Ok(TopicComponents {
            validator: validator_from_config(validator)?,
            partition_selector: partition_selector_from_config(selector)?,
            serializer: serializer_from_config(serializer)?,
        })
    }
}

/// Serialized form (default serializer) of a one-producer end-of-stream marker, for drivers that
/// translate a native end-of-stream record into the engine's marker.
#[cfg_attr(not(any(feature = "kafka", feature = "mofka")), allow(dead_code))]
pub(crate) fn encode_length_prefixed_for_marker(out: &mut Vec<u8>) {
    serializer::encode_length_prefixed(&crate::event::end_of_stream_marker(0, 1), out);
}

/// Reads the `"schema"` entry of a component configuration, which must be a JSON object.
pub(crate) fn schema_entry<'a>(
    kind: &'static str,
    type_name: &str,
    config: &'a Value,
) -> Result<&'a Value> {
    let obj = config
        .as_object()
        .ok_or_else(|| Error::config(kind, "provided configuration is not a JSON object"))?;
    let schema = obj.get("schema").ok_or_else(|| {
        Error::config(
            kind,
            format!("the {type_name} {kind} expects a \"schema\" entry in its configuration"),
        )
    })?;
    if !schema.is_object() {
        return Err(Error::config(
            kind,
            format!("the \"schema\" entry of a {type_name} {kind} must be a JSON object"),
        ));
    }
    Ok(schema)
}
