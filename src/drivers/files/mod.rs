//! The `files` driver: topics as folders on a (parallel) file system.
//!
//! # On-disk format
//!
//! Byte-compatible with the C++ reference's files driver (all integers little-endian):
//!
//! ```text
//! <root_path>/<topic>/
//!     validator.json  serializer.json  partition-selector.json   component configs,
//!                                              pretty JSON (2 spaces, sorted keys, no newline)
//!     partitions/%08d/                         one folder per partition
//!         index      32-byte records: metadata offset, metadata size, data offset, data size
//!         metadata   serialized metadata records, back to back (default: u64 length + JSON)
//!         data       data parts, back to back
//!         checksums  (ours) CRC-32C and sizes of each event, see `sums`
//!     consumers/c-<name>.offsets               acknowledged positions (ours; see `offsets`)
//!     diaspora-topic.json                      (ours) partition count and checksum setting
//! ```
//!
//! Event `i` of a partition is index record `i`; events are stored back to back, and only
//! records that follow on from the previous one count (see `partition` for torn and corrupt
//! records). The C++ reference ignores the files marked "ours", so topics stay usable by it.
//!
//! # Differences from the reference (all compatible with its files)
//!
//! * Appends take an exclusive lock and re-read the tail, so many writers in many processes can
//!   share a partition and every push learns its real id (see `partition`).
//! * Batches of any size (writes are split below the kernel's iovec limit).
//! * Torn tails left by killed writers or crashed machines are removed by the next writer:
//!   partial or zeroed records (which readers ignore) and records pointing past the end of the
//!   files (which readers report, since those events may have been acknowledged).
//! * Checksums (topic option `checksums`, on by default): consumers detect flipped bits, changed
//!   offsets and swapped records; `check` and `repair` (also `diaspora-ctl topic check|repair`)
//!   report damage and rebuild lost index records.
//! * The partition count is stored with the topic, so a deleted partition folder is an error.
//! * Readers never create or change a file (except their own consumer positions).
//! * Consumer positions are persisted; topic names that would escape the root or hold control
//!   characters are rejected; topic creation is atomic (built aside, then renamed into place).

mod buffers;
mod check;
mod config;
mod file;
mod index;
mod leases;
mod offsets;
mod open_files;
mod partition;
mod recovery;
mod sums;

pub use check::{PartitionCheck, RepairAction, TopicCheck};
pub use config::{FilesConfig, FlushBehavior};

use crate::backend::{BatchIds, DriverBackend, EventBatch, StoredEvent, TopicBackend};
use crate::components::TopicComponents;
use crate::error::{Error, Result};
use crate::metadata::PartitionInfo;
use crate::types::EventId;
use offsets::OffsetStore;
use partition::{PartitionFiles, PartitionSettings};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

const COMPONENT_FILES: [(&str, &str); 3] = [
    ("validator", "validator.json"),
    ("serializer", "serializer.json"),
    ("partition_selector", "partition-selector.json"),
];

/// The most partitions a topic may have.
const MAX_PARTITIONS: usize = 1 << 20;

/// This library's description of a topic it created (absent from the C++ reference's topics).
const TOPIC_FILE: &str = "diaspora-topic.json";

/// What [`TOPIC_FILE`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TopicFacts {
    /// The partition count, when known (topics created by this library).
    pub num_partitions: Option<usize>,
    /// Writers keep checksum files.
    pub checksums: bool,
}

