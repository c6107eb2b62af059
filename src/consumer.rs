//! The consumer engine, shared by every driver.
//!
//! A consumer has a name and a set of target partitions. A prefetch thread fetches batches of
//! events from the driver (round robin over the targets, `batch_size` events at a time, at most
//! `max_num_batches` batches ahead of the application), decodes metadata, runs the application's
//! data selector and allocator, and has the driver read only the selected bytes straight into the
//! memory the allocator returned. [`Consumer::pull`] hands out prefetched events.
//!
//! Exceptions to the prefetch thread: with an inline pool (0 threads, the default) on a driver
//! whose fetch returns at once (files), and with drivers whose client prefetches by itself
//! (Kafka), the pulling thread fetches, a batch at a time, when the queue is empty. Nothing is
//! then read ahead of the application, and `max_num_batches` has no effect; events are made and
//! freed by one thread, which avoids the allocator contention of handing them over.
//!
//! Acknowledging an event stores "this consumer name has processed its partition up to here"
//! through the driver; a consumer created later with the same name starts right after the last
//! acknowledged event of each partition. Events that were prefetched or pulled but not
//! acknowledged are delivered again to the next consumer of that name.

use crate::backend::{DataRead, PartitionReader, StoredEvent};
use crate::data_view::{scatter, Allocation, DataView};
use crate::descriptor::DataDescriptor;
use crate::error::{panic_message, Error, Result};
use crate::event::{parse_end_of_stream_marker, AckSink, Event};
use crate::future::{Deadline, Future, GiveBack, Source};
use crate::metadata::Metadata;
use crate::thread_pool::{ThreadPool, DEFAULT_PRIORITY};
use crate::topic::TopicHandle;
use crate::types::{BatchSize, EventId, MaxNumBatches, NumEvents};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Chooses which part of an event's data to read: receives the metadata and the descriptor of
/// the whole data, returns that descriptor, a view of it, or [`DataDescriptor::none`].
pub type DataSelector = Arc<dyn Fn(&Metadata, &DataDescriptor) -> DataDescriptor + Send + Sync>;

/// Provides the memory the selected data is read into; must hold at least `selected.size()`
/// bytes.
pub type DataAllocator = Arc<dyn Fn(&Metadata, &DataDescriptor) -> Allocation + Send + Sync>;

/// Events fetched per batch with an adaptive batch size.
const ADAPTIVE_FETCH_EVENTS: usize = 1024;
/// Longest sleep of an idle prefetcher between polls of the driver.
const MAX_IDLE_SLEEP: Duration = Duration::from_millis(20);

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
}

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
        let mut next = Vec::with_capacity(targets.len());
        for &p in &targets {
            next.push(backend.load_offset(&self.name, p)?);
        }
        let mut acked = vec![0; n];
        for (i, &p) in targets.iter().enumerate() {
            acked[p] = next[i];
        }
        let fetch_size = match self.batch_size {
            BatchSize::Fixed(k) => k,
            BatchSize::Adaptive => ADAPTIVE_FETCH_EVENTS,
        };
        let pool = self
            .thread_pool
            .unwrap_or_else(|| self.topic.driver().default_thread_pool());
        let reader = backend.open_reader(&self.name, &targets, &self.options)?;
        let prefetching_reader = reader.as_ref().is_some_and(|r| r.prefetches());
        // With an inline pool (0 threads, the default) and a driver whose fetch never waits
        // (files), the pulling thread reads too, as the reference does: events are then made
        // and freed by one thread, without hand-overs.
        let inline_mode =
            reader.is_none() && backend.fetch_returns_at_once() && pool.thread_count() == 0;
        let direct = prefetching_reader || inline_mode;
        let direct_mode = direct;
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
            }),
            ready: Condvar::new(),
            room: Condvar::new(),
            acked: Mutex::new(acked),
            direct: Mutex::new(None),
            direct_mode,
            inline_mode,
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

struct Queue {
    items: VecDeque<Result<Event>>,
    stop: bool,
    /// The prefetcher sleeps until the queue has room for a batch.
    prefetcher_waiting: bool,
    /// Every target partition has delivered the end-of-stream markers of all its producers.
    ended: bool,
}

