//! `fifo`: a daemon bridging named pipes and topics.
//!
//! The daemon creates a control FIFO and reads commands from it, one per line:
//!
//! ```text
//! /tmp/in  -> my-topic (format=json, batch_size=64)    lines written to /tmp/in become events
//! /tmp/out <- my-topic (format=raw)                    events are written to /tmp/out as lines
//! ```
//!
//! Producer FIFOs (`->`) are created if missing. Each line is one event with no data: in `raw`
//! format (default) the metadata is the line as a JSON string (properly escaped); in `json` format
//! the line is parsed as JSON. Writers may come and go: when the last one hangs up, an
//! unterminated last line still counts, pending events are flushed, and the FIFO stays registered
//! for the next writer. Events are also flushed when a FIFO has been idle for 100 ms.
//!
//! Consumer FIFOs (`<-`) are created if missing; a worker thread waits for a reader, then writes
//! one line per event: the string itself for string metadata in `raw` format, compact JSON
//! otherwise. A slow reader slows the worker down (it waits for room in the pipe, never drops an
//! event); a reader that goes away is waited for again and the line it did not get entirely is
//! written again in full to the next reader. Options: `batch_size`, `format`, `consumer` (the
//! consumer name, default: the FIFO path) and `ack=true` (acknowledge events once written, so a
//! restarted daemon does not replay them; default false, like the reference).
//!
//! On SIGINT or SIGTERM the daemon reads what producer FIFOs still hold, stores and flushes it,
//! lets consumer workers finish the line they are writing, removes the control FIFO and the FIFOs
//! it created, and exits 0.

use crate::common::{open_driver, open_topic, parse_batch_size, DriverArgs};
use crate::error::{CliError, CliResult};
use crate::options::Dotted;
use crate::signals::Shutdown;
use clap::Args;
use diaspora_stream::{
    BatchSize, Consumer, DataDescriptor, DataView, Driver, Event, Future, Metadata, Producer,
    TopicHandle,
};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Help text after the options.
pub const HELP: &str = "\
Control FIFO commands, one per line:
  PATH -> TOPIC [(OPTIONS)]   lines written into the FIFO PATH become events of TOPIC
  PATH <- TOPIC [(OPTIONS)]   events of TOPIC are written into the FIFO PATH, one per line
OPTIONS is a comma-separated list of key=value:
  format=raw|json    raw (default): a line is the event's metadata as a JSON string, and string
                     metadata is written back as is; json: lines are JSON documents
  batch_size=N       events per batch (default 128; a positive integer, or `adaptive`)
  consumer=NAME      (<- only) consumer name, default: PATH
  ack=true|false     (<- only) acknowledge events once written (default false)
FIFOs that do not exist are created (and removed at exit). Lines starting with # are ignored.

Driver options: --driver.KEY VALUE (see `diaspora-ctl topic create --help` for value typing).

Example:
  diaspora-ctl fifo --driver files --driver.root_path /tmp/topics --control-file /tmp/ctl &
  echo '/tmp/in -> steps (format=json)' > /tmp/ctl
  echo '{\"step\": 1}' > /tmp/in
SIGINT or SIGTERM stops the daemon after flushing everything.";

/// Options of `fifo`.
#[derive(Args, Debug)]
pub struct FifoArgs {
    #[command(flatten)]
    driver: DriverArgs,

    /// Path of the control FIFO to create (an existing FIFO there is replaced; removed at exit).
    #[arg(long, value_name = "PATH")]
    control_file: PathBuf,
}

/// How lines map to events.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    Raw,
    Json,
}

/// A parsed control command.
#[derive(Debug, PartialEq, Eq)]
struct Command {
    path: String,
    /// True for `->` (the FIFO produces into the topic).
    produce: bool,
    topic: String,
    options: Vec<(String, String)>,
}

