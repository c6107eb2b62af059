//! HDF5 export and import of topics (feature `hdf5`, built on the `hdf5-metno` crate).
//!
//! [`export_topic`] writes the events of a topic (all partitions, or some of them, optionally
//! only an id range) to one HDF5 file; [`import_file`] reads such a file back into a topic,
//! event for event: the metadata JSON values and the data bytes are equal, and so are the ids
//! when a whole topic is imported into a fresh one. [`ExportFile`] reads a file without a
//! topic (to inspect it, or to analyse the events directly). With the `mpi` feature as well,
//! `export_topic_collective` (in `collective`) lets the ranks of a communicator export their
//! own partitions into one shared file through MPI-IO (parallel HDF5).
//!
//! # File layout (format version 1)
//!
//! ```text
//! /                          attributes:
//!     diaspora_format        string  "diaspora-stream-hdf5"
//!     format_version         u32     1
//!     topic                  string  name of the exported topic
//!     num_partitions         u64     partition count of the topic
//!     validator              string  the topic's validator configuration (compact JSON)
//!     partition_selector     string  its partition selector configuration (compact JSON)
//!     serializer             string  its serializer configuration (compact JSON)
//!     driver                 string  driver the topic was read from (informative)
//!     id_start, id_end       u64     the exported id range [id_start, id_end); id_end = 2^64-1
//!                                    when unbounded
//!     exported_partitions    u64[k]  the partitions present in the file, ascending
//!     created_by             string  "diaspora-stream <version>"
//! /partitions/<%08d>/        one group per exported partition (e.g. /partitions/00000003),
//!                            attributes partition, num_events, metadata_bytes, data_bytes (u64)
//!     ids                    u64[n]   event ids, strictly increasing
//!     metadata               u8[M]    the compact JSON text of every event's metadata, UTF-8,
//!                                     concatenated
//!     metadata_offsets       u64[n+1] event i's metadata is metadata[off[i] .. off[i+1]]
//!     data                   u8[D]    every event's data bytes, concatenated
//!     data_offsets           u64[n+1] event i's data is data[off[i] .. off[i+1]]
//! ```
//!
//! Every dataset is one-dimensional with a contiguous layout (no chunking, no filter), so the
//! data of an event is one contiguous byte range of the file that any HDF5 reader gets in one
//! read. Metadata is stored as bytes plus offsets rather than as variable-length strings because
//! parallel HDF5 cannot write variable-length data; reading it is still one line of Python:
//!
//! ```python
//! import h5py, json
//! g = h5py.File("steps.h5")["partitions/00000000"]
//! mo, do = g["metadata_offsets"][:], g["data_offsets"][:]
//! meta = json.loads(g["metadata"][mo[5]:mo[6]].tobytes())
//! data = g["data"][do[5]:do[6]]          # numpy uint8 array
//! ```
//!
//! The metadata text is [`Metadata::dump`] of the value the topic's serializer decodes, so it is
//! independent of how the topic serializes metadata. Events are read below the consumer engine
//! (with [`TopicBackend::fetch`](crate::TopicBackend::fetch)), so exporting never moves a
//! consumer's position; end-of-stream markers are events like the others and are exported and
//! imported as they are.
//!
//! A file is written under a temporary name beside its final path and renamed into place when
//! it is complete: a failed export leaves no partial file behind.

mod error;
mod export;
mod import;
mod layout;
mod reader;

#[cfg(feature = "mpi")]
pub mod collective;

pub use ::hdf5;
pub use error::{Error, Result};
pub use export::{export_topic, export_topic_with_progress};
pub use import::{import_file, import_file_with_progress};
pub use reader::{ExportFile, ExportedEvent, FileInfo};

#[cfg(feature = "mpi")]
pub use collective::{export_topic_collective, export_topic_collective_with_progress};

use crate::metadata::Metadata;
use serde_json::Value;
use std::path::PathBuf;

/// Value of the root attribute `diaspora_format` that marks a file as a diaspora-stream export.
pub const FORMAT_NAME: &str = "diaspora-stream-hdf5";

/// The layout version this library writes (root attribute `format_version`) and the newest it
/// reads.
pub const FORMAT_VERSION: u32 = 1;

/// A half-open range of event ids, `start..end` (`end` `None`: up to the end of the partition).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdRange {
    /// First id included.
    pub start: u64,
    /// First id excluded (`None`: no upper bound).
    pub end: Option<u64>,
}

impl IdRange {
    /// Every id.
    pub const ALL: IdRange = IdRange {
        start: 0,
        end: None,
    };

    /// The ids `start..end`; fails when the range is empty (`end <= start`).
    pub fn new(start: u64, end: Option<u64>) -> Result<IdRange> {
        let r = IdRange { start, end };
        r.check()?;
        Ok(r)
    }