struct Shared {
    topic: TopicHandle,
    name: String,
    batch_size: BatchSize,
    max_num_batches: MaxNumBatches,
    fetch_size: usize,
    capacity: usize,
    pool: Arc<dyn ThreadPool>,
    selector: Option<DataSelector>,
    allocator: Option<DataAllocator>,
    targets: Vec<usize>,
    options: Value,
    queue: Mutex<Queue>,
    ready: Condvar,
    room: Condvar,
    /// Per partition of the topic: next id after the last acknowledged event.
    acked: Mutex<Vec<EventId>>,
    /// The fetcher, when pulls read from the driver themselves (no prefetch thread).
    direct: Mutex<Option<Fetcher>>,
    /// Whether `direct` is used (fixed when the consumer is built).
    direct_mode: bool,
    /// Direct mode because the pool is inline (not because the driver prefetches): an empty
    /// round sleeps a little before the next one instead of relying on the driver's wait.
    inline_mode: bool,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decodes a stored event and runs the data selector and allocator; the data is either
    /// ready or still to be read into the allocation.
    fn prepare(&self, p: usize, stored: &mut StoredEvent) -> Result<(Metadata, PendingData)> {
        let serializer = &self.topic.inner.components.serializer;
        let metadata = serializer
            .deserialize(&stored.metadata)
            .map_err(|e| Error::Decode {
                what: "event metadata",
                reason: format!(
                    "topic {:?}, partition {p}, event {}: {e}",
                    self.topic.name(),
                    stored.id
                ),
            })?;
        let data = self.select(p, &metadata, stored)?;
        Ok((metadata, data))
    }

    fn select(
        &self,
        p: usize,
        metadata: &Metadata,
        stored: &mut StoredEvent,
    ) -> Result<PendingData> {
        if self.selector.is_none() && self.allocator.is_none() {
            // The event's data moves out of the stored event (which is dropped after it).
            if let Some(d) = stored.data.take() {
                return Ok(PendingData::Ready(DataView::from_bytes(d)));
            }
        }
        // The driver's own descriptor when it has one (Mofka's carries the data's location in
        // the service), else a plain one of the data's size.
        let full = stored
            .descriptor
            .clone()
            .unwrap_or_else(|| DataDescriptor::new(Vec::new(), stored.data_size));
        let selected = match &self.selector {
            Some(sel) => guard("data selector", || sel(metadata, &full))?,
            None => full,
        };
        if selected.size() == 0 {
            return Ok(PendingData::Ready(DataView::new()));
        }
        let ranges: Vec<(u64, u64)> = selected.flatten().into_iter().filter(|r| r.1 > 0).collect();
        for &(o, s) in &ranges {
            if o.checked_add(s).is_none_or(|end| end > stored.data_size) {
                return Err(Error::DataSelection(format!(
                    "requested segment [{o}, {}) exceeds the data size {} of event {} in partition {p}",
                    o.saturating_add(s),
                    stored.data_size,
                    stored.id
                )));
            }
        }
        let needed = selected.size() as usize;
        let mut alloc = match &self.allocator {
            Some(a) => guard("data allocator", || a(metadata, &selected))?,
            None => Allocation::single(vec![0u8; needed]),
        };
        if alloc.capacity() < needed {
            return Err(Error::DataSelection(format!(
                "the data allocator returned {} bytes but the selection of event {} in partition {p} needs {needed}",
                alloc.capacity(),
                stored.id
            )));
        }
        if let Some(d) = &stored.data {
            scatter(d, &ranges, &mut alloc.slices_mut());
            return Ok(PendingData::Ready(alloc.into_view(needed)));
        }
        Ok(PendingData::Read {
            ranges,
            alloc,
            needed,
        })
    }

