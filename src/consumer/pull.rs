//! Waiting for events: a pull future's source (for pulls that find no event queued), and the
//! waits and fetches in the pulling thread that pulls of one event and of many share.

use super::shared::{Queue, Round, Shared};
use super::MAX_IDLE_SLEEP;
use crate::error::{Error, Result};
use crate::event::Event;
use crate::future::{Deadline, Source};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// A pull future's source: takes the next prefetched event when waited on, so a pull that times
/// out never swallows an event.
pub(super) struct PullSource {
    pub(super) shared: Arc<Shared>,
    /// The claimed item, and whether a wait has returned it to the application.
    pub(super) slot: Mutex<(Option<Result<Event>>, bool)>,
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

impl Source<Event> for PullSource {
    fn wait_until(&self, deadline: &Deadline) -> Option<Result<Event>> {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = slot.0.clone() {
            slot.1 = true;
            return Some(v);
        }
        let mut q = self.shared.wait_ready(deadline)?;
        let item = if let Some(item) = q.items.pop_front() {
            self.shared.wake_prefetcher(&mut q);
            item.map_err(|e| *e)
        } else if q.ended {
            Ok(self.shared.end_of_stream())
        } else {
            return Some(Err(Error::Closed("consumer")));
        };
        drop(q);
        *slot = (Some(item.clone()), true);
        Some(item)
    }

    fn is_ready(&self) -> bool {
        let mut slot = self.slot.lock().unwrap_or_else(|e| e.into_inner());
        if slot.0.is_some() {
            return true;
        }
        if self.shared.inline_mode {
            self.shared.fetch_once();
        }
        // Claim the next event now, so that a `true` here is always followed by a delivery.
        let (item, ended) = {
            let mut q = self.shared.lock();
            (
                q.items.pop_front().map(|item| item.map_err(|e| *e)),
                q.ended,
            )
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

impl Shared {
    /// Direct mode: one fetch round in this thread even if events are queued (for
    /// `wait_step`), then a short sleep if it found nothing.
    pub(super) fn fetch_ahead(self: &Arc<Self>) {
        let round = {
            let mut direct = self.direct.lock().unwrap_or_else(|e| e.into_inner());
            direct.as_mut().map(|f| f.round(self))
        };
        if round != Some(Round::Fetched) && self.inline_mode {
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Direct mode: runs one fetch round in this thread. False when the deadline has passed.
    pub(super) fn fetch_directly(self: &Arc<Self>, deadline: Option<Instant>) -> bool {
        if self.inline_mode {
            return self.fetch_inline(deadline);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return false;
        }
        let mut direct = self.direct.lock().unwrap_or_else(|e| e.into_inner());
        // Another puller may have filled the queue while we waited for the fetcher.
        if !self.lock().items.is_empty() {
            return true;
        }
        if let Some(fetcher) = direct.as_mut() {
            if fetcher.round(self) == Round::Empty {
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
    pub(super) fn fetch_inline(self: &Arc<Self>, deadline: Option<Instant>) -> bool {
        let time_left = |cap: Duration| match deadline {
            None => Some(cap),
            Some(d) => {
                let now = Instant::now();
                (now < d).then(|| cap.min(d - now))
            }
        };
        let mut direct = match self.direct.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(e)) => e.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) => {
                let q = self.lock();
                if !q.items.is_empty() {
                    return true;
                }
                let Some(wait) = time_left(MAX_IDLE_SLEEP) else {
                    return false;
                };
                drop(self.ready.wait_timeout(q, wait));
                return true;
            }
        };
        if !self.lock().items.is_empty() {
            return true;
        }
        let Some(fetcher) = direct.as_mut() else {
            return true; // the consumer is closing: the caller sees it
        };
        if fetcher.round(self) != Round::Empty {
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

    /// Waits until the queue holds an item, the stream has ended or the consumer is stopping,
    /// fetching in this thread in direct mode; `None` when the deadline passes first.
    pub(super) fn wait_ready(
        self: &Arc<Self>,
        deadline: &Deadline,
    ) -> Option<MutexGuard<'_, Queue>> {
        let mut q = self.lock();
        loop {
            if !q.items.is_empty() || q.ended || q.stop {
                return Some(q);
            }
            if self.direct_mode {
                drop(q);
                if !self.fetch_directly(deadline.get()) {
                    return None;
                }
                q = self.lock();
                continue;
            }
            q = match deadline.get() {
                None => self.ready.wait(q),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return None;
                    }
                    self.ready.wait_timeout(q, d - now)
                }
            };
        }
    }

    /// Wakes the prefetcher if it waits for room that `q` now has.
    pub(super) fn wake_prefetcher(&self, q: &mut Queue) {
        if q.prefetcher_waiting && q.items.len() + self.fetch_size <= self.capacity {
            q.prefetcher_waiting = false;
            self.room.notify_one();
        }
    }

    /// The end-of-stream marker a pull returns once every target partition has ended.
    pub(super) fn end_of_stream(&self) -> Event {
        Event::end_of_stream(self.targets.first().copied().unwrap_or(0))
    }

    /// Inline mode: one fetch round without waiting, so that `completed()` can turn true; none
    /// while another puller is fetching.
    pub(super) fn fetch_once(self: &Arc<Self>) {
        let Ok(mut direct) = self.direct.try_lock() else {
            return;
        };
        if self.lock().items.is_empty() {
            if let Some(fetcher) = direct.as_mut() {
                if fetcher.round(self) == Round::Fetched {
                    fetcher.idle_sleep = Duration::from_micros(100);
                }
            }
        }
    }
}
