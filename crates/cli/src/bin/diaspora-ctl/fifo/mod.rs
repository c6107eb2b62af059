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
//!
//! The pieces: [`command`] parses the control lines, [`pipes`] creates FIFOs and reads lines
//! from them, [`daemon`] holds the registered FIFOs and runs the poll loop, and [`worker`] is
//! the thread that writes a topic's events into a consumer FIFO.

mod command;
mod daemon;
mod pipes;
mod worker;

use crate::common::{open_driver, DriverArgs};
use crate::error::CliResult;
use crate::options::Dotted;
use crate::signals::Shutdown;
use clap::Args;
use daemon::Daemon;
use pipes::create_control_fifo;
use std::path::PathBuf;

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

/// `fifo`.
pub fn run(a: &FifoArgs, dotted: &Dotted) -> CliResult<()> {
    let shutdown = Shutdown::install()?;
    let (driver, _) = open_driver(&a.driver, dotted)?;
    let mut control = create_control_fifo(&a.control_file)?;
    log_info!(
        "FIFO daemon listening on control FIFO {}",
        a.control_file.display()
    );
    let mut daemon = Daemon::new(driver, shutdown, a.control_file.clone());
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
