//! The Kafka-compatible broker the tests of both packages use (the library's `tests/kafka.rs`,
//! the command-line crate's `cli_kafka.rs`): its address, a driver on it, unique topic names.
#![allow(dead_code)]

use diaspora_stream::Driver;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};

pub fn bootstrap() -> String {
    std::env::var("DIASPORA_KAFKA_BOOTSTRAP").unwrap_or_else(|_| {
        panic!(
            "DIASPORA_KAFKA_BOOTSTRAP is not set: start a broker (scripts/kafka-broker.sh start) \
             and export its address, or run scripts/test.sh which does both"
        )
    })
}

pub fn driver() -> Driver {
    Driver::new(
        "kafka",
        &json!({"kafka": {"bootstrap.servers": bootstrap()}}),
    )
    .unwrap()
}

pub fn unique(prefix: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::SeqCst)
    )
}

pub fn topic_options(partitions: usize) -> Value {
    json!({"num_partitions": partitions, "replication_factor": 1})
}
