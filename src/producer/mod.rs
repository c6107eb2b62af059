//! The producer engine, shared by every driver.
//!
//! `push` validates the event, picks its partition and serializes its metadata (on the producer's
//! thread pool, inline by default), then appends it to that partition's open batch. Full batches go
//! to a queue that one sender thread per producer drains by calling the driver's `append_batch`,
//! so building the next batch overlaps with storing the previous one. `MaxNumBatches` bounds that
//! queue: `push` blocks while that many batches are waiting, and on drivers whose appends return
//! at once (files) it stores one of them itself meanwhile, on a partition the sender is not
//! storing (each partition's batches still reach the driver in order); on such drivers a pool
//! thread also stores the batches its events filled. With an adaptive batch
//! size a batch is handed over as soon as the sender is idle, so batches stay small (low
//! latency) when the producer is slow and grow (high throughput) when it is fast.
//!
//! Push futures resolve when the batch holding the event is stored, to the id the driver
//! assigned; they are never predicted. Data parts are kept as the application's `Bytes` and written
//! from there: the engine never copies them.

use crate::backend::{BatchIds, EventBatch};
use crate::components::PartitionSelector;
use crate::data_view::DataView;
use crate::error::{panic_message, Error, Result};
use crate::future::{promise, Future, IndexedSource, Promise};
use crate::metadata::Metadata;
use crate::signal::Signal;
use crate::thread_pool::{ThreadPool, DEFAULT_PRIORITY};
use crate::topic::TopicHandle;
use crate::types::{BatchSize, EventId, MaxNumBatches, Ordering};
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod builder;
mod markers;
mod sender;

use sender::sender_loop;

pub use builder::{OnFull, ProducerBuilder, DEFAULT_MAX_BUFFERED_BYTES};

/// Upper bound on an adaptive batch, in events.
const ADAPTIVE_MAX_EVENTS: usize = 16 * 1024;
/// Upper bound on an adaptive batch, in bytes.
const ADAPTIVE_MAX_BYTES: usize = 64 << 20;

struct OpenBatch {
    batch: EventBatch,
    promise: Arc<Promise<BatchIds>>,
    /// Per-event promises of events pushed through a thread pool: (index in batch, promise).
    individual: Vec<(u64, Arc<Promise<EventId>>)>,
}

enum Work {
    Batch(usize, OpenBatch),
    Flush(Arc<Promise<()>>),
}

/// An event pushed through the thread pool, before validation and serialization.
struct PendingEvent {
    seq: u64,
    metadata: Metadata,
    data: DataView,
    requested: Option<usize>,
    promise: Arc<Promise<EventId>>,
    /// Bytes counted for its metadata until it is serialized (see `State::metadata_reserve`).
    reserved: usize,
}

/// The error for metadata whose top-level object holds [`crate::event::CONTROL_KEY`]. Metadata
/// given as text is only parsed here if it may hold the key (the engine parses it later anyway,
/// off the caller's thread when a pool runs the batches).
fn reserved_key_error(metadata: &Metadata) -> Option<Error> {
    let may_hold_key = metadata
        .unparsed_text()
        .is_none_or(crate::event::text_may_hold_control_key);
    let obj = may_hold_key
        .then(|| metadata.json().as_object())
        .flatten()?;
    obj.contains_key(crate::event::CONTROL_KEY).then(|| {
        Error::InvalidMetadata(format!(
            "the key {:?} is reserved for the library's control events (end of stream); \
             rename it",
            crate::event::CONTROL_KEY
        ))
    })
}

/// The least that an event's metadata counts for against `max_buffered_bytes` before it is
/// serialized.
const MIN_METADATA_RESERVE: usize = 256;

/// Events a pool job takes from the pending queue at once: the hand-over between the pushing
/// thread and the pool costs a lock and a wake-up per chunk instead of per event.
const DRAIN_CHUNK: usize = 256;
/// Chunks a pool job processes before it yields its thread to the pool's other jobs.
const DRAIN_CHUNKS_PER_JOB: usize = 8;

