//! One partition: an append-only file of records.
//!
//! A record is a 16-byte header, `MAGIC` (4 bytes), metadata size (4 bytes) and data size
//! (8 bytes), all little-endian, followed by the metadata and the data. The id of an event is
//! the rank of its record.
//!
//! - Appends hold an exclusive `flock` on the file, so writers in several processes never
//!   interleave. The whole batch is written with one positioned write at the end of the last
//!   whole record, so that a batch is stored whole or, after a crash, cut at its end.
//! - Readers take no lock. They walk the records from the last one they knew and stop at the
//!   first that is not whole yet (a writer is still writing it): it is not theirs to see.
//! - A writer that finds bytes after the last whole record (a crashed writer's batch) cuts them
//!   off before appending: those events were never acknowledged.
//! - Each open partition remembers where its records start, so reading at id N costs no walk
//!   from the start of the file once it has been read up to N.

use bytes::Bytes;
use diaspora_stream::backend::{EventBatch, StoredEvent};
use diaspora_stream::{Error, EventId, Result};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

const MAGIC: [u8; 4] = *b"DSE1";
const HEADER: u64 = 16;

/// An open partition file and the record starts found so far.
pub struct PartitionLog {
    path: PathBuf,
    file: File,
    /// `starts[i]` is where record `i` starts; the last entry is the end of the last whole
    /// record known (where the next record starts).
    starts: Mutex<Vec<u64>>,
}

fn file_name(partition: usize) -> String {
    format!("partition-{partition}.log")
}

impl PartitionLog {
    /// Creates the empty file of `partition` in the topic folder `dir`.
    pub fn create(dir: &Path, partition: usize) -> Result<()> {
        let path = dir.join(file_name(partition));
        File::create(&path).map_err(|e| Error::io("create", &path, e))?;
        Ok(())
    }

    /// Opens the file of `partition` in the topic folder `dir`.
    pub fn open(dir: &Path, partition: usize) -> Result<Self> {
        let path = dir.join(file_name(partition));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        Ok(PartitionLog {
            path,
            file,
            starts: Mutex::new(vec![0]),
        })
    }

    fn starts(&self) -> std::sync::MutexGuard<'_, Vec<u64>> {
        self.starts.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads the header of the record at `pos`: `None` when the file ends before the whole
    /// record does.
    fn header_at(&self, pos: u64, len: u64) -> Result<Option<(u64, u64)>> {
        if pos + HEADER > len {
            return Ok(None);
        }
        let mut h = [0u8; HEADER as usize];
        self.file
            .read_exact_at(&mut h, pos)
            .map_err(|e| Error::io("read a record header of", &self.path, e))?;
        if h[..4] != MAGIC {
            return Err(Error::corrupt(&self.path, pos, "no record starts here"));
        }
        let meta = u32::from_le_bytes(h[4..8].try_into().unwrap_or_default()) as u64;
        let data = u64::from_le_bytes(h[8..16].try_into().unwrap_or_default());
        if pos + HEADER + meta + data > len {
            return Ok(None);
        }
        Ok(Some((meta, data)))
    }

    /// Walks the records past the last known one, up to the file's current end or until
    /// `want` records are known; returns the file length seen.
    fn discover(&self, starts: &mut Vec<u64>, want: usize) -> Result<u64> {
        let len = self
            .file
            .metadata()
            .map_err(|e| Error::io("look at", &self.path, e))?
            .len();
        while starts.len() <= want {
            let pos = *starts.last().unwrap_or(&0);
            match self.header_at(pos, len)? {
                Some((meta, data)) => starts.push(pos + HEADER + meta + data),
                None => break,
            }
        }
        Ok(len)
    }

    /// Appends `batch` and returns the id of its first event.
    pub fn append(&self, batch: &EventBatch) -> Result<EventId> {
        let mut buf = Vec::with_capacity(batch.size_bytes() + batch.len() * HEADER as usize);
        for i in 0..batch.len() {
            let meta = batch.metadata_of(i);
            let data = batch.data_of(i);
            let meta_len = u32::try_from(meta.len()).map_err(|_| {
                Error::InvalidArgument(format!("metadata of {} bytes is too large", meta.len()))
            })?;
            buf.extend_from_slice(&MAGIC);
            buf.extend_from_slice(&meta_len.to_le_bytes());
            buf.extend_from_slice(&(data.size() as u64).to_le_bytes());
            buf.extend_from_slice(meta);
            for segment in data.segments() {
                buf.extend_from_slice(segment);
            }
        }
        self.file
            .lock()
            .map_err(|e| Error::io("lock", &self.path, e))?;
        let result = (|| {
            let mut starts = self.starts();
            let len = self.discover(&mut starts, usize::MAX)?;
            let end = *starts.last().unwrap_or(&0);
            if len > end {
                // A writer died in the middle of a batch: its events were never acknowledged.
                self.file
                    .set_len(end)
                    .map_err(|e| Error::io("cut a torn batch off", &self.path, e))?;
            }
            let first = (starts.len() - 1) as EventId;
            if buf.is_empty() {
                return Ok(first);
            }
            self.file
                .write_all_at(&buf, end)
                .map_err(|e| Error::io("append to", &self.path, e))?;
            let mut pos = end;
            for i in 0..batch.len() {
                pos += HEADER + batch.metadata_of(i).len() as u64 + batch.data_of(i).size() as u64;
                starts.push(pos);
            }
            Ok(first)
        })();
        let _ = self.file.unlock();
        result
    }

