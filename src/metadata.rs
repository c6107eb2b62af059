//! Event metadata: any JSON value.

use crate::error::{Error, Result};
use bytes::Bytes;
use serde_json::Value;
use std::fmt;
use std::sync::OnceLock;

/// The JSON part of an event (or of a component configuration).
///
/// It can hold any JSON value, not only objects. The default is an empty object, as in the C++ API.
/// [`Metadata::dump`] gives the same compact text as the C++ reference (sorted keys, nlohmann's
/// float layout), which is what the default serializer stores.
///
/// Metadata read from a topic keeps its text and builds the JSON value the first time it is
/// asked for ([`Metadata::parse_shared`]): a consumer that looks at few events' metadata, or
/// only forwards events, pays for checking the text once and never for building values. The
/// text was checked when the event was read, so a malformed record is an error of the read, as
/// with eager parsing.
#[derive(Clone)]
pub struct Metadata {
    repr: Repr,
}

#[derive(Clone)]
enum Repr {
    /// Made from a value, or changed through [`Metadata::json_mut`] (no once-cell to set: that
    /// cost a synchronised call per metadata made).
    Value(Value),
    /// JSON text known to parse, and its value once built from it.
    Text { text: Bytes, value: OnceLock<Value> },
}

/// The value of JSON `text`, which was checked to parse or was written by this library from a
/// value (which may nest deeper than the parser's usual limit: the only way to fail here).
fn parse_text(text: &[u8]) -> Value {
    parse_value(text).unwrap_or_else(|_| {
        let mut de = serde_json::Deserializer::from_slice(text);
        de.disable_recursion_limit();
        serde::Deserialize::deserialize(&mut de).unwrap_or(Value::Null)
    })
}

impl PartialEq for Metadata {
    fn eq(&self, other: &Self) -> bool {
        self.json() == other.json()
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Metadata").field(self.json()).finish()
    }
}

impl Default for Metadata {
    fn default() -> Self {
        Metadata::new(Value::Object(Default::default()))
    }
}

/// Accepts exactly the JSON texts that parse into a [`Value`] (same recursion limit, same
/// number range, same string checks) without building one.
struct Checked;

struct CheckVisitor;

impl<'de> serde::de::Visitor<'de> for CheckVisitor {
    type Value = Checked;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> std::result::Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_i64<E>(self, _: i64) -> std::result::Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_u64<E>(self, _: u64) -> std::result::Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_f64<E>(self, _: f64) -> std::result::Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_str<E>(self, _: &str) -> std::result::Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_unit<E>(self) -> std::result::Result<Checked, E> {
        Ok(Checked)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }
    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Checked, A::Error> {
        while map.next_entry::<Checked, Checked>()?.is_some() {}
        Ok(Checked)
    }
}

impl<'de> serde::Deserialize<'de> for Checked {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(CheckVisitor)
    }
}

fn parse_value(bytes: &[u8]) -> Result<Value> {
    serde_json::from_slice(bytes).map_err(|e| Error::Json(e.to_string()))
}

impl Metadata {
    /// Wraps a JSON value.
    pub fn new(value: Value) -> Self {
        Metadata {
            repr: Repr::Value(value),
        }
    }

    /// A slot to be overwritten at once (it reads as null): unlike [`Metadata::default`], it
    /// builds no value.
    pub(crate) const fn unset() -> Self {
        Metadata {
            repr: Repr::Value(Value::Null),
        }
    }

    /// Parses JSON text. The error names the line and column where parsing stopped.
    pub fn parse(text: &str) -> Result<Self> {
        Self::parse_bytes(text.as_bytes())
    }

    /// Parses JSON bytes (must be UTF-8).
    pub fn parse_bytes(bytes: &[u8]) -> Result<Self> {
        parse_value(bytes).map(Metadata::new)
    }

    /// Checks that `text` is JSON that parses (the same checks and errors as
    /// [`Metadata::parse_bytes`]) and keeps it, sharing its buffer; the value is built the first
    /// time it is needed.
    pub fn parse_shared(text: Bytes) -> Result<Self> {
        Self::check_json(&text)?;
        Ok(Self::checked_text(text))
    }

    /// Checks that `text` parses into a JSON value, without building it.
    pub(crate) fn check_json(text: &[u8]) -> Result<()> {
        serde_json::from_slice::<Checked>(text)
            .map(|_| ())
            .map_err(|e| Error::Json(e.to_string()))
    }

    /// Metadata of `text`, which [`Metadata::check_json`] accepted, or which this library wrote
    /// from a JSON value.
    pub(crate) fn checked_text(text: Bytes) -> Self {
        Metadata {
            repr: Repr::Text {
                text,
                value: OnceLock::new(),
            },
        }
    }

    /// Makes a metadata holding the JSON *string* `text` (no parsing), like the C++ `parse=false`.
    pub fn from_string(text: impl Into<String>) -> Self {
        Metadata::new(Value::String(text.into()))
    }

    /// The JSON value.
    pub fn json(&self) -> &Value {
        match &self.repr {
            Repr::Value(v) => v,
            Repr::Text { text, value } => value.get_or_init(|| parse_text(text)),
        }
    }

    /// The JSON value, mutably.
    pub fn json_mut(&mut self) -> &mut Value {
        // The value may change: the text no longer describes it.
        if let Repr::Text { text, value } = &mut self.repr {
            let v = value.take().unwrap_or_else(|| parse_text(text));
            self.repr = Repr::Value(v);
        }
        match &mut self.repr {
            Repr::Value(v) => v,
            Repr::Text { .. } => unreachable!("made a value just above"),
        }
    }