enum Processed {
    Event {
        partition: usize,
        metadata: Vec<u8>,
        data: DataView,
        promise: Arc<Promise<EventId>>,
        /// What its metadata was counted for before serialization.
        reserved: usize,
    },
    Failed,
}

struct State {
    /// Bytes of events pushed and not yet stored: their data, and their serialized metadata
    /// (or, until it is serialized, `metadata_reserve` for it).
    buffered: usize,
    /// What an event's metadata counts for until it is serialized: the largest serialized
    /// metadata this producer has seen, at least [`MIN_METADATA_RESERVE`]. Counting it at
    /// admission keeps `buffered` under `max_buffered_bytes` once the real size replaces it,
    /// unless an event's metadata is larger than every earlier one's.
    metadata_reserve: usize,
    open: Vec<Option<OpenBatch>>,
    last_batch_len: Vec<usize>,
    queue: VecDeque<Work>,
    queued_batches: usize,
    /// Batches handed to the driver and not yet stored.
    in_flight: usize,
    /// Threads handing a batch to the driver now (the sender, and a pusher waiting for room).
    writers: usize,
    /// Per partition: a thread is handing one of its batches to the driver. The next one waits,
    /// so that each partition's batches reach the driver in order.
    submitting: Vec<bool>,
    closing: bool,
    /// Events pushed through the pool and not yet in a batch.
    jobs_in_flight: usize,
    next_seq: u64,
    commit_seq: u64,
    /// Processed chunks waiting for earlier ones (strict ordering), by their first sequence number.
    reorder: BTreeMap<u64, Vec<Processed>>,
    /// Events waiting for a pool job, in sequence order.
    pending: VecDeque<PendingEvent>,
    /// Pool jobs draining `pending`.
    active_drains: usize,
    touched: Vec<bool>,
    failure_since_flush: Option<Error>,
}

impl State {
    /// Queues an admitted event for a pool job (counting its bytes and giving it the next
    /// sequence number); the future resolves to its id once stored.
    fn queue_pending(
        &mut self,
        metadata: Metadata,
        data: DataView,
        requested: Option<usize>,
    ) -> Future<EventId> {
        let (promise, future) = promise::<EventId>();
        let reserved = self.metadata_reserve;
        self.buffered += data.size() + reserved;
        let seq = self.next_seq;
        self.next_seq += 1;
        self.jobs_in_flight += 1;
        self.pending.push_back(PendingEvent {
            seq,
            metadata,
            data,
            requested,
            promise,
            reserved,
        });
        future
    }
}

