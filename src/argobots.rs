//! Argobots runtime: a [`ThreadPool`] on Argobots pools and execution streams, and waits that
//! park the calling user-level thread (ULT) instead of blocking its execution stream.
//!
//! Enabled by the `argobots` feature, which links the installed Argobots through the
//! `argobots-sys` crate. Std threads stay the default runtime: nothing here is used unless the
//! application creates an [`ArgobotsThreadPool`] or calls into the library from a ULT.
//!
//! # Runtime
//!
//! Argobots is initialised on first use. If the application already initialised it (a Margo or
//! Thallium program, for example), that runtime is used as it is; otherwise the library
//! initialises it once from a dedicated OS thread that stays parked for the life of the process,
//! so the primary execution stream never belongs to an application thread that may exit.
//!
//! # Waiting from a ULT
//!
//! Every [`crate::Future`] of the library checks, when it has to wait, whether the caller is an
//! Argobots ULT. If it is, an untimed wait parks the ULT on an `ABT_eventual` (the execution
//! stream goes on running other ULTs), and a timed wait yields to other ULTs between checks.
//! Outside ULTs the usual condition-variable wait is used.
//!
//! ULTs created here get 2 MiB stacks (as Margo gives them): Argobots stacks have no guard page,
//! and Rust code is not written for the small default.

use crate::error::{panic_message, Error, Result};
use crate::thread_pool::{Job, Queued, ThreadPool};
use argobots_sys as abt;
use std::collections::BinaryHeap;
use std::ffi::c_void;
use std::sync::{Arc, Condvar, Mutex, OnceLock};

/// Stack size of the ULTs this module creates.
pub const ULT_STACK_SIZE: usize = 2 << 20;

fn check(operation: &str, rc: i32) -> Result<()> {
    if rc as u32 == abt::ABT_SUCCESS {
        Ok(())
    } else {
        Err(Error::Driver {
            driver: "argobots",
            message: format!("{operation} failed with Argobots error code {rc}"),
        })
    }
}

/// Makes sure Argobots is initialised (see the module documentation).
pub fn init() -> Result<()> {
    static INIT: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    crate::future::set_park_hook(&UltParking);
    INIT.get_or_init(|| {
        // SAFETY: ABT_initialized may be called at any time.
        if unsafe { abt::ABT_initialized() } as u32 == abt::ABT_SUCCESS {
            return Ok(());
        }
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("diaspora-abt-primary".into())
            .spawn(move || {
                // SAFETY: plain initialisation; argc/argv are unused by Argobots.
                let rc = unsafe { abt::ABT_init(0, std::ptr::null_mut()) };
                let ok = rc as u32 == abt::ABT_SUCCESS;
                let _ = tx.send(check("ABT_init", rc).map_err(|e| e.to_string()));
                if ok {
                    // The primary execution stream lives on this thread; keep it for the life
                    // of the process.
                    loop {
                        std::thread::park();
                    }
                }
            })
            .map_err(|e| format!("could not start the Argobots primary thread: {e}"))?;
        rx.recv()
            .map_err(|_| "the Argobots primary thread exited".to_string())?
    })
    .clone()
    .map_err(|message| Error::Driver {
        driver: "argobots",
        message,
    })
}

/// Whether Argobots is initialised in this process.
pub fn is_initialized() -> bool {
    // SAFETY: ABT_initialized may be called at any time.
    unsafe { abt::ABT_initialized() as u32 == abt::ABT_SUCCESS }
}

/// Whether the caller runs in an Argobots ULT (rather than an external OS thread).
pub fn in_ult() -> bool {
    if !is_initialized() {
        return false;
    }
    let mut kind: abt::ABT_unit_type = abt::ABT_UNIT_TYPE_EXT;
    // SAFETY: reads the caller's work-unit type; fails harmlessly for external threads.
    let rc = unsafe { abt::ABT_self_get_type(&mut kind) };
    rc as u32 == abt::ABT_SUCCESS && kind == abt::ABT_UNIT_TYPE_THREAD
}

/// Lets other ULTs of the caller's execution stream run (no-op outside a ULT).
pub fn yield_now() {
    if in_ult() {
        // SAFETY: called from a ULT.
        unsafe {
            abt::ABT_thread_yield();
        }
    } else {
        std::thread::yield_now();
    }
}

/// An `ABT_eventual` without a value: a one-shot event ULTs can wait on without blocking
/// their execution stream, and that any thread can set.
pub struct Eventual {
    raw: abt::ABT_eventual,
}

