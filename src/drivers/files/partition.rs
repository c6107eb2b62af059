//! One partition's three files: `index`, `metadata` and `data`.
//!
//! Appends run under an exclusive `flock` on the index file (when enabled) and always start by
//! re-reading the tail of the log from the files themselves, so any number of writer handles, in
//! any number of processes, append one after the other and each batch learns its true first id.
//! A batch writes its metadata and data first and its index records last: a reader (which trusts
//! only complete index records) never sees an event before its bytes are there. A writer killed in
//! the middle leaves either a partial index record or bytes past the last indexed event; readers
//! ignore both, and the next writer truncates the partial record and overwrites the stray bytes.

use super::config::FlushBehavior;
use crate::driver::{EventBatch, StoredEvent};
use crate::error::{Error, Result};
use crate::types::EventId;
use bytes::Bytes;
use std::fs::{File, OpenOptions};
use std::io::IoSlice;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Size of one index record: metadata offset, metadata size, data offset, data size (u64 LE).
pub(crate) const INDEX_RECORD_SIZE: u64 = 32;

/// Linux accepts at most this many iovecs per `pwritev`.
const MAX_IOVECS: usize = 1024;

/// A fetch reads at most this many data bytes at once (larger events are read one by one).
const MAX_FETCH_DATA_BYTES: u64 = 64 << 20;

/// A decoded index record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct IndexRecord {
    pub metadata_offset: u64,
    pub metadata_size: u64,
    pub data_offset: u64,
    pub data_size: u64,
}

impl IndexRecord {
    pub(crate) fn decode(b: &[u8]) -> IndexRecord {
        let f = |i: usize| u64::from_le_bytes(b[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
        IndexRecord {
            metadata_offset: f(0),
            metadata_size: f(1),
            data_offset: f(2),
            data_size: f(3),
        }
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        for v in [
            self.metadata_offset,
            self.metadata_size,
            self.data_offset,
            self.data_size,
        ] {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }

    fn metadata_end(&self) -> Option<u64> {
        self.metadata_offset.checked_add(self.metadata_size)
    }

    fn data_end(&self) -> Option<u64> {
        self.data_offset.checked_add(self.data_size)
    }
}

struct NamedFile {
    file: File,
    path: PathBuf,
}

impl NamedFile {
    fn open(path: PathBuf) -> Result<NamedFile> {
        let file = match OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
        {
            Ok(f) => f,
            // Read-only file systems and read-only copies can still be consumed.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::PermissionDenied | std::io::ErrorKind::ReadOnlyFilesystem
                ) && path.exists() =>
            {
                File::open(&path).map_err(|e| Error::io("open", &path, e))?
            }
            Err(e) => return Err(Error::io("open", &path, e)),
        };
        Ok(NamedFile { file, path })
    }

    fn len(&self) -> Result<u64> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| Error::io("stat", &self.path, e))
    }

    fn read_exact_at(&self, buf: &mut [u8], offset: u64, what: &str) -> Result<()> {
        self.file.read_exact_at(buf, offset).map_err(|e| {
            if e.kind() == std::io::ErrorKind::UnexpectedEof {
                Error::corrupt(
                    &self.path,
                    offset,
                    format!("file ends before the {} bytes of {what}", buf.len()),
                )
            } else {
                Error::io("read", &self.path, e)
            }
        })
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.file
            .write_all_at(buf, offset)
            .map_err(|e| Error::io("write to", &self.path, e))
    }

    /// Writes the slices back to back from `offset`, at most `MAX_IOVECS` per system call.
    fn write_vectored_at(&self, slices: &[&[u8]], mut offset: u64) -> Result<()> {
        for chunk in slices.chunks(MAX_IOVECS) {
            let mut iov: Vec<IoSlice<'_>> = chunk.iter().map(|s| IoSlice::new(s)).collect();
            let mut rest: &mut [IoSlice<'_>] = &mut iov;
            while !rest.is_empty() {
                let n = rustix::io::pwritev(&self.file, rest, offset)
                    .map_err(|e| Error::io("write to", &self.path, e.into()))?;
                if n == 0 {
                    return Err(Error::io(
                        "write to",
                        &self.path,
                        std::io::Error::new(std::io::ErrorKind::WriteZero, "wrote 0 bytes"),
                    ));
                }
                offset += n as u64;
                IoSlice::advance_slices(&mut rest, n);
            }
        }
        Ok(())
    }

    fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io("sync", &self.path, e))
    }
}