/// Parses one control line; `Ok(None)` for blank lines and `#` comments.
fn parse_command(line: &str) -> Result<Option<Command>, String> {
    let trim = |s: &str| s.trim_matches([' ', '\t', '\r', '\n']).to_string();
    let line = trim(line);
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let (path, rest, produce) = if let Some((p, r)) = line.split_once(" -> ") {
        (p, r, true)
    } else if let Some((p, r)) = line.split_once(" <- ") {
        (p, r, false)
    } else {
        return Err(format!(
            "invalid command {line:?}: expected 'PATH -> TOPIC (options)' or 'PATH <- TOPIC (options)'"
        ));
    };
    let (topic, options) = match rest.split_once('(') {
        None => (trim(rest), Vec::new()),
        Some((topic, opts)) => {
            let Some((inner, after)) = opts.split_once(')') else {
                return Err(format!("invalid command {line:?}: missing ')'"));
            };
            if !trim(after).is_empty() {
                return Err(format!(
                    "invalid command {line:?}: unexpected text after ')'"
                ));
            }
            let mut options: Vec<(String, String)> = Vec::new();
            for pair in inner.split(',').map(trim).filter(|p| !p.is_empty()) {
                let Some((k, v)) = pair.split_once('=') else {
                    return Err(format!(
                        "invalid command {line:?}: option {pair:?} is not key=value"
                    ));
                };
                let (k, v) = (trim(k), trim(v));
                if k.is_empty() {
                    return Err(format!(
                        "invalid command {line:?}: option {pair:?} has no name"
                    ));
                }
                if options.iter().any(|(o, _)| *o == k) {
                    return Err(format!(
                        "invalid command {line:?}: option {k:?} is given twice"
                    ));
                }
                options.push((k, v));
            }
            (trim(topic), options)
        }
    };
    let path = trim(path);
    if path.is_empty() || topic.is_empty() {
        return Err(format!(
            "invalid command {line:?}: the FIFO path and the topic must not be empty"
        ));
    }
    Ok(Some(Command {
        path,
        produce,
        topic,
        options,
    }))
}

/// Options common to both directions, with the allowed extra keys checked.
struct CommandOptions {
    format: Format,
    batch_size: BatchSize,
    consumer: Option<String>,
    ack: bool,
}

fn command_options(cmd: &Command) -> Result<CommandOptions, String> {
    let mut o = CommandOptions {
        format: Format::Raw,
        batch_size: BatchSize::Fixed(128),
        consumer: None,
        ack: false,
    };
    for (k, v) in &cmd.options {
        match (k.as_str(), cmd.produce) {
            ("format", _) => {
                o.format = match v.as_str() {
                    "raw" => Format::Raw,
                    "json" => Format::Json,
                    _ => return Err(format!("unknown format {v:?} (expected raw or json)")),
                }
            }
            ("batch_size", _) => o.batch_size = parse_batch_size(v)?,
            ("consumer", false) => o.consumer = Some(v.clone()),
            ("ack", false) => {
                o.ack = match v.as_str() {
                    "true" => true,
                    "false" => false,
                    _ => return Err(format!("ack must be true or false, not {v:?}")),
                }
            }
            _ => {
                return Err(format!(
                    "unknown option {k:?} for a {} FIFO (known: format, batch_size{})",
                    if cmd.produce { "producer" } else { "consumer" },
                    if cmd.produce { "" } else { ", consumer, ack" }
                ))
            }
        }
    }
    Ok(o)
}

/// Longest line kept in memory; longer ones are discarded with a warning.
const MAX_LINE: usize = 64 << 20;
/// Bytes read from one FIFO before giving others a turn.
const READ_BUDGET: usize = 1 << 20;
/// A producer FIFO idle for this long has its pending events flushed.
const LINGER: Duration = Duration::from_millis(100);

fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: d.as_secs() as _,
        tv_nsec: d.subsec_nanos() as _,
    }
}

/// Why [`FifoReader::read_available`] returned.
#[derive(Debug, PartialEq, Eq)]
enum ReadOutcome {
    /// Nothing more to read for now.
    Drained,
    /// The read budget is spent; more may be waiting.
    More,
    /// Every writer hung up; the FIFO was reopened for the next one.
    HungUp,
}

/// The read end of a FIFO, splitting its input into lines.
struct FifoReader {
    path: PathBuf,
    fd: OwnedFd,
    buf: Vec<u8>,
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

