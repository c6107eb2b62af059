//! A condition variable that makes no system call to notify when no thread waits on it.
//!
//! `std::sync::Condvar::notify_*` always enters the kernel (a futex wake), even with nobody
//! asleep. A producer completes a batch, and every event of it pushed through a thread pool,
//! with such a notification, most of which have nobody to wake; at one per event they cost
//! more than storing the event.
//!
//! The rule that makes skipping them safe: a thread waits only while holding the mutex that
//! guards its condition, and every change that a notification announces is made under that
//! mutex. A waiter counts itself under the mutex before it sleeps; a notifier that changed the
//! condition under the mutex and then reads a count of zero knows that every later waiter will
//! see the change before deciding to sleep.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, MutexGuard};
use std::time::Duration;

/// A [`Condvar`] that knows whether anybody waits on it. See the module's documentation for
/// the rule its users follow.
#[derive(Debug, Default)]
pub(crate) struct Signal {
    cond: Condvar,
    /// Threads inside [`Signal::wait`] or [`Signal::wait_timeout`]; changed under the mutex.
    waiters: AtomicUsize,
}

impl Signal {
    /// A signal nobody waits on.
    pub(crate) const fn new() -> Self {
        Signal {
            cond: Condvar::new(),
            waiters: AtomicUsize::new(0),
        }
    }

    /// Sleeps until notified (or woken spuriously), releasing `guard` meanwhile. A poisoned
    /// mutex is taken anyway: its state stays usable for the callers here.
    pub(crate) fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        // Relaxed is enough: the mutex orders the count with the notifier's change.
        self.waiters.fetch_add(1, Ordering::Relaxed);
        let guard = self.cond.wait(guard).unwrap_or_else(|e| e.into_inner());
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        guard
    }

    /// [`Signal::wait`] for at most `timeout`.
    pub(crate) fn wait_timeout<'a, T>(
        &self,
        guard: MutexGuard<'a, T>,
        timeout: Duration,
    ) -> MutexGuard<'a, T> {
        self.waiters.fetch_add(1, Ordering::Relaxed);
        let guard = self
            .cond
            .wait_timeout(guard, timeout)
            .unwrap_or_else(|e| e.into_inner())
            .0;
        self.waiters.fetch_sub(1, Ordering::Relaxed);
        guard
    }

    /// Wakes one waiter, if any.
    pub(crate) fn notify_one(&self) {
        if self.waiters.load(Ordering::Relaxed) > 0 {
            self.cond.notify_one();
        }
    }

    /// Wakes every waiter, if any.
    pub(crate) fn notify_all(&self) {
        if self.waiters.load(Ordering::Relaxed) > 0 {
            self.cond.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Many hand-offs between two threads, each waiting for the other's change: a notification
    /// skipped wrongly leaves one of them asleep for ever (the test then hangs).
    #[test]
    fn ping_pong_never_loses_a_wake_up() {
        let shared = Arc::new((Mutex::new(0u64), Signal::new()));
        let other = shared.clone();
        const ROUNDS: u64 = 20_000;
        let t = std::thread::spawn(move || {
            let (m, s) = &*other;
            let mut g = m.lock().unwrap();
            while *g < ROUNDS {
                if *g % 2 == 1 {
                    *g += 1;
                    s.notify_all();
                } else {
                    g = s.wait(g);
                }
            }
        });
        let (m, s) = &*shared;
        let mut g = m.lock().unwrap();
        while *g < ROUNDS {
            if *g % 2 == 0 {
                *g += 1;
                drop(g);
                // Notified after the mutex is released, as the producer's completions do.
                s.notify_one();
                g = m.lock().unwrap();
            } else {
                g = s.wait(g);
            }
        }
        drop(g);
        t.join().unwrap();
        assert_eq!(*m.lock().unwrap(), ROUNDS);
        assert_eq!(s.waiters.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_timed_wait_returns_and_uncounts_itself() {
        let m = Mutex::new(());
        let s = Signal::new();
        let g = s.wait_timeout(m.lock().unwrap(), Duration::from_millis(5));
        drop(g);
        assert_eq!(s.waiters.load(Ordering::Relaxed), 0);
    }
}