struct Shared {
    topic: TopicHandle,
    /// Where batches go: the topic's backend, or its view for this producer's options.
    backend: Arc<dyn crate::backend::TopicBackend>,
    /// A push that finds the queue full stores a queued batch itself instead of waiting (on
    /// backends whose appends return at once).
    pusher_writes: bool,
    selector: Arc<dyn PartitionSelector>,
    name: String,
    batch_size: BatchSize,
    max_num_batches: MaxNumBatches,
    ordering: Ordering,
    options: Value,
    pool: Arc<dyn ThreadPool>,
    max_buffered_bytes: usize,
    on_full: OnFull,
    push_timeout: Option<Duration>,
    /// The liveness announcement of this producer, on drivers that keep one.
    lease: Option<Arc<dyn crate::backend::ProducerLease>>,
    state: Mutex<State>,
    /// Wakes the sender thread.
    work_ready: Signal,
    /// Wakes pushers waiting for queue space and flushes waiting for pool jobs.
    progress: Signal,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits (or fails, as `on_full` says) until `bytes` more fit under `max_buffered_bytes`.
    /// While it waits, partial batches are sent, so that stored batches make room.
    fn admit<'a>(
        &self,
        mut st: MutexGuard<'a, State>,
        bytes: usize,
    ) -> Result<MutexGuard<'a, State>> {
        let fits = |st: &State| self.fits(st, bytes);
        if fits(&st) {
            return Ok(st);
        }
        let full = |st: &State, waited| Error::ProducerFull {
            producer: self.name.clone(),
            buffered: st.buffered,
            pushed: bytes,
            limit: self.max_buffered_bytes,
            waited,
        };
        if self.on_full == OnFull::Error {
            return Err(full(&st, false));
        }
        let deadline = self.push_timeout.map(|t| Instant::now() + t);
        while !fits(&st) && !st.closing {
            for p in 0..st.open.len() {
                self.dispatch(&mut st, p);
            }
            let mut wait = Duration::from_millis(10);
            if let Some(d) = deadline {
                let now = Instant::now();
                if now >= d {
                    return Err(full(&st, true));
                }
                wait = wait.min(d - now);
            }
            st = self.progress.wait_timeout(st, wait);
        }
        Ok(st)
    }

    /// Whether `bytes` more fit under `max_buffered_bytes` (an event alone always does).
    fn fits(&self, st: &State, bytes: usize) -> bool {
        st.buffered == 0 || st.buffered + bytes <= self.max_buffered_bytes
    }

    /// Whether an event of `data` may be queued at once, within the producer's limits
    /// (`max_buffered_bytes`, `max_num_batches`), the producer being open.
    fn has_room(&self, st: &State, data: &DataView) -> bool {
        self.fits(st, data.size() + st.metadata_reserve)
            && st.queued_batches < self.max_num_batches.0
            && !st.closing
    }

    /// Queues an event if it has room now ([`Shared::has_room`]) and returns its future (failed
    /// at once for a forged control key), or gives the event back.
    // The event comes back by value, as it went in: boxing it would allocate at each refusal.
    #[allow(clippy::result_large_err)]
    fn queue_if_room(
        &self,
        st: &mut State,
        metadata: Metadata,
        data: DataView,
        partition: Option<usize>,
    ) -> std::result::Result<Future<EventId>, (Metadata, DataView)> {
        if !self.has_room(st, &data) {
            return Err((metadata, data));
        }
        Ok(match reserved_key_error(&metadata) {
            Some(e) => Future::failed(e),
            None => st.queue_pending(metadata, data, partition),
        })
    }

    /// Starts a job on the pool that drains the queue of pending events.
    fn start_drain(self: &Arc<Self>) {
        let s = self.clone();
        self.pool
            .push_work(Box::new(move || s.drain()), DEFAULT_PRIORITY);
    }

    /// Whether a new drain job should start for the queued events (counted as started if so):
    /// one job drains the queue; more join it (up to the pool's size) when it falls behind by
    /// more than a chunk each.
    fn should_start_drain(&self, st: &mut State) -> bool {
        let start = st.active_drains == 0
            || (st.active_drains < self.pool.thread_count()
                && st.pending.len() > DRAIN_CHUNK * st.active_drains);
        if start {
            st.active_drains += 1;
        }
        start
    }

    /// Waits while `max_num_batches` batches are queued. Where `pusher_writes` allows, the
    /// caller stores a queued batch itself meanwhile, next to the sender thread (on another
    /// partition), instead of sleeping until the sender has stored one: it would only wait,
    /// and waking it costs the sender a system call and the caller a trip through the
    /// scheduler per batch.
    fn wait_for_room<'a>(
        self: &'a Arc<Self>,
        mut st: MutexGuard<'a, State>,
    ) -> MutexGuard<'a, State> {
        while st.queued_batches >= self.max_num_batches.0 && !st.closing {
            if self.pusher_writes {
                if let Some((p, ob)) = st.take_batch() {
                    st = self.submit(st, p, ob);
                    continue;
                }
            }
            st = self.progress.wait(st);
        }
        st
    }

    fn check_partition(&self, p: usize) -> Result<usize> {
        let n = self.topic.num_partitions();
        if p < n {
            Ok(p)
        } else {
            Err(Error::PartitionOutOfRange {
                topic: self.topic.name().to_string(),
                partition: p,
                num_partitions: n,
            })
        }
    }

    /// Validation and partition selection, shielded from panics in user components.
    fn prepare(
        &self,
        metadata: &Metadata,
        data: &DataView,
        requested: Option<usize>,
    ) -> Result<usize> {
        let c = &self.topic.inner.components;
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            c.validator.validate(metadata, data)?;
            self.selector.select_partition(metadata, requested)
        }));
        match r {
            Ok(p) => self.check_partition(p?),
            Err(payload) => Err(Error::CallbackPanicked(panic_message(&*payload))),
        }
    }

    fn open_batch<'a>(&self, st: &'a mut State, p: usize) -> &'a mut OpenBatch {
        let hint = st.last_batch_len[p].max(16);
        st.open[p].get_or_insert_with(|| OpenBatch {
            batch: EventBatch::with_capacity(hint, hint * 64),
            promise: Arc::new(Promise::new()),
            individual: Vec::new(),
        })
    }

    /// Hands partition `p`'s open batch to the sender when the batching policy says so.
    fn maybe_dispatch(&self, st: &mut State, p: usize) {
        let Some(ob) = st.open[p].as_ref() else {
            return;
        };
        let len = ob.batch.len();
        let ready = match self.batch_size {
            BatchSize::Fixed(n) => len >= n,
            BatchSize::Adaptive => {
                (st.writers == 0 && st.queue.is_empty())
                    || len >= ADAPTIVE_MAX_EVENTS
                    || ob.batch.size_bytes() >= ADAPTIVE_MAX_BYTES
            }
        };
        if ready {
            self.dispatch(st, p);
        }
    }

    fn dispatch(&self, st: &mut State, p: usize) {
        if let Some(ob) = st.open[p].take() {
            if ob.batch.is_empty() {
                return;
            }
            st.last_batch_len[p] = ob.batch.len();
            st.queue.push_back(Work::Batch(p, ob));
            st.queued_batches += 1;
            self.work_ready.notify_one();
        }
    }

    /// Adds a chunk of events processed by a pool job (sequence numbers `first..`), in sequence
    /// order when ordering is strict.
    fn commit_chunk(&self, st: &mut State, first: u64, items: Vec<Processed>) {
        match self.ordering {
            Ordering::Loose => items.into_iter().for_each(|i| self.commit_one(st, i)),
            Ordering::Strict => {
                st.reorder.insert(first, items);
                while let Some(items) = {
                    let next = st.commit_seq;
                    st.reorder.remove(&next)
                } {
                    st.commit_seq += items.len() as u64;
                    items.into_iter().for_each(|i| self.commit_one(st, i));
                }
            }
        }
    }

    /// Validates, places and serializes one event on a pool thread.
    fn process(&self, ev: PendingEvent) -> Processed {
        let processed = (|| {
            let p = self.prepare(&ev.metadata, &ev.data, ev.requested)?;
            let mut bytes = Vec::with_capacity(128);
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.topic
                    .inner
                    .components
                    .serializer
                    .serialize(&ev.metadata, &mut bytes)
            }))
            .unwrap_or_else(|payload| Err(Error::CallbackPanicked(panic_message(&*payload))))?;
            Ok::<_, Error>((p, bytes))
        })();
        match processed {
            Ok((partition, metadata)) => Processed::Event {
                partition,
                metadata,
                data: ev.data,
                promise: ev.promise,
                reserved: ev.reserved,
            },
            Err(e) => {
                ev.promise.set(Err(e));
                Processed::Failed
            }
        }
    }

    /// A pool job: processes pending events a chunk at a time. After a few chunks it goes back
    /// through the pool's queue if events remain, so that other jobs of a shared pool are not
    /// starved by a fast pusher.
    fn drain(self: &Arc<Self>) {
        for _ in 0..DRAIN_CHUNKS_PER_JOB {
            let chunk: Vec<PendingEvent> = {
                let mut st = self.lock();
                let n = st.pending.len().min(DRAIN_CHUNK);
                if n == 0 {
                    st.active_drains -= 1;
                    return;
                }
                st.pending.drain(..n).collect()
            };
            let first = chunk[0].seq;
            let count = chunk.len();
            let items: Vec<(Processed, usize)> = chunk
                .into_iter()
                .map(|ev| {
                    // A panic outside the guarded callbacks (say, dropping the application's
                    // data) fails this event alone and keeps the counters right.
                    let promise = ev.promise.clone();
                    let size = ev.data.size() + ev.reserved;
                    let processed =
                        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.process(ev)))
                            .unwrap_or_else(|payload| {
                                promise.set(Err(Error::CallbackPanicked(panic_message(&*payload))));
                                Processed::Failed
                            });
                    (processed, size)
                })
                .collect();
            let mut st = self.lock();
            let failed: usize = items
                .iter()
                .filter(|(p, _)| matches!(p, Processed::Failed))
                .map(|(_, size)| size)
                .sum();
            st.buffered -= failed;
            let items: Vec<Processed> = items.into_iter().map(|(p, _)| p).collect();
            self.commit_chunk(&mut st, first, items);
            st.jobs_in_flight -= count;
            if st.jobs_in_flight == 0 {
                self.progress.notify_all();
            }
            // The batches this chunk filled are stored from here, where the driver's appends
            // return at once, rather than handed to the sender thread: one thread less to wake
            // per batch.
            if self.pusher_writes {
                while let Some((p, ob)) = st.take_batch() {
                    st = self.submit(st, p, ob);
                }
                self.progress.notify_all();
            }
        }
        // Still counted in `active_drains`: carry on as a new job.
        self.start_drain();
    }

    fn commit_one(&self, st: &mut State, item: Processed) {
        if let Processed::Event {
            partition,
            metadata,
            data,
            promise,
            reserved,
        } = item
        {
            // The serialized size replaces what was counted for it at admission.
            st.buffered = st.buffered + metadata.len() - reserved;
            st.metadata_reserve = st.metadata_reserve.max(metadata.len());
            let ob = self.open_batch(st, partition);
            ob.batch.push_serialized(&metadata, data);
            let idx = (ob.batch.len() - 1) as u64;
            ob.individual.push((idx, promise));
            self.maybe_dispatch(st, partition);
        }
    }
}

