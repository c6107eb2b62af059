//! Options of the files driver.

use crate::error::{Error, Result};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// When the files driver forces data to stable storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FlushBehavior {
    /// After every batch (payload first, then index): nothing acknowledged is ever lost.
    Immediate,
    /// When a producer flushes: everything before a completed flush survives a power loss.
    OnFlush,
    /// Never: the operating system writes back when it likes (survives process crashes only).
    Buffered,
}

/// The longest `lock_timeout_ms` accepted: one week.
const MAX_LOCK_TIMEOUT_MS: u64 = 7 * 24 * 3600 * 1000;

/// Parsed driver options.
#[derive(Clone, Debug)]
pub struct FilesConfig {
    /// Directory holding the topics.
    pub root_path: PathBuf,
    /// Take an exclusive `flock` on a partition around each batch append so that writers in
    /// several processes never interleave. On by default (the C++ reference defaults to off and
    /// then corrupts partitions with several writers); turn it off only on file systems without
    /// `flock` support and with a single writer per partition.
    pub use_file_locking: bool,
    /// Durability policy.
    pub flush_behavior: FlushBehavior,
    /// How long a writer waits for a partition's lock before failing with
    /// [`crate::Error::LockTimeout`] (option `lock_timeout_ms`, default 30 s).
    pub lock_timeout: Duration,
    /// Consumers check each event against the partition's checksum file, where there is one
    /// (option `verify_checksums`, default true).
    pub verify_checksums: bool,
    /// How often a producer renews its liveness lease in `<topic>/producers/` (option
    /// `lease_interval_ms`, default 1000; 0 for no leases: `None`). Consumers'
    /// `liveness_timeout` must be longer.
    pub lease_interval: Option<Duration>,
}

/// The options as written, before checks.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOptions {
    #[serde(default, deserialize_with = "crate::options::optional_text")]
    root_path: Option<String>,
    use_file_locking: Option<bool>,
    flush_behavior: Option<FlushBehavior>,
    lock_timeout_ms: Option<u64>,
    verify_checksums: Option<bool>,
    lease_interval_ms: Option<u64>,
}

impl FilesConfig {
    /// Reads `root_path`, `use_file_locking`, `flush_behavior`, `lock_timeout_ms`,
    /// `verify_checksums` and `lease_interval_ms`. An unknown key (a typo) or a value of the wrong type is an error
    /// naming the option; a non-object gives the defaults, as with the C++ reference.
    pub fn from_json(options: &Value) -> Result<Self> {
        let mut cfg = FilesConfig {
            root_path: PathBuf::from("./diaspora_data"),
            use_file_locking: true,
            flush_behavior: FlushBehavior::Buffered,
            lock_timeout: Duration::from_secs(30),
            verify_checksums: true,
            lease_interval: Some(crate::drivers::heartbeats::DEFAULT_LEASE_INTERVAL),
        };
        if !options.is_object() {
            return Ok(cfg);
        }
        let raw: RawOptions = crate::options::parse("files driver", options)?;
        if let Some(p) = raw.root_path {
            cfg.root_path = PathBuf::from(p);
        }
        if let Some(b) = raw.use_file_locking {
            cfg.use_file_locking = b;
        }
        if let Some(f) = raw.flush_behavior {
            cfg.flush_behavior = f;
        }
        if let Some(ms) = raw.lock_timeout_ms {
            if !(1..=MAX_LOCK_TIMEOUT_MS).contains(&ms) {
                return Err(Error::config(
                    "files driver",
                    format!(
                        "option \"lock_timeout_ms\": must be from 1 to {MAX_LOCK_TIMEOUT_MS} \
                         (milliseconds), not {ms}"
                    ),
                ));
            }
            cfg.lock_timeout = Duration::from_millis(ms);
        }
        if let Some(v) = raw.verify_checksums {
            cfg.verify_checksums = v;
        }
        cfg.lease_interval =
            crate::drivers::heartbeats::lease_interval("files driver", raw.lease_interval_ms)?;
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_and_rejects() {
        let c = FilesConfig::from_json(&json!({"root_path": "/x", "flush_behavior": "on_flush"}))
            .unwrap();
        assert_eq!(c.root_path, PathBuf::from("/x"));
        assert_eq!(c.flush_behavior, FlushBehavior::OnFlush);
        assert!(c.use_file_locking);
        assert!(FilesConfig::from_json(&json!({"flush_behavior": "sometimes"})).is_err());
        assert!(FilesConfig::from_json(&json!({"root_path": [3]})).is_err());
        assert!(FilesConfig::from_json(&json!({"use_file_locking": "yes"})).is_err());
        assert!(c.verify_checksums);
        assert_eq!(c.lock_timeout, Duration::from_secs(30));
        let c = FilesConfig::from_json(&json!({"lock_timeout_ms": 250, "verify_checksums": false}))
            .unwrap();
        assert_eq!(c.lock_timeout, Duration::from_millis(250));
        assert!(!c.verify_checksums);
        for bad in [
            json!(0),
            json!(-1),
            json!(1.5),
            json!("10"),
            json!(1u64 << 60),
        ] {
            let e = FilesConfig::from_json(&json!({ "lock_timeout_ms": bad })).unwrap_err();
            assert!(e.to_string().contains("lock_timeout_ms"), "{e}");
        }
        assert!(FilesConfig::from_json(&json!({"verify_checksums": 1})).is_err());
        // Leases: 1 s by default, 0 turns them off (as on every driver), 1-9 ms is refused.
        assert_eq!(c.lease_interval, Some(Duration::from_secs(1)));
        let c = FilesConfig::from_json(&json!({"lease_interval_ms": 0})).unwrap();
        assert_eq!(c.lease_interval, None);
        let e = FilesConfig::from_json(&json!({"lease_interval_ms": 5})).unwrap_err();
        assert!(e.to_string().contains("0 (no leases) or from 10"), "{e}");
        // A typo is refused with the valid keys, a bad value names its option.
        let e = FilesConfig::from_json(&json!({"root_pth": "/x"}))
            .unwrap_err()
            .to_string();
        assert!(e.contains("root_pth") && e.contains("`root_path`"), "{e}");
        let e = FilesConfig::from_json(&json!({"flush_behavior": "sometimes"}))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("flush_behavior") && e.contains("on_flush"),
            "{e}"
        );
        // A command line makes a number of `--driver.root_path 2024`.
        let c = FilesConfig::from_json(&json!({"root_path": 2024})).unwrap();
        assert_eq!(c.root_path, PathBuf::from("2024"));
        assert_eq!(
            FilesConfig::from_json(&json!(null)).unwrap().root_path,
            PathBuf::from("./diaspora_data")
        );
    }
}