/// Open files of one partition.
pub(crate) struct PartitionFiles {
    index: NamedFile,
    metadata: NamedFile,
    data: NamedFile,
    use_file_locking: bool,
    flush_behavior: FlushBehavior,
    /// Serializes appends through this handle (the flock only excludes other open files).
    append_lock: Mutex<()>,
}

/// Where the next batch goes.
struct Tail {
    num_events: u64,
    metadata_end: u64,
    data_end: u64,
}

impl PartitionFiles {
    /// Opens (creating if needed) the files in `dir`.
    pub(crate) fn open(
        dir: &Path,
        use_file_locking: bool,
        flush_behavior: FlushBehavior,
    ) -> Result<Self> {
        Ok(PartitionFiles {
            data: NamedFile::open(dir.join("data"))?,
            metadata: NamedFile::open(dir.join("metadata"))?,
            index: NamedFile::open(dir.join("index"))?,
            use_file_locking,
            flush_behavior,
            append_lock: Mutex::new(()),
        })
    }

    /// Number of complete events in the index.
    pub(crate) fn num_events(&self) -> Result<u64> {
        Ok(self.index.len()? / INDEX_RECORD_SIZE)
    }

    fn read_record(&self, id: u64) -> Result<IndexRecord> {
        let mut b = [0u8; INDEX_RECORD_SIZE as usize];
        self.index
            .read_exact_at(&mut b, id * INDEX_RECORD_SIZE, "an index record")?;
        Ok(IndexRecord::decode(&b))
    }

    /// Finds the end of the valid log and repairs what a crashed writer left behind. Must be
    /// called with the append lock (and the flock) held.
    fn recover_tail(&self) -> Result<Tail> {
        let index_len = self.index.len()?;
        let metadata_len = self.metadata.len()?;
        let data_len = self.data.len()?;
        let mut n = index_len / INDEX_RECORD_SIZE;
        // Drop trailing records whose bytes are not all there (only possible after a crash of the
        // machine with `buffered` durability): readers would otherwise fail on them.
        let mut last = None;
        while n > 0 {
            let r = self.read_record(n - 1)?;
            let complete = r.metadata_end().is_some_and(|e| e <= metadata_len)
                && r.data_end().is_some_and(|e| e <= data_len);
            if complete {
                last = Some(r);
                break;
            }
            n -= 1;
        }
        if n * INDEX_RECORD_SIZE != index_len {
            self.index
                .file
                .set_len(n * INDEX_RECORD_SIZE)
                .map_err(|e| Error::io("truncate the torn tail of", &self.index.path, e))?;
        }
        Ok(match last {
            Some(r) => Tail {
                num_events: n,
                metadata_end: r.metadata_offset + r.metadata_size,
                data_end: r.data_offset + r.data_size,
            },
            None => Tail {
                num_events: 0,
                metadata_end: 0,
                data_end: 0,
            },
        })
    }

    /// Appends a batch; returns the id of its first event.
    pub(crate) fn append_batch(&self, batch: &EventBatch) -> Result<EventId> {
        let _guard = self.append_lock.lock().unwrap_or_else(|e| e.into_inner());
        if self.use_file_locking {
            self.index.file.lock().map_err(|e| {
                Error::io(
                    "lock (flock; mount the file system with flock support, or set \
                     use_file_locking=false with a single writer per partition)",
                    &self.index.path,
                    e,
                )
            })?;
        }
        let result = self.append_locked(batch);
        if self.use_file_locking {
            let _ = self.index.file.unlock();
        }
        result
    }