/// Reads the topic's description; a topic without one (C++ reference) has no checksums.
pub(crate) fn read_topic_facts(topic_dir: &Path) -> Result<TopicFacts> {
    let path = topic_dir.join(TOPIC_FILE);
    let text = match std::fs::read(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(TopicFacts {
                num_partitions: None,
                checksums: false,
            })
        }
        Err(e) => return Err(Error::io("read", &path, e)),
    };
    let v: Value = serde_json::from_slice(&text)
        .map_err(|e| Error::corrupt(&path, 0, format!("not valid JSON: {e}")))?;
    let n = v
        .get("num_partitions")
        .and_then(Value::as_u64)
        .filter(|&n| (1..=MAX_PARTITIONS as u64).contains(&n))
        .ok_or_else(|| {
            Error::corrupt(
                &path,
                0,
                format!("\"num_partitions\" must be an integer from 1 to {MAX_PARTITIONS}"),
            )
        })?;
    Ok(TopicFacts {
        num_partitions: Some(n as usize),
        checksums: v.get("checksums").and_then(Value::as_bool).unwrap_or(false),
    })
}

/// The files driver.
#[derive(Debug)]
pub struct FilesDriver {
    config: FilesConfig,
}

/// Rejects names that are not a single, ordinary path component.
pub(crate) fn check_topic_name(name: &str) -> Result<()> {
    let bad = |why: &str| {
        Err(Error::InvalidArgument(format!(
            "invalid topic name {name:?}: {why}"
        )))
    };
    if name.is_empty() {
        return bad("it is empty");
    }
    if name == "." || name == ".." {
        return bad("it would leave the root directory");
    }
    if name.contains('/') || name.contains('\\') {
        return bad("it contains a path separator");
    }
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return bad(&format!(
            "it contains the control character {c:?} (names appear in logs and listings)"
        ));
    }
    if name.starts_with(".diaspora-tmp-") {
        return bad("the prefix .diaspora-tmp- is reserved");
    }
    Ok(())
}

fn write_component(dir: &Path, file: &str, config: &Value) -> Result<()> {
    let path = dir.join(file);
    std::fs::write(&path, crate::json::to_pretty_string(config, 2))
        .map_err(|e| Error::io("write component configuration", &path, e))
}

fn read_component(topic_dir: &Path, kind: &str, file: &str) -> Result<Value> {
    let path = topic_dir.join(file);
    let text = std::fs::read(&path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            Error::corrupt(&path, 0, format!("{kind} file does not exist"))
        } else {
            Error::io("read", &path, e)
        }
    })?;
    serde_json::from_slice(&text)
        .map_err(|e| Error::corrupt(&path, 0, format!("{kind} file is not valid JSON: {e}")))
}

/// Numeric sub-directories of `partitions/`.
fn partition_indices(partitions_dir: &Path) -> Result<Vec<usize>> {
    let entries =
        std::fs::read_dir(partitions_dir).map_err(|e| Error::io("list", partitions_dir, e))?;
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("list", partitions_dir, e))?;
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if is_dir && !name.is_empty() && name.bytes().all(|b| b.is_ascii_digit()) {
            if let Ok(i) = name.parse::<usize>() {
                out.push(i);
            }
        }
    }
    out.sort_unstable();
    Ok(out)
}

impl FilesDriver {
    /// Creates the driver from its options (see [`FilesConfig`]). Nothing is created on disk
    /// until a topic is: `root_path` is made by the first `create_topic`.
    pub fn new(options: &Value) -> Result<Self> {
        let config = FilesConfig::from_json(options)?;
        Ok(FilesDriver { config })
    }

    /// The driver's configuration.
    pub fn config(&self) -> &FilesConfig {
        &self.config
    }

    fn topic_dir(&self, name: &str) -> Result<PathBuf> {
        check_topic_name(name)?;
        Ok(self.config.root_path.join(name))
    }

    /// Whether the topic folder exists; an error (permissions, ...) is not a "no".
    fn topic_dir_exists(&self, name: &str) -> Result<Option<PathBuf>> {
        let dir = self.topic_dir(name)?;
        match std::fs::metadata(&dir) {
            Ok(m) if m.is_dir() => Ok(Some(dir)),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A missing root is no topic; an unreadable one is an error.
                match std::fs::metadata(&self.config.root_path) {
                    Err(e2) if e2.kind() != std::io::ErrorKind::NotFound => Err(Error::io(
                        "look up the topic in",
                        &self.config.root_path,
                        e2,
                    )),
                    _ => Ok(None),
                }
            }
            Err(e) => Err(Error::io("look up the topic folder", &dir, e)),
        }
    }

    fn partition_settings(&self, facts: &TopicFacts) -> PartitionSettings {
        PartitionSettings {
            use_file_locking: self.config.use_file_locking,
            flush_behavior: self.config.flush_behavior,
            lock_timeout: self.config.lock_timeout,
            checksums: facts.checksums,
            verify: self.config.verify_checksums,
        }
    }
}

