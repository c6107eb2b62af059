//! Handing batches to the driver: `Shared::submit` stores one and completes its futures; the
//! sender thread (one per producer) runs it for queued batches and flushes, in queue order, and
//! a pushing thread that finds the queue full runs it for a batch the sender has not taken
//! (see `Shared::wait_for_room`), as does a pool thread for the batches it filled (see
//! `Shared::drain`), on drivers whose appends return at once.

use super::{OpenBatch, Shared, State, Work};
use crate::backend::BatchIds;
use crate::error::{panic_message, Error, Result};
use crate::future::{Deadline, IndexedSource, Promise};
use crate::types::{BatchSize, EventId};
use std::sync::{Arc, Mutex, MutexGuard};

/// A batch's promise resolves each of its events' futures to that event's id once the batch
/// is stored.
impl IndexedSource<EventId> for Promise<BatchIds> {
    fn wait_index(&self, index: usize, deadline: &Deadline) -> Option<Result<EventId>> {
        self.wait_map(deadline, |r| match r {
            Ok(ids) => ids.get(index).ok_or_else(|| {
                Error::InvalidArgument(format!(
                    "the driver returned no id for event {index} of a batch"
                ))
            }),
            Err(e) => Err(e.clone()),
        })
    }
    fn is_ready_index(&self, _index: usize) -> bool {
        self.is_set()
    }
}

impl State {
    /// Takes the first queued batch whose partition no thread is handing to the driver now:
    /// the earliest of its partition, so that each partition's batches reach the driver in
    /// order. Never passes a flush, which waits for every batch queued before it.
    pub(super) fn take_batch(&mut self) -> Option<(usize, OpenBatch)> {
        let at = self
            .queue
            .iter()
            .take_while(|w| matches!(w, Work::Batch(..)))
            .position(|w| matches!(w, Work::Batch(p, _) if !self.submitting[*p]))?;
        match self.queue.remove(at) {
            Some(Work::Batch(p, ob)) => Some((p, ob)),
            _ => unreachable!("position() found a batch there"),
        }
    }
}

/// What completes a batch handed to the driver: its futures, and the producer's accounting.
struct Completion {
    shared: Arc<Shared>,
    partition: usize,
    size: usize,
    count: usize,
    promise: Arc<Promise<BatchIds>>,
    individual: Vec<(u64, Arc<Promise<EventId>>)>,
}

impl Completion {
    fn complete(self, result: Result<BatchIds>) {
        let Completion {
            shared: s,
            partition: p,
            size,
            count,
            promise,
            individual,
        } = self;
        match &result {
            Ok(ids) => {
                if let (Some(lease), Some(last)) =
                    (&s.lease, count.checked_sub(1).and_then(|i| ids.get(i)))
                {
                    lease.stored(p, last);
                }
                for (idx, pr) in &individual {
                    pr.set(ids.get(*idx as usize).ok_or_else(|| {
                        Error::InvalidArgument(format!(
                            "the driver returned no id for event {idx} of a batch"
                        ))
                    }));
                }
            }
            Err(e) => {
                for (_, pr) in &individual {
                    pr.set(Err(e.clone()));
                }
            }
        }
        let failure = result.as_ref().err().cloned();
        promise.set(result);
        let mut st = s.lock();
        st.queued_batches -= 1;
        st.in_flight -= 1;
        st.buffered -= size;
        match failure {
            None => st.touched[p] = true,
            Some(e) => {
                st.failure_since_flush.get_or_insert(e);
            }
        }
        drop(st);
        s.progress.notify_all();
        s.work_ready.notify_all();
    }
}

impl Shared {
    /// Hands partition `p`'s batch `ob` to the driver, unlocked meanwhile, and completes its
    /// futures when it is stored. Returns with the state locked again. A driver that panics
    /// fails the batch (its futures, and the next flush) instead of taking the calling thread
    /// down with the batch never completed.
    pub(super) fn submit<'a>(
        self: &'a Arc<Self>,
        mut st: MutexGuard<'a, State>,
        p: usize,
        ob: OpenBatch,
    ) -> MutexGuard<'a, State> {
        st.writers += 1;
        st.in_flight += 1;
        st.submitting[p] = true;
        drop(st);
        let OpenBatch {
            batch,
            promise,
            individual,
        } = ob;
        let slot = Arc::new(Mutex::new(Some(Completion {
            shared: self.clone(),
            partition: p,
            size: batch.size_bytes(),
            count: batch.len(),
            promise,
            individual,
        })));
        let done = slot.clone();
        let submitted = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.backend.append_batch_async(
                p,
                batch,
                Box::new(move |result| {
                    let completion = done.lock().unwrap_or_else(|e| e.into_inner()).take();
                    if let Some(c) = completion {
                        c.complete(result);
                    }
                }),
            )
        }));
        if let Err(payload) = submitted {
            let completion = slot.lock().unwrap_or_else(|e| e.into_inner()).take();
            if let Some(c) = completion {
                c.complete(Err(Error::CallbackPanicked(format!(
                    "the driver panicked storing a batch of partition {p}: {}",
                    panic_message(&*payload)
                ))));
            }
        }
        let mut st = self.lock();
        st.writers -= 1;
        st.submitting[p] = false;
        // The partition's next batch may go now.
        self.work_ready.notify_all();
        st
    }
}

/// The sender thread: stores queued batches and runs flushes, in queue order.
pub(super) fn sender_loop(shared: Arc<Shared>) {
    let mut st = shared.lock();
    loop {
        if matches!(st.queue.front(), Some(Work::Flush(_))) {
            let Some(Work::Flush(pr)) = st.queue.pop_front() else {
                unreachable!("the front is a flush")
            };
            // Everything handed to the driver before this flush must be stored first.
            while st.in_flight > 0 {
                st = shared.work_ready.wait(st);
            }
            let partitions: Vec<usize> = (0..st.touched.len()).filter(|&p| st.touched[p]).collect();
            st.touched.iter_mut().for_each(|t| *t = false);
            let earlier_failure = st.failure_since_flush.take();
            st.writers += 1;
            drop(st);
            let result = match earlier_failure {
                Some(e) => Err(e),
                None => shared.backend.sync(&partitions),
            };
            pr.set(result);
            st = shared.lock();
            st.writers -= 1;
            shared.progress.notify_all();
            continue;
        }
        if let Some((p, ob)) = st.take_batch() {
            st = shared.submit(st, p, ob);
            shared.progress.notify_all();
            continue;
        }
        if st.queue.is_empty() && shared.batch_size == BatchSize::Adaptive {
            // Events pushed while we were writing: send them now.
            let pending: Vec<usize> = (0..st.open.len())
                .filter(|&p| st.open[p].as_ref().is_some_and(|b| !b.batch.is_empty()))
                .collect();
            if !pending.is_empty() {
                for p in pending {
                    shared.dispatch(&mut st, p);
                }
                continue;
            }
        }
        if st.queue.is_empty() && st.closing {
            return;
        }
        // Nothing queued, or only batches of partitions a pusher is storing now.
        st = shared.work_ready.wait(st);
    }
}
