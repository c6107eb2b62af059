//! Targets and partition selection.

use super::*;

/// A 3-partition topic with 10 events per partition (`{"event_num": i, "partition": p}`).
pub fn three_partition_topic(driver: &Driver, prefix: &str) -> TopicHandle {
    let topic = new_topic(driver, prefix, json!({"num_partitions": 3}));
    assert_eq!(topic.num_partitions(), 3);
    let producer = topic.producer().build().unwrap();
    for i in 0..30u64 {
        let p = (i % 3) as usize;
        producer.push_to(json!({"event_num": i, "partition": p}), DataView::new(), p);
    }
    flush(&producer);
    topic
}

/// Case: consumer targets restrict partitions.
pub fn consumer_targets_restrict_partitions() {
    let (driver, _dir) = test_driver();
    let topic = three_partition_topic(&driver, "targets");

    let only_one = topic.consumer("one").targets(&[1]).build().unwrap();
    assert_eq!(only_one.targets(), &[1]);
    let events = pull_n(&only_one, 10);
    assert_no_more_events(&only_one, 3);
    assert_contiguous_ids(&events, |_| 0);
    for ev in &events {
        assert_eq!(ev.partition(), 1);
        assert_eq!(field(ev, "partition"), 1);
    }

    let two = topic.consumer("two").targets(&[2, 0]).build().unwrap();
    let events = pull_n(&two, 20);
    assert_no_more_events(&two, 3);
    let counts = assert_contiguous_ids(&events, |_| 0);
    assert_eq!(counts, BTreeMap::from([(0, 10), (2, 10)]));

    let all = topic.consumer("all").targets(&[]).build().unwrap();
    assert_eq!(all.targets(), &[0, 1, 2]);
    let events = pull_n(&all, 30);
    assert_no_more_events(&all, 3);
    let counts = assert_contiguous_ids(&events, |_| 0);
    assert_eq!(counts, BTreeMap::from([(0, 10), (1, 10), (2, 10)]));
}

/// Case: consumer targets out of range are rejected.
pub fn consumer_targets_out_of_range_are_rejected() {
    let (driver, _dir) = test_driver();
    let topic = new_topic(&driver, "targets-range", json!({"num_partitions": 3}));
    match topic.consumer("c").targets(&[0, 3]).build() {
        Err(Error::PartitionOutOfRange {
            partition,
            num_partitions,
            ..
        }) => {
            assert_eq!(partition, 3);
            assert_eq!(num_partitions, 3);
        }
        other => panic!("expected PartitionOutOfRange, got {other:?}"),
    }
    assert!(matches!(
        topic.consumer("c").targets(&[1, 1]).build(),
        Err(Error::InvalidArgument(_))
    ));
}

/// Case: push to requested partition lands modulo partition count.
pub fn push_to_requested_partition_lands_modulo_partition_count() {
    let (driver, _dir) = test_driver();
    let topic = new_topic(&driver, "push-to", json!({"num_partitions": 3}));
    let requested = [0usize, 1, 2, 3, 4, 5, 7, 100, 101];
    let producer = topic.producer().build().unwrap();
    let futures: Vec<_> = requested
        .iter()
        .enumerate()
        .map(|(k, &r)| producer.push_to(json!({"tag": k}), DataView::new(), r))
        .collect();
    flush(&producer);
    let ids: Vec<_> = futures.iter().map(|f| wait_id(f, "push_to")).collect();
    drop(producer);

    let consumer = topic.consumer("c").build().unwrap();
    let events = pull_n(&consumer, requested.len());
    assert_no_more_events(&consumer, 3);
    assert_contiguous_ids(&events, |_| 0);
    let mut tags = BTreeSet::new();
    for ev in &events {
        let k = field(ev, "tag") as usize;
        assert!(tags.insert(k));
        assert_eq!(
            ev.partition(),
            requested[k] % 3,
            "push_to({})",
            requested[k]
        );
        assert_eq!(ev.id(), ids[k]);
    }
}

/// Case: default selector round robins over partitions.
pub fn default_selector_round_robins_over_partitions() {
    let (driver, _dir) = test_driver();
    let topic = new_topic(&driver, "round-robin", json!({"num_partitions": 3}));
    let producer = topic.producer().build().unwrap();
    for i in 0..9u64 {
        producer.push(json!({"event_num": i}), DataView::new());
    }
    flush(&producer);
    let consumer = topic.consumer("c").build().unwrap();
    let events = pull_n(&consumer, 9);
    let counts = assert_contiguous_ids(&events, |_| 0);
    assert_eq!(counts, BTreeMap::from([(0, 3), (1, 3), (2, 3)]));
}

/// Case: custom partition selector is used.
pub fn custom_partition_selector_is_used() {
    let (driver, _dir) = test_driver();
    let selector_type = register_fixed_selector("conformance-fixed");
    let name = unique_topic("custom-selector");
    driver
        .create_topic_with(
            &name,
            &topic_args_with(json!({"num_partitions": 3})),
            TopicComponents {
                partition_selector: Arc::new(FixedSelector {
                    type_name: selector_type.clone(),
                    index: 2,
                }),
                ..TopicComponents::default()
            },
        )
        .unwrap();
    let topic = driver.open_topic(&name).unwrap();
    assert_eq!(topic.partition_selector().metadata()["type"], selector_type);
    let producer = topic.producer().build().unwrap();
    let futures: Vec<_> = (0..5u64)
        .map(|i| producer.push_to(json!({"event_num": i}), DataView::new(), 0))
        .collect();
    flush(&producer);
    for (i, f) in futures.iter().enumerate() {
        assert_eq!(wait_id(f, "custom selector"), i as u64);
    }
    let consumer = topic.consumer("c").build().unwrap();
    let events = pull_n(&consumer, 5);
    assert_no_more_events(&consumer, 3);
    for ev in &events {
        assert_eq!(ev.partition(), 2);
    }
}

/// Case: out of range partition selector fails the push.
pub fn out_of_range_partition_selector_fails_the_push() {
    let (driver, _dir) = test_driver();
    let selector_type = register_fixed_selector("conformance-out-of-range");
    let name = unique_topic("bad-selector");
    driver
        .create_topic_with(
            &name,
            &topic_args_with(json!({"num_partitions": 2})),
            TopicComponents {
                partition_selector: Arc::new(FixedSelector {
                    type_name: selector_type.clone(),
                    index: 7,
                }),
                ..TopicComponents::default()
            },
        )
        .unwrap();
    let topic = driver.open_topic(&name).unwrap();
    assert_eq!(topic.partition_selector().metadata()["index"], 7);
    for threads in [0usize, 2] {
        let producer = topic
            .producer()
            .thread_pool(driver.make_thread_pool(ThreadCount(threads)))
            .build()
            .unwrap();
        let futures = [
            producer.push(json!({"n": 1}), DataView::from(&b"data"[..])),
            producer.push_to(json!({"n": 2}), DataView::new(), 0),
        ];
        for f in &futures {
            match f.wait_timeout(WAIT) {
                Err(Error::PartitionOutOfRange {
                    partition,
                    num_partitions,
                    ..
                }) => {
                    assert_eq!(partition, 7, "threads={threads}");
                    assert_eq!(num_partitions, 2, "threads={threads}");
                }
                other => panic!("threads={threads}: expected PartitionOutOfRange, got {other:?}"),
            }
            assert!(f.completed());
        }
        flush(&producer);
    }
    let consumer = topic.consumer("c").build().unwrap();
    assert_no_more_events(&consumer, 5);
}