/// Sends events to a topic. Cheap to share between threads (`&self` methods); dropping it
/// flushes every pending event and waits for them to be stored.
pub struct Producer {
    shared: Arc<Shared>,
    sender: Option<JoinHandle<()>>,
    /// (index, count) in the group of producers that close steps together.
    group: (usize, usize),
    /// The last step this producer closed.
    last_step: std::sync::Mutex<Option<u64>>,
}

impl std::fmt::Debug for Producer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Producer")
            .field("name", &self.shared.name)
            .field("topic", &self.shared.topic.name())
            .finish()
    }
}

impl Producer {
    /// Producer name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// The topic it writes to.
    pub fn topic(&self) -> &TopicHandle {
        &self.shared.topic
    }

    /// Configured batch size.
    pub fn batch_size(&self) -> BatchSize {
        self.shared.batch_size
    }

    /// Configured bound on pending batches.
    pub fn max_num_batches(&self) -> MaxNumBatches {
        self.shared.max_num_batches
    }

    /// Configured ordering.
    pub fn ordering(&self) -> Ordering {
        self.shared.ordering
    }

    /// The pool running per-event work.
    pub fn thread_pool(&self) -> &Arc<dyn ThreadPool> {
        &self.shared.pool
    }

    /// Driver-specific options given at creation.
    pub fn options(&self) -> &Value {
        &self.shared.options
    }

