//! A safe layer over Mercury: an RPC engine with its own progress thread, addresses, RPCs with
//! explicit 64-bit ids, and bulk (RDMA) transfers over application buffers.
//!
//! Enabled by the `mercury` feature, which links the installed Mercury through the
//! `mercury-sys` crate. This is the transport under the Mofka driver; it knows nothing of Mofka.
//!
//! # Model
//!
//! - An [`Engine`] owns one Mercury class and one context. A dedicated OS thread runs the
//!   progress loop (`HG_Progress` then `HG_Trigger`), so completions arrive whatever the
//!   application threads are doing. The class and context are finalised when the last handle
//!   on the engine (engine, address, bulk, request) is dropped.
//! - RPCs are identified by explicit 64-bit ids, registered with `HG_Register` (never Mercury's
//!   own name hash), so that a Margo service's ids can be used: see [`margo_rpc_id`].
//! - Payloads are bytes. The sender's bytes are copied into Mercury's buffer as they are; the
//!   receiver gets the payload bytes Mercury delivered. Protocol encodings (Margo headers,
//!   Thallium/cereal values) are the caller's business, see `drivers::mofka::wire`.
//! - [`Engine::forward`] and [`Request::respond`] return [`crate::Future`]s completed by the
//!   progress thread. Incoming requests run their handler on a [`ThreadPool`] (by default a
//!   small pool owned by the engine), never on the progress thread, so handlers may block.
//! - A [`LocalBulk`] exposes application memory for RDMA. It owns (or shares, for
//!   [`bytes::Bytes`]) that memory, and a transfer takes the bulk by value and gives it back
//!   when it completes, so the memory cannot be freed or read while the peer may write it.
//! - No panic crosses into C: every callback catches panics, reports them and returns an error
//!   code to Mercury.

use crate::error::{panic_message, Error, Result};
use crate::future::{promise, Future, Promise};
use crate::thread_pool::{StdThreadPool, ThreadPool, DEFAULT_PRIORITY};
use bytes::Bytes;
use mercury_sys as hg;
use std::collections::HashSet;
use std::ffi::{c_void, CStr, CString};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

pub use crate::margo::{jenkins_hash, rpc_id as margo_rpc_id};

/// Builds an [`Error`] for a Mercury call that returned `code`.
fn hg_error(operation: impl Into<String>, code: hg::hg_return_t) -> Error {
    // SAFETY: HG_Error_to_string returns a static string for every code.
    let text = unsafe {
        let p = hg::HG_Error_to_string(code);
        if p.is_null() {
            "unknown error".to_string()
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    };
    Error::Transport {
        operation: operation.into(),
        code: code as i32,
        message: text,
    }
}

fn hg_check(operation: &str, code: hg::hg_return_t) -> Result<()> {
    if code == hg::HG_SUCCESS {
        Ok(())
    } else {
        Err(hg_error(operation, code))
    }
}

/// Runs `f`, turning a panic into an error code so that it cannot unwind into C.
fn guard(what: &str, f: impl FnOnce() -> hg::hg_return_t) -> hg::hg_return_t {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(code) => code,
        Err(payload) => {
            eprintln!(
                "diaspora-stream: panic in the Mercury {what} callback: {}",
                panic_message(&*payload)
            );
            hg::HG_OTHER_ERROR
        }
    }
}

/// Options of an [`Engine`].
#[derive(Clone)]
pub struct EngineOptions {
    /// Whether the engine accepts connections (servers and clients that receive RPCs, such as
    /// Mofka consumers, listen).
    pub listen: bool,
    /// Where request handlers run; `None` (or a pool without threads, which would run them on
    /// the progress thread): a pool of `handler_threads` OS threads owned by the engine.
    pub handler_pool: Option<Arc<dyn ThreadPool>>,
    /// Number of threads of the engine's own handler pool.
    pub handler_threads: usize,
    /// Longest time the progress thread blocks in `HG_Progress` (also the longest delay before
    /// it notices that the engine is shutting down).
    pub progress_timeout: Duration,
    /// How long shutdown waits for cancelled operations to complete.
    pub shutdown_timeout: Duration,
    /// After the last completion, how long the progress thread keeps polling without
    /// blocking before it sleeps in `HG_Progress` again (Margo's "progress spindown"). Polling
    /// saves the wake-up latency of back-to-back RPCs at the price of CPU time; zero never
    /// polls.
    pub progress_spindown: Duration,
    /// Mercury's initialisation settings (all defaults: plain `HG_Init`).
    pub transport: TransportOptions,
}

/// Mercury initialisation settings, as named in the `"mercury"` section of a Margo
/// configuration (see [`TransportOptions::from_margo`]). `None` and `false` leave Mercury's
/// default.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TransportOptions {
    /// Authorisation key of the network (`auth_key`; e.g. a Slingshot VNI for `ofi+cxi`).
    /// Unset on `cxi`, Margo's default applies: `"0:0:1"` (the job's VNI) when
    /// `SLINGSHOT_VNIS` lists several VNIs.
    pub auth_key: Option<String>,
    /// Subnet to pick the interface from (`ip_subnet`).
    pub ip_subnet: Option<String>,
    /// Busy-spin instead of blocking in progress (`na_no_block`).
    pub na_no_block: bool,
    /// Do not retry operations that would block (`na_no_retry`).
    pub na_no_retry: bool,
    /// Number of NA contexts (`max_contexts`).
    pub max_contexts: Option<u8>,
    /// Receive buffers posted at start (`request_post_init`).
    pub request_post_init: Option<u32>,
    /// Receive buffers added when they run out (`request_post_incr`).
    pub request_post_incr: Option<i32>,
    /// Use shared memory for peers on the same node (`auto_sm`).
    pub auto_sm: bool,
    /// Never send bulk data eagerly with the RPC (`no_bulk_eager`).
    pub no_bulk_eager: bool,
    /// No loopback RPCs to self (`no_loopback`).
    pub no_loopback: bool,
    /// Collect Mercury statistics (`stats`).
    pub stats: bool,
    /// Largest unexpected message (`na_max_unexpected_size`).
    pub max_unexpected_size: Option<usize>,
    /// Largest expected message (`na_max_expected_size`).
    pub max_expected_size: Option<usize>,
    /// Shared-memory prefix for `auto_sm` (`sm_info_string`).
    pub sm_info_string: Option<String>,
    /// Checksums of RPC headers or payloads (`checksum_level`: `"none"`, `"rpc_headers"`,
    /// `"rpc_payload"`; needs a Mercury built with checksums).
    pub checksum_level: Option<String>,
    /// Address format (`na_addr_format`: `"unspec"`, `"ipv4"`, `"ipv6"`, `"native"`).
    pub na_addr_format: Option<String>,
    /// Memory of requests allocated on the device (`na_request_mem_device`).
    pub na_request_mem_device: bool,
}

