//! Name -> factory registries for the three component kinds.

use super::{
    partition_selector::DefaultPartitionSelector, serializer::DefaultSerializer,
    serializer::SchemaSerializer, validator::DefaultValidator, validator::EventbridgeValidator,
    validator::SchemaValidator, PartitionSelector, Serializer, Validator,
};
use crate::error::{Error, Result};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

/// A function that builds a component from its JSON configuration.
pub type Factory<T> = Arc<dyn Fn(&Value) -> Result<Arc<T>> + Send + Sync>;

pub(crate) type Registry<T> = RwLock<HashMap<String, Factory<T>>>;

fn make<T: ?Sized>(entries: Vec<(&str, Factory<T>)>) -> Registry<T> {
    RwLock::new(
        entries
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
    )
}

pub(crate) fn validators() -> &'static Registry<dyn Validator> {
    static R: OnceLock<Registry<dyn Validator>> = OnceLock::new();
    R.get_or_init(|| {
        make(vec![
            (
                "default",
                Arc::new(|_: &Value| Ok(Arc::new(DefaultValidator) as Arc<dyn Validator>)),
            ),
            (
                "schema",
                Arc::new(|c: &Value| Ok(Arc::new(SchemaValidator::new(c)?) as Arc<dyn Validator>)),
            ),
            (
                "eventbridge",
                Arc::new(|c: &Value| {
                    Ok(Arc::new(EventbridgeValidator::new(c)?) as Arc<dyn Validator>)
                }),
            ),
        ])
    })
}

pub(crate) fn selectors() -> &'static Registry<dyn PartitionSelector> {
    static R: OnceLock<Registry<dyn PartitionSelector>> = OnceLock::new();
    R.get_or_init(|| {
        make(vec![(
            "default",
            Arc::new(|_: &Value| {
                Ok(Arc::new(DefaultPartitionSelector::default()) as Arc<dyn PartitionSelector>)
            }),
        )])
    })
}

pub(crate) fn serializers() -> &'static Registry<dyn Serializer> {
    static R: OnceLock<Registry<dyn Serializer>> = OnceLock::new();
    R.get_or_init(|| {
        make(vec![
            (
                "default",
                Arc::new(|_: &Value| Ok(Arc::new(DefaultSerializer) as Arc<dyn Serializer>)),
            ),
            (
                "schema",
                Arc::new(
                    |c: &Value| Ok(Arc::new(SchemaSerializer::new(c)?) as Arc<dyn Serializer>),
                ),
            ),
        ])
    })
}

/// Registers (or replaces) a validator type under `name`.
pub fn register_validator(name: &str, factory: Factory<dyn Validator>) {
    insert(validators(), name, factory)
}

/// Registers (or replaces) a partition selector type under `name`.
pub fn register_partition_selector(name: &str, factory: Factory<dyn PartitionSelector>) {
    insert(selectors(), name, factory)
}

/// Registers (or replaces) a serializer type under `name`.
pub fn register_serializer(name: &str, factory: Factory<dyn Serializer>) {
    insert(serializers(), name, factory)
}

fn insert<T: ?Sized>(reg: &Registry<T>, name: &str, factory: Factory<T>) {
    reg.write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(name.to_string(), factory);
}

/// Builds a component from `config` following the reference's rules: `null`, `{}` or `[]` give the
/// default; a non-object is an error; no `"type"` gives the default; a non-string type is an error.
/// A `"name:library.so"` type (a C++ plugin) is looked up by its `name` part.
pub(crate) fn create<T: ?Sized>(
    reg: &Registry<T>,
    kind: &'static str,
    config: &Value,
) -> Result<Arc<T>> {
    let type_name = match config {
        Value::Null => "default",
        Value::Array(a) if a.is_empty() => "default",
        Value::Object(o) => match o.get("type") {
            None => "default",
            Some(Value::String(s)) => s.as_str(),
            Some(_) => {
                return Err(Error::config(
                    kind,
                    "invalid \"type\" field (expected a string)",
                ))
            }
        },
        _ => return Err(Error::config(kind, "expected a JSON object")),
    };
    let name = type_name.split(':').next().unwrap_or(type_name);
    let factory = reg
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .get(name)
        .cloned()
        .ok_or_else(|| Error::UnknownComponent {
            kind,
            name: name.to_string(),
        })?;
    factory(config)
}
