//! The state a consumer shares with its prefetcher and its pulls: the queue of events, how
//! stored events become events (metadata decoding, data selection, allocation, reads), and the
//! fetch rounds that fill the queue (on the prefetch thread, or in the pulling thread).

use super::steps::{Marker, Steps, Stored, PRODUCERS_KEY, SCAN_KEY, STEPS_KEY};
use super::{DataAllocator, DataSelector, MAX_IDLE_SLEEP};
use crate::backend::{DataRead, PartitionReader, StoredEvent};
use crate::components::decode_length_prefixed_into;
use crate::data_view::{scatter, Allocation, DataView};
use crate::descriptor::DataDescriptor;
use crate::error::{panic_message, Error, Result};
use crate::event::{parse_control, AckSink, Control, Event, EventParts};
use crate::metadata::Metadata;
use crate::signal::Signal;
use crate::thread_pool::ThreadPool;
use crate::topic::TopicHandle;
use crate::types::{BatchSize, EventId, MaxNumBatches};
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A queued event or error; the error is boxed to keep queue entries small (an event is two
/// words, an error eleven), as every event is moved into the queue and out again.
pub(super) type Item = std::result::Result<Event, Box<Error>>;

pub(super) struct Queue {
    pub(super) items: VecDeque<Item>,
    pub(super) stop: bool,
    /// The prefetcher sleeps until the queue has room for a batch.
    pub(super) prefetcher_waiting: bool,
    /// Every target partition has delivered the end-of-stream markers of all its producers.
    pub(super) ended: bool,
    /// Callers of `wait_step` waiting: the prefetcher reads past the queue's capacity.
    pub(super) read_ahead: usize,
}

pub(super) struct Shared {
    pub(super) topic: TopicHandle,
    pub(super) name: String,
    pub(super) batch_size: BatchSize,
    pub(super) max_num_batches: MaxNumBatches,
    pub(super) fetch_size: usize,
    pub(super) capacity: usize,
    pub(super) pool: Arc<dyn ThreadPool>,
    pub(super) selector: Option<DataSelector>,
    pub(super) allocator: Option<DataAllocator>,
    pub(super) targets: Vec<usize>,
    pub(super) options: Value,
    pub(super) queue: Mutex<Queue>,
    pub(super) ready: Signal,
    pub(super) room: Signal,
    /// Per partition of the topic: next id after the last acknowledged event.
    pub(super) acked: Mutex<Vec<EventId>>,
    /// The fetcher, when pulls read from the driver themselves (no prefetch thread).
    pub(super) direct: Mutex<Option<Fetcher>>,
    /// Whether `direct` is used (fixed when the consumer is built).
    pub(super) direct_mode: bool,
    /// Direct mode because the pool is inline (not because the driver prefetches): an empty
    /// round sleeps a little before the next one instead of relying on the driver's wait.
    pub(super) inline_mode: bool,
    /// Which steps every producer has closed (see [`super::steps`]).
    pub(super) steps: Mutex<Steps>,
    /// Signalled when a step completes.
    pub(super) step_done: Signal,
    /// Set once a step marker has been read: acknowledgements then update the stored steps.
    pub(super) steps_seen: AtomicBool,
    /// The id each target started at.
    pub(super) start_ids: Vec<EventId>,
    /// How long without events before producers' liveness is checked (zero: never).
    pub(super) liveness_timeout: Duration,
    /// The topic's serializer writes the built-in layout: records are decoded inline (a call
    /// through the trait returns the metadata through memory, copied again at once: a stall
    /// per event).
    pub(super) length_prefixed: bool,
    /// The emptied parts of delivered batches, for the next ones: made and freed per batch,
    /// their memory went back to the system and was faulted in again each time.
    pub(super) spare_parts: Mutex<Vec<EventParts>>,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn steps(&self) -> MutexGuard<'_, Steps> {
        self.steps.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The consumer name under which the step position `key` is stored.
    pub(super) fn step_key(&self, key: &str) -> String {
        format!("{}.{key}", self.name)
    }

    /// Stores what the acknowledged positions of partition `p` imply about steps (each value
    /// plus one, so that 0 means "never stored").
    fn store_steps(&self, p: usize, s: Stored) -> Result<()> {
        let backend = self.topic.backend();
        for (key, v) in [
            (PRODUCERS_KEY, s.producers),
            (SCAN_KEY, s.scan),
            (STEPS_KEY, s.steps),
        ] {
            backend.store_offset(&self.step_key(key), p, v + 1)?;
        }
        Ok(())
    }

    /// Decodes a stored event's metadata with the topic's serializer into `out`. With
    /// `keep_record`, the stored event keeps its metadata record (it may be given back to the
    /// driver if a later read fails); without, the metadata may take it over.
    ///
    /// The metadata is written where it stays (each move of a decoded value, just after the
    /// stores that made it, read them back as wider loads that wait for the stores: a stall per
    /// event).
    fn decode_metadata(
        &self,
        p: usize,
        stored: &mut StoredEvent,
        keep_record: bool,
        out: &mut Metadata,
    ) -> Result<()> {
        let mut copy;
        let record = if keep_record {
            copy = stored.metadata.clone();
            &mut copy
        } else {
            &mut stored.metadata
        };
        let decoded = if self.length_prefixed {
            decode_length_prefixed_into(record, stored.metadata_verified, out)
        } else {
            let serializer = &self.topic.inner.components.serializer;
            serializer
                .deserialize_shared(record, stored.metadata_verified)
                .map(|metadata| *out = metadata)
        };
        decoded.map_err(|e| self.decode_error(p, stored.id, e))
    }

    /// The error for an event whose metadata does not decode.
    #[cold]
    #[inline(never)]
    fn decode_error(&self, p: usize, id: EventId, e: Error) -> Error {
        Error::Decode {
            what: "event metadata",
            reason: format!(
                "topic {:?}, partition {p}, event {id}: {e}",
                self.topic.name()
            ),
        }
    }

    pub(super) fn select(
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
        // "Nothing" is decided where the selector returns, so the descriptor it returned is
        // only moved when something is selected (copying it out at once, just after the
        // selector's stores, cost a stall per event).
        let selected = match &self.selector {
            Some(sel) => guard("data selector", || {
                let d = sel(metadata, &full);
                (d.size() > 0).then_some(d)
            })?,
            None => (full.size() > 0).then_some(full),
        };
        let Some(selected) = selected else {
            return Ok(PendingData::Nothing);
        };
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
    /// Stops at the first failing event: the events before it and its error are returned,
    /// with the stored events not delivered. `give_back`: those go back to a partition reader
    /// ([`PartitionReader::unread`]), so they keep their metadata records; otherwise the
    /// records move into the events (the next fetch reads the others again).
    pub(super) fn materialize_batch(
        &self,
        self_arc: &Arc<Shared>,
        p: usize,
        mut batch: Vec<StoredEvent>,
        give_back: bool,
    ) -> (Vec<Event>, Option<Error>, Vec<StoredEvent>) {
        // Once metadata is decoded, only reads can fail, and there are none when every event's
        // data is at hand and no selector or allocator asks for more. Then decoding, which leaves
        // a record it fails on untouched, is the only failure, and no record needs keeping.
        let may_read = self.selector.is_some()
            || self.allocator.is_some()
            || batch.iter().any(|stored| stored.data.is_none());
        let keep_records = give_back && may_read;
        // The events are made in the same pass (the stored events stay where they are: moving
        // them, at 150 bytes each, cost more than copying 1 KiB of data); those whose data must
        // be read get it below, into the allocations set aside here with their position. Each
        // event's parts are written where they stay (see [`EventParts`]).
        let spare = self
            .spare_parts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop();
        let mut parts = spare
            .unwrap_or_default()
            .refill(p, batch.iter().map(|stored| stored.id));
        let mut to_read = Vec::new();
        let mut error = None;
        for (at, stored) in batch.iter_mut().enumerate() {
            let selected = self
                .decode_metadata(p, stored, keep_records, parts.metadata_mut(at))
                .and_then(|()| self.select(p, parts.metadata(at), stored));
            match selected {
                Ok(PendingData::Nothing) => {}
                Ok(PendingData::Ready(view)) => parts.set_data(at, view),
                Ok(PendingData::Read {
                    ranges,
                    alloc,
                    needed,
                }) => to_read.push(ToRead {
                    at,
                    ranges,
                    alloc,
                    needed,
                }),
                Err(e) => {
                    parts.truncate(at);
                    error = Some(e);
                    break;
                }
            }
        }
        if !to_read.is_empty() {
            let mut reads: Vec<DataRead<'_>> = to_read
                .iter_mut()
                .map(|r| DataRead {
                    event: &batch[r.at],
                    ranges: &r.ranges,
                    dst: r.alloc.slices_mut(),
                })
                .collect();
            let results = self.topic.backend().read_data_many(p, &mut reads);
            drop(reads);
            if let Some((k, e)) = results
                .into_iter()
                .enumerate()
                .find_map(|(k, r)| r.err().map(|e| (k, e)))
            {
                parts.truncate(to_read[k].at);
                to_read.truncate(k);
                error = Some(e);
            }
            for r in to_read {
                parts.set_data(r.at, r.alloc.into_view(r.needed));
            }
        }
        // Events not delivered because one failed (the failing one included).
        let leftover = batch.split_off(parts.len());
        let events = Event::batch(parts, Some(self_arc.clone() as Arc<dyn AckSink>));
        (events, error, leftover)
    }
}

/// An event of a fetched batch whose data is still to be read: its position in the batch, the
/// byte ranges, and where they go.
struct ToRead {
    at: usize,
    ranges: Vec<(u64, u64)>,
    alloc: Allocation,
    needed: usize,
}

/// An event's data after selection: none, ready, or to be read by the driver into `alloc`.
pub(super) enum PendingData {
    Nothing,
    Ready(DataView),
    Read {
        ranges: Vec<(u64, u64)>,
        alloc: Allocation,
        needed: usize,
    },
}

pub(super) fn guard<T>(what: &str, f: impl FnOnce() -> T) -> Result<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f))
        .map_err(|p| Error::CallbackPanicked(format!("{what}: {}", panic_message(&*p))))
}

