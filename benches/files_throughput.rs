//! Producer and consumer throughput of the files driver.
//!
//! `cargo bench --bench files_throughput [-- EVENTS]` writes EVENTS events (default 2,000,000) of
//! 64 B metadata + 256 B data with batches of 128 from one thread, then reads them back with one
//! consumer taking the full data, and prints events/s for both. Files go to a temporary directory
//! (set `DIASPORA_BENCH_DIR` to choose where, e.g. a parallel file system).

use bytes::Bytes;
use diaspora_stream::{BatchSize, DataView, Driver, MaxNumBatches};
use serde_json::json;
use std::time::{Duration, Instant};

fn main() {
    let events: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let base = std::env::var_os("DIASPORA_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let tmp = tempfile::tempdir_in(base).expect("temporary directory");
    let driver = Driver::new("files", &json!({"root_path": tmp.path()})).unwrap();
    driver
        .create_topic("bench", &json!({"num_partitions": 1}))
        .unwrap();
    let topic = driver.open_topic("bench").unwrap();

    // 64 MiB of data, handed out as 256-byte slices (shared, not copied).
    let pool = Bytes::from(
        (0..64usize << 20)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    let slices = pool.len() / 256;
    let metadata = |i: usize| json!({"step": i, "rank": 7, "kind": "snapshot", "t": 0.125});
    let md_len = serde_json::to_string(&metadata(1_000_000)).unwrap().len() + 8;

    let producer = topic
        .producer()
        .batch_size(BatchSize::Fixed(128))
        .max_num_batches(MaxNumBatches(4))
        .build()
        .unwrap();
    let start = Instant::now();
    let mut last = None;
    for i in 0..events {
        let at = (i % slices) * 256;
        last = Some(producer.push(metadata(i), DataView::from(pool.slice(at..at + 256))));
    }
    producer.flush().wait().unwrap();
    let produce = start.elapsed();
    assert_eq!(last.unwrap().wait().unwrap(), events as u64 - 1);
    drop(producer);
    report("producer", events, produce, md_len + 256);

    let consumer = topic
        .consumer("bench")
        .batch_size(BatchSize::Fixed(1024))
        .max_num_batches(MaxNumBatches(4))
        .build()
        .unwrap();
    let start = Instant::now();
    let mut bytes = 0usize;
    for _ in 0..events {
        let ev = consumer
            .pull()
            .wait_timeout(Duration::from_secs(30))
            .unwrap()
            .expect("event");
        bytes += ev.data().size();
        std::hint::black_box(ev.metadata());
    }
    let consume = start.elapsed();
    assert_eq!(bytes, events * 256);
    report("consumer", events, consume, md_len + 256);
}

fn report(what: &str, events: usize, elapsed: Duration, event_bytes: usize) {
    let rate = events as f64 / elapsed.as_secs_f64();
    println!(
        "{what}: {events} events in {:.3} s = {:.3} M events/s ({:.0} MiB/s)",
        elapsed.as_secs_f64(),
        rate / 1e6,
        rate * event_bytes as f64 / (1 << 20) as f64
    );
}
