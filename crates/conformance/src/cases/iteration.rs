//! test_consumer.py: iterator, pull, custom data broker.

use super::*;

/// Case: consume events with iterator.
pub fn consume_events_with_iterator() {
    let (driver, _dir) = test_driver();
    let topic = new_topic(&driver, "iterator", one_partition());
    let producer = topic.producer().build().unwrap();
    for i in 0..10u64 {
        producer.push(
            json!({"index": i, "value": format!("event_{i}")}),
            DataView::new(),
        );
    }
    flush(&producer);
    drop(producer);

    let consumer = topic.consumer("iter").build().unwrap();
    let mut count = 0u64;
    for item in consumer.iter(Duration::from_secs(5)) {
        let ev = item.expect("iterator yielded an error");
        assert_eq!(ev.id(), count);
        assert_eq!(ev.metadata().json()["index"], count);
        assert_eq!(ev.metadata().json()["value"], format!("event_{count}"));
        ev.acknowledge().unwrap();
        count += 1;
        assert!(count <= 10, "iterator yielded more than 10 events");
    }
    assert_eq!(count, 10);
    assert!(
        consumer.iter(POLL).next().is_none(),
        "a new iterator on a drained consumer yields nothing"
    );
}

/// Case: consume events with pull.
pub fn consume_events_with_pull() {
    let (driver, _dir) = test_driver();
    let topic = new_topic(&driver, "pull", one_partition());
    let producer = topic.producer().build().unwrap();
    for i in 0..5u64 {
        producer.push(json!({"index": i}), DataView::new());
    }
    flush(&producer);
    drop(producer);

    let consumer = topic.consumer("pull").build().unwrap();
    for i in 0..5u64 {
        let ev = pull_n(&consumer, 1).remove(0);
        assert_eq!(ev.id(), i);
        assert_eq!(ev.metadata().json()["index"], i);
    }
    match consumer.pull().wait_timeout(POLL) {
        Ok(None) => {}
        Ok(Some(ev)) => assert_eq!(ev.id(), NO_MORE_EVENTS, "unexpected event {ev:?}"),
        Err(e) => panic!("pull failed: {e}"),
    }
}

/// Case: custom data selector and allocator.
pub fn custom_data_selector_and_allocator() {
    let (driver, _dir) = test_driver();
    let topic = new_topic(&driver, "data-broker", json!({}));
    let producer = topic.producer().build().unwrap();
    let f = producer.push(json!({"id": 1}), DataView::from(&b"hello world"[..]));
    flush(&producer);
    wait_id(&f, "hello world");
    drop(producer);

    let selector_calls = Arc::new(AtomicUsize::new(0));
    let allocated = Arc::new(AtomicU64::new(0));
    let (s, a) = (selector_calls.clone(), allocated.clone());
    let consumer = topic
        .consumer("broker")
        .data_selector(move |md, d| {
            assert_eq!(md.json()["id"], 1);
            s.fetch_add(1, AtomicOrdering::SeqCst);
            d.clone()
        })
        .data_allocator(move |_, d| {
            a.store(d.size(), AtomicOrdering::SeqCst);
            Allocation::single(vec![0u8; d.size() as usize])
        })
        .build()
        .unwrap();
    let ev = consumer
        .iter(WAIT)
        .next()
        .expect("no event")
        .expect("pull failed");
    assert_eq!(ev.metadata().json()["id"], 1);
    assert_eq!(ev.data().segments().len(), 1);
    assert_eq!(ev.data().segments()[0].as_ref(), b"hello world");
    assert_eq!(selector_calls.load(AtomicOrdering::SeqCst), 1);
    assert_eq!(allocated.load(AtomicOrdering::SeqCst), 11);
}

/// Case: pull many takes events in order up to its limit then the end of stream.
pub fn pull_many_takes_events_in_order_up_to_its_limit_then_the_end_of_stream() {
    let (driver, _dir) = test_driver();
    let topic = new_topic(&driver, "pull-many", one_partition());
    let producer = topic.producer().build().unwrap();
    for i in 0..10u64 {
        producer.push(
            json!({"index": i}),
            DataView::from(data_string(i).into_bytes()),
        );
    }
    producer.end_of_stream(0, 1).wait_timeout(WAIT).unwrap();
    flush(&producer);
    drop(producer);

    let consumer = topic.consumer("pull-many").build().unwrap();
    assert_eq!(
        consumer.pull_many(&mut Vec::new(), 0, Some(POLL)).unwrap(),
        0
    );
    let mut got: Vec<Event> = Vec::new();
    let deadline = Instant::now() + WAIT;
    while got.len() < 10 && Instant::now() < deadline {
        let before = got.len();
        let n = consumer.pull_many(&mut got, 4, Some(POLL)).unwrap();
        assert_eq!(got.len(), before + n, "the count is what was appended");
        assert!(n <= 4, "took {n} events with a limit of 4");
    }
    let ids: Vec<EventId> = got.iter().map(Event::id).collect();
    assert_eq!(ids, (0..10).collect::<Vec<_>>());
    for ev in &got {
        assert_eq!(ev.data().to_vec(), data_string(ev.id()).into_bytes());
        assert_eq!(field(ev, "index"), ev.id());
    }
    // The end of the stream comes alone, and again on every later call.
    for _ in 0..2 {
        let mut end = Vec::new();
        let n = consumer.pull_many(&mut end, 8, Some(WAIT)).unwrap();
        assert_eq!(n, 1);
        assert!(end[0].is_end_of_stream(), "{:?}", end[0]);
    }
}

/// Case: pull many waits for the first event and times out with none.
pub fn pull_many_waits_for_the_first_event_and_times_out_with_none() {
    let (driver, _dir) = test_driver();
    let topic = new_topic(&driver, "pull-many-wait", one_partition());
    let consumer = topic.consumer("pull-many-wait").build().unwrap();
    let mut got = Vec::new();
    assert_eq!(consumer.pull_many(&mut got, 16, Some(POLL)).unwrap(), 0);
    assert!(got.is_empty());
    let producer = topic.producer().build().unwrap();
    let pusher = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(200));
        producer.push(json!({"index": 0}), DataView::new());
        flush(&producer);
    });
    // No limit on the wait: it returns once the event is there.
    let n = consumer.pull_many(&mut got, 16, None).unwrap();
    pusher.join().unwrap();
    assert_eq!(n, 1);
    assert_eq!(field(&got[0], "index"), 0);
}

/// Case: an iterator dropped early gives back what it took.
pub fn an_iterator_dropped_early_gives_back_what_it_took() {
    let (driver, _dir) = test_driver();
    let topic = new_topic(&driver, "iter-give-back", one_partition());
    let producer = topic.producer().build().unwrap();
    for i in 0..20u64 {
        producer.push(json!({"index": i}), DataView::new());
    }
    flush(&producer);
    drop(producer);

    let consumer = topic.consumer("iter-give-back").build().unwrap();
    let first: Vec<EventId> = consumer
        .iter(WAIT)
        .take(3)
        .map(|ev| ev.unwrap().id())
        .collect();
    assert_eq!(first, vec![0, 1, 2]);
    // The iterator took a group of events at once; the ones it did not yield come next.
    let rest: Vec<EventId> = pull_n(&consumer, 17).iter().map(Event::id).collect();
    assert_eq!(rest, (3..20).collect::<Vec<_>>());
    assert_no_more_events(&consumer, 2);
}
