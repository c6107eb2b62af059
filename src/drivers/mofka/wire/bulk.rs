//! Bulk handles and Mofka's `BulkRef`.

use super::codec::{Decoder, Encoder, WireMessage};
use super::error::WireError;
use super::WireVersion;

/// Bits of the flags word of a Mercury 2.4 bulk handle.
pub mod bulk_flags {
    /// The peer may read the memory.
    pub const READ_ONLY: u32 = 0x01;
    /// The peer may write the memory.
    pub const WRITE_ONLY: u32 = 0x02;
    /// The handle carries a copy of the memory's contents.
    pub const EAGER: u32 = 0x04;
    /// The handle is bound to the owner's address, which follows the network handles.
    pub const BIND: u32 = 0x20;
    /// All segments were registered as one network handle.
    pub const REGV: u32 = 0x40;
}

/// Serialized Mercury bulk handle, kept as opaque bytes.
///
/// A bulk handle describes memory that a peer may read or write with RDMA. On the wire it is
/// the output of Mercury's `hg_proc_hg_bulk_t`: a `u64` size, zero for a null handle, then that
/// many bytes. The codec keeps those bytes as they are, so decoding then encoding a message
/// reproduces it exactly; a transport hands them back to Mercury.
///
/// The bytes hold process-specific values (virtual addresses, memory-registration keys), so two
/// captures of "the same" message differ there. [`BulkHandle::describe`] parses the layout that
/// Mercury 2.4 produces, and [`BulkHandle::masked`] blanks the process-specific parts so that
/// handles can be compared by structure: total size, flags, segment sizes and, for read-only
/// handles small enough, the segment contents that Mercury copies into the handle ("eager"
/// mode).
///
/// Mercury 2.4 layout of the handle bytes (after the `u64` size):
///
/// | field | encoding |
/// |---|---|
/// | total length | `u64` |
/// | segment count | `u32` |
/// | flags | `u32`, see [`bulk_flags`] |
/// | segments | count × (`u64` address, `u64` length) |
/// | network handles | with [`bulk_flags::REGV`] or a single segment: a `u64` size then one handle; otherwise count × `u64` sizes, then the handles |
/// | bound address | only with [`bulk_flags::BIND`] (not supported by [`BulkHandle::describe`]) |
/// | eager contents | only with [`bulk_flags::EAGER`]: the bytes of every segment, in order |
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BulkHandle {
    bytes: Vec<u8>,
}

impl BulkHandle {
    /// The null handle (`HG_BULK_NULL`), encoded as a zero size.
    pub fn null() -> Self {
        BulkHandle::default()
    }

    /// A handle from the bytes Mercury serialized (without the leading `u64` size).
    pub fn from_serialized(bytes: impl Into<Vec<u8>>) -> Self {
        BulkHandle {
            bytes: bytes.into(),
        }
    }

    /// Whether this is the null handle.
    pub fn is_null(&self) -> bool {
        self.bytes.is_empty()
    }

    /// The serialized bytes (without the leading `u64` size).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Parses the bytes as Mercury 2.4 lays them out.
    pub fn describe(&self) -> Result<BulkDescription, WireError> {
        BulkDescription::parse(&self.bytes)
    }

    /// The same handle with every process-specific byte set to zero: segment addresses and the
    /// network handles (which hold addresses and registration keys). Sizes, flags and eager
    /// contents are kept. The null handle stays null.
    pub fn masked(&self) -> Result<BulkHandle, WireError> {
        if self.is_null() {
            return Ok(BulkHandle::null());
        }
        let mut d = self.describe()?;
        for s in &mut d.segments {
            s.address = 0;
        }
        for h in &mut d.network_handles {
            h.iter_mut().for_each(|b| *b = 0);
        }
        Ok(d.to_handle())
    }
}

impl WireMessage for BulkHandle {
    fn write(&self, enc: &mut Encoder<'_>) {
        enc.bytes(&self.bytes);
    }

    fn read(dec: &mut Decoder<'_>) -> Result<Self, WireError> {
        Ok(BulkHandle {
            bytes: dec.bytes("serialized")?,
        })
    }
}

/// One memory segment of a bulk handle, as seen by its owner.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BulkSegment {
    /// Virtual address in the owner's process.
    pub address: u64,
    /// Length in bytes.
    pub len: u64,
}

/// A parsed Mercury 2.4 bulk handle (see [`BulkHandle`] for the layout).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BulkDescription {
    /// Total number of bytes exposed.
    pub total_len: u64,
    /// Flags word ([`bulk_flags`]).
    pub flags: u32,
    /// The segments, in order.
    pub segments: Vec<BulkSegment>,
    /// The network-layer memory handles, opaque (their layout depends on the transport).
    pub network_handles: Vec<Vec<u8>>,
    /// The segment contents copied into the handle, back to back, when
    /// [`bulk_flags::EAGER`] is set.
    pub eager_data: Option<Vec<u8>>,
}