    fn append_locked(&self, batch: &EventBatch) -> Result<EventId> {
        let tail = self.recover_tail()?;
        let mut records = Vec::with_capacity(batch.len() * INDEX_RECORD_SIZE as usize);
        let mut data_slices: Vec<&[u8]> = Vec::with_capacity(batch.len());
        let mut md_off = tail.metadata_end;
        let mut data_off = tail.data_end;
        for i in 0..batch.len() {
            let md_size = batch.metadata_of(i).len() as u64;
            let view = batch.data_of(i);
            let data_size = view.size() as u64;
            IndexRecord {
                metadata_offset: md_off,
                metadata_size: md_size,
                data_offset: data_off,
                data_size,
            }
            .encode(&mut records);
            md_off += md_size;
            data_off += data_size;
            data_slices.extend(view.segments().iter().map(|b| &b[..]));
        }
        self.metadata
            .write_all_at(batch.metadata_bytes(), tail.metadata_end)?;
        self.data.write_vectored_at(&data_slices, tail.data_end)?;
        if self.flush_behavior == FlushBehavior::Immediate {
            self.metadata.sync()?;
            self.data.sync()?;
        }
        let index_offset = tail.num_events * INDEX_RECORD_SIZE;
        if let Err(e) = self.index.write_all_at(&records, index_offset) {
            // Never leave part of this batch visible.
            let _ = self.index.file.set_len(index_offset);
            return Err(e);
        }
        if self.flush_behavior == FlushBehavior::Immediate {
            self.index.sync()?;
        }
        Ok(tail.num_events)
    }

    /// Forces written batches to stable storage unless the policy is `buffered`.
    pub(crate) fn sync(&self) -> Result<()> {
        if self.flush_behavior == FlushBehavior::Buffered {
            return Ok(());
        }
        self.metadata.sync()?;
        self.data.sync()?;
        self.index.sync()
    }

    /// Reads up to `max_events` events from `from`.
    pub(crate) fn fetch(
        &self,
        from: EventId,
        max_events: usize,
        with_data: bool,
    ) -> Result<Vec<StoredEvent>> {
        let available = self.num_events()?;
        if from >= available || max_events == 0 {
            return Ok(Vec::new());
        }
        let count = (available - from).min(max_events as u64);
        let mut raw = vec![0u8; (count * INDEX_RECORD_SIZE) as usize];
        self.index
            .read_exact_at(&mut raw, from * INDEX_RECORD_SIZE, "index records")?;
        let records: Vec<IndexRecord> = raw
            .chunks_exact(INDEX_RECORD_SIZE as usize)
            .map(IndexRecord::decode)
            .collect();
        let metadata_len = self.metadata.len()?;
        let data_len = self.data.len()?;
        // Deliver the good events before a damaged record; the damaged one is reported when it
        // is the first one asked for.
        let mut records = records;
        for (i, r) in records.iter().enumerate() {
            let id = from + i as u64;
            let problem = if r.metadata_end().is_none_or(|e| e > metadata_len) {
                Some(format!(
                    "event {id} claims metadata bytes [{}, +{}) but {} has {metadata_len} bytes",
                    r.metadata_offset,
                    r.metadata_size,
                    self.metadata.path.display()
                ))
            } else if r.data_end().is_none_or(|e| e > data_len) {
                Some(format!(
                    "event {id} claims data bytes [{}, +{}) but {} has {data_len} bytes",
                    r.data_offset,
                    r.data_size,
                    self.data.path.display()
                ))
            } else {
                None
            };
            if let Some(reason) = problem {
                if i == 0 {
                    return Err(Error::corrupt(
                        &self.index.path,
                        id * INDEX_RECORD_SIZE,
                        reason,
                    ));
                }
                records.truncate(i);
                break;
            }
        }
        let metadata = read_span(
            &self.metadata,
            &records,
            |r| (r.metadata_offset, r.metadata_size),
            "metadata",
        )?;
        // Full data is read in one go when wanted, within a byte budget.
        let mut data_count = 0;
        if with_data {
            let start = records[0].data_offset;
            for r in &records {
                let end = r.data_offset + r.data_size;
                if data_count > 0 && (r.data_offset < start || end - start > MAX_FETCH_DATA_BYTES) {
                    break;
                }
                data_count += 1;
            }
        }
        let data = if data_count > 0 {
            Some(read_span(
                &self.data,
                &records[..data_count],
                |r| (r.data_offset, r.data_size),
                "data",
            )?)
        } else {
            None
        };
        let events = records
            .iter()
            .enumerate()
            .map(|(i, r)| StoredEvent {
                descriptor: None,
                id: from + i as u64,
                metadata: metadata[i].clone(),
                data_size: r.data_size,
                data_location: r.data_offset,
                data: data.as_ref().and_then(|d| d.get(i).cloned()),
            })
            .collect();
        Ok(events)
    }