impl TransportOptions {
    /// Reads the `"mercury"` section of a Margo JSON configuration (`margo` is the whole
    /// configuration, as the C++ drivers take it): the keys named by this struct's fields. A
    /// key of the wrong type or value is an error naming it. Margo's own keys (`address`,
    /// `listening`, `version`, `input_eager_size`, `output_eager_size`, `log_level`, ...) and
    /// the other sections (threads, Argobots pools) do not apply to this engine, which runs
    /// its own progress thread, and are ignored.
    pub fn from_margo(margo: &serde_json::Value) -> Result<TransportOptions> {
        use serde_json::Value;
        let mut t = TransportOptions::default();
        let Some(hg) = margo.get("mercury") else {
            return Ok(t);
        };
        let hg = hg
            .as_object()
            .ok_or_else(|| Error::config("margo", "\"mercury\" must be an object".to_string()))?;
        let bad = |key: &str, what: &str, v: &Value| {
            Error::config(
                "margo",
                format!("\"mercury\".\"{key}\" must be {what}, not {v}"),
            )
        };
        for (key, v) in hg {
            let string = || {
                v.as_str()
                    .map(str::to_string)
                    .ok_or_else(|| bad(key, "a string", v))
            };
            let boolean = || v.as_bool().ok_or_else(|| bad(key, "true or false", v));
            let uint = || {
                v.as_u64()
                    .ok_or_else(|| bad(key, "a non-negative integer", v))
            };
            match key.as_str() {
                "auth_key" => t.auth_key = Some(string()?),
                "ip_subnet" => t.ip_subnet = Some(string()?),
                "sm_info_string" => t.sm_info_string = Some(string()?),
                "na_no_block" => t.na_no_block = boolean()?,
                "na_no_retry" => t.na_no_retry = boolean()?,
                "auto_sm" => t.auto_sm = boolean()?,
                "no_bulk_eager" => t.no_bulk_eager = boolean()?,
                "no_loopback" => t.no_loopback = boolean()?,
                "stats" => t.stats = boolean()?,
                "max_contexts" => {
                    t.max_contexts =
                        Some(u8::try_from(uint()?).map_err(|_| bad(key, "at most 255", v))?)
                }
                "request_post_init" => {
                    t.request_post_init =
                        Some(u32::try_from(uint()?).map_err(|_| bad(key, "a 32-bit integer", v))?)
                }
                "request_post_incr" => {
                    let n = v.as_i64().ok_or_else(|| bad(key, "an integer", v))?;
                    t.request_post_incr =
                        Some(i32::try_from(n).map_err(|_| bad(key, "a 32-bit integer", v))?)
                }
                "na_max_unexpected_size" => t.max_unexpected_size = Some(uint()? as usize),
                "na_max_expected_size" => t.max_expected_size = Some(uint()? as usize),
                "na_request_mem_device" => t.na_request_mem_device = boolean()?,
                "checksum_level" => {
                    let v = string()?;
                    if !["none", "rpc_headers", "rpc_payload"].contains(&v.as_str()) {
                        return Err(bad(
                            key,
                            "none, rpc_headers or rpc_payload",
                            &Value::from(v),
                        ));
                    }
                    t.checksum_level = Some(v);
                }
                "na_addr_format" => {
                    let v = string()?;
                    if !["unspec", "ipv4", "ipv6", "native"].contains(&v.as_str()) {
                        return Err(bad(key, "unspec, ipv4, ipv6 or native", &Value::from(v)));
                    }
                    t.na_addr_format = Some(v);
                }
                // Margo settings of its own engine, or fixed by the address given.
                _ => {}
            }
        }
        Ok(t)
    }
}

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            listen: false,
            handler_pool: None,
            handler_threads: 2,
            progress_timeout: Duration::from_millis(100),
            shutdown_timeout: Duration::from_secs(5),
            progress_spindown: default_spindown(),
            transport: TransportOptions::default(),
        }
    }
}

/// The default [`EngineOptions::progress_spindown`]: `DIASPORA_MERCURY_SPINDOWN_US`
/// microseconds when set, else [`DEFAULT_SPINDOWN`].
fn default_spindown() -> Duration {
    std::env::var("DIASPORA_MERCURY_SPINDOWN_US")
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .map(Duration::from_micros)
        .unwrap_or(DEFAULT_SPINDOWN)
}

/// Default polling time of the progress thread after a completion.
pub const DEFAULT_SPINDOWN: Duration = Duration::from_micros(100);

impl std::fmt::Debug for EngineOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineOptions")
            .field("listen", &self.listen)
            .field("handler_pool", &self.handler_pool.is_some())
            .field("handler_threads", &self.handler_threads)
            .field("progress_timeout", &self.progress_timeout)
            .field("shutdown_timeout", &self.shutdown_timeout)
            .field("progress_spindown", &self.progress_spindown)
            .finish()
    }
}

/// Operations that are under way in Mercury, so that shutdown can cancel them.
#[derive(Default)]
struct Inflight {
    handles: Mutex<HashSet<usize>>,
    bulk_ops: Mutex<HashSet<usize>>,
}

impl Inflight {
    fn handles(&self) -> MutexGuard<'_, HashSet<usize>> {
        self.handles.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn bulk_ops(&self) -> MutexGuard<'_, HashSet<usize>> {
        self.bulk_ops.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn is_empty(&self) -> bool {
        self.handles().is_empty() && self.bulk_ops().is_empty()
    }
}

/// Raw pointers moved to the progress thread.
struct RawParts {
    class: *mut hg::hg_class_t,
    context: *mut hg::hg_context_t,
}
// SAFETY: Mercury classes and contexts may be used from any thread; the progress thread is the
// only one that progresses and finalises them.
unsafe impl Send for RawParts {}

type Handler = dyn Fn(Request) + Send + Sync;

/// What `HG_Register_data` keeps for an RPC with a handler.
struct HandlerEntry {
    handler: Arc<Handler>,
    engine: Weak<Inner>,
}

struct Inner {
    class: *mut hg::hg_class_t,
    context: *mut hg::hg_context_t,
    info: String,
    listening: bool,
    stop: Arc<AtomicBool>,
    progress: Mutex<Option<JoinHandle<()>>>,
    progress_thread: ThreadId,
    registered: Mutex<HashSet<u64>>,
    inflight: Arc<Inflight>,
    handler_pool: Option<Arc<dyn ThreadPool>>,
    owns_handler_pool: bool,
    /// Handlers replaced by a later registration of their id, freed with the engine.
    retired_handlers: Mutex<Vec<usize>>,
    /// Strings given to `HG_Init_opt`, kept for the class's lifetime.
    _init_strings: Vec<CString>,
}

// SAFETY: the raw class and context are used through Mercury's thread-safe API; the Rust state
// is behind mutexes or atomics.
unsafe impl Send for Inner {}
// SAFETY: as above.
unsafe impl Sync for Inner {}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if std::thread::current().id() != self.progress_thread {
            let handle = self
                .progress
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(handle) = handle {
                let _ = handle.join();
            }
        }
        // Otherwise the progress thread itself dropped the last handle: it finalises the class
        // when its loop ends, right after the current callback.
        for entry in self
            .retired_handlers
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            // SAFETY: each was leaked by `Engine::register` and is no longer registered.
            unsafe { free_handler_entry(entry as *mut c_void) };
        }
        if let Some(pool) = self.handler_pool.take() {
            if self.owns_handler_pool {
                // The last handle may have been dropped by a handler running on this very
                // pool: let another thread wait for the pool's workers.
                let _ = std::thread::Builder::new()
                    .name("diaspora-hg-pool-drop".into())
                    .spawn(move || drop(pool));
            }
        }
    }
}

