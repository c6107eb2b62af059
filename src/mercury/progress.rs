//! Who runs Mercury's progress loop and callbacks: the [`Driver`].
//!
//! Exactly one thread at a time progresses the context and triggers completions: whoever holds
//! the driver's token. A thread that waits on one of the engine's futures takes the token when
//! it is free and drives progress itself until its own operation completes (as a Margo caller
//! does when no progress thread is configured), so a completion that only wakes that waiter
//! runs on the waiter's own thread: no thread is woken and no core changes hands. When nobody
//! waits, the engine's progress thread holds the token, blocked in `poll` on Mercury's wait
//! descriptor and on an event descriptor that a waiter writes to take the token over. Other
//! callbacks (forwards completed through callbacks, incoming requests) run on whichever thread
//! holds the token; request handlers that may block still run on the handler pool, and their
//! waits leave progress to the progress thread (see [`as_handler`]).
//!
//! When the engine goes, the progress thread takes the token for good, cancels what is still
//! under way, runs the callbacks, and finalises the class.

use super::error::hg_error;
use crate::error::Result;
use crate::future::{Deadline, Promise, Source};
use mercury_sys as hg;
use rustix::event::{eventfd, poll, EventfdFlags, PollFd, PollFlags, Timespec};
use std::cell::Cell;
use std::collections::{HashMap, HashSet};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// How long a waiter that drives progress may block in one `poll` before it looks again.
const DRIVE_SLICE: Duration = Duration::from_millis(10);
/// How long a waiter that finds another thread progressing sleeps before it tries to take
/// over (its own completion wakes it at once).
const SHARE_SLICE: Duration = Duration::from_micros(20);
/// How long the progress thread leaves the token to waiters after the last one left: a caller
/// that waits on one operation after another keeps driving without the progress thread
/// waking up in between.
const HANDOFF_GRACE: Duration = Duration::from_micros(200);
/// The longest the progress thread sleeps between looks while waiters keep driving: at most
/// this long passes between the last waiter leaving and the progress thread taking over. A
/// look every hand-off grace took a core from the busy threads 5,000 times a second (a push
/// received over ofi+tcp: 0.85x `hg_bw_read` with it, 0.91x without).
const MAX_STAND_ASIDE: Duration = Duration::from_millis(5);

thread_local! {
    /// Set while this thread holds a driver's token (callbacks run on it).
    static DRIVING: Cell<bool> = const { Cell::new(false) };
    /// Set while this thread runs an RPC handler from the handler pool.
    static IN_HANDLER: Cell<bool> = const { Cell::new(false) };
}

/// Runs `f` as an RPC handler: the futures it waits on leave progress to the progress thread.
///
/// A handler serves requests that keep coming; were it to drive progress while it waits
/// (a bulk pull, say), the progress thread would stand aside and the next request would wait
/// for it to come back (measured: a consumer answering `recv_batch` calls fell from about
/// 960 k to 230 k events/s). Application threads, which wait for their own calls, drive.
pub(super) fn as_handler<R>(f: impl FnOnce() -> R) -> R {
    struct Reset(bool);
    impl Drop for Reset {
        fn drop(&mut self) {
            IN_HANDLER.with(|h| h.set(self.0));
        }
    }
    let _reset = Reset(IN_HANDLER.with(|h| h.replace(true)));
    f()
}

/// Whether the calling thread is running Mercury callbacks as a driver, the progress thread
/// included (it must not wait for the progress thread, which waits for the token it holds,
/// nor on the engine's futures, which only it could complete).
pub(super) fn driving() -> bool {
    DRIVING.with(Cell::get)
}

/// Operations that are under way in Mercury, so that shutdown can cancel them, and the
/// forward handles kept for reuse.
#[derive(Default)]
pub(super) struct Inflight {
    /// Handles under way, each with the number of the request it carries (handles are reused,
    /// so a token names a request by handle and number).
    handles: Mutex<HashMap<usize, u64>>,
    bulk_ops: Mutex<HashSet<usize>>,
    /// Completed forward handles, reset and reused by later forwards.
    spare: Mutex<Vec<usize>>,
    requests: AtomicU64,
}

