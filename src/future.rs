//! Futures returned by `push`, `flush` and `pull`.
//!
//! These are blocking, thread-safe handles (not `std::future::Future`): HPC codes call them from
//! plain threads or MPI ranks. A [`Future`] can be waited on any number of times; every call returns
//! a copy of the value or of the error. [`Future::wait_timeout`] returns `Ok(None)` when the time
//! runs out, and the same future can be waited on again later.

use crate::error::{Error, Result};
use crate::signal::Signal;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// When a wait gives up. The clock is read only when a wait has to block, so that taking a
/// value that is already there costs no clock read (a consumer pulling a queued event with a
/// timeout spent a tenth of its time in `clock_gettime`).
#[derive(Debug)]
pub(crate) struct Deadline {
    timeout: Option<Duration>,
    at: std::cell::Cell<Option<Option<Instant>>>,
}

impl Deadline {
    /// No deadline.
    pub(crate) fn never() -> Self {
        Deadline {
            timeout: None,
            at: std::cell::Cell::new(Some(None)),
        }
    }

    /// `timeout` from the first time the deadline is needed.
    pub(crate) fn after(timeout: Duration) -> Self {
        Deadline {
            timeout: Some(timeout),
            at: std::cell::Cell::new(None),
        }
    }

    /// The instant the wait gives up (`None`: never).
    pub(crate) fn get(&self) -> Option<Instant> {
        if let Some(at) = self.at.get() {
            return at;
        }
        let at = self.timeout.and_then(|t| Instant::now().checked_add(t));
        self.at.set(Some(at));
        at
    }
}

/// Something that will eventually produce a `Result<T>`.
pub(crate) trait Source<T>: Send + Sync {
    /// Waits until the value is available or the deadline passes.
    fn wait_until(&self, deadline: &Deadline) -> Option<Result<T>>;
    /// True when `wait_until` would return a value immediately.
    fn is_ready(&self) -> bool;
}

/// A source of several values, one per index (a batch of pushes resolves to one id per event):
/// a future of one of them holds the shared source and its index, with no allocation of its own.
pub(crate) trait IndexedSource<T>: Send + Sync {
    /// Waits until value `index` is available or the deadline passes.
    fn wait_index(&self, index: usize, deadline: &Deadline) -> Option<Result<T>>;
    /// True when `wait_index` would return immediately.
    fn is_ready_index(&self, index: usize) -> bool;
}

/// A claimed value, or the error for one already moved out. (Not `ok_or`: that builds and
/// drops an error for every value, about 30 instructions per pulled event.)
fn claimed_value<T>(value: Option<T>) -> Result<T> {
    match value {
        Some(v) => Ok(v),
        None => Err(Error::Closed("future")),
    }
}

/// What a future holds. Kept small (40 bytes for an event, 32 for an id): a program keeps a
/// future per pushed event, and every pull returns one. An error is boxed: errors are rare, and
/// in place they made every future 104 bytes.
enum Inner<T> {
    Ready(std::result::Result<T, Box<Error>>),
    /// Value `index` of a shared source.
    Indexed(Arc<dyn IndexedSource<T>>, usize),
    /// A value taken for this future when it was made (a pull that found an event queued):
    /// no allocation and no lock to wait on it; handed to `give_back` if no wait ever returned
    /// it. The value itself knows where it goes back (an event, its consumer), so the future
    /// holds no reference count of its own.
    Claimed {
        /// `None` only once [`Future::take`] has moved it out.
        value: Option<T>,
        returned: std::sync::atomic::AtomicBool,
        give_back: fn(T),
    },
    Pending(Arc<dyn Source<T>>),
}

impl<T> Drop for Future<T> {
    fn drop(&mut self) {
        if let Inner::Claimed {
            value,
            returned,
            give_back,
        } = &mut self.inner
        {
            if !*returned.get_mut() {
                if let Some(v) = value.take() {
                    give_back(v);
                }
            }
        }
    }
}

/// A value of type `T` that becomes available later.
pub struct Future<T> {
    inner: Inner<T>,
}

impl<T> std::fmt::Debug for Future<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Future")
            .field("completed", &self.completed())
            .finish()
    }
}

