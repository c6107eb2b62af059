//! Margo's part of the wire: RPC ids and the request/response headers.
//!
//! Margo (the Mochi layer between Mercury and Thallium) identifies an RPC by a 64-bit id made of
//! a hash of its registered name and the id of the provider it targets, and it prefixes each
//! payload with a small header:
//!
//! - requests start with a `u64`, the id of the RPC whose handler issued this request
//!   ([`NO_PARENT_RPC_ID`] when it was issued from outside any handler). Only Margo's monitoring
//!   uses it; receivers must accept any value and senders outside handlers send `0xffff`.
//! - responses start with an `i32` Mercury return code; a non-zero code means the handler could
//!   not run, and no response value follows.

use super::codec::{Decoder, Encoder, WireMessage};
use super::error::WireError;
use super::rpc::{AnyRequest, AnyResponse, Rpc};
use super::WireVersion;

/// The parent id Margo writes in requests sent from outside any RPC handler.
pub const NO_PARENT_RPC_ID: u64 = 0xffff;

/// Mercury's success code (`HG_SUCCESS`).
pub const HG_SUCCESS: i32 = 0;

/// The provider id Margo uses for RPCs registered without a provider (client-side
/// registrations, and the low half of ids that name "any provider").
pub const DEFAULT_PROVIDER_ID: u16 = 0xffff;

/// Bob Jenkins' 32-bit "lookup2" hash with the seed Margo uses (`0xfeedbeef`).
///
/// The key is consumed 12 bytes at a time into three accumulators that are mixed after each
/// block; the last, partial block also adds the key length.
pub fn jenkins_hash(key: &[u8]) -> u32 {
    fn mix(a: &mut u32, b: &mut u32, c: &mut u32) {
        const SHIFTS: [(bool, u32); 9] = [
            (false, 13),
            (true, 8),
            (false, 13),
            (false, 12),
            (true, 16),
            (false, 5),
            (false, 3),
            (true, 10),
            (false, 15),
        ];
        // Each round subtracts the two other accumulators from one of them and folds in a
        // shifted copy of the last one touched; the rounds cycle through a, b, c.
        for (round, (left, shift)) in SHIFTS.iter().enumerate() {
            let (x, y, z) = match round % 3 {
                0 => (&mut *a, *b, *c),
                1 => (&mut *b, *c, *a),
                _ => (&mut *c, *a, *b),
            };
            *x = x.wrapping_sub(y).wrapping_sub(z);
            *x ^= if *left { z << shift } else { z >> shift };
        }
    }
    let word = |b: &[u8]| -> u32 {
        b.iter().enumerate().fold(0u32, |acc, (i, &byte)| {
            acc.wrapping_add(u32::from(byte) << (8 * i))
        })
    };
    let golden = 0x9e37_79b9u32;
    let (mut a, mut b, mut c) = (golden, golden, 0xfeed_beefu32);
    let mut blocks = key.chunks_exact(12);
    for block in &mut blocks {
        a = a.wrapping_add(word(&block[0..4]));
        b = b.wrapping_add(word(&block[4..8]));
        c = c.wrapping_add(word(&block[8..12]));
        mix(&mut a, &mut b, &mut c);
    }
    let tail = blocks.remainder();
    c = c.wrapping_add(key.len() as u32);
    // The last 1..=11 bytes go to a, b, then to the high three bytes of c (its low byte holds
    // the length).
    let part = |from: usize, to: usize| tail.get(from..to.min(tail.len())).unwrap_or(&[]);
    a = a.wrapping_add(word(part(0, 4)));
    b = b.wrapping_add(word(part(4, 8)));
    c = c.wrapping_add(word(part(8, 11)) << 8);
    mix(&mut a, &mut b, &mut c);
    c
}

/// The Margo id of RPC `name` sent to provider `provider_id`: the name's [`jenkins_hash`] in
/// the high 32 bits, the provider id in the low 16 bits.
pub fn rpc_id(name: &str, provider_id: u16) -> u64 {
    (u64::from(jenkins_hash(name.as_bytes())) << 32) | u64::from(provider_id)
}

/// Splits an RPC id into its name hash and provider id. Returns `None` when bits 16..32 are not
/// zero (not an id Margo builds).
pub fn split_rpc_id(id: u64) -> Option<(u32, u16)> {
    if id & 0xffff_0000 != 0 {
        return None;
    }
    Some(((id >> 32) as u32, (id & 0xffff) as u16))
}

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
        enc.u64(self.parent_rpc_id);
        self.body.write(enc);
    }

    fn read(dec: &mut Decoder<'_>) -> Result<Self, WireError> {
        let parent_rpc_id = dec.u64("margo.parent_rpc_id")?;
        let body = M::read(dec)?;
        Ok(Request {
            parent_rpc_id,
            body,
        })
    }
}

impl Request<AnyRequest> {
    /// Decodes the payload of a request for `rpc` (exactly one request, header included).
    pub fn decode_payload(
        rpc: Rpc,
        payload: &[u8],
        version: WireVersion,
    ) -> Result<Self, WireError> {
        let mut dec = Decoder::new(payload, version);
        let parent_rpc_id = dec.u64("margo.parent_rpc_id")?;
        let body = AnyRequest::read(rpc, &mut dec)?;
        dec.finish()?;
        Ok(Request {
            parent_rpc_id,
            body,
        })
    }

    /// Appends the payload (header and arguments) to `out`.
    pub fn encode_payload(&self, version: WireVersion, out: &mut Vec<u8>) {
        let mut enc = Encoder::new(out, version);
        enc.u64(self.parent_rpc_id);
        self.body.write(&mut enc);
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

fn write_response_header<M>(r: &Response<M>, enc: &mut Encoder<'_>) -> bool {
    enc.i32(r.hg_ret);
    r.hg_ret == HG_SUCCESS
}

fn read_response_header(dec: &mut Decoder<'_>) -> Result<i32, WireError> {
    dec.i32("margo.hg_ret")
}

impl<M: WireMessage> WireMessage for Response<M> {
    fn write(&self, enc: &mut Encoder<'_>) {
        if write_response_header(self, enc) {
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

impl Response<AnyResponse> {
    /// Decodes the payload of a response for `rpc` (exactly one response, header included).
    pub fn decode_payload(
        rpc: Rpc,
        payload: &[u8],
        version: WireVersion,
    ) -> Result<Self, WireError> {
        let mut dec = Decoder::new(payload, version);
        let hg_ret = read_response_header(&mut dec)?;
        let body = if hg_ret == HG_SUCCESS {
            Some(AnyResponse::read(rpc, &mut dec)?)
        } else {
            None
        };
        dec.finish()?;
        Ok(Response { hg_ret, body })
    }

    /// Appends the payload (header and value) to `out`.
    pub fn encode_payload(&self, version: WireVersion, out: &mut Vec<u8>) {
        let mut enc = Encoder::new(out, version);
        if write_response_header(self, &mut enc) {
            if let Some(body) = &self.body {
                body.write(&mut enc);
            }
        }
    }
}
