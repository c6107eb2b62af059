//! Options of the mofka driver, of its topics, producers and consumers, as typed structs read
//! with [`crate::options::parse`]: a value of the wrong type is an error naming its option.
//!
//! The driver's and the topics' options are closed sets (`deny_unknown_fields`): an unknown
//! key, such as a typo, is an error listing the valid ones. Producer and consumer options are
//! not: the application hands every driver the same ones, and the keys this driver does not
//! use are left alone. A topic's partition options are read into a [`PartitionSpec`], the
//! description of a partition to start.

use crate::drivers::mofka::wire::WireVersion;
use crate::error::{Error, Result};
use crate::mercury::TransportOptions;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::time::Duration;

/// The most events a partition sends a consumer per `recv_batch` (consumer option
/// `batch_size`). A partition sends what it has up to that many without waiting for more (the
/// C++ client asks for no limit at all), so a large bound costs no latency; each batch costs
/// the consumer four transfers (sizes and contents of metadata and descriptors) and the
/// service a round trip under its partition's lock: with a bound of 128, a consumer of small
/// events spent most of its time waiting for the next batch.
pub(super) const DEFAULT_BATCH_SIZE: u64 = 4096;
/// Data segments below this many bytes are copied into a contiguous region before being
/// exposed (see [`super::producer::pack_region`]; option `pack_threshold`).
const DEFAULT_PACK_THRESHOLD: usize = 16 * 1024;
/// The most partitions a topic is created with.
const MAX_PARTITIONS: u64 = 1 << 16;

/// Parsed driver options.
#[derive(Clone, Debug)]
pub(super) struct Config {
    /// The service's Flock group file.
    pub(super) group_file: PathBuf,
    /// The `send_batch` layout of the service.
    pub(super) version: WireVersion,
    /// What this client listens on (default: derived from the first member's address).
    pub(super) address: Option<String>,
    /// How long a call waits for its response.
    pub(super) timeout: Duration,
    /// See [`super::producer::pack_region`].
    pub(super) pack_threshold: usize,
    /// How long a consumer goes without events before checking its servers (`None`: never).
    pub(super) liveness: Option<Duration>,
    /// How often producers renew their liveness lease (`None`: no leases).
    pub(super) lease_interval: Option<Duration>,
    /// Mercury settings from the `margo` option.
    pub(super) transport: TransportOptions,
}

/// The driver options as written, before checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOptions {
    #[serde(default, deserialize_with = "crate::options::optional_text")]
    group_file: Option<String>,
    #[serde(default, deserialize_with = "wire_version")]
    wire_version: Option<WireVersion>,
    #[serde(default, deserialize_with = "crate::options::optional_text")]
    address: Option<String>,
    rpc_timeout_ms: Option<u64>,
    liveness_ms: Option<u64>,
    lease_interval_ms: Option<u64>,
    pack_threshold: Option<u64>,
    margo: Option<Value>,
}

/// Reads `wire_version`, which must be a string (`"0.8"`, `"0.9"`, `"0.8.3"`, `"v0.9"`). A
/// number is refused rather than read: it is what a command line makes of
/// `--driver.wire_version 0.8`, and as a number `0.10` would be `0.1`.
fn wire_version<'de, D: Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<WireVersion>, D::Error> {
    use serde::de::Error as _;
    match Value::deserialize(d)? {
        Value::Null => Ok(None),
        Value::String(s) => s.parse().map(Some).map_err(D::Error::custom),
        Value::Number(n) => Err(D::Error::custom(format!(
            "must be a string, not the number {n}: quote it (\"{n}\"); on a \
             command line, where {n} is read as a number, write v{n}"
        ))),
        other => Err(D::Error::custom(format!(
            "must be a string (\"0.8\" or \"0.9\"), not {other}"
        ))),
    }
}

impl Config {
    /// Reads and checks the driver options (see the table in [`super`]).
    pub(super) fn parse(options: &Value) -> Result<Config> {
        let bad = |m: String| Error::config("mofka driver", m);
        if !options.is_object() {
            return Err(bad("options must be a JSON object".into()));
        }
        let raw: RawOptions = crate::options::parse("mofka driver", options)?;
        let group_file = raw
            .group_file
            .ok_or_else(|| bad("\"group_file\" (the service's group file) is required".into()))?;
        if raw.rpc_timeout_ms == Some(0) {
            return Err(bad(
                "option \"rpc_timeout_ms\": must be a positive integer (milliseconds), not 0"
                    .into(),
            ));
        }
        let timeout = Duration::from_millis(raw.rpc_timeout_ms.unwrap_or(30_000));
        let transport = match raw.margo {
            None => TransportOptions::default(),
            Some(m @ Value::Object(_)) => TransportOptions::from_margo(&m)?,
            Some(v) => {
                return Err(bad(format!(
                    "option \"margo\": must be a Margo configuration object, not {v}"
                )))
            }
        };
        Ok(Config {
            group_file: PathBuf::from(group_file),
            version: raw.wire_version.unwrap_or(WireVersion::CURRENT),
            address: raw.address,
            timeout,
            pack_threshold: raw
                .pack_threshold
                .map_or(DEFAULT_PACK_THRESHOLD, |t| t as usize),
            liveness: match raw.liveness_ms {
                None => Some(Duration::from_secs(5)),
                Some(0) => None,
                Some(ms) => Some(Duration::from_millis(ms)),
            },
            lease_interval: crate::drivers::heartbeats::lease_interval(
                "mofka driver",
                raw.lease_interval_ms,
            )?,
            transport,
        })
    }
}

