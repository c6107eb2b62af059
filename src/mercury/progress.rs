//! The progress thread: it runs Mercury's progress loop and completion callbacks until the
//! engine goes, then cancels what is still under way and finalises the class.

use super::error::hg_error;
use mercury_sys as hg;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Operations that are under way in Mercury, so that shutdown can cancel them.
#[derive(Default)]
pub(super) struct Inflight {
    handles: Mutex<HashSet<usize>>,
    bulk_ops: Mutex<HashSet<usize>>,
}

impl Inflight {
    pub(super) fn handles(&self) -> MutexGuard<'_, HashSet<usize>> {
        self.handles.lock().unwrap_or_else(|e| e.into_inner())
    }
    pub(super) fn bulk_ops(&self) -> MutexGuard<'_, HashSet<usize>> {
        self.bulk_ops.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn is_empty(&self) -> bool {
        self.handles().is_empty() && self.bulk_ops().is_empty()
    }
}

/// Raw pointers moved to the progress thread.
pub(super) struct RawParts {
    pub(super) class: *mut hg::hg_class_t,
    pub(super) context: *mut hg::hg_context_t,
}
// SAFETY: Mercury classes and contexts may be used from any thread; the progress thread is the
// only one that progresses and finalises them.
unsafe impl Send for RawParts {}

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

/// The progress thread's work: progress and callbacks until `stop`, then shutdown.
pub(super) fn progress_loop(
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
