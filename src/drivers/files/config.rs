//! Options of the files driver.

use crate::error::{Error, Result};
use serde_json::Value;
use std::path::PathBuf;

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
}

impl FilesConfig {
    /// Reads `root_path`, `use_file_locking` and `flush_behavior`; unknown keys are ignored and a
    /// non-object gives the defaults.
    pub fn from_json(options: &Value) -> Result<Self> {
        let mut cfg = FilesConfig {
            root_path: PathBuf::from("./diaspora_data"),
            use_file_locking: true,
            flush_behavior: FlushBehavior::Buffered,
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
        assert_eq!(
            FilesConfig::from_json(&json!(null)).unwrap().root_path,
            PathBuf::from("./diaspora_data")
        );
    }
}