/// Runs every completed callback; returns how many ran.
fn trigger_all(context: *mut hg::hg_context_t) -> usize {
    let mut total = 0;
    loop {
        let mut count: u32 = 0;
        // SAFETY: the context is valid until the progress thread destroys it.
        let ret = unsafe { hg::HG_Trigger(context, 0, 256, &mut count) };
        if ret != hg::HG_SUCCESS || count == 0 {
            return total;
        }
        total += count as usize;
    }
}

fn progress_loop(
    raw: RawParts,
    stop: Arc<AtomicBool>,
    inflight: Arc<Inflight>,
    timeout: Duration,
    shutdown_timeout: Duration,
    spindown: Duration,
) {
    let timeout_ms = timeout.as_millis().clamp(1, u32::MAX as u128) as u32;
    let mut reported = false;
    let mut last_activity = Instant::now();
    while !stop.load(Ordering::Acquire) {
        let now = Instant::now();
        if trigger_all(raw.context) > 0 {
            last_activity = now;
        }
        let wait_ms = if now.duration_since(last_activity) < spindown {
            0
        } else {
            timeout_ms
        };
        // SAFETY: as in trigger_all.
        let ret = unsafe { hg::HG_Progress(raw.context, wait_ms) };
        if ret == hg::HG_SUCCESS {
            last_activity = Instant::now();
        }
        if ret != hg::HG_SUCCESS && ret != hg::HG_TIMEOUT {
            if !reported {
                eprintln!("diaspora-stream: {}", hg_error("HG_Progress", ret));
                reported = true;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    // Shutdown: cancel what is still under way and let the callbacks run.
    for &h in inflight.handles().iter() {
        // SAFETY: the handle is in the set until its callback destroys it, which only happens
        // on this thread.
        unsafe {
            hg::HG_Cancel(h as hg::hg_handle_t);
        }
    }
    for &op in inflight.bulk_ops().iter() {
        // SAFETY: as above, for bulk operation ids.
        unsafe {
            hg::HG_Bulk_cancel(op as hg::hg_op_id_t);
        }
    }
    let deadline = Instant::now() + shutdown_timeout;
    loop {
        trigger_all(raw.context);
        if inflight.is_empty() || Instant::now() >= deadline {
            break;
        }
        // SAFETY: as in trigger_all.
        unsafe {
            hg::HG_Progress(raw.context, 10);
        }
    }
    // SAFETY: nothing else uses the context and class any more: every Rust handle on the
    // engine is gone (this runs after the last `Inner` was dropped).
    unsafe {
        let ret = hg::HG_Context_destroy(raw.context);
        if ret != hg::HG_SUCCESS {
            eprintln!(
                "diaspora-stream: {} (operations still pending); the Mercury class is leaked",
                hg_error("HG_Context_destroy", ret)
            );
            return;
        }
        let ret = hg::HG_Finalize(raw.class);
        if ret != hg::HG_SUCCESS {
            eprintln!("diaspora-stream: {}", hg_error("HG_Finalize", ret));
        }
    }
}

/// Bytes crossing the proc callback: what to encode, or what was decoded.
struct Payload {
    send: *const u8,
    send_len: usize,
    expected: usize,
    received: Vec<u8>,
}

impl Payload {
    fn sending(bytes: &[u8]) -> Self {
        Payload {
            send: bytes.as_ptr(),
            send_len: bytes.len(),
            expected: 0,
            received: Vec::new(),
        }
    }
    fn receiving(expected: usize) -> Self {
        Payload {
            send: std::ptr::null(),
            send_len: 0,
            expected,
            received: Vec::new(),
        }
    }
}

/// The proc callback of every RPC: copies the payload bytes in or out.
unsafe extern "C" fn payload_proc(proc_: hg::hg_proc_t, data: *mut c_void) -> hg::hg_return_t {
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
            let pool = engine.handler_pool.clone();
            let request = Request {
                handle: RawHandle(handle),
                id,
                input: Bytes::from(payload.received),
                engine: Engine { inner: engine },
                responded: false,
            };
            let job: crate::thread_pool::Job = Box::new(move || handler(request));
            match pool {
                Some(pool) => pool.push_work(job, DEFAULT_PRIORITY),
                None => job(),
            }
            hg::HG_SUCCESS
        }
    })
}

struct CallState<T> {
    promise: Arc<Promise<T>>,
    inflight: Arc<Inflight>,
}

/// Callback of [`Engine::forward_then`].
pub type ForwardCallback = Box<dyn FnOnce(Result<Bytes>) + Send + 'static>;

/// Identifies a request sent by [`Engine::forward_then`], to cancel it.
#[derive(Debug)]
pub struct ForwardToken {
    handle: usize,
    inflight: Weak<Inflight>,
}

impl ForwardToken {
    /// Asks Mercury to cancel the request if it has not completed: its callback then runs
    /// (on the progress thread) with a cancellation error. The peer may already have received
    /// and processed the request. Does nothing once the request has completed.
    pub fn cancel(&self) {
        let Some(inflight) = self.inflight.upgrade() else {
            return;
        };
        // The completion callback removes the handle under this lock before destroying it, so
        // while the lock is held and the handle is listed, it is alive.
        let handles = inflight.handles();
        if handles.contains(&self.handle) {
            // SAFETY: see above; HG_Cancel may be called from any thread.
            unsafe {
                hg::HG_Cancel(self.handle as hg::hg_handle_t);
            }
        }
    }
}

/// Where a forward's result goes.
enum ForwardCompletion {
    Promise(Arc<Promise<Bytes>>),
    Callback(ForwardCallback),
}

impl ForwardCompletion {
    fn into_callback(self) -> ForwardCallback {
        match self {
            ForwardCompletion::Callback(callback) => callback,
            ForwardCompletion::Promise(promise) => Box::new(move |r| promise.set(r)),
        }
    }
}

struct ForwardState {
    completion: ForwardCompletion,
    inflight: Arc<Inflight>,
}

unsafe extern "C" fn forward_done(info: *const hg::hg_cb_info) -> hg::hg_return_t {
    guard("forward completion", || {
        // SAFETY: `arg` is the Box leaked by `Engine::forward`, reclaimed once here.
        unsafe {
            let info = &*info;
            let state = Box::from_raw(info.arg as *mut ForwardState);
            let handle = info.info.forward.handle;
            let result = if info.ret == hg::HG_SUCCESS {
                let mut payload =
                    Payload::receiving(hg::HG_Get_output_payload_size(handle) as usize);
                let ret = hg::HG_Get_output(handle, &mut payload as *mut Payload as *mut c_void);
                if ret == hg::HG_SUCCESS {
                    hg::HG_Free_output(handle, &mut payload as *mut Payload as *mut c_void);
                    Ok(Bytes::from(payload.received))
                } else {
                    Err(hg_error("HG_Get_output", ret))
                }
            } else {
                Err(hg_error("HG_Forward", info.ret))
            };
            {
                // Held across the destroy: `ForwardToken::cancel` checks the set under it.
                let mut handles = state.inflight.handles();
                handles.remove(&(handle as usize));
                hg::HG_Destroy(handle);
            }
            match state.completion {
                ForwardCompletion::Promise(promise) => promise.set(result),
                ForwardCompletion::Callback(callback) => {
                    if let Err(payload) =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| callback(result)))
                    {
                        eprintln!(
                            "diaspora-stream: a forward callback panicked: {}",
                            panic_message(&*payload)
                        );
                    }
                }
            }
            hg::HG_SUCCESS
        }
    })
}

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

