//! Options of the files driver.

use crate::error::{Error, Result};
use serde_json::Value;
use std::path::PathBuf;
use std::time::Duration;

/// When the files driver forces data to stable storage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
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
}

impl FilesConfig {
    /// Reads `root_path`, `use_file_locking`, `flush_behavior`, `lock_timeout_ms` and
    /// `verify_checksums`; unknown keys are ignored and a non-object gives the defaults.
    pub fn from_json(options: &Value) -> Result<Self> {
        let mut cfg = FilesConfig {
            root_path: PathBuf::from("./diaspora_data"),
            use_file_locking: true,
            flush_behavior: FlushBehavior::Buffered,
            lock_timeout: Duration::from_secs(30),
            verify_checksums: true,
        };
        let Some(obj) = options.as_object() else {
            return Ok(cfg);
        };
        if let Some(v) = obj.get("root_path") {
            cfg.root_path = PathBuf::from(v.as_str().ok_or_else(|| {
                Error::config(
                    "files driver",
                    format!("\"root_path\" must be a string, not {v}"),
                )
            })?);
        }
        if let Some(v) = obj.get("use_file_locking") {
            cfg.use_file_locking = v.as_bool().ok_or_else(|| {
                Error::config(
                    "files driver",
                    format!("\"use_file_locking\" must be a boolean, not {v}"),
                )
            })?;
        }
        if let Some(v) = obj.get("lock_timeout_ms") {
            cfg.lock_timeout = match v.as_u64() {
                Some(ms) if (1..=MAX_LOCK_TIMEOUT_MS).contains(&ms) => Duration::from_millis(ms),
                _ => {
                    return Err(Error::config(
                        "files driver",
                        format!(
                            "\"lock_timeout_ms\" must be an integer from 1 to \
                             {MAX_LOCK_TIMEOUT_MS} (milliseconds), not {v}"
                        ),
                    ))
                }
            };
        }
        if let Some(v) = obj.get("verify_checksums") {
            cfg.verify_checksums = v.as_bool().ok_or_else(|| {
                Error::config(
                    "files driver",
                    format!("\"verify_checksums\" must be a boolean, not {v}"),
                )
            })?;
        }
        if let Some(v) = obj.get("flush_behavior") {
            cfg.flush_behavior = match v.as_str() {
                Some("immediate") => FlushBehavior::Immediate,
                Some("on_flush") => FlushBehavior::OnFlush,
                Some("buffered") => FlushBehavior::Buffered,
                _ => {
                    return Err(Error::config(
                        "files driver",
                        format!(
                            "invalid flush_behavior {v}; valid values are \"immediate\", \"on_flush\", \"buffered\""
                        ),
                    ))
                }
            };
        }
        Ok(cfg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_and_rejects() {
        let c = FilesConfig::from_json(
            &json!({"root_path": "/x", "flush_behavior": "on_flush", "other": 1}),
        )
        .unwrap();
        assert_eq!(c.root_path, PathBuf::from("/x"));
        assert_eq!(c.flush_behavior, FlushBehavior::OnFlush);
        assert!(c.use_file_locking);
        assert!(FilesConfig::from_json(&json!({"flush_behavior": "sometimes"})).is_err());
        assert!(FilesConfig::from_json(&json!({"root_path": 3})).is_err());
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
        assert_eq!(
            FilesConfig::from_json(&json!(null)).unwrap().root_path,
            PathBuf::from("./diaspora_data")
        );
    }
}
