//! RPCs: registration with explicit ids ([`Engine::register`], [`Engine::register_client`]),
//! the proc callback that copies payload bytes in and out of Mercury, and the incoming side:
//! the handler that hands each [`Request`] to its RPC's handler on the handler pool, and
//! [`Request::respond`].

use super::address::Address;
use super::engine::{Engine, Inner};
use super::error::{guard, hg_check, hg_error};
use super::progress::{as_handler, Inflight};
use crate::error::Result;
use crate::future::{Future, Promise};
use crate::thread_pool::DEFAULT_PRIORITY;
use bytes::Bytes;
use mercury_sys as hg;
use std::collections::HashSet;
use std::ffi::c_void;
use std::sync::{Arc, MutexGuard, Weak};

/// A registered RPC's handler.
type Handler = dyn Fn(Request) + Send + Sync;

/// What `HG_Register_data` keeps for an RPC with a handler.
struct HandlerEntry {
    handler: Arc<Handler>,
    engine: Weak<Inner>,
    /// Run on the thread that progresses (see [`Engine::register_inline`]), not on the pool.
    inline: bool,
}

/// Bytes crossing the proc callback: what to encode, or what was decoded.
pub(super) struct Payload {
    send: *const u8,
    send_len: usize,
    expected: usize,
    pub(super) received: Vec<u8>,
}

impl Payload {
    /// A payload to encode: `bytes`, which must outlive the encoding.
    pub(super) fn sending(bytes: &[u8]) -> Self {
        Payload {
            send: bytes.as_ptr(),
            send_len: bytes.len(),
            expected: 0,
            received: Vec::new(),
        }
    }
    /// A payload to decode, of `expected` bytes.
    pub(super) fn receiving(expected: usize) -> Self {
        Payload {
            send: std::ptr::null(),
            send_len: 0,
            expected,
            received: Vec::new(),
        }
    }
}

/// The proc callback of every RPC: copies the payload bytes in or out.
pub(super) unsafe extern "C" fn payload_proc(
    proc_: hg::hg_proc_t,
    data: *mut c_void,
) -> hg::hg_return_t {
    guard("proc", || {
        // SAFETY: Mercury passes back the `Payload` given to HG_Forward/HG_Respond/HG_Get_*.
        let payload = unsafe { &mut *(data as *mut Payload) };
        // SAFETY: `proc_` is the live proc Mercury is encoding or decoding with.
        unsafe {
            match hg::hg_proc_get_op(proc_) {
                hg::HG_ENCODE => {
                    if payload.send_len == 0 {
                        return hg::HG_SUCCESS;
                    }
                    hg::hg_proc_bytes(
                        proc_,
                        payload.send as *mut c_void,
                        payload.send_len as hg::hg_size_t,
                    )
                }
                hg::HG_DECODE => {
                    let left = hg::hg_proc_get_size_left(proc_) as usize;
                    // Mercury knows the payload size; the buffer behind it may be larger.
                    let n = payload.expected.min(left);
                    if n == 0 {
                        return hg::HG_SUCCESS;
                    }
                    let ptr = hg::hg_proc_save_ptr(proc_, n as hg::hg_size_t);
                    if ptr.is_null() {
                        return hg::HG_NOMEM;
                    }
                    payload.received = std::slice::from_raw_parts(ptr as *const u8, n).to_vec();
                    hg::hg_proc_restore_ptr(proc_, ptr, n as hg::hg_size_t)
                }
                _ => hg::HG_SUCCESS,
            }
        }
    })
}

/// Frees a [`HandlerEntry`] (Mercury calls it for data it drops).
unsafe extern "C" fn free_handler_entry(data: *mut c_void) {
    if !data.is_null() {
        // SAFETY: `data` is the Box leaked by `Engine::register`, freed once by Mercury.
        drop(unsafe { Box::from_raw(data as *mut HandlerEntry) });
    }
}

