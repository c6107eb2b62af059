//! Persisted consumer positions.
//!
//! One file per consumer name, `<topic>/consumers/<name>.offsets`, holding one 16-byte slot per
//! partition at offset `16 * partition`: the next event id to read (u64 LE) followed by that value
//! XOR a constant, which detects a slot that was only partly written. The C++ reference neither
//! reads nor writes these files, so topics stay usable by it.

use super::config::FlushBehavior;
use crate::error::{Error, Result};
use crate::types::EventId;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

const SLOT: u64 = 16;
const CHECK: u64 = 0xD1A5_0FF5_E7C0_FFEE;

/// Encodes a consumer name into a file name (letters, digits, `-`, `_`, `.` kept; the rest `%XX`).
pub(crate) fn encode_name(name: &str) -> String {
    let mut out = String::from("c-");
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out.push_str(".offsets");
    out
}

/// Offset files of one topic, opened on demand.
pub(crate) struct OffsetStore {
    dir: PathBuf,
    flush_behavior: FlushBehavior,
    files: Mutex<HashMap<String, Arc<(File, PathBuf)>>>,
}

impl OffsetStore {
    pub(crate) fn new(topic_dir: &Path, flush_behavior: FlushBehavior) -> Self {
        OffsetStore {
            dir: topic_dir.join("consumers"),
            flush_behavior,
            files: Mutex::new(HashMap::new()),
        }
    }

    fn file(&self, consumer: &str, create: bool) -> Result<Option<Arc<(File, PathBuf)>>> {
        let mut files = self.files.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = files.get(consumer) {
            return Ok(Some(f.clone()));
        }
        let path = self.dir.join(encode_name(consumer));
        if !create && !path.exists() {
            return Ok(None);
        }
        if create {
            std::fs::create_dir_all(&self.dir)
                .map_err(|e| Error::io("create directory", &self.dir, e))?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(create)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("open", &path, e))?;
        let entry = Arc::new((file, path));
        files.insert(consumer.to_string(), entry.clone());
        Ok(Some(entry))
    }

    /// The next id `consumer` should read from `partition` (0 when never acknowledged).
    pub(crate) fn load(&self, consumer: &str, partition: usize) -> Result<EventId> {
        let Some(entry) = self.file(consumer, false)? else {
            return Ok(0);
        };
        let (file, path) = &*entry;
        let offset = partition as u64 * SLOT;
        let mut buf = [0u8; SLOT as usize];
        match file.read_exact_at(&mut buf, offset) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) => return Err(Error::io("read", path, e)),
        }
        let value = u64::from_le_bytes(buf[..8].try_into().unwrap_or([0; 8]));
        let check = u64::from_le_bytes(buf[8..].try_into().unwrap_or([0; 8]));
        if value == 0 && check == 0 {
            return Ok(0); // a hole left by a later partition's slot
        }
        if value ^ CHECK != check {
            return Err(Error::corrupt(
                path,
                offset,
                format!("consumer offset slot of partition {partition} fails its check"),
            ));
        }
        Ok(value)
    }

    /// Records that `consumer` should resume `partition` at id `next`.
    pub(crate) fn store(&self, consumer: &str, partition: usize, next: EventId) -> Result<()> {
        let entry = self
            .file(consumer, true)?
            .ok_or_else(|| Error::InvalidArgument("offset file missing".into()))?;
        let (file, path) = &*entry;
        let mut buf = [0u8; SLOT as usize];
        buf[..8].copy_from_slice(&next.to_le_bytes());
        buf[8..].copy_from_slice(&(next ^ CHECK).to_le_bytes());
        file.write_all_at(&buf, partition as u64 * SLOT)
            .map_err(|e| Error::io("write to", path, e))?;
        if self.flush_behavior != FlushBehavior::Buffered {
            file.sync_data().map_err(|e| Error::io("sync", path, e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_encoded_injectively() {
        assert_eq!(encode_name("ana-1"), "c-ana-1.offsets");
        assert_eq!(encode_name("a/b"), "c-a%2Fb.offsets");
        assert_ne!(encode_name("a%2F"), encode_name("a/"));
        assert_eq!(encode_name(""), "c-.offsets");
    }

    #[test]
    fn store_load_and_detect_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let s = OffsetStore::new(dir.path(), FlushBehavior::OnFlush);
        assert_eq!(s.load("x", 3).unwrap(), 0);
        s.store("x", 3, 42).unwrap();
        assert_eq!(s.load("x", 3).unwrap(), 42);
        assert_eq!(s.load("x", 1).unwrap(), 0);
        let s2 = OffsetStore::new(dir.path(), FlushBehavior::Buffered);
        assert_eq!(s2.load("x", 3).unwrap(), 42);
        let path = dir.path().join("consumers").join(encode_name("x"));
        let f = OpenOptions::new().write(true).open(&path).unwrap();
        f.write_all_at(&[9], 48).unwrap();
        let err = OffsetStore::new(dir.path(), FlushBehavior::Buffered)
            .load("x", 3)
            .unwrap_err();
        assert!(err.to_string().contains("offset 48"), "{err}");
    }
}
