//! ConcurrentProducerConsumerTest.

use super::*;

/// Pulls (and acknowledges) events until `n` arrived or `deadline` passed, optionally sleeping
/// after each event; returns the events in delivery order.
pub fn consume_concurrently(
    consumer: &Consumer,
    n: usize,
    deadline: Duration,
    sleep: Option<Duration>,
) -> Vec<Event> {
    let end = Instant::now() + deadline;
    let mut events = Vec::with_capacity(n);
    while events.len() < n && Instant::now() < end {
        match consumer.pull().wait_timeout(POLL) {
            Ok(Some(ev)) if ev.is_end_of_stream() => {}
            Ok(Some(ev)) => {
                ev.acknowledge().unwrap();
                events.push(ev);
                if let Some(s) = sleep {
                    std::thread::sleep(s);
                }
            }
            Ok(None) => {}
            Err(e) => panic!("pull failed: {e}"),
        }
    }
    events
}

/// Case: concurrent single producer and consumer.
pub fn concurrent_single_producer_and_consumer() {
    const N: u64 = 1000;
    let (driver, _dir) = test_driver();
    let topic = new_topic(&driver, "concurrent-single", json!({}));
    let producer_topic = topic.clone();
    let producer = std::thread::spawn(move || {
        let producer = producer_topic.producer().name("p").build().unwrap();
        let mut ids = Vec::new();
        for i in 0..N {
            ids.push(wait_id(
                &producer.push(json!({"event_num": i}), DataView::new()),
                "concurrent push",
            ));
        }
        flush(&producer);
        ids
    });
    let consumer_topic = topic.clone();
    let consumer = std::thread::spawn(move || {
        let consumer = consumer_topic.consumer("c").build().unwrap();
        let events = consume_concurrently(&consumer, N as usize, LONG_WAIT, None);
        assert_no_more_events(&consumer, 3);
        events
    });
    let ids = producer.join().expect("producer thread panicked");
    let events = consumer.join().expect("consumer thread panicked");
    assert_eq!(ids.len(), N as usize);
    assert_eq!(
        events.len(),
        N as usize,
        "consumer got {} of {N} events",
        events.len()
    );
    assert_contiguous_ids(&events, |_| 0);
    let nums: BTreeSet<u64> = events.iter().map(event_num).collect();
    assert_eq!(nums, (0..N).collect::<BTreeSet<_>>());
    for ev in &events {
        assert_eq!(ids[event_num(ev) as usize], ev.id());
        assert!(ev.data().is_empty());
    }
}

/// Case: concurrent producer faster than consumer.
pub fn concurrent_producer_faster_than_consumer() {
    const N: u64 = 30;
    let (driver, _dir) = test_driver();
    let topic = new_topic(&driver, "concurrent-fast-producer", json!({}));
    let producer_topic = topic.clone();
    let producer = std::thread::spawn(move || {
        let producer = producer_topic.producer().name("p").build().unwrap();
        let futures: Vec<_> = (0..N)
            .map(|i| {
                // A loop-local buffer: the library must keep it alive (the C++ test dangles).
                let payload = format!("payload of event {i}: {}", "x".repeat(i as usize));
                producer.push(json!({"event_num": i}), DataView::from(payload))
            })
            .collect();
        flush(&producer);
        futures
            .iter()
            .map(|f| wait_id(f, "fast producer"))
            .collect::<Vec<_>>()
    });
    let consumer_topic = topic.clone();
    let consumer = std::thread::spawn(move || {
        let consumer = consumer_topic.consumer("c").build().unwrap();
        consume_concurrently(&consumer, N as usize, WAIT, Some(Duration::from_millis(10)))
    });
    let ids = producer.join().expect("producer thread panicked");
    let events = consumer.join().expect("consumer thread panicked");
    assert_eq!(ids.len(), N as usize);
    assert_eq!(events.len(), N as usize);
    assert_contiguous_ids(&events, |_| 0);
    let mut seen = BTreeSet::new();
    for ev in &events {
        let i = event_num(ev);
        assert!(seen.insert(i), "event {i} delivered twice");
        assert_eq!(ids[i as usize], ev.id());
        let expected = format!("payload of event {i}: {}", "x".repeat(i as usize));
        assert_eq!(
            ev.data().to_vec(),
            expected.into_bytes(),
            "data of event {i}"
        );
    }
    assert_eq!(seen.len(), N as usize);
}

/// Case: concurrent multiple producers single consumer.
pub fn concurrent_multiple_producers_single_consumer() {
    const PRODUCERS: u64 = 3;
    const N: u64 = 20;
    let (driver, _dir) = test_driver();
    let topic = new_topic(&driver, "concurrent-multi", json!({}));
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|t| {
            let topic = topic.clone();
            std::thread::spawn(move || {
                let producer = topic.producer().name(&format!("p{t}")).build().unwrap();
                let futures: Vec<_> = (0..N)
                    .map(|i| {
                        producer.push(
                            json!({"producer": t, "event_num": i}),
                            DataView::from(format!("producer {t} event {i}")),
                        )
                    })
                    .collect();
                flush(&producer);
                futures
                    .iter()
                    .map(|f| wait_id(f, "multi producer"))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let consumer_topic = topic.clone();
    let consumer = std::thread::spawn(move || {
        let consumer = consumer_topic.consumer("c").build().unwrap();
        let events = consume_concurrently(&consumer, (PRODUCERS * N) as usize, LONG_WAIT, None);
        assert_no_more_events(&consumer, 3);
        events
    });
    let ids: Vec<Vec<EventId>> = producers
        .into_iter()
        .map(|h| h.join().expect("producer thread panicked"))
        .collect();
    let events = consumer.join().expect("consumer thread panicked");
    assert_eq!(events.len(), (PRODUCERS * N) as usize);
    assert_contiguous_ids(&events, |_| 0);
    let mut seen = BTreeSet::new();
    let mut last: HashMap<(usize, u64), u64> = HashMap::new();
    for ev in &events {
        let (t, i) = (field(ev, "producer"), event_num(ev));
        assert!(seen.insert((t, i)), "event {t}/{i} delivered twice");
        assert_eq!(
            ev.data().to_vec(),
            format!("producer {t} event {i}").into_bytes()
        );
        assert_eq!(ids[t as usize][i as usize], ev.id(), "id of event {t}/{i}");
        // Each producer's events keep their order within a partition.
        if let Some(prev) = last.insert((ev.partition(), t), i) {
            assert!(prev < i, "producer {t}: event {i} stored after {prev}");
        }
    }
    assert_eq!(seen.len(), (PRODUCERS * N) as usize);
}
