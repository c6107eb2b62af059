//! test_consumer.py: iterator, pull, custom data broker.

use super::*;

#[test]
fn consume_events_with_iterator() {
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

#[test]
fn consume_events_with_pull() {
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

#[test]
fn custom_data_selector_and_allocator() {
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