impl Shared {
    /// Puts an event back at the front of the queue (it was taken but not handed out). Once
    /// the consumer is dropped nobody can pull it, and queued there it would keep this state
    /// (which it references) alive for ever: it is dropped instead.
    pub(super) fn unpull(&self, event: Event) {
        let mut q = self.lock();
        if q.stop {
            drop(q);
            drop(event);
            return;
        }
        q.items.push_front(Ok(event));
        drop(q);
        self.ready.notify_all();
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
            if self.steps_seen.load(AtomicOrdering::Acquire) {
                if let Some(t) = self.targets.iter().position(|&p| p == partition) {
                    let stored = self.steps().on_ack(t, next);
                    if let Some(s) = stored {
                        self.store_steps(partition, s)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn recycle(&self, parts: EventParts) {
        let mut spare = self.spare_parts.lock().unwrap_or_else(|e| e.into_inner());
        if spare.len() <= self.max_num_batches.0.min(8) {
            spare.push(parts);
        }
    }

    fn give_back(&self, event: Event) {
        self.unpull(event);
    }
}

/// What one pass over the target partitions found.
#[derive(PartialEq, Eq)]
pub(super) enum Round {
    /// Events were queued.
    Fetched,
    /// No partition had anything new.
    Empty,
    /// An error was queued for the application.
    Failed,
}

/// Reads batches from the driver into the consumer's queue (on the prefetch thread, or in the
/// pulling thread for drivers whose client prefetches by itself).
pub(super) struct Fetcher {
    pub(super) next: Vec<EventId>,
    pub(super) reader: Option<Box<dyn PartitionReader>>,
    pub(super) cursor: usize,
    pub(super) eos: EndOfStreamTracker,
    pub(super) with_data: bool,
    /// Inline mode: how long to sleep after a round that found nothing.
    pub(super) idle_sleep: Duration,
    /// Since when rounds have found nothing.
    idle_since: Option<Instant>,
    /// When producers' liveness was last checked.
    last_liveness_check: Option<Instant>,
    /// Lost producers already reported (host, pid, name).
    reported_lost: std::collections::HashSet<(String, u32, String)>,
}

impl Fetcher {
    pub(super) fn new(
        shared: &Shared,
        next: Vec<EventId>,
        reader: Option<Box<dyn PartitionReader>>,
    ) -> Self {
        Fetcher {
            next,
            reader,
            cursor: 0,
            eos: EndOfStreamTracker::new(shared.targets.len()),
            with_data: shared.selector.is_none() && shared.allocator.is_none(),
            idle_sleep: Duration::from_micros(100),
            idle_since: None,
            last_liveness_check: None,
            reported_lost: Default::default(),
        }
    }

    /// After `liveness_timeout` without events: a producer whose liveness announcement went
    /// stale without ending its stream, not reported before (drivers that keep liveness).
    fn lost_producer(&mut self, shared: &Shared) -> Option<Error> {
        let timeout = shared.liveness_timeout;
        let now = Instant::now();
        let since = *self.idle_since.get_or_insert(now);
        if timeout.is_zero() || now - since < timeout {
            return None;
        }
        let every = (timeout / 4).max(Duration::from_millis(100));
        if self.last_liveness_check.is_some_and(|t| now - t < every) {
            return None;
        }
        self.last_liveness_check = Some(now);
        if shared.lock().ended {
            return None;
        }
        let producers = match shared.topic.backend().producers() {
            Ok(Some(p)) => p,
            _ => return None,
        };
        for (info, silent) in producers {
            if info.ended || silent <= timeout {
                continue;
            }
            let key = (info.host.clone(), info.pid, info.name.clone());
            if !self.reported_lost.insert(key) {
                continue;
            }
            let last_ids = info
                .last_ids
                .iter()
                .map(|(p, id)| format!("partition {p}: {id}"))
                .collect::<Vec<_>>()
                .join(", ");
            return Some(Error::ProducerLost(Box::new(crate::error::LostProducer {
                name: info.name,
                host: info.host,
                pid: info.pid,
                rank: info.rank,
                last_ids,
                silent,
            })));
        }
        None
    }

    /// Fetches one batch from the next partition that has something, and queues it.
    pub(super) fn round(&mut self, shared: &Arc<Shared>) -> Round {
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
            let mut batch = match result {
                Ok(b) => b,
                Err(e) => {
                    shared.lock().items.push_back(Err(Box::new(e)));
                    shared.ready.notify_all();
                    self.cursor = i + 1;
                    return Round::Failed;
                }
            };
            // A reader that feeds from its own position (Mofka's service-side cursor) may start
            // before where this consumer was told to start.
            let from = self.next[i];
            if batch.first().is_some_and(|e| e.id < from) {
                batch.retain(|e| e.id >= from);
            }
            if batch.is_empty() {
                continue;
            }
            let (materialized, error, leftover) =
                shared.materialize_batch(shared, p, batch, self.reader.is_some());
            if let Some(r) = self.reader.as_mut() {
                if !leftover.is_empty() {
                    r.unread(p, leftover);
                }
            }
            // Ids need not be dense (Kafka offsets): resume after the last one.
            if let Some(last) = materialized.last() {
                self.next[i] = last.id() + 1;
            }
            // Markers are taken out of the stream. Most batches have none: their events go to
            // the queue as they are, in one move.
            let mut events = materialized;
            let mut from_first_marker = Vec::new();
            if let Some(k) = events
                .iter()
                .position(|ev| parse_control(ev.metadata()).is_some())
            {
                for ev in events.split_off(k) {
                    match parse_control(ev.metadata()) {
                        Some(Control::EndOfStream {
                            producer,
                            producers,
                        }) => self.eos.record(i, producer, producers),
                        Some(Control::EndStep {
                            step,
                            producer,
                            producers,
                        }) => {
                            let marker = Marker {
                                id: ev.id(),
                                producer,
                                producers,
                                step,
                            };
                            shared.steps_seen.store(true, AtomicOrdering::Release);
                            let done = shared.steps().on_marker(i, marker);
                            if let Some(k) = done {
                                from_first_marker.push(Ok(Event::step_complete(k, p)));
                                shared.step_done.notify_all();
                            }
                        }
                        None => from_first_marker.push(Ok(ev)),
                    }
                }
            }
            let failed = error.is_some();
            if let Some(e) = error {
                from_first_marker.push(Err(Box::new(e)));
            }
            {
                let mut q = shared.lock();
                if q.stop {
                    // The consumer is being dropped: queued events would keep it alive.
                    return Round::Empty;
                }
                q.items.extend(events.into_iter().map(Ok));
                q.items.extend(from_first_marker);
                if self.eos.all_ended() {
                    q.ended = true;
                }
            }
            shared.ready.notify_all();
            self.cursor = i + 1;
            self.idle_since = None;
            return if failed {
                Round::Failed
            } else {
                Round::Fetched
            };
        }
        if let Some(e) = self.lost_producer(shared) {
            shared.lock().items.push_back(Err(Box::new(e)));
            shared.ready.notify_all();
            return Round::Failed;
        }
        Round::Empty
    }
}

pub(super) fn prefetch_loop(shared: Arc<Shared>, mut fetcher: Fetcher) {
    let mut idle_sleep = Duration::from_micros(100);
    loop {
        {
            let mut q = shared.lock();
            while q.items.len() + shared.fetch_size > shared.capacity
                && !q.stop
                && q.read_ahead == 0
            {
                q.prefetcher_waiting = true;
                q = shared.room.wait(q);
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
        drop(shared.room.wait_timeout(q, sleep));
        idle_sleep = (idle_sleep * 2).min(MAX_IDLE_SLEEP);
    }
}

/// Counts end-of-stream markers per target partition.
pub(super) struct EndOfStreamTracker {
    pub(super) seen: Vec<(u64, std::collections::HashSet<u64>)>,
    pub(super) ended: Vec<bool>,
}

impl EndOfStreamTracker {
    pub(super) fn new(targets: usize) -> Self {
        EndOfStreamTracker {
            seen: vec![(0, Default::default()); targets],
            ended: vec![false; targets],
        }
    }

    pub(super) fn record(&mut self, target: usize, producer: u64, producers: u64) {
        let (expected, set) = &mut self.seen[target];
        *expected = (*expected).max(producers);
        set.insert(producer);
        if set.len() as u64 >= *expected {
            self.ended[target] = true;
        }
    }

    pub(super) fn all_ended(&self) -> bool {
        self.ended.iter().all(|e| *e)
    }
}