    /// Fails when the range holds no id.
    pub fn check(&self) -> Result<()> {
        match self.end {
            Some(end) if end <= self.start => Err(Error::InvalidArgument(format!(
                "the id range {self} is empty (its end must be greater than its start)"
            ))),
            _ => Ok(()),
        }
    }

    /// True if `id` is in the range.
    pub fn contains(&self, id: u64) -> bool {
        id >= self.start && self.end.is_none_or(|e| id < e)
    }
}

impl std::fmt::Display for IdRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.end {
            Some(e) => write!(f, "{}..{e}", self.start),
            None => write!(f, "{}..", self.start),
        }
    }
}

impl std::str::FromStr for IdRange {
    type Err = Error;

    /// Parses `A..B` (ids A to B-1), `A..=B` (A to B), `A..` (A on), `..B`, `..=B`, or a single
    /// id `A`.
    fn from_str(text: &str) -> Result<IdRange> {
        let bad = |why: &str| {
            Error::InvalidArgument(format!(
                "invalid id range {text:?}: {why} (expected A..B, A..=B, A.., ..B or A)"
            ))
        };
        let num = |s: &str| -> Result<Option<u64>> {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            s.parse::<u64>()
                .map(Some)
                .map_err(|_| bad(&format!("{s:?} is not a non-negative integer")))
        };
        let range = if let Some((a, b)) = text.split_once("..=") {
            let end = match num(b)? {
                Some(b) => Some(
                    b.checked_add(1)
                        .ok_or_else(|| bad("the end is too large"))?,
                ),
                None => return Err(bad("..= needs an end")),
            };
            IdRange {
                start: num(a)?.unwrap_or(0),
                end,
            }
        } else if let Some((a, b)) = text.split_once("..") {
            IdRange {
                start: num(a)?.unwrap_or(0),
                end: num(b)?,
            }
        } else {
            let id = num(text)?.ok_or_else(|| bad("it is empty"))?;
            IdRange {
                start: id,
                end: Some(
                    id.checked_add(1)
                        .ok_or_else(|| bad("the id is too large"))?,
                ),
            }
        };
        range.check()?;
        Ok(range)
    }
}

/// What to export (see [`export_topic`]).
#[derive(Clone, Debug, Default)]
pub struct ExportOptions {
    /// The partitions to export (`None`: all of them). Each at most once, all in range.
    pub partitions: Option<Vec<usize>>,
    /// The ids to export from each partition.
    pub ids: IdRange,
    /// Replace the file if it exists (otherwise an existing file is an error).
    pub overwrite: bool,
    /// Events read from the topic per fetch (0: 4096).
    pub batch_events: usize,
}

/// How to import (see [`import_file`]).
#[derive(Clone, Debug, Default)]
pub struct ImportOptions {
    /// Add the events to the topic if it exists (its partition count must cover the file's
    /// partitions); otherwise an existing topic is an error.
    pub append: bool,
    /// The partitions of the file to import (`None`: all partitions the file holds).
    pub partitions: Option<Vec<usize>>,
    /// Driver-specific options for creating the topic (`num_partitions` is set from the file;
    /// e.g. `{"replication_factor": 1}` for Kafka). `null` or `{}`: none.
    pub topic_options: Value,
    /// Events appended per batch (0: 4096; batches also stop at about 32 MiB of data).
    pub batch_events: usize,
}

/// What was exported or imported for one partition.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PartitionSummary {
    /// Partition index.
    pub partition: usize,
    /// Number of events.
    pub events: u64,
    /// Bytes of metadata (compact JSON text).
    pub metadata_bytes: u64,
    /// Bytes of data.
    pub data_bytes: u64,
    /// Id of the first event (in the topic read from, for an export; in the file, for an import).
    pub first_id: Option<u64>,
    /// Id of the last event.
    pub last_id: Option<u64>,
}

/// The outcome of [`export_topic`].
#[derive(Clone, Debug)]
pub struct ExportSummary {
    /// The file written.
    pub path: PathBuf,
    /// The topic exported.
    pub topic: String,
    /// Partition count of the topic.
    pub num_partitions: usize,
    /// One entry per exported partition, ascending.
    pub partitions: Vec<PartitionSummary>,
}

impl ExportSummary {
    /// Events exported.
    pub fn events(&self) -> u64 {
        self.partitions.iter().map(|p| p.events).sum()
    }
    /// Data bytes exported.
    pub fn data_bytes(&self) -> u64 {
        self.partitions.iter().map(|p| p.data_bytes).sum()
    }
    /// Metadata bytes exported.
    pub fn metadata_bytes(&self) -> u64 {
        self.partitions.iter().map(|p| p.metadata_bytes).sum()
    }
}

