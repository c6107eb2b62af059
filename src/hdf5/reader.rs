//! Reading export files: the header, the partitions, and events by index.

use super::error::{Error, H5Context, Result};
use super::layout::{self, *};
use super::{IdRange, PartitionSummary, FORMAT_NAME, FORMAT_VERSION};
use crate::metadata::Metadata;
use ::hdf5::types::IntSize;
use ::hdf5::{Dataset, File};
use serde_json::Value;
use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// What an export file holds, from its attributes and dataset sizes.
#[derive(Clone, Debug)]
pub struct FileInfo {
    /// The file.
    pub path: PathBuf,
    /// Its layout version.
    pub format_version: u32,
    /// Name of the exported topic.
    pub topic: String,
    /// Partition count of the exported topic.
    pub num_partitions: usize,
    /// The topic's validator configuration.
    pub validator: Value,
    /// The topic's partition selector configuration.
    pub partition_selector: Value,
    /// The topic's serializer configuration.
    pub serializer: Value,
    /// The driver the topic was exported from.
    pub driver: String,
    /// The id range that was exported.
    pub ids: IdRange,
    /// The library that wrote the file.
    pub created_by: String,
    /// One entry per partition in the file, ascending.
    pub partitions: Vec<PartitionSummary>,
}

impl FileInfo {
    /// Events in the file.
    pub fn events(&self) -> u64 {
        self.partitions.iter().map(|p| p.events).sum()
    }
    /// Data bytes in the file.
    pub fn data_bytes(&self) -> u64 {
        self.partitions.iter().map(|p| p.data_bytes).sum()
    }
}

/// One event read from an export file.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportedEvent {
    /// Its id in the exported topic.
    pub id: u64,
    /// Its metadata.
    pub metadata: Metadata,
    /// Its data.
    pub data: Vec<u8>,
}

/// The datasets of one partition, opened and checked for type and shape.
pub(crate) struct Datasets {
    pub group: String,
    pub events: u64,
    pub ids: Dataset,
    pub metadata: Dataset,
    pub metadata_len: u64,
    pub metadata_offsets: Dataset,
    pub data: Dataset,
    pub data_len: u64,
    pub data_offsets: Dataset,
}

impl Datasets {
    pub(crate) fn object(&self, name: &str) -> String {
        format!("{}/{name}", self.group)
    }
}

/// A chunk of consecutive events of a partition, as read from the file.
pub(crate) struct Chunk {
    /// Index of the first event in the partition.
    pub start: u64,
    pub ids: Vec<u64>,
    /// `ids.len() + 1` offsets into `metadata`, starting at 0.
    pub metadata_offsets: Vec<u64>,
    pub metadata: Vec<u8>,
    /// `ids.len() + 1` offsets into `data`, starting at 0.
    pub data_offsets: Vec<u64>,
    pub data: Vec<u8>,
}

impl Chunk {
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }
    pub(crate) fn metadata_of(&self, i: usize) -> &[u8] {
        &self.metadata[self.metadata_offsets[i] as usize..self.metadata_offsets[i + 1] as usize]
    }
    pub(crate) fn data_range(&self, i: usize) -> Range<usize> {
        self.data_offsets[i] as usize..self.data_offsets[i + 1] as usize
    }
}

/// An open export file. Opening checks the root attributes and the structure of every
/// partition (groups, dataset types and sizes); [`ExportFile::check_partition`] also checks
/// the content of the ids, offsets and metadata.
///
/// ```no_run
/// use diaspora_stream::hdf5::ExportFile;
/// # fn main() -> diaspora_stream::hdf5::Result<()> {
/// let file = ExportFile::open("steps.h5")?;
/// println!("topic {} with {} events", file.info().topic, file.info().events());
/// for event in file.read_events(0, 0..10)? {
///     println!("{} {} {} bytes", event.id, event.metadata, event.data.len());
/// }
/// # Ok(()) }
/// ```
pub struct ExportFile {
    path: PathBuf,
    _file: File,
    info: FileInfo,
    datasets: BTreeMap<usize, Datasets>,
}

