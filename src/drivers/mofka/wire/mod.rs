//! Byte-exact codec for the messages of the Mofka protocol (pure Rust, no FFI).
//!
//! # What travels on the wire
//!
//! A Mofka client exchanges Mercury RPCs with three kinds of Mochi providers: Bedrock (service
//! discovery and provider creation), Yokan (the key/value database that stores topic
//! configuration) and the Mofka partitions themselves. Mercury prefixes every message with its
//! own headers (a 12-byte core header holding the RPC id, a 4-byte header when checksums are
//! off, and on some transports a network address); a client built on Mercury's `HG_Forward` never
//! sees them, and they are not part of what this module encodes. What this module encodes is the
//! **payload** that Mercury hands to the message's serialization callback, which is:
//!
//! 1. **The Margo header** ([`margo`]). A request starts with a `u64`: the id of the RPC inside
//!    whose handler this request was sent, or `0xffff` when it was sent from outside any handler.
//!    A response starts with an `i32` Mercury return code; when it is not zero nothing follows.
//! 2. **The arguments (or the response value)**, in one of two encodings depending on which
//!    library defined the RPC.
//!
//! **Thallium (Mofka and Bedrock RPCs)** serializes the tuple of C++ arguments with a binary
//! archive that copies every scalar in host byte order (little-endian on every machine Mofka runs
//! on), without alignment, padding or field tags:
//!
//! - fixed-width integers and `f64` take their natural size, `size_t` and `intptr_t` take 8
//!   bytes, and `bool` takes one byte (0 or 1);
//! - a string is its length as a `u64`, then its bytes, with no terminating NUL;
//! - a vector is its element count as a `u64`, then its elements one after the other;
//! - a struct is its fields in declaration order, with no framing and no version number;
//! - a Mercury bulk handle (`hg_bulk_t`) is its serialized size as a `u64` (zero for a null
//!   handle), then that many bytes produced by Mercury ([`BulkHandle`]); Mofka wraps it in a
//!   [`BulkRef`] that adds a window (offset, size) and the address of the process owning the
//!   memory;
//! - Mofka's `Result<T>` is a success flag followed by the value on success or by an error string
//!   on failure ([`MofkaResult`]); Bedrock's `RequestResult<T>` always carries the flag, the error
//!   string and the value ([`RequestResult`]), except `RequestResult<std::string>` which carries
//!   the flag and one string that is the value or the error ([`QueryConfigResponse`]);
//! - a `DataDescriptor` sent to a partition is written with
//!   [`DataDescriptor::save`](crate::descriptor::DataDescriptor::save), without a length prefix.
//!
//! **Mercury procs (Yokan RPCs)** are C structs whose fields are also copied raw and in order, with
//! three composite types: a byte buffer (`u64` size then bytes), a list of `u64` (`u64` count then
//! the values) and Mercury's `hg_string_t` ([`HgString`]: `u64` length *including* a terminating
//! NUL, the bytes and the NUL, then two flag bytes; a null string is a zero length alone).
//!
//! # RPC ids
//!
//! Margo names every RPC by a 64-bit id: the 32-bit Jenkins ("lookup2") hash of the registered
//! name in the high half and the target provider id in the low 16 bits ([`rpc_id`]). A partition
//! with provider id 5 is reached at `rpc_id("mofka_producer_send_batch", 5)`; Mofka's server calls
//! the consumer back with `mofka_consumer_recv_batch` on provider id 0.
//!
//! # Bulk regions
//!
//! Event metadata, event data and data descriptors never travel inside RPC arguments: they sit
//! in memory exposed through bulk handles, laid out as `[N × u64 sizes][the N entries back to
//! back]` ([`layout`]). Metadata entries are the bytes of the topic's serializer (by default a
//! `u64` length then the JSON text), descriptor entries are `DataDescriptor::save` bytes.
//!
//! # Protocol versions
//!
//! Mofka changed one message between 0.8 and 0.9: `mofka_producer_send_batch` gained an
//! `ack_early` flag between `count` and the metadata bulk. The two layouts are incompatible, so
//! encoding and decoding take a [`WireVersion`]; the plain [`WireMessage::encode`] and
//! [`WireMessage::decode`] use [`WireVersion::CURRENT`] (0.9).
//!
//! # Using the codec
//!
//! Every message type implements [`WireMessage`]: `encode` appends its bytes to a buffer and
//! `decode` parses a buffer that must contain exactly one message. Decoding never panics; errors
//! ([`WireError`]) name the field (as a dotted path) and the byte offset where parsing stopped.
//! [`Request`] and [`Response`] add the Margo header, and [`AnyRequest`] / [`AnyResponse`]
//! dispatch on an [`Rpc`] for code that handles many RPCs at once (a server, a capture decoder).
//!
//! ```
//! use diaspora_stream::drivers::mofka::wire::{
//!     rpc_id, AckEventRequest, MofkaResult, Request, Response, WireMessage, NO_PARENT_RPC_ID,
//! };
//!
//! let request = Request::new(AckEventRequest { consumer_name: "c1".into(), event_id: 41 });
//! let bytes = request.to_bytes();
//! assert_eq!(bytes.len(), 8 + 8 + 2 + 8);
//! let back = Request::<AckEventRequest>::decode(&bytes).unwrap();
//! assert_eq!(back.parent_rpc_id, NO_PARENT_RPC_ID);
//! assert_eq!(back.body.event_id, 41);
//!
//! let reply: Response<MofkaResult<()>> = Response::ok(MofkaResult::Ok(()));
//! assert_eq!(reply.to_bytes(), [0, 0, 0, 0, 1]);
//! assert_eq!(rpc_id("mofka_consumer_ack_event", 5), 0x394048aa_00000005);
//! ```

