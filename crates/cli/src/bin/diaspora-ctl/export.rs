//! `export`: a topic (or some partitions, an id range) to an HDF5 file.
//!
//! A thin wrapper around `diaspora_stream::hdf5::export_topic` (and, built with the `mpi`
//! feature too, `export_topic_collective` under `--mpi`). Progress goes to stderr (a bar on a
//! terminal, a log line every few seconds otherwise); the summary is printed on stdout as one
//! JSON document. Without the `hdf5` feature the command exists but explains how to get it.

use crate::common::DriverArgs;
use crate::error::{CliError, CliResult};
use crate::options::Dotted;
use clap::{Args, ValueEnum};
use std::path::PathBuf;

/// Help text after the options.
pub const HELP: &str = "\
The file holds, per exported partition, the event ids, the metadata (compact JSON texts) and the
data (one byte blob with offsets), plus attributes recording the topic's name, partition count and
components; `diaspora-ctl import` reads it back into a topic. See the documentation of
diaspora_stream::hdf5 for the layout (readable with h5py or h5dump).

Id ranges: A..B (ids A to B-1), A..=B, A.. (from A on), ..B, or a single id A.

Output (stdout): one JSON document summarising the export (file, topic, events and bytes per
partition). Progress and logs go to stderr.

Built with --features mpi,hdf5, `mpiexec -n N diaspora-ctl export --mpi ...` exports
collectively: each rank writes its share of the partitions into the one file (parallel HDF5).

Driver options: --driver.KEY VALUE (see `diaspora-ctl topic create --help` for value typing).

Example:
  diaspora-ctl export --driver files --driver.root_path /scratch/topics --topic steps \\
      --format hdf5 --output steps.h5 --partitions 0,2 --ids 100..200";

/// File formats of `export` and `import`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// HDF5 (the layout of diaspora_stream::hdf5).
    Hdf5,
}

/// Options of `export`.
#[derive(Args, Debug)]
#[cfg_attr(not(feature = "hdf5"), allow(dead_code))]
pub struct ExportArgs {
    #[command(flatten)]
    driver: DriverArgs,

    /// Topic to export.
    #[arg(long, value_name = "TOPIC")]
    topic: String,

    /// File format.
    #[arg(long, value_enum, default_value_t = Format::Hdf5)]
    format: Format,

    /// File to write.
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,

    /// Partitions to export, comma-separated (default: all).
    #[arg(long, value_name = "P,P,...", value_delimiter = ',')]
    partitions: Vec<usize>,

    /// Ids to export from each partition: A..B, A..=B, A.., ..B or A (default: all).
    #[arg(long, value_name = "RANGE")]
    ids: Option<String>,

    /// Replace the output file if it exists.
    #[arg(long)]
    force: bool,

    /// Events read per fetch.
    #[arg(long, value_name = "N", default_value = "4096", value_parser = crate::common::parse_count)]
    batch_size: usize,

    /// Export collectively with the ranks of MPI_COMM_WORLD (run under mpiexec; needs a parallel
    /// HDF5 library).
    #[cfg(all(feature = "mpi", feature = "hdf5"))]
    #[arg(long)]
    mpi: bool,
}

#[cfg(not(feature = "hdf5"))]
/// `export` without HDF5 support.
pub fn run(_: &ExportArgs, _: &Dotted) -> CliResult<()> {
    Err(CliError(
        "this diaspora-ctl was built without HDF5 support (rebuild with `--features hdf5`)".into(),
    ))
}

#[cfg(feature = "hdf5")]
pub use imp::{print_json, run, summary_json, Reporter};

#[cfg(feature = "hdf5")]
mod imp {
    use super::*;
    use crate::common::{open_driver, open_topic};
    use crate::logging::{enabled, Level};
    use diaspora_stream::hdf5::{self, ExportOptions, IdRange, PartitionSummary, Phase, Progress};
    use serde_json::{json, Value};
    use std::io::{IsTerminal, Write};
    use std::time::{Duration, Instant};

