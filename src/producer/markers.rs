//! Control events: the markers by which producers end their stream and close steps. They are
//! ordinary events (metadata under the reserved key `$diaspora`, no data), appended to every
//! partition after what the producer pushed before, so they work across processes and with
//! every driver.

use super::Producer;
use crate::data_view::DataView;
use crate::error::Error;
use crate::future::Future;
use crate::metadata::Metadata;

impl Producer {
    /// Declares that this producer, number `producer_index` of `num_producers` cooperating
    /// producers, will send nothing more: after everything it pushed so far, an end-of-stream
    /// marker is appended to every partition and the producer is flushed. A consumer that has
    /// seen the markers of all `num_producers` producers in each of its partitions (and every
    /// event before them) receives events with id [`crate::NO_MORE_EVENTS`] from then on.
    ///
    /// Markers are ordinary events (metadata `{"$diaspora": {"end_of_stream": ...}}`, no data),
    /// so this works across processes and with every driver. The future completes when the
    /// markers are stored.
    pub fn end_of_stream(&self, producer_index: usize, num_producers: usize) -> Future<()> {
        if num_producers == 0 || producer_index >= num_producers {
            return Future::failed(Error::InvalidArgument(format!(
                "producer index {producer_index} is not below the producer count {num_producers}"
            )));
        }
        let marker = crate::event::end_of_stream_marker(producer_index, num_producers);
        let done = self.append_everywhere(&marker);
        if let Some(lease) = &self.shared.lease {
            if done.wait().is_ok() {
                lease.ended();
            }
        }
        done
    }

    /// Closes step `step` for this producer (number `index` of `count` set with
    /// [`crate::ProducerBuilder::group`], default 0 of 1): after everything it pushed so far, a
    /// step marker is appended to every partition, and the producer is flushed. Closing a step
    /// closes every earlier one. Steps only grow: closing a step this producer already closed is
    /// an error.
    ///
    /// A consumer learns that step `step` is complete once it has read the markers of all
    /// `count` producers (for that step or a later one) in each of its partitions: it then
    /// queues a step marker event ([`crate::Event::completed_step`]) after every event of the
    /// step, and [`crate::Consumer::wait_step`] returns. The future completes when the markers
    /// are stored.
    pub fn end_step(&self, step: u64) -> Future<()> {
        self.end_step_as(step, self.group.0, self.group.1)
    }

    /// [`Producer::end_step`] as producer `index` of `count` (what
    /// [`crate::ProducerBuilder::group`] sets; the MPI helpers pass their rank and size).
    pub fn end_step_as(&self, step: u64, index: usize, count: usize) -> Future<()> {
        if count == 0 || index >= count {
            return Future::failed(Error::InvalidArgument(format!(
                "producer index {index} is not below the producer count {count}"
            )));
        }
        {
            let mut last = self.last_step.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(l) = *last {
                if step <= l {
                    return Future::failed(Error::InvalidArgument(format!(
                        "step {step} is already closed: this producer closed step {l}"
                    )));
                }
            }
            *last = Some(step);
        }
        let marker = crate::event::end_step_marker(step, index, count);
        self.append_everywhere(&marker)
    }

    /// Flushes what was pushed, appends `marker` to every partition, and flushes again.
    fn append_everywhere(&self, marker: &Metadata) -> Future<()> {
        // Everything pushed before must be stored before the markers.
        if let Err(e) = self.flush().wait() {
            return Future::failed(e);
        }
        for p in 0..self.shared.topic.num_partitions() {
            let f = self.append_prepared(marker, DataView::new(), p);
            if f.completed() {
                if let Err(e) = f.wait() {
                    return Future::failed(e);
                }
            }
        }
        self.flush()
    }
}
