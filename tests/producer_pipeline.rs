//! The producer's hand-off of batches to the driver: on a backend whose appends return at once
//! (the files driver), a push that finds `max_num_batches` batches queued stores one of them
//! itself, next to the sender thread. Whoever stores a batch, each
//! partition's batches reach the driver in push order, every future resolves to the id its
//! event was stored under, and a flush covers every batch queued before it.
//!
//! The driver here records, per partition, each stored event's number and pushing thread (its
//! data) and the thread that stored it, and takes a while per batch, so that the queue fills.

#[macro_use]
#[path = "support/write_only.rs"]
mod write_only;

use diaspora_stream::backend::{BatchIds, EventBatch, TopicBackend};
use diaspora_stream::thread_pool::std_pool;
use diaspora_stream::{
    BatchSize, DataView, Driver, MaxNumBatches, PartitionInfo, Result, TopicComponents,
};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

const PARTITIONS: usize = 4;

/// One stored event: the `i` and `from` its data holds, and the storing thread's name.
#[derive(Clone, Debug)]
struct Stored {
    i: u64,
    from: u64,
    thread: String,
}

struct Recorder {
    at_once: bool,
    per_batch: Duration,
    /// The driver panics storing the batch of this number (counted from 0 over the topic).
    panic_at: Option<usize>,
    batches: AtomicUsize,
    partitions: Vec<Mutex<Vec<Stored>>>,
}

impl TopicBackend for Recorder {
    fn name(&self) -> &str {
        "recorder"
    }
    fn partitions(&self) -> Vec<PartitionInfo> {
        vec![PartitionInfo::default(); PARTITIONS]
    }
    fn components(&self) -> TopicComponents {
        TopicComponents::default()
    }
    fn append_batch(&self, partition: usize, batch: &EventBatch) -> Result<BatchIds> {
        // Held while the batch is "written": a second thread storing the same partition at
        // once would interleave its events with these ones, or take ids out of order.
        let mut log = self.partitions[partition]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if Some(self.batches.fetch_add(1, Ordering::Relaxed)) == self.panic_at {
            panic!("the recorder fails here on purpose");
        }
        std::thread::sleep(self.per_batch);
        let first = log.len() as u64;
        let thread = std::thread::current().name().unwrap_or("").to_string();
        for k in 0..batch.len() {
            let data: Vec<u8> = batch.data_of(k).segments().concat();
            log.push(Stored {
                i: u64::from_le_bytes(data[..8].try_into().unwrap()),
                from: u64::from_le_bytes(data[8..16].try_into().unwrap()),
                thread: thread.clone(),
            });
        }
        Ok(BatchIds::Contiguous(first))
    }
    fn append_returns_at_once(&self) -> bool {
        self.at_once
    }
    write_only_topic!();
}

fn recorder(at_once: bool) -> (Driver, Arc<Recorder>) {
    recorder_panicking_at(at_once, None)
}

fn recorder_panicking_at(at_once: bool, panic_at: Option<usize>) -> (Driver, Arc<Recorder>) {
    let r = Arc::new(Recorder {
        at_once,
        per_batch: Duration::from_micros(300),
        panic_at,
        batches: AtomicUsize::new(0),
        partitions: (0..PARTITIONS).map(|_| Mutex::new(Vec::new())).collect(),
    });
    (write_only::driver_of(r.clone()), r)
}