/// A topic's options as written: this driver's names and the C++ driver's (`partitions`,
/// `partitions_type`, ...). Both spellings are fields rather than aliases so that, given both
/// (`diaspora-ctl import` adds `num_partitions` to the options given), this driver's wins
/// instead of being an error.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawTopicOptions {
    num_partitions: Option<u64>,
    partitions: Option<u64>,
    partition_type: Option<String>,
    partitions_type: Option<String>,
    partition_config: Option<Map<String, Value>>,
    partitions_config: Option<Map<String, Value>>,
    partition_dependencies: Option<Map<String, Value>>,
    partitions_dependencies: Option<Map<String, Value>>,
    partition_pool: Option<String>,
    partitions_pool: Option<String>,
}

/// Reads a topic's partition options, under this driver's names (`num_partitions`,
/// `partition_type`, `partition_config`, `partition_dependencies`, `partition_pool`) or the
/// C++ driver's (`partitions`, `partitions_type`, `partitions_config`,
/// `partitions_dependencies`, `partitions_pool`): the partition count and how to start each
/// partition (its `server_rank` is left 0). Options that are not an object give the defaults.
pub(super) fn topic_partition_options(options: &Value) -> Result<(usize, PartitionSpec)> {
    let bad = |m: String| Error::config("topic", m);
    let raw: RawTopicOptions = if options.is_object() {
        crate::options::parse("topic", options)?
    } else {
        RawTopicOptions::default()
    };
    let n = match raw.num_partitions.or(raw.partitions) {
        None => 1,
        Some(n) if (1..=MAX_PARTITIONS).contains(&n) => n as usize,
        Some(n) => {
            return Err(bad(format!(
                "\"num_partitions\" (or \"partitions\") must be an integer from 1 to \
                 {MAX_PARTITIONS}, not {n}"
            )))
        }
    };
    let partition_type = match raw.partition_type.or(raw.partitions_type) {
        None => "memory".to_string(),
        Some(t) if !t.is_empty() => t,
        Some(t) => {
            return Err(bad(format!(
                "\"partition_type\" (or \"partitions_type\") must be a name, not {t:?}"
            )))
        }
    };
    let config = Value::Object(
        raw.partition_config
            .or(raw.partitions_config)
            .unwrap_or_default(),
    );
    // Like the C++ driver: each dependency is a provider name or a list of them.
    let dependency = |v: &Value| match v {
        Value::String(_) => true,
        Value::Array(a) => a.iter().all(Value::is_string),
        _ => false,
    };
    let dependencies = raw
        .partition_dependencies
        .or(raw.partitions_dependencies)
        .unwrap_or_default();
    if !dependencies.values().all(dependency) {
        return Err(bad(format!(
            "\"partition_dependencies\" (or \"partitions_dependencies\") must map names to a \
             provider or a list of providers, not {}",
            Value::Object(dependencies)
        )));
    }
    let pool = raw
        .partition_pool
        .or(raw.partitions_pool)
        .filter(|p| !p.is_empty());
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

/// How [`MofkaDriver::add_partition`](super::MofkaDriver::add_partition) starts a partition: the C++ driver's
/// `addCustomPartition` arguments.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PartitionSpec {
    /// Index of the server in the group file's members ([`MofkaDriver::servers`](super::MofkaDriver::servers)).
    pub server_rank: usize,
    /// The partition manager's type: `memory` (when empty) or another type the service knows
    /// (`default` on Mofka 0.9).
    pub partition_type: String,
    /// The partition manager's configuration (`{}` when null).
    pub config: Value,
    /// Bedrock dependencies of the provider, each a provider name or a list of them (for
    /// example the `metadata` and `data` providers a legacy partition uses);
    /// `master_database` is always set to the topic's master.
    pub dependencies: serde_json::Map<String, Value>,
    /// Argobots pool of the provider on its server (default `__primary__`).
    pub pool: Option<String>,
}

