//! Producer and consumer creation (ProducerTest, ConsumerTest, test_producer.py, test_consumer.py).

use super::*;

/// Case: producer creation and accessors.
pub fn producer_creation_and_accessors() {
    let (driver, _dir) = test_driver();
    let topic = new_topic(&driver, "mytopic", json!({}));

    let p = topic.producer().build().unwrap();
    assert_eq!(p.name(), "");
    assert_eq!(p.batch_size(), BatchSize::Adaptive);
    assert_eq!(p.max_num_batches(), MaxNumBatches(2));
    assert_eq!(p.ordering(), Ordering::Strict);
    assert_eq!(p.thread_pool().thread_count(), 0);
    assert_eq!(p.topic(), &topic);
    drop(p);

    let pool = driver.make_thread_pool(ThreadCount(2));
    let p = topic
        .producer()
        .name("myproducer")
        .batch_size(BatchSize::Fixed(32))
        .max_num_batches(MaxNumBatches(4))
        .ordering(Ordering::Loose)
        .thread_pool(pool.clone())
        .options(json!({"x": 1}))
        .build()
        .unwrap();
    assert_eq!(p.name(), "myproducer");
    assert_eq!(
        p.topic(),
        &topic,
        "producer.topic() is the topic it was built from"
    );
    assert_eq!(p.topic().name(), topic.name());
    assert_eq!(p.batch_size(), BatchSize::Fixed(32));
    assert_eq!(p.max_num_batches(), MaxNumBatches(4));
    assert_eq!(p.ordering(), Ordering::Loose);
    assert!(Arc::ptr_eq(p.thread_pool(), &pool));
    assert_eq!(p.thread_pool().thread_count(), 2);
    assert_eq!(p.options(), &json!({"x": 1}));
    drop(p);

    assert!(matches!(
        topic.producer().max_num_batches(MaxNumBatches(0)).build(),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        topic.producer().batch_size(BatchSize::Fixed(0)).build(),
        Err(Error::InvalidArgument(_))
    ));
}

/// Case: consumer creation and accessors.
pub fn consumer_creation_and_accessors() {
    let (driver, _dir) = test_driver();
    let topic = new_topic(&driver, "mytopic", json!({}));
    let n = topic.num_partitions();

    let c = topic.consumer("myconsumer").build().unwrap();
    assert_eq!(c.name(), "myconsumer");
    assert_eq!(c.topic(), &topic);
    assert_eq!(c.topic().name(), topic.name());
    assert_eq!(c.batch_size(), BatchSize::Adaptive);
    assert_eq!(c.max_num_batches(), MaxNumBatches(2));
    assert_eq!(c.thread_pool().thread_count(), 0);
    assert!(c.data_selector().is_none());
    assert!(c.data_allocator().is_none());
    assert_eq!(c.targets(), (0..n).collect::<Vec<_>>().as_slice());
    drop(c);

    let pool = driver.make_thread_pool(ThreadCount(1));
    let c = topic
        .consumer("other")
        .batch_size(BatchSize::Fixed(16))
        .max_num_batches(MaxNumBatches(3))
        .thread_pool(pool.clone())
        .data_selector(|_, d| d.clone())
        .data_allocator(|_, d| Allocation::single(vec![0u8; d.size() as usize]))
        .options(json!({"y": 2}))
        .build()
        .unwrap();
    assert_eq!(c.name(), "other");
    assert_eq!(c.batch_size(), BatchSize::Fixed(16));
    assert_eq!(c.max_num_batches(), MaxNumBatches(3));
    assert!(Arc::ptr_eq(c.thread_pool(), &pool));
    assert!(c.data_selector().is_some());
    assert!(c.data_allocator().is_some());
    assert_eq!(c.options(), &json!({"y": 2}));
    drop(c);

    assert!(matches!(
        topic
            .consumer("bad")
            .max_num_batches(MaxNumBatches(0))
            .build(),
        Err(Error::InvalidArgument(_))
    ));
    assert!(matches!(
        topic
            .consumer("bad")
            .batch_size(BatchSize::Fixed(0))
            .build(),
        Err(Error::InvalidArgument(_))
    ));
}
