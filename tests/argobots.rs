//! The Argobots thread pool, checked like the reference's thread-pool tests (inline 0-thread
//! pool, counts, completion, priorities, size, stress, drop, concurrent pushers, external pool)
//! plus what only Argobots can do: jobs pushed from a ULT into a 0-thread pool.

#[cfg(not(feature = "argobots"))]
#[test]
#[ignore = "built without the `argobots` feature: install Argobots, then run `cargo test --features argobots` (README: Mercury and Argobots)"]
fn argobots_tests_need_the_argobots_feature() {}

#[cfg(feature = "argobots")]
mod with_argobots {
    use diaspora_stream::argobots::{in_ult, ArgobotsThreadPool};
    use diaspora_stream::ThreadPool;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{mpsc, Arc, Mutex};
    use std::time::{Duration, Instant};

    const MAX: u64 = u64::MAX;

    fn wait_for(what: &str, timeout: Duration, cond: impl Fn() -> bool) {
        let deadline = Instant::now() + timeout;
        while !cond() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Runs a job that holds its execution stream until the returned sender sends; returns
    /// once it runs.
    fn occupy(pool: &ArgobotsThreadPool) -> mpsc::Sender<()> {
        let (release_tx, release_rx) = mpsc::channel::<()>();
        let (started_tx, started_rx) = mpsc::channel();
        pool.push_work(
            Box::new(move || {
                started_tx.send(()).unwrap();
                release_rx.recv().unwrap();
            }),
            MAX,
        );
        started_rx.recv_timeout(Duration::from_secs(5)).unwrap();
        release_tx
    }

    #[test]
    fn zero_threads_runs_inline_outside_ults() {
        let pool = ArgobotsThreadPool::new(0).unwrap();
        assert_eq!(pool.thread_count(), 0);
        assert_eq!(pool.size(), 0);
        let caller = std::thread::current().id();
        let ran_on = Arc::new(Mutex::new(None));
        let r = ran_on.clone();
        pool.push_work(
            Box::new(move || *r.lock().unwrap() = Some(std::thread::current().id())),
            MAX,
        );
        assert_eq!(*ran_on.lock().unwrap(), Some(caller));
        assert_eq!(pool.size(), 0);
    }

    #[test]
    fn thread_counts_and_ults() {
        for n in [1, 4] {
            let pool = ArgobotsThreadPool::new(n).unwrap();
            assert_eq!(pool.thread_count(), n);
            assert_eq!(pool.size(), 0);
            let (tx, rx) = mpsc::channel();
            pool.push_work(
                Box::new(move || {
                    tx.send(in_ult()).unwrap();
                }),
                MAX,
            );
            assert!(
                rx.recv_timeout(Duration::from_secs(5)).unwrap(),
                "jobs run as ULTs"
            );
        }
    }

    #[test]
    fn single_hundred_and_shared_sum_complete() {
        let pool = ArgobotsThreadPool::new(4).unwrap();
        let done = Arc::new(AtomicUsize::new(0));
        let sum = Arc::new(AtomicUsize::new(0));
        for i in 1..=100 {
            let (done, sum) = (done.clone(), sum.clone());
            pool.push_work(
                Box::new(move || {
                    sum.fetch_add(i, Ordering::SeqCst);
                    done.fetch_add(1, Ordering::SeqCst);
                }),
                MAX,
            );
        }
        wait_for("100 jobs", Duration::from_secs(5), || {
            done.load(Ordering::SeqCst) == 100
        });
        assert_eq!(sum.load(Ordering::SeqCst), 5050);
    }

    #[test]
    fn priorities_are_honoured() {
        let pool = ArgobotsThreadPool::new(1).unwrap();
        // Occupy the only execution stream so that every following job queues.
        let release_tx = occupy(&pool);
        let order = Arc::new(Mutex::new(Vec::new()));
        let priorities = [1u64, 100, 1000, MAX];
        for round in 0..10 {
            for k in 0..priorities.len() {
                // Rotate so that submission order differs from priority order.
                let p = priorities[(k + round) % priorities.len()];
                let order = order.clone();
                pool.push_work(Box::new(move || order.lock().unwrap().push(p)), p);
            }
        }
        assert_eq!(pool.size(), 40, "queued jobs are counted");
        release_tx.send(()).unwrap();
        wait_for("40 jobs", Duration::from_secs(5), || {
            order.lock().unwrap().len() == 40
        });
        let order = order.lock().unwrap().clone();
        let mut sorted = order.clone();
        sorted.sort_by(|a, b| b.cmp(a));
        assert_eq!(order, sorted, "jobs ran in priority order");
        for &p in &priorities {
            assert_eq!(order.iter().filter(|&&x| x == p).count(), 10);
        }
        assert_eq!(pool.size(), 0);
    }

    #[test]
    fn size_tracks_queued_work() {
        let pool = ArgobotsThreadPool::new(1).unwrap();
        let release_tx = occupy(&pool);
        let done = Arc::new(AtomicUsize::new(0));
        for _ in 0..5 {
            let done = done.clone();
            pool.push_work(
                Box::new(move || {
                    done.fetch_add(1, Ordering::SeqCst);
                }),
                MAX,
            );
        }
        assert_eq!(pool.size(), 5);
        release_tx.send(()).unwrap();
        wait_for("5 jobs", Duration::from_secs(5), || {
            done.load(Ordering::SeqCst) == 5
        });
        assert_eq!(pool.size(), 0);
    }

    #[test]
    fn stress_ten_thousand_jobs_on_eight_streams() {
        let pool = ArgobotsThreadPool::new(8).unwrap();
        let done = Arc::new(AtomicUsize::new(0));
        for i in 0..10_000u64 {
            let done = done.clone();
            pool.push_work(
                Box::new(move || {
                    done.fetch_add(1, Ordering::Relaxed);
                }),
                i % 7,
            );
        }
        drop(pool);
        assert_eq!(done.load(Ordering::SeqCst), 10_000, "drop runs every job");
    }

    #[test]
    fn drop_waits_for_submitted_work() {
        let done = Arc::new(AtomicUsize::new(0));
        {
            let pool = ArgobotsThreadPool::new(2).unwrap();
            for _ in 0..50 {
                let done = done.clone();
                pool.push_work(
                    Box::new(move || {
                        std::thread::sleep(Duration::from_millis(1));
                        done.fetch_add(1, Ordering::SeqCst);
                    }),
                    MAX,
                );
            }
        }
        assert_eq!(done.load(Ordering::SeqCst), 50);
    }

    #[test]
    fn concurrent_pushers() {
        let pool = Arc::new(ArgobotsThreadPool::new(4).unwrap());
        let done = Arc::new(AtomicUsize::new(0));
        std::thread::scope(|s| {
            for _ in 0..8 {
                let (pool, done) = (pool.clone(), done.clone());
                s.spawn(move || {
                    for _ in 0..100 {
                        let done = done.clone();
                        pool.push_work(
                            Box::new(move || {
                                done.fetch_add(1, Ordering::SeqCst);
                            }),
                            MAX,
                        );
                    }
                });
            }
        });
        wait_for("800 jobs", Duration::from_secs(5), || {
            done.load(Ordering::SeqCst) == 800
        });
    }

    #[test]
    fn panicking_job_does_not_stop_the_pool() {
        let pool = ArgobotsThreadPool::new(1).unwrap();
        pool.push_work(Box::new(|| panic!("job panic (expected by the test)")), MAX);
        let (tx, rx) = mpsc::channel();
        pool.push_work(Box::new(move || tx.send(7).unwrap()), MAX);
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 7);
    }