    /// Reads byte ranges of one event's data into `dst`.
    pub(crate) fn read_data(
        &self,
        event: &StoredEvent,
        ranges: &[(u64, u64)],
        dst: &mut [&mut [u8]],
    ) -> Result<()> {
        let data_len = self.data.len()?;
        if event
            .data_location
            .checked_add(event.data_size)
            .is_none_or(|e| e > data_len)
        {
            return Err(Error::corrupt(
                &self.data.path,
                event.data_location,
                format!(
                    "event {} has {} data bytes past the end of the file",
                    event.id, event.data_size
                ),
            ));
        }
        let total: u64 = ranges.iter().map(|r| r.1).sum();
        let capacity: usize = dst.iter().map(|d| d.len()).sum();
        if (capacity as u64) < total {
            return Err(Error::DataSelection(format!(
                "destination holds {capacity} bytes but {total} were selected"
            )));
        }
        if let (Some(first), Some(last)) = (ranges.first(), ranges.last()) {
            let span = last.0 + last.1 - first.0.min(last.0);
            // Many small ranges close together: one read and a copy beats one call per range.
            if ranges.len() > 1 && last.0 >= first.0 && (span <= 64 << 10 || span <= 2 * total) {
                let mut buf = vec![0u8; span as usize];
                self.data
                    .read_exact_at(&mut buf, event.data_location + first.0, "event data")?;
                let shifted: Vec<(u64, u64)> =
                    ranges.iter().map(|&(o, s)| (o - first.0, s)).collect();
                crate::consumer::scatter(&buf, &shifted, dst);
                return Ok(());
            }
        }
        // Otherwise read each range straight into the destination segments.
        let mut seg = 0usize;
        let mut pos = 0usize;
        for &(o, s) in ranges {
            let mut file_off = event.data_location + o;
            let mut left = s as usize;
            while left > 0 {
                if seg >= dst.len() {
                    break;
                }
                let room = dst[seg].len() - pos;
                if room == 0 {
                    seg += 1;
                    pos = 0;
                    continue;
                }
                let n = room.min(left);
                self.data
                    .read_exact_at(&mut dst[seg][pos..pos + n], file_off, "event data")?;
                pos += n;
                file_off += n as u64;
                left -= n;
            }
        }
        Ok(())
    }
}

/// Reads the bytes covered by `records` (contiguous in the writer's layout) with one read and
/// returns one slice per record. Falls back to one read per record when they are not contiguous.
fn read_span(
    file: &NamedFile,
    records: &[IndexRecord],
    field: impl Fn(&IndexRecord) -> (u64, u64),
    what: &str,
) -> Result<Vec<Bytes>> {
    let start = field(&records[0]).0;
    let mut end = start;
    let mut contiguous = true;
    for r in records {
        let (o, s) = field(r);
        if o != end {
            contiguous = false;
            break;
        }
        end = o + s;
    }
    if contiguous {
        let mut buf = vec![0u8; (end - start) as usize];
        file.read_exact_at(&mut buf, start, what)?;
        let buf = Bytes::from(buf);
        return Ok(records
            .iter()
            .map(|r| {
                let (o, s) = field(r);
                buf.slice((o - start) as usize..(o - start + s) as usize)
            })
            .collect());
    }
    records
        .iter()
        .map(|r| {
            let (o, s) = field(r);
            let mut buf = vec![0u8; s as usize];
            file.read_exact_at(&mut buf, o, what)?;
            Ok(Bytes::from(buf))
        })
        .collect()
}
