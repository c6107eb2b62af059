//! Producer liveness on a shared file system: one lease file per producer under
//! `<topic>/producers/`, rewritten by a background thread every `lease_interval_ms`.
//!
//! A lease file holds the producer's [`ProducerInfo`] as JSON (name, host, pid, rank, last ids
//! stored, whether it ended its stream). A clean end removes it; a process that dies leaves it,
//! and its modification time stops moving. Ages are measured against the file system's own
//! clock (the modification time of a probe file written at that moment), not the reader's, so
//! clocks that differ between nodes do not matter. No `flock` is needed: this works on file
//! systems mounted without it.

use crate::backend::{ProducerInfo, ProducerLease};
use crate::error::{Error, Result};
use crate::types::EventId;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, SystemTime};

/// Folder of the lease files, in a topic folder.
pub(super) const LEASE_DIR: &str = "producers";
const LEASE_SUFFIX: &str = ".lease";

struct Inner {
    path: PathBuf,
    info: Mutex<ProducerInfo>,
    stop: Mutex<bool>,
    wake: Condvar,
}

impl Inner {
    /// Rewrites the lease whole (written aside, renamed over it).
    fn write(&self) -> Result<()> {
        let text = {
            let info = self.info.lock().unwrap_or_else(|e| e.into_inner());
            serde_json::to_vec(&*info).map_err(|e| Error::Driver {
                driver: "files",
                message: format!("cannot encode a producer lease: {e}"),
            })?
        };
        let tmp = self.path.with_extension("lease-tmp");
        std::fs::write(&tmp, text).map_err(|e| Error::io("write the producer lease", &tmp, e))?;
        std::fs::rename(&tmp, &self.path)
            .map_err(|e| Error::io("renew the producer lease", &self.path, e))
    }
}

/// A producer's lease file, renewed until dropped.
pub(super) struct FilesLease {
    inner: Arc<Inner>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FilesLease {
    /// Writes the lease of `info` under `topic_dir` and starts renewing it every `interval`.
    pub(super) fn start(topic_dir: &Path, info: &ProducerInfo, interval: Duration) -> Result<Self> {
        let dir = topic_dir.join(LEASE_DIR);
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("create", &dir, e))?;
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let file = format!("{}-{}-{nanos}{LEASE_SUFFIX}", info.host, info.pid);
        let inner = Arc::new(Inner {
            path: dir.join(file),
            info: Mutex::new(info.clone()),
            stop: Mutex::new(false),
            wake: Condvar::new(),
        });
        inner.write()?;
        let i = inner.clone();
        let thread = std::thread::Builder::new()
            .name("diaspora-lease".into())
            .spawn(move || {
                let mut stop = i.stop.lock().unwrap_or_else(|e| e.into_inner());
                while !*stop {
                    stop = i
                        .wake
                        .wait_timeout(stop, interval)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                    if *stop {
                        break;
                    }
                    drop(stop);
                    if let Err(e) = i.write() {
                        eprintln!("diaspora-stream: {e}");
                    }
                    stop = i.stop.lock().unwrap_or_else(|e| e.into_inner());
                }
            })
            .map_err(|e| Error::io("start the lease thread for", &inner.path, e))?;
        Ok(FilesLease {
            inner,
            thread: Some(thread),
        })
    }
}

impl ProducerLease for FilesLease {
    fn stored(&self, partition: usize, last_id: EventId) {
        let mut info = self.inner.info.lock().unwrap_or_else(|e| e.into_inner());
        let e = info.last_ids.entry(partition).or_insert(last_id);
        *e = (*e).max(last_id);
    }

    fn ended(&self) {
        self.inner
            .info
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .ended = true;
        // Written at once: a crash right after the end must not look like a lost producer.
        if let Err(e) = self.inner.write() {
            eprintln!("diaspora-stream: {e}");
        }
    }
}

impl Drop for FilesLease {
    fn drop(&mut self) {
        *self.inner.stop.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.inner.wake.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let _ = std::fs::remove_file(&self.inner.path);
    }
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
