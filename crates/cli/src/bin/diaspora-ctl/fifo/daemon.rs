//! The daemon's state and main loop: the registered producer FIFOs (read in the poll loop,
//! their lines pushed to their topics and flushed when idle) and consumer FIFOs (each served by
//! a [`ConsumerWorker`] thread), the commands of the control FIFO, and the orderly stop.

use super::command::{command_options, parse_command, Command, CommandOptions, Format};
use super::pipes::{ensure_fifo, timespec, FifoReader, ReadOutcome};
use super::worker::ConsumerWorker;
use crate::common::open_topic;
use crate::error::{CliError, CliResult};
use crate::signals::Shutdown;
use diaspora_stream::{DataDescriptor, DataView, Driver, Future, Metadata, Producer, TopicHandle};
use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// A producer FIFO idle for this long has its pending events flushed.
const LINGER: Duration = Duration::from_millis(100);

/// A registered producer FIFO.
struct ProducerFifo {
    reader: FifoReader,
    topic: String,
    producer: Producer,
    format: Format,
    created: bool,
    /// Events pushed since the last flush, and when the last one was.
    dirty: bool,
    last_push: Instant,
    pushed: u64,
}

impl ProducerFifo {
    fn push_line(&mut self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        let metadata = match self.format {
            Format::Raw => match std::str::from_utf8(line) {
                Ok(s) => Metadata::from_string(s),
                Err(_) => {
                    log_warn!(
                        "FIFO {}: line is not valid UTF-8; invalid bytes replaced by U+FFFD",
                        self.reader.path.display()
                    );
                    Metadata::from_string(String::from_utf8_lossy(line).into_owned())
                }
            },
            Format::Json => match Metadata::parse_bytes(line) {
                Ok(m) => m,
                Err(e) => {
                    log_warn!(
                        "FIFO {}: failed to push event: {e}; line skipped: {}",
                        self.reader.path.display(),
                        String::from_utf8_lossy(&line[..line.len().min(200)])
                    );
                    return;
                }
            },
        };
        let f = self.producer.push(metadata, DataView::new());
        if f.completed() {
            if let Err(e) = f.wait() {
                log_warn!(
                    "FIFO {}: failed to push event to topic {}: {e}",
                    self.reader.path.display(),
                    self.topic
                );
                return;
            }
        }
        self.dirty = true;
        self.last_push = Instant::now();
        self.pushed += 1;
    }

    /// Starts a flush of the pending events (checked later through the returned future).
    fn flush(&mut self) -> Future<()> {
        self.dirty = false;
        self.producer.flush()
    }
}

/// A registered consumer FIFO and its worker.
struct ConsumerFifo {
    created: bool,
    worker: JoinHandle<()>,
}

/// Everything the daemon manages.
pub(super) struct Daemon {
    driver: Driver,
    topics: HashMap<String, TopicHandle>,
    producers: Vec<ProducerFifo>,
    consumers: HashMap<PathBuf, ConsumerFifo>,
    flushes: Vec<(PathBuf, Future<()>)>,
    shutdown: Shutdown,
    /// The control FIFO, which cannot be registered as a data FIFO.
    control: PathBuf,
}

impl Daemon {
    /// A daemon with nothing registered yet; `control` is the path of its control FIFO.
    pub(super) fn new(driver: Driver, shutdown: Shutdown, control: PathBuf) -> Self {
        Daemon {
            driver,
            topics: HashMap::new(),
            producers: Vec::new(),
            consumers: HashMap::new(),
            flushes: Vec::new(),
            shutdown,
            control,
        }
    }

    fn topic(&mut self, name: &str) -> CliResult<TopicHandle> {
        if let Some(t) = self.topics.get(name) {
            return Ok(t.clone());
        }
        let t = open_topic(&self.driver, name)?;
        self.topics.insert(name.to_string(), t.clone());
        Ok(t)
    }