    /// Turns a fetched batch into events: selection and allocation per event, then the reads
    /// the driver must do, all at once (drivers that can overlap them do), then the events.
    /// Stops at the first failing event: the events before it and its error are returned.
    fn materialize_batch(
        &self,
        self_arc: &Arc<Shared>,
        p: usize,
        mut batch: Vec<StoredEvent>,
    ) -> (Vec<Event>, Option<Error>, Vec<StoredEvent>) {
        // Decoded metadata and data, by position in `batch` (the stored events stay where they
        // are: moving them, at 150 bytes each, cost more than copying 1 KiB of data).
        let mut prepared = Vec::with_capacity(batch.len());
        let mut error = None;
        for stored in &mut batch {
            match self.prepare(p, stored) {
                Ok(ready) => prepared.push(ready),
                Err(e) => {
                    error = Some(e);
                    break;
                }
            }
        }
        let mut reads: Vec<DataRead<'_>> = Vec::new();
        let mut read_index = Vec::new();
        for (i, (_, data)) in prepared.iter_mut().enumerate() {
            if let PendingData::Read { ranges, alloc, .. } = data {
                reads.push(DataRead {
                    event: &batch[i],
                    ranges,
                    dst: alloc.slices_mut(),
                });
                read_index.push(i);
            }
        }
        if !reads.is_empty() {
            let results = self.topic.backend().read_data_many(p, &mut reads);
            drop(reads);
            if let Some((k, e)) = results
                .into_iter()
                .enumerate()
                .find_map(|(k, r)| r.err().map(|e| (k, e)))
            {
                prepared.truncate(read_index[k]);
                error = Some(e);
            }
        }
        // Events not delivered because one failed (the failing one included).
        let leftover = batch.split_off(prepared.len());
        let events = prepared
            .into_iter()
            .zip(&batch)
            .map(|((metadata, data), stored)| {
                let data = match data {
                    PendingData::Ready(v) => v,
                    PendingData::Read { alloc, needed, .. } => alloc.into_view(needed),
                };
                Event::new(
                    metadata,
                    data,
                    p,
                    stored.id,
                    Some(self_arc.clone() as Arc<dyn AckSink>),
                )
            })
            .collect();
        (events, error, leftover)
    }
}

/// An event's data after selection: ready, or to be read by the driver into `alloc`.
enum PendingData {
    Ready(DataView),
    Read {
        ranges: Vec<(u64, u64)>,
        alloc: Allocation,
        needed: usize,
    },
}

fn guard<T>(what: &str, f: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|p| Error::CallbackPanicked(format!("{what}: {}", panic_message(&*p))))
}

impl Shared {
    /// Puts an event back at the front of the queue (it was taken but not handed out).
    fn unpull(&self, event: Event) {
        self.lock().items.push_front(Ok(event));
        self.ready.notify_all();
    }
}

impl GiveBack<Event> for Shared {
    fn give_back(&self, event: Event) {
        self.unpull(event);
    }
}

impl AckSink for Shared {
    fn acknowledge(&self, partition: usize, id: EventId) -> Result<()> {
        let mut acked = self.acked.lock().unwrap_or_else(|e| e.into_inner());
        let next = id.saturating_add(1);
        if partition < acked.len() && next > acked[partition] {
            self.topic
                .backend()
                .store_offset(&self.name, partition, next)?;
            acked[partition] = next;
        }
        Ok(())
    }
}

/// What one pass over the target partitions found.
#[derive(PartialEq, Eq)]
enum Round {
    /// Events were queued.
    Fetched,
    /// No partition had anything new.
    Empty,
    /// An error was queued for the application.
    Failed,
}

/// Reads batches from the driver into the consumer's queue (on the prefetch thread, or in the
/// pulling thread for drivers whose client prefetches by itself).
struct Fetcher {
    next: Vec<EventId>,
    reader: Option<Box<dyn PartitionReader>>,
    cursor: usize,
    eos: EndOfStreamTracker,
    with_data: bool,
    /// Inline mode: how long to sleep after a round that found nothing.
    idle_sleep: Duration,
}

impl Fetcher {
    fn new(shared: &Shared, next: Vec<EventId>, reader: Option<Box<dyn PartitionReader>>) -> Self {
        Fetcher {
            next,
            reader,
            cursor: 0,
            eos: EndOfStreamTracker::new(shared.targets.len()),
            with_data: shared.selector.is_none() && shared.allocator.is_none(),
            idle_sleep: Duration::from_micros(100),
        }
    }