fn parse_checksums(options: &Value) -> Result<bool> {
    match options.get("checksums") {
        None | Some(Value::Null) => Ok(true),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(Error::config(
            "topic",
            format!("\"checksums\" must be a boolean, not {v}"),
        )),
    }
}

fn parse_num_partitions(options: &Value) -> Result<usize> {
    match options.get("num_partitions") {
        None | Some(Value::Null) => Ok(1),
        Some(v) => match v.as_u64() {
            Some(n) if (1..=MAX_PARTITIONS as u64).contains(&n) => Ok(n as usize),
            _ => Err(Error::config(
                "topic",
                format!("\"num_partitions\" must be an integer from 1 to 1048576, not {v}"),
            )),
        },
    }
}

impl DriverBackend for FilesDriver {
    fn name(&self) -> &'static str {
        "files"
    }

    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }

    fn create_topic(
        &self,
        name: &str,
        options: &Value,
        components: &TopicComponents,
    ) -> Result<()> {
        let dir = self.topic_dir(name)?;
        if dir.symlink_metadata().is_ok() {
            return Err(Error::TopicExists(name.to_string()));
        }
        let n = parse_num_partitions(options)?;
        let checksums = parse_checksums(options)?;
        std::fs::create_dir_all(&self.config.root_path)
            .map_err(|e| Error::io("create root directory", &self.config.root_path, e))?;
        // Build the topic aside and move it into place in one rename, so that concurrent
        // creators cannot both succeed and readers never see a half-made topic.
        let tmp = self.config.root_path.join(format!(
            ".diaspora-tmp-{}-{}-{}",
            std::process::id(),
            name,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0)
        ));
        let build = || -> Result<()> {
            for p in 0..n {
                let pdir = tmp.join("partitions").join(format!("{p:08}"));
                std::fs::create_dir_all(&pdir)
                    .map_err(|e| Error::io("create directory", &pdir, e))?;
                // The C++ reference makes these when a topic is first opened; here readers
                // never create files, so they are made with the topic.
                let mut files = vec![open_files::DATA_FILE, open_files::METADATA_FILE];
                files.push(open_files::INDEX_FILE);
                if checksums {
                    files.push(open_files::SUMS_FILE);
                }
                for f in files {
                    let path = pdir.join(f);
                    std::fs::File::create(&path).map_err(|e| Error::io("create", &path, e))?;
                }
            }
            let facts = json!({
                "format": 1,
                "num_partitions": n,
                "checksums": checksums,
            });
            let path = tmp.join(TOPIC_FILE);
            std::fs::write(&path, crate::json::to_pretty_string(&facts, 2))
                .map_err(|e| Error::io("write", &path, e))?;
            let infos = vec![PartitionInfo::default(); n];
            components.partition_selector.set_partitions(&infos);
            write_component(&tmp, "validator.json", &components.validator.metadata())?;
            write_component(&tmp, "serializer.json", &components.serializer.metadata())?;
            write_component(
                &tmp,
                "partition-selector.json",
                &components.partition_selector.metadata(),
            )?;
            Ok(())
        };
        let result = build().and_then(|_| {
            match rustix::fs::renameat_with(
                rustix::fs::CWD,
                &tmp,
                rustix::fs::CWD,
                &dir,
                rustix::fs::RenameFlags::NOREPLACE,
            ) {
                Ok(()) => Ok(()),
                Err(rustix::io::Errno::EXIST) | Err(rustix::io::Errno::NOTEMPTY) => {
                    Err(Error::TopicExists(name.to_string()))
                }
                // File systems without RENAME_NOREPLACE: a plain rename still refuses to
                // replace a non-empty directory, which a topic always is.
                Err(rustix::io::Errno::INVAL) | Err(rustix::io::Errno::NOSYS) => {
                    if dir.symlink_metadata().is_ok() {
                        return Err(Error::TopicExists(name.to_string()));
                    }
                    std::fs::rename(&tmp, &dir).map_err(|e| {
                        if dir.exists() {
                            Error::TopicExists(name.to_string())
                        } else {
                            Error::io("move the new topic into", &dir, e)
                        }
                    })
                }
                Err(e) => Err(Error::io("move the new topic into", &dir, e.into())),
            }
        });
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&tmp);
        }
        result
    }

    fn open_topic(&self, name: &str) -> Result<Arc<dyn TopicBackend>> {
        let Some(dir) = self.topic_dir_exists(name)? else {
            return Err(Error::TopicNotFound(name.to_string()));
        };
        let facts = read_topic_facts(&dir)?;
        let configs: Vec<Value> = COMPONENT_FILES
            .iter()
            .map(|(kind, file)| read_component(&dir, kind, file))
            .collect::<Result<_>>()?;
        let components = TopicComponents::from_configs(&configs[0], &configs[2], &configs[1])
            .map_err(|e| Error::config("topic", format!("topic {name:?}: {e}")))?;
        let pdir = dir.join("partitions");
        if !pdir.is_dir() {
            return Err(Error::corrupt(
                &pdir,
                0,
                format!("partitions directory of topic {name:?} is missing"),
            ));
        }
        let count = partition_count(name, &pdir, &facts)?;
        let settings = self.partition_settings(&facts);
        let partitions = (0..count)
            .map(|p| {
                PartitionFiles::new(
                    &pdir.join(format!("{p:08}")),
                    format!("partition {p} of topic {name:?}"),
                    settings,
                )
            })
            .collect();
        Ok(Arc::new(FilesTopic {
            name: name.to_string(),
            dir: dir.clone(),
            lease_interval: self.config.lease_interval,
            components,
            offsets: OffsetStore::new(&dir, self.config.flush_behavior),
            partitions,
        }))
    }

    fn topic_exists(&self, name: &str) -> Result<bool> {
        Ok(self.topic_dir_exists(name)?.is_some())
    }

    fn list_topics(&self) -> Result<BTreeMap<String, Value>> {
        let root = &self.config.root_path;
        let mut out = BTreeMap::new();
        let entries = match std::fs::read_dir(root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io("list", root, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", root, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if check_topic_name(&name).is_err() {
                continue;
            }
            let dir = entry.path();
            let pdir = dir.join("partitions");
            if !pdir.is_dir() {
                continue;
            }
            let count = match read_topic_facts(&dir) {
                Ok(TopicFacts {
                    num_partitions: Some(n),
                    ..
                }) => n,
                _ => partition_indices(&pdir)?.len(),
            };
            let mut desc = json!({
                "name": name,
                "num_partitions": count,
                "path": dir.to_string_lossy(),
            });
            for (kind, file) in COMPONENT_FILES {
                if let Ok(v) = read_component(&dir, kind, file) {
                    desc[kind] = v;
                }
            }
            out.insert(name, desc);
        }
        Ok(out)
    }
}

