//! Export of a topic to an HDF5 file, in two passes over the selected partitions: a scan that
//! counts events and bytes (so that every dataset is created once with its final size, which
//! parallel HDF5 requires and which keeps the layout contiguous), then the write.

use super::error::{Error, H5Context, Result};
use super::layout::{self, Header, PartitionDatasets, PartitionWriter, Sizes};
use super::{
    batch_events, check_partitions, ExportOptions, ExportSummary, IdRange, PartitionSummary, Phase,
    Progress,
};
use crate::backend::StoredEvent;
use crate::topic::TopicHandle;
use std::path::{Path, PathBuf};

/// Exports the events of `topic` to the HDF5 file `path` (see the [module](super) for the
/// layout): every partition or `options.partitions`, the ids in `options.ids`. The file is
/// written under a temporary name and renamed into place at the end; an existing file is an
/// error unless `options.overwrite` is set. Consumer positions are not touched.
///
/// ```no_run
/// use diaspora_stream::hdf5::{export_topic, ExportOptions, IdRange};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let driver = diaspora_stream::Driver::new("files", &serde_json::json!({}))?;
/// let topic = driver.open_topic("steps")?;
/// let options = ExportOptions {
///     partitions: Some(vec![0, 2]),
///     ids: "100..200".parse()?,
///     ..Default::default()
/// };
/// let summary = export_topic(&topic, "steps.h5", &options)?;
/// println!("{} events, {} data bytes", summary.events(), summary.data_bytes());
/// # Ok(()) }
/// ```
pub fn export_topic(
    topic: &TopicHandle,
    path: impl AsRef<Path>,
    options: &ExportOptions,
) -> Result<ExportSummary> {
    export_topic_with_progress(topic, path, options, &mut |_| {})
}

/// [`export_topic`], calling `progress` after each batch of events.
pub fn export_topic_with_progress(
    topic: &TopicHandle,
    path: impl AsRef<Path>,
    options: &ExportOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<ExportSummary> {
    let path = path.as_ref();
    let header = plan(topic, options)?;
    check_target(path, options.overwrite)?;
    let batch = batch_events(options.batch_events);
    let mut scanned = Vec::with_capacity(header.partitions.len());
    let mut done = (0u64, 0u64);
    for &p in &header.partitions {
        scanned.push(scan_partition(topic, p, header.ids, batch, &mut |n, b| {
            done.0 += n;
            done.1 += b;
            progress(&Progress {
                phase: Phase::Scan,
                partition: p,
                events_done: done.0,
                events_total: None,
                bytes_done: done.1,
                bytes_total: None,
            });
        })?);
    }
    let tmp = temporary_path(path, std::process::id());
    let result = (|| {
        let file = layout::file_options()
            .create(&tmp)
            .h5(&tmp, "create", "file")?;
        let sizes: Vec<Sizes> = scanned.iter().map(|s| s.sizes).collect();
        let datasets = layout::create_layout(&tmp, &file, &header, &sizes)?;
        let totals = (
            sizes.iter().map(|s| s.events).sum(),
            sizes.iter().map(|s| s.data_bytes).sum(),
        );
        let mut done = (0u64, 0u64);
        for (ds, scan) in datasets.iter().zip(&scanned) {
            write_partition(&tmp, topic, ds, scan, batch, &mut |n, b| {
                done.0 += n;
                done.1 += b;
                progress(&Progress {
                    phase: Phase::Write,
                    partition: ds.partition,
                    events_done: done.0,
                    events_total: Some(totals.0),
                    bytes_done: done.1,
                    bytes_total: Some(totals.1),
                });
            })?;
        }
        drop(datasets);
        file.close().h5(&tmp, "close", "file")
    })();
    finish_file(&tmp, path, options.overwrite, result)?;
    Ok(summary(path, &header, &scanned))
}

/// Result of the scan of one partition.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Scan {
    pub partition: usize,
    pub sizes: Sizes,
    pub first_id: Option<u64>,
    pub last_id: Option<u64>,
}

/// Checks the options against the topic and builds the header.
pub(crate) fn plan(topic: &TopicHandle, options: &ExportOptions) -> Result<Header> {
    options.ids.check()?;
    let n = topic.num_partitions();
    let partitions = match &options.partitions {
        Some(list) => check_partitions(list, n, &format!("topic {:?}", topic.name()))?,
        None if n == 0 => {
            return Err(Error::InvalidArgument(format!(
                "topic {:?} has no partition",
                topic.name()
            )))
        }
        None => (0..n).collect(),
    };
    Ok(Header {
        topic: topic.name().to_string(),
        num_partitions: n,
        validator: topic.validator().metadata(),
        partition_selector: topic.partition_selector().metadata(),
        serializer: topic.serializer().metadata(),
        driver: topic.driver().backend().name().to_string(),
        ids: options.ids,
        partitions,
    })
}

/// Fails if `path` exists and may not be replaced, or if its folder does not exist.
pub(crate) fn check_target(path: &Path, overwrite: bool) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            return Err(Error::InvalidArgument(format!(
                "{} is a directory",
                path.display()
            )))
        }
        Ok(_) if !overwrite => return Err(Error::FileExists(path.to_path_buf())),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io("inspect", path, e)),
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(Error::InvalidArgument(format!(
            "the folder of {} does not exist",
            path.display()
        )));
    }
    Ok(())
}

/// The temporary name a file is written under: `.<name>.partial-<tag>` beside it.
pub(crate) fn temporary_path(path: &Path, tag: u32) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "export.h5".into());
    path.with_file_name(format!(".{name}.partial-{tag}"))
}

