//! The files of one partition (`index`, `metadata`, `data`, `checksums`), opened together for
//! reading or writing, and what can be read from them record by record. Shared by the
//! partition's readers and writers, the writers' recovery and `topic check`/`repair`.

use super::file::NamedFile;
use super::index::{IndexRecord, INDEX_RECORD_SIZE};
use super::sums::{Crc, SumRecord, SUM_RECORD_SIZE};
use crate::error::{Error, Result};
use std::cell::RefCell;
use std::path::Path;

/// File names inside a partition folder.
pub(crate) const INDEX_FILE: &str = "index";
pub(crate) const METADATA_FILE: &str = "metadata";
pub(crate) const DATA_FILE: &str = "data";
pub(crate) const SUMS_FILE: &str = "checksums";

/// The most scratch bytes a thread keeps between reads of records (a fetch of 1,024 events
/// reads 32 KiB of index records and as much of checksum records).
const MAX_KEPT_SCRATCH: usize = 1 << 20;

thread_local! {
    /// Where this thread reads raw records before decoding them, kept from one read to the
    /// next: a fresh zeroed buffer per read cost a consumer a twentieth of its instructions.
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on `len` bytes of this thread's scratch buffer (their contents are left over from
/// earlier reads: `f` overwrites them), or on a fresh buffer when that one is too big to keep
/// or already in use.
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [u8]) -> R) -> R {
    if len > MAX_KEPT_SCRATCH {
        return f(&mut vec![0u8; len]);
    }
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, 0);
            }
            f(&mut buf[..len])
        }
        Err(_) => f(&mut vec![0u8; len]),
    })
}

/// The open files of a partition.
pub(crate) struct OpenFiles {
    pub(crate) index: NamedFile,
    pub(crate) metadata: NamedFile,
    pub(crate) data: NamedFile,
    pub(crate) sums: Option<NamedFile>,
    pub(crate) writable: bool,
}

impl OpenFiles {
    /// Opens the files of `dir` read-only; `None` for a partition without files.
    pub(crate) fn open_read_only(dir: &Path) -> Result<Option<OpenFiles>> {
        let index = NamedFile::open_existing(dir.join(INDEX_FILE))?;
        let metadata = NamedFile::open_existing(dir.join(METADATA_FILE))?;
        let data = NamedFile::open_existing(dir.join(DATA_FILE))?;
        let sums = NamedFile::open_existing(dir.join(SUMS_FILE))?;
        let Some(index) = index else {
            let md_len = metadata.as_ref().map(NamedFile::len).transpose()?;
            if let Some(n) = md_len.filter(|&n| n > 0) {
                return Err(Error::corrupt(
                    dir.join(INDEX_FILE),
                    0,
                    format!(
                        "the index is missing while the metadata file holds {n} bytes \
                         (`diaspora-ctl topic check` tells what can be recovered)"
                    ),
                ));
            }
            return Ok(None);
        };
        let index_len = index.len()?;
        let missing = |name: &str| {
            Error::corrupt(
                dir.join(name),
                0,
                format!("the {name} file is missing while the index holds {index_len} bytes"),
            )
        };
        let (metadata, data) = match (metadata, data) {
            (Some(m), Some(d)) => (m, d),
            (m, d) if index_len < INDEX_RECORD_SIZE => {
                // An index without events: the other files may not be there yet.
                let _ = (m, d);
                return Ok(None);
            }
            (None, _) => return Err(missing(METADATA_FILE)),
            (_, None) => return Err(missing(DATA_FILE)),
        };
        Ok(Some(OpenFiles {
            index,
            metadata,
            data,
            sums,
            writable: false,
        }))
    }

    pub(crate) fn open_writable(dir: &Path, checksums: bool) -> Result<OpenFiles> {
        if !dir.is_dir() {
            return Err(Error::corrupt(
                dir,
                0,
                "the partition folder is missing".to_string(),
            ));
        }
        let sums_path = dir.join(SUMS_FILE);
        let index_path = dir.join(INDEX_FILE);
        if !index_path.exists() {
            // Creating an empty index over stored events would hand their bytes to the next
            // batch: rebuilding it is `repair`'s job, after a dry run has shown what it does.
            let md = std::fs::metadata(dir.join(METADATA_FILE)).map_or(0, |m| m.len());
            if md > 0 {
                return Err(Error::corrupt(
                    index_path,
                    0,
                    format!(
                        "the index is missing while the metadata file holds {md} bytes; not \
                         appending (`diaspora-ctl topic check` tells what `topic repair` can \
                         restore)"
                    ),
                ));
            }
        }
        Ok(OpenFiles {
            data: NamedFile::open_writable(dir.join(DATA_FILE))?,
            metadata: NamedFile::open_writable(dir.join(METADATA_FILE))?,
            sums: if checksums || sums_path.exists() {
                Some(NamedFile::open_writable(sums_path)?)
            } else {
                None
            },
            index: NamedFile::open_writable(dir.join(INDEX_FILE))?,
            writable: true,
        })
    }

