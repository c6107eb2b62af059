//! The consumer engine, shared by every driver.
//!
//! A consumer has a name and a set of target partitions. A prefetch thread fetches batches of
//! events from the driver (round robin over the targets, `batch_size` events at a time, at most
//! `max_num_batches` batches ahead of the application), decodes metadata, runs the application's
//! data selector and allocator, and has the driver read only the selected bytes straight into the
//! memory the allocator returned. [`Consumer::pull`] hands out prefetched events one
//! at a time, [`Consumer::pull_many`] several per call.
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

use crate::data_view::Allocation;
use crate::descriptor::DataDescriptor;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::future::{Deadline, Future};
use crate::metadata::Metadata;
use crate::thread_pool::{ThreadPool, DEFAULT_PRIORITY};
use crate::topic::TopicHandle;
use crate::types::{BatchSize, MaxNumBatches, NumEvents};
use pull::PullSource;
use serde_json::Value;
use shared::{guard, Shared};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod builder;
mod pull;
mod shared;
mod start;
mod steps;

pub use builder::{ConsumerBuilder, DEFAULT_LIVENESS_TIMEOUT};
pub use start::{partition_completed_step, StartPosition};

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

    /// The id each partition of [`Consumer::targets`] started at (see
    /// [`ConsumerBuilder::start`]), in the order of the targets.
    pub fn start_ids(&self) -> &[crate::types::EventId] {
        &self.shared.start_ids
    }

    /// The last step that every producer of the topic has closed over this consumer's
    /// partitions, as far as this consumer has read (including what its name had acknowledged
    /// before a restart); `None` if no step is complete yet. See [`crate::Producer::end_step`].
    pub fn completed_step(&self) -> Option<u64> {
        self.shared.steps().complete().checked_sub(1)
    }

    /// Waits until every producer has closed step `step` over this consumer's partitions:
    /// `Ok(true)` then, `Ok(false)` if `timeout` passes first or the stream ends without it.
    ///
    /// To learn it, the consumer reads ahead: the events of the step stay queued for the
    /// following pulls (past the usual prefetch depth), and the step marker event
    /// ([`Event::completed_step`]) comes after all of them. Errors met while reading are
    /// returned by those pulls.
    pub fn wait_step(&self, step: u64, timeout: Duration) -> Result<bool> {
        let shared = &self.shared;
        let deadline = Instant::now() + timeout;
        let _reading_ahead = ReadAhead::new(shared);
        loop {
            if shared.steps().complete() > step {
                return Ok(true);
            }
            {
                let q = shared.lock();
                if q.ended || q.stop {
                    return Ok(false);
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(false);
            }
            if shared.direct_mode {
                shared.fetch_ahead();
            } else {
                let st = shared.steps();
                if st.complete() <= step {
                    let wait = (deadline - now).min(MAX_IDLE_SLEEP);
                    drop(shared.step_done.wait_timeout(st, wait));
                }
            }
        }
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
        // An event already queued is claimed at once (no source to allocate, no second lock,
        // no reference count taken on the consumer: the event finds its way back through its
        // batch if the future is dropped unwaited); markers made by the consumer itself, errors,
        // the end of the stream and waits go through a pull source.
        {
            let mut q = self.shared.lock();
            if matches!(q.items.front(), Some(Ok(ev)) if ev.has_consumer()) {
                if let Some(Ok(event)) = q.items.pop_front() {
                    self.shared.wake_prefetcher(&mut q);
                    drop(q);
                    return Future::claimed(event, Event::give_back);
                }
            }
        }
        Future::from_source(Arc::new(PullSource {
            shared: self.shared.clone(),
            slot: Mutex::new((None, false)),
        }))
    }

    /// Takes up to `max` events at once, appending them to `out`, and returns how many it took.
    ///
    /// Waits at most `timeout` (`None`: without limit) for the first one, then takes what is
    /// queued after it without waiting again: one lock and no future for the whole group, where
    /// [`Consumer::pull`] costs one of each per event. `Ok(0)` means the time ran out. Events come
    /// in the order [`Consumer::pull`] gives them. Once the stream has ended, the call appends
    /// the end-of-stream marker (alone) and returns 1. An error met after some events is
    /// returned by the next call, so no event before it is lost.
    pub fn pull_many(
        &self,
        out: &mut Vec<Event>,
        max: usize,
        timeout: Option<Duration>,
    ) -> Result<usize> {
        if max == 0 {
            return Ok(0);
        }
        let deadline = match timeout {
            Some(t) => Deadline::after(t),
            None => Deadline::never(),
        };
        let Some(mut q) = self.shared.wait_ready(&deadline) else {
            return Ok(0);
        };
        let mut taken = 0;
        while taken < max {
            match q.items.front() {
                Some(Ok(_)) => {
                    if let Some(Ok(event)) = q.items.pop_front() {
                        out.push(event);
                        taken += 1;
                    }
                }
                Some(Err(_)) if taken == 0 => {
                    let error = q.items.pop_front().and_then(|item| item.err()).map(|e| *e);
                    self.shared.wake_prefetcher(&mut q);
                    return Err(error.unwrap_or(Error::Closed("consumer")));
                }
                _ => break,
            }
        }
        if taken > 0 {
            self.shared.wake_prefetcher(&mut q);
            return Ok(taken);
        }
        if q.ended {
            out.push(self.shared.end_of_stream());
            return Ok(1);
        }
        Err(Error::Closed("consumer"))
    }

    /// Iterates over events, waiting at most `timeout` for each; ends when none arrives in time or
    /// at an end-of-stream marker. Errors are yielded as items.
    pub fn iter(&self, timeout: Duration) -> Events<'_> {
        Events {
            consumer: self,
            timeout,
            done: false,
            taken: Vec::new(),
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
///
/// It takes events from the consumer a group at a time ([`Consumer::pull_many`]); events taken
/// but not yet yielded go back to the front of the consumer's queue when it is dropped.
pub struct Events<'a> {
    consumer: &'a Consumer,
    timeout: Duration,
    done: bool,
    /// Events taken and not yet yielded, the next one last.
    taken: Vec<Event>,
}

/// Events an [`Events`] iterator takes at once.
const ITER_GROUP: usize = 64;

impl Iterator for Events<'_> {
    type Item = Result<Event>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        if self.taken.is_empty() {
            match self
                .consumer
                .pull_many(&mut self.taken, ITER_GROUP, Some(self.timeout))
            {
                Ok(0) => {
                    self.done = true;
                    return None;
                }
                Ok(_) => self.taken.reverse(),
                Err(e) => return Some(Err(e)),
            }
        }
        let ev = self.taken.pop()?;
        if ev.is_end_of_stream() {
            self.done = true;
            return None;
        }
        Some(Ok(ev))
    }
}

