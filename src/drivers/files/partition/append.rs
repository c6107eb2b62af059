//! Appending a batch: under the lock, after recovering the log's tail, data and metadata first,
//! checksums, then index records.

use super::PartitionFiles;
use crate::backend::EventBatch;
use crate::drivers::files::config::FlushBehavior;
use crate::drivers::files::file::NamedFile;
use crate::drivers::files::index::{IndexRecord, INDEX_RECORD_SIZE};
use crate::drivers::files::open_files::{OpenFiles, INDEX_FILE};
use crate::drivers::files::recovery::{recover, ValidEnd};
use crate::drivers::files::sums::{crc, crc_of, SumRecord, SUM_RECORD_SIZE};
use crate::error::{Error, Result};
use crate::types::EventId;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// Where a handle's last append left the log: the lengths it left the index and checksum files
/// at, and the end of its last event. Every appender changes one of those lengths (checksum
/// records are written before index records, so one that stops between the two has changed the
/// checksum file), so while both are as left, and the metadata and data files still hold the
/// last event's bytes, the log still ends there and its last index record need not be read and
/// checked again. (An appender that stopped after writing only metadata or data changed
/// neither length but the payload files', which sends this handle to a full reading of the
/// tail.)
pub(super) struct KnownTail {
    /// The files this is about (a handle that reopens them starts over).
    files: Weak<OpenFiles>,
    index_len: u64,
    sums_len: Option<u64>,
    end: ValidEnd,
}

