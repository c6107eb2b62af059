//! Conformance checklist of the Diaspora Stream API, ported from the C++ reference's test suite
//! (behaviour notes §5.2 and §5.3) and extended with the semantics the Rust port guarantees
//! (acknowledgements, targets, range-checked partition selectors, validators that reject).
//!
//! Every test runs against the driver named by `DIASPORA_TEST_BACKEND` (default `files`) with the
//! options in `DIASPORA_TEST_BACKEND_ARGS`; topics are created with `DIASPORA_TEST_TOPIC_ARGS`
//! (tests that depend on a partition count merge their own `num_partitions` into those). Topic
//! names are unique so that drivers which keep topics across runs work too.
//!
//! Timeouts are deadlines for a loaded machine, never speed assertions.

mod common;

use common::{backend_name, test_driver, topic_args, topic_args_with, unique_topic};
use diaspora_stream::components::{
    register_partition_selector, validator_from_config, PartitionSelector, TopicComponents,
};
use diaspora_stream::thread_pool::Job;
use diaspora_stream::{
    Allocation, BatchSize, Consumer, DataDescriptor, DataView, Driver, Error, Event, EventId, Flow,
    Future, MaxNumBatches, Metadata, NumEvents, Ordering, PartitionInfo, ProcessOptions, Producer,
    ThreadCount, ThreadPool, TopicHandle, NO_MORE_EVENTS,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Deadline for one blocking operation (a push, a flush, a batch of pulls).
const WAIT: Duration = Duration::from_secs(30);
/// Deadline for the long concurrent scenarios.
const LONG_WAIT: Duration = Duration::from_secs(60);
/// One pull attempt, as in the reference tests (`pull().wait(100)`).
const POLL: Duration = Duration::from_millis(100);

const ALPHA: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

// ------------------------------------------------------------------------------------------------
// Helpers
// ------------------------------------------------------------------------------------------------

/// Creates a topic with a unique name from the test topic options plus `extra`, and opens it.
fn new_topic(driver: &Driver, prefix: &str, extra: Value) -> TopicHandle {
    let name = unique_topic(prefix);
    let args = topic_args_with(extra);
    driver
        .create_topic(&name, &args)
        .unwrap_or_else(|e| panic!("create_topic({name:?}, {args}) failed: {e}"));
    driver
        .open_topic(&name)
        .unwrap_or_else(|e| panic!("open_topic({name:?}) failed: {e}"))
}

/// Options for tests whose expectations (ids equal push order) need a single partition.
fn one_partition() -> Value {
    json!({"num_partitions": 1})
}

fn wait_id(f: &Future<EventId>, what: &str) -> EventId {
    match f.wait_timeout(WAIT) {
        Ok(Some(id)) => id,
        Ok(None) => panic!("{what}: push not completed within {WAIT:?}"),
        Err(e) => panic!("{what}: push failed: {e}"),
    }
}

fn flush(producer: &Producer) {
    match producer.flush().wait_timeout(WAIT) {
        Ok(Some(())) => {}
        Ok(None) => panic!("flush not completed within {WAIT:?}"),
        Err(e) => panic!("flush failed: {e}"),
    }
}

/// Pulls until `n` events (end-of-stream markers are skipped) arrived, retrying `wait(100 ms)`
/// timeouts until `deadline` has passed.
fn pull_n_within(consumer: &Consumer, n: usize, deadline: Duration) -> Vec<Event> {
    let end = Instant::now() + deadline;
    let mut events = Vec::with_capacity(n);
    while events.len() < n {
        assert!(
            Instant::now() < end,
            "consumer {:?}: only {} of {n} events arrived within {deadline:?}",
            consumer.name(),
            events.len()
        );
        match consumer.pull().wait_timeout(POLL) {
            Ok(Some(ev)) if ev.is_end_of_stream() => {}
            Ok(Some(ev)) => events.push(ev),
            Ok(None) => {}
            Err(e) => panic!("consumer {:?}: pull failed: {e}", consumer.name()),
        }
    }
    events
}

fn pull_n(consumer: &Consumer, n: usize) -> Vec<Event> {
    pull_n_within(consumer, n, WAIT)
}

/// `pulls` pulls of 100 ms each give nothing or an end-of-stream marker.
fn assert_no_more_events(consumer: &Consumer, pulls: usize) {
    for _ in 0..pulls {
        match consumer.pull().wait_timeout(POLL) {
            Ok(None) => {}
            Ok(Some(ev)) => assert!(
                ev.is_end_of_stream() && ev.id() == NO_MORE_EVENTS,
                "consumer {:?}: unexpected extra event {ev:?} (metadata {})",
                consumer.name(),
                ev.metadata()
            ),
            Err(e) => panic!("consumer {:?}: pull failed: {e}", consumer.name()),
        }
    }
}

fn field(ev: &Event, key: &str) -> u64 {
    ev.metadata().json()[key]
        .as_u64()
        .unwrap_or_else(|| panic!("event {ev:?} has no integer {key:?}: {}", ev.metadata()))
}

fn event_num(ev: &Event) -> u64 {
    field(ev, "event_num")
}

/// Checks that, in delivery order, each partition's ids are `start(p), start(p)+1, ...` and
/// returns how many events each partition delivered.
fn assert_contiguous_ids(
    events: &[Event],
    start: impl Fn(usize) -> EventId,
) -> BTreeMap<usize, u64> {
    let mut next: BTreeMap<usize, EventId> = BTreeMap::new();
    let mut counts = BTreeMap::new();
    for ev in events {
        let p = ev.partition();
        let expected = next.entry(p).or_insert_with(|| start(p));
        assert_eq!(
            ev.id(),
            *expected,
            "partition {p}: expected id {expected}, got {} ({})",
            ev.id(),
            ev.metadata()
        );
        *expected += 1;
        *counts.entry(p).or_insert(0u64) += 1;
    }
    counts
}

fn data_string(i: u64) -> String {
    format!("This is data for event {i}")
}

/// A partition selector that always returns the index in its configuration, whatever the number
/// of partitions (used to check that the engine range-checks selector output).
struct FixedSelector {
    type_name: String,
    index: usize,
}

impl PartitionSelector for FixedSelector {
    fn set_partitions(&self, _: &[PartitionInfo]) {}
    fn select_partition(&self, _: &Metadata, _: Option<usize>) -> diaspora_stream::Result<usize> {
        Ok(self.index)
    }
    fn metadata(&self) -> Value {
        json!({"type": self.type_name, "index": self.index})
    }
}

/// Registers `FixedSelector` under a name unique to this process and returns that name.
fn register_fixed_selector(prefix: &str) -> String {
    let name = unique_topic(prefix);
    let type_name = name.clone();
    register_partition_selector(
        &name,
        Arc::new(move |cfg: &Value| {
            let index = cfg["index"].as_u64().ok_or_else(|| {
                Error::InvalidArgument(format!("fixed selector without index: {cfg}"))
            })? as usize;
            Ok(Arc::new(FixedSelector {
                type_name: type_name.clone(),
                index,
            }) as Arc<dyn PartitionSelector>)
        }),
    );
    name
}

/// A pool that runs jobs on an inner pool and reports each finished job on a channel.
struct NotifyingPool {
    inner: Arc<dyn ThreadPool>,
    done: Mutex<mpsc::Sender<()>>,
}

impl ThreadPool for NotifyingPool {
    fn thread_count(&self) -> usize {
        self.inner.thread_count()
    }
    fn push_work(&self, job: Job, priority: u64) {
        let done = self.done.lock().unwrap().clone();
        self.inner.push_work(
            Box::new(move || {
                job();
                let _ = done.send(());
            }),
            priority,
        );
    }
    fn size(&self) -> usize {
        self.inner.size()
    }
}

// ------------------------------------------------------------------------------------------------
// Driver (BackendTest, DriverTest, test_driver*.py)
// ------------------------------------------------------------------------------------------------

#[test]
fn driver_factory_rejects_unknown_names() {
    match Driver::new("unknown", &json!({})) {
        Err(Error::UnknownComponent { kind, name }) => {
            assert_eq!(kind, "driver");
            assert_eq!(name, "unknown");
        }
        other => panic!("expected UnknownComponent for \"unknown\", got {other:?}"),
    }
    assert!(
        matches!(
            Driver::new("unknown:libunknown.so", &json!({})),
            Err(Error::UnknownComponent { .. })
        ),
        "a C++-style \"name:library\" spec of an unregistered driver must fail"
    );
    assert!(diaspora_stream::driver::registered_drivers().contains(&"files".to_string()));
}

#[test]
fn driver_is_created_from_environment() {
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

#[test]
fn topic_create_exists_open_and_partitions() {
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

#[test]
fn list_topics_describes_every_topic() {
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

// ------------------------------------------------------------------------------------------------
// Producer and consumer creation (ProducerTest, ConsumerTest, test_producer.py, test_consumer.py)
// ------------------------------------------------------------------------------------------------

#[test]
fn producer_creation_and_accessors() {
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

#[test]
fn consumer_creation_and_accessors() {
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

// ------------------------------------------------------------------------------------------------
// EventProducerTest: ThreadCount x BatchSize x Ordering
// ------------------------------------------------------------------------------------------------

fn run_producer_case(driver: &Driver, threads: usize, batch: BatchSize, ordering: Ordering) {
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

#[test]
fn event_producer_inline_pool() {
    let (driver, _dir) = test_driver();
    for batch in [BatchSize::Adaptive, BatchSize::Fixed(10)] {
        for ordering in [Ordering::Strict, Ordering::Loose] {
            run_producer_case(&driver, 0, batch, ordering);
        }
    }
}

#[test]
fn event_producer_one_thread_pool() {
    let (driver, _dir) = test_driver();
    for batch in [BatchSize::Adaptive, BatchSize::Fixed(10)] {
        for ordering in [Ordering::Strict, Ordering::Loose] {
            run_producer_case(&driver, 1, batch, ordering);
        }
    }
}

#[test]
fn event_producer_two_thread_pool() {
    let (driver, _dir) = test_driver();
    for batch in [BatchSize::Adaptive, BatchSize::Fixed(10)] {
        for ordering in [Ordering::Strict, Ordering::Loose] {
            run_producer_case(&driver, 2, batch, ordering);
        }
    }
}

#[test]
fn dropping_a_producer_flushes_pending_events() {
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

// ------------------------------------------------------------------------------------------------
// EventConsumerTest
// ------------------------------------------------------------------------------------------------

/// Pushes 100 events `{"event_num": i}` with data "This is data for event i" on the driver's
/// default pool, then flushes.
fn produce_numbered_events(topic: &TopicHandle, n: u64) {
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

#[test]
fn event_consumer_without_data() {
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

#[test]
fn event_consumer_with_data() {
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

// ------------------------------------------------------------------------------------------------
// DataSelectionTest: one 52-byte event in two segments (a..z, A..Z)
// ------------------------------------------------------------------------------------------------

/// Produces the alphabet event, consumes it with `selector` (and an allocator of exactly the
/// selected size in `segments` pieces, or the library's memory when `segments == 0`), checks the
/// selector saw the full 52-byte descriptor and returns the event.
fn consume_alphabet(
    selector: impl Fn(&DataDescriptor) -> DataDescriptor + Send + Sync + 'static,
    segments: usize,
) -> Event {
    let (driver, _dir) = test_driver();
    let topic = new_topic(&driver, "data-selection", json!({}));
    let producer = topic.producer().build().unwrap();
    let data = DataView::from_segments([&ALPHA[..26], &ALPHA[26..]].map(|s| s.to_vec()));
    assert_eq!(data.size(), 52);
    assert_eq!(data.segments().len(), 2);
    let f = producer.push(json!({"kind": "alphabet"}), data);
    flush(&producer);
    wait_id(&f, "alphabet");
    drop(producer);

    let seen_size = Arc::new(AtomicU64::new(u64::MAX));
    let seen = seen_size.clone();
    let mut builder = topic.consumer("selector").data_selector(move |md, d| {
        assert_eq!(md.json()["kind"], "alphabet");
        seen.store(d.size(), AtomicOrdering::SeqCst);
        selector(d)
    });
    if segments > 0 {
        builder = builder.data_allocator(move |_, d| {
            let size = d.size() as usize;
            let mut alloc = Allocation::none();
            let chunk = size.div_ceil(segments);
            let mut left = size;
            while left > 0 {
                let n = chunk.min(left);
                alloc.push(vec![0u8; n]);
                left -= n;
            }
            alloc
        });
    }
    let consumer = builder.build().unwrap();
    let ev = pull_n(&consumer, 1).remove(0);
    assert_eq!(ev.metadata().json()["kind"], "alphabet");
    assert_eq!(ev.id(), 0);
    assert_no_more_events(&consumer, 3);
    assert_eq!(seen_size.load(AtomicOrdering::SeqCst), 52);
    ev
}

#[test]
fn data_selection_no_data() {
    let ev = consume_alphabet(|_| DataDescriptor::none(), 1);
    assert_eq!(ev.data().size(), 0);
    assert!(ev.data().segments().is_empty());
}

#[test]
fn data_selection_whole_data() {
    let ev = consume_alphabet(|d| d.clone(), 1);
    assert_eq!(ev.data().size(), 52);
    assert_eq!(ev.data().segments().len(), 1);
    assert_eq!(ev.data().to_vec(), ALPHA);
}

#[test]
fn data_selection_sub_view() {
    let ev = consume_alphabet(|d| d.sub_view(13, 26), 1);
    assert_eq!(ev.data().segments().len(), 1);
    assert_eq!(ev.data().to_vec(), b"nopqrstuvwxyzABCDEFGHIJKLM");
}

#[test]
fn data_selection_strided_view() {
    let ev = consume_alphabet(|d| d.strided_view(13, 3, 4, 2).unwrap(), 1);
    assert_eq!(ev.data().size(), 12);
    assert_eq!(ev.data().to_vec(), b"nopqtuvwzABC");
}

#[test]
fn data_selection_unstructured_view() {
    let ev = consume_alphabet(
        |d| d.unstructured_view(&[(3, 6), (15, 4), (27, 8)]).unwrap(),
        1,
    );
    assert_eq!(ev.data().size(), 18);
    assert_eq!(ev.data().to_vec(), b"defghipqrsBCDEFGHI");
}

#[test]
fn data_selection_stacked_views_compose() {
    let ev = consume_alphabet(|d| d.sub_view(13, 26).sub_view(2, 5), 1);
    assert_eq!(ev.data().to_vec(), &ALPHA[15..20]);
    let ev = consume_alphabet(|d| d.sub_view(10, 40).strided_view(0, 4, 2, 3).unwrap(), 1);
    assert_eq!(ev.data().to_vec(), b"klpquvzA");
}

#[test]
fn data_selection_without_allocator_uses_library_memory() {
    let ev = consume_alphabet(|d| d.sub_view(13, 26), 0);
    assert_eq!(ev.data().to_vec(), b"nopqrstuvwxyzABCDEFGHIJKLM");
}

#[test]
fn data_selection_into_several_allocated_segments() {
    let ev = consume_alphabet(
        |d| d.unstructured_view(&[(3, 6), (15, 4), (27, 8)]).unwrap(),
        3,
    );
    assert_eq!(ev.data().segments().len(), 3);
    assert_eq!(ev.data().to_vec(), b"defghipqrsBCDEFGHI");
    let ev = consume_alphabet(|d| d.clone(), 2);
    assert_eq!(ev.data().segments().len(), 2);
    assert_eq!(ev.data().to_vec(), ALPHA);
}

// ------------------------------------------------------------------------------------------------
// ConcurrentProducerConsumerTest
// ------------------------------------------------------------------------------------------------

/// Pulls (and acknowledges) events until `n` arrived or `deadline` passed, optionally sleeping
/// after each event; returns the events in delivery order.
fn consume_concurrently(
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

#[test]
fn concurrent_single_producer_and_consumer() {
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

#[test]
fn concurrent_producer_faster_than_consumer() {
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

#[test]
fn concurrent_multiple_producers_single_consumer() {
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

// ------------------------------------------------------------------------------------------------
// test_consumer.py: iterator, pull, custom data broker
// ------------------------------------------------------------------------------------------------

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

// ------------------------------------------------------------------------------------------------
// process()
// ------------------------------------------------------------------------------------------------

fn process_options(pool: Option<Arc<dyn ThreadPool>>, max_events: NumEvents) -> ProcessOptions {
    ProcessOptions {
        timeout: Some(WAIT),
        max_events,
        thread_pool: pool,
    }
}

#[test]
fn process_stops_on_flow_stop_inline() {
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

#[test]
fn process_stops_on_flow_stop_with_worker_threads() {
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

#[test]
fn process_honours_max_events() {
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

#[test]
fn process_returns_when_no_event_arrives() {
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

// ------------------------------------------------------------------------------------------------
// Acknowledgements and restart
// ------------------------------------------------------------------------------------------------

#[test]
fn acknowledged_position_survives_consumer_restart() {
    const PER_PARTITION: u64 = 20;
    let (driver, _dir) = test_driver();
    let topic = new_topic(&driver, "ack-restart", json!({"num_partitions": 2}));
    assert_eq!(topic.num_partitions(), 2);
    let producer = topic.producer().build().unwrap();
    let mut futures = Vec::new();
    for i in 0..PER_PARTITION {
        for p in 0..2usize {
            futures.push((
                p,
                i,
                producer.push_to(json!({"partition": p, "event_num": i}), DataView::new(), p),
            ));
        }
    }
    flush(&producer);
    for (p, i, f) in &futures {
        assert_eq!(wait_id(f, "ack setup"), *i, "partition {p}");
    }
    drop(producer);

    // Acknowledge event 6 of partition 0 and event 3 of partition 1; acknowledging an earlier
    // event afterwards must not move the position back.
    let acked = [6u64, 3];
    {
        let consumer = topic.consumer("restart").build().unwrap();
        let events = pull_n(&consumer, 2 * PER_PARTITION as usize);
        assert_contiguous_ids(&events, |_| 0);
        let find = |p: usize, id: u64| {
            events
                .iter()
                .find(|e| e.partition() == p && e.id() == id)
                .unwrap_or_else(|| panic!("event {p}/{id} not delivered"))
        };
        find(0, acked[0]).acknowledge().unwrap();
        find(1, acked[1]).acknowledge().unwrap();
        find(0, 2).acknowledge().unwrap();
        Event::end_of_stream(0).acknowledge().unwrap();
    }

    // Same name: resumes right after the acknowledged events.
    {
        let consumer = topic.consumer("restart").build().unwrap();
        let expected = 2 * PER_PARTITION - (acked[0] + 1) - (acked[1] + 1);
        let events = pull_n(&consumer, expected as usize);
        let counts = assert_contiguous_ids(&events, |p| acked[p] + 1);
        assert_eq!(counts.get(&0), Some(&(PER_PARTITION - acked[0] - 1)));
        assert_eq!(counts.get(&1), Some(&(PER_PARTITION - acked[1] - 1)));
        for ev in &events {
            assert_eq!(field(ev, "partition"), ev.partition() as u64);
            assert_eq!(event_num(ev), ev.id());
        }
        assert_no_more_events(&consumer, 3);
        // Acknowledge the last event of each partition.
        for p in 0..2 {
            events
                .iter()
                .rfind(|e| e.partition() == p)
                .unwrap()
                .acknowledge()
                .unwrap();
        }
    }

    // Everything acknowledged: nothing is delivered again to that name.
    {
        let consumer = topic.consumer("restart").build().unwrap();
        assert_no_more_events(&consumer, 5);
    }

    // Another name starts from the beginning of every partition.
    {
        let consumer = topic.consumer("someone-else").build().unwrap();
        let events = pull_n(&consumer, 2 * PER_PARTITION as usize);
        let counts = assert_contiguous_ids(&events, |_| 0);
        assert_eq!(counts.get(&0), Some(&PER_PARTITION));
        assert_eq!(counts.get(&1), Some(&PER_PARTITION));
        assert_no_more_events(&consumer, 3);
    }
}

// ------------------------------------------------------------------------------------------------
// Targets and partition selection
// ------------------------------------------------------------------------------------------------

/// A 3-partition topic with 10 events per partition (`{"event_num": i, "partition": p}`).
fn three_partition_topic(driver: &Driver, prefix: &str) -> TopicHandle {
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

#[test]
fn consumer_targets_restrict_partitions() {
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

#[test]
fn consumer_targets_out_of_range_are_rejected() {
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

#[test]
fn push_to_requested_partition_lands_modulo_partition_count() {
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

#[test]
fn default_selector_round_robins_over_partitions() {
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

#[test]
fn custom_partition_selector_is_used() {
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

#[test]
fn out_of_range_partition_selector_fails_the_push() {
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

// ------------------------------------------------------------------------------------------------
// Validators (EventbridgeTest, test_validator.py)
// ------------------------------------------------------------------------------------------------

/// A new one-partition topic with the validator `validator_config`.
fn validated_topic(driver: &Driver, prefix: &str, validator_config: &Value) -> TopicHandle {
    let validator = validator_from_config(validator_config).unwrap();
    let name = unique_topic(prefix);
    driver
        .create_topic_with(
            &name,
            &topic_args_with(one_partition()),
            TopicComponents {
                validator,
                ..TopicComponents::default()
            },
        )
        .unwrap();
    driver.open_topic(&name).unwrap()
}

/// Creates a one-partition topic with `validator_config`, pushes `good` and `bad` events
/// alternately (inline and on a 2-thread pool), checks that every bad one is rejected with
/// `InvalidMetadata` and that only the good ones are stored.
fn check_validator_topic(validator_config: Value, good: &[Value], bad: &[Value]) {
    let (driver, _dir) = test_driver();
    let topic = validated_topic(&driver, "validated", &validator_config);
    assert_eq!(
        topic.validator().metadata()["type"],
        validator_config["type"],
        "the validator is stored with the topic"
    );

    let mut stored = Vec::new();
    for threads in [0usize, 2] {
        let producer = topic
            .producer()
            .thread_pool(driver.make_thread_pool(ThreadCount(threads)))
            .build()
            .unwrap();
        let mut accepted = Vec::new();
        for k in 0..good.len().max(bad.len()) {
            if let Some(g) = good.get(k) {
                accepted.push((g.clone(), producer.push(g.clone(), DataView::new())));
            }
            if let Some(b) = bad.get(k) {
                let f = producer.push(b.clone(), DataView::new());
                match f.wait_timeout(WAIT) {
                    Err(Error::InvalidMetadata(_)) => {}
                    other => {
                        panic!("threads={threads}: {b} should be rejected, got {other:?}")
                    }
                }
            }
        }
        flush(&producer);
        for (g, f) in &accepted {
            let id = wait_id(f, &format!("threads={threads}: {g} should be accepted"));
            stored.push((id, g.clone()));
        }
    }
    stored.sort_by_key(|(id, _)| *id);
    assert_eq!(
        stored.iter().map(|(id, _)| *id).collect::<Vec<_>>(),
        (0..stored.len() as u64).collect::<Vec<_>>(),
        "rejected events must not take ids"
    );

    let consumer = topic.consumer("c").build().unwrap();
    let events = pull_n(&consumer, stored.len());
    assert_no_more_events(&consumer, 5);
    for (ev, (id, md)) in events.iter().zip(&stored) {
        assert_eq!(ev.id(), *id);
        assert_eq!(ev.metadata().json(), md);
    }
}

#[test]
fn eventbridge_validator_accepts_matching_and_rejects_others() {
    let config = json!({"type": "eventbridge", "schema": {
        "source": ["my.app"],
        "detail-type": ["my-event"],
        "detail": {
            "energy": [{"numeric": [">", 0, "<=", 100]}],
            "name": [{"prefix": "run-"}],
            "debug": [{"exists": false}]
        }
    }});
    let good = [
        json!({"source": "my.app", "detail-type": "my-event",
               "detail": {"energy": 42, "name": "run-1"}}),
        json!({"source": "my.app", "detail-type": "my-event",
               "detail": {"energy": 100, "name": "run-xyz", "other": [1, 2]}}),
    ];
    let bad = [
        json!({"source": "other.app", "detail-type": "my-event",
               "detail": {"energy": 42, "name": "run-1"}}),
        json!({"source": "my.app", "detail-type": "my-event",
               "detail": {"energy": 142, "name": "run-1"}}),
        json!({"source": "my.app", "detail-type": "my-event",
               "detail": {"energy": 42, "name": "walk-1"}}),
        json!({"source": "my.app", "detail-type": "my-event",
               "detail": {"energy": 42, "name": "run-1", "debug": true}}),
        json!({"source": "my.app", "detail-type": "my-event"}),
    ];
    check_validator_topic(config, &good, &bad);
}

#[test]
fn schema_validator_accepts_matching_and_rejects_others() {
    let config = json!({"type": "schema", "schema": {
        "type": "object",
        "properties": {
            "energy": {"type": "number", "maximum": 100},
            "name": {"type": "string"}
        },
        "required": ["energy"]
    }});
    let good = [
        json!({"energy": 3}),
        json!({"energy": 99.5, "name": "x"}),
        json!({"energy": -1, "extra": true}),
    ];
    let bad = [
        json!({"energy": 300}),
        json!({"name": "no energy"}),
        json!({"energy": 1, "name": 5}),
        json!([1, 2, 3]),
    ];
    check_validator_topic(config, &good, &bad);
}

// ------------------------------------------------------------------------------------------------
// Future semantics
// ------------------------------------------------------------------------------------------------

#[test]
fn ready_and_failed_futures() {
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

#[test]
fn push_future_timeout_is_retryable() {
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

#[test]
fn pull_future_timeout_is_retryable() {
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

#[test]
fn end_of_stream_arrives_after_every_producer_ended() {
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

#[test]
fn pool_producers_keep_push_order_over_many_chunks_and_fail_events_one_by_one() {
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

#[test]
fn a_pull_dropped_before_any_wait_gives_its_event_back() {
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

#[cfg(feature = "rayon")]
#[test]
fn producers_and_consumers_run_on_a_rayon_pool() {
    // The application's rayon pool runs the library's jobs: a producer and a consumer on it
    // store and deliver every event, in order, and their callbacks run on its threads.
    let (driver, _guard) = test_driver();
    let rayon = Arc::new(
        rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .thread_name(|i| format!("app-rayon-{i}"))
            .build()
            .unwrap(),
    );
    let pool: Arc<dyn ThreadPool> = Arc::new(diaspora_stream::RayonThreadPool::new(rayon));
    let topic = new_topic(&driver, "rayon", one_partition());
    let producer = topic
        .producer()
        .batch_size(BatchSize::Fixed(16))
        .thread_pool(pool.clone())
        .build()
        .unwrap();
    let futures: Vec<_> = (0..500u64)
        .map(|i| producer.push(json!({"event_num": i}), DataView::from(vec![i as u8; 8])))
        .collect();
    flush(&producer);
    for (i, f) in futures.iter().enumerate() {
        assert_eq!(wait_id(f, "rayon push"), i as u64);
    }
    let consumer = topic.consumer("rayon").thread_pool(pool).build().unwrap();
    let threads = Arc::new(Mutex::new(BTreeSet::new()));
    let seen = threads.clone();
    let count = consumer
        .process(
            move |ev| {
                let name = std::thread::current().name().unwrap_or("").to_string();
                seen.lock().unwrap().insert(name);
                assert_eq!(ev.data().to_vec(), vec![event_num(&ev) as u8; 8]);
                Flow::Continue
            },
            ProcessOptions {
                max_events: NumEvents(500),
                timeout: Some(WAIT),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(count, 500);
    let names = threads.lock().unwrap().clone();
    assert!(
        !names.is_empty() && names.iter().all(|n| n.starts_with("app-rayon-")),
        "callbacks ran on {names:?}"
    );
}