    /// Fetches one batch from the next partition that has something, and queues it.
    fn round(&mut self, shared: &Arc<Shared>) -> Round {
        let backend = shared.topic.backend();
        for step in 0..shared.targets.len() {
            let i = (self.cursor + step) % shared.targets.len();
            if self.eos.ended[i] {
                continue;
            }
            let p = shared.targets[i];
            let result = match self.reader.as_mut() {
                Some(r) => r.fetch(p, self.next[i], shared.fetch_size, self.with_data),
                None => backend.fetch(p, self.next[i], shared.fetch_size, self.with_data),
            };
            let batch = match result {
                Ok(b) => b,
                Err(e) => {
                    shared.lock().items.push_back(Err(e));
                    shared.ready.notify_all();
                    self.cursor = i + 1;
                    return Round::Failed;
                }
            };
            if batch.is_empty() {
                continue;
            }
            let (materialized, error, leftover) = shared.materialize_batch(shared, p, batch);
            if let Some(r) = self.reader.as_mut() {
                if !leftover.is_empty() {
                    r.unread(p, leftover);
                }
            }
            let mut events = Vec::with_capacity(materialized.len() + 1);
            let mut resume_at = None;
            for ev in materialized {
                // Ids need not be dense (Kafka offsets): resume after the last one.
                resume_at = Some(ev.id() + 1);
                match parse_end_of_stream_marker(ev.metadata()) {
                    Some((producer, producers)) => self.eos.record(i, producer, producers),
                    None => events.push(Ok(ev)),
                }
            }
            if let Some(n) = resume_at {
                self.next[i] = n;
            }
            let failed = error.is_some();
            if let Some(e) = error {
                events.push(Err(e));
            }
            {
                let mut q = shared.lock();
                if q.stop {
                    // The consumer is being dropped: queued events would keep it alive.
                    return Round::Empty;
                }
                q.items.extend(events);
                if self.eos.all_ended() {
                    q.ended = true;
                }
            }
            shared.ready.notify_all();
            self.cursor = i + 1;
            return if failed {
                Round::Failed
            } else {
                Round::Fetched
            };
        }
        Round::Empty
    }
}