/// The number of partitions of a topic, checking that each partition folder is there.
pub(crate) fn partition_count(name: &str, pdir: &Path, facts: &TopicFacts) -> Result<usize> {
    let indices = partition_indices(pdir)?;
    let count = match (facts.num_partitions, indices.last()) {
        (Some(n), _) => n,
        (None, Some(&max)) => max + 1,
        (None, None) => {
            return Err(Error::corrupt(
                pdir,
                0,
                format!("topic {name:?} has no partition"),
            ))
        }
    };
    for p in 0..count {
        let path = pdir.join(format!("{p:08}"));
        if !path.is_dir() {
            return Err(Error::corrupt(
                &path,
                0,
                format!(
                    "partition {p} of topic {name:?} is missing (the topic has {count} partitions)"
                ),
            ));
        }
    }
    if let Some(&extra) = indices.iter().find(|&&i| i >= count) {
        return Err(Error::corrupt(
            pdir.join(format!("{extra:08}")),
            0,
            format!(
                "topic {name:?} was created with {count} partitions but has a folder for \
                 partition {extra}"
            ),
        ));
    }
    Ok(count)
}

/// An open files-driver topic.
struct FilesTopic {
    name: String,
    /// The topic folder.
    dir: PathBuf,
    lease_interval: Option<std::time::Duration>,
    components: TopicComponents,
    offsets: OffsetStore,
    partitions: Vec<PartitionFiles>,
}

