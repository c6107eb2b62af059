//! Steps: which steps every producer of the topic has closed over the consumer's partitions.
//!
//! Producers close a step by appending a marker to every partition after the step's events
//! ([`crate::Producer::end_step`]). Step `k` is complete for a consumer when, in each of its
//! partitions, every producer's marker for `k` (or a later step) has been read: every event of
//! step `k` was then read before. The consumer then queues a step marker event
//! ([`crate::Event::completed_step`]).
//!
//! Restarts. What a consumer name has acknowledged is stored with three more positions per
//! partition, through the driver's ordinary offsets (so every driver keeps them):
//! `NAME.steps` (how many steps all producers closed before the acknowledged position),
//! `NAME.producers` (how many producers close steps) and `NAME.step-scan` (one past the id of the
//! first acknowledged marker of a step not yet closed by all, 0 if none). A restarted consumer
//! starts from those and reads the markers between `step-scan` and its acknowledged position
//! again (metadata only, nothing delivered), so that no producer's marker is forgotten.

use crate::types::EventId;
use std::collections::VecDeque;

/// The suffixes of the consumer names under which step positions are stored.
pub(super) const STEPS_KEY: &str = "steps";
pub(super) const PRODUCERS_KEY: &str = "producers";
pub(super) const SCAN_KEY: &str = "step-scan";

/// One step marker read from a partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Marker {
    pub id: EventId,
    pub producer: u64,
    pub producers: u64,
    pub step: u64,
}

/// How far each producer has closed steps in one partition.
#[derive(Clone, Debug, Default)]
pub(super) struct PartitionSteps {
    /// Producers that close steps (0: no marker seen yet).
    producers: u64,
    /// `closed[i]`: steps producer `i` has closed (its last closed step + 1).
    closed: Vec<u64>,
    /// Steps every producer has closed, once known from a restart (a floor for all of them).
    floor: u64,
}

impl PartitionSteps {
    fn record(&mut self, m: &Marker) {
        if m.producers > self.producers {
            self.producers = m.producers;
        }
        let i = m.producer as usize;
        if self.closed.len() <= i {
            self.closed.resize(i + 1, 0);
        }
        self.closed[i] = self.closed[i].max(m.step + 1);
    }

    /// Steps every producer has closed in this partition.
    fn complete(&self) -> u64 {
        if self.producers == 0 {
            return self.floor;
        }
        (0..self.producers as usize)
            .map(|i| self.closed.get(i).copied().unwrap_or(0).max(self.floor))
            .min()
            .unwrap_or(self.floor)
    }
}

/// What the acknowledged positions of one partition imply, to store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(super) struct Stored {
    /// Steps closed by every producer before the acknowledged position.
    pub steps: u64,
    /// Producers that close steps.
    pub producers: u64,
    /// One past the id of the first acknowledged marker of a step not closed by all (0: none).
    pub scan: EventId,
}

/// The step state of one consumer, by target index.
#[derive(Debug)]
pub(super) struct Steps {
    /// As read by the fetcher.
    read: Vec<PartitionSteps>,
    /// As of the acknowledged positions.
    acked: Vec<PartitionSteps>,
    /// Markers read but not yet covered by an acknowledgement, in id order.
    pending: Vec<VecDeque<Marker>>,
    /// Acknowledged markers of steps not yet closed by every producer (what a restart re-reads).
    open: Vec<Vec<Marker>>,
    /// What was last stored per target.
    stored: Vec<Stored>,
    /// Steps complete over every target (the last complete step + 1; 0: none).
    complete: u64,
}

impl Steps {
    pub(super) fn new(targets: usize) -> Self {
        Steps {
            read: vec![PartitionSteps::default(); targets],
            acked: vec![PartitionSteps::default(); targets],
            pending: vec![VecDeque::new(); targets],
            open: vec![Vec::new(); targets],
            stored: vec![Stored::default(); targets],
            complete: 0,
        }
    }

    /// Starts target `t` from what was stored for it.
    pub(super) fn restore(&mut self, t: usize, s: Stored) {
        for state in [&mut self.read[t], &mut self.acked[t]] {
            state.floor = s.steps;
            state.producers = state.producers.max(s.producers);
        }
        self.stored[t] = s;
        self.complete = self.overall();
    }

