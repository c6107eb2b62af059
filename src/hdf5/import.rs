//! Import of an export file into a topic.

use super::error::{Error, Result};
use super::reader::{parse_metadata, ExportFile};
use super::{
    batch_events, check_partitions, is_control, ImportOptions, ImportSummary, PartitionSummary,
    Phase, Progress, FLUSH_BYTES,
};
use crate::backend::{BatchIds, EventBatch};
use crate::components::TopicComponents;
use crate::data_view::DataView;
use crate::driver::Driver;
use crate::error::Error as StreamError;
use crate::topic::TopicHandle;
use bytes::Bytes;
use serde_json::{Map, Value};
use std::path::Path;

/// Imports the export file `path` into topic `topic` of `driver`.
///
/// Without `options.append` the topic must not exist: it is created with the file's partition
/// count and components (validator, partition selector, serializer) and `options.topic_options`.
/// With `options.append` an existing topic receives the events (its partition count must cover
/// the file's partitions); a missing one is created as above. Each partition's events are
/// appended in id order to the partition of the same index, bypassing the partition selector;
/// the topic's validator checks every event except end-of-stream markers.
///
/// The whole file is checked (structure, ids, offsets, metadata JSON) before the topic is
/// created or written to, so a damaged file leaves the driver untouched. Importing a whole
/// export into a fresh topic gives every event its original id ([`ImportSummary::ids_preserved`]).
///
/// ```no_run
/// use diaspora_stream::hdf5::{import_file, ImportOptions};
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let driver = diaspora_stream::Driver::new("files", &serde_json::json!({"root_path": "/scratch"}))?;
/// let summary = import_file("steps.h5", &driver, "steps-copy", &ImportOptions::default())?;
/// assert!(summary.ids_preserved);
/// # Ok(()) }
/// ```
pub fn import_file(
    path: impl AsRef<Path>,
    driver: &Driver,
    topic: &str,
    options: &ImportOptions,
) -> Result<ImportSummary> {
    import_file_with_progress(path, driver, topic, options, &mut |_| {})
}