impl Drop for Events<'_> {
    fn drop(&mut self) {
        // Give back, last first, so that the queue keeps their order.
        for ev in self.taken.drain(..) {
            if !ev.is_end_of_stream() {
                self.consumer.shared.unpull(ev);
            }
        }
    }
}

/// While alive, the prefetch thread reads past the queue's capacity (for `wait_step`).
struct ReadAhead<'a>(&'a Shared);

impl<'a> ReadAhead<'a> {
    fn new(shared: &'a Shared) -> Self {
        shared.lock().read_ahead += 1;
        shared.room.notify_all();
        ReadAhead(shared)
    }
}

impl Drop for ReadAhead<'_> {
    fn drop(&mut self) {
        self.0.lock().read_ahead -= 1;
    }
}

#[cfg(test)]
mod tests {
    use crate::data_view::DataView;
    use crate::driver::Driver;
    use serde_json::json;
    use std::time::Duration;

    /// A pull future that claimed an event and is dropped, unwaited, after its consumer: the
    /// event does not go back into the gone consumer's queue, where it would keep the
    /// consumer's state alive for ever.
    #[test]
    fn a_future_dropped_after_its_consumer_frees_the_consumer() {
        let d = Driver::new("memory", &json!({})).unwrap();
        d.create_topic("t", &json!({})).unwrap();
        let topic = d.open_topic("t").unwrap();
        let producer = topic.producer().build().unwrap();
        for i in 0..10 {
            producer.push(json!({ "i": i }), DataView::new());
        }
        producer.flush().wait().unwrap();
        let consumer = topic.consumer("c").build().unwrap();
        let first = consumer
            .pull()
            .wait_timeout(Duration::from_secs(5))
            .unwrap();
        assert!(first.is_some());
        drop(first);
        let f = consumer.pull();
        assert!(f.completed(), "the rest of the batch is queued");
        let state = std::sync::Arc::downgrade(&consumer.shared);
        drop(consumer);
        drop(f);
        assert!(
            state.upgrade().is_none(),
            "the consumer's state outlived it"
        );
    }
}
