//! `import`: an HDF5 export file back into a topic.
//!
//! A thin wrapper around `diaspora_stream::hdf5::import_file`. The topic (default: the name
//! recorded in the file) is created with the file's partition count and components, plus
//! `--topic-config` / `--topic.KEY VALUE` driver-specific options; `--append` adds the events
//! to an existing topic instead. The summary is printed on stdout as one JSON document.

use crate::common::DriverArgs;
use crate::error::{CliError, CliResult};
use crate::options::Dotted;
use clap::Args;
use std::path::PathBuf;

/// Help text after the options.
pub const HELP: &str = "\
The whole file is checked (structure, ids, offsets, metadata JSON) before the topic is created or
written to. Without --append the topic must not exist; it is created with the partition count and
the validator, partition selector and serializer recorded in the file. Each partition's events are
appended in id order to the partition of the same index; importing a whole export into a new topic
gives every event its original id (\"ids_preserved\" in the summary).

Output (stdout): one JSON document summarising the import. Progress and logs go to stderr.

Hierarchical options (the next argument is always the value):
  --driver.KEY VALUE   driver option (overrides --driver-config)
  --topic.KEY VALUE    driver-specific topic option for creating the topic, e.g.
                       --topic.replication_factor 1 for Kafka (num_partitions comes from the file)

Example:
  diaspora-ctl import --driver files --driver.root_path /scratch/topics --input steps.h5 \\
      --topic steps-copy";

/// Options of `import`.
#[derive(Args, Debug)]
#[cfg_attr(not(feature = "hdf5"), allow(dead_code))]
pub struct ImportArgs {
    #[command(flatten)]
    driver: DriverArgs,

    /// File to read.
    #[arg(short, long, value_name = "FILE")]
    input: PathBuf,

    /// File format.
    #[arg(long, value_enum, default_value_t = crate::export::Format::Hdf5)]
    format: crate::export::Format,

    /// Topic to write to (default: the topic name recorded in the file).
    #[arg(long, value_name = "TOPIC")]
    topic: Option<String>,

    /// Add the events to the topic if it exists (otherwise an existing topic is an error).
    #[arg(long)]
    append: bool,

    /// Partitions of the file to import, comma-separated (default: all in the file).
    #[arg(long, value_name = "P,P,...", value_delimiter = ',')]
    partitions: Vec<usize>,

    /// JSON file holding driver-specific topic options (--topic.KEY VALUE options override it).
    #[arg(long, value_name = "FILE")]
    topic_config: Option<PathBuf>,

    /// Events appended per batch.
    #[arg(long, value_name = "N", default_value = "4096", value_parser = crate::common::parse_count)]
    batch_size: usize,
}

#[cfg(not(feature = "hdf5"))]
/// `import` without HDF5 support.
pub fn run(_: &ImportArgs, _: &Dotted) -> CliResult<()> {
    Err(CliError(
        "this diaspora-ctl was built without HDF5 support (rebuild with `--features hdf5`)".into(),
    ))
}

#[cfg(feature = "hdf5")]
/// `import`.
pub fn run(a: &ImportArgs, dotted: &Dotted) -> CliResult<()> {
    use crate::common::open_driver;
    use crate::export::{print_json, summary_json, Reporter};
    use crate::options::layered;
    use diaspora_stream::hdf5::{self, Error, ExportFile, ImportOptions};
    use serde_json::json;
    use std::time::Instant;

    let crate::export::Format::Hdf5 = a.format;
    let topic_options = layered(a.topic_config.as_deref(), "topic config", dotted, "topic")?;
    let name = match &a.topic {
        Some(t) => t.clone(),
        None => {
            let file = ExportFile::open(&a.input)
                .map_err(|e| CliError(format!("cannot import {}: {e}", a.input.display())))?;
            file.info().topic.clone()
        }
    };
    let (driver, _) = open_driver(&a.driver, dotted)?;
    let options = ImportOptions {
        append: a.append,
        partitions: (!a.partitions.is_empty()).then(|| a.partitions.clone()),
        topic_options,
        batch_events: a.batch_size,
    };
    log_info!("importing {} into topic {name:?}", a.input.display());
    let start = Instant::now();
    let mut reporter = Reporter::new(false);
    let summary = hdf5::import_file_with_progress(&a.input, &driver, &name, &options, &mut |p| {
        reporter.update(p)
    })
    .map_err(|e| match e {
        Error::TopicExists(_) => CliError(format!(
            "topic {name:?} already exists (give --append to add the events to it, or --topic \
                 to import under another name)"
        )),
        e => CliError(format!(
            "cannot import {} into topic {name:?}: {e}",
            a.input.display()
        )),
    })?;
    reporter.finish();
    log_info!(
        "imported {} events ({} data bytes) into {} topic {name:?} in {:.1} s{}",
        summary.events(),
        summary.data_bytes(),
        if summary.created { "new" } else { "existing" },
        start.elapsed().as_secs_f64(),
        if summary.ids_preserved {
            ""
        } else {
            " (the events got new ids)"
        }
    );
    print_json(&summary_json(
        json!({
            "path": a.input,
            "format": "hdf5",
            "topic": summary.topic,
            "created": summary.created,
            "ids_preserved": summary.ids_preserved,
        }),
        &summary.partitions,
    ))
}
