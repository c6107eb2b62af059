//! Helpers shared by the commands: the driver options every command takes, opening drivers
//! and topics, counting events, parsing numbers of the command line.

use crate::error::{CliError, CliResult, Context};
use crate::options::{layered, Dotted};
use clap::Args;
use diaspora_stream::{Driver, Error, TopicBackend, TopicHandle};
use serde_json::Value;
use std::path::PathBuf;

/// How to reach a driver: its type and options.
#[derive(Args, Debug, Clone)]
pub struct DriverArgs {
    /// Driver type, e.g. `files`, or `NAME:LIBRARY` to load driver NAME from a shared library
    /// (a path, or a file name looked for in DIASPORA_DRIVER_PATH and LD_LIBRARY_PATH).
    #[arg(long, value_name = "TYPE")]
    pub driver: String,

    /// JSON file holding the driver's options (--driver.KEY VALUE options override it).
    #[arg(long, value_name = "FILE")]
    pub driver_config: Option<PathBuf>,
}

/// Driver options: `--driver-config` merge-patched with `--driver.*`.
pub fn driver_options(args: &DriverArgs, dotted: &Dotted) -> CliResult<Value> {
    layered(
        args.driver_config.as_deref(),
        "driver config",
        dotted,
        "driver",
    )
}

/// Creates a driver by type name with its options.
pub fn make_driver(kind: &str, options: &Value) -> CliResult<Driver> {
    Driver::new(kind, options).map_err(|e| match e {
        Error::UnknownComponent { .. } => CliError(format!(
            "unknown driver {kind:?} (available: {})",
            diaspora_stream::driver::registered_drivers().join(", ")
        )),
        e => CliError(format!("cannot create driver {kind:?}: {e}")),
    })
}

/// Creates the driver described by the command line.
pub fn open_driver(args: &DriverArgs, dotted: &Dotted) -> CliResult<(Driver, Value)> {
    let options = driver_options(args, dotted)?;
    log_debug!("driver {} with options {options}", args.driver);
    Ok((make_driver(&args.driver, &options)?, options))
}

/// Opens a topic, with a plain message when it does not exist.
pub fn open_topic(driver: &Driver, name: &str) -> CliResult<TopicHandle> {
    driver.open_topic(name).map_err(|e| match e {
        Error::TopicNotFound(_) => CliError(format!("topic {name:?} does not exist")),
        e => CliError(format!("cannot open topic {name:?}: {e}")),
    })
}

/// The id after the last event of `partition` ([`TopicBackend::end_id`]), with an error naming
/// the partition.
pub fn end_position(backend: &dyn TopicBackend, partition: usize) -> CliResult<u64> {
    backend.end_id(partition).context(|| {
        format!(
            "cannot read partition {partition} of topic {:?}",
            backend.name()
        )
    })
}

/// Parses a batch size: a positive integer, or `adaptive`.
pub fn parse_batch_size(text: &str) -> Result<diaspora_stream::BatchSize, String> {
    if text.trim().eq_ignore_ascii_case("adaptive") {
        return Ok(diaspora_stream::BatchSize::Adaptive);
    }
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_COUNT).contains(&n) => Ok(diaspora_stream::BatchSize::Fixed(n)),
        _ => Err(format!(
            "invalid batch size {text:?} (expected an integer from 1 to {MAX_COUNT}, or \
             \"adaptive\")"
        )),
    }
}

/// The largest count (batch sizes, event counts) the command line accepts.
pub const MAX_COUNT: usize = 1 << 30;

/// The longest duration the command line accepts, in seconds (one year).
pub const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

/// Parses a positive count, at most [`MAX_COUNT`].
pub fn parse_count(text: &str) -> Result<usize, String> {
    match text.trim().parse::<u64>() {
        Ok(n) if n >= 1 && n <= MAX_COUNT as u64 => Ok(n as usize),
        _ => Err(format!(
            "invalid count {text:?} (expected an integer from 1 to {MAX_COUNT})"
        )),
    }
}

/// Parses a positive event count (any `u64` from 1).
pub fn parse_event_count(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(n) if n >= 1 => Ok(n),
        _ => Err(format!(
            "invalid count {text:?} (expected an integer from 1 to {})",
            u64::MAX
        )),
    }
}

/// Parses a duration in seconds: a positive finite number up to [`MAX_SECONDS`].
pub fn parse_seconds(text: &str) -> Result<f64, String> {
    match text.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 && s <= MAX_SECONDS => Ok(s),
        _ => Err(format!(
            "invalid duration {text:?} (expected a number of seconds above 0 and at most \
             {MAX_SECONDS}, i.e. one year)"
        )),
    }
}