impl<T: Clone + Send + 'static> Future<T> {
    /// A future that is already complete with `value`.
    pub fn ready(value: T) -> Self {
        Future {
            inner: Inner::Ready(Ok(value)),
        }
    }

    /// A future that is already complete with an error.
    pub fn failed(error: crate::error::Error) -> Self {
        Future {
            inner: Inner::Ready(Err(Box::new(error))),
        }
    }

    /// A future holding `value`, claimed from where `give_back` returns it if the future is
    /// dropped before a wait returned it.
    pub(crate) fn claimed(value: T, give_back: fn(T)) -> Self {
        Future {
            inner: Inner::Claimed {
                value: Some(value),
                returned: std::sync::atomic::AtomicBool::new(false),
                give_back,
            },
        }
    }

    /// Value `index` of `source`.
    pub(crate) fn indexed(source: Arc<dyn IndexedSource<T>>, index: usize) -> Self {
        Future {
            inner: Inner::Indexed(source, index),
        }
    }

    pub(crate) fn from_source(source: Arc<dyn Source<T>>) -> Self {
        Future {
            inner: Inner::Pending(source),
        }
    }

    /// Blocks until the value is available and returns it (or the error it completed with).
    pub fn wait(&self) -> Result<T> {
        match &self.inner {
            Inner::Ready(r) => r.clone().map_err(|e| *e),
            Inner::Claimed {
                value, returned, ..
            } => {
                returned.store(true, std::sync::atomic::Ordering::Relaxed);
                claimed_value(value.clone())
            }
            Inner::Pending(s) => loop {
                if let Some(r) = s.wait_until(&Deadline::never()) {
                    return r;
                }
            },
            Inner::Indexed(s, i) => loop {
                if let Some(r) = s.wait_index(*i, &Deadline::never()) {
                    return r;
                }
            },
        }
    }

    /// Waits at most `timeout`. `Ok(None)` means the time ran out; waiting again is allowed.
    pub fn wait_timeout(&self, timeout: Duration) -> Result<Option<T>> {
        match &self.inner {
            Inner::Ready(_) | Inner::Claimed { .. } => self.wait().map(Some),
            Inner::Pending(s) => match s.wait_until(&Deadline::after(timeout)) {
                Some(r) => r.map(Some),
                None => Ok(None),
            },
            Inner::Indexed(s, i) => match s.wait_index(*i, &Deadline::after(timeout)) {
                Some(r) => r.map(Some),
                None => Ok(None),
            },
        }
    }

    /// As [`Future::wait`], for a future waited on once: the value is moved out instead of
    /// copied (for an event, no reference count taken and then given back).
    pub fn take(self) -> Result<T> {
        match self.take_claimed() {
            Ok(r) => r,
            Err(future) => future.wait(),
        }
    }

    /// As [`Future::wait_timeout`], for a future waited on once. When the time runs out
    /// (`Ok(None)`) the future is dropped: a pull that found no event in time leaves none
    /// behind, and a push goes on without it.
    pub fn take_timeout(self, timeout: Duration) -> Result<Option<T>> {
        match self.take_claimed() {
            Ok(r) => r.map(Some),
            Err(future) => future.wait_timeout(timeout),
        }
    }

    /// The value of a future made with it (moved out), or the future itself.
    fn take_claimed(self) -> std::result::Result<Result<T>, Self> {
        // The future's parts are moved out and its `Drop` never runs: a claimed value moved out
        // here has nowhere to go back to.
        let this = std::mem::ManuallyDrop::new(self);
        // SAFETY: `this` is never used again nor dropped, so `inner` is moved out exactly once.
        let inner = unsafe { std::ptr::read(&this.inner) };
        match inner {
            Inner::Claimed { value, .. } => Ok(claimed_value(value)),
            Inner::Ready(value) => Ok(value.map_err(|e| *e)),
            inner => Err(Future { inner }),
        }
    }

    /// Waits with the C++ convention: `timeout_ms <= 0` blocks until complete.
    pub fn wait_ms(&self, timeout_ms: i64) -> Result<Option<T>> {
        if timeout_ms <= 0 {
            self.wait().map(Some)
        } else {
            self.wait_timeout(Duration::from_millis(timeout_ms as u64))
        }
    }
}

