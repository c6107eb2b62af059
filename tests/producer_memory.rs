//! Bounded producer memory (`max_buffered_bytes`, `on_full`): 4 GiB pushed into a deliberately
//! slow sink keep the process's resident memory under the bound plus a fixed overhead, and with
//! `on_full = error` a push that would pass the bound fails at once, naming the option.
//!
//! The sink is a driver written here: it stores nothing and sleeps for each batch in
//! proportion to its bytes (about 1 GB/s), well below the rate at which the test can allocate
//! and fill fresh event buffers, so an unbounded producer would hold gigabytes. The tests run
//! one after the other (one lock), so the memory readings of one are not the other's.

#[macro_use]
#[path = "support/write_only.rs"]
mod write_only;

use diaspora_stream::backend::{BatchIds, EventBatch, TopicBackend};
use diaspora_stream::{
    DataView, Driver, Error, EventId, MaxNumBatches, OnFull, PartitionInfo, Result, TopicComponents,
};
use serde_json::json;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

static SERIAL: Mutex<()> = Mutex::new(());

/// A topic that stores nothing and takes `ns_per_byte` per byte of each batch, once its gate
/// is open.
struct SlowSink {
    ns_per_byte: f64,
    next: AtomicU64,
    stored_bytes: AtomicU64,
    open: Mutex<bool>,
    opened: Condvar,
}

impl SlowSink {
    fn set_open(&self, open: bool) {
        *self.open.lock().unwrap() = open;
        self.opened.notify_all();
    }
}

impl TopicBackend for SlowSink {
    fn name(&self) -> &str {
        "sink"
    }
    fn partitions(&self) -> Vec<PartitionInfo> {
        vec![PartitionInfo::default()]
    }
    fn components(&self) -> TopicComponents {
        TopicComponents::default()
    }
    fn append_batch(&self, _partition: usize, batch: &EventBatch) -> Result<BatchIds> {
        let mut open = self.open.lock().unwrap();
        while !*open {
            open = self.opened.wait(open).unwrap();
        }
        drop(open);
        let bytes = batch.size_bytes();
        std::thread::sleep(Duration::from_nanos(
            (bytes as f64 * self.ns_per_byte) as u64,
        ));
        self.stored_bytes.fetch_add(bytes as u64, Ordering::Relaxed);
        Ok(BatchIds::Contiguous(
            self.next.fetch_add(batch.len() as u64, Ordering::Relaxed),
        ))
    }
    write_only_topic!();
}

fn sink(ns_per_byte: f64) -> (Driver, Arc<SlowSink>) {
    let s = Arc::new(SlowSink {
        ns_per_byte,
        next: AtomicU64::new(0),
        stored_bytes: AtomicU64::new(0),
        open: Mutex::new(true),
        opened: Condvar::new(),
    });
    (write_only::driver_of(s.clone()), s)
}

/// Resident memory of this process, in bytes.
fn rss() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: usize = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status");
    kb * 1024
}

#[test]
fn four_gib_into_a_slow_sink_stay_within_the_bound() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const MIB: usize = 1 << 20;
    const BOUND: usize = 64 * MIB;
    const EVENTS: usize = 4096; // of 1 MiB: 4 GiB
    const OVERHEAD: usize = 96 * MIB;
    let (driver, sink) = sink(1.0);
    let topic = driver.open_topic("t").unwrap();
    let producer = topic
        .producer()
        .max_buffered_bytes(BOUND)
        // Only the byte bound may hold the producer back: room for a thousand batches.
        .max_num_batches(MaxNumBatches(1000))
        .build()
        .unwrap();
    let base = rss();
    let peak = Arc::new(AtomicUsize::new(base));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    for i in 0..EVENTS {
        // A fresh buffer per event, written to (resident), freed once its batch is stored.
        let data = vec![(i % 251) as u8; MIB];
        producer.push(json!({"i": i}), DataView::from(data));
    }
    producer.flush().wait().unwrap();
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let stored = sink.stored_bytes.load(Ordering::Relaxed) as usize;
    assert!(
        stored >= EVENTS * MIB,
        "only {stored} bytes reached the sink"
    );
    let grew = peak.load(Ordering::Relaxed).saturating_sub(base);
    eprintln!(
        "4 GiB pushed: resident memory grew by at most {} MiB (bound {} MiB)",
        grew / MIB,
        BOUND / MIB
    );
    assert!(
        grew <= BOUND + OVERHEAD,
        "resident memory grew by {} MiB, more than the {} MiB bound plus {} MiB",
        grew / MIB,
        BOUND / MIB,
        OVERHEAD / MIB
    );
}

/// A sink that holds batches until its gate opens, and a producer bounded to 1 MiB with
/// `on_full = error` on its topic.
fn held_sink_with_1_mib_bound() -> (
    diaspora_stream::TopicHandle,
    Arc<SlowSink>,
    diaspora_stream::Producer,
) {
    let (driver, sink) = sink(0.0);
    sink.set_open(false);
    let topic = driver.open_topic("t").unwrap();
    let producer = topic
        .producer()
        .max_buffered_bytes(1 << 20)
        .on_full(OnFull::Error)
        .build()
        .unwrap();
    (topic, sink, producer)
}

