//! The bulk regions that carry a batch's metadata, data and descriptors.
//!
//! Mofka moves the contents of a batch with RDMA, never inside RPC arguments. Each kind of
//! content is laid out the same way: a *sizes* region of `N` little-endian `u64`, one per event,
//! followed by a *content* region holding the `N` entries back to back (an event without data
//! has size 0 and takes no room):
//!
//! ```text
//! [size 0][size 1] ... [size N-1][entry 0][entry 1] ... [entry N-1]
//! ```
//!
//! - producer → partition, metadata bulk: entries are the topic serializer's output for each
//!   event (default serializer: `u64` JSON length, then the JSON text);
//! - producer → partition, data bulk: entries are each event's data, all of its segments
//!   concatenated;
//! - partition → consumer: the same metadata layout, and a descriptor layout whose entries are
//!   [`DataDescriptor::save`] bytes telling the consumer where each event's data lives.
//!
//! The two regions may be separate bulk segments or one buffer; RPCs address them as two
//! windows (`metadata_sizes` then `metadata`, for instance). The functions here build and split
//! them; [`MemoryLocation`] decodes the location blob of Mofka's in-memory partitions.

use super::error::WireError;
use crate::components::Serializer;
use crate::descriptor::DataDescriptor;
use crate::metadata::Metadata;

/// Encodes `sizes` as the sizes region.
pub fn encode_sizes(sizes: &[u64]) -> Vec<u8> {
    sizes.iter().flat_map(|s| s.to_le_bytes()).collect()
}

/// Decodes a sizes region (its length must be a multiple of 8).
pub fn decode_sizes(region: &[u8]) -> Result<Vec<u64>, WireError> {
    if !region.len().is_multiple_of(8) {
        return Err(WireError::invalid(
            "sizes",
            region.len() - region.len() % 8,
            format!(
                "a sizes region of {} bytes is not a whole number of u64",
                region.len()
            ),
        ));
    }
    Ok(region
        .chunks_exact(8)
        .map(|c| {
            let mut a = [0u8; 8];
            a.copy_from_slice(c);
            u64::from_le_bytes(a)
        })
        .collect())
}

/// Builds both regions from the entries: `(sizes region, content region)`.
pub fn encode_entries<E: AsRef<[u8]>>(entries: &[E]) -> (Vec<u8>, Vec<u8>) {
    let sizes: Vec<u64> = entries.iter().map(|e| e.as_ref().len() as u64).collect();
    let content = entries
        .iter()
        .flat_map(|e| e.as_ref().iter().copied())
        .collect();
    (encode_sizes(&sizes), content)
}

/// Splits a content region into entries of the given sizes, which must cover it exactly.
pub fn split_entries<'a>(sizes: &[u64], content: &'a [u8]) -> Result<Vec<&'a [u8]>, WireError> {
    let mut out = Vec::with_capacity(sizes.len().min(content.len() + 1));
    let mut pos = 0usize;
    for (i, &size) in sizes.iter().enumerate() {
        let end = usize::try_from(size)
            .ok()
            .and_then(|s| pos.checked_add(s))
            .filter(|&end| end <= content.len());
        let Some(end) = end else {
            return Err(WireError::invalid(
                format!("entries[{i}]"),
                pos,
                format!(
                    "entry of {size} bytes goes past the end of the {}-byte content region",
                    content.len()
                ),
            ));
        };
        out.push(&content[pos..end]);
        pos = end;
    }
    if pos != content.len() {
        return Err(WireError::invalid(
            "entries",
            pos,
            format!(
                "the sizes add up to {pos} bytes but the content region has {}",
                content.len()
            ),
        ));
    }
    Ok(out)
}

/// Decodes both regions into entries.
pub fn decode_entries<'a>(
    sizes_region: &[u8],
    content: &'a [u8],
) -> Result<Vec<&'a [u8]>, WireError> {
    split_entries(&decode_sizes(sizes_region)?, content)
}

/// Splits one buffer holding `[count × u64][content]` into its two regions.
pub fn split_region(region: &[u8], count: u64) -> Result<(&[u8], &[u8]), WireError> {
    match count
        .checked_mul(8)
        .and_then(|n| usize::try_from(n).ok())
        .filter(|&n| n <= region.len())
    {
        Some(n) => Ok(region.split_at(n)),
        None => Err(WireError::invalid(
            "sizes",
            0,
            format!("{count} sizes do not fit in a {}-byte region", region.len()),
        )),
    }
}