/// A producer's options (other keys are left alone).
#[derive(Deserialize, Default)]
pub(super) struct ProducerOptions {
    /// The name `send_batch` carries (default `diaspora-rs-<pid>`).
    #[serde(default, deserialize_with = "crate::options::optional_text")]
    pub(super) producer_name: Option<String>,
    /// The `ack_early` flag of wire 0.9 (sent, ignored by current servers).
    pub(super) ack_early: Option<bool>,
}

impl ProducerOptions {
    /// Reads `producer_name` and `ack_early`; options that are not an object set neither.
    pub(super) fn parse(options: &Value) -> Result<ProducerOptions> {
        if !options.is_object() {
            return Ok(ProducerOptions::default());
        }
        crate::options::parse("producer", options)
    }
}

/// A consumer's options (other keys are left alone).
pub(super) struct ConsumerOptions {
    /// Events per `recv_batch`.
    pub(super) batch_size: u64,
}

impl ConsumerOptions {
    /// Reads `batch_size` (a positive integer, default [`DEFAULT_BATCH_SIZE`]).
    pub(super) fn parse(options: &Value) -> Result<ConsumerOptions> {
        #[derive(Deserialize)]
        struct Raw {
            batch_size: Option<u64>,
        }
        let raw: Raw = if options.is_object() {
            crate::options::parse("consumer", options)?
        } else {
            Raw { batch_size: None }
        };
        let batch_size = match raw.batch_size {
            None => DEFAULT_BATCH_SIZE,
            Some(0) => {
                return Err(Error::config(
                    "consumer",
                    "option \"batch_size\": must be a positive integer, not 0",
                ))
            }
            Some(b) => b,
        };
        Ok(ConsumerOptions { batch_size })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config_error(options: Value) -> String {
        Config::parse(&options).unwrap_err().to_string()
    }

    #[test]
    fn driver_options_are_read_and_checked() {
        let c = Config::parse(&json!({"group_file": "/g.json"})).unwrap();
        assert_eq!(c.group_file, PathBuf::from("/g.json"));
        assert_eq!(c.version, WireVersion::CURRENT);
        assert_eq!(c.address, None);
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.pack_threshold, DEFAULT_PACK_THRESHOLD);
        assert_eq!(c.liveness, Some(Duration::from_secs(5)));
        assert_eq!(c.transport, TransportOptions::default());
        let c = Config::parse(&json!({
            "group_file": "g", "wire_version": "0.8", "address": "na+sm",
            "rpc_timeout_ms": 250, "liveness_ms": 0, "pack_threshold": 0,
            "margo": {"mercury": {"no_bulk_eager": true}}
        }))
        .unwrap();
        assert_eq!(c.version, WireVersion::V0_8);
        assert_eq!(c.address.as_deref(), Some("na+sm"));
        assert_eq!(c.timeout, Duration::from_millis(250));
        assert_eq!(c.liveness, None);
        assert_eq!(c.pack_threshold, 0);
        assert!(c.transport.no_bulk_eager);
        // Null is "not given".
        let c = Config::parse(&json!({"group_file": "g", "wire_version": null, "margo": null}));
        assert_eq!(c.unwrap().version, WireVersion::CURRENT);
        let e = config_error(json!({}));
        assert!(e.contains("group_file") && e.contains("required"), "{e}");
        assert!(config_error(json!("g.json")).contains("JSON object"));
        let e = config_error(json!({"group_file": "g", "rpc_timeout_ms": 0}));
        assert!(
            e.contains("rpc_timeout_ms") && e.contains("positive"),
            "{e}"
        );
        let e = config_error(json!({"group_file": "g", "pack_threshold": -1}));
        assert!(e.contains("pack_threshold"), "{e}");
        let e = config_error(json!({"group_file": "g", "liveness_ms": "5s"}));
        assert!(e.contains("liveness_ms"), "{e}");
        let e = config_error(json!({"group_file": "g", "margo": "na+sm"}));
        assert!(e.contains("margo") && e.contains("object"), "{e}");
        let e = config_error(json!({"group_file": "g", "margo": {"mercury": {"auth_key": 7}}}));
        assert!(e.contains("auth_key"), "{e}");
        let e = config_error(json!({"group_file": "g", "address": ["a"]}));
        assert!(e.contains("address"), "{e}");
    }

    #[test]
    fn a_typo_is_refused_with_the_valid_keys() {
        let e = config_error(json!({"grup_file": "g"}));
        for key in [
            "grup_file",
            "`group_file`",
            "`wire_version`",
            "`address`",
            "`rpc_timeout_ms`",
            "`liveness_ms`",
            "`pack_threshold`",
            "`margo`",
        ] {
            assert!(e.contains(key), "{key} missing from: {e}");
        }
    }