#[test]
fn on_full_error_fails_the_push_at_once_and_names_the_option() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // The sink holds the first batch until the gate opens: it stays buffered meanwhile.
    let (topic, sink, producer) = held_sink_with_1_mib_bound();
    let first = producer.push(json!({"i": 0}), DataView::from(vec![0u8; 1 << 20]));
    let second = producer.push(json!({"i": 1}), DataView::from(vec![1u8; 1 << 20]));
    match second.wait() {
        Err(Error::ProducerFull { limit, .. }) => assert_eq!(limit, 1 << 20),
        other => panic!("expected ProducerFull, got {other:?}"),
    }
    let e = producer
        .push(json!({"i": 2}), DataView::from(vec![2u8; 4096]))
        .wait()
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("max_buffered_bytes") && e.contains("on_full"),
        "{e}"
    );
    // Both refusals came while the sink still held the first batch: they did not wait.
    sink.set_open(true);
    assert_eq!(first.wait().unwrap(), 0);
    // Once stored, there is room again; and a blocking producer with a push timeout fails
    // after waiting.
    producer.flush().wait().unwrap();
    assert!(producer
        .push(json!({"i": 3}), DataView::from(vec![3u8; 4096]))
        .wait()
        .is_ok());
    let blocking = topic
        .producer()
        .max_buffered_bytes(1 << 20)
        .push_timeout(Duration::from_millis(5))
        .build()
        .unwrap();
    sink.set_open(false);
    let held = blocking.push(json!({"i": 0}), DataView::from(vec![0u8; 1 << 20]));
    let e = blocking
        .push(json!({"i": 1}), DataView::from(vec![1u8; 1 << 20]))
        .wait()
        .unwrap_err()
        .to_string();
    assert!(e.contains("waited push_timeout"), "{e}");
    sink.set_open(true);
    assert!(held.wait().is_ok());
}

#[test]
fn buffered_bytes_return_to_zero_once_everything_is_stored() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (driver, sink) = sink(0.0);
    let topic = driver.open_topic("t").unwrap();
    for threads in [0, 2] {
        let pool = driver.make_thread_pool(diaspora_stream::ThreadCount(threads));
        let producer = topic.producer().thread_pool(pool).build().unwrap();
        sink.set_open(false);
        let futures: Vec<_> = (0..100)
            .map(|i| producer.push(json!({"i": i}), DataView::from(vec![0u8; 1000])))
            .collect();
        // Held while the sink is closed (at least the data of every event pushed).
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while producer.buffered_bytes() < 100 * 1000 {
            assert!(std::time::Instant::now() < deadline, "{threads} threads");
            std::thread::sleep(Duration::from_millis(1));
        }
        sink.set_open(true);
        producer.flush().wait().unwrap();
        for f in futures {
            f.wait().unwrap();
        }
        assert_eq!(producer.buffered_bytes(), 0, "{threads} threads");
    }
}

/// `push_many` keeps the limits `push` keeps: past `max_buffered_bytes` the remaining events of
/// the group fail at once with `on_full = error`, and the ones before are stored.
#[test]
fn push_many_stops_at_the_bound_as_push_does() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (_topic, sink, producer) = held_sink_with_1_mib_bound();
    // Four events of 300 KiB: three fit under 1 MiB (with their metadata), the fourth not.
    let events = (0..4).map(|i| {
        (
            json!({"i": i}).into(),
            DataView::from(vec![i as u8; 300 << 10]),
        )
    });
    let futures = producer.push_many(events, None);
    assert_eq!(futures.len(), 4);
    match futures[3].wait() {
        Err(Error::ProducerFull { limit, .. }) => assert_eq!(limit, 1 << 20),
        other => panic!("expected ProducerFull for the fourth event, got {other:?}"),
    }
    sink.set_open(true);
    let ids: Vec<EventId> = futures[..3].iter().map(|f| f.wait().unwrap()).collect();
    assert_eq!(ids, [0, 1, 2]);
}

#[test]
fn try_push_queues_while_there_is_room_and_gives_the_event_back_otherwise() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (topic, sink, _) = held_sink_with_1_mib_bound();
    let producer = topic
        .producer()
        .thread_pool(diaspora_stream::thread_pool::std_pool(1))
        .max_buffered_bytes(1 << 20)
        .on_full(OnFull::Error)
        .build()
        .unwrap();
    let event = |i: u8| (json!({"i": i}).into(), DataView::from(vec![i; 600 << 10]));
    let (md, data) = event(0);
    let first = producer
        .try_push(md, data, None)
        .unwrap_or_else(|_| panic!("room for the first event"));
    // The sink holds the first batch, so a second 600 KiB would pass the 1 MiB bound: it comes
    // back untouched, and nothing failed (on_full = error would have failed a push).
    let (md, data) = event(1);
    let (md, data) = match producer.try_push(md, data, None) {
        Ok(_) => panic!("no room for the second event"),
        Err(back) => back,
    };
    assert_eq!(md.json(), &json!({"i": 1}));
    assert_eq!(data.to_vec(), vec![1u8; 600 << 10]);
    sink.set_open(true);
    assert_eq!(first.wait().unwrap(), 0);
    producer.flush().wait().unwrap();
    // Room again: the event given back goes in, and keeps its place in the id order.
    let second = producer
        .try_push(md, data, None)
        .unwrap_or_else(|_| panic!("room after the flush"));
    // A forged control key fails its own future, as with push.
    let forged = producer
        .try_push(json!({"$diaspora": 1}).into(), DataView::new(), None)
        .unwrap_or_else(|_| panic!("room for an empty event"));
    assert!(matches!(forged.wait(), Err(Error::InvalidMetadata(_))));
    producer.flush().wait().unwrap();
    assert_eq!(second.wait().unwrap(), 1);
    // Without a pool thread every push works inline: try_push never does that work.
    let inline = topic
        .producer()
        .thread_pool(diaspora_stream::thread_pool::std_pool(0))
        .build()
        .unwrap();
    let (md, data) = event(2);
    assert!(inline.try_push(md, data, None).is_err());
}