impl<T> Future<T> {
    /// True when `wait` would return immediately.
    pub fn completed(&self) -> bool {
        match &self.inner {
            Inner::Ready(_) | Inner::Claimed { .. } => true,
            Inner::Pending(s) => s.is_ready(),
            Inner::Indexed(s, i) => s.is_ready_index(*i),
        }
    }
}

/// How a waiter that must not block its OS thread waits: a thread library with user-level
/// threads (the Argobots pool, `crate::argobots` with feature `argobots`) installs one with
/// [`set_park_hook`], and futures waited on from its threads park the user-level thread instead
/// of the OS thread.
pub trait ParkHook: Send + Sync {
    /// A token to park the calling thread on, when it is a user-level thread that must not
    /// block its OS thread; `None` for an ordinary thread (it blocks on a condition variable).
    /// `Some(Err(()))` when the caller must not block but no token could be made: it then
    /// polls, calling [`ParkHook::yield_now`] between looks.
    #[allow(clippy::result_unit_err)]
    fn token(&self) -> Option<std::result::Result<Arc<dyn ParkToken>, ()>>;
    /// Lets other user-level threads run.
    fn yield_now(&self);
    /// Whether the calling thread is a user-level thread that must not block its OS thread
    /// (the default asks [`ParkHook::token`], which may make a token only to drop it).
    fn in_user_level_thread(&self) -> bool {
        self.token().is_some()
    }
}

/// One parked waiter, woken once.
pub trait ParkToken: Send + Sync {
    /// Wakes the waiter (from any thread).
    fn wake(&self);
    /// Parks the caller until [`ParkToken::wake`] or `deadline`; true when woken.
    fn park(&self, deadline: Option<Instant>) -> bool;
}

static PARK_HOOK: std::sync::OnceLock<&'static dyn ParkHook> = std::sync::OnceLock::new();

/// Installs the process's park hook (the first one installed stays).
pub fn set_park_hook(hook: &'static dyn ParkHook) {
    let _ = PARK_HOOK.set(hook);
}

/// Whether the calling thread may block its OS thread (false in a user-level thread that the
/// park hook parks instead), so that a transport may run its progress loop on it while it waits.
#[cfg(feature = "mercury")]
pub(crate) fn may_block_os_thread() -> bool {
    PARK_HOOK
        .get()
        .is_none_or(|hook| !hook.in_user_level_thread())
}

/// The writing end of a future: set once, read by any number of waiters. The value is read
/// without a lock once set; the mutex only orders waiters going to sleep against `set`.
pub(crate) struct Promise<T> {
    value: std::sync::OnceLock<Result<T>>,
    /// Parked user-level waiters to wake when the value is set.
    parked: Mutex<Vec<Arc<dyn ParkToken>>>,
    /// Blocked OS-thread waiters (counted, so that `set` makes no system call without any).
    cond: Signal,
}

