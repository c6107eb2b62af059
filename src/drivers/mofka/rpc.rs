//! Margo-style calls over the Mercury layer: a request is the Margo header (`u64` parent RPC
//! id) followed by the Thallium-encoded arguments; a response is the Margo return code (`i32`)
//! followed by the encoded value. Shared by the driver and the mock service.

use super::wire::margo::{
    read_request_header, read_response_header, write_request_header, write_response_header,
    HG_SUCCESS, NO_PARENT_RPC_ID,
};
use super::wire::{BulkHandle, BulkRef, Decoder, Encoder, WireMessage, WireVersion};
use crate::error::{Error, Result};
use crate::margo::rpc_id;
use crate::mercury::{Address, BulkAccess, Engine, LocalBulk, RemoteBulk, Request};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Encodes a request payload.
pub(crate) fn encode_request<Q: WireMessage>(version: WireVersion, body: &Q) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    let mut enc = Encoder::new(&mut out, version);
    write_request_header(&mut enc, NO_PARENT_RPC_ID);
    body.write(&mut enc);
    out
}

/// Decodes a request payload (trailing bytes are ignored: Mercury's buffer may be longer).
pub(crate) fn decode_request<Q: WireMessage>(version: WireVersion, payload: &[u8]) -> Result<Q> {
    let mut dec = Decoder::new(payload, version);
    read_request_header(&mut dec)?;
    Ok(Q::read(&mut dec)?)
}

/// Decodes a response payload: the Margo return code, then the value. A non-zero code (the
/// service could not run the request) becomes an error naming `operation`.
pub(crate) fn decode_response<R: WireMessage>(
    version: WireVersion,
    payload: &[u8],
    operation: impl FnOnce() -> String,
) -> Result<R> {
    let mut dec = Decoder::new(payload, version);
    let hg_ret = read_response_header(&mut dec)?;
    if hg_ret != HG_SUCCESS {
        return Err(Error::Transport {
            operation: operation(),
            code: hg_ret,
            message: "the service could not run the request (Margo return code)".into(),
        });
    }
    Ok(R::read(&mut dec)?)
}

/// Encodes a successful response payload.
pub(crate) fn encode_response<R: WireMessage>(version: WireVersion, body: &R) -> Vec<u8> {
    let mut out = Vec::with_capacity(32);
    let mut enc = Encoder::new(&mut out, version);
    write_response_header(&mut enc, HG_SUCCESS);
    body.write(&mut enc);
    out
}

/// Sends the response of `request` without waiting for Mercury to complete it.
pub(crate) fn respond<R: WireMessage>(request: Request, version: WireVersion, body: &R) {
    drop(request.respond(&encode_response(version, body)));
}

/// A client side: the engine, the wire version, a timeout and an address cache.
#[derive(Clone)]
pub(crate) struct Caller {
    pub engine: Engine,
    pub version: WireVersion,
    pub timeout: Duration,
    addresses: Arc<Mutex<HashMap<String, Address>>>,
    self_address: Arc<std::sync::OnceLock<String>>,
}

impl Caller {
    pub fn new(engine: Engine, version: WireVersion, timeout: Duration) -> Self {
        Caller {
            engine,
            version,
            timeout,
            addresses: Arc::new(Mutex::new(HashMap::new())),
            self_address: Arc::new(std::sync::OnceLock::new()),
        }
    }

    /// This process's address (asked of Mercury once).
    pub fn self_address(&self) -> Result<String> {
        if let Some(a) = self.self_address.get() {
            return Ok(a.clone());
        }
        let a = self.engine.self_address()?;
        Ok(self.self_address.get_or_init(|| a).clone())
    }

    /// Looks up `address`, once per address.
    pub fn address(&self, address: &str) -> Result<Address> {
        let mut cache = self.addresses.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(a) = cache.get(address) {
            return Ok(a.clone());
        }
        let a = self.engine.lookup(address)?;
        cache.insert(address.to_string(), a.clone());
        Ok(a)
    }

    /// Calls RPC `name` of provider `provider_id` at `address` and decodes its response.
    pub fn call<Q: WireMessage, R: WireMessage>(
        &self,
        address: &str,
        name: &str,
        provider_id: u16,
        body: &Q,
    ) -> Result<R> {
        let context = |e: Error| match e {
            Error::Transport {
                operation,
                code,
                message,
            } => Error::Transport {
                operation: format!("{name} to provider {provider_id} at {address} ({operation})"),
                code,
                message,
            },
            other => other,
        };
        let target = self.address(address).map_err(context)?;
        let reply = self.engine.forward_cancellable(
            &target,
            rpc_id(name, provider_id),
            &encode_request(self.version, body),
        );
        let (reply, token) = reply;
        let reply = reply
            .wait_timeout(self.timeout)
            .map_err(context)?
            .ok_or_else(|| {
                // Nobody waits for it any more: do not leave it in flight.
                token.cancel();
                Error::Transport {
                    operation: format!("{name} to provider {provider_id} at {address}"),
                    code: mercury_sys::HG_TIMEOUT as i32,
                    message: format!("no response within {:?}", self.timeout),
                }
            })?;
        decode_response(self.version, &reply, || {
            format!("{name} to provider {provider_id} at {address}")
        })
    }

    /// Exposes `segments` read-only and describes them as a `BulkRef` owned by this process.
    pub fn expose(&self, segments: Vec<bytes::Bytes>) -> Result<(LocalBulk, BulkRef)> {
        let bulk = LocalBulk::expose(&self.engine, segments)?;
        let bref = self.describe(&bulk)?;
        Ok((bulk, bref))
    }

    /// A `BulkRef` over the whole of `bulk`, owned by this process.
    pub fn describe(&self, bulk: &LocalBulk) -> Result<BulkRef> {
        self.describe_window(bulk, bulk.size())
    }

    /// A `BulkRef` over the first `size` bytes of `bulk`.
    pub fn describe_window(&self, bulk: &LocalBulk, size: usize) -> Result<BulkRef> {
        Ok(BulkRef {
            handle: BulkHandle::from_serialized(bulk.serialize()?),
            offset: 0,
            size: size.min(bulk.size()) as u64,
            address: self.self_address()?,
        })
    }

    /// Pulls the window a `BulkRef` describes into a new buffer.
    pub fn pull(&self, bref: &BulkRef) -> Result<Vec<u8>> {
        if bref.size == 0 {
            return Ok(Vec::new());
        }
        let origin = self.address(&bref.address)?;
        let remote = RemoteBulk::deserialize(&self.engine, bref.handle.as_bytes())?;
        let local = LocalBulk::from_vec(
            &self.engine,
            vec![0; bref.size as usize],
            BulkAccess::WriteOnly,
        )?;
        let local = self
            .engine
            .transfer(
                crate::mercury::BulkOp::Pull,
                crate::mercury::RemoteRegion::new(&origin, &remote, bref.offset as usize),
                local,
                0,
                bref.size as usize,
            )
            .wait()?;
        Ok(local.into_vec().unwrap_or_default())
    }
}
