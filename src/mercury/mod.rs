//! A safe layer over Mercury: an RPC engine with its own progress thread, addresses, RPCs with
//! explicit 64-bit ids, and bulk (RDMA) transfers over application buffers.
//!
//! Enabled by the `mercury` feature, which links the installed Mercury through the
//! `mercury-sys` crate. This is the transport under the Mofka driver; it knows nothing of Mofka.
//!
//! # Model
//!
//! - An [`Engine`] owns one Mercury class and one context. One thread at a time progresses
//!   them and runs the completion callbacks: an application thread waiting on one of the
//!   engine's futures when nobody else does, otherwise the engine's own progress thread, so
//!   completions arrive whatever the application threads are doing (see `progress`). The
//!   class and context are finalised when the last handle on the engine (engine, address,
//!   bulk, request) is dropped.
//! - RPCs are identified by explicit 64-bit ids, registered with `HG_Register` (never Mercury's
//!   own name hash), so that a Margo service's ids can be used: see [`margo_rpc_id`].
//! - Payloads are bytes. The sender's bytes are copied into Mercury's buffer as they are; the
//!   receiver gets the payload bytes Mercury delivered. Protocol encodings (Margo headers,
//!   Thallium/cereal values) are the caller's business, see `drivers::mofka::wire`.
//! - [`Engine::forward`] and [`Request::respond`] return [`Future`](crate::future::Future)s
//!   completed by whichever thread progresses. Incoming requests run their handler on a
//!   [`ThreadPool`](crate::thread_pool::ThreadPool) (by default a small pool owned by the
//!   engine), never on the progressing thread, so handlers may block; handlers registered
//!   with [`Engine::register_inline`] answer at once on the progressing thread instead.
//! - A [`LocalBulk`] exposes application memory for RDMA. It owns (or shares, for
//!   [`bytes::Bytes`]) that memory, and a transfer takes the bulk by value and gives it back
//!   when it completes, so the memory cannot be freed or read while the peer may write it.
//! - No panic crosses into C: every callback catches panics, reports them and returns an error
//!   code to Mercury.
//!
//! # Parts
//!
//! `engine` ([`Engine`]) starts and stops Mercury as `options` ([`EngineOptions`]) say, with
//! the class initialisation in `init` and the progress thread in `progress`; `rpc` registers
//! RPCs and hands incoming [`Request`]s to their handlers; `forward` sends requests; `bulk`
//! exposes memory ([`LocalBulk`], [`RemoteBulk`]) and transfers it; `address` holds
//! [`Address`]; `error` turns Mercury's return codes into errors.

mod address;
mod bulk;
mod engine;
mod error;
mod forward;
mod init;
mod options;
mod progress;
mod rpc;

pub use crate::margo::{jenkins_hash, rpc_id as margo_rpc_id};
pub use address::Address;
pub use bulk::{BulkAccess, BulkOp, BulkTransfer, LocalBulk, RemoteBulk, RemoteRegion};
pub use engine::Engine;
pub use forward::{ForwardCallback, ForwardToken};
pub use options::{EngineOptions, TransportOptions, DEFAULT_SPINDOWN};
pub use rpc::Request;

use mercury_sys as hg;
use std::ffi::CStr;

/// Transport plugins of the installed Mercury, as `(class, protocol)` pairs (for example
/// `("na", "sm")`, `("ofi", "tcp")`), so that tests and tools can skip what is not built in.
pub fn protocols() -> Vec<(String, String)> {
    let mut list: *mut hg::na_protocol_info = std::ptr::null_mut();
    // SAFETY: Mercury allocates the list, freed below.
    unsafe {
        if hg::HG_Get_na_protocol_info(std::ptr::null(), &mut list) != hg::HG_SUCCESS {
            return Vec::new();
        }
        let mut out = Vec::new();
        let mut p = list;
        while !p.is_null() {
            let text = |s: *mut std::ffi::c_char| {
                if s.is_null() {
                    String::new()
                } else {
                    CStr::from_ptr(s).to_string_lossy().into_owned()
                }
            };
            let pair = (text((*p).class_name), text((*p).protocol_name));
            if !out.contains(&pair) {
                out.push(pair);
            }
            p = (*p).next;
        }
        hg::HG_Free_na_protocol_info(list);
        out
    }
}

/// Whether the installed Mercury has a plugin for `transport` (`na+sm`, `ofi+tcp`, ...).
pub fn supports(transport: &str) -> bool {
    let Some((class, protocol)) = transport.split_once('+') else {
        return false;
    };
    let protocol = protocol.split("://").next().unwrap_or(protocol);
    protocols()
        .iter()
        .any(|(c, p)| c == class && (p == protocol || p.split(';').next() == Some(protocol)))
}