// SAFETY: Argobots eventuals are designed to be set and waited on from any thread or ULT.
unsafe impl Send for Eventual {}
// SAFETY: as above; every operation goes through Argobots' own synchronisation.
unsafe impl Sync for Eventual {}

impl Eventual {
    /// A new, unset eventual.
    pub fn new() -> Result<Self> {
        init()?;
        let mut raw = abt::ABT_EVENTUAL_NULL();
        // SAFETY: creates an eventual with no value bytes.
        check("ABT_eventual_create", unsafe {
            abt::ABT_eventual_create(0, &mut raw)
        })?;
        Ok(Eventual { raw })
    }

    /// Sets the eventual, waking every waiter.
    pub fn set(&self) {
        // SAFETY: the handle is valid until drop.
        unsafe {
            abt::ABT_eventual_set(self.raw, std::ptr::null_mut(), 0);
        }
    }

    /// Whether the eventual is set.
    pub fn is_set(&self) -> bool {
        let mut ready: abt::ABT_bool = 0;
        // SAFETY: the handle is valid until drop.
        unsafe {
            abt::ABT_eventual_test(self.raw, std::ptr::null_mut(), &mut ready);
        }
        ready != 0
    }

    /// Waits until the eventual is set: a ULT is parked, an external thread blocks.
    pub fn wait(&self) {
        // SAFETY: the handle is valid until drop.
        unsafe {
            abt::ABT_eventual_wait(self.raw, std::ptr::null_mut());
        }
    }
}

impl Drop for Eventual {
    fn drop(&mut self) {
        // SAFETY: the handle was created by ABT_eventual_create and is freed once.
        unsafe {
            abt::ABT_eventual_free(&mut self.raw);
        }
    }
}

/// Waits for a condition from a ULT: parks on `eventual` until it is set, or, with a deadline,
/// yields between checks until it is set or the deadline passes. Returns whether it was set.
pub(crate) fn park(eventual: &Eventual, deadline: Option<std::time::Instant>) -> bool {
    match deadline {
        None => {
            eventual.wait();
            true
        }
        Some(deadline) => loop {
            if eventual.is_set() {
                return true;
            }
            if std::time::Instant::now() >= deadline {
                return false;
            }
            yield_now();
        },
    }
}

/// The park hook of [`crate::future`]: futures waited on from a ULT park it on an eventual
/// instead of blocking its execution stream.
struct UltParking;

impl crate::future::ParkHook for UltParking {
    fn token(&self) -> Option<std::result::Result<Arc<dyn crate::future::ParkToken>, ()>> {
        if !in_ult() {
            return None;
        }
        Some(
            Eventual::new()
                .map(|e| Arc::new(e) as Arc<dyn crate::future::ParkToken>)
                .map_err(|_| ()),
        )
    }

    fn yield_now(&self) {
        yield_now();
    }

    fn in_user_level_thread(&self) -> bool {
        in_ult()
    }
}

impl crate::future::ParkToken for Eventual {
    fn wake(&self) {
        self.set();
    }

    fn park(&self, deadline: Option<std::time::Instant>) -> bool {
        park(self, deadline)
    }
}

#[derive(Default)]
struct Jobs {
    heap: BinaryHeap<Queued>,
    next_seq: u64,
    /// ULTs created and not finished.
    running: usize,
}

struct PoolShared {
    jobs: Mutex<Jobs>,
    idle: Condvar,
}

impl PoolShared {
    fn lock(&self) -> std::sync::MutexGuard<'_, Jobs> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Body of every ULT the pool creates: runs the highest-priority queued job.
///
/// Each `push_work` creates one ULT, but the ULT does not carry "its" job: it takes the best
/// job queued when it starts. So whatever order Argobots runs the ULTs in, jobs start in
/// priority order (FIFO within a priority).
unsafe extern "C" fn pool_ult(arg: *mut c_void) {
    // SAFETY: `arg` is the Arc leaked by `spawn_ult`, reclaimed exactly once here.
    let shared = unsafe { Arc::from_raw(arg as *const PoolShared) };
    let job = shared.lock().heap.pop();
    if let Some(q) = job {
        if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(q.job)) {
            eprintln!(
                "diaspora-stream: an Argobots pool job panicked: {}",
                panic_message(&*payload)
            );
        }
    }
    let mut jobs = shared.lock();
    jobs.running -= 1;
    if jobs.running == 0 {
        shared.idle.notify_all();
    }
}

