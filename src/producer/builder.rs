//! [`ProducerBuilder`]: a producer's options, checked and turned into a running producer.

use super::{sender_loop, Producer, Shared, State};
use crate::backend::ProducerInfo;
use crate::components::PartitionSelector;
use crate::error::{Error, Result};
use crate::signal::Signal;
use crate::thread_pool::ThreadPool;
use crate::topic::TopicHandle;
use crate::types::{BatchSize, MaxNumBatches, Ordering};
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Options of a new producer; finish with [`ProducerBuilder::build`].
#[must_use]
pub struct ProducerBuilder {
    topic: TopicHandle,
    name: String,
    batch_size: BatchSize,
    max_num_batches: MaxNumBatches,
    thread_pool: Option<Arc<dyn ThreadPool>>,
    ordering: Ordering,
    options: Value,
    selector: Option<Arc<dyn PartitionSelector>>,
    group: (usize, usize),
    max_buffered_bytes: usize,
    on_full: OnFull,
    push_timeout: Option<Duration>,
}

/// The default `max_buffered_bytes` of a producer: 1 GiB.
pub const DEFAULT_MAX_BUFFERED_BYTES: usize = 1 << 30;

/// What `push` does when the producer already holds `max_buffered_bytes` of events not yet
/// stored (see [`ProducerBuilder::max_buffered_bytes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OnFull {
    /// Wait until stored batches make room (up to the push timeout, if one is set). The default.
    #[default]
    Block,
    /// Fail the push at once with [`Error::ProducerFull`].
    Error,
}

impl TopicHandle {
    /// Starts building a producer (see [`ProducerBuilder`] for the options).
    pub fn producer(&self) -> ProducerBuilder {
        ProducerBuilder::new(self.clone())
    }
}

impl ProducerBuilder {
    pub(crate) fn new(topic: TopicHandle) -> Self {
        ProducerBuilder {
            topic,
            name: String::new(),
            batch_size: BatchSize::Adaptive,
            max_num_batches: MaxNumBatches::default(),
            thread_pool: None,
            ordering: Ordering::Strict,
            options: Value::Object(Default::default()),
            selector: None,
            group: (0, 1),
            max_buffered_bytes: DEFAULT_MAX_BUFFERED_BYTES,
            on_full: OnFull::Block,
            push_timeout: None,
        }
    }

    /// Bounds the memory this producer holds for events not yet stored: their data (kept by
    /// reference, but kept alive) and serialized metadata, from `push` until their batch is
    /// stored (default [`DEFAULT_MAX_BUFFERED_BYTES`], 1 GiB). A push that would pass it waits
    /// or fails as [`ProducerBuilder::on_full`] says; an event larger than the bound is accepted
    /// when nothing else is held. Control events (steps, end of stream) are never refused.
    /// Until an event's metadata is serialized (on a pool thread, after `push` returns) it
    /// counts for the largest serialized metadata seen so far, at least 256 bytes; so the bound
    /// holds exactly unless an event's metadata is larger than every earlier one's.
    pub fn max_buffered_bytes(mut self, bytes: usize) -> Self {
        self.max_buffered_bytes = bytes;
        self
    }

    /// What `push` does when `max_buffered_bytes` is reached (default [`OnFull::Block`]).
    pub fn on_full(mut self, policy: OnFull) -> Self {
        self.on_full = policy;
        self
    }

    /// With [`OnFull::Block`], how long a push waits for room before failing with
    /// [`Error::ProducerFull`] (default: as long as it takes).
    pub fn push_timeout(mut self, timeout: Duration) -> Self {
        self.push_timeout = Some(timeout);
        self
    }

    /// This producer is number `index` of `count` producers that close steps together
    /// ([`Producer::end_step`]); default 0 of 1. The MPI helpers pass the rank and the size of
    /// the communicator instead.
    pub fn group(mut self, index: usize, count: usize) -> Self {
        self.group = (index, count);
        self
    }

    /// Uses `selector` for this producer instead of the topic's partition selector (for example
    /// a rank-affine selector that keeps each MPI rank on its own partitions).
    pub fn partition_selector(mut self, selector: Arc<dyn PartitionSelector>) -> Self {
        self.selector = Some(selector);
        self
    }

    /// Producer name (informational).
    pub fn name(mut self, name: &str) -> Self {
        self.name = name.to_string();
        self
    }

