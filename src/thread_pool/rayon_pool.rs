//! [`RayonThreadPool`] (feature `rayon`): the library's jobs on a rayon pool, so that an
//! application that already runs rayon shares its threads with the library instead of adding
//! its own.

use super::{run_job, Job, QueueState, Queued, ThreadPool};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};

/// Jobs queued by priority, and how many have been handed to rayon and not finished.
#[derive(Default)]
struct Queue {
    jobs: QueueState,
    running: usize,
}

struct Shared {
    queue: Mutex<Queue>,
    idle: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs the highest-priority queued job, if any (each spawned rayon task runs one).
    fn run_next(&self) {
        let job = {
            let mut q = self.lock();
            let Some(Queued { job, .. }) = q.jobs.heap.pop() else {
                return;
            };
            q.running += 1;
            job
        };
        run_job(job);
        let mut q = self.lock();
        q.running -= 1;
        if q.running == 0 && q.jobs.heap.is_empty() {
            self.idle.notify_all();
        }
    }
}

/// A [`ThreadPool`] whose workers are the threads of a rayon pool: the global one, or one the
/// application built. Priorities hold as in [`super::StdThreadPool`]: each rayon task runs the
/// highest-priority job queued when it starts. Jobs may block (a producer's drain waits for
/// storage), which occupies a rayon thread meanwhile: give the library a pool of its own
/// ([`RayonThreadPool::with_threads`]) when the application's parallel loops must not wait.
///
/// Dropping it runs the jobs still queued, in the dropping thread, and waits for the running
/// ones, so that no submitted work is lost (as with the std pool).
pub struct RayonThreadPool {
    pool: Option<Arc<rayon::ThreadPool>>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for RayonThreadPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RayonThreadPool")
            .field("threads", &self.thread_count())
            .field("global", &self.pool.is_none())
            .finish()
    }
}

impl RayonThreadPool {
    fn with_pool(pool: Option<Arc<rayon::ThreadPool>>) -> Self {
        RayonThreadPool {
            pool,
            shared: Arc::new(Shared {
                queue: Mutex::new(Queue::default()),
                idle: Condvar::new(),
            }),
        }
    }

    /// Jobs on rayon's global pool (the one `par_iter` uses).
    pub fn global() -> Self {
        Self::with_pool(None)
    }

    /// Jobs on `pool`, a rayon pool the application built.
    pub fn new(pool: Arc<rayon::ThreadPool>) -> Self {
        Self::with_pool(Some(pool))
    }

    /// Jobs on a new rayon pool of `threads` threads (named `diaspora-rayon-N`).
    pub fn with_threads(threads: usize) -> crate::error::Result<Self> {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads.max(1))
            .thread_name(|i| format!("diaspora-rayon-{i}"))
            .build()
            .map_err(|e| crate::error::Error::InvalidArgument(format!("rayon pool: {e}")))?;
        Ok(Self::new(Arc::new(pool)))
    }
}

impl ThreadPool for RayonThreadPool {
    fn thread_count(&self) -> usize {
        match &self.pool {
            Some(p) => p.current_num_threads(),
            None => rayon::current_num_threads(),
        }
    }

    fn push_work(&self, job: Job, priority: u64) {
        {
            let mut q = self.shared.lock();
            let seq = q.jobs.next_seq;
            q.jobs.next_seq += 1;
            q.jobs.heap.push(Queued { priority, seq, job });
        }
        let shared = self.shared.clone();
        let task = move || shared.run_next();
        match &self.pool {
            Some(p) => p.spawn(task),
            None => rayon::spawn(task),
        }
    }

    fn size(&self) -> usize {
        self.shared.lock().jobs.heap.len()
    }
}

impl Drop for RayonThreadPool {
    fn drop(&mut self) {
        // Queued jobs run here; their rayon tasks will find nothing left to do.
        loop {
            let job = match self.shared.lock().jobs.heap.pop() {
                Some(q) => q.job,
                None => break,
            };
            run_job(job);
        }
        // Waiting for running jobs from one of the pool's own threads could wait for itself.
        let on_pool_thread = match &self.pool {
            Some(p) => p.current_thread_index().is_some(),
            None => rayon::current_thread_index().is_some(),
        };
        if on_pool_thread {
            return;
        }
        let mut q = self.shared.lock();
        while q.running > 0 {
            q = self.shared.idle.wait(q).unwrap_or_else(|e| e.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::time::Duration;

    #[test]
    fn jobs_run_on_the_rayon_threads() {
        let pool = RayonThreadPool::with_threads(2).unwrap();
        assert_eq!(pool.thread_count(), 2);
        let (tx, rx) = mpsc::channel();
        for i in 0..10 {
            let tx = tx.clone();
            pool.push_work(
                Box::new(move || {
                    let name = std::thread::current().name().unwrap_or("").to_string();
                    tx.send((i, name)).unwrap();
                }),
                1,
            );
        }
        let mut got: Vec<(i32, String)> = (0..10)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).unwrap())
            .collect();
        got.sort();
        assert_eq!(
            got.iter().map(|g| g.0).collect::<Vec<_>>(),
            (0..10).collect::<Vec<_>>()
        );
        assert!(
            got.iter().all(|g| g.1.starts_with("diaspora-rayon-")),
            "{got:?}"
        );
    }

    #[test]
    fn higher_priority_runs_first_and_drop_loses_nothing() {
        let pool = RayonThreadPool::with_threads(1).unwrap();
        // Hold the only thread so that the next jobs queue up.
        let (hold_tx, hold_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel();
        pool.push_work(
            Box::new(move || {
                started_tx.send(()).unwrap();
                let _ = hold_rx.recv_timeout(Duration::from_secs(10));
            }),
            1,
        );
        started_rx.recv_timeout(Duration::from_secs(10)).unwrap();
        let order = Arc::new(Mutex::new(Vec::new()));
        for p in [1u64, 5, 3] {
            let order = order.clone();
            pool.push_work(Box::new(move || order.lock().unwrap().push(p)), p);
        }
        assert_eq!(pool.size(), 3);
        hold_tx.send(()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while order.lock().unwrap().len() < 3 {
            assert!(std::time::Instant::now() < deadline);
            std::thread::sleep(Duration::from_millis(1));
        }
        assert_eq!(*order.lock().unwrap(), vec![5, 3, 1]);
        // Dropping with jobs queued behind a running one: all of them run.
        let count = Arc::new(AtomicUsize::new(0));
        let slow = count.clone();
        pool.push_work(
            Box::new(move || {
                std::thread::sleep(Duration::from_millis(50));
                slow.fetch_add(1, Ordering::SeqCst);
            }),
            9,
        );
        for _ in 0..20 {
            let c = count.clone();
            pool.push_work(
                Box::new(move || {
                    c.fetch_add(1, Ordering::SeqCst);
                }),
                1,
            );
        }
        drop(pool);
        assert_eq!(count.load(Ordering::SeqCst), 21);
    }

    #[test]
    fn a_panicking_job_leaves_the_pool_working() {
        let pool = RayonThreadPool::global();
        pool.push_work(Box::new(|| panic!("job panic (expected by the test)")), 1);
        let (tx, rx) = mpsc::channel();
        pool.push_work(Box::new(move || tx.send(7).unwrap()), 1);
        assert_eq!(rx.recv_timeout(Duration::from_secs(10)).unwrap(), 7);
    }
}