/// How many completed forward handles an engine keeps for reuse.
const MAX_SPARE_HANDLES: usize = 64;

impl Inflight {
    pub(super) fn handles(&self) -> MutexGuard<'_, HashMap<usize, u64>> {
        self.handles.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// A fresh request number.
    pub(super) fn next_request(&self) -> u64 {
        self.requests.fetch_add(1, Ordering::Relaxed) + 1
    }
    fn spare(&self) -> MutexGuard<'_, Vec<usize>> {
        self.spare.lock().unwrap_or_else(|e| e.into_inner())
    }
    /// A completed forward handle to reset and reuse, if one is kept.
    pub(super) fn take_spare(&self) -> Option<hg::hg_handle_t> {
        self.spare().pop().map(|h| h as hg::hg_handle_t)
    }
    /// Keeps a completed forward handle for reuse, or destroys it when enough are kept.
    ///
    /// # Safety
    /// `handle` is a forward handle whose operation completed and that nothing else uses.
    pub(super) unsafe fn put_spare(&self, handle: hg::hg_handle_t) {
        let mut spare = self.spare();
        if spare.len() < MAX_SPARE_HANDLES {
            spare.push(handle as usize);
        } else {
            drop(spare);
            // SAFETY: the caller's promise.
            unsafe {
                hg::HG_Destroy(handle);
            }
        }
    }
    fn destroy_spares(&self) {
        for h in self.spare().drain(..) {
            // SAFETY: kept handles are completed and used by nothing.
            unsafe {
                hg::HG_Destroy(h as hg::hg_handle_t);
            }
        }
    }
    pub(super) fn bulk_ops(&self) -> MutexGuard<'_, HashSet<usize>> {
        self.bulk_ops.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn is_empty(&self) -> bool {
        self.handles().is_empty() && self.bulk_ops().is_empty()
    }
}

/// The right to progress one Mercury context, shared by the progress thread and waiters.
pub(super) struct Driver {
    context: *mut hg::hg_context_t,
    /// Mercury's wait descriptor for the context, or -1 when its transports offer none (then
    /// blocking progress goes through `HG_Progress`, which a waiter cannot interrupt).
    wait_fd: i32,
    /// An eventfd that interrupts a blocked `poll` of the token's holder.
    wake_fd: OwnedFd,
    /// Held by whoever progresses the context.
    token: Mutex<()>,
    /// Waiters that want to drive (the progress thread stays out of their way).
    callers: AtomicUsize,
    /// When the last waiter left, in nanoseconds since `epoch`.
    callers_left: AtomicU64,
    /// When something last completed, in nanoseconds since `epoch` (for the spin-down).
    last_activity: AtomicU64,
    epoch: Instant,
    spindown: Duration,
    /// The progress thread sleeps here while waiters drive.
    idle: Mutex<()>,
    idle_cv: Condvar,
    /// Set once the engine's last handle is gone.
    pub(super) stop: AtomicBool,
    /// Set, under the token, once the context is destroyed.
    closed: AtomicBool,
    /// Whether an error of the progress calls was reported already.
    reported: AtomicBool,
}

// SAFETY: the context is only used by the token's holder, through Mercury's thread-safe API;
// everything else is atomics and locks.
unsafe impl Send for Driver {}
// SAFETY: as above.
unsafe impl Sync for Driver {}

