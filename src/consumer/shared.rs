//! The state a consumer shares with its prefetcher and its pulls: the queue of events, and
//! how stored events become events (metadata decoding, data selection, allocation, reads).

use super::*;

pub(super) struct Queue {
    pub(super) items: VecDeque<Result<Event>>,
    pub(super) stop: bool,
    /// The prefetcher sleeps until the queue has room for a batch.
    pub(super) prefetcher_waiting: bool,
    /// Every target partition has delivered the end-of-stream markers of all its producers.
    pub(super) ended: bool,
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
    pub(super) ready: Condvar,
    pub(super) room: Condvar,
    /// Per partition of the topic: next id after the last acknowledged event.
    pub(super) acked: Mutex<Vec<EventId>>,
    /// The fetcher, when pulls read from the driver themselves (no prefetch thread).
    pub(super) direct: Mutex<Option<Fetcher>>,
    /// Whether `direct` is used (fixed when the consumer is built).
    pub(super) direct_mode: bool,
    /// Direct mode because the pool is inline (not because the driver prefetches): an empty
    /// round sleeps a little before the next one instead of relying on the driver's wait.
    pub(super) inline_mode: bool,
}

impl Shared {
    pub(super) fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Decodes a stored event and runs the data selector and allocator; the data is either
    /// ready or still to be read into the allocation.
    pub(super) fn prepare(
        &self,
        p: usize,
        stored: &mut StoredEvent,
    ) -> Result<(Metadata, PendingData)> {
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
    pub(super) fn materialize_batch(
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
        let parts = prepared
            .into_iter()
            .zip(&batch)
            .map(|((metadata, data), stored)| EventParts {
                metadata,
                data: match data {
                    PendingData::Ready(v) => v,
                    PendingData::Read { alloc, needed, .. } => alloc.into_view(needed),
                },
                partition: p,
                id: stored.id,
            })
            .collect();
        let events = Event::batch(parts, Some(self_arc.clone() as Arc<dyn AckSink>));
        (events, error, leftover)
    }
}

/// An event's data after selection: ready, or to be read by the driver into `alloc`.
pub(super) enum PendingData {
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
    /// Puts an event back at the front of the queue (it was taken but not handed out).
    pub(super) fn unpull(&self, event: Event) {
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