    #[test]
    fn wire_version_must_be_a_string() {
        for v in ["0.8", "0.8.3", "v0.8"] {
            let c = Config::parse(&json!({"group_file": "g", "wire_version": v})).unwrap();
            assert_eq!(c.version, WireVersion::V0_8, "{v}");
        }
        // What `--driver.wire_version 0.8` becomes: refused, saying to quote it.
        let e = config_error(json!({"group_file": "g", "wire_version": 0.8}));
        assert!(
            e.contains("wire_version") && e.contains("string") && e.contains("quote"),
            "{e}"
        );
        let e = config_error(json!({"group_file": "g", "wire_version": 1}));
        assert!(e.contains("wire_version") && e.contains("quote"), "{e}");
        let e = config_error(json!({"group_file": "g", "wire_version": "1.0"}));
        assert!(e.contains("wire version"), "{e}");
        let e = config_error(json!({"group_file": "g", "wire_version": true}));
        assert!(e.contains("wire_version") && e.contains("string"), "{e}");
    }

    #[test]
    fn string_options_take_numbers_as_text() {
        // What a command line makes of `--driver.group_file 2024`.
        let c = Config::parse(&json!({"group_file": 2024, "address": 7})).unwrap();
        assert_eq!(c.group_file, PathBuf::from("2024"));
        assert_eq!(c.address.as_deref(), Some("7"));
    }

    #[test]
    fn topic_options_under_both_names() {
        let (n, spec) = topic_partition_options(&json!({})).unwrap();
        assert_eq!(n, 1);
        assert_eq!(spec.partition_type, "memory");
        assert_eq!(spec.config, json!({}));
        assert!(spec.dependencies.is_empty());
        assert_eq!(spec.pool, None);
        assert_eq!(topic_partition_options(&Value::Null).unwrap().0, 1);
        let (n, spec) = topic_partition_options(&json!({
            "partitions": 3, "partitions_type": "default", "partitions_config": {"a": 1},
            "partitions_dependencies": {"data": ["x", "y"], "meta": "z"},
            "partitions_pool": "p"
        }))
        .unwrap();
        assert_eq!(n, 3);
        assert_eq!(spec.partition_type, "default");
        assert_eq!(spec.config, json!({"a": 1}));
        assert_eq!(spec.dependencies["meta"], json!("z"));
        assert_eq!(spec.pool.as_deref(), Some("p"));
        // This driver's names win over the C++ driver's; null is "not given".
        let (n, spec) = topic_partition_options(&json!({
            "num_partitions": 2, "partitions": 5, "partition_type": null,
            "partitions_type": "default", "partition_pool": ""
        }))
        .unwrap();
        assert_eq!(n, 2);
        assert_eq!(spec.partition_type, "default");
        assert_eq!(spec.pool, None);
        for (bad, key) in [
            (json!({"num_partitions": 0}), "num_partitions"),
            (json!({"partitions": 65537}), "num_partitions"),
            (json!({"partitions": "two"}), "partitions"),
            (json!({"partition_type": ""}), "partition_type"),
            (json!({"partitions_type": 3}), "partitions_type"),
            (json!({"partitions_config": []}), "partitions_config"),
            (
                json!({"partitions_dependencies": {"data": 1}}),
                "partitions_dependencies",
            ),
            (json!({"partitions_pool": false}), "partitions_pool"),
            (json!({"num_partitons": 2}), "`num_partitions`"),
        ] {
            let e = topic_partition_options(&bad).unwrap_err().to_string();
            assert!(e.contains(key), "{bad}: {e}");
        }
    }

    #[test]
    fn producer_and_consumer_options() {
        let p = ProducerOptions::parse(&json!({"x": 1})).unwrap();
        assert!(p.producer_name.is_none() && p.ack_early.is_none());
        let p = ProducerOptions::parse(&json!({"producer_name": 12, "ack_early": true})).unwrap();
        assert_eq!(p.producer_name.as_deref(), Some("12"));
        assert_eq!(p.ack_early, Some(true));
        let e = ProducerOptions::parse(&json!({"ack_early": "yes"}))
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("ack_early"), "{e}");
        assert!(ProducerOptions::parse(&Value::Null).is_ok());
        let batch = |v: Value| ConsumerOptions::parse(&v).map(|c| c.batch_size);
        assert_eq!(batch(json!({"y": 2})).unwrap(), DEFAULT_BATCH_SIZE);
        assert_eq!(batch(json!({"batch_size": 16})).unwrap(), 16);
        for bad in [json!(0), json!(-1), json!("16")] {
            let e = batch(json!({ "batch_size": bad })).unwrap_err().to_string();
            assert!(e.contains("batch_size"), "{e}");
        }
    }
}