impl FilesTopic {
    fn partition(&self, p: usize) -> Result<&PartitionFiles> {
        crate::backend::partition_at(&self.name, &self.partitions, p)
    }
}

impl TopicBackend for FilesTopic {
    fn name(&self) -> &str {
        &self.name
    }

    fn partitions(&self) -> Vec<PartitionInfo> {
        vec![PartitionInfo::default(); self.partitions.len()]
    }

    fn components(&self) -> TopicComponents {
        self.components.clone()
    }

    fn append_batch(&self, partition: usize, batch: &EventBatch) -> Result<BatchIds> {
        let files = self.partition(partition)?;
        let first = if batch.is_empty() {
            files.num_events()?
        } else {
            files.append_batch(batch)?
        };
        Ok(BatchIds::Contiguous(first))
    }

    fn sync(&self, partitions: &[usize]) -> Result<()> {
        for &p in partitions {
            self.partition(p)?.sync()?;
        }
        Ok(())
    }

    fn fetch(
        &self,
        partition: usize,
        from: EventId,
        max_events: usize,
        with_data: bool,
    ) -> Result<Vec<StoredEvent>> {
        self.partition(partition)?
            .fetch(from, max_events, with_data)
    }

    fn read_data(
        &self,
        partition: usize,
        event: &StoredEvent,
        ranges: &[(u64, u64)],
        dst: &mut [&mut [u8]],
    ) -> Result<()> {
        self.partition(partition)?.read_data(event, ranges, dst)
    }

    fn fetch_returns_at_once(&self) -> bool {
        true
    }

    fn append_returns_at_once(&self) -> bool {
        true
    }

    fn end_id(&self, partition: usize) -> Result<EventId> {
        self.partition(partition)?.num_events()
    }

    fn announce_producer(
        &self,
        info: &crate::backend::ProducerInfo,
    ) -> Result<Option<Arc<dyn crate::backend::ProducerLease>>> {
        let Some(interval) = self.lease_interval else {
            return Ok(None);
        };
        let lease = leases::start(&self.dir, info, interval)?;
        Ok(Some(Arc::new(lease)))
    }

    fn producers(
        &self,
    ) -> Result<Option<Vec<(crate::backend::ProducerInfo, std::time::Duration)>>> {
        leases::read_leases(&self.dir).map(Some)
    }

    fn read_data_many(
        &self,
        partition: usize,
        reads: &mut [crate::backend::DataRead<'_>],
    ) -> Vec<Result<()>> {
        match self.partition(partition) {
            Ok(files) => files.read_data_many(reads),
            Err(e) => reads.iter().map(|_| Err(e.clone())).collect(),
        }
    }

    fn load_offset(&self, consumer: &str, partition: usize) -> Result<EventId> {
        self.partition(partition)?;
        self.offsets.load(consumer, partition)
    }

    fn store_offset(&self, consumer: &str, partition: usize, next: EventId) -> Result<()> {
        self.partition(partition)?;
        self.offsets.store(consumer, partition, next)
    }
}
