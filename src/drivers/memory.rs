//! The `memory` driver: topics kept in the memory of the process, for tests, examples and
//! pipelines whose producers and consumers are threads of one program (what the C++
//! reference's "simple" backend is for).
//!
//! It offers every feature of the API (partitions, components, partial data reads, named
//! consumers and their acknowledged offsets) at memory speed. Data parts are kept as the
//! producer handed them: a pushed buffer is referenced, never copied.
//!
//! Options:
//!
//! - `namespace` (string, optional): drivers created with the same namespace in one process
//!   see the same topics (a producer thread and a consumer thread may each create their own
//!   driver). Without it, each driver has topics of its own, gone when it is dropped.
//!
//! Topic options: `num_partitions` (default 1).

use crate::backend::{
    partition_at, BatchIds, DriverBackend, EventBatch, StoredEvent, TopicBackend,
};
use crate::components::TopicComponents;
use crate::data_view::{scatter_with, DataView};
use crate::error::{Error, Result};
use crate::metadata::PartitionInfo;
use crate::types::EventId;
use bytes::Bytes;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

/// The largest partition count a memory topic accepts.
const MAX_PARTITIONS: u64 = 1 << 20;

#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct DriverOptions {
    #[serde(default, deserialize_with = "crate::options::optional_text")]
    namespace: Option<String>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicOptions {
    #[serde(default = "one")]
    num_partitions: u64,
}

fn one() -> u64 {
    1
}

type Topics = Arc<Mutex<BTreeMap<String, Arc<MemoryTopic>>>>;

/// The topics of every named namespace of this process.
fn namespaces() -> &'static Mutex<HashMap<String, Topics>> {
    static N: OnceLock<Mutex<HashMap<String, Topics>>> = OnceLock::new();
    N.get_or_init(Default::default)
}

/// A driver whose topics live in process memory.
pub struct MemoryDriver {
    topics: Topics,
}

impl MemoryDriver {
    /// Creates the driver from its options (see the module documentation).
    pub fn new(options: &Value) -> Result<Self> {
        let opts: DriverOptions = if options.is_object() {
            crate::options::parse("memory driver", options)?
        } else {
            DriverOptions::default()
        };
        let topics = match opts.namespace {
            Some(ns) => namespaces()
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .entry(ns)
                .or_default()
                .clone(),
            None => Topics::default(),
        };
        Ok(MemoryDriver { topics })
    }