fn prefetch_loop(shared: Arc<Shared>, mut fetcher: Fetcher) {
    let mut idle_sleep = Duration::from_micros(100);
    loop {
        {
            let mut q = shared.lock();
            while q.items.len() + shared.fetch_size > shared.capacity && !q.stop {
                q.prefetcher_waiting = true;
                q = shared.room.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            q.prefetcher_waiting = false;
            if q.stop {
                return;
            }
        }
        let round = fetcher.round(&shared);
        if round == Round::Fetched {
            idle_sleep = Duration::from_micros(100);
            continue;
        }
        // Nothing new (or an error to let the application see): wait a little before polling
        // again, waking early if the consumer is dropped.
        let sleep = if round == Round::Failed {
            MAX_IDLE_SLEEP * 10
        } else {
            idle_sleep
        };
        let q = shared.lock();
        if q.stop {
            return;
        }
        let _ = shared.room.wait_timeout(q, sleep);
        idle_sleep = (idle_sleep * 2).min(MAX_IDLE_SLEEP);
    }
}

/// Counts end-of-stream markers per target partition.
struct EndOfStreamTracker {
    seen: Vec<(u64, std::collections::HashSet<u64>)>,
    ended: Vec<bool>,
}

impl EndOfStreamTracker {
    fn new(targets: usize) -> Self {
        EndOfStreamTracker {
            seen: vec![(0, Default::default()); targets],
            ended: vec![false; targets],
        }
    }

    fn record(&mut self, target: usize, producer: u64, producers: u64) {
        let (expected, set) = &mut self.seen[target];
        *expected = (*expected).max(producers);
        set.insert(producer);
        if set.len() as u64 >= *expected {
            self.ended[target] = true;
        }
    }

    fn all_ended(&self) -> bool {
        self.ended.iter().all(|e| *e)
    }
}

/// A pull future's source: takes the next prefetched event when waited on, so a pull that times
/// out never swallows an event.
struct PullSource {
    shared: Arc<Shared>,
    /// The claimed item, and whether a wait has returned it to the application.
    slot: Mutex<(Option<Result<Event>>, bool)>,
}

impl Drop for PullSource {
    fn drop(&mut self) {
        // An event claimed by `completed()` but never returned by a wait goes back to the queue.
        let slot = self.slot.get_mut().unwrap_or_else(|e| e.into_inner());
        if let (Some(Ok(ev)), false) = (slot.0.take(), slot.1) {
            self.shared.unpull(ev);
        }
    }
}

impl PullSource {
    /// Direct mode: runs one fetch round in this thread. False when the deadline has passed.
    fn fetch_directly(&self, deadline: Option<Instant>) -> bool {
        if self.shared.inline_mode {
            return self.fetch_inline(deadline);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        let mut direct = self.shared.direct.lock().unwrap_or_else(|e| e.into_inner());
        // Another puller may have filled the queue while we waited for the fetcher.
        if !self.shared.lock().items.is_empty() {
            return true;
        }
        if let Some(fetcher) = direct.as_mut() {
            if fetcher.round(&self.shared) == Round::Empty {
                // The reader already waited a little; do not spin.
                std::thread::yield_now();
            }
        }
        true
    }

    /// Inline mode: one fetch round in this thread (even with a deadline that has passed, so
    /// that a pull with a zero timeout still reads what is there), then, if it found nothing,
    /// a short sleep without holding the fetcher. While another puller fetches, waits for what
    /// it queues. False when the deadline has passed.
    fn fetch_inline(&self, deadline: Option<Instant>) -> bool {
        let time_left = |cap: Duration| match deadline {
            None => Some(cap),
            Some(d) => {
                let now = Instant::now();
                (now < d).then(|| cap.min(d - now))
            }
        };
        let mut direct = match self.shared.direct.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                let q = self.shared.lock();
                if !q.items.is_empty() {
                    return true;
                }
                let Some(wait) = time_left(MAX_IDLE_SLEEP) else {
                    return false;
                };
                let _ = self.shared.ready.wait_timeout(q, wait);
                return true;
            }
        };
        if !self.shared.lock().items.is_empty() {
            return true;
        }
        let Some(fetcher) = direct.as_mut() else {
            return true; // the consumer is closing: the caller sees it
        };
        if fetcher.round(&self.shared) != Round::Empty {
            fetcher.idle_sleep = Duration::from_micros(100);
            return true;
        }
        // Nothing new: poll again soon, backing off to MAX_IDLE_SLEEP.
        let sleep = fetcher.idle_sleep;
        fetcher.idle_sleep = (fetcher.idle_sleep * 2).min(MAX_IDLE_SLEEP);
        drop(direct);
        let Some(sleep) = time_left(sleep) else {
            return false;
        };
        std::thread::sleep(sleep);
        true
    }

    /// Inline mode: one fetch round without waiting, so that `completed()` can turn true; none
    /// while another puller is fetching.
    fn fetch_once(&self) {
        let Ok(mut direct) = self.shared.direct.try_lock() else {
            return;
        };
        if self.shared.lock().items.is_empty() {
            if let Some(fetcher) = direct.as_mut() {
                if fetcher.round(&self.shared) == Round::Fetched {
                    fetcher.idle_sleep = Duration::from_micros(100);
                }
            }
        }
    }
}