    /// Sends an event to the partition chosen by the topic's partition selector. The future
    /// resolves to the event's id once it is stored, or to the error that prevented it.
    ///
    /// Metadata whose top-level object holds the key [`crate::event::CONTROL_KEY`]
    /// (`"$diaspora"`) is refused with [`Error::InvalidMetadata`]: that key marks the library's
    /// own control events (end of stream, steps), which only [`Producer::end_of_stream`] and
    /// [`Producer::end_step`] write.
    pub fn push(
        &self,
        metadata: impl Into<Metadata>,
        data: impl Into<DataView>,
    ) -> Future<EventId> {
        self.push_inner(metadata.into(), data.into(), None)
    }

    /// Like [`Producer::push`], asking for partition `partition` (the default selector takes it
    /// modulo the partition count).
    pub fn push_to(
        &self,
        metadata: impl Into<Metadata>,
        data: impl Into<DataView>,
        partition: usize,
    ) -> Future<EventId> {
        self.push_inner(metadata.into(), data.into(), Some(partition))
    }

    fn push_inner(
        &self,
        metadata: Metadata,
        data: DataView,
        requested: Option<usize>,
    ) -> Future<EventId> {
        let shared = &self.shared;
        if let Some(e) = reserved_key_error(&metadata) {
            return Future::failed(e);
        }
        if shared.pool.thread_count() == 0 {
            let p = match shared.prepare(&metadata, &data, requested) {
                Ok(p) => p,
                Err(e) => return Future::failed(e),
            };
            let st = shared.lock();
            let reserve = st.metadata_reserve;
            return match shared.admit(st, data.size() + reserve) {
                Ok(st) => self.append_locked(st, &metadata, data, p),
                Err(e) => Future::failed(e),
            };
        }

        let (fut, start_drain) = {
            let st = shared.lock();
            let reserve = st.metadata_reserve;
            let st = match shared.admit(st, data.size() + reserve) {
                Ok(st) => st,
                Err(e) => return Future::failed(e),
            };
            let mut st = shared.wait_for_room(st);
            if st.closing {
                return Future::failed(Error::Closed("producer"));
            }
            let fut = st.queue_pending(metadata, data, requested);
            (fut, shared.should_start_drain(&mut st))
        };
        if start_drain {
            shared.start_drain();
        }
        fut
    }