    /// Reads index records `[from, from + count)`.
    pub(crate) fn read_records(&self, from: u64, count: u64) -> Result<Vec<IndexRecord>> {
        with_scratch((count * INDEX_RECORD_SIZE) as usize, |raw| {
            self.index
                .read_exact_at(raw, from * INDEX_RECORD_SIZE, "index records")?;
            Ok(raw
                .chunks_exact(INDEX_RECORD_SIZE as usize)
                .map(IndexRecord::decode)
                .collect())
        })
    }

    /// Reads the checksum records `[from, from + count)` that exist (fewer at the file's end);
    /// `None` for a record that fails its own check.
    pub(crate) fn read_sums(&self, from: u64, count: u64) -> Result<Vec<Option<SumRecord>>> {
        let Some(sums) = &self.sums else {
            return Ok(Vec::new());
        };
        let have = sums.len()? / SUM_RECORD_SIZE;
        let count = have.saturating_sub(from).min(count);
        if count == 0 {
            return Ok(Vec::new());
        }
        with_scratch((count * SUM_RECORD_SIZE) as usize, |raw| {
            sums.read_exact_at(raw, from * SUM_RECORD_SIZE, "checksum records")?;
            Ok(raw
                .chunks_exact(SUM_RECORD_SIZE as usize)
                .map(SumRecord::decode)
                .collect())
        })
    }

    /// True when every index record from `from` to the end of the index is all zero.
    pub(crate) fn only_zeros_from(&self, from: u64) -> Result<bool> {
        let total = self.index.len()? / INDEX_RECORD_SIZE;
        let mut at = from;
        while at < total {
            let n = (total - at).min(4096);
            let mut raw = vec![0u8; (n * INDEX_RECORD_SIZE) as usize];
            self.index
                .read_exact_at(&mut raw, at * INDEX_RECORD_SIZE, "index records")?;
            if raw.iter().any(|&b| b != 0) {
                return Ok(false);
            }
            at += n;
        }
        Ok(true)
    }
}

impl OpenFiles {
    /// Compares an event's stored bytes with its checksum record: `Ok(true)` they match,
    /// `Ok(false)` the record has no CRC to compare with, `Err(why)` they differ. The data is
    /// read a chunk at a time.
    pub(crate) fn event_matches(
        &self,
        r: &IndexRecord,
        sum: &SumRecord,
    ) -> Result<std::result::Result<bool, String>> {
        const CHUNK: u64 = 1 << 20;
        if (sum.metadata_size, sum.data_size) != (r.metadata_size, r.data_size) {
            return Ok(Err(format!(
                "the index says {} metadata and {} data bytes, its checksum record {} and {}",
                r.metadata_size, r.data_size, sum.metadata_size, sum.data_size
            )));
        }
        let Some((md_crc, data_crc)) = sum.crcs else {
            return Ok(Ok(false));
        };
        let mut buf = vec![0u8; r.metadata_size.max(r.data_size).min(CHUNK) as usize];
        for (file, offset, size, crc_want, what) in [
            (
                &self.metadata,
                r.metadata_offset,
                r.metadata_size,
                md_crc,
                "metadata",
            ),
            (&self.data, r.data_offset, r.data_size, data_crc, "data"),
        ] {
            let mut digest = Crc::new();
            let mut at = 0;
            while at < size {
                let n = (size - at).min(CHUNK) as usize;
                file.read_exact_at(&mut buf[..n], offset + at, what)?;
                digest.update(&buf[..n]);
                at += n as u64;
            }
            if digest.finish() != crc_want {
                return Ok(Err(format!(
                    "{what} checksum mismatch ({} at offset {offset})",
                    file.path.display()
                )));
            }
        }
        Ok(Ok(true))
    }
}