impl Source<Event> for PullSource {
    fn wait_until(&self, deadline: &Deadline) -> Option<Result<Event>> {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = slot.0.clone() {
            slot.1 = true;
            return Some(v);
        }
        let mut q = self.shared.lock();
        loop {
            if let Some(item) = q.items.pop_front() {
                if q.prefetcher_waiting
                    && q.items.len() + self.shared.fetch_size <= self.shared.capacity
                {
                    q.prefetcher_waiting = false;
                    self.shared.room.notify_one();
                }
                drop(q);
                *slot = (Some(item.clone()), true);
                return Some(item);
            }
            if q.ended {
                let p = self.shared.targets.first().copied().unwrap_or(0);
                let item = Ok(Event::end_of_stream(p));
                *slot = (Some(item.clone()), true);
                return Some(item);
            }
            if q.stop {
                return Some(Err(Error::Closed("consumer")));
            }
            if self.shared.direct_mode {
                drop(q);
                if !self.fetch_directly(deadline.get()) {
                    return None;
                }
                q = self.shared.lock();
                continue;
            }
            q = match deadline.get() {
                None => self.shared.ready.wait(q).unwrap_or_else(|e| e.into_inner()),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return None;
                    }
                    self.shared
                        .ready
                        .wait_timeout(q, d - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
    }

    fn is_ready(&self) -> bool {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if slot.0.is_some() {
            return true;
        }
        if self.shared.inline_mode {
            self.fetch_once();
        }
        // Claim the next event now, so that a `true` here is always followed by a delivery.
        let (item, ended) = {
            let mut q = self.shared.lock();
            (q.items.pop_front(), q.ended)
        };
        if item.is_none() && ended {
            return true;
        }
        match item {
            Some(item) => {
                slot.0 = Some(item);
                true
            }
            None => false,
        }
    }
}

/// What a [`Consumer::process`] callback asks for next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    /// Keep processing.
    Continue,
    /// Stop after this event.
    Stop,
}

/// Options of [`Consumer::process`].
#[derive(Clone)]
pub struct ProcessOptions {
    /// How long to wait for the next event before returning (`None`: wait forever).
    pub timeout: Option<Duration>,
    /// Stop after this many events.
    pub max_events: NumEvents,
    /// Pool running the callback (`None`: the consumer's pool).
    pub thread_pool: Option<Arc<dyn ThreadPool>>,
}

impl Default for ProcessOptions {
    fn default() -> Self {
        ProcessOptions {
            timeout: Some(Duration::from_secs(5)),
            max_events: NumEvents::INFINITY,
            thread_pool: None,
        }
    }
}

/// Reads events from a topic. Dropping it stops prefetching; unacknowledged events will be
/// delivered again to the next consumer with the same name.
pub struct Consumer {
    shared: Arc<Shared>,
    prefetcher: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Consumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consumer")
            .field("name", &self.shared.name)
            .field("topic", &self.shared.topic.name())
            .field("targets", &self.shared.targets)
            .finish()
    }
}

impl Consumer {
    /// Consumer name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The topic it reads.
    pub fn topic(&self) -> &TopicHandle {
        &self.shared.topic
    }

    /// Partitions it reads.
    pub fn targets(&self) -> &[usize] {
        &self.shared.targets
    }

    /// Configured batch size.
    pub fn batch_size(&self) -> BatchSize {
        self.shared.batch_size
    }

    /// Configured prefetch depth in batches.
    pub fn max_num_batches(&self) -> MaxNumBatches {
        self.shared.max_num_batches
    }

    /// The consumer's pool.
    pub fn thread_pool(&self) -> &Arc<dyn ThreadPool> {
        &self.shared.pool
    }

    /// The data selector, if any.
    pub fn data_selector(&self) -> Option<&DataSelector> {
        self.shared.selector.as_ref()
    }

    /// The data allocator, if any.
    pub fn data_allocator(&self) -> Option<&DataAllocator> {
        self.shared.allocator.as_ref()
    }

    /// Driver-specific options given at creation.
    pub fn options(&self) -> &Value {
        &self.shared.options
    }

    /// The next event. `wait_timeout` returns `Ok(None)` while none is available; the event is
    /// taken from the consumer only when a wait returns it, so abandoning a timed-out pull loses
    /// nothing. Drivers that know a stream has ended return an event with id
    /// [`crate::NO_MORE_EVENTS`].
    pub fn pull(&self) -> Future<Event> {
        // An event already queued is claimed at once (no source to allocate, no second lock);
        // errors, the end of the stream and waits go through a pull source.
        {
            let mut q = self.shared.lock();
            if matches!(q.items.front(), Some(Ok(_))) {
                if let Some(Ok(event)) = q.items.pop_front() {
                    if q.prefetcher_waiting
                        && q.items.len() + self.shared.fetch_size <= self.shared.capacity
                    {
                        q.prefetcher_waiting = false;
                        self.shared.room.notify_one();
                    }
                    drop(q);
                    return Future::claimed(event, self.shared.clone() as Arc<dyn GiveBack<Event>>);
                }
            }
        }
        Future::from_source(Arc::new(PullSource {
            shared: self.shared.clone(),
            slot: Mutex::new((None, false)),
        }))
    }

