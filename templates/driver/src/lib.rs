//! # The `{{crate_name}}` driver of diaspora-stream
//!
//! Topics are folders under the `root_path` option; each partition is one append-only file, so
//! that processes on one machine, or on the nodes of a cluster sharing a file system with
//! working `flock`, produce to and consume from the same topics.
//!
//! ```text
//! ROOT/TOPIC/topic.json          partition count and the topic's components
//! ROOT/TOPIC/partition-K.log     the events of partition K, one record each
//! ROOT/TOPIC/offsets/C.K         next id consumer C reads from partition K (8 bytes)
//! ```
//!
//! A record is a 16-byte header (magic, metadata size, data size) followed by the metadata and
//! the data; an event's id is its record's rank in the file. See [`partition`] for how appends
//! stay whole with several writers and after a crash.
//!
//! Use it as a crate (`Driver::from_backend(Arc::new({{crate_name | pascal_case}}Driver::new(&options)?))`) or load
//! the `cdylib` by name: `Driver::new("{{crate_name}}:lib{{crate_name}}.so", &options)`.

#![warn(missing_docs)]

pub mod partition;

use diaspora_stream::backend::{
    BatchIds, DriverBackend, EventBatch, StoredEvent, TopicBackend,
};
use diaspora_stream::{Error, EventId, PartitionInfo, Result, TopicComponents};
use partition::PartitionLog;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The name this driver registers under.
pub const DRIVER_NAME: &str = "{{crate_name}}";

// Programs load this library by name: `Driver::new("{{crate_name}}:lib{{crate_name}}.so", ...)`.
diaspora_stream::export_driver!("{{crate_name}}", |options: &Value| {
    Ok(Arc::new({{crate_name | pascal_case}}Driver::new(options)?) as Arc<dyn DriverBackend>)
});

/// Registers the driver in this process, for programs that link the crate.
pub fn register() {
    diaspora_stream::driver::register_driver(
        DRIVER_NAME,
        Arc::new(|options: &Value| {
            Ok(Arc::new({{crate_name | pascal_case}}Driver::new(options)?) as Arc<dyn DriverBackend>)
        }),
    );
}

/// The driver's options.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Options {
    /// Folder holding the topics (made by the first `create_topic`).
    root_path: PathBuf,
}

/// Options of a topic.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicOptions {
    #[serde(default = "one")]
    num_partitions: usize,
}

fn one() -> usize {
    1
}

/// What `topic.json` holds.
#[derive(serde::Serialize, serde::Deserialize)]
struct TopicFile {
    num_partitions: usize,
    validator: Value,
    partition_selector: Value,
    serializer: Value,
}

/// The driver: topics under one root folder.
pub struct {{crate_name | pascal_case}}Driver {
    root: PathBuf,
}

/// An error of this driver that fits no class of [`Error`].
fn fail(message: impl Into<String>) -> Error {
    Error::Driver {
        driver: "{{crate_name}}",
        message: message.into(),
    }
}

fn check_topic_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidArgument(format!(
            "topic name {name:?}: use letters, digits, '-', '_' and '.' (not first)"
        )))
    }
}

impl {{crate_name | pascal_case}}Driver {
    /// Creates the driver from its options: `{"root_path": "FOLDER"}`.
    pub fn new(options: &Value) -> Result<Self> {
        let o: Options = diaspora_stream::options::parse("{{crate_name}} driver", options)?;
        Ok({{crate_name | pascal_case}}Driver { root: o.root_path })
    }

    fn topic_dir(&self, name: &str) -> Result<PathBuf> {
        check_topic_name(name)?;
        Ok(self.root.join(name))
    }

    fn read_topic_file(dir: &Path) -> Result<Option<TopicFile>> {
        let path = dir.join("topic.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| Error::corrupt(&path, 0, e.to_string())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(Error::io("read", &path, e)),
        }
    }
}