impl std::fmt::Debug for ExportFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExportFile")
            .field("info", &self.info)
            .finish()
    }
}

fn parse_config(path: &Path, name: &str, text: &str) -> Result<Value> {
    serde_json::from_str(text).map_err(|e| {
        Error::format(
            path,
            format!("attribute {name} of /"),
            format!("is not valid JSON: {e}"),
        )
    })
}

impl ExportFile {
    /// Opens and checks an export file.
    pub fn open(path: impl AsRef<Path>) -> Result<ExportFile> {
        let path = path.as_ref();
        let file_len = match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => {
                return Err(Error::InvalidArgument(format!(
                    "{} is a directory",
                    path.display()
                )))
            }
            Ok(m) => m.len(),
            Err(e) => return Err(Error::io("open", path, e)),
        };
        let file = layout::file_options()
            .open(path)
            .h5(path, "open", "the file as HDF5")?;
        let root = "/";
        let format = file
            .attr(ATTR_FORMAT)
            .ok()
            .map(|_| read_str_attr(path, &file, root, ATTR_FORMAT))
            .transpose()?;
        if format.as_deref() != Some(FORMAT_NAME) {
            return Err(Error::format(
                path,
                root,
                format!(
                    "not a diaspora-stream export (the root attribute {ATTR_FORMAT:?} is {})",
                    match format {
                        Some(f) => format!("{f:?}, not {FORMAT_NAME:?}"),
                        None => "missing".into(),
                    }
                ),
            ));
        }
        let version = read_u64_attr(path, &file, root, ATTR_VERSION)?;
        if version == 0 || version > u64::from(FORMAT_VERSION) {
            return Err(Error::format(
                path,
                format!("attribute {ATTR_VERSION} of /"),
                format!(
                    "format version {version} is not supported (this library reads version {FORMAT_VERSION})"
                ),
            ));
        }
        let topic = read_str_attr(path, &file, root, ATTR_TOPIC)?;
        let num_partitions = read_u64_attr(path, &file, root, ATTR_NUM_PARTITIONS)?;
        let num_partitions = usize::try_from(num_partitions)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| {
                Error::format(
                    path,
                    format!("attribute {ATTR_NUM_PARTITIONS} of /"),
                    format!("{num_partitions} is not a valid partition count"),
                )
            })?;
        let mut configs = Vec::new();
        for name in [ATTR_VALIDATOR, ATTR_SELECTOR, ATTR_SERIALIZER] {
            configs.push(parse_config(
                path,
                name,
                &read_str_attr(path, &file, root, name)?,
            )?);
        }
        let driver = read_str_attr(path, &file, root, ATTR_DRIVER).unwrap_or_default();
        let created_by = read_str_attr(path, &file, root, ATTR_CREATED_BY).unwrap_or_default();
        let id_start = read_u64_attr(path, &file, root, ATTR_ID_START).unwrap_or(0);
        let id_end = read_u64_attr(path, &file, root, ATTR_ID_END).unwrap_or(u64::MAX);
        let exported = read_u64s_attr(path, &file, root, ATTR_EXPORTED)?;

        let gp = format!("/{PARTITIONS}");
        if !file.link_exists(PARTITIONS) {
            return Err(Error::format(path, &gp, "group is missing"));
        }
        let parts = file.group(PARTITIONS).h5(path, "open group", &gp)?;
        let names = parts.member_names().h5(path, "list the members of", &gp)?;
        let mut datasets = BTreeMap::new();
        let mut partitions = Vec::new();
        for name in names {
            let group_path = format!("{gp}/{name}");
            let p = name
                .parse::<usize>()
                .ok()
                .filter(|p| name.len() == 8 && *p < num_partitions)
                .ok_or_else(|| {
                    Error::format(
                        path,
                        &group_path,
                        format!(
                            "is not a partition group (expected 8 digits naming a partition below {num_partitions})"
                        ),
                    )
                })?;
            let g = parts.group(&name).h5(path, "open group", &group_path)?;
            let recorded = read_u64_attr(path, &g, &group_path, P_PARTITION)?;
            if recorded != p as u64 {
                return Err(Error::format(
                    path,
                    format!("attribute {P_PARTITION} of {group_path}"),
                    format!("says partition {recorded}, the group name says {p}"),
                ));
            }
            let (ids, n) = open_dataset(path, &g, &group_path, DS_IDS, IntSize::U8)?;
            let (metadata, metadata_len) =
                open_dataset(path, &g, &group_path, DS_METADATA, IntSize::U1)?;
            let (metadata_offsets, mo_len) =
                open_dataset(path, &g, &group_path, DS_METADATA_OFFSETS, IntSize::U8)?;
            let (data, data_len) = open_dataset(path, &g, &group_path, DS_DATA, IntSize::U1)?;
            let (data_offsets, do_len) =
                open_dataset(path, &g, &group_path, DS_DATA_OFFSETS, IntSize::U8)?;
            // A damaged header could claim more than the file holds (and make a reader
            // allocate it).
            for (name, bytes) in [
                (DS_IDS, n.saturating_mul(8)),
                (DS_METADATA, metadata_len),
                (DS_DATA, data_len),
            ] {
                if bytes > file_len {
                    return Err(Error::format(
                        path,
                        format!("{group_path}/{name}"),
                        format!("claims {bytes} bytes but the file has {file_len}"),
                    ));
                }
            }
            for (name, len) in [(DS_METADATA_OFFSETS, mo_len), (DS_DATA_OFFSETS, do_len)] {
                if len != n + 1 {
                    return Err(Error::format(
                        path,
                        format!("{group_path}/{name}"),
                        format!(
                            "has {len} elements, expected {} (one more than {DS_IDS})",
                            n + 1
                        ),
                    ));
                }
            }
            let d = Datasets {
                group: group_path,
                events: n,
                ids,
                metadata,
                metadata_len,
                metadata_offsets,
                data,
                data_len,
                data_offsets,
            };
            // The offsets must start at 0 and end at the blob sizes.
            for (ds, name, len) in [
                (&d.metadata_offsets, DS_METADATA_OFFSETS, metadata_len),
                (&d.data_offsets, DS_DATA_OFFSETS, data_len),
            ] {
                let object = d.object(name);
                let first: Vec<u64> = layout::read_range(path, ds, &object, 0..1)?;
                let last: Vec<u64> = layout::read_range(path, ds, &object, n..n + 1)?;
                if first != [0] || last != [len] {
                    return Err(Error::format(
                        path,
                        &object,
                        format!(
                            "must start at 0 and end at {len} (the size of the blob), but starts at \
                             {first:?} and ends at {last:?}"
                        ),
                    ));
                }
            }
            let id_at = |i: u64| -> Result<Option<u64>> {
                Ok(
                    layout::read_range::<u64>(path, &d.ids, &d.object(DS_IDS), i..i + 1)?
                        .first()
                        .copied(),
                )
            };
            partitions.push(PartitionSummary {
                partition: p,
                events: n,
                metadata_bytes: metadata_len,
                data_bytes: data_len,
                first_id: if n > 0 { id_at(0)? } else { None },
                last_id: if n > 0 { id_at(n - 1)? } else { None },
            });
            datasets.insert(p, d);
        }
        let listed: Vec<u64> = partitions.iter().map(|p| p.partition as u64).collect();
        if listed != exported {
            return Err(Error::format(
                path,
                format!("attribute {ATTR_EXPORTED} of /"),
                format!("lists partitions {exported:?} but the file holds {listed:?}"),
            ));
        }
        let info = FileInfo {
            path: path.to_path_buf(),
            format_version: version as u32,
            topic,
            num_partitions,
            partition_selector: configs.swap_remove(1),
            serializer: configs.pop().unwrap_or(Value::Null),
            validator: configs.pop().unwrap_or(Value::Null),
            driver,
            ids: IdRange {
                start: id_start,
                end: (id_end != u64::MAX).then_some(id_end),
            },
            created_by,
            partitions,
        };
        Ok(ExportFile {
            path: path.to_path_buf(),
            _file: file,
            info,
            datasets,
        })
    }

    /// The header and partition sizes.
    pub fn info(&self) -> &FileInfo {
        &self.info
    }

    pub(crate) fn datasets(&self, partition: usize) -> Result<&Datasets> {
        self.datasets.get(&partition).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "{} holds no partition {partition} (it holds {:?})",
                self.path.display(),
                self.datasets.keys().collect::<Vec<_>>()
            ))
        })
    }

    /// Reads events `start .. start + count` of a partition (indices in the file, not ids),
    /// checking their offsets. Offsets are rebased so that the chunk's blobs start at 0.
    pub(crate) fn read_chunk(&self, partition: usize, range: Range<u64>) -> Result<Chunk> {
        let path = &self.path;
        let d = self.datasets(partition)?;
        let range = range.start.min(d.events)..range.end.min(d.events);
        let ids: Vec<u64> = read_range(path, &d.ids, &d.object(DS_IDS), range.clone())?;
        let offsets_range = range.start..range.end + 1;
        let mut metadata_offsets: Vec<u64> = read_range(
            path,
            &d.metadata_offsets,
            &d.object(DS_METADATA_OFFSETS),
            offsets_range.clone(),
        )?;
        let mut data_offsets: Vec<u64> = read_range(
            path,
            &d.data_offsets,
            &d.object(DS_DATA_OFFSETS),
            offsets_range,
        )?;
        let metadata_span = check_offsets(
            path,
            &d.object(DS_METADATA_OFFSETS),
            range.start,
            &mut metadata_offsets,
            d.metadata_len,
        )?;
        let data_span = check_offsets(
            path,
            &d.object(DS_DATA_OFFSETS),
            range.start,
            &mut data_offsets,
            d.data_len,
        )?;
        let metadata = read_range(path, &d.metadata, &d.object(DS_METADATA), metadata_span)?;
        let data = read_range(path, &d.data, &d.object(DS_DATA), data_span)?;
        Ok(Chunk {
            start: range.start,
            ids,
            metadata_offsets,
            metadata,
            data_offsets,
            data,
        })
    }

    /// The index after the last event of a chunk starting at `start` with at most `max_events`
    /// events and, unless it is a single event, at most `max_bytes` bytes of data.
    pub(crate) fn chunk_end(
        &self,
        partition: usize,
        start: u64,
        max_events: usize,
        max_bytes: u64,
    ) -> Result<u64> {
        let d = self.datasets(partition)?;
        let end = (start + max_events as u64).min(d.events);
        if end <= start + 1 {
            return Ok(end);
        }
        let offsets: Vec<u64> = read_range(
            &self.path,
            &d.data_offsets,
            &d.object(DS_DATA_OFFSETS),
            start..end + 1,
        )?;
        let base = offsets[0];
        let mut i = 1;
        while i < offsets.len() - 1 && offsets[i + 1].saturating_sub(base) <= max_bytes {
            i += 1;
        }
        Ok(start + i as u64)
    }

    /// Reads events of a partition by index in the file (`0..info().partitions[..].events`),
    /// parsing their metadata.
    pub fn read_events(&self, partition: usize, range: Range<u64>) -> Result<Vec<ExportedEvent>> {
        let chunk = self.read_chunk(partition, range)?;
        let d = self.datasets(partition)?;
        (0..chunk.len())
            .map(|i| {
                Ok(ExportedEvent {
                    id: chunk.ids[i],
                    metadata: parse_metadata(
                        &self.path,
                        d,
                        chunk.start + i as u64,
                        chunk.metadata_of(i),
                    )?,
                    data: chunk.data[chunk.data_range(i)].to_vec(),
                })
            })
            .collect()
    }

    /// Checks the content of a partition without reading its data: ids strictly increasing,
    /// offsets non-decreasing and within the blobs, every metadata valid JSON. Reads in chunks.
    pub fn check_partition(&self, partition: usize) -> Result<()> {
        self.check_partition_with(partition, &mut |_| {})
    }

    pub(crate) fn check_partition_with(
        &self,
        partition: usize,
        progress: &mut dyn FnMut(u64),
    ) -> Result<()> {
        let path = &self.path;
        let d = self.datasets(partition)?;
        let step = 1u64 << 16;
        let mut previous: Option<u64> = None;
        let mut start = 0;
        while start < d.events {
            let end = (start + step).min(d.events);
            let ids: Vec<u64> = read_range(path, &d.ids, &d.object(DS_IDS), start..end)?;
            for (i, &id) in ids.iter().enumerate() {
                if previous.is_some_and(|p| id <= p) {
                    return Err(Error::format(
                        path,
                        d.object(DS_IDS),
                        format!(
                            "ids must be strictly increasing, but element {} is {id} after {}",
                            start + i as u64,
                            previous.unwrap_or(0)
                        ),
                    ));
                }
                previous = Some(id);
            }
            let mut data_offsets: Vec<u64> = read_range(
                path,
                &d.data_offsets,
                &d.object(DS_DATA_OFFSETS),
                start..end + 1,
            )?;
            check_offsets(
                path,
                &d.object(DS_DATA_OFFSETS),
                start,
                &mut data_offsets,
                d.data_len,
            )?;
            // Metadata: read in pieces of at most `step` events (metadata is small).
            let mut metadata_offsets: Vec<u64> = read_range(
                path,
                &d.metadata_offsets,
                &d.object(DS_METADATA_OFFSETS),
                start..end + 1,
            )?;
            let span = check_offsets(
                path,
                &d.object(DS_METADATA_OFFSETS),
                start,
                &mut metadata_offsets,
                d.metadata_len,
            )?;
            let metadata: Vec<u8> = read_range(path, &d.metadata, &d.object(DS_METADATA), span)?;
            for i in 0..ids.len() {
                let text =
                    &metadata[metadata_offsets[i] as usize..metadata_offsets[i + 1] as usize];
                parse_metadata(path, d, start + i as u64, text)?;
            }
            progress(ids.len() as u64);
            start = end;
        }
        Ok(())
    }
}