impl PartitionFiles {
    /// Appends a batch; returns the id of its first event.
    pub(crate) fn append_batch(&self, batch: &EventBatch) -> Result<EventId> {
        if let Some(i) = (0..batch.len()).find(|&i| batch.metadata_of(i).is_empty()) {
            return Err(Error::InvalidArgument(format!(
                "files driver: event {i} of the batch serialized to empty metadata, which the \
                 format cannot store (every event needs at least one metadata byte)"
            )));
        }
        // Appenders through this handle queue here; the flock excludes other open files.
        let deadline = Instant::now() + self.settings.lock_timeout;
        let mut known = loop {
            match self.append_lock.try_lock() {
                Ok(g) => break g,
                Err(std::sync::TryLockError::Poisoned(e)) => break e.into_inner(),
                Err(std::sync::TryLockError::WouldBlock) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_micros(50));
                }
                Err(std::sync::TryLockError::WouldBlock) => {
                    return Err(Error::LockTimeout {
                        what: self.label.clone(),
                        path: self.dir.join(INDEX_FILE),
                        waited: self.settings.lock_timeout,
                        holder: Some("another appender of this process".into()),
                    })
                }
            }
        };
        for _ in 0..3 {
            let files = self.writer()?;
            let mut index_len = None;
            if self.settings.use_file_locking {
                files.index.lock(self.settings.lock_timeout, &self.label)?;
                // A lock on an index that was deleted or replaced excludes nobody.
                match files.index.current_len() {
                    Ok(Some(len)) => index_len = Some(len),
                    Ok(None) => {
                        files.index.unlock();
                        self.forget(&files);
                        continue;
                    }
                    Err(e) => {
                        files.index.unlock();
                        return Err(e);
                    }
                }
            }
            let result = self.append_locked(&files, batch, index_len, &mut known);
            if self.settings.use_file_locking {
                files.index.unlock();
            }
            return result;
        }
        Err(Error::corrupt(
            self.dir.join(INDEX_FILE),
            0,
            format!(
                "{}: the index keeps being replaced while appending",
                self.label
            ),
        ))
    }

    /// Where the log ends, under the lock: where this handle's last append left it when the
    /// index and checksum files still have the lengths it left (`index_len`: the index's, when
    /// already known), else found again from the files (see `recovery`).
    fn tail(
        &self,
        f: &Arc<OpenFiles>,
        index_len: Option<u64>,
        known: &Option<KnownTail>,
    ) -> Result<ValidEnd> {
        if let Some(k) = known
            .as_ref()
            .filter(|k| k.files.as_ptr() == Arc::as_ptr(f))
        {
            let index_len = match index_len {
                Some(len) => len,
                None => f.index.len()?,
            };
            let sums_len = f.sums.as_ref().map(NamedFile::len).transpose()?;
            if index_len == k.index_len && sums_len == k.sums_len {
                // Payload files of any other length than this handle left them: cut short (as
                // by a power loss after the index reached disk, and then perhaps an event of
                // another writer stored in place of the lost one), or holding the bytes of an
                // appender that stopped before its checksums: the tail is read again.
                let (metadata_end, data_end) = k.end.ends;
                if f.metadata.len()? == metadata_end && f.data.len()? == data_end {
                    return Ok(k.end);
                }
            }
        }
        recover(f, &self.label)
    }

    fn append_locked(
        &self,
        f: &Arc<OpenFiles>,
        batch: &EventBatch,
        index_len: Option<u64>,
        known: &mut Option<KnownTail>,
    ) -> Result<EventId> {
        // Forgotten until this append has succeeded: a failed one leaves the files unknown.
        let last = known.take();
        let tail = self.tail(f, index_len, &last)?;
        let end = self.append_at(f, batch, &tail)?;
        *known = Some(KnownTail {
            files: Arc::downgrade(f),
            index_len: end.events * INDEX_RECORD_SIZE,
            sums_len: f.sums.as_ref().map(|_| end.events * SUM_RECORD_SIZE),
            end,
        });
        Ok(tail.events)
    }

    /// Writes the batch after `tail`; returns where the log ends after it.
    fn append_at(&self, f: &OpenFiles, batch: &EventBatch, tail: &ValidEnd) -> Result<ValidEnd> {
        /// Data is written in groups of about this many bytes, each checksummed just before
        /// it is written, while it is in the processor's cache.
        const GROUP_BYTES: usize = 1 << 20;
        let mut records = Vec::with_capacity(batch.len() * INDEX_RECORD_SIZE as usize);
        let (mut md_off, mut data_off) = tail.ends;
        for i in 0..batch.len() {
            let md_size = batch.metadata_of(i).len() as u64;
            let data_size = batch.data_of(i).size() as u64;
            IndexRecord {
                metadata_offset: md_off,
                metadata_size: md_size,
                data_offset: data_off,
                data_size,
            }
            .encode(&mut records);
            md_off += md_size;
            data_off += data_size;
        }
        let index_offset = tail.events * INDEX_RECORD_SIZE;
        let sums_offset = tail.events * SUM_RECORD_SIZE;
        // Space for the records first: once the payload is written, they cannot fail for lack
        // of space (and be half visible).
        f.index.reserve(index_offset, records.len() as u64);
        if let Some(file) = &f.sums {
            file.reserve(sums_offset, batch.len() as u64 * SUM_RECORD_SIZE);
        }
        f.metadata
            .write_all_at(batch.metadata_bytes(), tail.ends.0)?;
        let mut sums = Vec::new();
        if f.sums.is_some() {
            sums.reserve(batch.len() * SUM_RECORD_SIZE as usize);
        }
        let mut group: Vec<&[u8]> = Vec::with_capacity(batch.len());
        let mut group_bytes = 0;
        let mut at = tail.ends.1;
        for i in 0..batch.len() {
            let view = batch.data_of(i);
            if f.sums.is_some() {
                let md = batch.metadata_of(i);
                SumRecord {
                    metadata_size: md.len() as u64,
                    data_size: view.size() as u64,
                    crcs: Some((crc(md), crc_of(view.segments().iter().map(|b| &b[..])))),
                }
                .encode(&mut sums);
            }
            group.extend(view.segments().iter().map(|b| &b[..]));
            group_bytes += view.size();
            if group_bytes >= GROUP_BYTES || i + 1 == batch.len() {
                f.data.write_vectored_at(&group, at)?;
                at += group_bytes as u64;
                group.clear();
                group_bytes = 0;
            }
        }
        if self.settings.flush_behavior == FlushBehavior::Immediate {
            f.metadata.sync()?;
            f.data.sync()?;
        }
        if let Some(file) = &f.sums {
            let written = file.write_all_at(&sums, sums_offset).and_then(|()| {
                if self.settings.flush_behavior == FlushBehavior::Immediate {
                    file.sync()
                } else {
                    Ok(())
                }
            });
            if let Err(e) = written {
                // The batch failed: its checksum records must not restore it later.
                let _ = file.file.set_len(sums_offset);
                return Err(e);
            }
        }
        if let Err(e) = f.index.write_all_at(&records, index_offset) {
            // Never leave part of this batch visible, nor restorable from its checksums.
            let _ = f.index.file.set_len(index_offset);
            if let Some(file) = &f.sums {
                let _ = file.file.set_len(sums_offset);
            }
            return Err(e);
        }
        if self.settings.flush_behavior == FlushBehavior::Immediate {
            f.index.sync()?;
        }
        Ok(ValidEnd {
            events: tail.events + batch.len() as u64,
            ends: (md_off, data_off),
        })
    }
}