mod bedrock;
mod bulk;
mod codec;
mod error;
pub mod layout;
pub mod margo;
mod mofka;
mod result;
mod rpc;
mod yokan;

pub use crate::margo::{jenkins_hash, rpc_id, split_rpc_id, DEFAULT_PROVIDER_ID};
pub use bedrock::{
    LookupProviderRequest, LookupProviderResponse, ProviderDescriptor, QueryConfigRequest,
    QueryConfigResponse, StartProviderRequest, StartProviderResponse,
};
pub use bulk::{bulk_flags, BulkDescription, BulkHandle, BulkRef, BulkSegment};
pub use codec::{Decoder, Encoder, HgString, WireMessage};
pub use error::{WireError, WireErrorKind};
pub use margo::{Request, Response, HG_SUCCESS, NO_PARENT_RPC_ID};
pub use mofka::{
    AckEventRequest, AckEventResponse, RecvBatchRequest, RecvBatchResponse, RemoveConsumerRequest,
    RemoveConsumerResponse, RequestDataRequest, RequestDataResponse, RequestEventsRequest,
    RequestEventsResponse, SendBatchRequest, SendBatchResponse,
};
pub use result::{MofkaResult, RequestResult};
pub use rpc::{AnyRequest, AnyResponse, Rpc};
pub use yokan::{
    yokan_mode, CollCreateRequest, DocListDirectRequest, DocListDirectResponse, DocListRequest,
    DocStoreDirectRequest, DocStoreRequest, DocStoreResponse, GetDirectRequest, GetDirectResponse,
    GetRequest, IdentityRequest, IdentityResponse, LengthDirectRequest, LengthDirectResponse,
    ListKeysDirectRequest, ListKeysDirectResponse, PutDirectRequest, YokanStatus,
};

use std::fmt;
use std::str::FromStr;

/// Which Mofka release's message layouts to use.
///
/// Only `mofka_producer_send_batch` differs: 0.9 inserts a one-byte `ack_early` flag after
/// `count`. Clients and servers of different versions cannot talk to each other, so a driver
/// must use the version of the service it connects to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum WireVersion {
    /// Mofka 0.8.x: `send_batch(producer_name, count, metadata, data)`.
    V0_8,
    /// Mofka 0.9.x: `send_batch(producer_name, count, ack_early, metadata, data)`.
    #[default]
    V0_9,
}

impl WireVersion {
    /// The version this crate targets by default (0.9).
    pub const CURRENT: WireVersion = WireVersion::V0_9;

    /// Whether `mofka_producer_send_batch` carries the `ack_early` flag in this version.
    pub fn has_ack_early(self) -> bool {
        matches!(self, WireVersion::V0_9)
    }
}

impl fmt::Display for WireVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            WireVersion::V0_8 => "0.8",
            WireVersion::V0_9 => "0.9",
        })
    }
}

impl FromStr for WireVersion {
    type Err = String;

    /// Accepts `"0.8"`, `"0.9"` and patch versions of them (`"0.8.3"`), with an optional `v`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let s = s.strip_prefix('v').unwrap_or(s);
        let mut parts = s.split('.');
        match (parts.next(), parts.next()) {
            (Some("0"), Some("8")) => Ok(WireVersion::V0_8),
            (Some("0"), Some("9")) => Ok(WireVersion::V0_9),
            _ => Err(format!(
                "unsupported Mofka wire version {s:?} (expected \"0.8\" or \"0.9\")"
            )),
        }
    }
}

impl From<WireError> for crate::error::Error {
    fn from(e: WireError) -> Self {
        crate::error::Error::Decode {
            what: "Mofka wire message",
            reason: e.to_string(),
        }
    }
}