/// The outcome of [`import_file`].
#[derive(Clone, Debug)]
pub struct ImportSummary {
    /// The topic written to.
    pub topic: String,
    /// True if the import created the topic.
    pub created: bool,
    /// One entry per imported partition, ascending (ids are those of the file).
    pub partitions: Vec<PartitionSummary>,
    /// True when every event got the id it has in the file.
    pub ids_preserved: bool,
}

impl ImportSummary {
    /// Events imported.
    pub fn events(&self) -> u64 {
        self.partitions.iter().map(|p| p.events).sum()
    }
    /// Data bytes imported.
    pub fn data_bytes(&self) -> u64 {
        self.partitions.iter().map(|p| p.data_bytes).sum()
    }
}

/// The stage an operation reports progress for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Export: counting the events and bytes of the partitions.
    Scan,
    /// Export: writing the events to the file.
    Write,
    /// Import: checking the file before the topic is touched.
    Check,
    /// Import: appending the events to the topic.
    Import,
}

/// A progress report, given to the callback of [`export_topic_with_progress`] and
/// [`import_file_with_progress`] after each batch.
#[derive(Clone, Copy, Debug)]
pub struct Progress {
    /// Current stage.
    pub phase: Phase,
    /// Partition being processed.
    pub partition: usize,
    /// Events processed in this stage so far (all partitions).
    pub events_done: u64,
    /// Events to process in this stage (all partitions; `None` while scanning).
    pub events_total: Option<u64>,
    /// Data bytes processed in this stage so far.
    pub bytes_done: u64,
    /// Data bytes to process in this stage (`None` while scanning).
    pub bytes_total: Option<u64>,
}

/// Default number of events per fetch or append.
const DEFAULT_BATCH_EVENTS: usize = 4096;

/// Buffered bytes after which a writer or an import batch is flushed.
const FLUSH_BYTES: usize = 32 << 20;

fn batch_events(n: usize) -> usize {
    if n == 0 {
        DEFAULT_BATCH_EVENTS
    } else {
        n
    }
}

/// True for control events (end-of-stream markers), which validators never see.
fn is_control(metadata: &Metadata) -> bool {
    metadata
        .json()
        .as_object()
        .is_some_and(|o| o.contains_key(crate::event::CONTROL_KEY))
}

/// Checks a partition list against a partition count: in range, no duplicates, not empty.
/// Returns it sorted.
fn check_partitions(list: &[usize], num_partitions: usize, what: &str) -> Result<Vec<usize>> {
    if list.is_empty() {
        return Err(Error::InvalidArgument(
            "the list of partitions is empty".into(),
        ));
    }
    let mut sorted = list.to_vec();
    sorted.sort_unstable();
    for w in sorted.windows(2) {
        if w[0] == w[1] {
            return Err(Error::InvalidArgument(format!(
                "partition {} is listed twice",
                w[0]
            )));
        }
    }
    if let Some(&p) = sorted.iter().find(|&&p| p >= num_partitions) {
        return Err(Error::InvalidArgument(format!(
            "partition {p} is out of range ({what} has {num_partitions})"
        )));
    }
    Ok(sorted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id_ranges() {
        let p = |s: &str| s.parse::<IdRange>();
        assert_eq!(
            p("3..7").unwrap(),
            IdRange {
                start: 3,
                end: Some(7)
            }
        );
        assert_eq!(
            p("3..=7").unwrap(),
            IdRange {
                start: 3,
                end: Some(8)
            }
        );
        assert_eq!(
            p("3..").unwrap(),
            IdRange {
                start: 3,
                end: None
            }
        );
        assert_eq!(
            p("..7").unwrap(),
            IdRange {
                start: 0,
                end: Some(7)
            }
        );
        assert_eq!(
            p("..=7").unwrap(),
            IdRange {
                start: 0,
                end: Some(8)
            }
        );
        assert_eq!(p("..").unwrap(), IdRange::ALL);
        assert_eq!(
            p("5").unwrap(),
            IdRange {
                start: 5,
                end: Some(6)
            }
        );
        for bad in [
            "7..3",
            "3..3",
            "x..4",
            "1..y",
            "",
            "-1..4",
            "3..=",
            "..=18446744073709551615",
        ] {
            assert!(p(bad).is_err(), "{bad}");
        }
        assert!(IdRange::new(4, Some(4)).is_err());
        let r = IdRange::new(2, Some(4)).unwrap();
        assert!(!r.contains(1) && r.contains(2) && r.contains(3) && !r.contains(4));
        assert_eq!(r.to_string(), "2..4");
        assert_eq!(IdRange::ALL.to_string(), "0..");
    }

    #[test]
    fn partition_lists() {
        assert_eq!(check_partitions(&[2, 0], 3, "t").unwrap(), vec![0, 2]);
        assert!(check_partitions(&[1, 1], 3, "t").is_err());
        assert!(check_partitions(&[3], 3, "t").is_err());
        assert!(check_partitions(&[], 3, "t").is_err());
    }
}
