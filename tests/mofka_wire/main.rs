//! Golden tests of the Mofka wire codec (`diaspora_stream::drivers::mofka::wire`) against the
//! traffic of a real Mofka 0.8.3 deployment, captured over `ofi+tcp` and `na+sm`, in
//! `../shared/fixtures/mofka-wire` (see its README.md).
//!
//! Bulk handles: the codec keeps serialized bulk handles as opaque bytes, so decoding then
//! re-encoding a captured message reproduces it byte for byte, handles included, and the
//! round-trip tests mask nothing. Handles do hold per-process virtual addresses and
//! memory-registration keys, so the tests that build messages from the scenario's values
//! (rather than from the capture) compare handles by structure: both sides go through
//! `BulkHandle::masked`, which zeroes exactly those addresses and network handles and keeps
//! sizes, flags and eager contents.

use diaspora_stream::components::DefaultSerializer;
use diaspora_stream::drivers::mofka::wire::layout::{self, MemoryLocation};
use diaspora_stream::drivers::mofka::wire::{
    bulk_flags, jenkins_hash, rpc_id, split_rpc_id, AckEventRequest, AnyRequest, AnyResponse,
    BulkDescription, BulkHandle, BulkRef, BulkSegment, Decoder, HgString, MofkaResult,
    RecvBatchRequest, RemoveConsumerRequest, Request, RequestDataRequest, RequestEventsRequest,
    RequestResult, Response, Rpc, SendBatchRequest, WireError, WireErrorKind, WireMessage,
    WireVersion, YokanStatus, NO_PARENT_RPC_ID,
};
use diaspora_stream::{DataDescriptor, Metadata};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;

mod bulk;
mod data_plane;
mod decoded;
mod decoded_md;
mod fixtures;
mod golden;
mod layout_helpers;
mod malformed;
mod rpc_ids;
mod versions;