/// A Mercury engine: class, context, progress thread and registered RPCs.
///
/// Cheap to clone (all clones share the engine).
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("info", &self.inner.info)
            .field("listening", &self.inner.listening)
            .finish()
    }
}

/// Mercury's shared-memory plugin names its files after the process id
/// (`/dev/shm/na_sm-<pid>-<n>`, and a directory `/tmp/na_sm-<pid>-<n>` holding its socket) and
/// fails to start when they exist. A process killed before it finalised Mercury leaves them
/// behind, and a later process that gets the same id then cannot use `na+sm`. When starting
/// `na+sm` fails, the files named after this process's id are removed if they are older than
/// the process and nothing listens on their socket any more (a live process in another PID
/// namespace sharing these directories keeps its files), and Mercury is tried once more.
/// Returns whether anything was removed.
fn remove_stale_sm_files() -> bool {
    match process_start_time() {
        Some(started) => remove_stale_sm_files_in(
            std::path::Path::new("/dev/shm"),
            std::path::Path::new("/tmp"),
            std::process::id(),
            started,
        ),
        None => false,
    }
}

/// This process's start time, from `/proc` (`None` where there is no `/proc`).
fn process_start_time() -> Option<std::time::SystemTime> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let boot: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    let me = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Field 22 (start time, in clock ticks since boot), counted after the command name,
    // which ends at the last ')'.
    let after = &me[me.rfind(')')? + 2..];
    let ticks: u64 = after.split_whitespace().nth(19)?.parse().ok()?;
    // Linux reports these ticks at USER_HZ, 100 per second.
    Some(std::time::UNIX_EPOCH + Duration::from_secs(boot) + Duration::from_millis(ticks * 10))
}

/// The work of [`remove_stale_sm_files`], on given directories (for tests).
fn remove_stale_sm_files_in(
    shm_dir: &std::path::Path,
    tmp_dir: &std::path::Path,
    pid: u32,
    started: std::time::SystemTime,
) -> bool {
    let prefix = format!("na_sm-{pid}-");
    let older = |path: &std::path::Path| {
        path.symlink_metadata()
            .and_then(|m| m.modified())
            .is_ok_and(|m| m < started)
    };
    let Ok(entries) = std::fs::read_dir(tmp_dir) else {
        return false;
    };
    let mut removed = false;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let Some(rest) = name.strip_prefix(&prefix) else {
            continue;
        };
        if rest.is_empty() || !rest.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let dir = entry.path();
        let sock = dir.join("sock");
        // Stale only if its socket is left with no listener.
        let refused = matches!(
            std::os::unix::net::UnixStream::connect(&sock),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused
        );
        if !refused || !older(&dir) || !older(&sock) {
            continue;
        }
        removed |= std::fs::remove_dir_all(&dir).is_ok();
        let shm = shm_dir.join(name);
        if older(&shm) {
            removed |= std::fs::remove_file(&shm).is_ok();
        }
    }
    removed
}

/// The authorisation key Margo picks on Slingshot (`cxi`) when none is given: with several
/// VNIs in `SLINGSHOT_VNIS` (a comma-separated list), the second one, which the resource
/// manager allocates to the job (`"0:0:1"`: service and VNI from the environment, index 1);
/// otherwise none, and libfabric chooses.
fn cxi_default_auth_key(info: &str, slingshot_vnis: Option<&str>) -> Option<String> {
    let several = slingshot_vnis.is_some_and(|v| v.contains(','));
    (info.contains("cxi") && several).then(|| "0:0:1".to_string())
}

/// `HG_Init`, or `HG_Init_opt` when settings are given (its 2.2 layout of `hg_init_info` is
/// the prefix of the current one, and every field set here belongs to it).
fn init_class(
    info: &CString,
    listen: bool,
    transport: &TransportOptions,
) -> Result<(*mut hg::hg_class_t, Vec<CString>)> {
    if *transport == TransportOptions::default() {
        // SAFETY: plain initialisation with a valid C string.
        return Ok((
            unsafe { hg::HG_Init(info.as_ptr(), u8::from(listen)) },
            Vec::new(),
        ));
    }
    let cstring = |what: &str, s: &Option<String>| -> Result<Option<CString>> {
        s.as_deref()
            .map(|s| {
                CString::new(s)
                    .map_err(|_| Error::InvalidArgument(format!("{what} {s:?} contains NUL")))
            })
            .transpose()
    };
    let auth_key = cstring("auth_key", &transport.auth_key)?;
    let ip_subnet = cstring("ip_subnet", &transport.ip_subnet)?;
    let sm_info = cstring("sm_info_string", &transport.sm_info_string)?;
    let ptr = |c: &Option<CString>| c.as_ref().map_or(std::ptr::null(), |c| c.as_ptr());
    // SAFETY: plain C data; zero fields select Mercury's defaults (Margo starts from zeros
    // too; a zero `max_contexts` is taken as one).
    let mut init: hg::hg_init_info = unsafe { std::mem::zeroed() };
    init.na_init_info.auth_key = ptr(&auth_key);
    init.na_init_info.ip_subnet = ptr(&ip_subnet);
    init.sm_info_string = ptr(&sm_info);
    if transport.na_no_block {
        init.na_init_info.progress_mode |= hg::NA_NO_BLOCK as u8;
    }
    if transport.na_no_retry {
        init.na_init_info.progress_mode |= hg::NA_NO_RETRY as u8;
    }
    init.na_init_info.max_contexts = transport.max_contexts.unwrap_or(0);
    init.na_init_info.max_unexpected_size = transport.max_unexpected_size.unwrap_or(0);
    init.na_init_info.max_expected_size = transport.max_expected_size.unwrap_or(0);
    init.request_post_init = transport.request_post_init.unwrap_or(0);
    // `hg_uint32_t` before Mercury 2.4, `int32_t` since (-1: never grow).
    init.request_post_incr = transport.request_post_incr.unwrap_or(0) as _;
    init.na_init_info.request_mem_device = transport.na_request_mem_device;
    init.checksum_level = match transport.checksum_level.as_deref() {
        Some("rpc_headers") => hg::HG_CHECKSUM_RPC_HEADERS,
        Some("rpc_payload") => hg::HG_CHECKSUM_RPC_PAYLOAD,
        _ => hg::HG_CHECKSUM_NONE,
    };
    init.na_init_info.addr_format = match transport.na_addr_format.as_deref() {
        Some("ipv4") => hg::NA_ADDR_IPV4,
        Some("ipv6") => hg::NA_ADDR_IPV6,
        Some("native") => hg::NA_ADDR_NATIVE,
        _ => hg::NA_ADDR_UNSPEC,
    };
    init.auto_sm = u8::from(transport.auto_sm);
    init.no_bulk_eager = u8::from(transport.no_bulk_eager);
    init.no_loopback = u8::from(transport.no_loopback);
    init.stats = u8::from(transport.stats);
    // SAFETY: `init` outlives the call, and the strings it points to live as long as the
    // engine (the caller keeps them), whether or not Mercury copies them.
    let class = unsafe { hg::HG_Init_opt(info.as_ptr(), u8::from(listen), &init) };
    Ok((
        class,
        [auth_key, ip_subnet, sm_info]
            .into_iter()
            .flatten()
            .collect(),
    ))
}

