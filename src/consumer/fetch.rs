//! Fetching: rounds over the target partitions, the prefetch thread, and the count of
//! end-of-stream markers.

use super::*;

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
        }
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

pub(super) fn prefetch_loop(shared: Arc<Shared>, mut fetcher: Fetcher) {
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
