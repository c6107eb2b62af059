//! The crate's single error type.
//!
//! Every fallible call returns [`Result<T>`]. Variants group failures by class; messages name the
//! topic, partition, file and offset involved so that a user reading a log line knows what failed
//! and where. Errors are `Clone` because a future hands the same error to every `wait` call.

use std::path::PathBuf;
use std::sync::Arc;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in diaspora-stream.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A caller passed a value the API cannot accept (bad option, out-of-range index, ...).
    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    /// Text that should be JSON is not; the message says where the parser stopped.
    #[error("could not parse JSON: {0}")]
    Json(String),

    /// A validator rejected an event's metadata.
    #[error("invalid metadata: {0}")]
    InvalidMetadata(String),

    /// A component (validator, serializer, partition selector, driver) configuration is wrong.
    #[error("invalid {kind} configuration: {message}")]
    InvalidConfig {
        /// Which kind of component ("validator", "driver", ...).
        kind: &'static str,
        /// What is wrong with it.
        message: String,
    },

    /// No factory is registered under this name.
    #[error("no {kind} is registered under the name {name:?}")]
    UnknownComponent {
        /// Which registry was searched.
        kind: &'static str,
        /// The name that was asked for.
        name: String,
    },

    /// The topic does not exist.
    #[error("topic {0:?} does not exist")]
    TopicNotFound(String),

    /// The topic already exists.
    #[error("topic {0:?} already exists")]
    TopicExists(String),

    /// A partition index outside `0..num_partitions`.
    #[error(
        "topic {topic:?}: partition {partition} is out of range (the topic has {num_partitions})"
    )]
    PartitionOutOfRange {
        /// Topic name.
        topic: String,
        /// The offending index.
        partition: usize,
        /// How many partitions the topic has.
        num_partitions: usize,
    },

    /// An operating-system I/O call failed.
    #[error("{operation} {path}: {source}")]
    Io {
        /// What the library was doing ("write batch data to", "open", ...).
        operation: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        source: Arc<std::io::Error>,
    },

    /// A file's content is not what the format says it must be.
    #[error("corrupt file {path} at offset {offset}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// Byte offset where the problem was found.
        offset: u64,
        /// What is wrong.
        reason: String,
    },

    /// Stored bytes could not be decoded (serializer, descriptor, ...).
    #[error("could not decode {what}: {reason}")]
    Decode {
        /// What was being decoded.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },

    /// The consumer's data selector or allocator returned something unusable.
    #[error("data selection: {0}")]
    DataSelection(String),

    /// A producer holds `max_buffered_bytes` of events not yet stored, and its `on_full` policy
    /// says to fail a push rather than wait (or the wait passed its `push_timeout`).
    #[error(
        "producer {producer:?}: {buffered} bytes of events are waiting to be stored, and this push \
         of {pushed} more would pass max_buffered_bytes = {limit}{}",
        if *waited { " (waited push_timeout)" } else { " (on_full = error)" }
    )]
    ProducerFull {
        /// The producer's name.
        producer: String,
        /// Bytes held when the push was refused.
        buffered: usize,
        /// Bytes of the refused event.
        pushed: usize,
        /// The `max_buffered_bytes` option.
        limit: usize,
        /// True if the push waited `push_timeout` for room first.
        waited: bool,
    },

    /// A producer stopped renewing its liveness announcement without ending its stream: its
    /// process died (or its host is cut off). Every event it stored was delivered before this
    /// error.
    #[error("{0}")]
    ProducerLost(Box<LostProducer>),

    /// The producer or consumer was shut down while the operation was pending.
    #[error("{0} was closed")]
    Closed(&'static str),

    /// A user callback panicked; the panic was caught so it could not unwind through the engine.
    #[error("a user callback panicked: {0}")]
    CallbackPanicked(String),

    /// A collective (MPI) operation failed on some ranks; every rank gets this same error.
    #[error("{operation} failed on ranks {ranks:?}{}", local.as_ref().map(|l| format!(" (here: {l})")).unwrap_or_default())]
    Collective {
        /// What was attempted.
        operation: String,
        /// Ranks of the communicator where it failed.
        ranks: Vec<usize>,
        /// This rank's own error, when it is one of them.
        local: Option<String>,
    },

    /// A lock on a file was not obtained in time (another writer holds it: a hung process, or a
    /// lock left on a network file system).
    #[error("{what}: could not lock {path} within {} ms{}", waited.as_millis(), holder.as_ref().map(|h| format!(" (held by {h})")).unwrap_or_else(|| " (the holder is not known)".into()))]
    LockTimeout {
        /// What the lock protects (e.g. "partition 3 of topic \"steps\"").
        what: String,
        /// The locked file.
        path: PathBuf,
        /// How long the caller waited.
        waited: std::time::Duration,
        /// The holder, where the platform tells (Linux: `/proc/locks`).
        holder: Option<String>,
    },

    /// A transport call (Mercury) failed.
    #[error("{operation}: {message} (Mercury code {code})")]
    Transport {
        /// The call that failed, with what it was given.
        operation: String,
        /// The library's return code.
        code: i32,
        /// The library's description of the code.
        message: String,
    },

    /// A driver library named as `NAME:LIBRARY` could not be used: not found, not a shared
    /// library, no driver entry point, built for another version, or holding another driver.
    #[error("driver library {library}: {reason}")]
    DriverLibrary {
        /// The library as named, or the file it was found at.
        library: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A backend-specific failure that fits no other class.
    #[error("{driver} driver: {message}")]
    Driver {
        /// Driver name.
        driver: &'static str,
        /// What failed.
        message: String,
    },
}

/// What [`Error::ProducerLost`] knows of the lost producer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "producer {name:?} (process {pid} on {host}{}) stopped renewing its liveness lease {} s ago \
     without ending its stream; last event ids it stored: {}",
    rank.map(|r| format!(", rank {r}")).unwrap_or_default(),
    silent.as_secs(),
    if last_ids.is_empty() { "none".to_string() } else { last_ids.clone() }
)]
pub struct LostProducer {
    /// The producer's name.
    pub name: String,
    /// Its host.
    pub host: String,
    /// Its process id.
    pub pid: u32,
    /// Its rank in its group, if any.
    pub rank: Option<u64>,
    /// The last ids it stored, as `partition P: ID` items.
    pub last_ids: String,
    /// How long its lease had not been renewed when this was noticed.
    pub silent: std::time::Duration,
}

impl Error {
    /// Builds an [`Error::Io`] from an `std::io::Error`, naming the operation and the path.
    pub fn io(operation: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            operation,
            path: path.into(),
            source: Arc::new(source),
        }
    }

    /// Builds an [`Error::Corrupt`].
    pub fn corrupt(path: impl Into<PathBuf>, offset: u64, reason: impl Into<String>) -> Self {
        Error::Corrupt {
            path: path.into(),
            offset,
            reason: reason.into(),
        }
    }

    /// Builds an [`Error::InvalidConfig`].
    pub fn config(kind: &'static str, message: impl Into<String>) -> Self {
        Error::InvalidConfig {
            kind,
            message: message.into(),
        }
    }
}

/// Turns a caught panic payload into a readable message.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_string()
    }
}
