//! Producer liveness on a shared file system: one lease file per producer under
//! `<topic>/producers/`, rewritten by a background thread every `lease_interval_ms`.
//!
//! A lease file holds the producer's heartbeat as JSON (name, host, pid, rank, last ids
//! stored, whether it ended its stream; see [`crate::drivers::heartbeats`]). A clean end
//! removes it; a process that dies leaves it, and its modification time stops moving. Ages are measured against the file system's own
//! clock (the modification time of a probe file written at that moment), not the reader's, so
//! clocks that differ between nodes do not matter. No `flock` is needed: this works on file
//! systems mounted without it.

use crate::backend::ProducerInfo;
use crate::drivers::heartbeats::{producer_key, Heartbeat, HeartbeatStore, Renewer};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

/// Folder of the lease files, in a topic folder.
pub(super) const LEASE_DIR: &str = "producers";
const LEASE_SUFFIX: &str = ".lease";

/// Lease files of one topic folder, as a [`HeartbeatStore`].
struct LeaseFiles {
    dir: PathBuf,
}

impl LeaseFiles {
    fn path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}{LEASE_SUFFIX}"))
    }
}

impl HeartbeatStore for LeaseFiles {
    /// Rewrites the lease whole (written aside, renamed over it).
    fn write(&self, key: &str, beat: &Heartbeat) -> Result<()> {
        let path = self.path(key);
        let tmp = path.with_extension("lease-tmp");
        std::fs::write(&tmp, beat.to_json())
            .map_err(|e| Error::io("write the producer lease", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("renew the producer lease", &path, e))
    }

    fn withdraw(&self, key: &str) -> Result<()> {
        let path = self.path(key);
        match std::fs::remove_file(&path) {
            // The topic was deleted meanwhile: nothing left to withdraw.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            r => r.map_err(|e| Error::io("remove the producer lease", &path, e)),
        }
    }
}

/// Writes the lease of `info` under `topic_dir` and starts renewing it every `interval`.
pub(super) fn start(topic_dir: &Path, info: &ProducerInfo, interval: Duration) -> Result<Renewer> {
    let dir = topic_dir.join(LEASE_DIR);
    std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
    Renewer::start(
        "files",
        Arc::new(LeaseFiles { dir }),
        producer_key(info),
        info,
        interval,
    )
}

/// The file system's "now" in `dir`: the modification time of a probe file written there
/// (this process's clock where it cannot write).
fn fs_now(dir: &Path) -> Result<SystemTime> {
    let probe = dir.join(format!(
        ".probe-{}-{:?}.tmp",
        std::process::id(),
        std::thread::current().id()
    ));
    // A reader without write access (a read-only mount) falls back to its own clock.
    if std::fs::write(&probe, b"now").is_err() {
        return Ok(SystemTime::now());
    }
    let now = std::fs::metadata(&probe)
        .and_then(|m| m.modified())
        .unwrap_or_else(|_| SystemTime::now());
    let _ = std::fs::remove_file(&probe);
    Ok(now)
}

/// Every lease under `topic_dir`, with how long ago it was last renewed.
pub(super) fn read_leases(topic_dir: &Path) -> Result<Vec<(ProducerInfo, Duration)>> {
    let dir = topic_dir.join(LEASE_DIR);
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list the producer leases in", &dir, e)),
    };
    let mut leases = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list the producer leases in", &dir, e))?;
        let path = entry.path();
        if !path.to_string_lossy().ends_with(LEASE_SUFFIX) {
            continue;
        }
        // A lease removed or renamed over meanwhile is skipped (its producer is alive or gone).
        let Ok(modified) = entry.metadata().and_then(|m| m.modified()) else {
            continue;
        };
        let Ok(bytes) = std::fs::read(&path) else {
            continue;
        };
        let info: ProducerInfo = serde_json::from_slice(&bytes)
            .map_err(|e| Error::corrupt(&path, 0, format!("not a producer lease: {e}")))?;
        leases.push((info, modified));
    }
    if leases.is_empty() {
        return Ok(Vec::new());
    }
    let now = fs_now(&dir)?;
    Ok(leases
        .into_iter()
        .map(|(info, modified)| (info, now.duration_since(modified).unwrap_or_default()))
        .collect())
}