/// A [`ThreadPool`] whose jobs run as Argobots ULTs.
///
/// - `ArgobotsThreadPool::new(n)` with `n > 0` creates one Argobots pool served by `n` new
///   execution streams (with the blocking `basic_wait` scheduler, so idle streams sleep).
///   Jobs run in priority order, highest first, FIFO within a priority.
/// - `n == 0` runs jobs inline when called from an OS thread; from a ULT, the job becomes a new
///   ULT in the caller's main pool and the caller yields (like the C++ Argobots pool).
/// - [`ArgobotsThreadPool::from_raw_pool`] pushes into a pool the application owns (a Margo
///   handler pool, for example); its `thread_count` is 0.
///
/// Dropping the pool waits for every submitted job to finish, then joins and frees the
/// execution streams and pool it created. Dropped from one of its own jobs (the job held the
/// last reference), it cannot wait for itself: a detached thread waits for the jobs and frees
/// them after the job returns.
pub struct ArgobotsThreadPool {
    shared: Arc<PoolShared>,
    pool: Option<abt::ABT_pool>,
    owns_pool: bool,
    xstreams: Vec<abt::ABT_xstream>,
    attr: abt::ABT_thread_attr,
}

// SAFETY: Argobots pool and execution-stream handles may be used from any thread; the Rust
// state is behind a mutex.
unsafe impl Send for ArgobotsThreadPool {}
// SAFETY: as above.
unsafe impl Sync for ArgobotsThreadPool {}

impl std::fmt::Debug for ArgobotsThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArgobotsThreadPool")
            .field("execution_streams", &self.xstreams.len())
            .field("queued", &self.size())
            .finish()
    }
}

fn stack_attr() -> Result<abt::ABT_thread_attr> {
    let mut attr = abt::ABT_THREAD_ATTR_NULL();
    // SAFETY: creates and configures a fresh attribute object.
    unsafe {
        check(
            "ABT_thread_attr_create",
            abt::ABT_thread_attr_create(&mut attr),
        )?;
        check(
            "ABT_thread_attr_set_stacksize",
            abt::ABT_thread_attr_set_stacksize(attr, ULT_STACK_SIZE),
        )?;
    }
    Ok(attr)
}

impl ArgobotsThreadPool {
    /// A pool with `threads` new execution streams (0: see the type's documentation).
    pub fn new(threads: usize) -> Result<Self> {
        init()?;
        let attr = stack_attr()?;
        let shared = Arc::new(PoolShared {
            jobs: Mutex::new(Jobs::default()),
            idle: Condvar::new(),
        });
        if threads == 0 {
            return Ok(ArgobotsThreadPool {
                shared,
                pool: None,
                owns_pool: false,
                xstreams: Vec::new(),
                attr,
            });
        }
        let mut pool = abt::ABT_POOL_NULL();
        // SAFETY: creates a multi-producer multi-consumer pool that we free ourselves.
        check("ABT_pool_create_basic", unsafe {
            abt::ABT_pool_create_basic(
                abt::ABT_POOL_FIFO_WAIT,
                abt::ABT_POOL_ACCESS_MPMC,
                0,
                &mut pool,
            )
        })?;
        let mut me = ArgobotsThreadPool {
            shared,
            pool: Some(pool),
            owns_pool: true,
            xstreams: Vec::with_capacity(threads),
            attr,
        };
        for _ in 0..threads {
            let mut xstream = abt::ABT_XSTREAM_NULL();
            let mut pools = [pool];
            // SAFETY: the pool outlives the execution stream (joined in Drop before the
            // pool is freed).
            check("ABT_xstream_create_basic", unsafe {
                abt::ABT_xstream_create_basic(
                    abt::ABT_SCHED_BASIC_WAIT,
                    1,
                    pools.as_mut_ptr(),
                    abt::ABT_SCHED_CONFIG_NULL(),
                    &mut xstream,
                )
            })?;
            me.xstreams.push(xstream);
        }
        Ok(me)
    }

    /// A pool that pushes ULTs into `pool`, which the application created and keeps serving
    /// with its own execution streams.
    ///
    /// # Safety
    ///
    /// `pool` must be a valid Argobots pool that outlives the returned value and is served by
    /// at least one execution stream (otherwise jobs never run and drop waits forever).
    pub unsafe fn from_raw_pool(pool: abt::ABT_pool) -> Result<Self> {
        init()?;
        Ok(ArgobotsThreadPool {
            shared: Arc::new(PoolShared {
                jobs: Mutex::new(Jobs::default()),
                idle: Condvar::new(),
            }),
            pool: Some(pool),
            owns_pool: false,
            xstreams: Vec::new(),
            attr: stack_attr()?,
        })
    }

    /// The Argobots pool jobs go to (`None` for a 0-thread pool).
    pub fn raw_pool(&self) -> Option<abt::ABT_pool> {
        self.pool
    }