    fn topics(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<MemoryTopic>>> {
        self.topics.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl DriverBackend for MemoryDriver {
    fn name(&self) -> &'static str {
        "memory"
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
        if name.is_empty() {
            return Err(Error::InvalidArgument(
                "a topic name cannot be empty".into(),
            ));
        }
        let n = if options.is_object() {
            let o: TopicOptions = crate::options::parse("topic", options)?;
            o.num_partitions
        } else {
            1
        };
        if !(1..=MAX_PARTITIONS).contains(&n) {
            return Err(Error::config(
                "topic",
                format!("option \"num_partitions\": must be from 1 to {MAX_PARTITIONS}, not {n}"),
            ));
        }
        let mut topics = self.topics();
        if topics.contains_key(name) {
            return Err(Error::TopicExists(name.to_string()));
        }
        components
            .partition_selector
            .set_partitions(&vec![PartitionInfo::default(); n as usize]);
        let topic = MemoryTopic {
            name: name.to_string(),
            components: components.clone(),
            partitions: (0..n).map(|_| RwLock::default()).collect(),
            offsets: Mutex::default(),
        };
        topics.insert(name.to_string(), Arc::new(topic));
        Ok(())
    }

    fn open_topic(&self, name: &str) -> Result<Arc<dyn TopicBackend>> {
        match self.topics().get(name) {
            Some(t) => Ok(t.clone() as Arc<dyn TopicBackend>),
            None => Err(Error::TopicNotFound(name.to_string())),
        }
    }

    fn topic_exists(&self, name: &str) -> Result<bool> {
        Ok(self.topics().contains_key(name))
    }

    fn list_topics(&self) -> Result<BTreeMap<String, Value>> {
        Ok(self
            .topics()
            .iter()
            .map(|(name, t)| {
                let c = &t.components;
                let desc = json!({
                    "name": name,
                    "num_partitions": t.partitions.len(),
                    "validator": c.validator.metadata(),
                    "partition_selector": c.partition_selector.metadata(),
                    "serializer": c.serializer.metadata(),
                });
                (name.clone(), desc)
            })
            .collect())
    }
}

/// One stored event.
struct MemoryEvent {
    metadata: Bytes,
    data: DataView,
}

/// A topic of the memory driver.
struct MemoryTopic {
    name: String,
    components: TopicComponents,
    partitions: Vec<RwLock<Vec<MemoryEvent>>>,
    offsets: Mutex<HashMap<(String, usize), EventId>>,
}

impl MemoryTopic {
    fn partition(&self, p: usize) -> Result<&RwLock<Vec<MemoryEvent>>> {
        partition_at(&self.name, &self.partitions, p)
    }
}

impl TopicBackend for MemoryTopic {
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
        let log = self.partition(partition)?;
        // One allocation for the batch's metadata; each event keeps a slice of it.
        let all = Bytes::copy_from_slice(batch.metadata_bytes());
        let mut start = 0;
        let events: Vec<MemoryEvent> = (0..batch.len())
            .map(|i| {
                let len = batch.metadata_of(i).len();
                let ev = MemoryEvent {
                    metadata: all.slice(start..start + len),
                    data: batch.data_of(i).clone(),
                };
                start += len;
                ev
            })
            .collect();
        let mut log = log.write().unwrap_or_else(|e| e.into_inner());
        let first = log.len() as EventId;
        log.extend(events);
        Ok(BatchIds::Contiguous(first))
    }

    fn sync(&self, partitions: &[usize]) -> Result<()> {
        for &p in partitions {
            self.partition(p)?;
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
        let log = self
            .partition(partition)?
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let start = (from as usize).min(log.len());
        let end = start.saturating_add(max_events).min(log.len());
        Ok(log[start..end]
            .iter()
            .enumerate()
            .map(|(i, ev)| StoredEvent {
                id: (start + i) as EventId,
                metadata: ev.metadata.clone(),
                // Stored from this library's own serializer output, in this process.
                metadata_verified: true,
                data_size: ev.data.size() as u64,
                data_location: 0,
                data: (with_data && ev.data.segments().len() <= 1).then(|| ev.data.to_bytes()),
                descriptor: None,
            })
            .collect())
    }

    fn fetch_returns_at_once(&self) -> bool {
        true
    }

    fn append_returns_at_once(&self) -> bool {
        true
    }

    fn end_id(&self, partition: usize) -> Result<EventId> {
        let log = self
            .partition(partition)?
            .read()
            .unwrap_or_else(|e| e.into_inner());
        Ok(log.len() as EventId)
    }

    fn read_data(
        &self,
        partition: usize,
        event: &StoredEvent,
        ranges: &[(u64, u64)],
        dst: &mut [&mut [u8]],
    ) -> Result<()> {
        let log = self
            .partition(partition)?
            .read()
            .unwrap_or_else(|e| e.into_inner());
        let ev = log.get(event.id as usize).ok_or_else(|| {
            Error::InvalidArgument(format!(
                "partition {partition} of topic {:?} has no event {}",
                self.name, event.id
            ))
        })?;
        let size = ev.data.size() as u64;
        if let Some(&(o, s)) = ranges.iter().find(|&&(o, s)| o.saturating_add(s) > size) {
            return Err(Error::InvalidArgument(format!(
                "range ({o}, {s}) is beyond the {size} bytes of event {} of partition {partition}",
                event.id
            )));
        }
        scatter_with(ranges, dst, |from, piece| {
            ev.data.read(piece, from as usize);
            Ok::<(), std::convert::Infallible>(())
        })
        .unwrap_or_else(|never| match never {});
        Ok(())
    }

    fn load_offset(&self, consumer: &str, partition: usize) -> Result<EventId> {
        self.partition(partition)?;
        let offsets = self.offsets.lock().unwrap_or_else(|e| e.into_inner());
        Ok(offsets
            .get(&(consumer.to_string(), partition))
            .copied()
            .unwrap_or(0))
    }

    fn store_offset(&self, consumer: &str, partition: usize, next: EventId) -> Result<()> {
        self.partition(partition)?;
        self.offsets
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((consumer.to_string(), partition), next);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespaces_share_topics_and_plain_drivers_do_not() {
        let ns = json!({"namespace": "memory-unit-test"});
        let a = MemoryDriver::new(&ns).unwrap();
        let b = MemoryDriver::new(&ns).unwrap();
        let c = MemoryDriver::new(&json!({})).unwrap();
        a.create_topic(
            "t",
            &json!({"num_partitions": 2}),
            &TopicComponents::default(),
        )
        .unwrap();
        assert!(b.topic_exists("t").unwrap());
        assert!(!c.topic_exists("t").unwrap());
        assert_eq!(b.list_topics().unwrap()["t"]["num_partitions"], 2);
        let e = MemoryDriver::new(&json!({"namespce": "x"})).err().unwrap();
        assert!(e.to_string().contains("namespace"), "{e}");
        let e = a
            .create_topic(
                "u",
                &json!({"num_partitions": 0}),
                &TopicComponents::default(),
            )
            .unwrap_err();
        assert!(e.to_string().contains("num_partitions"), "{e}");
    }

    #[test]
    fn data_is_read_in_ranges_across_segments() {
        let d = MemoryDriver::new(&json!(null)).unwrap();
        d.create_topic("t", &json!({}), &TopicComponents::default())
            .unwrap();
        let t = d.open_topic("t").unwrap();
        let mut batch = EventBatch::default();
        let data = DataView::from_segments(vec![b"abcd".to_vec(), b"efgh".to_vec()]);
        batch.push_serialized(b"{}", data);
        assert_eq!(t.append_batch(0, &batch).unwrap(), BatchIds::Contiguous(0));
        let evs = t.fetch(0, 0, 10, true).unwrap();
        assert_eq!(evs.len(), 1);
        assert_eq!(evs[0].data_size, 8);
        let mut out = [0u8; 5];
        t.read_data(0, &evs[0], &[(2, 3), (6, 2)], &mut [&mut out[..]])
            .unwrap();
        assert_eq!(&out, b"cdegh");
        let e = t
            .read_data(0, &evs[0], &[(7, 2)], &mut [&mut out[..]])
            .unwrap_err();
        assert!(e.to_string().contains("beyond"), "{e}");
        assert!(t.fetch(0, 1, 10, true).unwrap().is_empty());
        assert!(t.fetch(1, 0, 10, true).is_err());
    }
}
