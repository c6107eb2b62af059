//! Serializers: metadata to bytes and back.

use super::schema_entry;
use crate::error::{Error, Result};
use crate::metadata::Metadata;
use serde_json::{json, Value};

/// Turns metadata into the bytes a driver stores, and back.
pub trait Serializer: Send + Sync {
    /// Appends the encoding of `metadata` to `out`.
    fn serialize(&self, metadata: &Metadata, out: &mut Vec<u8>) -> Result<()>;
    /// Decodes one record (exactly the bytes one `serialize` call produced).
    fn deserialize(&self, input: &[u8]) -> Result<Metadata>;
    /// The JSON configuration persisted with the topic.
    fn metadata(&self) -> Value;
}

/// `{"type":"default"}`: an 8-byte little-endian length, then the compact JSON text.
#[derive(Debug, Default, Clone, Copy)]
pub struct DefaultSerializer;

pub(crate) fn encode_length_prefixed(metadata: &Metadata, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0u8; 8]);
    crate::json::write_compact(out, metadata.json());
    let len = (out.len() - start - 8) as u64;
    out[start..start + 8].copy_from_slice(&len.to_le_bytes());
}

pub(crate) fn decode_length_prefixed(input: &[u8]) -> Result<Metadata> {
    let decode_err = |reason: String| Error::Decode {
        what: "serialized metadata",
        reason,
    };
    let Some(prefix) = input.get(..8) else {
        return Err(decode_err(format!(
            "record of {} bytes is shorter than its 8-byte length prefix",
            input.len()
        )));
    };
    let len = u64::from_le_bytes(prefix.try_into().unwrap_or([0; 8]));
    let body = usize::try_from(len)
        .ok()
        .and_then(|l| input.get(8..8usize.checked_add(l)?))
        .ok_or_else(|| {
            decode_err(format!(
                "length prefix says {len} bytes but only {} follow",
                input.len() - 8
            ))
        })?;
    Metadata::parse_bytes(body).map_err(|e| decode_err(e.to_string()))
}

impl Serializer for DefaultSerializer {
    fn serialize(&self, metadata: &Metadata, out: &mut Vec<u8>) -> Result<()> {
        encode_length_prefixed(metadata, out);
        Ok(())
    }
    fn deserialize(&self, input: &[u8]) -> Result<Metadata> {
        decode_length_prefixed(input)
    }
    fn metadata(&self) -> Value {
        json!({"type": "default"})
    }
}

/// `{"type":"schema","schema":{...}}`: same bytes as the default serializer (the reference's
/// schema-driven binary encoding is disabled), but the schema is kept with the topic.
#[derive(Debug, Clone)]
pub struct SchemaSerializer {
    schema: Value,
}

impl SchemaSerializer {
    /// Builds it from its configuration, which must have a `"schema"` object.
    pub fn new(config: &Value) -> Result<Self> {
        Ok(SchemaSerializer {
            schema: schema_entry("serializer", "schema", config)?.clone(),
        })
    }
}

impl Serializer for SchemaSerializer {
    fn serialize(&self, metadata: &Metadata, out: &mut Vec<u8>) -> Result<()> {
        encode_length_prefixed(metadata, out);
        Ok(())
    }
    fn deserialize(&self, input: &[u8]) -> Result<Metadata> {
        decode_length_prefixed(input)
    }
    fn metadata(&self) -> Value {
        json!({"type": "schema", "schema": self.schema})
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::components::serializer_from_config;

    #[test]
    fn default_layout_and_round_trip() {
        let m = Metadata::new(json!({"b": 1, "a": [true, null, "é"]}));
        let mut out = Vec::new();
        DefaultSerializer.serialize(&m, &mut out).unwrap();
        let text = r#"{"a":[true,null,"é"],"b":1}"#.as_bytes();
        assert_eq!(&out[..8], &(text.len() as u64).to_le_bytes());
        assert_eq!(&out[8..], text);
        assert_eq!(DefaultSerializer.deserialize(&out).unwrap(), m);
    }

    #[test]
    fn decode_errors_are_reported() {
        assert!(DefaultSerializer.deserialize(b"abc").is_err());
        let mut bad = 100u64.to_le_bytes().to_vec();
        bad.extend_from_slice(b"{}");
        assert!(DefaultSerializer.deserialize(&bad).is_err());
        let mut garbage = 2u64.to_le_bytes().to_vec();
        garbage.extend_from_slice(b"{x");
        let e = DefaultSerializer.deserialize(&garbage).unwrap_err();
        assert!(matches!(e, Error::Decode { .. }));
    }

    #[test]
    fn factory() {
        assert!(
            serializer_from_config(&json!({"type": "schema", "schema": {"type": "object"}}))
                .is_ok()
        );
        assert!(serializer_from_config(&json!({"type": "schema"})).is_err());
        assert!(serializer_from_config(&json!({"type": "schema", "schema": "x"})).is_err());
        assert!(serializer_from_config(&json!({"type": "nope"})).is_err());
    }
}
