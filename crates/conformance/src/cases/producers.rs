//! EventProducerTest: ThreadCount x BatchSize x Ordering.

use super::*;

/// Pushes numbered events with `threads` pool threads, `batch` and `ordering`, then checks
/// that each arrives once, in push order per partition.
pub fn run_producer_case(driver: &Driver, threads: usize, batch: BatchSize, ordering: Ordering) {
    const N: u64 = 100;
    let ctx = format!("threads={threads} batch={batch:?} ordering={ordering:?}");
    let topic = new_topic(driver, "event-producer", json!({}));
    let pool = driver.make_thread_pool(ThreadCount(threads));
    assert_eq!(pool.thread_count(), threads, "{ctx}");
    let producer = topic
        .producer()
        .name("event-producer")
        .batch_size(batch)
        .ordering(ordering)
        .thread_pool(pool.clone())
        .build()
        .unwrap();
    assert_eq!(producer.thread_pool().thread_count(), threads, "{ctx}");
    assert!(Arc::ptr_eq(producer.thread_pool(), &pool), "{ctx}");

    let mut futures = Vec::with_capacity(2 * N as usize);
    // 100 metadata-only events, then 100 events with data; every 5th future is waited on (after
    // a flush when the batch size is fixed, since a partial batch is only sent by a flush).
    for i in 0..2 * N {
        let data = if i < N {
            DataView::new()
        } else {
            DataView::from(data_string(i))
        };
        futures.push(producer.push(json!({"event_num": i}), data));
        if i % 5 == 4 {
            if batch != BatchSize::Adaptive {
                flush(&producer);
            }
            wait_id(&futures[i as usize], &ctx);
        }
    }
    flush(&producer);
    let ids: Vec<EventId> = futures
        .iter()
        .enumerate()
        .map(|(i, f)| wait_id(f, &format!("{ctx} event {i}")))
        .collect();
    drop(producer);

    // Every event is stored exactly once, with the id its push future announced.
    let consumer = topic.consumer("check").build().unwrap();
    let events = pull_n(&consumer, 2 * N as usize);
    assert_no_more_events(&consumer, 3);
    let counts = assert_contiguous_ids(&events, |_| 0);
    assert_eq!(counts.values().sum::<u64>(), 2 * N, "{ctx}");
    let mut by_num: HashMap<u64, &Event> = HashMap::new();
    for ev in &events {
        let num = event_num(ev);
        assert!(
            by_num.insert(num, ev).is_none(),
            "{ctx}: event {num} stored twice"
        );
        if num < N {
            assert!(
                ev.data().is_empty(),
                "{ctx}: event {num} should carry no data"
            );
        } else {
            assert_eq!(
                ev.data().to_vec(),
                data_string(num).into_bytes(),
                "{ctx}: data of {num}"
            );
        }
    }
    for (i, id) in ids.iter().enumerate() {
        let ev = by_num
            .get(&(i as u64))
            .unwrap_or_else(|| panic!("{ctx}: event {i} missing"));
        assert_eq!(
            ev.id(),
            *id,
            "{ctx}: push future of event {i} announced a wrong id"
        );
    }
    // Per partition, ids are 0..count with no duplicate (checked above), and with strict
    // ordering each partition stores events in push order.
    if ordering == Ordering::Strict {
        let mut last: HashMap<usize, u64> = HashMap::new();
        for ev in &events {
            let num = event_num(ev);
            if let Some(prev) = last.insert(ev.partition(), num) {
                assert!(
                    prev < num,
                    "{ctx}: partition {} stored event {num} after {prev}",
                    ev.partition()
                );
            }
        }
    }
}

/// Case: event producer inline pool.
pub fn event_producer_inline_pool() {
    let (driver, _dir) = test_driver();
    for batch in [BatchSize::Adaptive, BatchSize::Fixed(10)] {
        for ordering in [Ordering::Strict, Ordering::Loose] {
            run_producer_case(&driver, 0, batch, ordering);
        }
    }
}

/// Case: event producer one thread pool.
pub fn event_producer_one_thread_pool() {
    let (driver, _dir) = test_driver();
    for batch in [BatchSize::Adaptive, BatchSize::Fixed(10)] {
        for ordering in [Ordering::Strict, Ordering::Loose] {
            run_producer_case(&driver, 1, batch, ordering);
        }
    }
}

/// Case: event producer two thread pool.
pub fn event_producer_two_thread_pool() {
    let (driver, _dir) = test_driver();
    for batch in [BatchSize::Adaptive, BatchSize::Fixed(10)] {
        for ordering in [Ordering::Strict, Ordering::Loose] {
            run_producer_case(&driver, 2, batch, ordering);
        }
    }
}