impl BulkDescription {
    /// Parses handle bytes (without the leading `u64` size); they must be consumed exactly.
    pub fn parse(bytes: &[u8]) -> Result<BulkDescription, WireError> {
        let mut dec = Decoder::new(bytes, WireVersion::CURRENT);
        let total_len = dec.u64("total_len")?;
        let count = dec.u32("segment_count")?;
        let at = dec.position();
        let flags = dec.u32("flags")?;
        let segments = dec.field("segments", |d| {
            let room = d.remaining() / 16;
            if count as usize > room {
                return Err(d.invalid("", d.position(), format!("{count} segments do not fit")));
            }
            let mut v = Vec::with_capacity(count as usize);
            for _ in 0..count {
                v.push(BulkSegment {
                    address: d.u64("address")?,
                    len: d.u64("len")?,
                });
            }
            Ok(v)
        })?;
        let seg_total = segments
            .iter()
            .try_fold(0u64, |acc, s| acc.checked_add(s.len));
        if seg_total != Some(total_len) {
            return Err(dec.invalid(
                "segments",
                at + 4,
                format!("segment lengths do not add up to the total length {total_len}"),
            ));
        }
        let one_handle = flags & bulk_flags::REGV != 0 || count == 1;
        let network_handles = dec.field("network_handles", |d| {
            let n = if one_handle { 1 } else { count as usize };
            if n > d.remaining() / 8 {
                return Err(d.invalid("", d.position(), format!("{n} handle sizes do not fit")));
            }
            let mut sizes = Vec::with_capacity(n);
            for _ in 0..n {
                sizes.push(d.u64("size")?);
            }
            sizes
                .into_iter()
                .map(|s| d.raw(s, "handle").map(<[u8]>::to_vec))
                .collect::<Result<Vec<_>, _>>()
        })?;
        if flags & bulk_flags::BIND != 0 {
            return Err(dec.invalid(
                "flags",
                at,
                "bound handles (with the owner's address) are not supported",
            ));
        }
        let eager_data = if flags & bulk_flags::EAGER != 0 {
            Some(dec.raw(total_len, "eager_data")?.to_vec())
        } else {
            None
        };
        dec.finish()?;
        Ok(BulkDescription {
            total_len,
            flags,
            segments,
            network_handles,
            eager_data,
        })
    }

    /// Serializes back to handle bytes (the inverse of [`BulkDescription::parse`]).
    pub fn to_handle(&self) -> BulkHandle {
        let mut out = Vec::new();
        let mut enc = Encoder::new(&mut out, WireVersion::CURRENT);
        enc.u64(self.total_len);
        enc.u32(self.segments.len() as u32);
        enc.u32(self.flags);
        for s in &self.segments {
            enc.u64(s.address);
            enc.u64(s.len);
        }
        for h in &self.network_handles {
            enc.u64(h.len() as u64);
        }
        for h in &self.network_handles {
            enc.raw(h);
        }
        if let Some(data) = &self.eager_data {
            enc.raw(data);
        }
        BulkHandle::from_serialized(out)
    }

    /// The eager contents split by segment, when the handle carries them.
    pub fn eager_segments(&self) -> Option<Vec<&[u8]>> {
        let data = self.eager_data.as_deref()?;
        let mut out = Vec::with_capacity(self.segments.len());
        let mut pos = 0usize;
        for s in &self.segments {
            let end = pos.checked_add(usize::try_from(s.len).ok()?)?;
            out.push(data.get(pos..end)?);
            pos = end;
        }
        Some(out)
    }
}

/// Mofka's reference to a window of a remote bulk handle: the handle, the window's offset and
/// size, and the Mercury address of the process that owns the memory (RDMA goes there, which
/// may not be the sender of the message).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BulkRef {
    /// The handle.
    pub handle: BulkHandle,
    /// First byte of the window.
    pub offset: u64,
    /// Size of the window.
    pub size: u64,
    /// Mercury address of the memory's owner (for example `ofi+tcp;ofi_rxm://10.0.0.1:1234`).
    pub address: String,
}

impl WireMessage for BulkRef {
    fn write(&self, enc: &mut Encoder<'_>) {
        self.handle.write(enc);
        enc.u64(self.offset);
        enc.u64(self.size);
        enc.string(&self.address);
    }

    fn read(dec: &mut Decoder<'_>) -> Result<Self, WireError> {
        Ok(BulkRef {
            handle: dec.get("handle")?,
            offset: dec.u64("offset")?,
            size: dec.u64("size")?,
            address: dec.string("address")?,
        })
    }
}