    #[test]
    fn external_pool_is_used_and_not_owned() {
        let owner = ArgobotsThreadPool::new(1).unwrap();
        let raw = owner.raw_pool().unwrap();
        // SAFETY: `owner` keeps the pool and its execution stream alive longer than `external`.
        let external = unsafe { ArgobotsThreadPool::from_raw_pool(raw) }.unwrap();
        assert_eq!(external.thread_count(), 0);
        let (tx, rx) = mpsc::channel();
        external.push_work(Box::new(move || tx.send(in_ult()).unwrap()), MAX);
        assert!(rx.recv_timeout(Duration::from_secs(5)).unwrap());
        drop(external);
        // The owner still works after the external view is gone.
        let (tx, rx) = mpsc::channel();
        owner.push_work(Box::new(move || tx.send(1).unwrap()), MAX);
        assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), 1);
    }

    #[test]
    fn zero_thread_pool_called_from_a_ult_creates_a_ult_in_the_callers_stream() {
        let outer = ArgobotsThreadPool::new(1).unwrap();
        let ran = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let r = ran.clone();
        outer.push_work(
            Box::new(move || {
                let inner = ArgobotsThreadPool::new(0).unwrap();
                let r2 = r.clone();
                inner.push_work(
                    Box::new(move || {
                        assert!(in_ult());
                        r2.store(true, Ordering::SeqCst);
                    }),
                    MAX,
                );
                drop(inner); // waits (yielding) until the job ran
                tx.send(r.load(Ordering::SeqCst)).unwrap();
            }),
            MAX,
        );
        assert!(rx.recv_timeout(Duration::from_secs(5)).unwrap());
        assert!(ran.load(Ordering::SeqCst));
    }
}