    fn new(path: &Path) -> std::io::Result<Self> {
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
    fn read_available(&mut self, lines: &mut Vec<Vec<u8>>) -> std::io::Result<ReadOutcome> {
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
fn ensure_fifo(path: &Path) -> Result<bool, String> {
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
struct Daemon {
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

    fn run(&mut self, control: &mut FifoReader) -> CliResult<()> {
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
}

/// The thread writing a topic's events into a consumer FIFO.
struct ConsumerWorker {
    path: PathBuf,
    consumer: Consumer,
    format: Format,
    ack: bool,
    shutdown: Shutdown,
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

    fn run(self) {
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

/// Creates the control FIFO: parent directories, replacing a stale FIFO, refusing other files.
fn create_control_fifo(path: &Path) -> CliResult<FifoReader> {
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

/// `fifo`.
pub fn run(a: &FifoArgs, dotted: &Dotted) -> CliResult<()> {
    let shutdown = Shutdown::install()?;
    let (driver, _) = open_driver(&a.driver, dotted)?;
    let mut control = create_control_fifo(&a.control_file)?;
    log_info!(
        "FIFO daemon listening on control FIFO {}",
        a.control_file.display()
    );
    let mut daemon = Daemon {
        driver,
        topics: HashMap::new(),
        producers: Vec::new(),
        consumers: HashMap::new(),
        flushes: Vec::new(),
        shutdown: shutdown.clone(),
        control: a.control_file.clone(),
    };
    let result = daemon.run(&mut control);
    log_info!("shutting down daemon...");
    // Make sure consumer workers see the stop even if the loop ended on an error.
    if result.is_err() {
        log_error!("the daemon stops on an error; flushing what it has");
    }
    daemon.stop_all(result.is_err());
    drop(control);
    let _ = std::fs::remove_file(&a.control_file);
    log_info!("FIFO daemon stopped");
    result
}

impl Daemon {
    /// Stops everything; on an error (no signal), workers are told to stop first.
    fn stop_all(&mut self, error: bool) {
        if error {
            self.shutdown.force();
        }
        self.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(path: &str, produce: bool, topic: &str, options: &[(&str, &str)]) -> Command {
        Command {
            path: path.into(),
            produce,
            topic: topic.into(),
            options: options
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn grammar() {
        assert_eq!(
            parse_command("/tmp/a -> t1\n").unwrap().unwrap(),
            cmd("/tmp/a", true, "t1", &[])
        );
        assert_eq!(
            parse_command("\t/tmp/b <- t2 ( format = json , batch_size=4, )\r\n")
                .unwrap()
                .unwrap(),
            cmd(
                "/tmp/b",
                false,
                "t2",
                &[("format", "json"), ("batch_size", "4")]
            )
        );
        // The producer arrow is looked for first.
        assert_eq!(
            parse_command("a <- b -> c").unwrap().unwrap(),
            cmd("a <- b", true, "c", &[])
        );
        assert_eq!(parse_command("   ").unwrap(), None);
        assert_eq!(parse_command("# comment").unwrap(), None);
        for bad in [
            "no arrow here",
            "a->b",
            " -> t",
            "a ->  (x=1)",
            "a -> t (x=1",
            "a -> t (x)",
            "a -> t (=1)",
            "a -> t (x=1) junk",
            "a -> t (x=1, x=2)",
        ] {
            assert!(parse_command(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn options() {
        let o = command_options(&cmd("a", true, "t", &[])).unwrap();
        assert_eq!(o.format, Format::Raw);
        assert_eq!(o.batch_size, BatchSize::Fixed(128));
        let o = command_options(&cmd(
            "a",
            false,
            "t",
            &[
                ("format", "json"),
                ("batch_size", "1"),
                ("ack", "true"),
                ("consumer", "c"),
            ],
        ))
        .unwrap();
        assert_eq!(o.format, Format::Json);
        assert_eq!(o.batch_size, BatchSize::Fixed(1));
        assert!(o.ack);
        assert_eq!(o.consumer.as_deref(), Some("c"));
        assert!(command_options(&cmd("a", true, "t", &[("format", "xml")])).is_err());
        assert!(command_options(&cmd("a", true, "t", &[("batch_size", "-1")])).is_err());
        assert!(command_options(&cmd("a", true, "t", &[("ack", "true")])).is_err());
        assert!(command_options(&cmd("a", false, "t", &[("ack", "yes")])).is_err());
    }
}
