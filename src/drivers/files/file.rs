//! An open file with its path, so that every error names it; positioned reads and writes,
//! vectored writes below the kernel's iovec limit, and a `flock` waited for with a timeout.

use crate::error::{Error, Result};
use std::fs::{File, OpenOptions};
use std::io::IoSlice;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Linux accepts at most this many iovecs per `pwritev`.
const MAX_IOVECS: usize = 1024;

/// A file and its path, for error messages.
pub(crate) struct NamedFile {
    pub(crate) file: File,
    pub(crate) path: PathBuf,
    /// Disk space is reserved up to here (see [`NamedFile::reserve`]).
    reserved_to: AtomicU64,
}

/// Space is reserved this far ahead, so that appends call `fallocate` once per this many bytes.
const RESERVE_AHEAD: u64 = 1 << 20;

impl NamedFile {
    /// Wraps an open file.
    pub(crate) fn new(file: File, path: PathBuf) -> NamedFile {
        NamedFile {
            file,
            path,
            reserved_to: AtomicU64::new(0),
        }
    }

    /// Opens an existing file read-only; `None` when it does not exist.
    pub(crate) fn open_existing(path: PathBuf) -> Result<Option<NamedFile>> {
        match File::open(&path) {
            Ok(file) => Ok(Some(NamedFile::new(file, path))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("open for reading", &path, e)),
        }
    }

    /// Opens a file for reading and writing, creating it if needed.
    pub(crate) fn open_writable(path: PathBuf) -> Result<NamedFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io("open for writing", &path, e))?;
        Ok(NamedFile::new(file, path))
    }

    pub(crate) fn len(&self) -> Result<u64> {
        self.file
            .metadata()
            .map(|m| m.len())
            .map_err(|e| Error::io("stat", &self.path, e))
    }

    pub(crate) fn read_exact_at(&self, buf: &mut [u8], offset: u64, what: &str) -> Result<()> {
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

    pub(crate) fn write_all_at(&self, buf: &[u8], offset: u64) -> Result<()> {
        self.file
            .write_all_at(buf, offset)
            .map_err(|e| Error::io("write to", &self.path, e))
    }

    pub(crate) fn set_len(&self, len: u64, what: &'static str) -> Result<()> {
        self.file
            .set_len(len)
            .map_err(|e| Error::io(what, &self.path, e))
    }

    /// Writes the slices back to back from `offset`, at most `MAX_IOVECS` per system call.
    pub(crate) fn write_vectored_at(&self, slices: &[&[u8]], mut offset: u64) -> Result<()> {
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

    pub(crate) fn sync(&self) -> Result<()> {
        self.file
            .sync_data()
            .map_err(|e| Error::io("sync", &self.path, e))
    }

    /// Takes the exclusive `flock`, waiting at most `timeout`.
    pub(crate) fn lock(&self, timeout: Duration, what: &str) -> Result<()> {
        self.lock_as(false, timeout, what)
    }

    /// Takes a shared `flock` (readers that must see no batch in the middle of being written),
    /// waiting at most `timeout`.
    pub(crate) fn lock_shared(&self, timeout: Duration, what: &str) -> Result<()> {
        self.lock_as(true, timeout, what)
    }

    fn lock_as(&self, shared: bool, timeout: Duration, what: &str) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_micros(20);
        loop {
            let attempt = if shared {
                self.file.try_lock_shared()
            } else {
                self.file.try_lock()
            };
            match attempt {
                Ok(()) => return Ok(()),
                Err(std::fs::TryLockError::WouldBlock) => {}
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(Error::io(
                        "lock (flock; mount the file system with flock support, or set \
                         use_file_locking=false with a single writer per partition)",
                        &self.path,
                        e,
                    ))
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::LockTimeout {
                    what: what.to_string(),
                    path: self.path.clone(),
                    waited: timeout,
                    holder: lock_holder(&self.file),
                });
            }
            std::thread::sleep(pause.min(deadline - now));
            pause = (pause * 2).min(Duration::from_millis(2));
        }
    }

    /// False when the path no longer names this open file (it was deleted, or replaced by
    /// another file): a lock on it then excludes nobody.
    pub(crate) fn is_current(&self) -> Result<bool> {
        self.current_len().map(|len| len.is_some())
    }

    /// The open file's length, or `None` when the path no longer names it (see
    /// [`NamedFile::is_current`]).
    pub(crate) fn current_len(&self) -> Result<Option<u64>> {
        let open = self
            .file
            .metadata()
            .map_err(|e| Error::io("stat", &self.path, e))?;
        match std::fs::metadata(&self.path) {
            Ok(m) => Ok(
                (open.nlink() > 0 && m.dev() == open.dev() && m.ino() == open.ino())
                    .then_some(open.len()),
            ),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("stat", &self.path, e)),
        }
    }

    /// Reserves disk blocks for `len` bytes at `offset` (and some way beyond, so that this is
    /// rarely a system call) without changing the file's size, so a later write there cannot
    /// fail for lack of space. File systems that cannot do it are left alone (the write may then
    /// fail, and is undone).
    pub(crate) fn reserve(&self, offset: u64, len: u64) {
        let end = offset.saturating_add(len);
        if len == 0 || end <= self.reserved_to.load(Ordering::Relaxed) {
            return;
        }
        let to = end.saturating_add(RESERVE_AHEAD);
        let _ = rustix::fs::fallocate(
            &self.file,
            rustix::fs::FallocateFlags::KEEP_SIZE,
            offset,
            to - offset,
        );
        self.reserved_to.store(to, Ordering::Relaxed);
    }

    pub(crate) fn unlock(&self) {
        let _ = self.file.unlock();
    }
}

/// The process holding a `flock` on `file`, from `/proc/locks` (Linux), as "process N (name)".
pub(crate) fn lock_holder(file: &File) -> Option<String> {
    let meta = file.metadata().ok()?;
    let dev = meta.dev();
    let (major, minor) = (rustix::fs::major(dev), rustix::fs::minor(dev));
    let want = format!("{major:02x}:{minor:02x}:{}", meta.ino());
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    let inode = format!(":{}", meta.ino());
    // "1: FLOCK  ADVISORY  WRITE 12345 08:01:1234567 0 EOF" (blocked waiters have "->"). Some
    // file systems (overlays) show another device number than stat: then the inode decides.
    let holders: Vec<(bool, &str)> = locks
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 6 || fields[1] != "FLOCK" || fields.contains(&"->") {
                return None;
            }
            let exact = fields[5].eq_ignore_ascii_case(&want);
            (exact || fields[5].ends_with(&inode)).then_some((exact, fields[4]))
        })
        .collect();
    let pid = holders
        .iter()
        .find(|h| h.0)
        .or_else(|| (holders.len() == 1).then(|| &holders[0]))?
        .1;
    let name = std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|s| format!(" ({})", s.trim()))
        .unwrap_or_default();
    Some(format!("process {pid}{name}"))
}
