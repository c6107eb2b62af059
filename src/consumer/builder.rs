//! [`ConsumerBuilder`]: a consumer's options, checked and turned into a running consumer.

use super::shared::{prefetch_loop, Fetcher, Queue, Shared};
use super::start::{resolve, StartPosition};
use super::{Consumer, DataAllocator, DataSelector, ADAPTIVE_FETCH_EVENTS};
use crate::components::is_length_prefixed;
use crate::data_view::Allocation;
use crate::descriptor::DataDescriptor;
use crate::error::{Error, Result};
use crate::metadata::Metadata;
use crate::signal::Signal;
use crate::thread_pool::ThreadPool;
use crate::topic::TopicHandle;
use crate::types::{BatchSize, MaxNumBatches};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Options of a new consumer; finish with [`ConsumerBuilder::build`].
#[must_use]
pub struct ConsumerBuilder {
    topic: TopicHandle,
    name: String,
    batch_size: BatchSize,
    max_num_batches: MaxNumBatches,
    thread_pool: Option<Arc<dyn ThreadPool>>,
    selector: Option<DataSelector>,
    allocator: Option<DataAllocator>,
    targets: Option<Vec<usize>>,
    options: Value,
    start: StartPosition,
    liveness_timeout: Duration,
}

/// The default [`ConsumerBuilder::liveness_timeout`]: 10 s.
pub const DEFAULT_LIVENESS_TIMEOUT: Duration = Duration::from_secs(10);

impl TopicHandle {
    /// Starts building a consumer named `name`. Consumers with the same name share acknowledged
    /// positions: a consumer restarted with the same name resumes where the last one stopped.
    pub fn consumer(&self, name: &str) -> ConsumerBuilder {
        ConsumerBuilder::new(self.clone(), name)
    }
}

impl ConsumerBuilder {
    pub(crate) fn new(topic: TopicHandle, name: &str) -> Self {
        ConsumerBuilder {
            topic,
            name: name.to_string(),
            batch_size: BatchSize::Adaptive,
            max_num_batches: MaxNumBatches::default(),
            thread_pool: None,
            selector: None,
            allocator: None,
            targets: None,
            options: Value::Object(Default::default()),
            start: StartPosition::LastAck,
            liveness_timeout: DEFAULT_LIVENESS_TIMEOUT,
        }
    }

    /// Events fetched per batch (default adaptive: up to 1024).
    pub fn batch_size(mut self, b: BatchSize) -> Self {
        self.batch_size = b;
        self
    }

    /// Batches prefetched ahead of the application (default 2), when a prefetch thread runs
    /// (see the module documentation).
    pub fn max_num_batches(mut self, m: MaxNumBatches) -> Self {
        self.max_num_batches = m;
        self
    }

    /// Pool used by [`Consumer::process`] when it is given none.
    pub fn thread_pool(mut self, pool: Arc<dyn ThreadPool>) -> Self {
        self.thread_pool = Some(pool);
        self
    }

    /// Data selector (default: the whole data).
    pub fn data_selector(
        mut self,
        f: impl Fn(&Metadata, &DataDescriptor) -> DataDescriptor + Send + Sync + 'static,
    ) -> Self {
        self.selector = Some(Arc::new(f));
        self
    }

    /// Data allocator (default: library-owned memory).
    pub fn data_allocator(
        mut self,
        f: impl Fn(&Metadata, &DataDescriptor) -> Allocation + Send + Sync + 'static,
    ) -> Self {
        self.allocator = Some(Arc::new(f));
        self
    }

    /// Partitions to read (default: all of them).
    pub fn targets(mut self, partitions: &[usize]) -> Self {
        self.targets = Some(partitions.to_vec());
        self
    }

    /// Where to start reading (default [`StartPosition::LastAck`]: after the last event
    /// acknowledged under this consumer's name). Parsed from text with `str::parse`
    /// (`"beginning"`, `"end"`, `"step:3"`, `"0=120,1=7"`).
    pub fn start(mut self, start: StartPosition) -> Self {
        self.start = start;
        self
    }

    /// After this long without new events (default [`DEFAULT_LIVENESS_TIMEOUT`]), the consumer
    /// checks the producers' liveness announcements (on drivers that keep them: the files
    /// driver's lease files). A producer whose announcement has not been renewed for longer,
    /// and that did not end its stream, died: the next pull returns
    /// [`Error::ProducerLost`] naming it (once per producer), after every event it stored.
    /// Producers that are slow but alive renew their announcement from a background thread
    /// and are never reported. `Duration::ZERO` turns the check off.
    pub fn liveness_timeout(mut self, timeout: Duration) -> Self {
        self.liveness_timeout = timeout;
        self
    }

