//! The thread writing a topic's events into a consumer FIFO, one line per event: it waits for a
//! reader, waits for room in the pipe rather than dropping events, and writes a line again in
//! full to the next reader when one goes away mid-line.

use super::command::Format;
use super::pipes::timespec;
use crate::signals::Shutdown;
use diaspora_stream::{Consumer, Event};
use rustix::event::{PollFd, PollFlags};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use std::os::fd::OwnedFd;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The thread writing a topic's events into a consumer FIFO.
pub(super) struct ConsumerWorker {
    /// The consumer FIFO.
    pub path: PathBuf,
    pub consumer: Consumer,
    pub format: Format,
    /// Acknowledge each event once its line is written.
    pub ack: bool,
    pub shutdown: Shutdown,
}

impl ConsumerWorker {
    fn line(&self, ev: &Event) -> Vec<u8> {
        let mut out = match (self.format, ev.metadata().json()) {
            (Format::Raw, serde_json::Value::String(s)) => s.clone().into_bytes(),
            _ => ev.metadata().dump().into_bytes(),
        };
        out.push(b'\n');
        out
    }

    /// Opens the write end, waiting for a reader; `None` on shutdown or a fatal error.
    fn connect(&self) -> Option<OwnedFd> {
        let mut logged = false;
        loop {
            if self.shutdown.requested() {
                return None;
            }
            match rustix::fs::open(
                &self.path,
                OFlags::WRONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
                Mode::empty(),
            ) {
                Ok(fd) => {
                    log_info!("consumer FIFO {}: reader connected", self.path.display());
                    return Some(fd);
                }
                Err(Errno::NXIO) => {
                    if !logged {
                        log_info!(
                            "consumer FIFO {}: waiting for a reader",
                            self.path.display()
                        );
                        logged = true;
                    }
                    self.shutdown.sleep(Duration::from_millis(100));
                }
                Err(Errno::INTR) => {}
                Err(e) => {
                    log_error!(
                        "cannot open consumer FIFO {}: {e}; its worker stops",
                        self.path.display()
                    );
                    return None;
                }
            }
        }
    }

    /// Waits until `fd` can be written (or 100 ms pass).
    fn wait_writable(fd: &OwnedFd) {
        let mut fds = [PollFd::new(fd, PollFlags::OUT)];
        let _ = rustix::event::poll(&mut fds, Some(&timespec(Duration::from_millis(100))));
    }

    /// Writes events until a stop is requested (or a fatal error), then finishes a line the
    /// reader has started to receive.
    pub fn run(self) {
        let mut fd: Option<OwnedFd> = None;
        // The line being written, how much of it is written, and its event.
        let mut pending: Option<(Vec<u8>, usize, Event)> = None;
        let mut written = 0u64;
        while !self.shutdown.requested() {
            let Some(w) = fd.as_ref() else {
                fd = self.connect();
                if fd.is_none() {
                    break;
                }
                continue;
            };
            let Some((line, off, ev)) = pending.as_mut() else {
                match self
                    .consumer
                    .pull()
                    .wait_timeout(Duration::from_millis(100))
                {
                    Ok(Some(ev)) if !ev.is_end_of_stream() => {
                        pending = Some((self.line(&ev), 0, ev));
                    }
                    Ok(_) => {}
                    Err(e) => {
                        log_error!(
                            "consumer FIFO {}: cannot read the topic: {e}",
                            self.path.display()
                        );
                        self.shutdown.sleep(Duration::from_secs(1));
                    }
                }
                continue;
            };
            match rustix::io::write(w, &line[*off..]) {
                Ok(n) => {
                    *off += n;
                    if *off == line.len() {
                        if self.ack {
                            if let Err(e) = ev.acknowledge() {
                                log_error!(
                                    "consumer FIFO {}: cannot acknowledge: {e}",
                                    self.path.display()
                                );
                            }
                        }
                        written += 1;
                        pending = None;
                    }
                }
                Err(Errno::AGAIN) => Self::wait_writable(w),
                Err(Errno::INTR) => {}
                Err(Errno::PIPE) => {
                    log_warn!(
                        "consumer FIFO {}: the reader went away; the current event will be written again to the next reader",
                        self.path.display()
                    );
                    *off = 0;
                    fd = None;
                }
                Err(e) => {
                    log_error!(
                        "cannot write to consumer FIFO {}: {e}; its worker stops",
                        self.path.display()
                    );
                    return;
                }
            }
        }
        // Finish a line the reader has started to receive, so that it never sees half a line.
        if let (Some(w), Some((line, mut off, _))) = (fd.as_ref(), pending) {
            let deadline = Instant::now() + Duration::from_secs(2);
            while off > 0 && off < line.len() && Instant::now() < deadline {
                match rustix::io::write(w, &line[off..]) {
                    Ok(n) => off += n,
                    Err(Errno::AGAIN) | Err(Errno::INTR) => Self::wait_writable(w),
                    Err(_) => break,
                }
            }
        }
        log_info!(
            "consumer FIFO {}: {written} event(s) written",
            self.path.display()
        );
    }
}
