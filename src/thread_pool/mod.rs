//! Thread pools that run the producer's and consumer's per-event work.
//!
//! [`ThreadPool`] is the trait the engines use; [`StdThreadPool`] is the default implementation on
//! OS threads. A pool with 0 threads runs every job inline in the caller, which is the cheapest
//! choice for single-threaded producers. Jobs with a higher priority run first; jobs of equal
//! priority run in submission order. Dropping a pool runs the jobs still queued before it returns,
//! so no submitted work is silently lost. With feature `rayon`, `RayonThreadPool` runs the
//! jobs on a rayon pool (the application's, or rayon's global one).

#[cfg(feature = "rayon")]
mod rayon_pool;
#[cfg(feature = "rayon")]
pub use rayon_pool::RayonThreadPool;

use crate::signal::Signal;
use std::collections::BinaryHeap;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// A unit of work.
pub type Job = Box<dyn FnOnce() + Send + 'static>;

/// Default priority of a job (the highest).
pub const DEFAULT_PRIORITY: u64 = u64::MAX;

/// Something that runs jobs.
pub trait ThreadPool: Send + Sync {
    /// Number of worker threads (0: jobs run inline in `push_work`).
    fn thread_count(&self) -> usize;
    /// Submits a job; higher `priority` runs earlier.
    fn push_work(&self, job: Job, priority: u64);
    /// Number of jobs queued and not yet started.
    fn size(&self) -> usize;
}

/// A queued job, ordered for a max-heap: higher priority first, then submission order.
pub(crate) struct Queued {
    pub(crate) priority: u64,
    pub(crate) seq: u64,
    pub(crate) job: Job,
}

impl PartialEq for Queued {
    fn eq(&self, other: &Self) -> bool {
        self.priority == other.priority && self.seq == other.seq
    }
}
impl Eq for Queued {}
impl PartialOrd for Queued {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Queued {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // Max-heap: higher priority first, then lower sequence number (FIFO).
        self.priority
            .cmp(&other.priority)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

#[derive(Default)]
pub(crate) struct QueueState {
    pub(crate) heap: BinaryHeap<Queued>,
    pub(crate) next_seq: u64,
    stopping: bool,
}

struct Shared {
    state: Mutex<QueueState>,
    cond: Signal,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A pool of OS threads with a priority queue.
pub struct StdThreadPool {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
}

impl std::fmt::Debug for StdThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdThreadPool")
            .field("threads", &self.workers.len())
            .finish()
    }
}

pub(crate) fn run_job(job: Job) {
    // A panicking job must not take a worker (or the caller of an inline pool) down with it.
    if let Err(payload) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job)) {
        eprintln!(
            "diaspora-stream: a thread-pool job panicked: {}",
            crate::error::panic_message(&*payload)
        );
    }
}

impl StdThreadPool {
    /// A pool with `threads` workers (0: inline).
    pub fn new(threads: usize) -> Self {
        let shared = Arc::new(Shared {
            state: Mutex::new(QueueState::default()),
            cond: Signal::new(),
        });
        let workers = (0..threads)
            .map(|i| {
                let shared = shared.clone();
                std::thread::Builder::new()
                    .name(format!("diaspora-pool-{i}"))
                    .spawn(move || worker(shared))
                    .expect("failed to spawn a thread-pool worker")
            })
            .collect();
        StdThreadPool { shared, workers }
    }
}

fn worker(shared: Arc<Shared>) {
    loop {
        let job = {
            let mut st = shared.lock();
            loop {
                if let Some(q) = st.heap.pop() {
                    break q.job;
                }
                if st.stopping {
                    return;
                }
                st = shared.cond.wait(st);
            }
        };
        run_job(job);
    }
}

impl ThreadPool for StdThreadPool {
    fn thread_count(&self) -> usize {
        self.workers.len()
    }

