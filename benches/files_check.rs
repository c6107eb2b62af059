//! Speed of `topic check` (every event's checksums verified) on the files driver.
//!
//! `cargo bench --bench files_check [-- MIB_PER_PARTITION]` writes a topic of 4 partitions of
//! MIB_PER_PARTITION MiB each (default 256) in events of 64 KiB, then checks it 3 times and
//! prints the median rate. With feature `rayon` the partitions are checked in parallel on
//! rayon's pool, and the bench compares, in the same run, checks inside a one-thread rayon pool
//! (partitions one after the other) with checks on rayon's global pool, alternating. Files go to a temporary
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
    // One check of the whole topic: its rate in GB/s.
    let check = || {
        let start = Instant::now();
        let report = files.check_topic("t", |_| {}).unwrap();
        let secs = start.elapsed().as_secs_f64();
        assert!(report.is_clean(), "{:?}", report.problems);
        let verified: u64 = report.partitions.iter().map(|p| p.verified).sum();
        assert_eq!(verified as usize, per_partition * PARTITIONS);
        total / secs / 1e9
    };
    let median = |mut rates: Vec<f64>| {
        rates.sort_by(f64::total_cmp);
        rates[rates.len() / 2]
    };
    let what = format!(
        "files_check: {PARTITIONS} partitions x {mib} MiB, events of {} KiB",
        EVENT >> 10
    );
    #[cfg(not(feature = "rayon"))]
    {
        let rate = median((0..3).map(|_| check()).collect());
        println!("{what}, rayon off: {rate:.2} GB/s (median of 3)");
    }
    // With rayon: the same checks called from a one-thread rayon pool (which checks the
    // partitions one after the other) and on rayon's global pool, alternating, in this one run.
    #[cfg(feature = "rayon")]
    {
        let one = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .expect("one-thread rayon pool");
        let (mut serial, mut parallel) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            serial.push(one.install(check));
            parallel.push(check());
        }
        let (s, p) = (median(serial), median(parallel));
        println!(
            "{what}: {s:.2} GB/s on one thread, {p:.2} GB/s on rayon's pool of {} threads \
             (medians of 3, alternating): {:.2}x",
            rayon::current_num_threads(),
            p / s
        );
    }
}