    /// Shows progress on stderr: a bar on a terminal, otherwise an info line every 5 seconds.
    pub struct Reporter {
        bar: Option<indicatif::ProgressBar>,
        phase: Option<Phase>,
        terminal: bool,
        last_log: Instant,
        quiet: bool,
    }

    fn phase_name(p: Phase) -> &'static str {
        match p {
            Phase::Scan => "counting",
            Phase::Write => "writing",
            Phase::Check => "checking",
            Phase::Import => "importing",
        }
    }

    impl Reporter {
        /// A reporter; `quiet` shows nothing (nor does a log level above info).
        pub fn new(quiet: bool) -> Reporter {
            let quiet = quiet || !enabled(Level::Info);
            Reporter {
                bar: None,
                phase: None,
                terminal: !quiet && std::io::stderr().is_terminal(),
                last_log: Instant::now(),
                quiet,
            }
        }

        /// Takes one report.
        pub fn update(&mut self, p: &Progress) {
            if self.quiet {
                return;
            }
            if self.phase != Some(p.phase) {
                self.finish();
                self.phase = Some(p.phase);
                self.last_log = Instant::now();
                if self.terminal {
                    let bar = match p.events_total {
                        Some(total) => indicatif::ProgressBar::new(total),
                        None => indicatif::ProgressBar::new_spinner(),
                    };
                    let template = if p.events_total.is_some() {
                        "{prefix} {elapsed_precise} [{bar:40}] {pos}/{len} events ({per_sec}) {msg}"
                    } else {
                        "{prefix} {elapsed_precise} {spinner} {pos} events ({per_sec}) {msg}"
                    };
                    if let Ok(style) = indicatif::ProgressStyle::with_template(template) {
                        bar.set_style(style.progress_chars("=> "));
                    }
                    bar.set_prefix(phase_name(p.phase));
                    bar.enable_steady_tick(Duration::from_millis(200));
                    self.bar = Some(bar);
                }
            }
            if let Some(bar) = &self.bar {
                bar.set_position(p.events_done);
                bar.set_message(format!(
                    "partition {}, {} MiB",
                    p.partition,
                    p.bytes_done >> 20
                ));
            } else if self.last_log.elapsed() >= Duration::from_secs(5) {
                self.last_log = Instant::now();
                let total = p.events_total.map(|t| format!("/{t}")).unwrap_or_default();
                log_info!(
                    "{}: {}{total} events, {} MiB (partition {})",
                    phase_name(p.phase),
                    p.events_done,
                    p.bytes_done >> 20,
                    p.partition
                );
            }
        }

        /// Removes the bar.
        pub fn finish(&mut self) {
            if let Some(bar) = self.bar.take() {
                bar.finish_and_clear();
            }
        }
    }

    impl Drop for Reporter {
        fn drop(&mut self) {
            self.finish();
        }
    }

    fn partitions_json(parts: &[PartitionSummary]) -> Value {
        Value::Array(
            parts
                .iter()
                .map(|p| {
                    json!({
                        "partition": p.partition,
                        "events": p.events,
                        "metadata_bytes": p.metadata_bytes,
                        "data_bytes": p.data_bytes,
                        "first_id": p.first_id,
                        "last_id": p.last_id,
                    })
                })
                .collect(),
        )
    }

    /// The summary document printed on stdout.
    pub fn summary_json(fields: Value, parts: &[PartitionSummary]) -> Value {
        let mut doc = fields;
        doc["events"] = json!(parts.iter().map(|p| p.events).sum::<u64>());
        doc["data_bytes"] = json!(parts.iter().map(|p| p.data_bytes).sum::<u64>());
        doc["partitions"] = partitions_json(parts);
        doc
    }

    /// Prints a JSON document on stdout.
    pub fn print_json(doc: &Value) -> CliResult<()> {
        let mut out = std::io::stdout().lock();
        match writeln!(out, "{doc}").and_then(|_| out.flush()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
            Err(e) => Err(CliError(format!("cannot write to stdout: {e}"))),
        }
    }

    /// `export`.
    pub fn run(a: &ExportArgs, dotted: &Dotted) -> CliResult<()> {
        let Format::Hdf5 = a.format;
        let ids = match &a.ids {
            Some(text) => text
                .parse::<IdRange>()
                .map_err(|e| CliError(format!("--ids: {e}")))?,
            None => IdRange::ALL,
        };
        if !a.force && a.output.exists() {
            return Err(CliError(format!(
                "{} already exists (give --force to replace it)",
                a.output.display()
            )));
        }
        let options = ExportOptions {
            partitions: (!a.partitions.is_empty()).then(|| a.partitions.clone()),
            ids,
            overwrite: a.force,
            batch_events: a.batch_size,
        };
        #[cfg(feature = "mpi")]
        if a.mpi {
            return run_collective(a, dotted, &options);
        }
        let (driver, _) = open_driver(&a.driver, dotted)?;
        let topic = open_topic(&driver, &a.topic)?;
        log_info!(
            "exporting topic {:?} ({} partitions{}, ids {ids}) to {}",
            a.topic,
            topic.num_partitions(),
            if a.partitions.is_empty() {
                String::new()
            } else {
                format!(", selected {:?}", a.partitions)
            },
            a.output.display()
        );
        let start = Instant::now();
        let mut reporter = Reporter::new(false);
        let summary = hdf5::export_topic_with_progress(&topic, &a.output, &options, &mut |p| {
            reporter.update(p)
        })
        .map_err(|e| CliError(format!("cannot export topic {:?}: {e}", a.topic)))?;
        reporter.finish();
        log_info!(
            "exported {} events ({} data bytes) of topic {:?} to {} in {:.1} s",
            summary.events(),
            summary.data_bytes(),
            a.topic,
            a.output.display(),
            start.elapsed().as_secs_f64()
        );
        print_json(&summary_json(
            json!({
                "path": summary.path,
                "format": "hdf5",
                "topic": summary.topic,
                "num_partitions": summary.num_partitions,
            }),
            &summary.partitions,
        ))
    }

    #[cfg(feature = "mpi")]
    fn run_collective(a: &ExportArgs, dotted: &Dotted, options: &ExportOptions) -> CliResult<()> {
        use diaspora_stream::mpi::mpi;
        use mpi::collective::SystemOperation;
        use mpi::traits::*;
        let universe =
            mpi::initialize().ok_or_else(|| CliError("MPI was already initialised".into()))?;
        let world = universe.world();
        let (rank, size) = (world.rank(), world.size());
        if enabled(Level::Info) {
            // One write, so that the lines of the ranks do not interleave on a shared stderr.
            let line = format!(
                "rank {rank}/{size}: collective export of topic {:?} to {}\n",
                a.topic,
                a.output.display()
            );
            let _ = std::io::stderr().write_all(line.as_bytes());
        }
        // Every rank opens the topic; a failure anywhere stops every rank.
        let opened = open_driver(&a.driver, dotted).and_then(|(d, _)| open_topic(&d, &a.topic));
        let failed = opened.is_err() as u8;
        let mut any = 0u8;
        world.all_reduce_into(&failed, &mut any, SystemOperation::max());
        let topic = match opened {
            Err(e) => return Err(e),
            Ok(_) if any != 0 => {
                return Err(CliError(format!(
                    "another rank could not open topic {:?}",
                    a.topic
                )))
            }
            Ok(t) => t,
        };
        let start = Instant::now();
        let mut reporter = Reporter::new(rank != 0);
        let summary = hdf5::export_topic_collective_with_progress(
            &world,
            &topic,
            &a.output,
            options,
            &mut |p| reporter.update(p),
        )
        .map_err(|e| CliError(format!("cannot export topic {:?}: {e}", a.topic)))?;
        reporter.finish();
        if rank == 0 {
            log_info!(
                "{size} ranks exported {} events ({} data bytes) of topic {:?} to {} in {:.1} s",
                summary.events(),
                summary.data_bytes(),
                a.topic,
                a.output.display(),
                start.elapsed().as_secs_f64()
            );
            print_json(&summary_json(
                json!({
                    "path": summary.path,
                    "format": "hdf5",
                    "topic": summary.topic,
                    "num_partitions": summary.num_partitions,
                    "ranks": size,
                }),
                &summary.partitions,
            ))?;
        }
        Ok(())
    }
}