impl Engine {
    /// Starts Mercury with `info` (a transport such as `na+sm`, `ofi+tcp`, or a full address
    /// such as `ofi+tcp://127.0.0.1:5000`) and the progress thread.
    pub fn new(info: &str, options: EngineOptions) -> Result<Engine> {
        let c_info = CString::new(info)
            .map_err(|_| Error::InvalidArgument(format!("transport {info:?} contains NUL")))?;
        let mut transport = options.transport.clone();
        if transport.auth_key.is_none() {
            transport.auth_key =
                cxi_default_auth_key(info, std::env::var("SLINGSHOT_VNIS").ok().as_deref());
        }
        let (mut class, mut init_strings) = init_class(&c_info, options.listen, &transport)?;
        let shared_memory = info.starts_with("na+sm") || options.transport.auto_sm;
        if class.is_null() && shared_memory && remove_stale_sm_files() {
            (class, init_strings) = init_class(&c_info, options.listen, &transport)?;
        }
        if class.is_null() {
            return Err(Error::Transport {
                operation: format!("HG_Init({info:?})"),
                code: hg::HG_PROTONOSUPPORT as i32,
                message: "Mercury could not initialise this transport (is the plugin built in, \
                          and is the address valid here?)"
                    .into(),
            });
        }
        // SAFETY: `class` is valid.
        let context = unsafe { hg::HG_Context_create(class) };
        if context.is_null() {
            // SAFETY: `class` is valid and has no context.
            unsafe {
                hg::HG_Finalize(class);
            }
            return Err(hg_error("HG_Context_create", hg::HG_NOMEM));
        }
        let stop = Arc::new(AtomicBool::new(false));
        let inflight = Arc::new(Inflight::default());
        let raw = RawParts { class, context };
        let (stop2, inflight2) = (stop.clone(), inflight.clone());
        let (timeout, shutdown_timeout, spindown) = (
            options.progress_timeout,
            options.shutdown_timeout,
            options.progress_spindown,
        );
        let spawned = std::thread::Builder::new()
            .name("diaspora-hg-progress".into())
            .spawn(move || {
                progress_loop(raw, stop2, inflight2, timeout, shutdown_timeout, spindown)
            });
        let progress = match spawned {
            Ok(p) => p,
            Err(e) => {
                // SAFETY: nothing else uses them yet.
                unsafe {
                    hg::HG_Context_destroy(context);
                    hg::HG_Finalize(class);
                }
                return Err(Error::Driver {
                    driver: "mercury",
                    message: format!("could not start the progress thread: {e}"),
                });
            }
        };
        let (handler_pool, owns_handler_pool) = match options.handler_pool {
            // A pool that runs jobs inline would run handlers on the progress thread, where a
            // handler waiting for Mercury would wait forever.
            Some(pool) if pool.thread_count() > 0 => (Some(pool), false),
            _ => (
                Some(Arc::new(StdThreadPool::new(options.handler_threads.max(1)))
                    as Arc<dyn ThreadPool>),
                true,
            ),
        };
        Ok(Engine {
            inner: Arc::new(Inner {
                class,
                context,
                info: info.to_string(),
                listening: options.listen,
                stop,
                progress_thread: progress.thread().id(),
                progress: Mutex::new(Some(progress)),
                registered: Mutex::new(HashSet::new()),
                inflight,
                handler_pool,
                owns_handler_pool,
                retired_handlers: Mutex::new(Vec::new()),
                _init_strings: init_strings,
            }),
        })
    }

    /// The transport string the engine was started with.
    pub fn info(&self) -> &str {
        &self.inner.info
    }

    /// Whether the engine listens for incoming connections.
    pub fn is_listening(&self) -> bool {
        self.inner.listening
    }

    /// This engine's own address, as a string peers can look up.
    pub fn self_address(&self) -> Result<String> {
        let mut addr = hg::HG_ADDR_NULL;
        // SAFETY: the class is valid; the address is freed by the Address guard.
        hg_check("HG_Addr_self", unsafe {
            hg::HG_Addr_self(self.inner.class, &mut addr)
        })?;
        Address {
            raw: addr,
            engine: self.inner.clone(),
        }
        .to_text()
    }

    /// Resolves a peer's address string (blocks until Mercury resolves it).
    pub fn lookup(&self, address: &str) -> Result<Address> {
        let c_addr = CString::new(address)
            .map_err(|_| Error::InvalidArgument(format!("address {address:?} contains NUL")))?;
        let mut addr = hg::HG_ADDR_NULL;
        // SAFETY: the class is valid and `c_addr` outlives the call.
        hg_check(&format!("HG_Addr_lookup({address:?})"), unsafe {
            hg::HG_Addr_lookup2(self.inner.class, c_addr.as_ptr(), &mut addr)
        })?;
        Ok(Address {
            raw: addr,
            engine: self.inner.clone(),
        })
    }

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
            handler: Arc::new(handler),
            engine: Arc::downgrade(&self.inner),
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
                .push(old as usize);
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

    /// Sends `payload` as a request of RPC `id` to `target`; the future gives the response
    /// payload. Waiting on it with a timeout does not cancel the request.
    pub fn forward(&self, target: &Address, id: u64, payload: &[u8]) -> Future<Bytes> {
        let (promise, future) = promise::<Bytes>();
        match self.try_forward(target, id, payload, ForwardCompletion::Promise(promise)) {
            Ok(_) => future,
            Err((e, _)) => Future::failed(e),
        }
    }

    /// Like [`Engine::forward`], with a token that cancels the request (for example when
    /// its caller stops waiting, so that an unanswered request does not stay in flight).
    pub fn forward_cancellable(
        &self,
        target: &Address,
        id: u64,
        payload: &[u8],
    ) -> (Future<Bytes>, ForwardToken) {
        let (promise, future) = promise::<Bytes>();
        let token = self.forward_then(target, id, payload, Box::new(move |r| promise.set(r)));
        (future, token)
    }

    /// Like [`Engine::forward`], but calls `callback` with the response (or the error) instead
    /// of completing a future. The callback runs on the progress thread: it must be quick and
    /// must not wait for other Mercury operations. It is called exactly once, also when the
    /// request cannot be sent (then before this returns).
    pub fn forward_then(
        &self,
        target: &Address,
        id: u64,
        payload: &[u8],
        callback: ForwardCallback,
    ) -> ForwardToken {
        self.try_forward_then(target, id, payload, callback)
            .unwrap_or_else(|(e, callback)| {
                callback(Err(e));
                ForwardToken {
                    handle: 0,
                    inflight: Weak::new(),
                }
            })
    }

    /// Like [`Engine::forward_then`], but a request that cannot be sent is an error returned
    /// with the callback, which then never runs.
    pub fn try_forward_then(
        &self,
        target: &Address,
        id: u64,
        payload: &[u8],
        callback: ForwardCallback,
    ) -> std::result::Result<ForwardToken, (Error, ForwardCallback)> {
        match self.try_forward(target, id, payload, ForwardCompletion::Callback(callback)) {
            Ok(handle) => Ok(ForwardToken {
                handle,
                inflight: Arc::downgrade(&self.inner.inflight),
            }),
            Err((e, completion)) => Err((e, completion.into_callback())),
        }
    }