    fn spawn_ult(&self, pool: abt::ABT_pool) -> Result<()> {
        let arg = Arc::into_raw(self.shared.clone()) as *mut c_void;
        // SAFETY: `pool_ult` reclaims `arg`; the ULT is detached (no handle requested).
        let rc = unsafe {
            abt::ABT_thread_create(pool, Some(pool_ult), arg, self.attr, std::ptr::null_mut())
        };
        if rc as u32 != abt::ABT_SUCCESS {
            // SAFETY: the ULT was not created, so the leaked Arc is still ours.
            drop(unsafe { Arc::from_raw(arg as *const PoolShared) });
        }
        check("ABT_thread_create", rc)
    }

    fn caller_main_pool() -> Option<abt::ABT_pool> {
        if !in_ult() {
            return None;
        }
        let mut xstream = abt::ABT_XSTREAM_NULL();
        let mut pool = abt::ABT_POOL_NULL();
        // SAFETY: called from a ULT, so the caller has an execution stream.
        unsafe {
            if abt::ABT_xstream_self(&mut xstream) as u32 != abt::ABT_SUCCESS
                || abt::ABT_xstream_get_main_pools(xstream, 1, &mut pool) as u32 != abt::ABT_SUCCESS
            {
                return None;
            }
        }
        Some(pool)
    }
}

impl ThreadPool for ArgobotsThreadPool {
    fn thread_count(&self) -> usize {
        self.xstreams.len()
    }

    fn push_work(&self, job: Job, priority: u64) {
        let (target, yield_after) = match self.pool {
            Some(pool) => (pool, false),
            None => match Self::caller_main_pool() {
                Some(pool) => (pool, true),
                None => {
                    if let Err(payload) =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(job))
                    {
                        eprintln!(
                            "diaspora-stream: a thread-pool job panicked: {}",
                            panic_message(&*payload)
                        );
                    }
                    return;
                }
            },
        };
        {
            let mut jobs = self.shared.lock();
            let seq = jobs.next_seq;
            jobs.next_seq += 1;
            jobs.heap.push(Queued { priority, seq, job });
            jobs.running += 1;
        }
        if let Err(err) = self.spawn_ult(target) {
            // Could not create the ULT: run the best job here rather than lose it.
            eprintln!("diaspora-stream: {err}; running the job in the caller");
            let job = {
                let mut jobs = self.shared.lock();
                jobs.running -= 1;
                jobs.heap.pop()
            };
            if let Some(q) = job {
                (q.job)();
            }
            return;
        }
        if yield_after {
            yield_now();
        }
    }

    fn size(&self) -> usize {
        self.shared.lock().heap.len()
    }
}

impl Drop for ArgobotsThreadPool {
    fn drop(&mut self) {
        let resources = Resources {
            xstreams: std::mem::take(&mut self.xstreams),
            pool: if self.owns_pool {
                self.pool.take()
            } else {
                None
            },
            attr: std::mem::replace(&mut self.attr, abt::ABT_THREAD_ATTR_NULL()),
        };
        if self.dropped_from_own_job() {
            // Waiting here would wait for this very job, and its stream cannot join itself:
            // a detached thread waits for the jobs (this one included) and then tears down.
            let shared = self.shared.clone();
            let spawned = std::thread::Builder::new()
                .name("diaspora-abt-drop".into())
                .spawn(move || {
                    shared.wait_idle();
                    resources.free();
                });
            if let Err(e) = spawned {
                // Without a thread the streams are left running rather than deadlock.
                eprintln!("diaspora-stream: Argobots pool dropped from its own job: {e}");
            }
            return;
        }
        // Every submitted job runs before the pool goes away.
        self.shared.wait_idle();
        resources.free();
    }
}

impl ArgobotsThreadPool {
    /// True when the caller is one of this pool's jobs (its ULT's argument is our shared state).
    fn dropped_from_own_job(&self) -> bool {
        if !in_ult() {
            return false;
        }
        let mut arg: *mut c_void = std::ptr::null_mut();
        // SAFETY: called from a ULT; reads its creation argument.
        let rc = unsafe { abt::ABT_self_get_arg(&mut arg) };
        rc as u32 == abt::ABT_SUCCESS && arg as *const PoolShared == Arc::as_ptr(&self.shared)
    }
}

impl PoolShared {
    /// Returns once no job is queued or running (yielding meanwhile when called from a ULT).
    fn wait_idle(&self) {
        let mut jobs = self.lock();
        while jobs.running > 0 {
            if in_ult() {
                drop(jobs);
                yield_now();
                jobs = self.lock();
            } else {
                jobs = self.idle.wait(jobs).unwrap_or_else(|e| e.into_inner());
            }
        }
    }
}