    fn push_work(&self, job: Job, priority: u64) {
        if self.workers.is_empty() {
            run_job(job);
            return;
        }
        let mut st = self.shared.lock();
        let seq = st.next_seq;
        st.next_seq += 1;
        st.heap.push(Queued { priority, seq, job });
        drop(st);
        self.shared.cond.notify_one();
    }

    fn size(&self) -> usize {
        self.shared.lock().heap.len()
    }
}

impl Drop for StdThreadPool {
    fn drop(&mut self) {
        self.shared.lock().stopping = true;
        self.shared.cond.notify_all();
        // The last reference may go with a job, on one of the pool's own threads: that thread
        // cannot join itself (the join would panic); it stops after this job, detached.
        let me = std::thread::current().id();
        for w in self.workers.drain(..) {
            if w.thread().id() != me {
                let _ = w.join();
            }
        }
    }
}

/// Makes a shareable std-thread pool.
pub fn std_pool(threads: usize) -> Arc<dyn ThreadPool> {
    Arc::new(StdThreadPool::new(threads))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn a_pool_dropped_by_its_own_job_stops_without_panicking() {
        let pool = std_pool(2);
        let (tx, rx) = mpsc::channel();
        let mine = pool.clone();
        pool.push_work(
            Box::new(move || {
                // Wait until the test's reference is gone, so that this one is the last.
                while Arc::strong_count(&mine) > 1 {
                    std::thread::sleep(Duration::from_millis(1));
                }
                drop(mine);
                tx.send(()).unwrap();
            }),
            0,
        );
        drop(pool);
        rx.recv_timeout(Duration::from_secs(10))
            .expect("dropping the pool from its own job did not return");
    }

    #[test]
    fn zero_threads_runs_inline() {
        let pool = StdThreadPool::new(0);
        assert_eq!(pool.thread_count(), 0);
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        pool.push_work(
            Box::new(move || {
                r.fetch_add(1, Ordering::SeqCst);
            }),
            1,
        );
        assert_eq!(ran.load(Ordering::SeqCst), 1);
        assert_eq!(pool.size(), 0);
    }

    #[test]
    fn priorities_are_honoured_and_fifo_within_a_priority() {
        let pool = StdThreadPool::new(1);
        let (block_tx, block_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel::<()>();
        pool.push_work(
            Box::new(move || {
                started_tx.send(()).unwrap();
                block_rx.recv().unwrap();
            }),
            DEFAULT_PRIORITY,
        );
        started_rx.recv().unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        for (i, prio) in [
            (0, 1u64),
            (1, 1000),
            (2, 100),
            (3, DEFAULT_PRIORITY),
            (4, 1000),
        ] {
            let o = order.clone();
            pool.push_work(Box::new(move || o.lock().unwrap().push(i)), prio);
        }
        assert_eq!(pool.size(), 5);
        block_tx.send(()).unwrap();
        drop(pool); // runs everything queued
        assert_eq!(*order.lock().unwrap(), vec![3, 1, 4, 2, 0]);
    }

    #[test]
    fn stress_many_pushers() {
        let pool = Arc::new(StdThreadPool::new(4));
        let sum = Arc::new(AtomicUsize::new(0));
        let pushers: Vec<_> = (0..8)
            .map(|_| {
                let pool = pool.clone();
                let sum = sum.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        let s = sum.clone();
                        pool.push_work(
                            Box::new(move || {
                                s.fetch_add(i, Ordering::Relaxed);
                            }),
                            (i % 7) as u64,
                        );
                    }
                })
            })
            .collect();
        for p in pushers {
            p.join().unwrap();
        }
        drop(Arc::try_unwrap(pool).ok().unwrap());
        assert_eq!(sum.load(Ordering::SeqCst), 8 * (999 * 1000 / 2));
    }

    #[test]
    fn panicking_job_does_not_kill_the_worker() {
        let pool = StdThreadPool::new(1);
        pool.push_work(Box::new(|| panic!("boom")), 1);
        let (tx, rx) = mpsc::channel();
        pool.push_work(Box::new(move || tx.send(5).unwrap()), 1);
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 5);
    }
}
