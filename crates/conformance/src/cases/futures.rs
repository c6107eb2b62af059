//! Future semantics, and pulls dropped before any wait.

use super::validators::validated_topic;
use super::*;

/// Case: ready and failed futures.
pub fn ready_and_failed_futures() {
    let f = Future::ready(5u32);
    assert!(f.completed());
    assert_eq!(f.wait().unwrap(), 5);
    assert_eq!(f.wait().unwrap(), 5);
    assert_eq!(f.wait_timeout(Duration::ZERO).unwrap(), Some(5));
    assert_eq!(f.wait_ms(0).unwrap(), Some(5));

    let f: Future<u32> = Future::failed(Error::Closed("producer"));
    assert!(f.completed());
    assert!(matches!(f.wait(), Err(Error::Closed(_))));
    assert!(
        matches!(f.wait(), Err(Error::Closed(_))),
        "errors are returned on every wait"
    );
    assert!(f.wait_timeout(POLL).is_err());
}

/// Case: push future timeout is retryable.
pub fn push_future_timeout_is_retryable() {
    let (driver, _dir) = test_driver();
    let topic = new_topic(&driver, "future-push", one_partition());
    // A fixed batch of 10 holds 3 events until the flush.
    let producer = topic
        .producer()
        .batch_size(BatchSize::Fixed(10))
        .build()
        .unwrap();
    let futures: Vec<_> = (0..3u64)
        .map(|i| producer.push(json!({"event_num": i}), DataView::new()))
        .collect();
    for f in &futures {
        assert!(!f.completed(), "a push in an unsent batch is not complete");
        assert_eq!(f.wait_timeout(Duration::from_millis(20)).unwrap(), None);
        assert_eq!(f.wait_timeout(Duration::from_millis(20)).unwrap(), None);
    }
    let flushed = producer.flush();
    assert_eq!(flushed.wait_timeout(WAIT).unwrap(), Some(()));
    assert!(flushed.completed());
    for (i, f) in futures.iter().enumerate() {
        assert_eq!(f.wait_timeout(WAIT).unwrap(), Some(i as u64));
        assert!(f.completed());
        assert_eq!(
            f.wait().unwrap(),
            i as u64,
            "a future can be waited on again"
        );
        assert_eq!(f.wait_ms(0).unwrap(), Some(i as u64));
    }
}

/// Case: pull future timeout is retryable.
pub fn pull_future_timeout_is_retryable() {
    let (driver, _dir) = test_driver();
    let topic = new_topic(&driver, "future-pull", one_partition());
    let consumer = topic.consumer("c").build().unwrap();
    let f = consumer.pull();
    assert!(!f.completed());
    assert!(f.wait_timeout(POLL).unwrap().is_none());
    assert!(f.wait_timeout(POLL).unwrap().is_none());

    let producer = topic.producer().build().unwrap();
    producer.push(json!({"event_num": 0}), DataView::from(data_string(0)));
    flush(&producer);

    let ev = f
        .wait_timeout(WAIT)
        .unwrap()
        .expect("the retried pull did not receive the event");
    assert_eq!(ev.id(), 0);
    assert_eq!(event_num(&ev), 0);
    assert!(f.completed());
    let again = f.wait().unwrap();
    assert_eq!(again.id(), ev.id());
    assert_eq!(again.metadata(), ev.metadata());
    assert_eq!(again.data().to_vec(), data_string(0).into_bytes());
    assert_no_more_events(&consumer, 3);
}

/// Case: end of stream arrives after every producer ended.
pub fn end_of_stream_arrives_after_every_producer_ended() {
    let (driver, _dir) = test_driver();
    let topic = new_topic(&driver, "eos", json!({"num_partitions": 3}));
    let a = topic.producer().build().unwrap();
    let b = topic.producer().build().unwrap();
    for i in 0..10u64 {
        a.push(json!({"event_num": i}), DataView::from(data_string(i)));
        b.push(
            json!({"event_num": 100 + i}),
            DataView::from(data_string(100 + i)),
        );
    }
    a.end_of_stream(0, 2).wait().unwrap();
    assert!(
        b.end_of_stream(2, 2).wait().is_err(),
        "index must be below the count"
    );
    let consumer = topic.consumer("eos").build().unwrap();
    // Producer b has not ended yet: its events arrive, the end of stream does not.
    b.flush().wait().unwrap();
    let mut nums = Vec::new();
    while let Some(ev) = consumer
        .pull()
        .wait_timeout(Duration::from_millis(500))
        .unwrap()
    {
        assert!(
            !ev.is_end_of_stream(),
            "end of stream before every producer ended"
        );
        nums.push(event_num(&ev));
    }
    assert_eq!(nums.len(), 20, "markers are not delivered as events");
    b.end_of_stream(1, 2).wait().unwrap();
    let ev = consumer
        .pull()
        .wait_timeout(WAIT)
        .unwrap()
        .expect("end of stream");
    assert!(ev.is_end_of_stream());
    assert_eq!(ev.id(), NO_MORE_EVENTS);
    // It stays ended, and the iterator stops at it.
    assert!(consumer
        .pull()
        .wait_timeout(WAIT)
        .unwrap()
        .unwrap()
        .is_end_of_stream());
    assert_eq!(consumer.iter(WAIT).count(), 0);
    // A consumer restarted later sees the same events then the end of stream.
    let again = topic.consumer("eos-2").targets(&[1]).build().unwrap();
    let events: Vec<_> = again.iter(WAIT).collect::<Result<_, _>>().unwrap();
    assert!(!events.is_empty() && events.len() < 20);
    assert!(again
        .pull()
        .wait_timeout(WAIT)
        .unwrap()
        .unwrap()
        .is_end_of_stream());
}