    /// Sends several events, as [`Producer::push`] (or [`Producer::push_to`] with `partition`)
    /// would one after the other, and returns their futures in the same order. With a thread
    /// pool, the events are queued under one lock for as long as they fit the producer's
    /// limits (`max_buffered_bytes`, `max_num_batches`), where `push` takes it once per event;
    /// past a limit the rest go one by one, waiting or failing as `push` does.
    pub fn push_many(
        &self,
        events: impl IntoIterator<Item = (Metadata, DataView)>,
        partition: Option<usize>,
    ) -> Vec<Future<EventId>> {
        let mut events = events.into_iter();
        let mut futures = Vec::with_capacity(events.size_hint().0);
        let shared = &self.shared;
        // The first event that found no room, which goes on with the rest one by one.
        let mut refused = None;
        if shared.pool.thread_count() > 0 {
            let start_drain = {
                let mut st = shared.lock();
                for (metadata, data) in events.by_ref() {
                    match shared.queue_if_room(&mut st, metadata, data, partition) {
                        Ok(future) => futures.push(future),
                        Err(event) => {
                            refused = Some(event);
                            break;
                        }
                    }
                }
                !futures.is_empty() && shared.should_start_drain(&mut st)
            };
            if start_drain {
                shared.start_drain();
            }
        }
        futures.extend(
            refused
                .into_iter()
                .chain(events)
                .map(|(metadata, data)| self.push_inner(metadata, data, partition)),
        );
        futures
    }

    /// Pushes without waiting and without working inline: with a thread pool and room within
    /// the producer's limits (`max_buffered_bytes`, `max_num_batches`), queues the event as
    /// [`Producer::push`] (or [`Producer::push_to`] with `partition`) would and returns its
    /// future; otherwise (no pool thread, a limit reached, the producer closing) gives the event
    /// back untouched, for a later attempt or for `push`, which waits or works. Language
    /// bindings use it to push without giving up their interpreter lock when nothing can block.
    #[allow(clippy::result_large_err)] // as Shared::queue_if_room
    pub fn try_push(
        &self,
        metadata: Metadata,
        data: DataView,
        partition: Option<usize>,
    ) -> std::result::Result<Future<EventId>, (Metadata, DataView)> {
        let shared = &self.shared;
        if shared.pool.thread_count() == 0 {
            return Err((metadata, data));
        }
        let (future, start_drain) = {
            let mut st = shared.lock();
            let future = shared.queue_if_room(&mut st, metadata, data, partition)?;
            (future, shared.should_start_drain(&mut st))
        };
        if start_drain {
            shared.start_drain();
        }
        Ok(future)
    }

