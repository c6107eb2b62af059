//! Margo's framing of RPC payloads (the ids themselves are in [`crate::margo`]):
//!
//! - requests start with a `u64`, the id of the RPC whose handler issued this request
//!   ([`NO_PARENT_RPC_ID`] when it was issued from outside any handler). Only Margo's monitoring
//!   uses it; receivers must accept any value and senders outside handlers send `0xffff`.
//! - responses start with an `i32` Mercury return code; a non-zero code means the handler could
//!   not run, and no response value follows.

use super::codec::{Decoder, Encoder, WireMessage};
use super::error::WireError;
pub use crate::margo::{HG_SUCCESS, NO_PARENT_RPC_ID};

/// A request payload: the Margo header, then the message.
#[derive(Clone, Debug, PartialEq)]
pub struct Request<M> {
    /// Id of the RPC in whose handler this request was issued, [`NO_PARENT_RPC_ID`] if none.
    pub parent_rpc_id: u64,
    /// The arguments.
    pub body: M,
}

impl<M> Request<M> {
    /// A request issued outside any handler (parent id `0xffff`).
    pub fn new(body: M) -> Self {
        Request {
            parent_rpc_id: NO_PARENT_RPC_ID,
            body,
        }
    }

    /// A request issued from inside the handler of RPC `parent_rpc_id`.
    pub fn nested(parent_rpc_id: u64, body: M) -> Self {
        Request {
            parent_rpc_id,
            body,
        }
    }
}

impl<M: WireMessage> WireMessage for Request<M> {
    fn write(&self, enc: &mut Encoder<'_>) {
        write_request_header(enc, self.parent_rpc_id);
        self.body.write(enc);
    }

    fn read(dec: &mut Decoder<'_>) -> Result<Self, WireError> {
        let parent_rpc_id = read_request_header(dec)?;
        let body = M::read(dec)?;
        Ok(Request {
            parent_rpc_id,
            body,
        })
    }
}

/// A response payload: Mercury's return code, then the value when that code is
/// [`HG_SUCCESS`].
#[derive(Clone, Debug, PartialEq)]
pub struct Response<M> {
    /// Mercury return code written by Margo; non-zero means the handler did not run.
    pub hg_ret: i32,
    /// The value; present exactly when `hg_ret` is [`HG_SUCCESS`] (it is not written otherwise).
    pub body: Option<M>,
}

impl<M> Response<M> {
    /// A successful response carrying `body`.
    pub fn ok(body: M) -> Self {
        Response {
            hg_ret: HG_SUCCESS,
            body: Some(body),
        }
    }

    /// A response reporting Mercury error `hg_ret` (non-zero), without a value.
    pub fn failed(hg_ret: i32) -> Self {
        Response { hg_ret, body: None }
    }
}

/// Writes a request's Margo header: the parent RPC id.
pub fn write_request_header(enc: &mut Encoder<'_>, parent_rpc_id: u64) {
    enc.u64(parent_rpc_id);
}

/// Reads a request's Margo header: the parent RPC id.
pub fn read_request_header(dec: &mut Decoder<'_>) -> Result<u64, WireError> {
    dec.u64("margo.parent_rpc_id")
}

/// Writes a response's Margo header, Mercury's return code; true when a value follows.
pub fn write_response_header(enc: &mut Encoder<'_>, hg_ret: i32) -> bool {
    enc.i32(hg_ret);
    hg_ret == HG_SUCCESS
}

/// Reads a response's Margo header, Mercury's return code (a value follows when it is
/// [`HG_SUCCESS`]).
pub fn read_response_header(dec: &mut Decoder<'_>) -> Result<i32, WireError> {
    dec.i32("margo.hg_ret")
}

impl<M: WireMessage> WireMessage for Response<M> {
    fn write(&self, enc: &mut Encoder<'_>) {
        if write_response_header(enc, self.hg_ret) {
            if let Some(body) = &self.body {
                body.write(enc);
            }
        }
    }

    fn read(dec: &mut Decoder<'_>) -> Result<Self, WireError> {
        let hg_ret = read_response_header(dec)?;
        let body = if hg_ret == HG_SUCCESS {
            Some(M::read(dec)?)
        } else {
            None
        };
        Ok(Response { hg_ret, body })
    }
}