/// What a pool created and frees once its jobs are done.
struct Resources {
    xstreams: Vec<abt::ABT_xstream>,
    /// The pool, when it is ours to free.
    pool: Option<abt::ABT_pool>,
    attr: abt::ABT_thread_attr,
}

// SAFETY: Argobots handles may be joined and freed from any thread.
unsafe impl Send for Resources {}

impl Resources {
    fn free(mut self) {
        // SAFETY: every ULT has finished; the streams, pool and attribute are ours and freed
        // once (they were moved out of the pool).
        unsafe {
            for xstream in &mut self.xstreams {
                abt::ABT_xstream_join(*xstream);
                abt::ABT_xstream_free(xstream);
            }
            if let Some(mut pool) = self.pool.take() {
                abt::ABT_pool_free(&mut pool);
            }
            abt::ABT_thread_attr_free(&mut self.attr);
        }
    }
}

/// Makes a shareable Argobots pool with `threads` execution streams.
pub fn argobots_pool(threads: usize) -> Result<Arc<dyn ThreadPool>> {
    Ok(Arc::new(ArgobotsThreadPool::new(threads)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::future::promise;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    /// With one execution stream, a ULT waiting on a future that a later ULT completes only
    /// finishes if the wait parks the ULT instead of blocking the stream.
    #[test]
    fn future_wait_in_a_ult_parks_it() {
        let pool = Arc::new(ArgobotsThreadPool::new(1).unwrap());
        let (tx, rx) = mpsc::channel();
        let p2 = pool.clone();
        pool.push_work(
            Box::new(move || {
                let (promise, future) = promise::<u32>();
                p2.push_work(Box::new(move || promise.set(Ok(41))), DEFAULT);
                tx.send(future.wait().unwrap() + 1).unwrap();
            }),
            DEFAULT,
        );
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 42);
    }

    /// A timed wait in a ULT lets the other ULTs of its stream run while it waits.
    #[test]
    fn timed_wait_in_a_ult_yields() {
        let pool = Arc::new(ArgobotsThreadPool::new(1).unwrap());
        let (tx, rx) = mpsc::channel();
        let p2 = pool.clone();
        pool.push_work(
            Box::new(move || {
                let (_promise, future) = promise::<u32>();
                let other_ran = Arc::new(AtomicBool::new(false));
                let o = other_ran.clone();
                p2.push_work(Box::new(move || o.store(true, Ordering::SeqCst)), DEFAULT);
                let start = std::time::Instant::now();
                let r = future.wait_timeout(Duration::from_millis(200)).unwrap();
                tx.send((r, start.elapsed(), other_ran.load(Ordering::SeqCst)))
                    .unwrap();
            }),
            DEFAULT,
        );
        let (r, elapsed, other_ran) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(r, None);
        assert!(elapsed >= Duration::from_millis(200));
        assert!(other_ran, "the other ULT ran during the timed wait");
    }

    /// A job that holds the last reference to its own pool can drop it: the drop returns,
    /// the job goes on, and the other queued jobs still run (the drop used to wait for the job
    /// itself and never returned).
    #[test]
    fn dropping_the_pool_from_its_own_job_returns() {
        for threads in [1, 2] {
            let pool = Arc::new(ArgobotsThreadPool::new(threads).unwrap());
            let (tx, rx) = mpsc::channel();
            let (go_tx, go_rx) = mpsc::channel::<()>();
            let last = Arc::new(std::sync::Mutex::new(Some(pool.clone())));
            let l = last.clone();
            let t = tx.clone();
            pool.push_work(
                Box::new(move || {
                    // Waits until the test has let go of every other reference.
                    go_rx.recv().unwrap();
                    let own = l.lock().unwrap().take().unwrap();
                    assert_eq!(
                        Arc::strong_count(&own),
                        1,
                        "the job holds the last reference"
                    );
                    drop(own);
                    t.send("dropped").unwrap();
                }),
                DEFAULT,
            );
            let t = tx.clone();
            pool.push_work(Box::new(move || t.send("other job").unwrap()), DEFAULT);
            drop(pool);
            go_tx.send(()).unwrap();
            let mut seen: Vec<&str> = (0..2)
                .map(|_| {
                    rx.recv_timeout(Duration::from_secs(10))
                        .expect("a job finished")
                })
                .collect();
            seen.sort();
            assert_eq!(seen, ["dropped", "other job"], "{threads} stream(s)");
        }
    }

    const DEFAULT: u64 = crate::thread_pool::DEFAULT_PRIORITY;
}