impl Driver {
    /// A driver for `context`.
    pub(super) fn new(context: *mut hg::hg_context_t, spindown: Duration) -> Result<Driver> {
        // SAFETY: the context is valid.
        let wait_fd = unsafe { hg::HG_Event_get_wait_fd(context) };
        let wake_fd = eventfd(0, EventfdFlags::NONBLOCK | EventfdFlags::CLOEXEC).map_err(|e| {
            crate::error::Error::Driver {
                driver: "mercury",
                message: format!("eventfd: {e}"),
            }
        })?;
        Ok(Driver {
            context,
            wait_fd,
            wake_fd,
            token: Mutex::new(()),
            callers: AtomicUsize::new(0),
            callers_left: AtomicU64::new(0),
            last_activity: AtomicU64::new(0),
            epoch: Instant::now(),
            spindown,
            idle: Mutex::new(()),
            idle_cv: Condvar::new(),
            stop: AtomicBool::new(false),
            closed: AtomicBool::new(false),
            reported: AtomicBool::new(false),
        })
    }

    fn nanos(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_nanos() as u64
    }

    /// Interrupts the token holder's blocking `poll`, if any.
    pub(super) fn wake(&self) {
        // A full counter just means a wake is pending already.
        let _ = rustix::io::write(&self.wake_fd, &1u64.to_ne_bytes());
    }

