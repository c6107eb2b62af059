//! Serializers: metadata to bytes and back.

use super::schema_entry;
use crate::error::{Error, Result};
use crate::metadata::Metadata;
use bytes::Bytes;
use serde_json::{json, Value};

/// Turns metadata into the bytes a driver stores, and back.
pub trait Serializer: Send + Sync {
    /// Appends the encoding of `metadata` to `out`.
    fn serialize(&self, metadata: &Metadata, out: &mut Vec<u8>) -> Result<()>;
    /// Decodes one record (exactly the bytes one `serialize` call produced).
    fn deserialize(&self, input: &[u8]) -> Result<Metadata>;
    /// Decodes one record held in a shared buffer. Serializers that can keep the text instead
    /// of building the value at once ([`Metadata::parse_shared`]) override it: on success they
    /// may take `input`'s bytes (leaving it empty), which saves counting one more holder of the
    /// buffer; on error they leave it as it was. `verified` says that the record is exactly what
    /// this library's writer stored through this serializer (a checksum matched), which a
    /// serializer may use to skip checks. The default calls [`Serializer::deserialize`].
    fn deserialize_shared(&self, input: &mut Bytes, verified: bool) -> Result<Metadata> {
        let _ = verified;
        self.deserialize(input)
    }
    /// The JSON configuration persisted with the topic. Every reader of the topic builds its
    /// serializer from it: one whose `"type"` names a built-in serializer (`"default"`,
    /// `"schema"`) is read as that one, in this process's consumers too.
    fn metadata(&self) -> Value;
}

/// `{"type":"default"}`: an 8-byte little-endian length, then the compact JSON text.
#[derive(Debug, Default, Clone, Copy)]
pub struct DefaultSerializer;

pub(crate) fn encode_length_prefixed(metadata: &Metadata, out: &mut Vec<u8>) {
    let start = out.len();
    out.extend_from_slice(&[0u8; 8]);
    metadata.write_compact(out);
    let len = (out.len() - start - 8) as u64;
    out[start..start + 8].copy_from_slice(&len.to_le_bytes());
}

pub(crate) fn decode_length_prefixed(input: &[u8]) -> Result<Metadata> {
    let body = length_prefixed_body(input)?;
    Metadata::parse_bytes(&input[body]).map_err(|e| Error::Decode {
        what: "serialized metadata",
        reason: e.to_string(),
    })
}

/// Whether `serializer` writes the built-in layout (the default and schema serializers): its
/// persisted configuration says so, and every other reader of the topic decodes its records
/// with the built-in code, so the consumer may too, inline, without the dynamic call.
pub(crate) fn is_length_prefixed(serializer: &dyn Serializer) -> bool {
    matches!(
        serializer.metadata().get("type").and_then(Value::as_str),
        Some("default" | "schema")
    )
}

/// [`decode_length_prefixed`] keeping the JSON text for later parsing: on success `input`'s
/// bytes move into the metadata (cut to the text); on error `input` is left as it was. The text
/// is checked to parse unless `verified` (this library wrote it from a JSON value).
pub(crate) fn decode_length_prefixed_shared(input: &mut Bytes, verified: bool) -> Result<Metadata> {
    let mut out = Metadata::unset();
    decode_length_prefixed_into(input, verified, &mut out)?;
    Ok(out)
}

/// [`decode_length_prefixed_shared`] writing the metadata into `out` (left as it was on error),
/// for callers that keep it in place: a decoded value returned and then moved is read back, as
/// wide loads, from fields just stored one by one, loads that wait for the stores (a stall per
/// event, a tenth of a consumer's time).
#[inline]
pub(crate) fn decode_length_prefixed_into(
    input: &mut Bytes,
    verified: bool,
    out: &mut Metadata,
) -> Result<()> {
    let body = length_prefixed_body(input)?;
    if !verified {
        Metadata::check_json(&input[body.clone()]).map_err(|e| Error::Decode {
            what: "serialized metadata",
            reason: e.to_string(),
        })?;
    }
    // Moved out before being cut, so that the cut is made on values in registers (the same
    // stall otherwise). Records are rarely longer than their text: that cut is made in place.
    if body.end < input.len() {
        input.truncate(body.end);
    }
    let mut text = std::mem::take(input);
    bytes::Buf::advance(&mut text, body.start);
    *out = Metadata::checked_text(text);
    Ok(())
}

/// Where the JSON text of a length-prefixed record lies in it.
fn length_prefixed_body(input: &[u8]) -> Result<std::ops::Range<usize>> {
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
    usize::try_from(len)
        .ok()
        .and_then(|l| 8usize.checked_add(l))
        .filter(|end| *end <= input.len())
        .map(|end| 8..end)
        .ok_or_else(|| {
            decode_err(format!(
                "length prefix says {len} bytes but only {} follow",
                input.len() - 8
            ))
        })
}

impl Serializer for DefaultSerializer {
    fn serialize(&self, metadata: &Metadata, out: &mut Vec<u8>) -> Result<()> {
        encode_length_prefixed(metadata, out);
        Ok(())
    }
    fn deserialize(&self, input: &[u8]) -> Result<Metadata> {
        decode_length_prefixed(input)
    }
    fn deserialize_shared(&self, input: &mut Bytes, verified: bool) -> Result<Metadata> {
        decode_length_prefixed_shared(input, verified)
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
    fn deserialize_shared(&self, input: &mut Bytes, verified: bool) -> Result<Metadata> {
        decode_length_prefixed_shared(input, verified)
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
    fn text_metadata_is_written_as_the_reference_writes_it() {
        // Text already in the writer's form is copied without building its value; any other
        // text is parsed and written in that form.
        for (given, stored, copied) in [
            (
                r#"{"a":[1,2.5],"b":"x\n"}"#,
                r#"{"a":[1,2.5],"b":"x\n"}"#,
                true,
            ),
            (r#" { "b" : 1, "a" : 2 } "#, r#"{"a":2,"b":1}"#, false),
            (r#"{"a":1.50,"b":"\/"}"#, r#"{"a":1.5,"b":"/"}"#, false),
        ] {
            let m = Metadata::parse_shared(Bytes::from(given)).unwrap();
            let mut out = Vec::new();
            DefaultSerializer.serialize(&m, &mut out).unwrap();
            assert_eq!(&out[8..], stored.as_bytes(), "{given}");
            assert_eq!(m.unparsed_text().is_some(), copied, "{given}");
            assert_eq!(m.dump(), stored);
        }
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
        // The shared decoding refuses the same records with the same messages, leaving the
        // record in place.
        for record in [&b"abc"[..], &bad, &garbage] {
            let mut input = Bytes::copy_from_slice(record);
            let shared = DefaultSerializer.deserialize_shared(&mut input, false);
            let copied = DefaultSerializer.deserialize(record);
            assert_eq!(
                shared.unwrap_err().to_string(),
                copied.unwrap_err().to_string()
            );
            assert_eq!(&input[..], record);
        }
        let mut good = 7u64.to_le_bytes().to_vec();
        good.extend_from_slice(b"{\"a\":1}trailing");
        let mut input = Bytes::from(good);
        let shared = DefaultSerializer
            .deserialize_shared(&mut input, false)
            .unwrap();
        assert!(input.is_empty(), "the text moved into the metadata");
        assert_eq!(shared.unparsed_text(), Some(&b"{\"a\":1}"[..]));
        assert_eq!(shared.json()["a"], 1);
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
