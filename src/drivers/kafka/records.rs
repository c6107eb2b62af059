//! The record layout shared with the C++ Octopus driver.

use super::END_MARKER;
use crate::error::{Error, Result};
use bytes::Bytes;

/// Encodes one event as an Octopus record value.
pub(super) fn encode_record(metadata: &[u8], data: &crate::data_view::DataView) -> Vec<u8> {
    let mut v = Vec::with_capacity(16 + metadata.len() + data.size());
    v.extend_from_slice(&(metadata.len() as u64).to_le_bytes());
    v.extend_from_slice(&(data.size() as u64).to_le_bytes());
    v.extend_from_slice(metadata);
    for s in data.segments() {
        v.extend_from_slice(s);
    }
    v
}

/// Decodes an Octopus record value into (metadata, data); `None` for an end-of-stream marker.
pub fn decode_record(
    value: Bytes,
    topic: &str,
    partition: usize,
    offset: u64,
) -> Result<Option<(Bytes, Bytes)>> {
    let bad = |why: String| Error::Decode {
        what: "kafka record",
        reason: format!("{topic} partition {partition} offset {offset}: {why}"),
    };
    if value.len() < 16 {
        return Err(bad(format!(
            "{} bytes, less than the 16-byte header",
            value.len()
        )));
    }
    let md = u64::from_le_bytes(value[..8].try_into().unwrap_or([0; 8]));
    let data = u64::from_le_bytes(value[8..16].try_into().unwrap_or([0; 8]));
    if md == END_MARKER && data == END_MARKER {
        return Ok(None);
    }
    let total = md.checked_add(data).and_then(|s| s.checked_add(16));
    if total != Some(value.len() as u64) {
        return Err(bad(format!(
            "header announces {md} metadata and {data} data bytes but the record has {}",
            value.len()
        )));
    }
    let md = md as usize;
    Ok(Some((value.slice(16..16 + md), value.slice(16 + md..))))
}
