//! Producer and consumer throughput of the {{crate_name}} driver on a temporary folder.
//!
//! `cargo bench --bench throughput -- [EVENTS] [DATA_BYTES] [BATCH]` (defaults 100000, 1024,
//! 128): pushes EVENTS events of DATA_BYTES bytes of data in batches of BATCH, flushes, then
//! reads them all back with their data, and prints events/s and MB/s for each side.

use diaspora_stream::{BatchSize, DataView, Driver};
use serde_json::json;
use std::sync::Arc;
use std::time::Instant;

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .filter(|a| !a.starts_with('-'))
        .nth(n)
        .map(|a| a.parse().expect("arguments are integers: EVENTS DATA_BYTES BATCH"))
        .unwrap_or(default)
}

fn report(side: &str, events: u64, bytes: u64, start: Instant) {
    let s = start.elapsed().as_secs_f64();
    println!(
        "{side:>8}: {events} events in {s:.3} s: {:.0} events/s, {:.1} MB/s",
        events as f64 / s,
        bytes as f64 / s / 1e6
    );
}

fn main() -> diaspora_stream::Result<()> {
    let (events, size, batch) = (arg(1, 100_000), arg(2, 1024), arg(3, 128));
    let dir = tempfile::tempdir().expect("temporary folder");
    let options = json!({ "root_path": dir.path() });
    let driver = Driver::from_backend(Arc::new(
        {{crate_name}}::{{crate_name | pascal_case}}Driver::new(&options)?,
    ));
    driver.create_topic("bench", &json!({ "num_partitions": 1 }))?;
    let topic = driver.open_topic("bench")?;
    let payload = DataView::from(vec![7u8; size as usize]);

    let start = Instant::now();
    let producer = topic
        .producer()
        .batch_size(BatchSize::Fixed(batch as usize))
        .build()?;
    for i in 0..events {
        producer.push(json!({ "i": i }), payload.clone());
    }
    producer.flush().wait()?;
    report("produce", events, events * size, start);

    let start = Instant::now();
    let consumer = topic.consumer("bench").build()?;
    let mut n = 0;
    let mut bytes = 0;
    for event in consumer
        .iter(std::time::Duration::from_secs(30))
        .take(events as usize)
    {
        bytes += event?.data().size() as u64;
        n += 1;
    }
    assert_eq!(n, events, "every event comes back");
    report("consume", n, bytes, start);
    Ok(())
}