/// [`import_file`], calling `progress` after each batch.
pub fn import_file_with_progress(
    path: impl AsRef<Path>,
    driver: &Driver,
    topic_name: &str,
    options: &ImportOptions,
    progress: &mut dyn FnMut(&Progress),
) -> Result<ImportSummary> {
    let path = path.as_ref();
    let file = ExportFile::open(path)?;
    let info = file.info().clone();
    let in_file: Vec<usize> = info.partitions.iter().map(|p| p.partition).collect();
    let partitions = match &options.partitions {
        Some(list) => {
            let list = check_partitions(list, info.num_partitions, "the exported topic")?;
            if let Some(p) = list.iter().find(|p| !in_file.contains(p)) {
                return Err(Error::InvalidArgument(format!(
                    "{} holds no partition {p} (it holds {in_file:?})",
                    path.display()
                )));
            }
            list
        }
        None => in_file,
    };
    let selected: Vec<&PartitionSummary> = info
        .partitions
        .iter()
        .filter(|s| partitions.contains(&s.partition))
        .collect();
    let total_events: u64 = selected.iter().map(|s| s.events).sum();
    let total_bytes: u64 = selected.iter().map(|s| s.data_bytes).sum();

    // The components are rebuilt first: a file naming a component this program lacks fails here.
    let components =
        TopicComponents::from_configs(&info.validator, &info.partition_selector, &info.serializer)
            .map_err(|e| {
                Error::stream(
                    format!(
                        "cannot rebuild the components of topic {:?} recorded in {}",
                        info.topic,
                        path.display()
                    ),
                    e,
                )
            })?;
    let exists = driver
        .topic_exists(topic_name)
        .map_err(|e| Error::stream(format!("cannot look up topic {topic_name:?}"), e))?;
    if exists && !options.append {
        return Err(Error::TopicExists(topic_name.to_string()));
    }

    // Check everything before touching the topic.
    let mut checked = 0;
    for &p in &partitions {
        file.check_partition_with(p, &mut |n| {
            checked += n;
            progress(&Progress {
                phase: Phase::Check,
                partition: p,
                events_done: checked,
                events_total: Some(total_events),
                bytes_done: 0,
                bytes_total: None,
            });
        })?;
    }

    let created = !exists;
    if created {
        let mut topic_options = match &options.topic_options {
            Value::Null => Map::new(),
            Value::Object(m) => m.clone(),
            other => {
                return Err(Error::InvalidArgument(format!(
                    "the topic options must be a JSON object, not {other}"
                )))
            }
        };
        topic_options.insert("num_partitions".into(), Value::from(info.num_partitions));
        match driver.create_topic_with(topic_name, &Value::Object(topic_options), components) {
            Ok(()) => {}
            Err(StreamError::TopicExists(_)) if options.append => {}
            Err(StreamError::TopicExists(_)) => {
                return Err(Error::TopicExists(topic_name.to_string()))
            }
            Err(e) => {
                return Err(Error::stream(
                    format!("cannot create topic {topic_name:?}"),
                    e,
                ))
            }
        }
    }
    let topic = driver
        .open_topic(topic_name)
        .map_err(|e| Error::stream(format!("cannot open topic {topic_name:?}"), e))?;
    if let Some(&p) = partitions.iter().find(|&&p| p >= topic.num_partitions()) {
        return Err(Error::InvalidArgument(format!(
            "topic {topic_name:?} has {} partitions, too few for partition {p} of {}",
            topic.num_partitions(),
            path.display()
        )));
    }

    let batch = batch_events(options.batch_events);
    let mut ids_preserved = true;
    let mut done = (0u64, 0u64);
    let mut summaries = Vec::with_capacity(partitions.len());
    for s in selected {
        let p = s.partition;
        let d = file.datasets(p)?;
        let mut start = 0;
        while start < s.events {
            let end = file.chunk_end(p, start, batch, FLUSH_BYTES as u64)?;
            let mut chunk = file.read_chunk(p, start..end)?;
            let data_len = chunk.data.len() as u64;
            let data = Bytes::from(std::mem::take(&mut chunk.data));
            let mut events =
                EventBatch::with_capacity(chunk.len(), chunk.metadata.len() + 16 * chunk.len());
            for i in 0..chunk.len() {
                let index = chunk.start + i as u64;
                let metadata = parse_metadata(path, d, index, chunk.metadata_of(i))?;
                let view = DataView::from(data.slice(chunk.data_range(i)));
                if !is_control(&metadata) {
                    topic.validator().validate(&metadata, &view).map_err(|e| {
                        Error::stream(
                            format!(
                                "event {} of partition {p} of {} is rejected by the validator of \
                                 topic {topic_name:?} ({} events were imported before it)",
                                chunk.ids[i],
                                path.display(),
                                done.0 + i as u64
                            ),
                            e,
                        )
                    })?;
                }
                events
                    .push_with(|out| topic.serializer().serialize(&metadata, out), view)
                    .map_err(|e| {
                        Error::stream(
                            format!(
                                "cannot serialize the metadata of event {} of partition {p}",
                                chunk.ids[i]
                            ),
                            e,
                        )
                    })?;
            }
            let ids = append(&topic, p, &events, done.0)?;
            for (i, &original) in chunk.ids.iter().enumerate() {
                if ids.get(i) != Some(original) {
                    ids_preserved = false;
                    break;
                }
            }
            done.0 += chunk.len() as u64;
            done.1 += data_len;
            progress(&Progress {
                phase: Phase::Import,
                partition: p,
                events_done: done.0,
                events_total: Some(total_events),
                bytes_done: done.1,
                bytes_total: Some(total_bytes),
            });
            start = end;
        }
        summaries.push(s.clone());
    }
    topic
        .backend()
        .sync(&partitions)
        .map_err(|e| Error::stream(format!("cannot sync topic {topic_name:?}"), e))?;
    Ok(ImportSummary {
        topic: topic_name.to_string(),
        created,
        partitions: summaries,
        ids_preserved,
    })
}

fn append(topic: &TopicHandle, p: usize, events: &EventBatch, done: u64) -> Result<BatchIds> {
    topic.backend().append_batch(p, events).map_err(|e| {
        Error::stream(
            format!(
                "cannot append to partition {p} of topic {:?} ({done} events were imported before)",
                topic.name()
            ),
            e,
        )
    })
}
