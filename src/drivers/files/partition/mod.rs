//! One partition's files: `index`, `metadata`, `data` and (ours) `checksums`.
//!
//! # Writers
//!
//! Appends run under an exclusive `flock` on the index file (when enabled, waited for at most
//! `lock_timeout`) and start by re-reading the tail of the log from the files themselves, so
//! any number of writer handles, in any number of processes, append one after the other and
//! each batch learns its true first id. (A handle skips reading the last index record again when
//! the index, checksum, metadata and data files all still have the lengths its own last append
//! left them at, as every appender changes at least one of them.) A batch writes its metadata
//! and data first, then its checksum records, and its index records last: a reader never sees
//! an event before its bytes are there.
//!
//! # The valid log
//!
//! See `index` for what makes an index record valid, torn or corrupt, and `recovery` for what a
//! writer does with torn records and lost index records before appending. Readers deliver the
//! events before a bad record; a zeroed tail is the end of the log, anything else is reported
//! when it is the first event asked for. A reader that sees something torn or damaged looks
//! again under a shared lock, so that a writer dropping a torn tail is never mistaken for damage.
//! A writer never writes over bytes that an intact event points to.
//!
//! # Checksums
//!
//! With a checksum file (see `sums`), readers also verify the CRC-32C of each event's metadata
//! and, when they read all of it, its data, and report a mismatch naming the event and the file.
//! A writer that finds more checksum records than index records (a crash between the two writes,
//! or a truncated index) verifies the bytes they describe and restores their index records.
//!
//! # Readers create nothing
//!
//! Files are opened read-only and on demand by readers: a partition without files is empty (the
//! C++ reference creates them only when a topic is opened), a partition whose index is missing
//! while its metadata is not is an error. Writers open the files for writing, creating them.

use crate::drivers::files::buffers::BufferPool;
use crate::drivers::files::config::FlushBehavior;
use crate::drivers::files::index::INDEX_RECORD_SIZE;
use crate::drivers::files::open_files::OpenFiles;
use crate::error::Result;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

mod append;
mod read;

/// Settings of one partition, from the driver's options and the topic's description.
#[derive(Clone, Copy, Debug)]
pub(crate) struct PartitionSettings {
    pub use_file_locking: bool,
    pub flush_behavior: FlushBehavior,
    pub lock_timeout: Duration,
    /// Writers keep a checksum file.
    pub checksums: bool,
    /// Readers verify checksums.
    pub verify: bool,
}

/// One partition: its folder and, once needed, its open files.
pub(crate) struct PartitionFiles {
    dir: PathBuf,
    /// "partition P of topic \"T\"", for messages.
    label: String,
    settings: PartitionSettings,
    files: RwLock<Option<Arc<OpenFiles>>>,
    /// Buffers fetches read into, reused once their events are dropped.
    buffers: BufferPool,
    /// Serializes appends through this handle (the flock only excludes other open files), and
    /// holds where its last append left the log.
    append_lock: Mutex<Option<append::KnownTail>>,
}

impl PartitionFiles {
    /// A partition in `dir`; no file is opened or created yet.
    pub(crate) fn new(dir: &Path, label: String, settings: PartitionSettings) -> Self {
        PartitionFiles {
            dir: dir.to_path_buf(),
            label,
            settings,
            files: RwLock::new(None),
            buffers: BufferPool::default(),
            append_lock: Mutex::new(None),
        }
    }

    /// The files for reading: the cached ones, or opened read-only. `None`: no files yet.
    pub(super) fn reader(&self) -> Result<Option<Arc<OpenFiles>>> {
        if let Some(f) = &*self.files.read().unwrap_or_else(|e| e.into_inner()) {
            return Ok(Some(f.clone()));
        }
        let Some(opened) = OpenFiles::open_read_only(&self.dir)? else {
            return Ok(None);
        };
        let mut slot = self.files.write().unwrap_or_else(|e| e.into_inner());
        Ok(Some(slot.get_or_insert_with(|| Arc::new(opened)).clone()))
    }

    /// The files for writing (opened, and created, on first use).
    pub(super) fn writer(&self) -> Result<Arc<OpenFiles>> {
        if let Some(f) = &*self.files.read().unwrap_or_else(|e| e.into_inner()) {
            if f.writable {
                return Ok(f.clone());
            }
        }
        let opened = Arc::new(OpenFiles::open_writable(
            &self.dir,
            self.settings.checksums,
        )?);
        let mut slot = self.files.write().unwrap_or_else(|e| e.into_inner());
        match &*slot {
            Some(f) if f.writable => Ok(f.clone()),
            _ => {
                *slot = Some(opened.clone());
                Ok(opened)
            }
        }
    }

    /// Number of index records (complete ones; a torn tail is counted until a writer drops it).
    pub(crate) fn num_events(&self) -> Result<u64> {
        match self.reader()? {
            Some(f) => Ok(f.index.len()? / INDEX_RECORD_SIZE),
            None => Ok(0),
        }
    }

    /// Drops the cached files if they are `f` (the index was replaced: open the new one).
    pub(super) fn forget(&self, f: &Arc<OpenFiles>) {
        let mut slot = self.files.write().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_some_and(|cached| Arc::ptr_eq(cached, f)) {
            *slot = None;
        }
    }

    /// Forces written batches to stable storage unless the policy is `buffered`.
    pub(crate) fn sync(&self) -> Result<()> {
        if self.settings.flush_behavior == FlushBehavior::Buffered {
            return Ok(());
        }
        let Some(f) = self.reader()? else {
            return Ok(());
        };
        if !f.writable {
            return Ok(());
        }
        f.metadata.sync()?;
        f.data.sync()?;
        if let Some(s) = &f.sums {
            s.sync()?;
        }
        f.index.sync()
    }
}