/// Parses one event's metadata text.
pub(crate) fn parse_metadata(
    path: &Path,
    d: &Datasets,
    index: u64,
    text: &[u8],
) -> Result<Metadata> {
    let text = std::str::from_utf8(text).map_err(|e| {
        Error::format(
            path,
            d.object(DS_METADATA),
            format!("the metadata of event {index} is not UTF-8: {e}"),
        )
    })?;
    Metadata::parse(text).map_err(|e| {
        Error::format(
            path,
            d.object(DS_METADATA),
            format!("the metadata of event {index} is not valid JSON: {e}"),
        )
    })
}

/// Checks offsets read for events starting at index `start` (non-decreasing, within `len`) and
/// rebases them to start at 0; returns the blob range they cover.
fn check_offsets(
    path: &Path,
    object: &str,
    start: u64,
    offsets: &mut [u64],
    len: u64,
) -> Result<Range<u64>> {
    for i in 0..offsets.len() {
        let bad = if i > 0 && offsets[i] < offsets[i - 1] {
            Some(format!(
                "must not decrease, but element {} is {} after {}",
                start + i as u64,
                offsets[i],
                offsets[i - 1]
            ))
        } else if offsets[i] > len {
            Some(format!(
                "element {} is {}, past the end of the blob ({len} bytes)",
                start + i as u64,
                offsets[i]
            ))
        } else {
            None
        };
        if let Some(reason) = bad {
            return Err(Error::format(path, object, reason));
        }
    }
    let (Some(&first), Some(&last)) = (offsets.first(), offsets.last()) else {
        return Ok(0..0);
    };
    if last - first > usize::MAX as u64 / 2 {
        return Err(Error::format(
            path,
            object,
            format!("a range of {} bytes does not fit in memory", last - first),
        ));
    }
    for o in offsets.iter_mut() {
        *o -= first;
    }
    Ok(first..last)
}
