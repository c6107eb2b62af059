//! Named pipes on disk: creating them (data FIFOs and the control FIFO), and their read end,
//! which splits what writers send into lines and survives writers that come and go.

use crate::error::{CliError, CliResult};
use rustix::event::Timespec;
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Longest line kept in memory; longer ones are discarded with a warning.
const MAX_LINE: usize = 64 << 20;
/// Bytes read from one FIFO before giving others a turn.
const READ_BUDGET: usize = 1 << 20;

pub(super) fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: d.as_secs() as _,
        tv_nsec: d.subsec_nanos() as _,
    }
}

/// Why [`FifoReader::read_available`] returned.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum ReadOutcome {
    /// Nothing more to read for now.
    Drained,
    /// The read budget is spent; more may be waiting.
    More,
    /// Every writer hung up; the FIFO was reopened for the next one.
    HungUp,
}

/// The read end of a FIFO, splitting its input into lines.
pub(super) struct FifoReader {
    pub path: PathBuf,
    pub fd: OwnedFd,
    /// Bytes of a line not complete yet.
    pub buf: Vec<u8>,
    /// Bytes of an over-long line being discarded.
    discarding: bool,
    /// Bytes were read since the FIFO was (re)opened.
    got_data: bool,
}

impl FifoReader {
    fn open_fd(path: &Path) -> std::io::Result<OwnedFd> {
        Ok(rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )?)
    }

    pub fn new(path: &Path) -> std::io::Result<Self> {
        Ok(FifoReader {
            path: path.to_path_buf(),
            fd: Self::open_fd(path)?,
            buf: Vec::new(),
            discarding: false,
            got_data: false,
        })
    }

    fn take_lines(&mut self, lines: &mut Vec<Vec<u8>>) {
        let mut start = 0;
        while let Some(i) = self.buf[start..].iter().position(|&b| b == b'\n') {
            if self.discarding {
                self.discarding = false;
            } else {
                lines.push(self.buf[start..start + i].to_vec());
            }
            start += i + 1;
        }
        self.buf.drain(..start);
        if self.buf.len() > MAX_LINE {
            log_warn!(
                "FIFO {}: discarding a line longer than {MAX_LINE} bytes",
                self.path.display()
            );
            self.buf.clear();
            self.discarding = true;
        }
    }

    /// Reads what is available. Complete lines are appended to `lines`. When every writer has
    /// hung up, an unterminated last line counts too, and the FIFO is reopened (the new read end
    /// is opened before the old one is closed, so nothing written meanwhile is lost); that is
    /// reported as [`ReadOutcome::HungUp`] if data came since the last reopen, else as
    /// [`ReadOutcome::Drained`].
    pub fn read_available(&mut self, lines: &mut Vec<Vec<u8>>) -> std::io::Result<ReadOutcome> {
        let mut chunk = vec![0u8; 64 * 1024];
        let mut total = 0;
        loop {
            match rustix::io::read(&self.fd, &mut chunk[..]) {
                Ok(0) => {
                    if !self.buf.is_empty() && !self.discarding {
                        lines.push(std::mem::take(&mut self.buf));
                    }
                    self.buf.clear();
                    self.discarding = false;
                    self.fd = Self::open_fd(&self.path)?;
                    return Ok(if std::mem::take(&mut self.got_data) {
                        ReadOutcome::HungUp
                    } else {
                        ReadOutcome::Drained
                    });
                }
                Ok(n) => {
                    self.got_data = true;
                    self.buf.extend_from_slice(&chunk[..n]);
                    self.take_lines(lines);
                    total += n;
                    if total >= READ_BUDGET {
                        return Ok(ReadOutcome::More);
                    }
                }
                Err(Errno::AGAIN) => return Ok(ReadOutcome::Drained),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(e.into()),
            }
        }
    }
}

/// Creates a FIFO at `path` (mode 0666 before umask).
fn make_fifo(path: &Path) -> std::io::Result<()> {
    Ok(rustix::fs::mkfifoat(
        rustix::fs::CWD,
        path,
        Mode::from_raw_mode(0o666),
    )?)
}

/// Makes sure `path` is a FIFO: creates it if missing (returns true), accepts an existing FIFO
/// (returns false), rejects anything else.
pub(super) fn ensure_fifo(path: &Path) -> Result<bool, String> {
    match std::fs::metadata(path) {
        Ok(m) if m.file_type().is_fifo() => Ok(false),
        Ok(_) => Err(format!("{} exists but is not a FIFO", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot create directory {}: {e}", parent.display()))?;
            }
            make_fifo(path).map_err(|e| format!("cannot create FIFO {}: {e}", path.display()))?;
            Ok(true)
        }
        Err(e) => Err(format!("cannot stat {}: {e}", path.display())),
    }
}

/// Creates the control FIFO: parent directories, replacing a stale FIFO, refusing other files.
pub(super) fn create_control_fifo(path: &Path) -> CliResult<FifoReader> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| {
            CliError(format!(
                "cannot create the directory of the control FIFO {}: {e}",
                parent.display()
            ))
        })?;
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_fifo() => std::fs::remove_file(path).map_err(|e| {
            CliError(format!(
                "cannot remove the old control FIFO {}: {e}",
                path.display()
            ))
        })?,
        Ok(_) => {
            return Err(CliError(format!(
                "control file {} exists and is not a FIFO (not removing it)",
                path.display()
            )))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(CliError(format!(
                "cannot stat the control file {}: {e}",
                path.display()
            )))
        }
    }
    make_fifo(path).map_err(|e| {
        CliError(format!(
            "cannot create the control FIFO {}: {e}",
            path.display()
        ))
    })?;
    FifoReader::new(path).map_err(|e| {
        let _ = std::fs::remove_file(path);
        CliError(format!(
            "cannot open the control FIFO {}: {e}",
            path.display()
        ))
    })
}