impl<T> Promise<T> {
    pub(crate) fn new() -> Self {
        Promise {
            value: std::sync::OnceLock::new(),
            parked: Mutex::new(Vec::new()),
            cond: Signal::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Arc<dyn ParkToken>>> {
        // A poisoned lock only means a panic happened while holding it; the list stays usable.
        self.parked.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Completes the promise; later calls are ignored (the first result wins).
    pub(crate) fn set(&self, value: Result<T>) {
        if self.value.set(value).is_err() {
            return;
        }
        // Under the lock: a waiter that saw no value and is about to sleep holds it.
        let parked = std::mem::take(&mut *self.lock());
        self.cond.notify_all();
        for token in parked {
            token.wake();
        }
    }

    /// `wait_map` for a caller that must not block its OS thread: parks on a token.
    fn wait_map_parked<U>(
        &self,
        hook: &dyn ParkHook,
        token: std::result::Result<Arc<dyn ParkToken>, ()>,
        deadline: Option<Instant>,
        f: impl FnOnce(&Result<T>) -> U,
    ) -> Option<U> {
        let token = {
            let mut parked = self.lock();
            if let Some(v) = self.value.get() {
                return Some(f(v));
            }
            let Ok(token) = token else {
                // Cannot park: poll with yields.
                drop(parked);
                loop {
                    if let Some(v) = self.value.get() {
                        return Some(f(v));
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return None;
                    }
                    hook.yield_now();
                }
            };
            // Registered while locked, so `set` cannot slip in between.
            parked.push(token.clone());
            token
        };
        if !token.park(deadline) {
            // Timed out: forget this waiter so that repeated short waits do not pile up.
            self.lock().retain(|t| !Arc::ptr_eq(t, &token));
        }
        self.value.get().map(f)
    }

    /// Waits for the value and maps it with `f`.
    pub(crate) fn wait_map<U>(
        &self,
        deadline: &Deadline,
        f: impl FnOnce(&Result<T>) -> U,
    ) -> Option<U> {
        if let Some(v) = self.value.get() {
            return Some(f(v));
        }
        if let Some(hook) = PARK_HOOK.get() {
            if let Some(token) = hook.token() {
                return self.wait_map_parked(*hook, token, deadline.get(), f);
            }
        }
        let deadline = deadline.get();
        let mut guard = self.lock();
        loop {
            if let Some(v) = self.value.get() {
                return Some(f(v));
            }
            match deadline {
                None => guard = self.cond.wait(guard),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return None;
                    }
                    guard = self.cond.wait_timeout(guard, d - now);
                }
            }
        }
    }

    pub(crate) fn is_set(&self) -> bool {
        self.value.get().is_some()
    }
}

#[cfg(feature = "mercury")]
impl<T: Clone> Promise<T> {
    /// A copy of the value, if set, without waiting.
    pub(crate) fn get(&self) -> Option<Result<T>> {
        self.value.get().cloned()
    }
}

impl<T: Clone + Send + Sync> Source<T> for Promise<T> {
    fn wait_until(&self, deadline: &Deadline) -> Option<Result<T>> {
        self.wait_map(deadline, Clone::clone)
    }
    fn is_ready(&self) -> bool {
        self.is_set()
    }
}

/// Creates a connected promise/future pair.
pub(crate) fn promise<T: Clone + Send + Sync + 'static>() -> (Arc<Promise<T>>, Future<T>) {
    let p = Arc::new(Promise::new());
    let f = Future::from_source(p.clone() as Arc<dyn Source<T>>);
    (p, f)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;

    #[test]
    fn timeout_then_retry_then_value() {
        let (p, f) = promise::<u64>();
        assert!(!f.completed());
        assert_eq!(f.wait_timeout(Duration::from_millis(10)).unwrap(), None);
        let p2 = p.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(20));
            p2.set(Ok(42));
        });
        assert_eq!(f.wait().unwrap(), 42);
        assert_eq!(f.wait_timeout(Duration::from_millis(1)).unwrap(), Some(42));
        assert!(f.completed());
        p.set(Ok(7)); // ignored: first result wins
        assert_eq!(f.wait().unwrap(), 42);
        t.join().unwrap();
    }

    #[test]
    fn errors_are_returned_every_time() {
        let f: Future<u8> = Future::failed(Error::Closed("producer"));
        assert!(f.completed());
        assert!(f.wait().is_err());
        assert!(f.wait_ms(0).is_err());
        assert!(f.wait_timeout(Duration::ZERO).is_err());
    }

    #[test]
    fn taking_moves_the_value_out_once() {
        // Ready, failed, claimed and pending futures all give their value (or error) when
        // taken, and a claimed value taken is not given back.
        assert_eq!(Future::ready(5u8).take().unwrap(), 5);
        assert!(Future::<u8>::failed(Error::Closed("producer"))
            .take()
            .is_err());
        static GIVEN_BACK: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let give_back = |_: u8| {
            GIVEN_BACK.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        };
        assert_eq!(
            Future::claimed(7u8, give_back)
                .take_timeout(Duration::ZERO)
                .unwrap(),
            Some(7)
        );
        assert_eq!(Future::claimed(8u8, give_back).take().unwrap(), 8);
        assert_eq!(GIVEN_BACK.load(std::sync::atomic::Ordering::SeqCst), 0);
        drop(Future::claimed(9u8, give_back));
        assert_eq!(GIVEN_BACK.load(std::sync::atomic::Ordering::SeqCst), 1);
        let (p, f) = promise::<u64>();
        let (p2, f2) = promise::<u64>();
        assert_eq!(f.take_timeout(Duration::from_millis(5)).unwrap(), None);
        p.set(Ok(1));
        p2.set(Ok(2));
        assert_eq!(f2.take().unwrap(), 2);
    }
}