/// Case: pool producers keep push order over many chunks and fail events one by one.
pub fn pool_producers_keep_push_order_over_many_chunks_and_fail_events_one_by_one() {
    // Enough events for several pool jobs to process chunks at once.
    const N: u64 = 3000;
    let (driver, _dir) = test_driver();
    for threads in [1, 2] {
        let ctx = format!("threads={threads}");
        // The validator rejects events whose "bad" key is true.
        let topic = validated_topic(
            &driver,
            "pool-order",
            &json!({
                "type": "schema",
                "schema": {"type": "object", "properties": {"bad": {"const": false}}}
            }),
        );
        let pool = driver.make_thread_pool(ThreadCount(threads));
        let producer = topic
            .producer()
            .batch_size(BatchSize::Fixed(64))
            .ordering(Ordering::Strict)
            .thread_pool(pool)
            .build()
            .unwrap();
        let futures: Vec<_> = (0..N)
            .map(|i| {
                // Every 7th event is rejected by the validator, on a pool thread: it alone fails.
                producer.push(json!({"event_num": i, "bad": i % 7 == 3}), DataView::new())
            })
            .collect();
        flush(&producer);
        for (i, f) in futures.iter().enumerate() {
            let r = f.wait();
            assert_eq!(r.is_err(), i % 7 == 3, "{ctx}: event {i}: {r:?}");
        }
        drop(producer);
        let stored = N - N.div_ceil(7);
        let consumer = topic.consumer("check").build().unwrap();
        let events = pull_n(&consumer, stored as usize);
        let nums: Vec<u64> = events.iter().map(event_num).collect();
        let expected: Vec<u64> = (0..N).filter(|i| i % 7 != 3).collect();
        assert_eq!(nums, expected, "{ctx}: stored in push order");
    }
}

/// Case: a pull dropped before any wait gives its event back.
pub fn a_pull_dropped_before_any_wait_gives_its_event_back() {
    // With 0 and 1 pool threads: a pull that finds events queued claims one at once; a pull
    // that must wait goes through the consumer's queue. Either way, an event is never lost to a
    // future nobody waited on, and pulls waited on out of order get events in pull order.
    let (driver, _guard) = test_driver();
    for threads in [0, 1] {
        let topic = new_topic(&driver, "drop-pull", one_partition());
        let producer = topic.producer().build().unwrap();
        for i in 0..20u64 {
            producer.push(json!({"event_num": i}), DataView::new());
        }
        flush(&producer);
        let consumer = topic
            .consumer("c")
            .thread_pool(driver.make_thread_pool(ThreadCount(threads)))
            .build()
            .unwrap();
        // Let the first events arrive so that the next pulls find them queued.
        let first = pull_n(&consumer, 1);
        assert_eq!(event_num(&first[0]), 0, "threads {threads}");
        let f1 = consumer.pull();
        let deadline = Instant::now() + WAIT;
        while !f1.completed() {
            assert!(
                Instant::now() < deadline,
                "threads {threads}: no event for f1"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        drop(f1);
        let f2 = consumer.pull();
        let f3 = consumer.pull();
        let e3 = f3.wait_timeout(WAIT).unwrap().expect("f3");
        let e2 = f2.wait_timeout(WAIT).unwrap().expect("f2");
        assert_eq!(
            (event_num(&e2), event_num(&e3)),
            (1, 2),
            "threads {threads}: the dropped pull's event comes first, pulls in pull order"
        );
        let rest = pull_n(&consumer, 17);
        let nums: Vec<u64> = rest.iter().map(event_num).collect();
        assert_eq!(nums, (3..20).collect::<Vec<u64>>(), "threads {threads}");
    }
}