    fn try_forward(
        &self,
        target: &Address,
        id: u64,
        payload: &[u8],
        completion: ForwardCompletion,
    ) -> std::result::Result<usize, (Error, ForwardCompletion)> {
        if let Err(e) = self.register_client(id) {
            return Err((e, completion));
        }
        let mut handle = hg::HG_HANDLE_NULL;
        // SAFETY: context and address are valid; the handle is destroyed by `forward_done` or
        // below on failure.
        if let Err(e) = hg_check("HG_Create", unsafe {
            hg::HG_Create(self.inner.context, target.raw, id, &mut handle)
        }) {
            return Err((e, completion));
        }
        let state = Box::new(ForwardState {
            completion,
            inflight: self.inner.inflight.clone(),
        });
        self.inner.inflight.handles().insert(handle as usize);
        let mut input = Payload::sending(payload);
        let arg = Box::into_raw(state);
        // SAFETY: the payload is encoded before HG_Forward returns; `arg` is reclaimed by
        // `forward_done`, or below if the forward could not start.
        let ret = unsafe {
            hg::HG_Forward(
                handle,
                Some(forward_done),
                arg as *mut c_void,
                &mut input as *mut Payload as *mut c_void,
            )
        };
        if ret != hg::HG_SUCCESS {
            // SAFETY: the callback will not run, so the state and the handle are still ours.
            let state = unsafe {
                let state = Box::from_raw(arg);
                self.inner.inflight.handles().remove(&(handle as usize));
                hg::HG_Destroy(handle);
                state
            };
            let e = hg_error(format!("HG_Forward(rpc {id:#018x})"), ret);
            return Err((e, state.completion));
        }
        Ok(handle as usize)
    }

    /// Starts a bulk transfer between `local` and the peer memory `remote` owned by `origin`:
    /// [`BulkOp::Pull`] copies the peer's bytes into `local`, [`BulkOp::Push`] copies `local`
    /// into the peer's memory. `local` is held until the transfer completes and handed back by
    /// [`BulkTransfer::wait`].
    pub fn transfer(
        &self,
        op: BulkOp,
        remote: RemoteRegion<'_>,
        local: LocalBulk,
        local_offset: usize,
        size: usize,
    ) -> BulkTransfer {
        let RemoteRegion {
            origin,
            bulk: remote,
            offset: remote_offset,
        } = remote;
        let (promise, future) = promise::<BulkSlot>();
        let transfer = BulkTransfer { future };
        if op == BulkOp::Pull && local.access == BulkAccess::ReadOnly {
            promise.set(Err(Error::InvalidArgument(
                "cannot pull into a read-only bulk".into(),
            )));
            return transfer;
        }
        if local_offset + size > local.size() || remote_offset + size > remote.size() {
            promise.set(Err(Error::InvalidArgument(format!(
                "bulk transfer of {size} bytes at local offset {local_offset} / remote offset \
                 {remote_offset} exceeds the local ({}) or remote ({}) size",
                local.size(),
                remote.size()
            ))));
            return transfer;
        }
        // Keep the remote handle alive for the transfer (Mercury refcount).
        // SAFETY: the handle is valid.
        unsafe {
            hg::HG_Bulk_ref_incr(remote.raw);
        }
        let local_raw = local.raw;
        let state = Box::into_raw(Box::new(BulkState {
            promise,
            inflight: self.inner.inflight.clone(),
            local: Some(local),
            remote: remote.raw,
            op_id: 0,
        }));
        let mut op_id = hg::HG_OP_ID_NULL;
        // The op id must be in the in-flight set before the callback can remove it, so hold
        // the set's lock across the call.
        let mut ops = self.inner.inflight.bulk_ops();
        // SAFETY: both handles are valid and kept alive by `state` until `bulk_done`.
        let ret = unsafe {
            hg::HG_Bulk_transfer(
                self.inner.context,
                Some(bulk_done),
                state as *mut c_void,
                match op {
                    BulkOp::Pull => hg::HG_BULK_PULL,
                    BulkOp::Push => hg::HG_BULK_PUSH,
                },
                origin.raw,
                remote.raw,
                remote_offset as hg::hg_size_t,
                local_raw,
                local_offset as hg::hg_size_t,
                size as hg::hg_size_t,
                &mut op_id,
            )
        };
        if ret != hg::HG_SUCCESS {
            drop(ops);
            // SAFETY: the callback will not run: the state is still ours.
            let state = unsafe { Box::from_raw(state) };
            // SAFETY: undo the reference taken above.
            unsafe {
                hg::HG_Bulk_free(state.remote);
            }
            state.promise.set(Err(hg_error("HG_Bulk_transfer", ret)));
            return transfer;
        }
        ops.insert(op_id as usize);
        // SAFETY: `state` is alive until `bulk_done`, which needs the ops lock we hold to
        // remove its id; recording the id here is therefore race-free.
        unsafe {
            (*state).op_id = op_id as usize;
        }
        drop(ops);
        transfer
    }
}

/// The peer side of a bulk transfer: whose memory, which handle, from which byte.
#[derive(Clone, Copy, Debug)]
pub struct RemoteRegion<'a> {
    /// The peer that owns the memory (often [`Request::source`]).
    pub origin: &'a Address,
    /// The peer's handle.
    pub bulk: &'a RemoteBulk,
    /// First byte of the peer's memory to transfer.
    pub offset: usize,
}

impl<'a> RemoteRegion<'a> {
    /// The region of `bulk`, owned by `origin`, starting at `offset`.
    pub fn new(origin: &'a Address, bulk: &'a RemoteBulk, offset: usize) -> Self {
        RemoteRegion {
            origin,
            bulk,
            offset,
        }
    }
}

/// Direction of a bulk transfer, seen from the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BulkOp {
    /// Copy the peer's memory into local memory (RDMA read).
    Pull,
    /// Copy local memory into the peer's memory (RDMA write).
    Push,
}

/// What a peer may do with exposed memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BulkAccess {
    /// The peer may read it.
    ReadOnly,
    /// The peer may write it.
    WriteOnly,
    /// The peer may read and write it.
    ReadWrite,
}

enum BulkMemory {
    Shared(Vec<Bytes>),
    Owned(Vec<u8>),
    /// Memory the caller of [`LocalBulk::from_raw_segments`] keeps alive.
    Borrowed(Vec<(*mut u8, usize)>),
}

/// Local memory exposed for RDMA, with the Mercury bulk handle describing it.
///
/// The memory belongs to the bulk: shared read-only [`Bytes`] segments (zero copy from a
/// [`crate::DataView`]) or an owned buffer. It is freed with the bulk, after any transfer.
pub struct LocalBulk {
    raw: hg::hg_bulk_t,
    memory: BulkMemory,
    access: BulkAccess,
    size: usize,
    _engine: Arc<Inner>,
}

// SAFETY: the bulk handle is used through Mercury's thread-safe API and the memory is owned.
unsafe impl Send for LocalBulk {}
// SAFETY: shared access only reads the memory (transfers take the bulk by value).
unsafe impl Sync for LocalBulk {}

