//! Producer and consumer throughput of the files driver.
//!
//! `cargo bench --bench files_throughput [-- EVENTS] [object] [data=BYTES]` writes EVENTS events
//! (default 2,000,000) of 64 B metadata + 256 B data (or BYTES) with batches of 128 from one
//! thread, then reads them back with one consumer taking the full data, and prints events/s for
//! both (median of 3 runs, after one untimed warm-up run). Every run is made twice in a row, on a
//! topic with checksums (the default: written by the producer, verified by the consumer) and on
//! one without, and the cost of checksums is printed. Files go to a temporary directory (set
//! `DIASPORA_BENCH_DIR` to choose where, e.g. a parallel file system).
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
    let data_size: usize = std::env::args()
        .find_map(|a| {
            a.strip_prefix("data=")
                .map(|n| n.parse().expect("data=BYTES"))
        })
        .unwrap_or(256);
    let base = std::env::var_os("DIASPORA_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let tmp = tempfile::tempdir_in(base).expect("temporary directory");
    let driver = Driver::new("files", &json!({"root_path": tmp.path()})).unwrap();

    // 64 MiB of data, handed out as slices (shared, not copied).
    let pool = Bytes::from(
        (0..(64usize << 20).max(2 * data_size))
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
        "files_throughput: {events} events, {} B {} metadata + {data_size} B data, batch 128, \
         median of {RUNS} runs, with and without checksums",
        md_len - 8,
        if object { "object" } else { "string" }
    );

    let modes = [("checksums", true), ("no checksums", false)];
    let mut produce_rates = [Vec::new(), Vec::new()];
    let mut last_topics: [Option<String>; 2] = [None, None];
    // Modes alternate, and which goes first changes from run to run.
    let order = |run: usize| {
        if run.is_multiple_of(2) {
            [0, 1]
        } else {
            [1, 0]
        }
    };
    for run in 0..=RUNS {
        for m in order(run) {
            let checksums = modes[m].1;
            let name = format!("bench-{run}-{m}");
            driver
                .create_topic(&name, &json!({"num_partitions": 1, "checksums": checksums}))
                .unwrap();
            let topic = driver.open_topic(&name).unwrap();
            let elapsed = produce(&topic, events, &pool, data_size, &metadata);
            if run > 0 {
                produce_rates[m].push(events as f64 / elapsed.as_secs_f64());
            }
            if let Some(old) = last_topics[m].replace(name) {
                std::fs::remove_dir_all(tmp.path().join(old)).unwrap();
            }
        }
    }
    report_modes("producer", &modes, &mut produce_rates, md_len + data_size);
    if std::env::args().any(|a| a == "produce-only") {
        return;
    }

    let topics: Vec<_> = last_topics
        .iter()
        .map(|t| driver.open_topic(t.as_deref().unwrap()).unwrap())
        .collect();
    let mut consume_rates = [Vec::new(), Vec::new()];
    for run in 0..=RUNS {
        for m in order(run) {
            let topic = &topics[m];
            let elapsed = consume(topic, &format!("reader-{run}"), events, data_size);
            if run > 0 {
                consume_rates[m].push(events as f64 / elapsed.as_secs_f64());
            }
        }
    }
    report_modes("consumer", &modes, &mut consume_rates, md_len + data_size);
}

fn produce(
    topic: &TopicHandle,
    events: usize,
    pool: &Bytes,
    data_size: usize,
    metadata: &dyn Fn(usize) -> Value,
) -> Duration {
    let slices = pool.len() / data_size.max(1);
    let producer = topic
        .producer()
        .batch_size(BatchSize::Fixed(128))
        .max_num_batches(MaxNumBatches(4))
        .build()
        .unwrap();
    let start = Instant::now();
    let mut last = None;
    for i in 0..events {
        let at = (i % slices) * data_size;
        last = Some(producer.push(metadata(i), DataView::from(pool.slice(at..at + data_size))));
    }
    producer.flush().wait().unwrap();
    let elapsed = start.elapsed();
    assert_eq!(last.unwrap().wait().unwrap(), events as u64 - 1);
    elapsed
}

fn consume(topic: &TopicHandle, name: &str, events: usize, data_size: usize) -> Duration {
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
    assert_eq!(bytes, events * data_size);
    elapsed
}

/// Prints both modes' runs and the cost of checksums (median with / median without).
fn report_modes(what: &str, modes: &[(&str, bool); 2], rates: &mut [Vec<f64>; 2], bytes: usize) {
    let medians: Vec<f64> = modes
        .iter()
        .zip(rates.iter_mut())
        .map(|((label, _), r)| report(&format!("{what}, {label}"), r, bytes))
        .collect();
    println!(
        "{what}: checksums cost {:.1} % (median with / median without)",
        (1.0 - medians[0] / medians[1]) * 100.0
    );
}

/// Prints the runs and returns their median.
fn report(what: &str, rates: &mut [f64], event_bytes: usize) -> f64 {
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    println!(
        "{what}: median {:.4} M events/s ({:.0} MiB/s); runs: {}",
        median / 1e6,
        median * event_bytes as f64 / (1 << 20) as f64,
        rates
            .iter()
            .map(|r| format!("{:.4}", r / 1e6))
            .collect::<Vec<_>>()
            .join(", ")
    );
    median
}