    /// Starts every target knowing that all producers closed `steps` steps.
    pub(super) fn assume_closed(&mut self, steps: u64) {
        for state in self.read.iter_mut().chain(self.acked.iter_mut()) {
            state.floor = state.floor.max(steps);
        }
        self.complete = self.overall();
    }

    /// A marker re-read at a restart, before the acknowledged position: it counts as read and
    /// acknowledged.
    pub(super) fn replay(&mut self, t: usize, m: Marker) {
        self.read[t].record(&m);
        self.acked[t].record(&m);
        self.open[t].push(m);
        self.complete = self.overall();
    }

    fn overall(&self) -> u64 {
        self.read
            .iter()
            .map(PartitionSteps::complete)
            .min()
            .unwrap_or(0)
    }

    /// Steps complete over every target (the last complete step + 1).
    pub(super) fn complete(&self) -> u64 {
        self.complete
    }

    /// Records a marker read from target `t`; returns the step now complete, if this marker
    /// completed one (or several: the last of them).
    pub(super) fn on_marker(&mut self, t: usize, m: Marker) -> Option<u64> {
        self.read[t].record(&m);
        self.pending[t].push_back(m);
        let now = self.overall();
        if now > self.complete {
            self.complete = now;
            return Some(now - 1);
        }
        None
    }

    /// The consumer acknowledged target `t` up to (excluding) `next`; returns what to store if
    /// it changed.
    pub(super) fn on_ack(&mut self, t: usize, next: EventId) -> Option<Stored> {
        let mut moved = false;
        while self.pending[t].front().is_some_and(|m| m.id < next) {
            let m = self.pending[t].pop_front().expect("checked");
            self.acked[t].record(&m);
            self.open[t].push(m);
            moved = true;
        }
        if !moved {
            return None;
        }
        let acked = &self.acked[t];
        let steps = acked.complete();
        self.open[t].retain(|m| m.step >= steps);
        let s = Stored {
            steps,
            producers: acked.producers,
            scan: self.open[t].iter().map(|m| m.id + 1).min().unwrap_or(0),
        };
        if s == self.stored[t] {
            return None;
        }
        self.stored[t] = s;
        Some(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(id: EventId, producer: u64, step: u64) -> Marker {
        Marker {
            id,
            producer,
            producers: 2,
            step,
        }
    }

    #[test]
    fn a_step_completes_when_every_producer_closed_it_in_every_partition() {
        let mut s = Steps::new(2);
        assert_eq!(s.on_marker(0, m(3, 0, 0)), None);
        assert_eq!(s.on_marker(0, m(5, 1, 0)), None);
        assert_eq!(s.on_marker(1, m(2, 1, 0)), None);
        assert_eq!(s.on_marker(1, m(4, 0, 1)), Some(0));
        assert_eq!(s.complete(), 1);
        // Closing step 2 closes step 1 too.
        s.on_marker(0, m(9, 0, 2));
        s.on_marker(0, m(10, 1, 2));
        assert_eq!(s.on_marker(1, m(6, 1, 2)), Some(1));
    }

    #[test]
    fn acknowledgements_store_the_steps_and_where_to_re_read_markers() {
        let mut s = Steps::new(1);
        s.on_marker(0, m(3, 0, 0));
        s.on_marker(0, m(5, 1, 0));
        s.on_marker(0, m(8, 0, 1));
        assert_eq!(s.on_ack(0, 3), None, "no marker below 3");
        let st = s.on_ack(0, 6).unwrap();
        assert_eq!((st.steps, st.producers, st.scan), (1, 2, 0));
        let st = s.on_ack(0, 9).unwrap();
        assert_eq!((st.steps, st.producers, st.scan), (1, 2, 9));
        // A restart from what was stored, re-reading the marker at 8.
        let mut r = Steps::new(1);
        r.restore(0, st);
        assert_eq!(r.complete(), 1);
        r.replay(0, m(8, 0, 1));
        assert_eq!(r.on_marker(0, m(12, 1, 1)), Some(1));
    }
}