impl DriverBackend for {{crate_name | pascal_case}}Driver {
    fn name(&self) -> &'static str {
        DRIVER_NAME
    }

    fn create_topic(
        &self,
        name: &str,
        options: &Value,
        components: &TopicComponents,
    ) -> Result<()> {
        let dir = self.topic_dir(name)?;
        let o: TopicOptions = if options.is_object() {
            diaspora_stream::options::parse("topic", options)?
        } else {
            TopicOptions { num_partitions: 1 }
        };
        if !(1..=65536).contains(&o.num_partitions) {
            return Err(Error::config(
                "topic",
                format!(
                    "option \"num_partitions\": must be from 1 to 65536, not {}",
                    o.num_partitions
                ),
            ));
        }
        std::fs::create_dir_all(&self.root)
            .map_err(|e| Error::io("create the root folder", &self.root, e))?;
        // Making the folder is the atomic step: of several creators, one wins.
        match std::fs::create_dir(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::TopicExists(name.to_string()))
            }
            Err(e) => return Err(Error::io("create the topic folder", &dir, e)),
        }
        components
            .partition_selector
            .set_partitions(&vec![PartitionInfo::default(); o.num_partitions]);
        let offsets = dir.join("offsets");
        std::fs::create_dir(&offsets).map_err(|e| Error::io("create", &offsets, e))?;
        for p in 0..o.num_partitions {
            PartitionLog::create(&dir, p)?;
        }
        let file = TopicFile {
            num_partitions: o.num_partitions,
            validator: components.validator.metadata(),
            partition_selector: components.partition_selector.metadata(),
            serializer: components.serializer.metadata(),
        };
        // The topic exists once topic.json is in place, written whole by a rename.
        let tmp = dir.join(".topic.json.tmp");
        let text = serde_json::to_vec_pretty(&file).map_err(|e| fail(e.to_string()))?;
        std::fs::write(&tmp, text).map_err(|e| Error::io("write", &tmp, e))?;
        let path = dir.join("topic.json");
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("rename into", &path, e))
    }

    fn open_topic(&self, name: &str) -> Result<Arc<dyn TopicBackend>> {
        let dir = self.topic_dir(name)?;
        let Some(file) = Self::read_topic_file(&dir)? else {
            return Err(Error::TopicNotFound(name.to_string()));
        };
        let components = TopicComponents::from_configs(
            &file.validator,
            &file.partition_selector,
            &file.serializer,
        )?;
        components
            .partition_selector
            .set_partitions(&vec![PartitionInfo::default(); file.num_partitions]);
        let partitions = (0..file.num_partitions)
            .map(|p| PartitionLog::open(&dir, p))
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(Topic {
            name: name.to_string(),
            dir,
            components,
            partitions,
        }))
    }

    fn topic_exists(&self, name: &str) -> Result<bool> {
        Ok(Self::read_topic_file(&self.topic_dir(name)?)?.is_some())
    }

    fn list_topics(&self) -> Result<BTreeMap<String, Value>> {
        let mut out = BTreeMap::new();
        let entries = match std::fs::read_dir(&self.root) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(Error::io("list", &self.root, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| Error::io("list", &self.root, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if check_topic_name(&name).is_err() {
                continue;
            }
            if let Some(f) = Self::read_topic_file(&entry.path())? {
                let desc = json!({
                    "name": name,
                    "num_partitions": f.num_partitions,
                    "validator": f.validator,
                    "partition_selector": f.partition_selector,
                    "serializer": f.serializer,
                });
                out.insert(name, desc);
            }
        }
        Ok(out)
    }
}

/// An open topic.
struct Topic {
    name: String,
    dir: PathBuf,
    components: TopicComponents,
    partitions: Vec<PartitionLog>,
}

impl Topic {
    fn partition(&self, p: usize) -> Result<&PartitionLog> {
        self.partitions
            .get(p)
            .ok_or_else(|| Error::PartitionOutOfRange {
                topic: self.name.clone(),
                partition: p,
                num_partitions: self.partitions.len(),
            })
    }

    fn offset_file(&self, consumer: &str, partition: usize) -> Result<PathBuf> {
        check_topic_name(consumer)
            .map_err(|_| Error::InvalidArgument(format!("consumer name {consumer:?}")))?;
        Ok(self.dir.join("offsets").join(format!("{consumer}.{partition}")))
    }
}

impl TopicBackend for Topic {
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
        Ok(BatchIds::Contiguous(self.partition(partition)?.append(batch)?))
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

    fn fetch_returns_at_once(&self) -> bool {
        true
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

    fn load_offset(&self, consumer: &str, partition: usize) -> Result<EventId> {
        self.partition(partition)?;
        let path = self.offset_file(consumer, partition)?;
        match std::fs::read(&path) {
            Ok(b) if b.len() == 8 => Ok(u64::from_le_bytes(b.try_into().unwrap_or_default())),
            Ok(b) => Err(Error::corrupt(&path, 0, format!("{} bytes, not 8", b.len()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(0),
            Err(e) => Err(Error::io("read", &path, e)),
        }
    }

    fn store_offset(&self, consumer: &str, partition: usize, next: EventId) -> Result<()> {
        self.partition(partition)?;
        let path = self.offset_file(consumer, partition)?;
        let tmp = path.with_extension(format!("{partition}.tmp-{}", std::process::id()));
        std::fs::write(&tmp, next.to_le_bytes()).map_err(|e| Error::io("write", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| Error::io("rename into", &path, e))
    }
}
