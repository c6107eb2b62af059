//! The sender: the one thread per producer that hands full batches to the driver's
//! `append_batch` and completes their futures.

use super::{OpenBatch, Shared, Work};
use crate::backend::BatchIds;
use crate::error::{Error, Result};
use crate::future::{Deadline, IndexedSource, Promise};
use crate::types::{BatchSize, EventId};
use std::sync::Arc;

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

pub(super) fn sender_loop(shared: Arc<Shared>, backend: Arc<dyn crate::backend::TopicBackend>) {
    let mut st = shared.lock();
    loop {
        let work = match st.queue.pop_front() {
            Some(w) => w,
            None => {
                if shared.batch_size == BatchSize::Adaptive {
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
                if st.closing {
                    return;
                }
                st = shared
                    .work_ready
                    .wait(st)
                    .unwrap_or_else(|e| e.into_inner());
                continue;
            }
        };
        match work {
            Work::Batch(p, ob) => {
                st.writing = true;
                st.in_flight += 1;
                drop(st);
                let OpenBatch {
                    batch,
                    promise,
                    individual,
                } = ob;
                let size = batch.size_bytes();
                let count = batch.len();
                let s = shared.clone();
                backend.append_batch_async(
                    p,
                    batch,
                    Box::new(move |result| {
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
                    }),
                );
                st = shared.lock();
                st.writing = false;
            }
            Work::Flush(pr) => {
                // Everything handed to the driver before this flush must be stored first.
                while st.in_flight > 0 {
                    st = shared
                        .work_ready
                        .wait(st)
                        .unwrap_or_else(|e| e.into_inner());
                }
                let partitions: Vec<usize> =
                    (0..st.touched.len()).filter(|&p| st.touched[p]).collect();
                st.touched.iter_mut().for_each(|t| *t = false);
                let earlier_failure = st.failure_since_flush.take();
                st.writing = true;
                drop(st);
                let result = match earlier_failure {
                    Some(e) => Err(e),
                    None => backend.sync(&partitions),
                };
                pr.set(result);
                st = shared.lock();
                st.writing = false;
            }
        }
        shared.progress.notify_all();
    }
}
