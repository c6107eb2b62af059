//! The [`Engine`]: one Mercury class and context, the progress thread that drives them, and
//! the shared state ([`Inner`]) that stops them when the last handle goes.

use super::error::hg_error;
use super::init::{cxi_default_auth_key, init_class, remove_stale_sm_files};
use super::options::EngineOptions;
use super::progress::{driving, progress_loop, Driver, Inflight, RawParts};
use crate::error::{Error, Result};
use crate::thread_pool::{StdThreadPool, ThreadPool};
use mercury_sys as hg;
use std::collections::HashSet;
use std::ffi::{c_void, CString};
use std::sync::{Arc, Mutex};
use std::thread::{JoinHandle, ThreadId};

/// What every handle on an engine shares: the Mercury class and context, the progress thread
/// and the registrations. Dropping the last one stops the engine.
pub(super) struct Inner {
    pub(super) class: *mut hg::hg_class_t,
    pub(super) context: *mut hg::hg_context_t,
    pub(super) info: String,
    pub(super) listening: bool,
    /// Who progresses the context: the progress thread, or a thread waiting on a future.
    pub(super) driver: Arc<Driver>,
    pub(super) progress: Mutex<Option<JoinHandle<()>>>,
    pub(super) progress_thread: ThreadId,
    pub(super) registered: Mutex<HashSet<u64>>,
    pub(super) inflight: Arc<Inflight>,
    pub(super) handler_pool: Option<Arc<dyn ThreadPool>>,
    pub(super) owns_handler_pool: bool,
    /// Handlers replaced by a later registration of their id, freed with the engine: each
    /// pointer with the function that frees it.
    pub(super) retired_handlers: Mutex<Vec<(usize, RetiredFree)>>,
    /// Forwards still to fail at once, as if Mercury had refused them (tests).
    pub(super) injected_forward_failures: std::sync::atomic::AtomicUsize,
    /// Strings given to `HG_Init_opt`, kept for the class's lifetime.
    pub(super) _init_strings: Vec<CString>,
}

// SAFETY: the raw class and context are used through Mercury's thread-safe API; the Rust state
// is behind mutexes or atomics.
unsafe impl Send for Inner {}

/// Frees a retired handler's data (the function Mercury would have called).
pub(super) type RetiredFree = unsafe extern "C" fn(*mut c_void);
// SAFETY: as above.
unsafe impl Sync for Inner {}

impl Drop for Inner {
    fn drop(&mut self) {
        self.driver.request_stop();
        // A thread running callbacks (the progress thread, or a waiter driving progress) holds
        // the token the progress thread needs to finish: it finishes once that is released.
        if std::thread::current().id() != self.progress_thread && !driving() {
            let handle = self
                .progress
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(handle) = handle {
                let _ = handle.join();
            }
        }
        // Otherwise a callback dropped the last handle: the progress thread finalises the class
        // when the current round of callbacks ends.
        for (entry, free) in self
            .retired_handlers
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            // SAFETY: each was leaked by `Engine::register`, is no longer registered, and is
            // freed by the function registered with it, once.
            unsafe { free(entry as *mut c_void) };
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

/// A Mercury engine: class, context, progress thread and registered RPCs.
///
/// Cheap to clone (all clones share the engine).
#[derive(Clone)]
pub struct Engine {
    pub(super) inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("info", &self.inner.info)
            .field("listening", &self.inner.listening)
            .finish()
    }
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
        let driver = match Driver::new(context, options.progress_spindown) {
            Ok(d) => Arc::new(d),
            Err(e) => {
                // SAFETY: nothing else uses them yet.
                unsafe {
                    hg::HG_Context_destroy(context);
                    hg::HG_Finalize(class);
                }
                return Err(e);
            }
        };
        let inflight = Arc::new(Inflight::default());
        let raw = RawParts { class, context };
        let (driver2, inflight2) = (driver.clone(), inflight.clone());
        let (timeout, shutdown_timeout) = (options.progress_timeout, options.shutdown_timeout);
        let spawned = std::thread::Builder::new()
            .name("diaspora-hg-progress".into())
            .spawn(move || progress_loop(raw, driver2, inflight2, timeout, shutdown_timeout));
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
                driver,
                progress_thread: progress.thread().id(),
                progress: Mutex::new(Some(progress)),
                registered: Mutex::new(HashSet::new()),
                inflight,
                handler_pool,
                owns_handler_pool,
                retired_handlers: Mutex::new(Vec::new()),
                injected_forward_failures: Default::default(),
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
}