    /// Iterates over events, waiting at most `timeout` for each; ends when none arrives in time or
    /// at an end-of-stream marker. Errors are yielded as items.
    pub fn iter(&self, timeout: Duration) -> Events<'_> {
        Events {
            consumer: self,
            timeout,
            done: false,
        }
    }

    /// Calls `processor` on each event until it returns [`Flow::Stop`], `max_events` events were
    /// processed, no event arrives within the timeout, or an end-of-stream marker arrives. With a
    /// pool of worker threads the callback runs there, and this call waits for every started
    /// callback before returning. Returns the number of events handed to the processor.
    pub fn process<F>(&self, processor: F, options: ProcessOptions) -> Result<usize>
    where
        F: Fn(Event) -> Flow + Send + Sync + 'static,
    {
        let pool = options
            .thread_pool
            .unwrap_or_else(|| self.shared.pool.clone());
        let processor = Arc::new(processor);
        let stop = Arc::new(AtomicBool::new(false));
        let pending = Arc::new((Mutex::new(0usize), Condvar::new()));
        let count = Arc::new(AtomicUsize::new(0));
        let mut delivered = 0usize;
        let mut result = Ok(());
        let stopped = || stop.load(std::sync::atomic::Ordering::SeqCst);
        'events: while delivered < options.max_events.0 && !stopped() {
            // Wait in short slices so that a Stop returned on a worker thread ends the wait.
            let f = self.pull();
            let deadline = options.timeout.and_then(|t| Instant::now().checked_add(t));
            let ev = loop {
                if stopped() {
                    break 'events;
                }
                let mut slice = Duration::from_millis(50);
                if let Some(d) = deadline {
                    let now = Instant::now();
                    if now >= d {
                        break 'events;
                    }
                    slice = slice.min(d - now);
                }
                match f.wait_timeout(slice) {
                    Ok(Some(ev)) => break ev,
                    Ok(None) => continue,
                    Err(e) => {
                        result = Err(e);
                        break 'events;
                    }
                }
            };
            if stopped() {
                // Pulled while a callback was returning Stop: give it back, in order.
                self.shared.unpull(ev);
                break;
            }
            if ev.is_end_of_stream() {
                break;
            }
            delivered += 1;
            if pool.thread_count() == 0 {
                let r = guard("event processor", || processor(ev));
                count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                match r {
                    Ok(Flow::Continue) => {}
                    Ok(Flow::Stop) => break,
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
                continue;
            }
            *pending.0.lock().unwrap_or_else(|e| e.into_inner()) += 1;
            let (processor, stop, pending, count) = (
                processor.clone(),
                stop.clone(),
                pending.clone(),
                count.clone(),
            );
            pool.push_work(
                Box::new(move || {
                    let r = guard("event processor", || processor(ev));
                    count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if !matches!(r, Ok(Flow::Continue)) {
                        stop.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                    let mut n = pending.0.lock().unwrap_or_else(|e| e.into_inner());
                    *n -= 1;
                    pending.1.notify_all();
                }),
                DEFAULT_PRIORITY,
            );
        }
        let mut n = pending.0.lock().unwrap_or_else(|e| e.into_inner());
        while *n > 0 {
            n = pending.1.wait(n).unwrap_or_else(|e| e.into_inner());
        }
        result.map(|_| count.load(std::sync::atomic::Ordering::SeqCst))
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        {
            let mut q = self.shared.lock();
            q.stop = true;
            // Prefetched events hold the consumer's state alive; they were never delivered.
            q.items.clear();
        }
        // Close the driver-side reader now (events still held by the application do not need it).
        *self.shared.direct.lock().unwrap_or_else(|e| e.into_inner()) = None;
        self.shared.room.notify_all();
        self.shared.ready.notify_all();
        if let Some(h) = self.prefetcher.take() {
            let _ = h.join();
        }
    }
}

/// Iterator returned by [`Consumer::iter`].
pub struct Events<'a> {
    consumer: &'a Consumer,
    timeout: Duration,
    done: bool,
}

impl Iterator for Events<'_> {
    type Item = Result<Event>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.consumer.pull().wait_timeout(self.timeout) {
            Ok(Some(ev)) if ev.is_end_of_stream() => {
                self.done = true;
                None
            }
            Ok(Some(ev)) => Some(Ok(ev)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => Some(Err(e)),
        }
    }
}
