//! `diaspora-ctl`: administer Diaspora Stream topics and move events from the command line.
//!
//! Commands:
//!
//! * `topic create | list | info | check | repair`: create topics (with their validator,
//!   serializer and partition selector), list them, inspect partitions, sizes and consumer
//!   positions, verify a files-driver topic and repair what its files allow;
//! * `produce` / `consume`: JSON Lines in and out (like `kcat`), for scripts and tests;
//! * `fifo`: a daemon bridging named pipes and topics, driven by a control FIFO;
//! * `forward`: a daemon copying topics to other topics, possibly of other drivers, from a YAML
//!   configuration, without losing or duplicating events across a clean restart.
//! * `export` / `import`: a topic to an HDF5 file and back (feature `hdf5`).
//!
//! Driver, topic and component options can be given as hierarchical command-line options
//! (`--driver.root_path /tmp/x`, `--topic.num_partitions 4`; see [`options`]), on top of JSON
//! files (`--driver-config`, `--topic-config`).
//!
//! Errors go to stderr as `error: ...` with exit code 1; logs go to stderr; stdout carries only
//! data (`consume`, `topic list`, `topic info`, the count printed by `produce`).

#[macro_use]
mod logging;
mod common;
mod consume;
mod error;
mod export;
mod fifo;
mod files_info;
mod forward;
mod import;
mod msk_token;
mod options;
mod produce;
mod signals;
mod topic;

use clap::{Parser, Subcommand};
use error::CliResult;
use std::process::ExitCode;

