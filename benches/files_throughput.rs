//! Producer and consumer throughput of the files driver.
//!
//! `cargo bench --bench files_throughput [-- EVENTS] [object]` writes EVENTS events (default
//! 2,000,000) of 64 B metadata + 256 B data with batches of 128 from one thread, then reads them
//! back with one consumer taking the full data, and prints events/s for both (median of 3 runs,
//! after one untimed warm-up run). Files go to a temporary directory (set `DIASPORA_BENCH_DIR` to
//! choose where, e.g. a parallel file system).
//!
//! By default the metadata is a 64-byte JSON string, as in the C++ reference's benchmark; with
//! `object` it is a JSON object of about the same serialized size, built per event.
//!
//! The warm-up matters on virtual machines: the first write into never-used guest memory costs a
//! host page fault per page, which is not what a long-running job sees.

use bytes::Bytes;
use diaspora_stream::{BatchSize, DataView, Driver, MaxNumBatches, TopicHandle};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

const RUNS: usize = 3;

fn main() {
    let events: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2_000_000);
    let object = std::env::args().any(|a| a == "object");
    let base = std::env::var_os("DIASPORA_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let tmp = tempfile::tempdir_in(base).expect("temporary directory");
    let driver = Driver::new("files", &json!({"root_path": tmp.path()})).unwrap();

    // 64 MiB of data, handed out as 256-byte slices (shared, not copied).
    let pool = Bytes::from(
        (0..64usize << 20)
            .map(|i| (i % 251) as u8)
            .collect::<Vec<u8>>(),
    );
    // 62 characters + 2 quotes = 64 bytes of JSON text.
    let text: String = (0..62).map(|i| (b'a' + (i % 26) as u8) as char).collect();
    let string_md = Value::String(text);
    let metadata = |i: usize| {
        if object {
            json!({"step": i, "rank": 7, "kind": "snapshot-00", "t": 0.125})
        } else {
            string_md.clone()
        }
    };
    let md_len = serde_json::to_string(&metadata(1_000_000)).unwrap().len() + 8;
    println!(
        "files_throughput: {events} events, {} B {} metadata + 256 B data, batch 128, median of {RUNS} runs",
        md_len - 8,
        if object { "object" } else { "string" }
    );

    let mut produce_rates = Vec::new();
    let mut last_topic = None;
    for run in 0..=RUNS {
        let name = format!("bench-{run}");
        driver
            .create_topic(&name, &json!({"num_partitions": 1}))
            .unwrap();
        let topic = driver.open_topic(&name).unwrap();
        let elapsed = produce(&topic, events, &pool, &metadata);
        if run > 0 {
            produce_rates.push(events as f64 / elapsed.as_secs_f64());
        }
        if let Some(old) = last_topic.replace(name) {
            std::fs::remove_dir_all(tmp.path().join(old)).unwrap();
        }
    }
    report("producer", &mut produce_rates, md_len + 256);
    if std::env::args().any(|a| a == "produce-only") {
        return;
    }

    let topic = driver.open_topic(last_topic.as_deref().unwrap()).unwrap();
    let mut consume_rates = Vec::new();
    for run in 0..=RUNS {
        let elapsed = consume(&topic, &format!("reader-{run}"), events);
        if run > 0 {
            consume_rates.push(events as f64 / elapsed.as_secs_f64());
        }
    }
    report("consumer", &mut consume_rates, md_len + 256);
}

fn produce(
    topic: &TopicHandle,
    events: usize,
    pool: &Bytes,
    metadata: &dyn Fn(usize) -> Value,
) -> Duration {
    let slices = pool.len() / 256;
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
    let elapsed = start.elapsed();
    assert_eq!(last.unwrap().wait().unwrap(), events as u64 - 1);
    elapsed
}

fn consume(topic: &TopicHandle, name: &str, events: usize) -> Duration {
    let consumer = topic
        .consumer(name)
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
    let elapsed = start.elapsed();
    assert_eq!(bytes, events * 256);
    elapsed
}

fn report(what: &str, rates: &mut [f64], event_bytes: usize) {
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    println!(
        "{what}: median {:.3} M events/s ({:.0} MiB/s); runs: {}",
        median / 1e6,
        median * event_bytes as f64 / (1 << 20) as f64,
        rates
            .iter()
            .map(|r| format!("{:.3}", r / 1e6))
            .collect::<Vec<_>>()
            .join(", ")
    );
}