    fn handle_line(&mut self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let cmd = match parse_command(&text) {
            Ok(Some(c)) => c,
            Ok(None) => return,
            Err(e) => {
                log_warn!("{e}");
                return;
            }
        };
        let opts = if cmd.options.is_empty() {
            String::new()
        } else {
            format!(
                " ({})",
                cmd.options
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        log_info!(
            "received command: '{}' {} '{}'{opts}",
            cmd.path,
            if cmd.produce { "->" } else { "<-" },
            cmd.topic
        );
        let result = match command_options(&cmd) {
            Err(e) => Err(CliError(e)),
            Ok(o) if cmd.produce => self.add_producer(&cmd, o),
            Ok(o) => self.add_consumer(&cmd, o),
        };
        if let Err(e) = result {
            log_error!("command for FIFO '{}' rejected: {e}", cmd.path);
        }
    }

    /// Rejects the control FIFO and paths registered in the other direction.
    fn check_free(&self, path: &Path, produce: bool) -> CliResult<()> {
        if path == self.control {
            return Err(CliError("this is the control FIFO".into()));
        }
        if produce && self.consumers.contains_key(path) {
            return Err(CliError(
                "this FIFO is registered as a consumer FIFO".into(),
            ));
        }
        if !produce && self.producers.iter().any(|p| p.reader.path == path) {
            return Err(CliError(
                "this FIFO is registered as a producer FIFO".into(),
            ));
        }
        Ok(())
    }

    fn add_producer(&mut self, cmd: &Command, o: CommandOptions) -> CliResult<()> {
        let path = PathBuf::from(&cmd.path);
        if self.producers.iter().any(|p| p.reader.path == path) {
            return Err(CliError("this FIFO is already registered".into()));
        }
        self.check_free(&path, true)?;
        let topic = self.topic(&cmd.topic)?;
        let producer = topic
            .producer()
            .name(&cmd.path)
            .batch_size(o.batch_size)
            .build()
            .map_err(|e| CliError(format!("cannot create a producer: {e}")))?;
        let created = ensure_fifo(&path).map_err(CliError)?;
        let reader = match FifoReader::new(&path) {
            Ok(r) => r,
            Err(e) => {
                if created {
                    let _ = std::fs::remove_file(&path);
                }
                return Err(CliError(format!("cannot open {}: {e}", path.display())));
            }
        };
        self.producers.push(ProducerFifo {
            reader,
            topic: cmd.topic.clone(),
            producer,
            format: o.format,
            created,
            dirty: false,
            last_push: Instant::now(),
            pushed: 0,
        });
        log_info!("registered producer: {} -> {}", cmd.path, cmd.topic);
        Ok(())
    }

    fn add_consumer(&mut self, cmd: &Command, o: CommandOptions) -> CliResult<()> {
        let path = PathBuf::from(&cmd.path);
        if self.consumers.contains_key(&path) {
            return Err(CliError("this consumer FIFO is already registered".into()));
        }
        self.check_free(&path, false)?;
        let topic = self.topic(&cmd.topic)?;
        let name = o.consumer.clone().unwrap_or_else(|| cmd.path.clone());
        let consumer = topic
            .consumer(&name)
            .batch_size(o.batch_size)
            // Only metadata is written to the FIFO: never read the data.
            .data_selector(|_, _| DataDescriptor::none())
            .build()
            .map_err(|e| CliError(format!("cannot create a consumer: {e}")))?;
        let created = ensure_fifo(&path).map_err(CliError)?;
        let worker = ConsumerWorker {
            path: path.clone(),
            consumer,
            format: o.format,
            ack: o.ack,
            shutdown: self.shutdown.clone(),
        };
        let handle = std::thread::Builder::new()
            .name("fifo-consumer".into())
            .spawn(move || worker.run())
            .map_err(|e| CliError(format!("cannot start a worker thread: {e}")))?;
        self.consumers.insert(
            path,
            ConsumerFifo {
                created,
                worker: handle,
            },
        );
        log_info!("registered consumer: {} <- {}", cmd.path, cmd.topic);
        Ok(())
    }

    /// Pushes lines read from producer `i`; returns false if the FIFO had to be dropped.
    fn service_producer(&mut self, i: usize, final_drain: bool) -> bool {
        let started = Instant::now();
        loop {
            let mut lines = Vec::new();
            let p = &mut self.producers[i];
            let outcome = p.reader.read_available(&mut lines);
            for line in &lines {
                p.push_line(line);
            }
            match outcome {
                Ok(ReadOutcome::HungUp) => {
                    log_info!("writer closed FIFO: {}", p.reader.path.display());
                    if p.dirty {
                        let path = p.reader.path.clone();
                        let f = p.flush();
                        self.flushes.push((path, f));
                    }
                    return true;
                }
                Ok(ReadOutcome::Drained) => return true,
                Ok(ReadOutcome::More) => {
                    if !final_drain || started.elapsed() > Duration::from_secs(5) {
                        return true;
                    }
                }
                Err(e) => {
                    log_error!("FIFO {}: {e}; unregistering it", p.reader.path.display());
                    return false;
                }
            }
        }
    }

    fn remove_producer(&mut self, i: usize) -> ProducerFifo {
        let p = self.producers.remove(i);
        if let Err(e) = p.producer.flush().wait() {
            log_error!(
                "flushing events of FIFO {} to topic {} failed: {e}",
                p.reader.path.display(),
                p.topic
            );
        }
        p
    }

    fn check_flushes(&mut self) {
        self.flushes.retain(|(path, f)| {
            if !f.completed() {
                return true;
            }
            if let Err(e) = f.wait() {
                log_error!("flushing events of FIFO {} failed: {e}", path.display());
            }
            false
        });
    }

    /// Serves the control FIFO and the producer FIFOs until a stop is requested.
    pub(super) fn run(&mut self, control: &mut FifoReader) -> CliResult<()> {
        while !self.shutdown.requested() {
            let revents: Vec<PollFlags> = {
                let interest = PollFlags::IN;
                let mut fds = Vec::with_capacity(1 + self.producers.len());
                fds.push(PollFd::new(&control.fd, interest));
                for p in &self.producers {
                    fds.push(PollFd::new(&p.reader.fd, interest));
                }
                match rustix::event::poll(&mut fds, Some(&timespec(Duration::from_millis(100)))) {
                    Ok(_) => {}
                    Err(Errno::INTR) => continue,
                    Err(e) => return Err(CliError(format!("poll failed: {e}"))),
                }
                fds.iter().map(PollFd::revents).collect()
            };
            let ready =
                |f: PollFlags| f.intersects(PollFlags::IN | PollFlags::HUP | PollFlags::ERR);
            if ready(revents[0]) {
                let mut lines = Vec::new();
                control
                    .read_available(&mut lines)
                    .map_err(|e| CliError(format!("cannot read the control FIFO: {e}")))?;
                for line in &lines {
                    self.handle_line(line);
                }
            }
            // Producers registered just now are not in `revents`; they are polled next time.
            let mut i = self.producers.len().min(revents.len() - 1);
            while i > 0 {
                i -= 1;
                if ready(revents[i + 1]) && !self.service_producer(i, false) {
                    let p = self.remove_producer(i);
                    if p.created {
                        let _ = std::fs::remove_file(&p.reader.path);
                    }
                }
            }
            for p in &mut self.producers {
                if p.dirty && p.last_push.elapsed() >= LINGER {
                    let path = p.reader.path.clone();
                    let f = p.flush();
                    self.flushes.push((path, f));
                }
            }
            self.check_flushes();
        }
        Ok(())
    }

    /// Drains and flushes producers, stops consumers, removes the FIFOs the daemon created.
    fn stop(&mut self) {
        for i in 0..self.producers.len() {
            self.service_producer(i, true);
            let p = &self.producers[i];
            if !p.reader.buf.is_empty() {
                log_warn!(
                    "FIFO {}: discarding {} bytes of an unterminated line (its writer is still connected)",
                    p.reader.path.display(),
                    p.reader.buf.len()
                );
            }
        }
        while !self.producers.is_empty() {
            let p = self.remove_producer(0);
            log_info!(
                "producer FIFO {} -> {}: {} event(s) pushed",
                p.reader.path.display(),
                p.topic,
                p.pushed
            );
            if p.created {
                let _ = std::fs::remove_file(&p.reader.path);
            }
        }
        for (_, f) in std::mem::take(&mut self.flushes) {
            let _ = f.wait();
        }
        for (path, c) in self.consumers.drain() {
            if c.worker.join().is_err() {
                log_error!("the worker of consumer FIFO {} panicked", path.display());
            }
            if c.created {
                let _ = std::fs::remove_file(&path);
            }
        }
    }

    /// Stops everything; on an error (no signal), workers are told to stop first.
    pub(super) fn stop_all(&mut self, error: bool) {
        if error {
            self.shutdown.force();
        }
        self.stop();
    }
}
