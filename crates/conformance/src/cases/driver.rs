//! Driver (BackendTest, DriverTest, test_driver*.py).

use super::*;

/// Case: driver factory rejects unknown names.
pub fn driver_factory_rejects_unknown_names() {
    match Driver::new("unknown", &json!({})) {
        Err(Error::UnknownComponent { kind, name }) => {
            assert_eq!(kind, "driver");
            assert_eq!(name, "unknown");
        }
        other => panic!("expected UnknownComponent for \"unknown\", got {other:?}"),
    }
    // A C++-style "name:library" spec of an unregistered driver loads the library: a missing
    // one is an error that names it.
    match Driver::new("unknown:libunknown-diaspora-driver.so", &json!({})) {
        Err(Error::DriverLibrary { library, reason }) => {
            assert!(
                library.contains("libunknown-diaspora-driver.so"),
                "{library}"
            );
            assert!(reason.contains("not found"), "{reason}");
        }
        other => panic!("expected DriverLibrary for a missing library, got {other:?}"),
    }
    assert!(diaspora_stream::driver::registered_drivers().contains(&"files".to_string()));
}

/// Case: driver is created from environment.
pub fn driver_is_created_from_environment() {
    let (driver, _dir) = test_driver();
    let expected = backend_name();
    let expected = expected.split(':').next().unwrap();
    assert_eq!(driver.backend().name(), expected);

    let default_pool = driver.default_thread_pool();
    assert_eq!(
        default_pool.thread_count(),
        0,
        "default pool runs work inline"
    );

    let pool = driver.make_thread_pool(ThreadCount(1));
    assert_eq!(pool.thread_count(), 1);
    let (tx, rx) = mpsc::channel();
    pool.push_work(Box::new(move || tx.send(42u32).unwrap()), u64::MAX);
    assert_eq!(rx.recv_timeout(WAIT).expect("pool job did not run"), 42);

    let inline = driver.make_thread_pool(ThreadCount(0));
    assert_eq!(inline.thread_count(), 0);
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    inline.push_work(
        Box::new(move || {
            r.fetch_add(1, AtomicOrdering::SeqCst);
        }),
        1,
    );
    assert_eq!(
        ran.load(AtomicOrdering::SeqCst),
        1,
        "0-thread pool runs work inline"
    );
}

/// Case: topic create exists open and partitions.
pub fn topic_create_exists_open_and_partitions() {
    let (driver, _dir) = test_driver();
    let name = unique_topic("mytopic");
    let missing = unique_topic("mytopic2");
    let args = topic_args();
    let expected_partitions = args
        .get("num_partitions")
        .and_then(Value::as_u64)
        .unwrap_or(1) as usize;

    assert!(!driver.topic_exists(&name).unwrap());
    assert!(
        matches!(driver.open_topic(&name), Err(Error::TopicNotFound(_))),
        "opening a topic before creating it must fail"
    );
    driver.create_topic(&name, &args).unwrap();
    assert!(driver.topic_exists(&name).unwrap());
    match driver.create_topic(&name, &args) {
        Err(Error::TopicExists(n)) => assert_eq!(n, name),
        other => panic!("second create_topic must fail with TopicExists, got {other:?}"),
    }

    let topic = driver.open_topic(&name).unwrap();
    assert_eq!(topic.name(), name);
    assert_eq!(topic.partitions().len(), expected_partitions);
    assert_eq!(topic.num_partitions(), expected_partitions);
    assert_eq!(topic.driver().backend().name(), driver.backend().name());
    // The default components are in place.
    assert_eq!(topic.validator().metadata()["type"], "default");
    assert_eq!(topic.serializer().metadata()["type"], "default");
    assert_eq!(topic.partition_selector().metadata()["type"], "default");

    assert!(!driver.topic_exists(&missing).unwrap());
    assert!(matches!(
        driver.open_topic(&missing),
        Err(Error::TopicNotFound(_))
    ));

    // Explicit partition counts are honoured.
    let three = new_topic(&driver, "three-partitions", json!({"num_partitions": 3}));
    assert_eq!(three.partitions().len(), 3);
}

/// Case: list topics describes every topic.
pub fn list_topics_describes_every_topic() {
    let (driver, _dir) = test_driver();
    let t1 = unique_topic("topic1");
    let t2 = unique_topic("topic2");
    driver.create_topic(&t1, &topic_args()).unwrap();
    driver
        .create_topic(&t2, &topic_args_with(json!({"num_partitions": 2})))
        .unwrap();
    let topics = driver.list_topics().unwrap();
    assert!(topics.len() >= 2, "list_topics returned {topics:?}");
    for (name, partitions) in [(&t1, None), (&t2, Some(2u64))] {
        let desc = topics
            .get(name)
            .unwrap_or_else(|| panic!("{name} missing from list_topics: {topics:?}"));
        assert!(
            desc.is_object(),
            "description of {name} is not an object: {desc}"
        );
        assert!(
            desc["num_partitions"].is_u64(),
            "description of {name} lacks num_partitions: {desc}"
        );
        if let Some(n) = partitions {
            assert_eq!(desc["num_partitions"], n, "{desc}");
        }
        for comp in ["validator", "serializer", "partition_selector"] {
            if let Some(v) = desc.get(comp) {
                assert!(v.is_object(), "{name}: {comp} entry is not an object: {v}");
            }
        }
    }
}
