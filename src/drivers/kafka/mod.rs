//! The `kafka` driver (feature `kafka`): topics on a Kafka-compatible cluster, through
//! librdkafka (the `rdkafka` crate's bundled build). Also registered as `octopus`.
//!
//! # Mapping
//!
//! * A topic is the Kafka topic `[<namespace>.]<name>` with the same number of partitions; a
//!   one-partition side topic `[<namespace>.]__info_<name>` holds three records, the compact
//!   JSON configurations of the validator, the partition selector and the serializer (in that
//!   order), as the C++ Octopus driver writes them.
//! * An event is one record whose value is `metadata size (u64 LE) | data size (u64 LE) |
//!   serialized metadata | data`, with no key or headers (Octopus's layout, so either
//!   implementation reads the other's records). A record whose two sizes are `u64::MAX` is an
//!   end-of-stream marker.
//! * The partition selector's choice is the Kafka partition; an event id is the record's
//!   offset, taken from the delivery report (a failed delivery fails the push).
//! * A consumer's name is its Kafka group id. Consumers use explicit partition assignment (no
//!   group rebalancing, so target partitions are honoured), and `acknowledge()` commits
//!   `offset + 1` for the group, so a consumer restarted with the same name resumes right after
//!   its last acknowledged event.
//!
//! Differences from Octopus: every partition works (Octopus fails unless the selector returns
//! 0), delivery failures surface as errors, acknowledgements are stored (Octopus auto-commits
//! whatever was polled), target partitions are honoured, existence checks never create topics.

use crate::error::{Error, Result};
use crate::metadata::PartitionInfo;
use rdkafka::config::ClientConfig;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

mod admin;
mod config;
mod context;
mod leases;
#[cfg(feature = "msk")]
mod msk;
mod produce;
mod read;
mod records;
mod topic;

pub use admin::KafkaDriver;
pub use config::{KafkaConfig, MskIamConfig};
#[cfg(feature = "msk")]
pub use msk::{sign_token, MskToken, TokenSource, TOKEN_EXPIRY};
pub use records::decode_record;

/// How long administrative requests may take.
const ADMIN_TIMEOUT: Duration = Duration::from_secs(60);
/// How long metadata and offset requests may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Record size fields of an end-of-stream marker.
const END_MARKER: u64 = u64::MAX;

fn kafka_err(what: impl std::fmt::Display, e: impl std::fmt::Display) -> Error {
    Error::Driver {
        driver: "kafka",
        message: format!("{what}: {e}"),
    }
}

/// librdkafka settings: the driver's, then `extra`, then `overrides` (the caller's options win).
fn client_config(
    base: &BTreeMap<String, String>,
    extra: &[(&str, &str)],
    overrides: &BTreeMap<String, String>,
) -> ClientConfig {
    let mut c = ClientConfig::new();
    for (k, v) in base {
        c.set(k, v);
    }
    for (k, v) in extra {
        c.set(*k, *v);
    }
    for (k, v) in overrides {
        c.set(k, v);
    }
    c
}

/// Kafka topic names: 1 to 249 characters among letters, digits, `.`, `_` and `-`.
fn check_topic_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 200
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "invalid topic name {name:?}: Kafka topic names use letters, digits, '.', '_' and '-' (at most 200 here)"
        )))
    }
}

fn partition_infos(n: usize) -> Vec<PartitionInfo> {
    (0..n)
        .map(|i| PartitionInfo::new(json!({"partition_id": i})))
        .collect()
}