/// Called by Mercury (on the progress thread) for each incoming request of a registered RPC.
unsafe extern "C" fn rpc_handler(handle: hg::hg_handle_t) -> hg::hg_return_t {
    guard("RPC handler", || {
        // SAFETY: Mercury hands us a live handle that we must destroy once done with it.
        unsafe {
            let info = hg::HG_Get_info(handle);
            if info.is_null() {
                hg::HG_Destroy(handle);
                return hg::HG_INVALID_ARG;
            }
            let (class, id) = ((*info).hg_class, (*info).id);
            let entry = hg::HG_Registered_data(class, id) as *const HandlerEntry;
            let engine = if entry.is_null() {
                None
            } else {
                (*entry).engine.upgrade()
            };
            let Some(engine) = engine else {
                hg::HG_Destroy(handle);
                return hg::HG_NOENTRY;
            };
            let mut payload = Payload::receiving(hg::HG_Get_input_payload_size(handle) as usize);
            let ret = hg::HG_Get_input(handle, &mut payload as *mut Payload as *mut c_void);
            if ret != hg::HG_SUCCESS {
                eprintln!("diaspora-stream: {}", hg_error("HG_Get_input", ret));
                hg::HG_Destroy(handle);
                return ret;
            }
            hg::HG_Free_input(handle, &mut payload as *mut Payload as *mut c_void);
            let handler = (*entry).handler.clone();
            let pool = if (*entry).inline {
                None
            } else {
                engine.handler_pool.clone()
            };
            let request = Request {
                handle: RawHandle(handle),
                id,
                input: Bytes::from(payload.received),
                engine: Engine { inner: engine },
                responded: false,
            };
            match pool {
                Some(pool) => pool.push_work(
                    Box::new(move || as_handler(|| handler(request))),
                    DEFAULT_PRIORITY,
                ),
                None => {
                    if let Err(payload) =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(request)))
                    {
                        eprintln!(
                            "diaspora-stream: an inline RPC handler panicked: {}",
                            crate::error::panic_message(&*payload)
                        );
                    }
                }
            }
            hg::HG_SUCCESS
        }
    })
}

/// What a response's completion needs: its promise and the in-flight set to leave.
struct CallState<T> {
    promise: Arc<Promise<T>>,
    inflight: Arc<Inflight>,
}

/// Completion of [`Request::respond`].
unsafe extern "C" fn respond_done(info: *const hg::hg_cb_info) -> hg::hg_return_t {
    guard("respond completion", || {
        // SAFETY: `arg` is the Box leaked by `Request::respond`, reclaimed once here.
        unsafe {
            let info = &*info;
            let state = Box::from_raw(info.arg as *mut CallState<()>);
            let handle = info.info.respond.handle;
            state.inflight.handles().remove(&(handle as usize));
            hg::HG_Destroy(handle);
            state.promise.set(hg_check("HG_Respond", info.ret));
            hg::HG_SUCCESS
        }
    })
}

impl Engine {
    fn registered(&self) -> MutexGuard<'_, HashSet<u64>> {
        self.inner
            .registered
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Registers RPC `id` for sending (no handler). [`Engine::forward`] does it on first use.
    pub fn register_client(&self, id: u64) -> Result<()> {
        let mut registered = self.registered();
        if registered.contains(&id) {
            return Ok(());
        }
        // SAFETY: the class is valid; the proc callback is `payload_proc`.
        hg_check("HG_Register", unsafe {
            hg::HG_Register(
                self.inner.class,
                id,
                Some(payload_proc),
                Some(payload_proc),
                None,
            )
        })?;
        registered.insert(id);
        Ok(())
    }

    /// Registers RPC `id` with a handler, called for every request on the engine's handler
    /// pool. The handler should [`Request::respond`]; a request dropped without a response
    /// leaves its sender waiting until it times out.
    ///
    /// Registering an id again replaces its handler.
    pub fn register(
        &self,
        id: u64,
        handler: impl Fn(Request) + Send + Sync + 'static,
    ) -> Result<()> {
        self.register_entry(id, Arc::new(handler), false)
    }

    /// Like [`Engine::register`], but the handler runs on the thread that progresses the
    /// engine, as soon as the request is decoded, instead of on the handler pool: no thread is
    /// woken per request. For handlers that answer at once: such a handler must not block, nor
    /// wait on a future of this engine (nothing would progress it); it may
    /// [`Request::respond`] and drop the returned future. A panic is reported on standard
    /// error and the request is dropped unanswered.
    pub fn register_inline(
        &self,
        id: u64,
        handler: impl Fn(Request) + Send + Sync + 'static,
    ) -> Result<()> {
        self.register_entry(id, Arc::new(handler), true)
    }