/// Text appended to the help of commands that take driver options.
const DRIVER_OPTIONS_HELP: &str = "\
Driver options:
  --driver.KEY[.KEY...] VALUE   Set a driver option (e.g. --driver.root_path /scratch/topics).
                                Values are typed: integers and decimals become numbers, true and
                                false become booleans, a value starting with { or [ is parsed as
                                JSON, a value with commas becomes a list (a,b,c); anything else is a
                                string. These override the file given with --driver-config
                                (RFC 7386 merge patch). The next argument is always the value, even
                                if it starts with --.";

/// Text appended to the help of `topic create`.
const CREATE_OPTIONS_HELP: &str = "\
Hierarchical options (the next argument is always the value):
  --driver.KEY VALUE              driver option (overrides --driver-config)
  --topic.KEY VALUE               topic option, e.g. --topic.num_partitions 4 (overrides --topic-config)
  --validator.KEY VALUE           validator option (needs a type: --validator or a \"type\" key)
  --serializer.KEY VALUE          serializer option
  --partition-selector.KEY VALUE  partition selector option
Keys may be nested with dots (--topic.config.option1 value1). Values are typed: integers and
decimals become numbers, true/false booleans, a value starting with { or [ JSON, a value with commas
a list; anything else is a string.

Example:
  diaspora-ctl topic create --driver files --driver.root_path /tmp/topics --name steps \\
      --topic.num_partitions 4 --validator schema \\
      --validator.schema '{\"type\":\"object\",\"required\":[\"step\"]}'";

/// Command-line interface of `diaspora-ctl`.
#[derive(Parser, Debug)]
#[command(
    name = "diaspora-ctl",
    version,
    about = "Administer Diaspora Stream topics and move events between programs, files and drivers",
    arg_required_else_help = true,
    after_help = "Run `diaspora-ctl <command> --help` (e.g. `diaspora-ctl topic create --help`) for the options of a command."
)]
struct Cli {
    /// Log level of the messages written to stderr.
    #[arg(long, global = true, value_enum, default_value_t = logging::Level::Info, value_name = "LEVEL")]
    logging: logging::Level,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create, list and inspect topics.
    #[command(subcommand, arg_required_else_help = true)]
    Topic(TopicCommand),
    /// Write events read as JSON Lines from stdin to a topic.
    #[command(after_help = produce::HELP)]
    Produce(produce::ProduceArgs),
    /// Print events of a topic as JSON Lines on stdout.
    #[command(after_help = consume::HELP)]
    Consume(consume::ConsumeArgs),
    /// Run a daemon bridging named pipes (FIFOs) and topics, driven by a control FIFO.
    #[command(after_help = fifo::HELP)]
    Fifo(fifo::FifoArgs),
    /// Run a daemon forwarding events from topics to other topics, as a YAML file says.
    #[command(after_help = forward::HELP)]
    Forward(forward::ForwardArgs),
    /// Write a topic (or some partitions, an id range) to an HDF5 file (feature `hdf5`).
    #[command(after_help = export::HELP)]
    Export(export::ExportArgs),
    /// Read an HDF5 file written by `export` back into a topic (feature `hdf5`).
    #[command(after_help = import::HELP)]
    Import(import::ImportArgs),
    /// Print a fresh Amazon MSK IAM token for a region (feature `msk`), to check credentials.
    #[command(after_help = msk_token::HELP)]
    MskToken(msk_token::MskTokenArgs),
}

#[derive(Subcommand, Debug)]
enum TopicCommand {
    /// Create a topic.
    #[command(after_help = CREATE_OPTIONS_HELP)]
    Create(topic::CreateArgs),
    /// List the topics of a driver, one per line (one JSON document per line with --verbose).
    #[command(after_help = DRIVER_OPTIONS_HELP)]
    List(topic::ListArgs),
    /// Describe a topic as JSON: partitions, events and bytes per partition, consumer positions.
    ///
    /// "events" of a partition is the id after its last event (its event count when ids have no
    /// gaps, as with the files driver). Byte sizes and the list of consumers ("next": the next
    /// id each will read, "pending": events after it) are given for the files driver.
    #[command(after_help = DRIVER_OPTIONS_HELP)]
    Info(topic::InfoArgs),
    /// Show, as JSON, per partition the last event id and the last step every producer closed,
    /// and the producers that announced themselves with their state: "alive", "ended", or
    /// "lost" (no renewal for --liveness-timeout seconds without ending its stream: its process
    /// died). Producer liveness is kept by the files driver.
    #[command(after_help = DRIVER_OPTIONS_HELP)]
    Status(topic::StatusArgs),
    /// Verify every partition of a files-driver topic: index, metadata, data and checksums
    /// agree. Prints what is wrong and which events it affects; exits 1 if anything is.
    ///
    /// Changes nothing. Bytes past the last event are explained: events that `topic repair`
    /// can restore, or what a writer killed mid-batch left behind.
    #[command(after_help = DRIVER_OPTIONS_HELP)]
    Check(topic::CheckArgs),
    /// Repair a files-driver topic as far as its files allow: drop torn index tails, restore
    /// index records of stored events from their checksums (or, for data-less events, from the
    /// metadata). A dry run unless --apply is given.
    ///
    /// Each partition is locked while it is repaired; the command refuses to touch a partition
    /// whose lock a writer holds, and names the holder. Damage it cannot undo (flipped bits,
    /// changed offsets) is reported, never guessed at.
    #[command(after_help = DRIVER_OPTIONS_HELP)]
    Repair(topic::RepairArgs),
}

fn main() -> ExitCode {
    let (args, dotted) = match options::extract_dotted(std::env::args_os().collect()) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return match e.kind() {
                clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                    ExitCode::SUCCESS
                }
                _ => ExitCode::from(1),
            };
        }
    };
    logging::set_level(cli.logging);
    match run(cli.command, &dotted) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(command: Command, dotted: &options::Dotted) -> CliResult<()> {
    match command {
        Command::Topic(TopicCommand::Create(a)) => topic::create(&a, dotted),
        Command::Topic(TopicCommand::List(a)) => {
            dotted.only(&["driver"], "topic list")?;
            topic::list(&a, dotted)
        }
        Command::Topic(TopicCommand::Info(a)) => {
            dotted.only(&["driver"], "topic info")?;
            topic::info(&a, dotted)
        }
        Command::Topic(TopicCommand::Status(a)) => {
            dotted.only(&["driver"], "topic status")?;
            topic::status(&a, dotted)
        }
        Command::Topic(TopicCommand::Check(a)) => {
            dotted.only(&["driver"], "topic check")?;
            topic::check(&a, dotted)
        }
        Command::Topic(TopicCommand::Repair(a)) => {
            dotted.only(&["driver"], "topic repair")?;
            topic::repair(&a, dotted)
        }
        Command::Produce(a) => {
            dotted.only(&["driver"], "produce")?;
            produce::run(&a, dotted)
        }
        Command::Consume(a) => {
            dotted.only(&["driver"], "consume")?;
            consume::run(&a, dotted)
        }
        Command::Fifo(a) => {
            dotted.only(&["driver"], "fifo")?;
            fifo::run(&a, dotted)
        }
        Command::Forward(a) => {
            dotted.only(&[], "forward")?;
            forward::run(&a)
        }
        Command::Export(a) => {
            dotted.only(&["driver"], "export")?;
            export::run(&a, dotted)
        }
        Command::Import(a) => {
            dotted.only(&["driver", "topic"], "import")?;
            import::run(&a, dotted)
        }
        Command::MskToken(a) => {
            dotted.only(&[], "msk-token")?;
            msk_token::run(&a)
        }
    }
}