impl std::fmt::Debug for LocalBulk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalBulk")
            .field("size", &self.size)
            .field("access", &self.access)
            .finish()
    }
}

fn create_bulk(
    engine: &Engine,
    segments: &[(*mut u8, usize)],
    access: BulkAccess,
) -> Result<hg::hg_bulk_t> {
    let segments: Vec<(*mut u8, usize)> =
        segments.iter().copied().filter(|&(_, n)| n > 0).collect();
    if segments.is_empty() {
        return Err(Error::InvalidArgument(
            "a bulk handle needs at least one non-empty segment".into(),
        ));
    }
    let mut ptrs: Vec<*mut c_void> = segments.iter().map(|&(p, _)| p as *mut c_void).collect();
    let sizes: Vec<hg::hg_size_t> = segments.iter().map(|&(_, n)| n as hg::hg_size_t).collect();
    let flags = match access {
        BulkAccess::ReadOnly => hg::HG_BULK_READ_ONLY,
        BulkAccess::WriteOnly => hg::HG_BULK_WRITE_ONLY,
        BulkAccess::ReadWrite => hg::HG_BULK_READWRITE,
    };
    let mut raw = hg::HG_BULK_NULL;
    // SAFETY: the pointers and sizes describe memory owned by the LocalBulk being built.
    hg_check("HG_Bulk_create", unsafe {
        hg::HG_Bulk_create(
            engine.inner.class,
            ptrs.len() as u32,
            ptrs.as_mut_ptr(),
            sizes.as_ptr(),
            flags as u8,
            &mut raw,
        )
    })?;
    Ok(raw)
}

impl LocalBulk {
    /// Exposes read-only segments (for example a [`crate::DataView`]'s) without copying them.
    pub fn expose(engine: &Engine, segments: Vec<Bytes>) -> Result<LocalBulk> {
        let raw_segments: Vec<(*mut u8, usize)> = segments
            .iter()
            .map(|s| (s.as_ptr() as *mut u8, s.len()))
            .collect();
        let raw = create_bulk(engine, &raw_segments, BulkAccess::ReadOnly)?;
        Ok(LocalBulk {
            raw,
            size: segments.iter().map(Bytes::len).sum(),
            memory: BulkMemory::Shared(segments),
            access: BulkAccess::ReadOnly,
            _engine: engine.inner.clone(),
        })
    }

    /// Exposes an owned buffer that peers may write (and read, with
    /// [`BulkAccess::ReadWrite`]); get it back with [`LocalBulk::into_vec`].
    pub fn from_vec(engine: &Engine, mut buffer: Vec<u8>, access: BulkAccess) -> Result<LocalBulk> {
        let raw = create_bulk(engine, &[(buffer.as_mut_ptr(), buffer.len())], access)?;
        Ok(LocalBulk {
            raw,
            size: buffer.len(),
            memory: BulkMemory::Owned(buffer),
            access,
            _engine: engine.inner.clone(),
        })
    }

    /// Exposes memory this bulk does not own, for example an application's buffer that a
    /// blocking call fills by RDMA before it returns.
    ///
    /// # Safety
    ///
    /// Every segment must stay valid (and, unless `access` is read-only, not be read or written
    /// by anything else) until the bulk is dropped and every transfer or remote operation on it
    /// has completed, including operations a peer performs with the serialized handle.
    pub unsafe fn from_raw_segments(
        engine: &Engine,
        segments: &[(*mut u8, usize)],
        access: BulkAccess,
    ) -> Result<LocalBulk> {
        let raw = create_bulk(engine, segments, access)?;
        Ok(LocalBulk {
            raw,
            size: segments.iter().map(|s| s.1).sum(),
            memory: BulkMemory::Borrowed(segments.to_vec()),
            access,
            _engine: engine.inner.clone(),
        })
    }

    /// Total size in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// What peers may do with the memory.
    pub fn access(&self) -> BulkAccess {
        self.access
    }

    /// The memory's segments.
    pub fn segments(&self) -> Vec<&[u8]> {
        match &self.memory {
            BulkMemory::Shared(s) => s.iter().map(|b| b.as_ref()).collect(),
            BulkMemory::Owned(v) => vec![v.as_slice()],
            // SAFETY: the creator guarantees the memory is valid while the bulk lives.
            BulkMemory::Borrowed(segs) => segs
                .iter()
                .map(|&(p, n)| unsafe { std::slice::from_raw_parts(p as *const u8, n) })
                .collect(),
        }
    }

    /// The owned buffer (`None` for shared segments).
    pub fn into_vec(mut self) -> Option<Vec<u8>> {
        match std::mem::replace(&mut self.memory, BulkMemory::Shared(Vec::new())) {
            BulkMemory::Owned(v) => Some(v),
            BulkMemory::Shared(_) | BulkMemory::Borrowed(_) => None,
        }
    }

    /// The handle as Mercury serializes it for a peer (the bytes `hg_proc_hg_bulk_t` writes
    /// after its `u64` size), to be sent inside an RPC payload.
    pub fn serialize(&self) -> Result<Vec<u8>> {
        // SAFETY: the handle is valid; the buffer has the size Mercury asked for.
        unsafe {
            let n = hg::HG_Bulk_get_serialize_size(self.raw, 0) as usize;
            let mut out = vec![0u8; n];
            hg_check(
                "HG_Bulk_serialize",
                hg::HG_Bulk_serialize(
                    out.as_mut_ptr() as *mut c_void,
                    n as hg::hg_size_t,
                    0,
                    self.raw,
                ),
            )?;
            Ok(out)
        }
    }
}

impl Drop for LocalBulk {
    fn drop(&mut self) {
        // SAFETY: the handle is ours; transfers hold the bulk by value so none is running.
        unsafe {
            hg::HG_Bulk_free(self.raw);
        }
    }
}

/// A peer's memory, described by a bulk handle it sent in a payload.
pub struct RemoteBulk {
    raw: hg::hg_bulk_t,
    size: usize,
    _engine: Arc<Inner>,
}

// SAFETY: the handle is used through Mercury's thread-safe API.
unsafe impl Send for RemoteBulk {}
// SAFETY: as above.
unsafe impl Sync for RemoteBulk {}

impl std::fmt::Debug for RemoteBulk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteBulk")
            .field("size", &self.size)
            .finish()
    }
}

impl RemoteBulk {
    /// Rebuilds a peer's handle from its serialized bytes (see [`LocalBulk::serialize`]).
    pub fn deserialize(engine: &Engine, bytes: &[u8]) -> Result<RemoteBulk> {
        if bytes.is_empty() {
            return Err(Error::InvalidArgument("empty (null) bulk handle".into()));
        }
        let mut raw = hg::HG_BULK_NULL;
        // SAFETY: Mercury parses and validates the bytes.
        hg_check("HG_Bulk_deserialize", unsafe {
            hg::HG_Bulk_deserialize(
                engine.inner.class,
                &mut raw,
                bytes.as_ptr() as *const c_void,
                bytes.len() as hg::hg_size_t,
            )
        })?;
        // SAFETY: the handle is valid.
        let size = unsafe { hg::HG_Bulk_get_size(raw) } as usize;
        Ok(RemoteBulk {
            raw,
            size,
            _engine: engine.inner.clone(),
        })
    }

    /// Total size of the peer's memory.
    pub fn size(&self) -> usize {
        self.size
    }
}