    /// Appends an already validated event to partition `p`'s open batch (inline path).
    pub(super) fn append_prepared(
        &self,
        metadata: &Metadata,
        data: DataView,
        p: usize,
    ) -> Future<EventId> {
        self.append_locked(self.shared.lock(), metadata, data, p)
    }

    /// [`Producer::append_prepared`] with the state already locked.
    fn append_locked(
        &self,
        st: MutexGuard<'_, State>,
        metadata: &Metadata,
        data: DataView,
        p: usize,
    ) -> Future<EventId> {
        let shared = &self.shared;
        let mut st = shared.wait_for_room(st);
        if st.closing {
            return Future::failed(Error::Closed("producer"));
        }
        let serializer = &shared.topic.inner.components.serializer;
        let ob = shared.open_batch(&mut st, p);
        // O(1) accounting: metadata bytes before and after, plus the data's size.
        let before = ob.batch.metadata_bytes().len();
        let data_size = data.size();
        let pushed = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            ob.batch
                .push_with(|out| serializer.serialize(metadata, out), data)
        }))
        .unwrap_or_else(|payload| Err(Error::CallbackPanicked(panic_message(&*payload))));
        if let Err(e) = pushed {
            return Future::failed(e);
        }
        let metadata_size = ob.batch.metadata_bytes().len() - before;
        let ob_len = ob.batch.len();
        let ob_promise = ob.promise.clone();
        st.buffered += metadata_size + data_size;
        st.metadata_reserve = st.metadata_reserve.max(metadata_size);
        let future = Future::indexed(ob_promise as Arc<dyn IndexedSource<EventId>>, ob_len - 1);
        shared.maybe_dispatch(&mut st, p);
        future
    }

    /// Bytes of events pushed and not yet stored (their data and serialized metadata): what
    /// [`ProducerBuilder::max_buffered_bytes`] bounds.
    pub fn buffered_bytes(&self) -> usize {
        self.shared.lock().buffered
    }

    /// Stops renewing this producer's liveness announcement and leaves it behind, as a process
    /// killed with SIGKILL would (for liveness tests that cannot kill a process). Returns
    /// false when the driver keeps no producer liveness.
    #[doc(hidden)]
    pub fn stop_liveness_renewal(&self) -> bool {
        match &self.shared.lease {
            Some(lease) => {
                lease.stop_renewing();
                true
            }
            None => false,
        }
    }

    /// Sends every pending batch and makes it durable according to the driver's policy. The
    /// future completes when all events pushed before this call are stored; it carries the first
    /// storage error seen since the previous flush, if any.
    pub fn flush(&self) -> Future<()> {
        let shared = &self.shared;
        let mut st = shared.lock();
        while st.jobs_in_flight > 0 {
            st = shared.progress.wait(st);
        }
        for p in 0..st.open.len() {
            shared.dispatch(&mut st, p);
        }
        let (pr, fut) = promise::<()>();
        st.queue.push_back(Work::Flush(pr));
        shared.work_ready.notify_one();
        fut
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        if let Err(e) = self.flush().wait() {
            eprintln!(
                "diaspora-stream: producer {:?} on topic {:?}: final flush failed: {e}",
                self.shared.name,
                self.shared.topic.name()
            );
        }
        self.shared.lock().closing = true;
        self.shared.work_ready.notify_all();
        self.shared.progress.notify_all();
        if let Some(h) = self.sender.take() {
            let _ = h.join();
        }
        // Withdrawn here, on the application's thread: the last reference to the lease may
        // go with a batch's completion, on a transport's progress thread, which must not make
        // the calls a withdrawal needs (on mofka a Yokan call that only it could progress).
        if let Some(lease) = &self.shared.lease {
            lease.withdraw();
        }
    }
}
