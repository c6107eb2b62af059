//! The driver API: what a storage or transport implements to carry topics.
//!
//! A driver implements two small traits, [`DriverBackend`] (topic administration) and
//! [`TopicBackend`] (batch-level data movement on one open topic), plus, when its reads are
//! stateful, [`PartitionReader`]. Everything else (batching, back-pressure, ordering, futures,
//! prefetching, data selection, acknowledgement bookkeeping) lives once in the producer and
//! consumer engines. The primitives are chosen so that very different backends fit: a file
//! system appends a batch under a lock, a Kafka broker produces records, an RDMA service pulls
//! bulk handles; all of them can say "this batch starts at id N", "give me events from offset
//! K", "read these byte ranges of that event's data" and "remember that consumer C has
//! processed partition P up to id N".
//!
//! What each call must guarantee:
//!
//! - [`TopicBackend::append_batch`] stores a whole batch or nothing, atomically with respect to
//!   every other writer, in any process; it returns the ids it assigned ([`BatchIds`]).
//!   [`TopicBackend::append_batch_async`]'s callback may run on a transport's progress thread:
//!   it must not block.
//! - Ids of one partition only grow; [`TopicBackend::fetch`] from id `n` returns events with
//!   ids `>= n` in id order, an empty vector when none is stored yet.
//! - [`TopicBackend::read_data`] copies exactly the requested byte ranges, in order.
//! - Offsets stored with [`TopicBackend::store_offset`] are read back by
//!   [`TopicBackend::load_offset`], also from another process.
//! - Every method may be called from several threads at once (`Send + Sync`).
//!
//! The files driver ([`crate::drivers::files`]) is the worked example, the memory driver
//! ([`crate::drivers::memory`]) the shortest complete one. A driver is made available by name
//! with [`crate::driver::register_driver`] in the program that links it, or built as a `cdylib`
//! exporting [`crate::export_driver!`] and loaded by name (`"NAME:LIBRARY"`, see
//! [`crate::plugin`]). A driver crate checks itself against the conformance kit (the crate
//! `diaspora-stream-conformance`); `templates/driver` in the repository is a complete one to
//! start from.
//!
//! Versioning: this API changes only with the crate's version (semver: additions in a minor
//! release, with default methods so that existing drivers keep compiling). A driver loaded by
//! name must in addition be built with the same release and compiler as the program that loads
//! it, which the loader checks before using it ([`crate::plugin::build_id`]).

use crate::components::TopicComponents;
use crate::data_view::DataView;
use crate::descriptor::DataDescriptor;
use crate::error::{Error, Result};
use crate::metadata::PartitionInfo;
use crate::types::EventId;
use bytes::Bytes;
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// A batch of events bound for one partition, as the producer engine hands it to a driver.
///
/// Metadata records are already serialized (by the topic's serializer) and concatenated; data
/// parts are the application's own buffers, never copied by the engine.
#[derive(Default, Debug, Clone)]
pub struct EventBatch {
    metadata: Vec<u8>,
    metadata_ends: Vec<usize>,
    data: Vec<DataView>,
}

impl EventBatch {
    /// An empty batch with room for `events` events of about `metadata_bytes` bytes in total.
    pub fn with_capacity(events: usize, metadata_bytes: usize) -> Self {
        EventBatch {
            metadata: Vec::with_capacity(metadata_bytes),
            metadata_ends: Vec::with_capacity(events),
            data: Vec::with_capacity(events),
        }
    }

    /// Appends one event, serializing its metadata with `serialize` straight into the batch.
    pub fn push_with(
        &mut self,
        serialize: impl FnOnce(&mut Vec<u8>) -> Result<()>,
        data: DataView,
    ) -> Result<()> {
        let start = self.metadata.len();
        if let Err(e) = serialize(&mut self.metadata) {
            self.metadata.truncate(start);
            return Err(e);
        }
        self.metadata_ends.push(self.metadata.len());
        self.data.push(data);
        Ok(())
    }

    /// Appends one event whose metadata is already serialized.
    pub fn push_serialized(&mut self, metadata: &[u8], data: DataView) {
        self.metadata.extend_from_slice(metadata);
        self.metadata_ends.push(self.metadata.len());
        self.data.push(data);
    }

    /// Number of events.
    pub fn len(&self) -> usize {
        self.metadata_ends.len()
    }

    /// True when the batch has no event.
    pub fn is_empty(&self) -> bool {
        self.metadata_ends.is_empty()
    }

    /// All serialized metadata records, concatenated.
    pub fn metadata_bytes(&self) -> &[u8] {
        &self.metadata
    }