impl Drop for RemoteBulk {
    fn drop(&mut self) {
        // SAFETY: the handle is ours (transfers hold their own reference).
        unsafe {
            hg::HG_Bulk_free(self.raw);
        }
    }
}

type BulkSlot = Arc<Mutex<Option<LocalBulk>>>;

struct BulkState {
    promise: Arc<Promise<BulkSlot>>,
    inflight: Arc<Inflight>,
    local: Option<LocalBulk>,
    remote: hg::hg_bulk_t,
    op_id: usize,
}

unsafe extern "C" fn bulk_done(info: *const hg::hg_cb_info) -> hg::hg_return_t {
    guard("bulk completion", || {
        // SAFETY: `arg` is the Box leaked by `Engine::transfer`, reclaimed once here.
        unsafe {
            let info = &*info;
            let ptr = info.arg as *mut BulkState;
            // Taking the lock orders this after `transfer` recorded the op id.
            let mut ops = (*ptr).inflight.bulk_ops();
            let mut state = Box::from_raw(ptr);
            ops.remove(&state.op_id);
            drop(ops);
            hg::HG_Bulk_free(state.remote);
            let local = state.local.take();
            let result =
                hg_check("HG_Bulk_transfer", info.ret).map(|()| Arc::new(Mutex::new(local)));
            state.promise.set(result);
            hg::HG_SUCCESS
        }
    })
}

/// A bulk transfer under way; [`BulkTransfer::wait`] gives the local bulk back.
pub struct BulkTransfer {
    future: Future<BulkSlot>,
}

impl std::fmt::Debug for BulkTransfer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BulkTransfer")
            .field("completed", &self.future.completed())
            .finish()
    }
}

impl BulkTransfer {
    /// Waits for the transfer and returns the local bulk.
    pub fn wait(self) -> Result<LocalBulk> {
        let slot = self.future.wait()?;
        let bulk = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
        bulk.ok_or(Error::Closed("bulk transfer"))
    }

    /// Waits at most `timeout`; `Ok(Err(self))` when it has not completed yet.
    pub fn wait_timeout(self, timeout: Duration) -> Result<std::result::Result<LocalBulk, Self>> {
        match self.future.wait_timeout(timeout)? {
            Some(slot) => {
                let bulk = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
                bulk.map(Ok).ok_or(Error::Closed("bulk transfer"))
            }
            None => Ok(Err(self)),
        }
    }

    /// Whether the transfer has completed.
    pub fn completed(&self) -> bool {
        self.future.completed()
    }
}

/// A peer's address, resolved by [`Engine::lookup`] or taken from a [`Request`].
pub struct Address {
    raw: hg::hg_addr_t,
    engine: Arc<Inner>,
}

// SAFETY: Mercury addresses may be used from any thread.
unsafe impl Send for Address {}
// SAFETY: as above.
unsafe impl Sync for Address {}

impl Address {
    fn to_text(&self) -> Result<String> {
        let mut size: hg::hg_size_t = 0;
        // SAFETY: the first call asks for the size, the second fills a buffer of that size.
        unsafe {
            hg_check(
                "HG_Addr_to_string",
                hg::HG_Addr_to_string(self.engine.class, std::ptr::null_mut(), &mut size, self.raw),
            )?;
            let mut buf = vec![0u8; size as usize];
            hg_check(
                "HG_Addr_to_string",
                hg::HG_Addr_to_string(
                    self.engine.class,
                    buf.as_mut_ptr() as *mut std::ffi::c_char,
                    &mut size,
                    self.raw,
                ),
            )?;
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            buf.truncate(end);
            String::from_utf8(buf).map_err(|_| Error::Transport {
                operation: "HG_Addr_to_string".into(),
                code: hg::HG_OTHER_ERROR as i32,
                message: "address is not UTF-8".into(),
            })
        }
    }
}

impl std::fmt::Display for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.to_text() {
            Ok(s) => f.write_str(&s),
            Err(_) => f.write_str("<unprintable address>"),
        }
    }
}

impl std::fmt::Debug for Address {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Address({self})")
    }
}

impl Clone for Address {
    fn clone(&self) -> Self {
        let mut raw = hg::HG_ADDR_NULL;
        // SAFETY: the address is valid; duplication only fails when memory runs out.
        let ret = unsafe { hg::HG_Addr_dup(self.engine.class, self.raw, &mut raw) };
        assert_eq!(ret, hg::HG_SUCCESS, "HG_Addr_dup failed");
        Address {
            raw,
            engine: self.engine.clone(),
        }
    }
}

impl Drop for Address {
    fn drop(&mut self) {
        // SAFETY: the address is ours and freed once.
        unsafe {
            hg::HG_Addr_free(self.engine.class, self.raw);
        }
    }
}

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
        let (promise, future) = promise::<()>();
        let inflight = self.engine.inner.inflight.clone();
        inflight.handles().insert(handle as usize);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cxi_auth_key_follows_margo() {
        assert_eq!(
            cxi_default_auth_key("ofi+cxi", Some("16369,16324")).as_deref(),
            Some("0:0:1")
        );
        assert_eq!(
            cxi_default_auth_key("cxi://cxi0", Some("16369,1,2")).as_deref(),
            Some("0:0:1")
        );
        assert_eq!(cxi_default_auth_key("ofi+cxi", Some("16369")), None);
        assert_eq!(cxi_default_auth_key("ofi+cxi", None), None);
        assert_eq!(cxi_default_auth_key("ofi+tcp", Some("1,2")), None);
    }

    #[test]
    fn stale_sm_files_of_this_pid_are_removed_and_others_kept() {
        use std::os::unix::net::UnixListener;
        let shm = tempfile::tempdir().unwrap();
        let tmp = tempfile::tempdir().unwrap();
        let (s, t) = (shm.path(), tmp.path());
        let plant = |name: &str, listening: bool| {
            std::fs::write(s.join(name), b"queues").unwrap();
            std::fs::create_dir(t.join(name)).unwrap();
            let l = UnixListener::bind(t.join(name).join("sock")).unwrap();
            listening.then_some(l)
        };
        plant("na_sm-4242-0", false); // dead: removed
        let _live = plant("na_sm-4242-1", true); // someone listens: kept
        plant("na_sm-42420-0", false); // another id: kept
        std::fs::write(s.join("na_sm-4242-2"), b"no socket dir").unwrap(); // kept
        let listing = |d: &std::path::Path| {
            let mut v: Vec<String> = std::fs::read_dir(d)
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            v.sort();
            v
        };
        // Files newer than the process are its own: nothing goes.
        let earlier = std::time::SystemTime::now() - Duration::from_secs(60);
        assert!(!remove_stale_sm_files_in(s, t, 4242, earlier));
        assert_eq!(listing(t).len(), 3);
        // For a process started after them, the dead instance's files go.
        let later = std::time::SystemTime::now() + Duration::from_secs(2);
        assert!(remove_stale_sm_files_in(s, t, 4242, later));
        assert_eq!(listing(t), ["na_sm-4242-1", "na_sm-42420-0"]);
        assert_eq!(
            listing(s),
            ["na_sm-4242-1", "na_sm-4242-2", "na_sm-42420-0"]
        );
        assert!(process_start_time().unwrap() <= std::time::SystemTime::now());
    }
}
