//! `consume`: events of a topic as JSON Lines on stdout.
//!
//! Each event is printed as `{"partition":P,"id":N,"metadata":<JSON>,"data":"<base64>"}`.
//! Without `--follow` the command first takes a snapshot of how many events each selected
//! partition holds (with the driver's `fetch`), prints the events up to it and stops; with
//! `--follow` it runs until SIGINT or SIGTERM, or until the producers end the stream
//! (`Producer::end_of_stream`). With `--ack` (which needs `--consumer`), events are
//! acknowledged after they have been written to stdout, so a later run with the same consumer
//! name starts after them.

use crate::common::{
    end_position, open_driver, open_topic, parse_batch_size, parse_event_count, parse_seconds,
    DriverArgs,
};
use crate::error::{CliError, CliResult};
use crate::options::Dotted;
use crate::signals::Shutdown;
use base64::prelude::*;
use clap::Args;
use diaspora_stream::{BatchSize, Event, StartPosition};
use std::collections::BTreeMap;
use std::io::{BufWriter, Write};
use std::time::{Duration, Instant};

/// Help text after the options.
pub const HELP: &str = "\
Output (stdout), one event per line:
  {\"partition\": P, \"id\": N, \"metadata\": <JSON>, \"data\": \"<base64>\"}
Without --follow, the command prints the events that the selected partitions hold when it starts
(after the consumer's acknowledged position) and exits. With --follow, it waits for new events
until SIGINT or SIGTERM, or until the producers have ended the stream. With --ack, printed events are acknowledged under the --consumer name, so
the next run with that name starts after them.

Driver options: --driver.KEY VALUE (see `diaspora-ctl topic create --help` for value typing).

Example:
  diaspora-ctl consume --driver files --driver.root_path /tmp/topics --topic steps --partitions 0,2";

/// Options of `consume`.
#[derive(Args, Debug)]
pub struct ConsumeArgs {
    #[command(flatten)]
    driver: DriverArgs,

    /// Topic to read.
    #[arg(long, value_name = "TOPIC")]
    topic: String,

    /// Consumer name: where to start (after its last acknowledged event) and, with --ack, under
    /// which name to acknowledge. Without it the consumer is anonymous and starts at the beginning.
    #[arg(long, value_name = "NAME")]
    consumer: Option<String>,

    /// Where to start: `last_ack` (the default: after the --consumer's last acknowledged event,
    /// the beginning for an anonymous consumer), `beginning`, `end` (only events pushed from now
    /// on), `step:K` (the first event of step K), or ids per partition as `P=ID,P=ID`.
    #[arg(long, value_name = "POSITION", value_parser = parse_start)]
    from: Option<StartPosition>,

    /// Partitions to read, comma-separated (default: all).
    #[arg(long, value_name = "P,P,...", value_delimiter = ',')]
    partitions: Vec<usize>,

    /// Stop after this many events (at least 1).
    #[arg(long, value_name = "N", value_parser = parse_event_count)]
    max: Option<u64>,

    /// Acknowledge the printed events (needs --consumer).
    #[arg(long)]
    ack: bool,

    /// Keep waiting for new events until SIGINT, SIGTERM or the end of the stream.
    #[arg(long)]
    follow: bool,

    /// Without --follow, give up (with a warning) when no event arrives for this many seconds
    /// although the snapshot says more are due (above 0, at most one year).
    #[arg(long, value_name = "SECONDS", default_value = "30", value_parser = parse_seconds)]
    idle_timeout: f64,

    /// After this many seconds without events, check that the producers are alive (on drivers
    /// that keep producer liveness, such as files): a producer that died without ending its
    /// stream stops the command with an error naming it (exit status 1), after every event it
    /// stored was printed. 0 turns the check off.
    #[arg(long, value_name = "SECONDS", default_value = "10", value_parser = parse_liveness)]
    liveness_timeout: f64,

    /// Events fetched per batch: a positive integer, or `adaptive`.
    #[arg(long, value_name = "N", value_parser = parse_batch_size, default_value = "adaptive")]
    batch_size: BatchSize,
}

/// Formats one output line (without the newline).
pub fn event_line(ev: &Event) -> String {
    let metadata = serde_json::to_string(ev.metadata().json()).unwrap_or_else(|_| "null".into());
    format!(
        "{{\"partition\":{},\"id\":{},\"metadata\":{},\"data\":\"{}\"}}",
        ev.partition(),
        ev.id(),
        metadata,
        BASE64_STANDARD.encode(ev.data().to_vec())
    )
}

fn parse_liveness(s: &str) -> Result<f64, String> {
    match s.trim().parse::<f64>() {
        Ok(0.0) => Ok(0.0),
        _ => parse_seconds(s),
    }
}

fn parse_start(s: &str) -> Result<StartPosition, String> {
    s.parse().map_err(|e: diaspora_stream::Error| e.to_string())
}

/// Stdout with acknowledgements that follow successful flushes.
struct Output {
    out: BufWriter<std::io::StdoutLock<'static>>,
    /// Last printed event per partition, to acknowledge after the next flush.
    to_ack: BTreeMap<usize, Event>,
    ack: bool,
    /// Stdout was closed by the reader (e.g. `| head`).
    closed: bool,
}

impl Output {
    fn write(&mut self, ev: &Event) -> CliResult<()> {
        let mut line = event_line(ev);
        line.push('\n');
        match self.out.write_all(line.as_bytes()) {
            Ok(()) => {
                if self.ack {
                    self.to_ack.insert(ev.partition(), ev.clone());
                }
                Ok(())
            }
            Err(e) => self.failed(e),
        }
    }

    fn failed(&mut self, e: std::io::Error) -> CliResult<()> {
        if e.kind() == std::io::ErrorKind::BrokenPipe {
            self.closed = true;
            self.to_ack.clear();
            Ok(())
        } else {
            Err(CliError(format!("cannot write to stdout: {e}")))
        }
    }

    /// Flushes stdout, then acknowledges what was flushed.
    fn commit(&mut self) -> CliResult<()> {
        if let Err(e) = self.out.flush() {
            return self.failed(e);
        }
        for (p, ev) in std::mem::take(&mut self.to_ack) {
            ev.acknowledge().map_err(|e| {
                CliError(format!(
                    "cannot acknowledge event {} of partition {p}: {e}",
                    ev.id()
                ))
            })?;
        }
        Ok(())
    }
}

/// `consume`.
pub fn run(a: &ConsumeArgs, dotted: &Dotted) -> CliResult<()> {
    if a.ack && a.consumer.is_none() {
        return Err(CliError(
            "--ack needs --consumer NAME (positions are stored under that name)".into(),
        ));
    }
    let shutdown = Shutdown::install()?;
    let (driver, _) = open_driver(&a.driver, dotted)?;
    let topic = open_topic(&driver, &a.topic)?;
    let n = topic.num_partitions();
    let targets: Vec<usize> = if a.partitions.is_empty() {
        (0..n).collect()
    } else {
        a.partitions.clone()
    };
    for (i, &p) in targets.iter().enumerate() {
        if p >= n {
            return Err(CliError(format!(
                "partition {p} is out of range (topic {:?} has {n})",
                a.topic
            )));
        }
        if targets[..i].contains(&p) {
            return Err(CliError(format!("partition {p} is listed twice")));
        }
    }
    let name = a.consumer.clone().unwrap_or_else(|| {
        // Never acknowledged, so it starts at the beginning and leaves no trace.
        format!(
            "diaspora-ctl-anonymous-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        )
    });
    let backend = topic.backend().clone();
    let consumer = topic
        .consumer(&name)
        .targets(&targets)
        .batch_size(a.batch_size)
        .start(a.from.clone().unwrap_or_default())
        .liveness_timeout(Duration::from_secs_f64(a.liveness_timeout))
        .build()
        .map_err(|e| CliError(format!("cannot create a consumer: {e}")))?;
    // Snapshot: per target partition, the position to reach (None with --follow).
    let mut remaining: BTreeMap<usize, (u64, Option<u64>)> = BTreeMap::new();
    for (&p, &next) in targets.iter().zip(consumer.start_ids()) {
        let end = if a.follow {
            None
        } else {
            match end_position(backend.as_ref(), p) {
                Ok(end) => Some(end),
                Err(e) => {
                    // Drivers that cannot be read below the engines: stop on idleness instead.
                    log_warn!(
                        "cannot find the end of partition {p} ({e}); stopping after {} s without events",
                        a.idle_timeout
                    );
                    Some(u64::MAX)
                }
            }
        };
        log_debug!("partition {p}: from {next} to {end:?}");
        remaining.insert(p, (next, end));
    }
    let exhausted = |r: &BTreeMap<usize, (u64, Option<u64>)>| {
        r.values().all(|(n, e)| e.is_some_and(|e| *n >= e))
    };
    let mut out = Output {
        out: BufWriter::with_capacity(1 << 16, std::io::stdout().lock()),
        to_ack: BTreeMap::new(),
        ack: a.ack,
        closed: false,
    };
    let mut printed = 0u64;
    let mut last_event = Instant::now();
    let idle_timeout = Duration::from_secs_f64(a.idle_timeout);
    loop {
        if shutdown.requested() || out.closed || a.max.is_some_and(|m| printed >= m) {
            break;
        }
        if !a.follow && exhausted(&remaining) {
            break;
        }
        match consumer.pull().wait_timeout(Duration::from_millis(100)) {
            Ok(Some(ev)) => {
                last_event = Instant::now();
                let p = ev.partition();
                let Some(slot) = remaining.get_mut(&p) else {
                    continue;
                };
                if let Some(step) = ev.completed_step() {
                    log_info!("step {step} complete: every producer closed it");
                    continue;
                }
                if ev.is_end_of_stream() {
                    // Every selected partition ended its stream: nothing more will come, even
                    // with --follow.
                    slot.1 = Some(slot.0);
                    break;
                }
                if slot.1.is_some_and(|end| ev.id() >= end) {
                    // Past the snapshot: leave it (unacknowledged) for the next run.
                    continue;
                }
                slot.0 = ev.id() + 1;
                out.write(&ev)?;
                printed += 1;
                if printed.is_multiple_of(1024) {
                    out.commit()?;
                }
            }
            Ok(None) => {
                out.commit()?;
                if !a.follow && last_event.elapsed() >= idle_timeout {
                    log_warn!(
                        "no event arrived for {:.1} s although the partitions held more when the command started; stopping",
                        a.idle_timeout
                    );
                    break;
                }
            }
            Err(e) => {
                out.commit()?;
                return Err(CliError(format!(
                    "cannot read topic {:?}: {e} ({printed} event(s) printed)",
                    a.topic
                )));
            }
        }
    }
    out.commit()?;
    log_debug!("printed {printed} event(s)");
    Ok(())
}