/// Pushes `per_thread` events from each of `threads` threads, event `i` of thread `from` to
/// partition `(i + from) % 4`, in batches of 8 with at most 2 queued, and checks what the
/// driver stored against the futures. Returns how many events each storing thread stored.
fn push_and_check(
    at_once: bool,
    pool_threads: usize,
    threads: u64,
    per_thread: u64,
) -> BTreeMap<String, usize> {
    let (driver, rec) = recorder(at_once);
    let topic = driver.open_topic("t").unwrap();
    let producer = topic
        .producer()
        .batch_size(BatchSize::Fixed(8))
        .max_num_batches(MaxNumBatches(2))
        .thread_pool(std_pool(pool_threads))
        .build()
        .unwrap();
    let futures: Vec<Vec<(u64, usize, _)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|from| {
                let producer = &producer;
                std::thread::Builder::new()
                    .name(format!("pusher-{from}"))
                    .spawn_scoped(s, move || {
                        (0..per_thread)
                            .map(|i| {
                                let p = ((i + from) % PARTITIONS as u64) as usize;
                                let data = [i.to_le_bytes(), from.to_le_bytes()].concat();
                                let f = producer.push_to(json!({"i": i}), DataView::from(data), p);
                                (i, p, f)
                            })
                            .collect()
                    })
                    .unwrap()
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    producer.flush().wait().unwrap();
    let logs: Vec<Vec<Stored>> = rec
        .partitions
        .iter()
        .map(|m| m.lock().unwrap().clone())
        .collect();
    let stored: usize = logs.iter().map(Vec::len).sum();
    assert_eq!(
        stored as u64,
        threads * per_thread,
        "every event stored exactly once"
    );
    for (p, log) in logs.iter().enumerate() {
        // Each pushing thread's events of a partition are stored in the order it pushed them.
        for from in 0..threads {
            let order: Vec<u64> = log.iter().filter(|e| e.from == from).map(|e| e.i).collect();
            assert!(
                order.windows(2).all(|w| w[0] < w[1]),
                "partition {p}: thread {from}'s events stored out of order: {order:?}"
            );
        }
    }
    for (from, futs) in futures.into_iter().enumerate() {
        for (i, p, f) in futs {
            let id = f.wait().unwrap();
            let e = &logs[p][id as usize];
            assert_eq!(
                (e.i, e.from),
                (i, from as u64),
                "the future of event {i} of thread {from} resolved to id {id} of partition {p}, \
                 where another event is stored"
            );
        }
    }
    let mut by_thread = BTreeMap::new();
    for e in logs.iter().flatten() {
        *by_thread.entry(e.thread.clone()).or_insert(0) += 1;
    }
    by_thread
}

#[test]
fn an_inline_producer_stores_queued_batches_on_the_pushing_thread_in_order() {
    let by_thread = push_and_check(true, 0, 1, 4000);
    let pusher = by_thread.get("pusher-0").copied().unwrap_or(0);
    let sender = by_thread.get("diaspora-producer").copied().unwrap_or(0);
    assert!(
        pusher > 0,
        "the pushing thread stored no batch while the queue was full: {by_thread:?}"
    );
    assert!(
        sender > 0,
        "the sender thread stored no batch: {by_thread:?}"
    );
}

#[test]
fn several_pushing_threads_storing_batches_keep_each_ones_order() {
    let by_thread = push_and_check(true, 0, 4, 1500);
    assert!(
        by_thread.keys().any(|t| t.starts_with("pusher-")),
        "no pushing thread stored a batch: {by_thread:?}"
    );
}

#[test]
fn a_pool_thread_leaves_the_pushing_thread_free_to_store_batches_in_order() {
    push_and_check(true, 1, 2, 2000);
}

/// On backends whose appends return at once, a pool thread stores the batches its events
/// filled (no hand-over to the sender thread), each partition's batches still in order.
#[test]
fn pool_threads_store_the_batches_they_fill_in_order() {
    for pool_threads in [1, 2] {
        let by_thread = push_and_check(true, pool_threads, 2, 2000);
        assert!(
            by_thread.keys().any(|t| t.starts_with("diaspora-pool")),
            "pool threads: {pool_threads}: no pool thread stored a batch: {by_thread:?}"
        );
    }
}

#[test]
fn pushes_leave_batches_to_the_sender_on_backends_that_may_wait() {
    for pool_threads in [0, 1] {
        let by_thread = push_and_check(false, pool_threads, 1, 1000);
        assert_eq!(
            by_thread.keys().collect::<Vec<_>>(),
            vec!["diaspora-producer"],
            "pool threads: {pool_threads}"
        );
    }
}

/// A driver that panics storing one batch, on the sender thread or on a pushing thread: that
/// batch's futures and the next flush fail naming the panic, the other events are stored, and
/// the producer still closes (nothing waits for the lost batch for ever).
#[test]
fn a_driver_panicking_on_a_batch_fails_that_batch_only() {
    for (at_once, panic_at) in [(false, 3), (true, 3), (true, 40)] {
        let (driver, rec) = recorder_panicking_at(at_once, Some(panic_at));
        let topic = driver.open_topic("t").unwrap();
        let producer = topic
            .producer()
            .batch_size(BatchSize::Fixed(8))
            .max_num_batches(MaxNumBatches(2))
            .build()
            .unwrap();
        let futures: Vec<_> = (0..800u64)
            .map(|i| {
                let data = [i.to_le_bytes(), 0u64.to_le_bytes()].concat();
                producer.push_to(json!({"i": i}), DataView::from(data), (i % 4) as usize)
            })
            .collect();
        let flushed = producer.flush().wait();
        let failed: Vec<String> = futures
            .iter()
            .filter_map(|f| f.wait().err().map(|e| e.to_string()))
            .collect();
        assert_eq!(failed.len(), 8, "one batch of 8 fails: {failed:?}");
        assert!(
            failed.iter().all(|e| e.contains("on purpose")),
            "the futures name the panic: {failed:?}"
        );
        let err = flushed.expect_err("the flush reports the failed batch");
        assert!(err.to_string().contains("on purpose"), "{err}");
        let stored: usize = rec
            .partitions
            .iter()
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum();
        assert_eq!(
            stored,
            800 - 8,
            "at_once {at_once}, panic at batch {panic_at}"
        );
        drop(producer);
    }
}