    /// The serialized metadata of event `i`.
    pub fn metadata_of(&self, i: usize) -> &[u8] {
        let start = if i == 0 { 0 } else { self.metadata_ends[i - 1] };
        &self.metadata[start..self.metadata_ends[i]]
    }

    /// The data of event `i`.
    pub fn data_of(&self, i: usize) -> &DataView {
        &self.data[i]
    }

    /// Total bytes of metadata and data.
    pub fn size_bytes(&self) -> usize {
        self.metadata.len() + self.data.iter().map(DataView::size).sum::<usize>()
    }
}

/// One stored event as a driver returns it from [`TopicBackend::fetch`].
#[derive(Clone, Debug)]
pub struct StoredEvent {
    /// Event id in its partition.
    pub id: EventId,
    /// Serialized metadata (decoded by the topic's serializer in the engine).
    pub metadata: Bytes,
    /// The driver checked that `metadata` holds exactly the bytes this library's writer
    /// stored (a checksum written with them matched), so the engine need not check again that
    /// its JSON parses: this library only writes JSON it made from a value.
    pub metadata_verified: bool,
    /// Size of the event's data part.
    pub data_size: u64,
    /// Driver-private position of the data (e.g. a file offset), passed back to `read_data`.
    pub data_location: u64,
    /// The whole data part, when the fetch asked for it and the driver had it at hand.
    pub data: Option<Bytes>,
    /// The backend's own description of where the data is (Mofka's descriptors), passed back
    /// to `read_data`; `None` for backends that use `data_location`.
    pub descriptor: Option<DataDescriptor>,
}

/// The entry of `partitions` for partition `p` of `topic`, or [`Error::PartitionOutOfRange`].
pub(crate) fn partition_at<'a, T>(topic: &str, partitions: &'a [T], p: usize) -> Result<&'a T> {
    partitions.get(p).ok_or_else(|| Error::PartitionOutOfRange {
        topic: topic.to_string(),
        partition: p,
        num_partitions: partitions.len(),
    })
}

/// One event's data read, for [`TopicBackend::read_data_many`]: the byte ranges of `event`'s
/// data to copy, consecutively, over `dst`.
#[derive(Debug)]
pub struct DataRead<'a> {
    /// The event, as the driver returned it, except that its `metadata` record may be empty
    /// by then (the consumer moves records into the events it makes): a driver finds the data
    /// with `id`, `data_location` and `descriptor`.
    pub event: &'a StoredEvent,
    /// `(offset, size)` ranges of the event's data, in order.
    pub ranges: &'a [(u64, u64)],
    /// Where the bytes go (the total is at least the ranges' total).
    pub dst: Vec<&'a mut [u8]>,
}

/// The ids a driver assigned to the events of one batch, in batch order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BatchIds {
    /// Consecutive ids starting here (a log that appends the batch in one piece).
    Contiguous(EventId),
    /// One id per event (a backend where other writers may interleave, such as Kafka).
    Each(Vec<EventId>),
}

impl BatchIds {
    /// The id of event `i` of the batch.
    pub fn get(&self, i: usize) -> Option<EventId> {
        match self {
            BatchIds::Contiguous(first) => Some(first + i as u64),
            BatchIds::Each(ids) => ids.get(i).copied(),
        }
    }
}

/// Called once when an asynchronous append completes. It may run on a transport's progress
/// thread (the mofka driver's), so it must be quick and must not wait for other appends.
pub type BatchCallback = Box<dyn FnOnce(Result<BatchIds>) + Send + 'static>;

/// A consumer's private cursor over some partitions, for backends whose reads are stateful
/// (a Kafka consumer, an RDMA subscription). Backends without one are read through
/// [`TopicBackend::fetch`].
pub trait PartitionReader: Send {
    /// Up to `max_events` events of `partition` from id `from` on (empty: none available yet).
    fn fetch(
        &mut self,
        partition: usize,
        from: EventId,
        max_events: usize,
        with_data: bool,
    ) -> Result<Vec<StoredEvent>>;

    /// True when the backend's client prefetches by itself (librdkafka does): the engine then
    /// reads in the pulling thread instead of running a prefetch thread of its own.
    fn prefetches(&self) -> bool {
        false
    }

    /// Gives back events that `fetch` returned but the engine could not deliver (a failure
    /// stopped the batch at the first of them): the next `fetch` of `partition` must return
    /// them first. Readers that fetch by id again from the engine's `from` need not keep them.
    fn unread(&mut self, _partition: usize, _events: Vec<StoredEvent>) {}
}