    /// Takes the JSON value out.
    pub fn into_json(self) -> Value {
        match self.repr {
            Repr::Value(v) => v,
            Repr::Text { text, value } => value.into_inner().unwrap_or_else(|| parse_text(&text)),
        }
    }

    /// The JSON text this metadata was read from, while its value has not been built or
    /// changed (`None` for metadata made from a value).
    pub fn unparsed_text(&self) -> Option<&[u8]> {
        match &self.repr {
            Repr::Text { text, value } if value.get().is_none() => Some(text),
            _ => None,
        }
    }

    /// The content if this metadata is a JSON string, else an error.
    pub fn string(&self) -> Result<&str> {
        self.json()
            .as_str()
            .ok_or_else(|| Error::InvalidArgument("metadata content is not a string".into()))
    }

    /// Compact JSON text, byte-identical to the C++ reference's `dump()`.
    pub fn dump(&self) -> String {
        let mut out = Vec::with_capacity(64);
        self.write_compact(&mut out);
        // JSON text that parsed is UTF-8, and the writer writes only UTF-8.
        String::from_utf8(out).unwrap_or_else(|_| crate::json::to_compact_string(self.json()))
    }

    /// Appends the text of [`Metadata::dump`] to `out`. Metadata made from JSON text that is
    /// already in that form (compact, keys in order, numbers and escapes written as the writer
    /// writes them) copies the text without building its value.
    pub(crate) fn write_compact(&self, out: &mut Vec<u8>) {
        match &self.repr {
            Repr::Text { text, .. } if crate::json::is_compact_canonical(text) => {
                out.extend_from_slice(text)
            }
            _ => crate::json::write_compact(out, self.json()),
        }
    }

    /// Pretty JSON text with `indent` spaces, identical to the C++ reference's `dump(indent)`.
    pub fn dump_pretty(&self, indent: usize) -> String {
        crate::json::to_pretty_string(self.json(), indent)
    }
}

impl From<Value> for Metadata {
    fn from(v: Value) -> Self {
        Metadata::new(v)
    }
}

impl From<Metadata> for Value {
    fn from(m: Metadata) -> Self {
        m.into_json()
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
    fn shared_text_is_checked_at_once_and_parsed_on_first_use() {
        let text = r#"{"b":[1,2.5,"é"],"a":null}"#;
        let lazy = Metadata::parse_shared(Bytes::from_static(text.as_bytes())).unwrap();
        assert_eq!(lazy.unparsed_text(), Some(text.as_bytes()));
        let copy = lazy.clone();
        assert_eq!(lazy.json(), Metadata::parse(text).unwrap().json());
        assert_eq!(lazy.unparsed_text(), None, "the value is built now");
        assert_eq!(copy.unparsed_text(), Some(text.as_bytes()));
        assert_eq!(copy, lazy);
        assert_eq!(copy.dump(), r#"{"a":null,"b":[1,2.5,"é"]}"#);
        let mut changed = copy.clone();
        changed.json_mut()["a"] = json!(7);
        assert_eq!(changed.unparsed_text(), None);
        assert_eq!(changed.into_json()["a"], json!(7));
        assert_eq!(Value::from(copy)["b"][1], json!(2.5));
    }

    #[test]
    fn shared_text_is_refused_exactly_where_parsing_fails() {
        let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
        for bad in [
            "1e400",
            "\"\\ud800\"",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "[1 2]",
            "",
            "nul",
            "\"unterminated",
            deep.as_str(),
        ] {
            let eager = Metadata::parse(bad).map(|_| ());
            let lazy = Metadata::parse_shared(Bytes::copy_from_slice(bad.as_bytes())).map(|_| ());
            assert!(eager.is_err(), "{bad:?} parses");
            assert_eq!(
                lazy.unwrap_err().to_string(),
                eager.unwrap_err().to_string(),
                "{bad:?}"
            );
        }
        let invalid_utf8 = Bytes::from_static(b"\"\xff\"");
        assert!(Metadata::parse_shared(invalid_utf8).is_err());
        for good in [
            "0",
            "-1.5e3",
            "\"\\u00e9\\n\"",
            "{\"a\":{\"b\":[true,false,null]}}",
            "[]",
        ] {
            let lazy = Metadata::parse_shared(Bytes::copy_from_slice(good.as_bytes())).unwrap();
            assert_eq!(lazy, Metadata::parse(good).unwrap(), "{good:?}");
        }
    }

    #[test]
    fn text_written_from_a_value_deeper_than_the_parser_limit_still_reads() {
        let mut deep = json!(1);
        for _ in 0..300 {
            deep = json!([deep]);
        }
        let text = crate::json::to_compact_string(&deep);
        assert!(
            Metadata::parse(&text).is_err(),
            "deeper than the usual limit"
        );
        let md = Metadata::checked_text(Bytes::from(text));
        let mut v = md.json();
        let mut depth = 0;
        while let Some(inner) = v.get(0) {
            v = inner;
            depth += 1;
        }
        assert_eq!((depth, v), (300, &json!(1)));
    }

    #[test]
    fn duplicate_keys_last_wins() {
        let m = Metadata::parse(r#"{"a":1,"a":2}"#).unwrap();
        assert_eq!(m.json()["a"], json!(2));
    }
}
