//! Small strong types shared by producers, consumers and drivers.

/// Per-partition event identifier: the 0-based position of the event in its partition's log.
pub type EventId = u64;

/// Sentinel event id meaning "end of stream": no event will ever follow in this stream.
pub const NO_MORE_EVENTS: EventId = u64::MAX;

/// Sentinel event id of a step marker: every producer of the topic has closed a step over the
/// consumer's partitions (see [`crate::Event::completed_step`]).
pub const STEP_COMPLETE: EventId = u64::MAX - 1;

/// How many events a producer groups before sending, or a consumer fetches at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum BatchSize {
    /// Let the engine decide: a producer sends whatever has accumulated as soon as the previous
    /// batch of that producer is out (so batches grow under load and stay small when idle).
    #[default]
    Adaptive,
    /// Exactly this many events per batch (the last batch before a flush may be smaller).
    Fixed(usize),
}

impl BatchSize {
    /// The C++ encoding: `usize::MAX` means adaptive.
    pub fn from_raw(value: usize) -> Self {
        if value == usize::MAX || value == 0 {
            BatchSize::Adaptive
        } else {
            BatchSize::Fixed(value)
        }
    }

    /// The C++ encoding of this batch size.
    pub fn to_raw(self) -> usize {
        match self {
            BatchSize::Adaptive => usize::MAX,
            BatchSize::Fixed(n) => n,
        }
    }
}

/// How many batches may be pending (built but not yet stored) before `push` blocks; for a consumer,
/// how many batches it prefetches. Must be at least 1; the default is 2.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MaxNumBatches(pub usize);

impl Default for MaxNumBatches {
    fn default() -> Self {
        MaxNumBatches(2)
    }
}

impl MaxNumBatches {
    /// No limit.
    pub const INFINITY: MaxNumBatches = MaxNumBatches(usize::MAX);
}

/// Whether events of one partition must be stored in push order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Ordering {
    /// Events of one partition are stored in the order `push` was called (the default).
    #[default]
    Strict,
    /// Events may be reordered within a batch when work runs on several threads.
    Loose,
}

/// Number of worker threads of a thread pool; 0 runs every job inline in the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct ThreadCount(pub usize);

/// Number of events (for limits such as `max_events`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NumEvents(pub usize);

impl NumEvents {
    /// No limit.
    pub const INFINITY: NumEvents = NumEvents(usize::MAX);
}