    /// Asks the progress thread to stop, waking it wherever it sleeps.
    pub(super) fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        drop(self.idle.lock().unwrap_or_else(|e| e.into_inner()));
        self.idle_cv.notify_all();
        self.wake();
    }

    fn report(&self, operation: &str, ret: hg::hg_return_t) {
        if !self.reported.swap(true, Ordering::Relaxed) {
            eprintln!("diaspora-stream: {}", hg_error(operation, ret));
        }
    }

    /// Runs every completed callback; returns how many ran. Token held.
    fn trigger(&self) -> usize {
        let mut total = 0;
        loop {
            let mut count: u32 = 0;
            // SAFETY: the context is valid while the token is held and `closed` is not set.
            let ret = unsafe { hg::HG_Event_trigger(self.context, 256, &mut count) };
            if ret != hg::HG_SUCCESS || count == 0 {
                return total;
            }
            total += count as usize;
        }
    }

    /// Progresses without blocking. Token held.
    fn progress_now(&self) {
        let mut count = 0u32;
        // SAFETY: as in `trigger`.
        let ret = unsafe { hg::HG_Event_progress(self.context, &mut count) };
        if ret != hg::HG_SUCCESS && ret != hg::HG_TIMEOUT {
            self.report("HG_Event_progress", ret);
        }
    }

    /// One round of progress and callbacks, blocking up to `max_block` when nothing is ready
    /// (and the spin-down after the last activity has passed). Returns how many callbacks ran.
    /// Token held.
    fn progress_once(&self, max_block: Duration) -> usize {
        let mut n = self.trigger();
        if n == 0 {
            self.progress_now();
            n = self.trigger();
        }
        let now = Instant::now();
        if n > 0 {
            self.last_activity.store(self.nanos(now), Ordering::Relaxed);
            return n;
        }
        let idle_for = Duration::from_nanos(
            self.nanos(now)
                .saturating_sub(self.last_activity.load(Ordering::Relaxed)),
        );
        if max_block.is_zero() || idle_for < self.spindown {
            return 0;
        }
        if self.wait_fd >= 0 {
            // SAFETY: as in `trigger`; Mercury asks for this call before any wait on its
            // descriptor.
            let ready = unsafe { hg::HG_Event_ready(self.context) } || self.poll(max_block);
            self.progress_now();
            if ready {
                // Traffic without completions (a transfer whose target is this process, or a
                // send waiting for room) counts as activity too: the spin-down starts again,
                // as Mercury's perf tools spin after a wake-up. Without this, a process that
                // receives a large push slept and was woken for every piece of it (measured
                // over ofi+tcp: the receiver idle a seventh of the time, 0.8x `hg_bw_read`).
                self.last_activity
                    .store(self.nanos(Instant::now()), Ordering::Relaxed);
            }
        } else {
            let ms = max_block.as_millis().clamp(1, u32::MAX as u128) as u32;
            // SAFETY: as in `trigger`.
            let ret = unsafe { hg::HG_Progress(self.context, ms) };
            if ret != hg::HG_SUCCESS && ret != hg::HG_TIMEOUT {
                self.report("HG_Progress", ret);
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        n = self.trigger();
        if n > 0 {
            self.last_activity
                .store(self.nanos(Instant::now()), Ordering::Relaxed);
        }
        n
    }

    /// Sleeps until Mercury's descriptor or the wake descriptor is readable, or `timeout`;
    /// returns whether Mercury's descriptor was.
    fn poll(&self, timeout: Duration) -> bool {
        // SAFETY: Mercury's descriptor stays open as long as the context, valid here.
        let wait_fd = unsafe { BorrowedFd::borrow_raw(self.wait_fd) };
        let mut fds = [
            PollFd::new(&wait_fd, PollFlags::IN),
            PollFd::new(&self.wake_fd, PollFlags::IN),
        ];
        let ts = Timespec {
            tv_sec: timeout.as_secs() as _,
            tv_nsec: timeout.subsec_nanos() as _,
        };
        match poll(&mut fds, Some(&ts)) {
            Ok(n) if n > 0 => {
                if !fds[1].revents().is_empty() {
                    let mut value = [0u8; 8];
                    let _ = rustix::io::read(&self.wake_fd, &mut value);
                }
                !fds[0].revents().is_empty()
            }
            _ => false,
        }
    }

    /// Drives progress on the calling thread until `done()`, the deadline, or the engine's end;
    /// while another thread progresses, sleeps in `wait(slice)` (which returns early when the
    /// caller's own operation completes).
    fn drive_until(
        &self,
        done: impl Fn() -> bool,
        deadline: Option<Instant>,
        wait: impl Fn(Duration),
    ) {
        self.callers.fetch_add(1, Ordering::SeqCst);
        let mut poked = false;
        loop {
            if done() {
                break;
            }
            let remaining = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(r) if !r.is_zero() => Some(r),
                    _ => break,
                },
            };
            let slice = |max: Duration| remaining.map_or(max, |r| r.min(max));
            match self.token.try_lock() {
                Ok(token) => {
                    if self.closed.load(Ordering::Acquire) {
                        // The context is gone: only the completions already made remain.
                        drop(token);
                        wait(slice(DRIVE_SLICE));
                        continue;
                    }
                    DRIVING.with(|d| d.set(true));
                    self.progress_once(slice(DRIVE_SLICE));
                    DRIVING.with(|d| d.set(false));
                    drop(token);
                }
                Err(_) => {
                    if !poked {
                        // The holder may be the progress thread, asleep in `poll`.
                        self.wake();
                        poked = true;
                    }
                    wait(slice(SHARE_SLICE));
                }
            }
        }
        self.callers_left
            .store(self.nanos(Instant::now()), Ordering::Relaxed);
        self.callers.fetch_sub(1, Ordering::SeqCst);
    }

    /// Whether waiters drive now, or did so within the hand-off grace.
    fn waiters_drive(&self) -> bool {
        if self.callers.load(Ordering::SeqCst) > 0 {
            return true;
        }
        let left = self.callers_left.load(Ordering::Relaxed);
        left != 0
            && self.nanos(Instant::now()).saturating_sub(left) < HANDOFF_GRACE.as_nanos() as u64
    }

    /// A promise of this engine and its future, whose waiters drive progress.
    pub(super) fn promise<T: Clone + Send + Sync + 'static>(
        self: &Arc<Self>,
    ) -> (Arc<Promise<T>>, crate::future::Future<T>) {
        let promise = Arc::new(Promise::new());
        let source = Driven {
            promise: promise.clone(),
            driver: self.clone(),
        };
        let future = crate::future::Future::from_source(Arc::new(source) as Arc<dyn Source<T>>);
        (promise, future)
    }
}

