//! EventConsumerTest.

use super::*;

/// Pushes 100 events `{"event_num": i}` with data "This is data for event i" on the driver's
/// default pool, then flushes.
pub fn produce_numbered_events(topic: &TopicHandle, n: u64) {
    let producer = topic.producer().build().unwrap();
    assert_eq!(producer.thread_pool().thread_count(), 0);
    let futures: Vec<_> = (0..n)
        .map(|i| producer.push(json!({"event_num": i}), DataView::from(data_string(i))))
        .collect();
    flush(&producer);
    for f in &futures {
        wait_id(f, "produce_numbered_events");
    }
}

/// Case: event consumer without data.
pub fn event_consumer_without_data() {
    let (driver, _dir) = test_driver();
    let topic = new_topic(&driver, "event-consumer", one_partition());
    produce_numbered_events(&topic, 100);

    let selected = Arc::new(AtomicUsize::new(0));
    let s = selected.clone();
    let consumer = topic
        .consumer("consumer")
        .data_selector(move |_, d| {
            s.fetch_add(1, AtomicOrdering::SeqCst);
            assert_eq!(d.size(), d.base_size());
            DataDescriptor::none()
        })
        .build()
        .unwrap();
    for i in 0..100u64 {
        let ev = pull_n(&consumer, 1).remove(0);
        assert_eq!(ev.id(), i);
        assert_eq!(ev.partition(), 0);
        assert_eq!(event_num(&ev), i);
        assert_eq!(ev.data().size(), 0);
        assert!(ev.data().segments().is_empty());
        if i % 5 == 0 {
            ev.acknowledge().unwrap();
        }
    }
    assert_no_more_events(&consumer, 10);
    assert_eq!(selected.load(AtomicOrdering::SeqCst), 100);
}

/// Case: event consumer with data.
pub fn event_consumer_with_data() {
    let (driver, _dir) = test_driver();
    let topic = new_topic(&driver, "event-consumer-data", one_partition());
    produce_numbered_events(&topic, 100);

    let allocations = Arc::new(AtomicUsize::new(0));
    let a = allocations.clone();
    let consumer = topic
        .consumer("consumer")
        .data_selector(|md, d| {
            if md.json()["event_num"].as_u64().unwrap_or(1) % 2 == 0 {
                d.clone()
            } else {
                DataDescriptor::none()
            }
        })
        .data_allocator(move |_, d| {
            a.fetch_add(1, AtomicOrdering::SeqCst);
            Allocation::single(vec![0u8; d.size() as usize])
        })
        .build()
        .unwrap();
    for i in 0..100u64 {
        let ev = pull_n(&consumer, 1).remove(0);
        assert_eq!(ev.id(), i);
        assert_eq!(event_num(&ev), i);
        if i % 2 == 0 {
            assert_eq!(ev.data().segments().len(), 1, "event {i}");
            assert_eq!(ev.data().to_vec(), data_string(i).into_bytes());
        } else {
            assert_eq!(ev.data().segments().len(), 0, "event {i}");
            assert_eq!(ev.data().size(), 0);
        }
    }
    assert_no_more_events(&consumer, 10);
    assert_eq!(
        allocations.load(AtomicOrdering::SeqCst),
        50,
        "the allocator is called only for events with selected data"
    );
}