    /// Driver-specific options.
    pub fn options(mut self, o: Value) -> Self {
        self.options = o;
        self
    }

    /// Creates the consumer and starts prefetching from its acknowledged positions.
    pub fn build(self) -> Result<Consumer> {
        let n = self.topic.num_partitions();
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
        let targets = match self.targets {
            None => (0..n).collect::<Vec<_>>(),
            Some(t) if t.is_empty() => (0..n).collect(),
            Some(t) => {
                let mut seen = vec![false; n];
                for &p in &t {
                    if p >= n {
                        return Err(Error::PartitionOutOfRange {
                            topic: self.topic.name().to_string(),
                            partition: p,
                            num_partitions: n,
                        });
                    }
                    if std::mem::replace(&mut seen[p], true) {
                        return Err(Error::InvalidArgument(format!(
                            "partition {p} is listed twice in the consumer's targets"
                        )));
                    }
                }
                t
            }
        };
        let backend = self.topic.backend().clone();
        let (next, steps) = resolve(
            backend.as_ref(),
            self.topic.name(),
            &self.name,
            &targets,
            &self.start,
        )?;
        // Acknowledgements only move forward from what was acknowledged under this name.
        let mut acked = vec![0; n];
        for (i, &p) in targets.iter().enumerate() {
            acked[p] = match self.start {
                StartPosition::LastAck => next[i],
                _ => backend.load_offset(&self.name, p)?,
            };
        }
        let fetch_size = match self.batch_size {
            BatchSize::Fixed(k) => k,
            BatchSize::Adaptive => ADAPTIVE_FETCH_EVENTS,
        };
        let pool = self
            .thread_pool
            .unwrap_or_else(|| self.topic.driver().default_thread_pool());
        // A reader that keeps its own position under the consumer's name (Mofka's service) would
        // start at the acknowledged position: for any other start, it reads under a name of its
        // own (positions are still acknowledged under the consumer's name).
        let reader_name = match self.start {
            StartPosition::LastAck => self.name.clone(),
            _ => format!(
                "{}.start-{}-{}",
                self.name,
                std::process::id(),
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0)
            ),
        };
        let reader = backend.open_reader(&reader_name, &targets, &self.options)?;
        let prefetching_reader = reader.as_ref().is_some_and(|r| r.prefetches());
        // With an inline pool (0 threads, the default) and a driver whose fetch never waits
        // (files), the pulling thread reads too, as the reference does: events are then made
        // and freed by one thread, without hand-overs.
        let inline_mode =
            reader.is_none() && backend.fetch_returns_at_once() && pool.thread_count() == 0;
        let direct = prefetching_reader || inline_mode;
        let direct_mode = direct;
        let length_prefixed = is_length_prefixed(&*self.topic.inner.components.serializer);
        let shared = Arc::new(Shared {
            topic: self.topic,
            name: self.name,
            batch_size: self.batch_size,
            max_num_batches: self.max_num_batches,
            fetch_size,
            capacity: fetch_size.saturating_mul(self.max_num_batches.0).max(1),
            pool,
            selector: self.selector,
            allocator: self.allocator,
            targets,
            options: self.options,
            queue: Mutex::new(Queue {
                items: VecDeque::new(),
                stop: false,
                prefetcher_waiting: false,
                ended: false,
                read_ahead: 0,
            }),
            ready: Signal::new(),
            room: Signal::new(),
            acked: Mutex::new(acked),
            direct: Mutex::new(None),
            direct_mode,
            inline_mode,
            steps: Mutex::new(steps),
            step_done: Signal::new(),
            steps_seen: AtomicBool::new(false),
            start_ids: next.clone(),
            liveness_timeout: self.liveness_timeout,
            length_prefixed,
            spare_parts: Mutex::new(Vec::new()),
        });
        let fetcher = Fetcher::new(&shared, next, reader);
        if direct {
            // The driver's client already prefetches in its own threads, or the pool is inline:
            // read in the pulling thread instead of handing every event over from another one.
            *shared.direct.lock().unwrap_or_else(|e| e.into_inner()) = Some(fetcher);
            return Ok(Consumer {
                shared,
                prefetcher: None,
            });
        }
        let s = shared.clone();
        let prefetcher = std::thread::Builder::new()
            .name("diaspora-consumer".into())
            .spawn(move || prefetch_loop(s, fetcher))
            .map_err(|e| Error::io("spawn the consumer's prefetch thread for", "", e))?;
        Ok(Consumer {
            shared,
            prefetcher: Some(prefetcher),
        })
    }
}
