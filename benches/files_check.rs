//! Speed of `topic check` (every event's checksums verified) on the files driver.
//!
//! `cargo bench --bench files_check [-- MIB_PER_PARTITION]` writes a topic of 4 partitions of
//! MIB_PER_PARTITION MiB each (default 256) in events of 64 KiB, then checks it 3 times and
//! prints the median rate. With feature `rayon` the partitions are checked in parallel on
//! rayon's pool: run it with and without `--features rayon` to compare. Files go to a temporary
//! directory (`DIASPORA_BENCH_DIR` chooses where); the page cache holds them, as it does right
//! after a job wrote them.

use bytes::Bytes;
use diaspora_stream::drivers::files::FilesDriver;
use diaspora_stream::{BatchSize, DataView, Driver};
use serde_json::json;
use std::time::Instant;

const EVENT: usize = 64 << 10;
const PARTITIONS: usize = 4;

fn main() {
    let mib: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(256);
    let base = std::env::var_os("DIASPORA_BENCH_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let tmp = tempfile::tempdir_in(base).expect("temporary directory");
    let driver = Driver::new("files", &json!({"root_path": tmp.path()})).unwrap();
    driver
        .create_topic("t", &json!({"num_partitions": PARTITIONS}))
        .unwrap();
    let topic = driver.open_topic("t").unwrap();
    let data = Bytes::from((0..EVENT).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    let per_partition = (mib << 20) / EVENT;
    let producer = topic
        .producer()
        .batch_size(BatchSize::Fixed(16))
        .build()
        .unwrap();
    for i in 0..per_partition * PARTITIONS {
        producer.push_to(
            json!({"i": i}),
            DataView::from(data.clone()),
            i % PARTITIONS,
        );
    }
    producer.flush().wait().unwrap();
    drop(producer);
    let files = driver.backend_as::<FilesDriver>().expect("files driver");
    let total = (per_partition * PARTITIONS * EVENT) as f64;
    let mut rates: Vec<f64> = (0..3)
        .map(|_| {
            let start = Instant::now();
            let report = files.check_topic("t", |_| {}).unwrap();
            let secs = start.elapsed().as_secs_f64();
            assert!(report.is_clean(), "{:?}", report.problems);
            let verified: u64 = report.partitions.iter().map(|p| p.verified).sum();
            assert_eq!(verified as usize, per_partition * PARTITIONS);
            total / secs / 1e9
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    println!(
        "files_check: {PARTITIONS} partitions x {mib} MiB, events of {} KiB, rayon {}: {:.2} GB/s \
         (median of 3)",
        EVENT >> 10,
        if cfg!(feature = "rayon") { "on" } else { "off" },
        rates[1]
    );
}
