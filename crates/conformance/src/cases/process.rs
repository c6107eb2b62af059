//! process().

use super::consumers::produce_numbered_events;
use super::*;

/// `process` options with `pool` (or none) and `max_events`.
pub fn process_options(pool: Option<Arc<dyn ThreadPool>>, max_events: NumEvents) -> ProcessOptions {
    ProcessOptions {
        timeout: Some(WAIT),
        max_events,
        thread_pool: pool,
    }
}

/// Case: process stops on flow stop inline.
pub fn process_stops_on_flow_stop_inline() {
    let (driver, _dir) = test_driver();
    let topic = new_topic(&driver, "process-stop-inline", one_partition());
    produce_numbered_events(&topic, 20);
    let consumer = topic.consumer("process").build().unwrap();
    assert_eq!(consumer.thread_pool().thread_count(), 0);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let n = consumer
        .process(
            move |ev| {
                let mut s = s.lock().unwrap();
                s.push(event_num(&ev));
                if s.len() == 5 {
                    Flow::Stop
                } else {
                    Flow::Continue
                }
            },
            process_options(None, NumEvents::INFINITY),
        )
        .unwrap();
    assert_eq!(n, 5);
    assert_eq!(*seen.lock().unwrap(), (0..5).collect::<Vec<u64>>());
    // The events after the stop are still there for the application.
    let rest = pull_n(&consumer, 15);
    assert_eq!(
        rest.iter().map(event_num).collect::<Vec<_>>(),
        (5..20).collect::<Vec<_>>()
    );
    assert_no_more_events(&consumer, 3);
}

/// Case: process stops on flow stop with worker threads.
pub fn process_stops_on_flow_stop_with_worker_threads() {
    const STOP_AT: u64 = 3;
    const LATER: u64 = 16;
    let (driver, _dir) = test_driver();
    let topic = new_topic(&driver, "process-stop-threads", one_partition());
    produce_numbered_events(&topic, STOP_AT + 1);
    let consumer = topic.consumer("process").build().unwrap();

    // More events are produced only once every started callback (including the one returning
    // Stop) has finished: from then on, process() must not keep consuming them.
    let (done_tx, done_rx) = mpsc::channel();
    let pool: Arc<dyn ThreadPool> = Arc::new(NotifyingPool {
        inner: driver.make_thread_pool(ThreadCount(2)),
        done: Mutex::new(done_tx),
    });
    assert_eq!(pool.thread_count(), 2);
    let feeder_topic = topic.clone();
    let feeder = std::thread::spawn(move || {
        for _ in 0..=STOP_AT {
            done_rx
                .recv_timeout(WAIT)
                .expect("callbacks of the first events did not finish");
        }
        let producer = feeder_topic.producer().build().unwrap();
        for i in STOP_AT + 1..STOP_AT + 1 + LATER {
            producer.push(json!({"event_num": i}), DataView::from(data_string(i)));
        }
        flush(&producer);
    });

    let seen = Arc::new(Mutex::new(Vec::new()));
    let s = seen.clone();
    let n = consumer
        .process(
            move |ev| {
                let num = event_num(&ev);
                s.lock().unwrap().push(num);
                if num == STOP_AT {
                    Flow::Stop
                } else {
                    Flow::Continue
                }
            },
            process_options(Some(pool), NumEvents::INFINITY),
        )
        .unwrap();
    feeder.join().expect("feeder thread panicked");
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_unstable();
    assert_eq!(
        seen.len(),
        n,
        "process() returns the number of callbacks run"
    );
    // An event pulled while the Stop was being returned is given back, not processed.
    assert_eq!(
        n,
        (STOP_AT + 1) as usize,
        "process() went on after Flow::Stop: {n} events processed"
    );
    assert_eq!(seen, (0..n as u64).collect::<Vec<_>>());
    let total = (STOP_AT + 1 + LATER) as usize;
    let rest = pull_n(&consumer, total - n);
    assert_eq!(
        rest.iter().map(event_num).collect::<Vec<_>>(),
        (n as u64..total as u64).collect::<Vec<_>>()
    );
    assert_no_more_events(&consumer, 3);
}

/// Case: process honours max events.
pub fn process_honours_max_events() {
    let (driver, _dir) = test_driver();
    for threads in [0usize, 2] {
        let topic = new_topic(&driver, "process-max", one_partition());
        produce_numbered_events(&topic, 20);
        let consumer = topic.consumer("process").build().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let n = consumer
            .process(
                move |ev| {
                    assert_eq!(ev.data().to_vec(), data_string(event_num(&ev)).into_bytes());
                    s.lock().unwrap().push(event_num(&ev));
                    Flow::Continue
                },
                process_options(
                    Some(driver.make_thread_pool(ThreadCount(threads))),
                    NumEvents(7),
                ),
            )
            .unwrap();
        assert_eq!(n, 7, "threads={threads}");
        let mut seen = seen.lock().unwrap().clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..7).collect::<Vec<u64>>(), "threads={threads}");
        let next = pull_n(&consumer, 1).remove(0);
        assert_eq!(next.id(), 7, "threads={threads}");
    }
}

/// Case: process returns when no event arrives.
pub fn process_returns_when_no_event_arrives() {
    let (driver, _dir) = test_driver();
    let topic = new_topic(&driver, "process-empty", json!({}));
    let consumer = topic.consumer("process").build().unwrap();
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let n = consumer
        .process(
            move |_| {
                c.fetch_add(1, AtomicOrdering::SeqCst);
                Flow::Continue
            },
            ProcessOptions {
                timeout: Some(Duration::from_millis(200)),
                ..ProcessOptions::default()
            },
        )
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(calls.load(AtomicOrdering::SeqCst), 0);
}
