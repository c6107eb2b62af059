//! Helpers shared by the conformance tests.

use super::*;

/// Creates a topic with a unique name from the test topic options plus `extra`, and opens it.
pub fn new_topic(driver: &Driver, prefix: &str, extra: Value) -> TopicHandle {
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
pub fn one_partition() -> Value {
    json!({"num_partitions": 1})
}

/// Waits for a push to complete and returns its id; panics naming `what` otherwise.
pub fn wait_id(f: &Future<EventId>, what: &str) -> EventId {
    match f.wait_timeout(WAIT) {
        Ok(Some(id)) => id,
        Ok(None) => panic!("{what}: push not completed within {WAIT:?}"),
        Err(e) => panic!("{what}: push failed: {e}"),
    }
}

/// Flushes `producer`, panicking if it fails or takes longer than [`WAIT`].
pub fn flush(producer: &Producer) {
    match producer.flush().wait_timeout(WAIT) {
        Ok(Some(())) => {}
        Ok(None) => panic!("flush not completed within {WAIT:?}"),
        Err(e) => panic!("flush failed: {e}"),
    }
}

/// Pulls until `n` events (end-of-stream markers are skipped) arrived, retrying `wait(100 ms)`
/// timeouts until `deadline` has passed.
pub fn pull_n_within(consumer: &Consumer, n: usize, deadline: Duration) -> Vec<Event> {
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

/// [`pull_n_within`] with the [`WAIT`] deadline.
pub fn pull_n(consumer: &Consumer, n: usize) -> Vec<Event> {
    pull_n_within(consumer, n, WAIT)
}

/// `pulls` pulls of 100 ms each give nothing or an end-of-stream marker.
pub fn assert_no_more_events(consumer: &Consumer, pulls: usize) {
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

/// The integer `key` of an event's metadata; panics if it has none.
pub fn field(ev: &Event, key: &str) -> u64 {
    ev.metadata().json()[key]
        .as_u64()
        .unwrap_or_else(|| panic!("event {ev:?} has no integer {key:?}: {}", ev.metadata()))
}

/// The `event_num` the tests put in each event's metadata.
pub fn event_num(ev: &Event) -> u64 {
    field(ev, "event_num")
}

/// Checks that, in delivery order, each partition's ids are `start(p), start(p)+1, ...` and
/// returns how many events each partition delivered.
pub fn assert_contiguous_ids(
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

/// The data part the tests give event `i`.
pub fn data_string(i: u64) -> String {
    format!("This is data for event {i}")
}

/// A partition selector that always returns the index in its configuration, whatever the number
/// of partitions (used to check that the engine range-checks selector output).
pub struct FixedSelector {
    /// The name it is registered under.
    pub type_name: String,
    /// The partition it always returns.
    pub index: usize,
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
pub fn register_fixed_selector(prefix: &str) -> String {
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
pub struct NotifyingPool {
    /// The pool that runs the jobs.
    pub inner: Arc<dyn ThreadPool>,
    /// Told once per finished job.
    pub done: Mutex<mpsc::Sender<()>>,
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