/// Case: dropping a producer flushes pending events.
pub fn dropping_a_producer_flushes_pending_events() {
    let (driver, _dir) = test_driver();
    let topic = new_topic(&driver, "drop-flush", one_partition());
    let producer = topic
        .producer()
        .batch_size(BatchSize::Fixed(100))
        .build()
        .unwrap();
    let futures: Vec<_> = (0..7u64)
        .map(|i| producer.push(json!({"event_num": i}), DataView::from(data_string(i))))
        .collect();
    drop(producer);
    for (i, f) in futures.iter().enumerate() {
        assert_eq!(wait_id(f, "dropped producer"), i as u64);
    }
    let consumer = topic.consumer("c").build().unwrap();
    let events = pull_n(&consumer, 7);
    for (i, ev) in events.iter().enumerate() {
        assert_eq!(event_num(ev), i as u64);
        assert_eq!(ev.data().to_vec(), data_string(i as u64).into_bytes());
    }
    assert_no_more_events(&consumer, 3);
}

/// Case: the producer's memory bound (`max_buffered_bytes`, `on_full`) holds on this driver.
///
/// Events pushed into a fixed batch that is not full are held by the producer (nothing is sent
/// before the batch fills or a flush), so the bound is reached at a known point whatever the
/// driver's speed. With `on_full = error` the pushes past it are refused at once; with
/// `on_full = block` they wait while the producer sends its partial batch, and all go through.
/// Either way the producer never holds more than the bound, and exactly the accepted events
/// are stored, each once, in push order.
pub fn bounded_producer_memory_holds() {
    const BOUND: usize = 256 << 10;
    const SIZE: usize = 32 << 10;
    const N: u64 = 20;
    let (driver, _dir) = test_driver();
    let topic = new_topic(&driver, "bounded", one_partition());
    let mut expected: Vec<(String, u64)> = Vec::new();
    for threads in [0, 1] {
        for on_full in [OnFull::Error, OnFull::Block] {
            let round = format!("{on_full:?}-{threads}");
            let producer = topic
                .producer()
                .name(&round)
                .thread_pool(driver.make_thread_pool(ThreadCount(threads)))
                .batch_size(BatchSize::Fixed(64))
                .max_buffered_bytes(BOUND)
                .on_full(on_full)
                .build()
                .unwrap();
            let mut accepted = Vec::new();
            let mut refused = 0;
            for i in 0..N {
                let f = producer.push(
                    json!({"round": round, "event_num": i}),
                    DataView::from(vec![i as u8; SIZE]),
                );
                assert!(
                    producer.buffered_bytes() <= BOUND,
                    "{round}: {} bytes held over a bound of {BOUND}",
                    producer.buffered_bytes()
                );
                if on_full == OnFull::Error && f.completed() {
                    match f.wait() {
                        Err(Error::ProducerFull { limit, waited, .. }) => {
                            assert_eq!(limit, BOUND, "{round}");
                            assert!(!waited, "{round}: on_full = error waited");
                            refused += 1;
                            continue;
                        }
                        other => panic!("{round}: push {i}: expected ProducerFull, got {other:?}"),
                    }
                }
                // Nothing drains before the batch fills: no push is accepted after a refusal.
                assert_eq!(refused, 0, "{round}: push {i} accepted after a refusal");
                accepted.push((i, f));
            }
            let k = accepted.len();
            if on_full == OnFull::Error {
                assert!(
                    k >= 1 && k * SIZE <= BOUND,
                    "{round}: {k} events of {SIZE} B accepted"
                );
                assert_eq!(k as u64 + refused, N, "{round}");
                assert!(refused > 0, "{round}: the bound never refused a push");
            } else {
                assert_eq!(k as u64, N, "{round}: a blocking push failed");
            }
            flush(&producer);
            assert_eq!(
                producer.buffered_bytes(),
                0,
                "{round}: bytes held after a flush"
            );
            for (i, f) in &accepted {
                wait_id(f, &format!("{round} event {i}"));
                expected.push((round.clone(), *i));
            }
        }
    }
    let consumer = topic.consumer("bounded-check").build().unwrap();
    let events = pull_n(&consumer, expected.len());
    assert_no_more_events(&consumer, 2);
    assert_contiguous_ids(&events, |_| 0);
    let got: Vec<(String, u64)> = events
        .iter()
        .map(|e| {
            assert_eq!(e.data().size(), SIZE);
            let round = e.metadata().json()["round"]
                .as_str()
                .unwrap_or("?")
                .to_string();
            (round, event_num(e))
        })
        .collect();
    assert_eq!(got, expected, "stored events differ from the accepted ones");
}