/// Serializes each event's metadata with the topic's serializer and builds both regions.
pub fn encode_metadata(
    metadata: &[Metadata],
    serializer: &dyn Serializer,
) -> crate::error::Result<(Vec<u8>, Vec<u8>)> {
    let mut sizes = Vec::with_capacity(metadata.len());
    let mut content = Vec::new();
    for m in metadata {
        let start = content.len();
        serializer.serialize(m, &mut content)?;
        sizes.push((content.len() - start) as u64);
    }
    Ok((encode_sizes(&sizes), content))
}

/// Decodes both metadata regions with the topic's serializer.
pub fn decode_metadata(
    sizes_region: &[u8],
    content: &[u8],
    serializer: &dyn Serializer,
) -> Result<Vec<Metadata>, WireError> {
    let sizes = decode_sizes(sizes_region)?;
    let entries = split_entries(&sizes, content)?;
    let mut pos = 0usize;
    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.into_iter().enumerate() {
        let m = serializer
            .deserialize(e)
            .map_err(|err| WireError::invalid(format!("metadata[{i}]"), pos, err.to_string()))?;
        out.push(m);
        pos += e.len();
    }
    Ok(out)
}

/// Saves each descriptor and builds both regions.
pub fn encode_descriptors(descriptors: &[DataDescriptor]) -> (Vec<u8>, Vec<u8>) {
    let entries: Vec<Vec<u8>> = descriptors
        .iter()
        .map(|d| {
            let mut b = Vec::new();
            d.save(&mut b);
            b
        })
        .collect();
    encode_entries(&entries)
}

/// Decodes both descriptor regions. Each entry must hold exactly one saved descriptor; an empty
/// entry stands for "no data" ([`DataDescriptor::none`]), which the C++ client accepts although
/// Mofka's servers always send a full descriptor.
pub fn decode_descriptors(
    sizes_region: &[u8],
    content: &[u8],
) -> Result<Vec<DataDescriptor>, WireError> {
    let sizes = decode_sizes(sizes_region)?;
    let entries = split_entries(&sizes, content)?;
    let mut pos = 0usize;
    let mut out = Vec::with_capacity(entries.len());
    for (i, e) in entries.into_iter().enumerate() {
        let d = if e.is_empty() {
            DataDescriptor::none()
        } else {
            let field = || format!("descriptors[{i}]");
            let (d, used) = DataDescriptor::load(e)
                .map_err(|err| WireError::invalid(field(), pos, err.to_string()))?;
            if used != e.len() {
                return Err(WireError::invalid(
                    field(),
                    pos + used,
                    format!("{} bytes left over after the descriptor", e.len() - used),
                ));
            }
            d
        };
        out.push(d);
        pos += e.len();
    }
    Ok(out)
}

/// Location blob of an event stored by Mofka's `memory` partition manager: where the event's
/// data starts in the partition's data and how long it is (two `u64`, 16 bytes). Other
/// partition managers use other, opaque, layouts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MemoryLocation {
    /// Offset of the event's data in the partition's data.
    pub offset: u64,
    /// Size of the event's data.
    pub size: u64,
}

impl MemoryLocation {
    /// Decodes a 16-byte location blob.
    pub fn from_bytes(bytes: &[u8]) -> Option<MemoryLocation> {
        if bytes.len() != 16 {
            return None;
        }
        let mut a = [0u8; 8];
        let mut b = [0u8; 8];
        a.copy_from_slice(&bytes[..8]);
        b.copy_from_slice(&bytes[8..]);
        Some(MemoryLocation {
            offset: u64::from_le_bytes(a),
            size: u64::from_le_bytes(b),
        })
    }

    /// The 16-byte location blob.
    pub fn to_bytes(self) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..8].copy_from_slice(&self.offset.to_le_bytes());
        out[8..].copy_from_slice(&self.size.to_le_bytes());
        out
    }

    /// The descriptor a `memory` partition sends for this event.
    pub fn descriptor(self) -> DataDescriptor {
        DataDescriptor::new(self.to_bytes().to_vec(), self.size)
    }
}