    /// Events per batch (default: adaptive).
    pub fn batch_size(mut self, b: BatchSize) -> Self {
        self.batch_size = b;
        self
    }

    /// Batches that may wait to be stored before `push` blocks (default 2).
    pub fn max_num_batches(mut self, m: MaxNumBatches) -> Self {
        self.max_num_batches = m;
        self
    }

    /// Pool running validation, partition selection and serialization (default: the driver's
    /// default pool, which runs them inline).
    pub fn thread_pool(mut self, pool: Arc<dyn ThreadPool>) -> Self {
        self.thread_pool = Some(pool);
        self
    }

    /// Whether events must be stored in push order (default strict).
    pub fn ordering(mut self, o: Ordering) -> Self {
        self.ordering = o;
        self
    }

    /// Driver-specific options.
    pub fn options(mut self, o: Value) -> Self {
        self.options = o;
        self
    }

    /// Creates the producer.
    pub fn build(self) -> Result<Producer> {
        if self.max_num_batches.0 == 0 {
            return Err(Error::InvalidArgument(
                "MaxNumBatches must be at least 1".into(),
            ));
        }
        if self.batch_size == BatchSize::Fixed(0) {
            return Err(Error::InvalidArgument(
                "batch size must be at least 1".into(),
            ));
        }
        let n = self.topic.num_partitions();
        let pool = self
            .thread_pool
            .unwrap_or_else(|| self.topic.driver().default_thread_pool());
        let selector = match self.selector {
            Some(s) => {
                s.set_partitions(self.topic.partitions());
                s
            }
            None => self.topic.partition_selector().clone(),
        };
        // Announced as alive to consumers (on drivers that keep producer liveness) until dropped.
        let rank = (self.group.1 > 1).then_some(self.group.0 as u64);
        let info = ProducerInfo::this_process(&self.name, rank);
        // A producer that cannot write its announcement (a read-only topic) usually cannot write
        // events either: its pushes report that, so creating it does not fail here. Where it
        // can (a Kafka user allowed to write the topic but not to create its side topic), the
        // warning says why consumers will not see it.
        let lease = match self.topic.backend().announce_producer(&info) {
            Ok(lease) => lease,
            Err(e) => {
                eprintln!(
                    "diaspora-stream: producer {:?} on topic {:?} runs without a liveness \
                     lease: {e}",
                    self.name,
                    self.topic.name()
                );
                None
            }
        };
        let backend = match self.topic.backend().for_producer(&self.options)? {
            Some(b) => b,
            None => self.topic.backend().clone(),
        };
        // A pushing thread stores batches itself when it would wait for room (see
        // `Shared::wait_for_room`) only where that cannot make it wait on a service.
        let pusher_writes = backend.append_returns_at_once();
        let shared = Arc::new(Shared {
            backend,
            pusher_writes,
            lease,
            selector,
            topic: self.topic,
            name: self.name,
            batch_size: self.batch_size,
            max_num_batches: self.max_num_batches,
            ordering: self.ordering,
            options: self.options,
            pool,
            max_buffered_bytes: self.max_buffered_bytes,
            on_full: self.on_full,
            push_timeout: self.push_timeout,
            state: Mutex::new(State {
                buffered: 0,
                metadata_reserve: super::MIN_METADATA_RESERVE,
                open: (0..n).map(|_| None).collect(),
                last_batch_len: vec![0; n],
                queue: VecDeque::new(),
                queued_batches: 0,
                in_flight: 0,
                writers: 0,
                submitting: vec![false; n],
                closing: false,
                jobs_in_flight: 0,
                next_seq: 0,
                commit_seq: 0,
                reorder: BTreeMap::new(),
                pending: VecDeque::new(),
                active_drains: 0,
                touched: vec![false; n],
                failure_since_flush: None,
            }),
            work_ready: Signal::new(),
            progress: Signal::new(),
        });
        let s = shared.clone();
        let sender = std::thread::Builder::new()
            .name("diaspora-producer".into())
            .spawn(move || sender_loop(s))
            .map_err(|e| Error::io("spawn the producer's sender thread for", "", e))?;
        Ok(Producer {
            shared,
            sender: Some(sender),
            group: self.group,
            last_step: Mutex::new(None),
        })
    }
}