/// Administration side of a driver.
pub trait DriverBackend: Send + Sync {
    /// The driver's registered name (`"files"`, ...).
    fn name(&self) -> &'static str;
    /// Creates a topic; fails with [`Error::TopicExists`] if it exists.
    fn create_topic(&self, name: &str, options: &Value, components: &TopicComponents)
        -> Result<()>;
    /// Opens an existing topic; fails with [`Error::TopicNotFound`] if it does not exist.
    fn open_topic(&self, name: &str) -> Result<Arc<dyn TopicBackend>>;
    /// True if the topic exists.
    fn topic_exists(&self, name: &str) -> Result<bool>;
    /// The backend itself, for operations only its driver offers (see
    /// [`crate::Driver::backend_as`]); `None` (the default) when there are none.
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        None
    }
    /// Every topic with a JSON description (at least `name` and `num_partitions`).
    fn list_topics(&self) -> Result<BTreeMap<String, Value>>;
}

/// Data side of a driver, for one open topic.
pub trait TopicBackend: Send + Sync {
    /// Topic name.
    fn name(&self) -> &str;
    /// The partitions (their count is the topic's partition count).
    fn partitions(&self) -> Vec<PartitionInfo>;
    /// The topic's validator, selector and serializer as stored with it.
    fn components(&self) -> TopicComponents;
    /// Appends `batch` to `partition` atomically with respect to other writers (in any process)
    /// and returns the ids of its events. On error the partition's log is as it was.
    fn append_batch(&self, partition: usize, batch: &EventBatch) -> Result<BatchIds>;
    /// Starts appending `batch` and calls `done` when it is stored. Backends whose client
    /// pipelines requests (Kafka) override this so that the producer engine keeps several
    /// batches in flight; the default stores the batch synchronously.
    fn append_batch_async(&self, partition: usize, batch: EventBatch, done: BatchCallback) {
        done(self.append_batch(partition, &batch));
    }
    /// True when [`TopicBackend::append_batch_async`] stores the batch before it returns,
    /// without waiting on a network or a service (the files driver writes local files). A
    /// producer then lets a pushing thread that would wait for room store a queued batch
    /// itself, so the batch may be appended from any thread that pushes. Default false.
    fn append_returns_at_once(&self) -> bool {
        false
    }
    /// A private reader for consumer `consumer` over `partitions`, configured with the
    /// consumer's driver-specific `options`, if this backend needs one; `None` (the default)
    /// means the engine calls [`TopicBackend::fetch`].
    fn open_reader(
        &self,
        _consumer: &str,
        _partitions: &[usize],
        _options: &Value,
    ) -> Result<Option<Box<dyn PartitionReader>>> {
        Ok(None)
    }
    /// True when [`TopicBackend::fetch`] returns at once, without waiting on a network or a
    /// service (the files driver reads local files). Consumers with an inline pool then fetch in
    /// the pulling thread instead of running a prefetch thread. Default false.
    fn fetch_returns_at_once(&self) -> bool {
        false
    }
    /// A view of this topic configured with one producer's driver-specific `options` (for
    /// example Kafka client overrides); `None` (the default) means this backend as it is.
    fn for_producer(&self, _options: &Value) -> Result<Option<Arc<dyn TopicBackend>>> {
        Ok(None)
    }
    /// Makes every batch appended so far durable according to the driver's policy.
    fn sync(&self, partitions: &[usize]) -> Result<()>;
    /// Up to `max_events` events of `partition` starting at id `from`; an empty vector means no
    /// event is available yet. With `with_data` the driver may fill [`StoredEvent::data`].
    fn fetch(
        &self,
        partition: usize,
        from: EventId,
        max_events: usize,
        with_data: bool,
    ) -> Result<Vec<StoredEvent>>;
    /// Reads the byte ranges `(offset, size)` of one event's data, in order, scattering them
    /// consecutively over `dst` (the total of `dst` must be at least the total of `ranges`).
    /// `event` is one this driver's `fetch` returned; its `metadata` may be empty (see
    /// [`DataRead::event`]).
    fn read_data(
        &self,
        partition: usize,
        event: &StoredEvent,
        ranges: &[(u64, u64)],
        dst: &mut [&mut [u8]],
    ) -> Result<()>;
    /// Performs several [`TopicBackend::read_data`] at once and returns one result per read,
    /// in order. The default reads one after the other; drivers whose reads are remote calls
    /// (Mofka) overlap them.
    fn read_data_many(&self, partition: usize, reads: &mut [DataRead<'_>]) -> Vec<Result<()>> {
        reads
            .iter_mut()
            .map(|r| self.read_data(partition, r.event, r.ranges, &mut r.dst))
            .collect()
    }
    /// The id after the last event of `partition` (its event count when ids are dense from 0):
    /// where a consumer starting at the end begins. The default finds it with `fetch` alone:
    /// `fetch(p, i, 1)` is non-empty exactly when some event has an id of at least `i`, so an
    /// exponential then binary search needs about 2 log2(n) fetches and also works for logs with
    /// gaps or a trimmed start (Kafka offsets). Drivers that know it override this.
    fn end_id(&self, partition: usize) -> Result<EventId> {
        let exists = |id: u64| -> Result<bool> {
            self.fetch(partition, id, 1, false).map(|v| !v.is_empty())
        };
        if !exists(0)? {
            return Ok(0);
        }
        // Invariant: some event has an id >= `lo`, none has one >= `hi`.
        let mut lo = 0u64;
        let mut hi = 1u64;
        while exists(hi)? {
            lo = hi;
            hi = hi.saturating_mul(2);
            if hi == u64::MAX {
                break;
            }
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if exists(mid)? {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Ok(lo + 1)
    }
    /// Announces that a producer described by `info` writes to this topic, and keeps the
    /// announcement fresh (from a background thread) until the returned lease is dropped.
    /// `None` (the default): this driver keeps no producer liveness.
    fn announce_producer(&self, _info: &ProducerInfo) -> Result<Option<Arc<dyn ProducerLease>>> {
        Ok(None)
    }

    /// The producers announced on this topic, each with how long ago its announcement was last
    /// renewed. `None` (the default): this driver keeps no producer liveness.
    fn producers(&self) -> Result<Option<Vec<(ProducerInfo, std::time::Duration)>>> {
        Ok(None)
    }

    /// True when [`TopicBackend::producers`] measures silences from the moment this backend
    /// first saw a lease (leases that carry no clock this process can trust: Kafka, Mofka). A
    /// single look then shows every producer silent for 0 s; telling the lost ones needs a
    /// second look one liveness timeout later. Default false (the files driver's leases are
    /// aged by the file system's clock).
    fn liveness_from_first_look(&self) -> bool {
        false
    }

    /// The next id consumer `consumer` should read from `partition` (0 if it never acknowledged).
    fn load_offset(&self, consumer: &str, partition: usize) -> Result<EventId>;
    /// Records that `consumer` processed `partition` up to (excluding) id `next`.
    fn store_offset(&self, consumer: &str, partition: usize, next: EventId) -> Result<()>;
}

/// Who a producer is, as liveness reports name it (see [`TopicBackend::announce_producer`]).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProducerInfo {
    /// The producer's name (`ProducerBuilder::name`; may be empty).
    pub name: String,
    /// Host it runs on.
    pub host: String,
    /// Its process id there.
    pub pid: u32,
    /// Its index in its group of producers (an MPI rank), when it is one of several.
    pub rank: Option<u64>,
    /// The last event id it stored, per partition.
    pub last_ids: BTreeMap<usize, EventId>,
    /// It declared the end of its stream: nothing more is expected from it.
    pub ended: bool,
}

impl ProducerInfo {
    /// A producer named `name` of this process (host name and process id filled in).
    pub fn this_process(name: &str, rank: Option<u64>) -> Self {
        ProducerInfo {
            name: name.to_string(),
            host: std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|s| s.trim().to_string())
                .unwrap_or_else(|_| "unknown-host".into()),
            pid: std::process::id(),
            rank,
            ..ProducerInfo::default()
        }
    }
}

/// A producer's announcement that it is alive, which the driver renews until it is dropped
/// (a clean end withdraws it; a crash leaves it to go stale).
pub trait ProducerLease: Send + Sync {
    /// Records the last id the producer stored in `partition`.
    fn stored(&self, partition: usize, last_id: EventId);
    /// Records that the producer declared the end of its stream.
    fn ended(&self);
    /// Withdraws the announcement: the producer is gone cleanly. The producer calls it when
    /// dropped, on the application's thread; dropping the lease must also withdraw it (when
    /// not done before) but may happen on a transport's callback thread, where it must not
    /// block. The default does nothing.
    fn withdraw(&self) {}
    /// Stops renewing the announcement without withdrawing it, as if the process had died
    /// (tests of liveness use it; a real crash needs no call). The default does nothing.
    #[doc(hidden)]
    fn stop_renewing(&self) {}
}

/// Builds a driver backend from its JSON options (what [`crate::driver::register_driver`] takes).
pub type DriverFactory = Arc<dyn Fn(&Value) -> Result<Arc<dyn DriverBackend>> + Send + Sync>;
