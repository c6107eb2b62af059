//! Options of the mofka driver and of its topics, read by hand from their JSON.

use super::partitions::PartitionSpec;
use crate::drivers::mofka::wire::WireVersion;
use crate::error::{Error, Result};
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

/// Events a partition sends a consumer per `recv_batch` (consumer option `batch_size`).
pub(super) const DEFAULT_BATCH_SIZE: u64 = 128;
/// Data segments below this many bytes are copied into a contiguous region before being
/// exposed (see [`super::producer::pack_region`]; option `pack_threshold`).
const DEFAULT_PACK_THRESHOLD: usize = 16 * 1024;

/// Parsed driver options.
#[derive(Clone, Debug)]
pub(super) struct Config {
    pub(super) group_file: PathBuf,
    pub(super) version: WireVersion,
    pub(super) address: Option<String>,
    pub(super) timeout: Duration,
    pub(super) pack_threshold: usize,
    pub(super) liveness: Option<Duration>,
    pub(super) transport: crate::mercury::TransportOptions,
}

impl Config {
    /// Reads and checks the driver options (see the table in [`super`]).
    pub(super) fn parse(options: &Value) -> Result<Config> {
        let bad = |m: String| Error::config("mofka driver", m);
        let obj = options
            .as_object()
            .ok_or_else(|| bad("options must be a JSON object".into()))?;
        let group_file = obj
            .get("group_file")
            .and_then(Value::as_str)
            .ok_or_else(|| bad("\"group_file\" (the service's group file) is required".into()))?;
        let version = match obj.get("wire_version") {
            None | Some(Value::Null) => WireVersion::CURRENT,
            Some(Value::String(s)) => s.parse().map_err(bad)?,
            Some(v) => return Err(bad(format!("\"wire_version\" must be a string, not {v}"))),
        };
        let address = match obj.get("address") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(v) => return Err(bad(format!("\"address\" must be a string, not {v}"))),
        };
        let timeout = match obj.get("rpc_timeout_ms") {
            None | Some(Value::Null) => Duration::from_secs(30),
            Some(v) => Duration::from_millis(v.as_u64().filter(|&t| t > 0).ok_or_else(|| {
                bad(format!(
                    "\"rpc_timeout_ms\" must be a positive integer, not {v}"
                ))
            })?),
        };
        let pack_threshold = match obj.get("pack_threshold") {
            None | Some(Value::Null) => DEFAULT_PACK_THRESHOLD,
            Some(v) => v.as_u64().map(|t| t as usize).ok_or_else(|| {
                bad(format!(
                    "\"pack_threshold\" must be a non-negative integer (bytes), not {v}"
                ))
            })?,
        };
        let liveness = match obj.get("liveness_ms") {
            None | Some(Value::Null) => Some(Duration::from_secs(5)),
            Some(v) => match v.as_u64() {
                Some(0) => None,
                Some(ms) => Some(Duration::from_millis(ms)),
                None => {
                    return Err(bad(format!(
                        "\"liveness_ms\" must be a non-negative integer (0 disables), not {v}"
                    )))
                }
            },
        };
        let transport = match obj.get("margo") {
            None | Some(Value::Null) => Default::default(),
            Some(m @ Value::Object(_)) => crate::mercury::TransportOptions::from_margo(m)?,
            Some(v) => {
                return Err(bad(format!(
                    "\"margo\" must be a Margo configuration object, not {v}"
                )))
            }
        };
        Ok(Config {
            group_file: PathBuf::from(group_file),
            version,
            address,
            timeout,
            pack_threshold,
            liveness,
            transport,
        })
    }
}

/// Reads a topic's partition options, under this driver's names (`num_partitions`,
/// `partition_type`) or the C++ driver's (`partitions`, `partitions_type`,
/// `partitions_config`, `partitions_dependencies`, `partitions_pool`).
pub(super) fn topic_partition_options(options: &Value) -> Result<(usize, PartitionSpec)> {
    let bad = |m: String| Error::config("topic", m);
    let get = |ours: &str, theirs: &str| {
        let set = |k: &str| options.get(k).filter(|v| !v.is_null());
        set(ours).or_else(|| set(theirs))
    };
    let n = match get("num_partitions", "partitions") {
        None => 1,
        Some(v) => v
            .as_u64()
            .filter(|n| (1..=1 << 16).contains(n))
            .ok_or_else(|| {
                bad(format!(
                    "\"num_partitions\" (or \"partitions\") must be an integer from 1 to \
                     65536, not {v}"
                ))
            })? as usize,
    };
    let partition_type = match get("partition_type", "partitions_type") {
        None => "memory".to_string(),
        Some(Value::String(t)) if !t.is_empty() => t.clone(),
        Some(v) => {
            return Err(bad(format!(
                "\"partition_type\" (or \"partitions_type\") must be a name, not {v}"
            )))
        }
    };
    let config = match get("partition_config", "partitions_config") {
        None => json!({}),
        Some(v @ Value::Object(_)) => v.clone(),
        Some(v) => {
            return Err(bad(format!(
                "\"partition_config\" (or \"partitions_config\") must be an object, not {v}"
            )))
        }
    };
    // Like the C++ driver: each dependency is a provider name or a list of them.
    let dependency = |v: &Value| match v {
        Value::String(_) => true,
        Value::Array(a) => a.iter().all(Value::is_string),
        _ => false,
    };
    let dependencies = match get("partition_dependencies", "partitions_dependencies") {
        None => serde_json::Map::new(),
        Some(Value::Object(m)) if m.values().all(dependency) => m.clone(),
        Some(v) => {
            return Err(bad(format!(
                "\"partition_dependencies\" (or \"partitions_dependencies\") must map names \
                 to a provider or a list of providers, not {v}"
            )))
        }
    };
    let pool = match get("partition_pool", "partitions_pool") {
        None => None,
        Some(Value::String(p)) => (!p.is_empty()).then(|| p.clone()),
        Some(v) => {
            return Err(bad(format!(
                "\"partition_pool\" (or \"partitions_pool\") must be a string, not {v}"
            )))
        }
    };
    Ok((
        n,
        PartitionSpec {
            server_rank: 0,
            partition_type,
            config,
            dependencies,
            pool,
        },
    ))
}