/// Renames the finished temporary file into place, or removes it after a failure.
pub(crate) fn finish_file(
    tmp: &Path,
    path: &Path,
    overwrite: bool,
    result: Result<()>,
) -> Result<()> {
    if let Err(e) = result {
        let _ = std::fs::remove_file(tmp);
        return Err(e);
    }
    if !overwrite && path.exists() {
        let _ = std::fs::remove_file(tmp);
        return Err(Error::FileExists(path.to_path_buf()));
    }
    std::fs::rename(tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(tmp);
        Error::io("rename the finished export into place as", path, e)
    })
}

pub(crate) fn summary(path: &Path, header: &Header, scanned: &[Scan]) -> ExportSummary {
    ExportSummary {
        path: path.to_path_buf(),
        topic: header.topic.clone(),
        num_partitions: header.num_partitions,
        partitions: scanned
            .iter()
            .map(|s| PartitionSummary {
                partition: s.partition,
                events: s.sizes.events,
                metadata_bytes: s.sizes.metadata_bytes,
                data_bytes: s.sizes.data_bytes,
                first_id: s.first_id,
                last_id: s.last_id,
            })
            .collect(),
    }
}

fn read_context(topic: &TopicHandle, p: usize) -> String {
    format!("cannot read partition {p} of topic {:?}", topic.name())
}

/// The events of partition `p` from id `from` on, up to `max` of them, within `range`.
fn fetch(
    topic: &TopicHandle,
    p: usize,
    from: u64,
    max: usize,
    range: IdRange,
    with_data: bool,
) -> Result<Vec<StoredEvent>> {
    let mut events = topic
        .backend()
        .fetch(p, from, max, with_data)
        .map_err(|e| Error::stream(read_context(topic, p), e))?;
    if let Some(i) = events.iter().position(|e| !range.contains(e.id)) {
        events.truncate(i);
    }
    Ok(events)
}

/// The compact JSON text of a stored event's metadata, decoded by the topic's serializer.
fn metadata_text(topic: &TopicHandle, p: usize, ev: &StoredEvent) -> Result<String> {
    topic
        .serializer()
        .deserialize(&ev.metadata)
        .map(|m| m.dump())
        .map_err(|e| {
            Error::stream(
                format!(
                    "cannot decode the metadata of event {} of partition {p} of topic {:?}",
                    ev.id,
                    topic.name()
                ),
                e,
            )
        })
}

/// First pass: counts the events of partition `p` in `range` and their bytes.
pub(crate) fn scan_partition(
    topic: &TopicHandle,
    p: usize,
    range: IdRange,
    batch: usize,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Scan> {
    let mut scan = Scan {
        partition: p,
        ..Scan::default()
    };
    let mut from = range.start;
    loop {
        let events = fetch(topic, p, from, batch, range, false)?;
        let Some(last) = events.last() else {
            break;
        };
        let mut bytes = 0;
        for ev in &events {
            scan.sizes.metadata_bytes += metadata_text(topic, p, ev)?.len() as u64;
            bytes += ev.data_size;
        }
        scan.sizes.data_bytes += bytes;
        scan.sizes.events += events.len() as u64;
        scan.first_id.get_or_insert(events[0].id);
        scan.last_id = Some(last.id);
        progress(events.len() as u64, bytes);
        match last.id.checked_add(1) {
            Some(next) => from = next,
            None => break,
        }
    }
    Ok(scan)
}

/// Second pass: writes the events counted by `scan` to the datasets of their partition.
pub(crate) fn write_partition(
    path: &Path,
    topic: &TopicHandle,
    ds: &PartitionDatasets,
    scan: &Scan,
    batch: usize,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<()> {
    let p = scan.partition;
    let mut writer = PartitionWriter::new(path, ds, scan.sizes);
    let (Some(first), Some(last)) = (scan.first_id, scan.last_id) else {
        return writer.finish();
    };
    let range = IdRange {
        start: first,
        end: last.checked_add(1),
    };
    let mut from = first;
    let mut buffer = Vec::new();
    while writer.events() < scan.sizes.events {
        let left = (scan.sizes.events - writer.events()).min(batch as u64) as usize;
        let events = fetch(topic, p, from, left, range, true)?;
        let Some(last_fetched) = events.last() else {
            return Err(Error::Inconsistent(format!(
                "partition {p} of topic {:?} lost events during the export: {} of {} were read, \
                 none after id {from}",
                topic.name(),
                writer.events(),
                scan.sizes.events
            )));
        };
        let next = last_fetched.id.checked_add(1);
        let mut bytes = 0;
        for ev in &events {
            let text = metadata_text(topic, p, ev)?;
            let data: &[u8] = match &ev.data {
                Some(d) if d.len() as u64 == ev.data_size => d,
                _ => {
                    let size = usize::try_from(ev.data_size).map_err(|_| {
                        Error::InvalidArgument(format!(
                            "event {} of partition {p} has {} data bytes, too many for this machine",
                            ev.id, ev.data_size
                        ))
                    })?;
                    buffer.resize(size, 0);
                    topic
                        .backend()
                        .read_data(p, ev, &[(0, ev.data_size)], &mut [&mut buffer[..]])
                        .map_err(|e| {
                            Error::stream(
                                format!(
                                    "cannot read the data of event {} of partition {p} of topic {:?}",
                                    ev.id,
                                    topic.name()
                                ),
                                e,
                            )
                        })?;
                    &buffer
                }
            };
            bytes += data.len() as u64;
            writer.push(ev.id, text.as_bytes(), &[data])?;
        }
        progress(events.len() as u64, bytes);
        match next {
            Some(n) => from = n,
            None => break,
        }
    }
    writer.finish()
}