    fn register_entry(&self, id: u64, handler: Arc<Handler>, inline: bool) -> Result<()> {
        let mut registered = self.registered();
        // SAFETY: the class is valid; the proc and RPC callbacks are ours.
        hg_check("HG_Register", unsafe {
            hg::HG_Register(
                self.inner.class,
                id,
                Some(payload_proc),
                Some(payload_proc),
                Some(rpc_handler),
            )
        })?;
        let entry = Box::new(HandlerEntry {
            handler,
            engine: Arc::downgrade(&self.inner),
            inline,
        });
        // Mercury does not free data it replaces. The previous handler may still be running
        // (or about to run) on a request that arrived before: keep it until the engine goes.
        // SAFETY: reads the pointer registered for `id`, if any (a HandlerEntry leaked below).
        let old = unsafe { hg::HG_Registered_data(self.inner.class, id) };
        if !old.is_null() {
            self.inner
                .retired_handlers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((old as usize, free_handler_entry));
        }
        // SAFETY: Mercury keeps the pointer and frees it with `free_handler_entry` when the
        // class is finalised.
        let ret = unsafe {
            hg::HG_Register_data(
                self.inner.class,
                id,
                Box::into_raw(entry) as *mut c_void,
                Some(free_handler_entry),
            )
        };
        hg_check("HG_Register_data", ret)?;
        registered.insert(id);
        Ok(())
    }
}

/// An incoming request's handle, to respond or destroy it from a handler thread.
struct RawHandle(hg::hg_handle_t);
// SAFETY: Mercury handles may be responded to from any thread.
unsafe impl Send for RawHandle {}

/// An incoming request, handed to the handler registered for its RPC id.
pub struct Request {
    handle: RawHandle,
    id: u64,
    input: Bytes,
    engine: Engine,
    responded: bool,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("id", &format_args!("{:#018x}", self.id))
            .field("input_len", &self.input.len())
            .finish()
    }
}

impl Request {
    /// The RPC id the request was sent to.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The request payload.
    pub fn input(&self) -> &Bytes {
        &self.input
    }

    /// The engine that received the request.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The sender's address (for bulk transfers with the sender's memory, or replies).
    pub fn source(&self) -> Result<Address> {
        let mut raw = hg::HG_ADDR_NULL;
        // SAFETY: the handle is live until responded or dropped.
        unsafe {
            let info = hg::HG_Get_info(self.handle.0);
            if info.is_null() {
                return Err(hg_error("HG_Get_info", hg::HG_INVALID_ARG));
            }
            hg_check(
                "HG_Addr_dup",
                hg::HG_Addr_dup(self.engine.inner.class, (*info).addr, &mut raw),
            )?;
        }
        Ok(Address {
            raw,
            engine: self.engine.inner.clone(),
        })
    }

    /// Sends the response payload; the future completes when Mercury has sent it.
    pub fn respond(mut self, payload: &[u8]) -> Future<()> {
        self.responded = true;
        let handle = self.handle.0;
        let (promise, future) = self.engine.inner.driver.promise::<()>();
        let inflight = self.engine.inner.inflight.clone();
        inflight.handles().insert(handle as usize, 0);
        let state = Box::into_raw(Box::new(CallState {
            promise,
            inflight: inflight.clone(),
        }));
        let mut output = Payload::sending(payload);
        // SAFETY: the payload is encoded before HG_Respond returns; `state` is reclaimed by
        // `respond_done`, or below if the response could not start.
        let ret = unsafe {
            hg::HG_Respond(
                handle,
                Some(respond_done),
                state as *mut c_void,
                &mut output as *mut Payload as *mut c_void,
            )
        };
        if ret != hg::HG_SUCCESS {
            // SAFETY: the callback will not run.
            unsafe {
                drop(Box::from_raw(state));
                inflight.handles().remove(&(handle as usize));
                hg::HG_Destroy(handle);
            }
            return Future::failed(hg_error("HG_Respond", ret));
        }
        future
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        if !self.responded {
            // SAFETY: the handle is ours; without a response it is just released.
            unsafe {
                hg::HG_Destroy(self.handle.0);
            }
        }
    }
}