/// A future's source that drives the engine's progress while it is waited on.
struct Driven<T> {
    promise: Arc<Promise<T>>,
    driver: Arc<Driver>,
}

impl<T: Clone + Send + Sync> Source<T> for Driven<T> {
    fn wait_until(&self, deadline: &Deadline) -> Option<Result<T>> {
        if let Some(v) = self.promise.get() {
            return Some(v);
        }
        if driving() {
            // This thread runs the engine's callbacks and holds the right to progress it: the
            // operation could only complete once the callback waiting here returned.
            return Some(Err(crate::error::Error::Driver {
                driver: "mercury",
                message: "a Mercury operation was waited on inside a Mercury callback, on the \
                          thread that progresses the engine, where it can never complete; \
                          callbacks must not wait (hand the work to another thread)"
                    .into(),
            }));
        }
        if !crate::future::may_block_os_thread() || IN_HANDLER.with(Cell::get) {
            // A user-level thread parks; a handler leaves progress to the progress thread (see
            // `as_handler`).
            return self.promise.wait_until(deadline);
        }
        self.driver.drive_until(
            || self.promise.is_set(),
            deadline.get(),
            |slice| {
                self.promise.wait_map(&Deadline::after(slice), |_| ());
            },
        );
        self.promise.get()
    }

    fn is_ready(&self) -> bool {
        self.promise.is_set()
    }
}

/// Raw pointers moved to the progress thread.
pub(super) struct RawParts {
    pub(super) class: *mut hg::hg_class_t,
    pub(super) context: *mut hg::hg_context_t,
}
// SAFETY: Mercury classes and contexts may be used from any thread; the progress thread is the
// only one that finalises them.
unsafe impl Send for RawParts {}

/// The progress thread's work: progress and callbacks while no waiter drives, until the engine
/// stops; then shutdown.
pub(super) fn progress_loop(
    raw: RawParts,
    driver: Arc<Driver>,
    inflight: Arc<Inflight>,
    timeout: Duration,
    shutdown_timeout: Duration,
) {
    // How long to sleep before looking again while waiters drive: from the hand-off grace,
    // doubling while they keep driving, up to `MAX_STAND_ASIDE`.
    let mut stand_aside = HANDOFF_GRACE;
    while !driver.stop.load(Ordering::Acquire) {
        if driver.waiters_drive() {
            let idle = driver.idle.lock().unwrap_or_else(|e| e.into_inner());
            if !driver.stop.load(Ordering::Acquire) {
                drop(driver.idle_cv.wait_timeout(idle, stand_aside));
            }
            stand_aside = (stand_aside * 2).min(MAX_STAND_ASIDE);
            continue;
        }
        stand_aside = HANDOFF_GRACE;
        let token = driver.token.lock().unwrap_or_else(|e| e.into_inner());
        if !driver.waiters_drive() {
            DRIVING.with(|d| d.set(true));
            driver.progress_once(timeout);
            DRIVING.with(|d| d.set(false));
        }
        drop(token);
    }
    // Shutdown, with the token for good: cancel what is still under way and let the
    // callbacks run.
    let _token = driver.token.lock().unwrap_or_else(|e| e.into_inner());
    for &h in inflight.handles().keys() {
        // SAFETY: the handle is in the set until its callback destroys it, which only happens
        // under the token, held here.
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
        driver.trigger();
        if inflight.is_empty() || Instant::now() >= deadline {
            break;
        }
        // SAFETY: as in `Driver::trigger`.
        unsafe {
            hg::HG_Progress(raw.context, 10);
        }
    }
    inflight.destroy_spares();
    driver.closed.store(true, Ordering::Release);
    // SAFETY: nothing else uses the context and class any more: every Rust handle on the
    // engine is gone (this runs after the last `Inner` was dropped), and waiters that still
    // hold the driver see `closed` under the token.
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