    /// Forces the appended records to stable storage.
    pub fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io("sync", &self.path, e))
    }

    /// Up to `max` events from id `from` on.
    pub fn fetch(&self, from: EventId, max: usize, with_data: bool) -> Result<Vec<StoredEvent>> {
        let from = from as usize;
        let mut starts = self.starts();
        let want = from.saturating_add(max);
        if starts.len() <= want {
            self.discover(&mut starts, want)?;
        }
        let known = starts.len() - 1;
        let mut out = Vec::with_capacity(known.saturating_sub(from).min(max));
        for id in from..known.min(want) {
            let pos = starts[id];
            let end = starts[id + 1];
            let mut h = [0u8; HEADER as usize];
            self.file
                .read_exact_at(&mut h, pos)
                .map_err(|e| Error::io("read", &self.path, e))?;
            let meta_len = u32::from_le_bytes(h[4..8].try_into().unwrap_or_default()) as u64;
            let data_size = end - pos - HEADER - meta_len;
            let take = if with_data { meta_len + data_size } else { meta_len };
            let mut body = vec![0u8; take as usize];
            self.file
                .read_exact_at(&mut body, pos + HEADER)
                .map_err(|e| Error::io("read", &self.path, e))?;
            let body = Bytes::from(body);
            out.push(StoredEvent {
                id: id as EventId,
                metadata: body.slice(..meta_len as usize),
                metadata_verified: false,
                data_size,
                data_location: pos + HEADER + meta_len,
                data: with_data.then(|| body.slice(meta_len as usize..)),
                descriptor: None,
            });
        }
        Ok(out)
    }

    /// Copies the byte ranges `(offset, size)` of `event`'s data consecutively over `dst`.
    pub fn read_data(
        &self,
        event: &StoredEvent,
        ranges: &[(u64, u64)],
        dst: &mut [&mut [u8]],
    ) -> Result<()> {
        for &(offset, size) in ranges {
            if offset.saturating_add(size) > event.data_size {
                return Err(Error::InvalidArgument(format!(
                    "range ({offset}, {size}) is beyond the {} bytes of event {}",
                    event.data_size, event.id
                )));
            }
        }
        diaspora_stream::data_view::scatter_with(ranges, dst, |from, piece| {
            self.file
                .read_exact_at(piece, event.data_location + from)
                .map_err(|e| Error::io("read data from", &self.path, e))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use diaspora_stream::DataView;

    fn batch(n: usize, data: &[u8]) -> EventBatch {
        let mut b = EventBatch::default();
        for i in 0..n {
            let meta = serde_json::json!({ "i": i }).to_string();
            b.push_serialized(meta.as_bytes(), DataView::from(data.to_vec()));
        }
        b
    }

    #[test]
    fn a_torn_batch_is_cut_off_and_never_read() {
        let dir = tempfile::tempdir().unwrap();
        PartitionLog::create(dir.path(), 0).unwrap();
        let log = PartitionLog::open(dir.path(), 0).unwrap();
        assert_eq!(log.append(&batch(3, b"abc")).unwrap(), 0);
        // A writer that died after writing half a record.
        let path = dir.path().join(file_name(0));
        let len = std::fs::metadata(&path).unwrap().len();
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&[b'D', b'S', b'E', b'1', 9, 0, 0, 0, 100], len)
            .unwrap();
        let reader = PartitionLog::open(dir.path(), 0).unwrap();
        assert_eq!(reader.fetch(0, 10, true).unwrap().len(), 3);
        assert_eq!(log.append(&batch(2, b"de")).unwrap(), 3);
        let evs = reader.fetch(3, 10, true).unwrap();
        assert_eq!(evs.len(), 2);
        assert_eq!(&evs[1].metadata[..], b"{\"i\":1}");
        assert_eq!(evs[1].data.as_deref(), Some(&b"de"[..]));
        let mut out = [0u8; 1];
        reader.read_data(&evs[1], &[(1, 1)], &mut [&mut out[..]]).unwrap();
        assert_eq!(&out, b"e");
        assert!(reader.read_data(&evs[1], &[(1, 2)], &mut [&mut out[..]]).is_err());
    }

    #[test]
    fn bytes_that_are_not_a_record_are_reported() {
        let dir = tempfile::tempdir().unwrap();
        PartitionLog::create(dir.path(), 0).unwrap();
        std::fs::write(dir.path().join(file_name(0)), [7u8; 64]).unwrap();
        let log = PartitionLog::open(dir.path(), 0).unwrap();
        let e = log.fetch(0, 1, false).unwrap_err().to_string();
        assert!(e.contains("partition-0.log") && e.contains("no record"), "{e}");
    }
}
