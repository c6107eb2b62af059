//! Event metadata: any JSON value.

use crate::error::{Error, Result};
use serde_json::Value;
use std::fmt;

/// The JSON part of an event (or of a component configuration).
///
/// It can hold any JSON value, not only objects. The default is an empty object, as in the C++ API.
/// [`Metadata::dump`] gives the same compact text as the C++ reference (sorted keys, nlohmann's
/// float layout), which is what the default serializer stores.
#[derive(Clone, PartialEq, Debug)]
pub struct Metadata(Value);

impl Default for Metadata {
    fn default() -> Self {
        Metadata(Value::Object(Default::default()))
    }
}

impl Metadata {
    /// Wraps a JSON value.
    pub fn new(value: Value) -> Self {
        Metadata(value)
    }

    /// Parses JSON text. The error names the line and column where parsing stopped.
    pub fn parse(text: &str) -> Result<Self> {
        serde_json::from_str(text)
            .map(Metadata)
            .map_err(|e| Error::Json(e.to_string()))
    }

    /// Parses JSON bytes (must be UTF-8).
    pub fn parse_bytes(bytes: &[u8]) -> Result<Self> {
        serde_json::from_slice(bytes)
            .map(Metadata)
            .map_err(|e| Error::Json(e.to_string()))
    }

    /// Makes a metadata holding the JSON *string* `text` (no parsing), like the C++ `parse=false`.
    pub fn from_string(text: impl Into<String>) -> Self {
        Metadata(Value::String(text.into()))
    }

    /// The JSON value.
    pub fn json(&self) -> &Value {
        &self.0
    }

    /// The JSON value, mutably.
    pub fn json_mut(&mut self) -> &mut Value {
        &mut self.0
    }

    /// Takes the JSON value out.
    pub fn into_json(self) -> Value {
        self.0
    }

    /// The content if this metadata is a JSON string, else an error.
    pub fn string(&self) -> Result<&str> {
        self.0
            .as_str()
            .ok_or_else(|| Error::InvalidArgument("metadata content is not a string".into()))
    }

    /// Compact JSON text, byte-identical to the C++ reference's `dump()`.
    pub fn dump(&self) -> String {
        crate::json::to_compact_string(&self.0)
    }

    /// Pretty JSON text with `indent` spaces, identical to the C++ reference's `dump(indent)`.
    pub fn dump_pretty(&self, indent: usize) -> String {
        crate::json::to_pretty_string(&self.0, indent)
    }
}

impl From<Value> for Metadata {
    fn from(v: Value) -> Self {
        Metadata(v)
    }
}

impl From<Metadata> for Value {
    fn from(m: Metadata) -> Self {
        m.0
    }
}

impl std::str::FromStr for Metadata {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Metadata::parse(s)
    }
}

impl fmt::Display for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.dump())
    }
}

/// Driver-defined information about one partition (empty object for the files driver).
pub type PartitionInfo = Metadata;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn default_is_empty_object() {
        assert_eq!(Metadata::default().dump(), "{}");
    }

    #[test]
    fn parse_and_dump_round_trip() {
        let m = Metadata::parse(r#"{"x":1,"y":2.3}"#).unwrap();
        assert_eq!(m.dump(), r#"{"x":1,"y":2.3}"#);
        let mut m2 = Metadata::default();
        m2.json_mut()["x"] = json!(1);
        m2.json_mut()["y"] = json!(2.3);
        assert_eq!(m2.dump(), m.dump());
    }

    #[test]
    fn string_metadata() {
        let m = Metadata::from_string("abcd");
        assert_eq!(m.dump(), "\"abcd\"");
        assert_eq!(m.string().unwrap(), "abcd");
        assert!(Metadata::parse("{}").unwrap().string().is_err());
    }

    #[test]
    fn parse_error_names_position() {
        let err = Metadata::parse(r#"{"x":1,"y":"#).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, Error::Json(_)));
        assert!(text.contains("line 1 column"), "{text}");
    }

    #[test]
    fn duplicate_keys_last_wins() {
        let m = Metadata::parse(r#"{"a":1,"a":2}"#).unwrap();
        assert_eq!(m.json()["a"], json!(2));
    }
}
