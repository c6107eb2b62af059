//! Events delivered to consumers.

use crate::data_view::DataView;
use crate::error::Result;
use crate::metadata::Metadata;
use crate::types::{EventId, NO_MORE_EVENTS, STEP_COMPLETE};
use std::sync::Arc;

/// Key of the reserved metadata object used for control events such as end-of-stream markers.
pub const CONTROL_KEY: &str = "$diaspora";

/// Metadata of the end-of-stream marker of producer `index` of `count`.
pub(crate) fn end_of_stream_marker(index: usize, count: usize) -> Metadata {
    Metadata::new(serde_json::json!({
        CONTROL_KEY: {"end_of_stream": {"producer": index, "producers": count}}
    }))
}

/// Metadata of the marker by which producer `index` of `count` closes step `step`.
pub(crate) fn end_step_marker(step: u64, index: usize, count: usize) -> Metadata {
    Metadata::new(serde_json::json!({
        CONTROL_KEY: {"end_step": {"step": step, "producer": index, "producers": count}}
    }))
}

/// A control event written by this library's producers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Control {
    /// Producer `producer` of `producers` will send nothing more.
    EndOfStream { producer: u64, producers: u64 },
    /// Producer `producer` of `producers` closed step `step` (and every step before it).
    EndStep {
        step: u64,
        producer: u64,
        producers: u64,
    },
}

/// Whether `text` holds the byte `b`: sixteen bytes at a time, the last sixteen loaded once
/// more where the length is not a multiple (metadata is short: `memchr`'s dispatch and
/// alignment steps cost more than the search itself there).
#[cfg(all(target_arch = "x86_64", target_feature = "sse2"))]
fn contains_byte(text: &[u8], b: u8) -> bool {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi8, _mm_loadu_si128, _mm_movemask_epi8, _mm_set1_epi8,
    };
    if text.len() < 16 {
        return text.contains(&b);
    }
    // SAFETY: SSE2 is enabled in this build (the cfg above); every load reads the sixteen
    // bytes at `at`, with `at + 16 <= text.len()` (`last` is the final such start), unaligned.
    unsafe {
        let needle = _mm_set1_epi8(b as i8);
        let hit = |at: usize| {
            let v = _mm_loadu_si128(text.as_ptr().add(at).cast::<__m128i>());
            _mm_movemask_epi8(_mm_cmpeq_epi8(v, needle)) != 0
        };
        let last = text.len() - 16;
        let mut at = 0;
        while at < last {
            if hit(at) {
                return true;
            }
            at += 16;
        }
        hit(last)
    }
}

#[cfg(not(all(target_arch = "x86_64", target_feature = "sse2")))]
fn contains_byte(text: &[u8], b: u8) -> bool {
    memchr::memchr(b, text).is_some()
}

/// Whether `text` holds [`CONTROL_KEY`] as written (with a searcher made once: making one costs
/// more than searching 100 bytes).
fn holds_control_key(text: &[u8]) -> bool {
    // Most metadata has no `$` at all: one byte search, far cheaper than the searcher's.
    if !contains_byte(text, b'$') {
        return false;
    }
    static FINDER: std::sync::OnceLock<memchr::memmem::Finder<'static>> =
        std::sync::OnceLock::new();
    FINDER
        .get_or_init(|| memchr::memmem::Finder::new(CONTROL_KEY.as_bytes()))
        .find(text)
        .is_some()
}

/// Whether JSON text may hold [`CONTROL_KEY`] once parsed: false only when the key is not in it
/// as written and it has no escape sequence (through which a key can spell it otherwise).
pub(crate) fn text_may_hold_control_key(text: &[u8]) -> bool {
    contains_byte(text, b'\\') || holds_control_key(text)
}

/// The control event `metadata` holds, if it is one.
pub(crate) fn parse_control(metadata: &Metadata) -> Option<Control> {
    // Metadata still in its text form is only parsed if it holds the markers' key (markers are
    // written by this library, whose JSON writer never escapes it).
    if metadata
        .unparsed_text()
        .is_some_and(|text| !holds_control_key(text))
    {
        return None;
    }
    let c = metadata.json().as_object()?.get(CONTROL_KEY)?;
    let num = |v: &serde_json::Value, k: &str| v.get(k).and_then(serde_json::Value::as_u64);
    if let Some(m) = c.get("end_of_stream") {
        return Some(Control::EndOfStream {
            producer: num(m, "producer")?,
            producers: num(m, "producers")?,
        });
    }
    let m = c.get("end_step")?;
    Some(Control::EndStep {
        step: num(m, "step")?,
        producer: num(m, "producer")?,
        producers: num(m, "producers")?,
    })
}

/// Receives acknowledgements of events (implemented by the consumer engine).
pub(crate) trait AckSink: Send + Sync {
    fn acknowledge(&self, partition: usize, id: EventId) -> Result<()>;
    /// Takes back the emptied parts of a batch whose last event was dropped, to make the next
    /// batch in the same memory.
    fn recycle(&self, parts: EventParts) {
        drop(parts);
    }
    /// Takes back an event that a pull claimed but that no wait returned, so that the next
    /// pull gets it.
    fn give_back(&self, event: Event);
}

/// One event read from a topic. Cloning is cheap (the content is shared).
///
/// The events of one fetched batch share one allocation: an event keeps its batch's events
/// alive (as it keeps the buffer its data was read into), and making or dropping an event
/// costs no allocation of its own.
#[derive(Clone)]
pub struct Event {
    batch: GroupRef,
    index: usize,
}

/// A counted handle on an [`EventGroup`], like an `Arc`, except that the handles of a new
/// group's events are made with their count set once (an `Arc` would take one atomic increment
/// per event: about a twentieth of a consumer's time reading events without data).
struct GroupRef(std::ptr::NonNull<GroupInner>);

struct GroupInner {
    refs: std::sync::atomic::AtomicUsize,
    group: EventGroup,
}

// SAFETY: a `GroupRef` gives shared access to an `EventGroup` from any thread, as an
// `Arc<EventGroup>` would; `EventGroup` is `Send + Sync` (checked below).
unsafe impl Send for GroupRef {}
// SAFETY: as for `Send`.
unsafe impl Sync for GroupRef {}
const _: fn() = || {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<EventGroup>();
};

impl GroupRef {
    /// `n` handles on `group` (`n` > 0), to be all taken from the iterator.
    fn many(group: EventGroup, n: usize) -> impl Iterator<Item = GroupRef> {
        debug_assert!(n > 0);
        let inner = Box::new(GroupInner {
            refs: std::sync::atomic::AtomicUsize::new(n),
            group,
        });
        let ptr = std::ptr::NonNull::from(Box::leak(inner));
        (0..n).map(move |_| GroupRef(ptr))
    }

    fn inner(&self) -> &GroupInner {
        // SAFETY: the allocation lives while any handle does, and this is one.
        unsafe { self.0.as_ref() }
    }

    /// The group itself when this is its only handle (as `Arc::try_unwrap`).
    fn try_unwrap(self) -> std::result::Result<EventGroup, GroupRef> {
        use std::sync::atomic::Ordering;
        if self
            .inner()
            .refs
            .compare_exchange(1, 0, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return Err(self);
        }
        let ptr = self.0;
        std::mem::forget(self);
        // SAFETY: the count was 1 and is now 0: no other handle exists, and this one is gone.
        let inner = unsafe { Box::from_raw(ptr.as_ptr()) };
        Ok(inner.group)
    }

    #[cfg(test)]
    fn ptr_eq(a: &GroupRef, b: &GroupRef) -> bool {
        a.0 == b.0
    }
}

impl std::ops::Deref for GroupRef {
    type Target = EventGroup;
    fn deref(&self) -> &EventGroup {
        &self.inner().group
    }
}

impl Clone for GroupRef {
    fn clone(&self) -> Self {
        // As `Arc::clone`: a new handle comes from an existing one, so Relaxed suffices; and,
        // as there, a count run past isize::MAX (handles leaked with mem::forget) aborts.
        let old = self
            .inner()
            .refs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if old > isize::MAX as usize {
            std::process::abort();
        }
        GroupRef(self.0)
    }
}

impl Drop for GroupRef {
    fn drop(&mut self) {
        use std::sync::atomic::{fence, Ordering};
        // As `Arc`'s drop: Release on the decrement, Acquire before freeing.
        if self.inner().refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        fence(Ordering::Acquire);
        // SAFETY: this was the last handle; nobody else can reach the allocation.
        drop(unsafe { Box::from_raw(self.0.as_ptr()) });
    }
}

/// Events made together, and where their acknowledgements go. Each part is kept in a vector
/// of its own: an event is made by writing its parts where they stay (a 170-byte event built
/// and then moved into place was read back, as wide loads, from fields just stored one by one,
/// loads that wait for the stores), and events without data take no room for it.
struct EventGroup {
    parts: EventParts,
    ack: Option<Arc<dyn AckSink>>,
}

impl Drop for EventGroup {
    fn drop(&mut self) {
        if let Some(sink) = &self.ack {
            let mut parts = std::mem::take(&mut self.parts);
            parts.truncate(0);
            sink.recycle(parts);
        }
    }
}

/// The parts of events of one partition, made one by one, as [`Event::batch`] takes them.
#[derive(Default)]
pub(crate) struct EventParts {
    partition: usize,
    ids: Vec<EventId>,
    metadata: Vec<Metadata>,
    /// Each event's data, or empty when no event has any yet.
    data: Vec<DataView>,
}

/// The data of an event without any.
static NO_DATA: DataView = DataView::new();

impl EventParts {
    /// Events `ids` of `partition`, without data, their metadata to be written in place
    /// ([`EventParts::metadata_mut`]).
    pub(crate) fn new(partition: usize, ids: impl Iterator<Item = EventId>) -> Self {
        Self::default().refill(partition, ids)
    }

    /// [`EventParts::new`] in the memory of these (emptied) parts.
    pub(crate) fn refill(mut self, partition: usize, ids: impl Iterator<Item = EventId>) -> Self {
        debug_assert!(self.ids.is_empty() && self.metadata.is_empty() && self.data.is_empty());
        self.partition = partition;
        self.ids.extend(ids);
        self.metadata.resize_with(self.ids.len(), Metadata::unset);
        self
    }

    /// The metadata of the event at `at`, to be written.
    pub(crate) fn metadata_mut(&mut self, at: usize) -> &mut Metadata {
        &mut self.metadata[at]
    }

    /// The metadata of the event at `at`.
    pub(crate) fn metadata(&self, at: usize) -> &Metadata {
        &self.metadata[at]
    }

    /// Gives the event at `at` its data.
    pub(crate) fn set_data(&mut self, at: usize, data: DataView) {
        if self.data.len() <= at {
            self.data.resize_with(at + 1, DataView::new);
        }
        self.data[at] = data;
    }

    /// Number of events.
    pub(crate) fn len(&self) -> usize {
        self.ids.len()
    }

    /// Keeps the first `n` events.
    pub(crate) fn truncate(&mut self, n: usize) {
        self.ids.truncate(n);
        self.metadata.truncate(n);
        self.data.truncate(n);
    }
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("partition", &self.partition())
            .field("id", &self.id())
            .field("metadata", self.metadata())
            .field("data", self.data())
            .finish()
    }
}

impl Event {
    /// Events made from `parts` in one allocation, acknowledged through `ack`.
    pub(crate) fn batch(parts: EventParts, ack: Option<Arc<dyn AckSink>>) -> Vec<Event> {
        let n = parts.len();
        if n == 0 {
            // Dropped at once: its parts go back to the sink.
            drop(EventGroup { parts, ack });
            return Vec::new();
        }
        GroupRef::many(EventGroup { parts, ack }, n)
            .enumerate()
            .map(|(index, batch)| Event { batch, index })
            .collect()
    }

    pub(crate) fn new(
        metadata: Metadata,
        data: DataView,
        partition: usize,
        id: EventId,
        ack: Option<Arc<dyn AckSink>>,
    ) -> Self {
        let mut parts = EventParts::new(partition, std::iter::once(id));
        *parts.metadata_mut(0) = metadata;
        if !data.segments().is_empty() {
            parts.set_data(0, data);
        }
        Event::batch(parts, ack).pop().expect("one event made")
    }

    /// An end-of-stream marker for `partition` (id [`NO_MORE_EVENTS`]).
    pub fn end_of_stream(partition: usize) -> Self {
        Event::new(
            Metadata::default(),
            DataView::new(),
            partition,
            NO_MORE_EVENTS,
            None,
        )
    }

    /// A step marker for `partition`: every producer has closed `step` (id
    /// [`STEP_COMPLETE`], metadata `{"$diaspora": {"step_complete": step}}`).
    pub(crate) fn step_complete(step: u64, partition: usize) -> Self {
        Event::new(
            Metadata::new(serde_json::json!({CONTROL_KEY: {"step_complete": step}})),
            DataView::new(),
            partition,
            STEP_COMPLETE,
            None,
        )
    }

    /// For a step marker, the step that every producer of the topic has now closed over this
    /// consumer's partitions (and with it every earlier step): every event of those steps has
    /// been delivered before the marker. `None` for other events.
    pub fn completed_step(&self) -> Option<u64> {
        if self.id() != STEP_COMPLETE {
            return None;
        }
        self.metadata().json()[CONTROL_KEY]["step_complete"].as_u64()
    }

    /// Whether the event came from a consumer (markers made by the consumer itself did not).
    pub(crate) fn has_consumer(&self) -> bool {
        self.batch.ack.is_some()
    }

    /// Returns an event claimed by a pull that no wait returned to its consumer's queue.
    pub(crate) fn give_back(self) {
        if let Some(sink) = self.batch.ack.clone() {
            sink.give_back(self);
        }
    }

    /// The metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.batch.parts.metadata[self.index]
    }

    /// The data that the consumer's data selector chose (all of it by default).
    pub fn data(&self) -> &DataView {
        self.batch.parts.data.get(self.index).unwrap_or(&NO_DATA)
    }

    /// Index of the partition the event came from.
    pub fn partition(&self) -> usize {
        self.batch.parts.partition
    }

    /// Event id within its partition (0-based), or [`NO_MORE_EVENTS`] / [`STEP_COMPLETE`] for
    /// markers.
    pub fn id(&self) -> EventId {
        self.batch.parts.ids[self.index]
    }

    /// True for the end-of-stream marker.
    pub fn is_end_of_stream(&self) -> bool {
        self.id() == NO_MORE_EVENTS
    }

    /// Records that this event and every earlier event of its partition have been processed by
    /// this consumer's name. A consumer restarted with the same name starts right after it.
    pub fn acknowledge(&self) -> Result<()> {
        let id = self.id();
        match &self.batch.ack {
            Some(sink) if id != NO_MORE_EVENTS && id != STEP_COMPLETE => {
                sink.acknowledge(self.partition(), id)
            }
            _ => Ok(()),
        }
    }

    /// Splits the event into its metadata and data (copying the metadata unless this is the
    /// last handle on its batch; the data is shared, never copied).
    pub fn into_parts(self) -> (Metadata, DataView) {
        let index = self.index;
        match self.batch.try_unwrap() {
            Ok(mut group) => {
                let parts = &mut group.parts;
                let data = if index < parts.data.len() {
                    parts.data.swap_remove(index)
                } else {
                    DataView::new()
                };
                (parts.metadata.swap_remove(index), data)
            }
            Err(shared) => {
                let event = Event {
                    batch: shared,
                    index,
                };
                (event.metadata().clone(), event.data().clone())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_byte_is_found_at_every_position_of_every_length() {
        for len in 0..80 {
            let mut text = vec![b'a'; len];
            assert!(!contains_byte(&text, b'$'), "none in {len} bytes");
            for at in 0..len {
                text[at] = b'$';
                assert!(contains_byte(&text, b'$'), "at {at} of {len}");
                // Only its own byte counts, wherever the slice starts.
                assert!(!contains_byte(&text[at + 1..], b'$'), "after {at} of {len}");
                text[at] = b'a';
            }
        }
    }

    #[test]
    fn the_control_key_is_found_wherever_it_is_written() {
        let marker = end_of_stream_marker(1, 2).dump();
        for (text, holds) in [
            (marker.as_str(), true),
            (r#"{"a":"$","b":"$diaspor","$diaspora":1}"#, true),
            (r#"{"x":1,"$diaspora"#, true),
            (r#"{"price":"$5","$diasporb":2}"#, false),
            (r#"{"a":1}"#, false),
            ("", false),
        ] {
            assert_eq!(holds_control_key(text.as_bytes()), holds, "{text}");
            assert_eq!(text_may_hold_control_key(text.as_bytes()), holds, "{text}");
            let md = Metadata::parse(text).ok();
            if let Some(md) = md.filter(|_| text == marker) {
                assert!(parse_control(&md).is_some());
            }
        }
        // Through an escape, a key may spell it otherwise: the producer parses such texts.
        let escaped = r#"{"\u0024diaspora":1}"#;
        assert!(!holds_control_key(escaped.as_bytes()));
        assert!(text_may_hold_control_key(escaped.as_bytes()));
        // Text without the key is never parsed to look for markers.
        let plain = Metadata::checked_text(bytes::Bytes::from_static(br#"{"a":1}"#));
        assert!(parse_control(&plain).is_none());
        assert!(plain.unparsed_text().is_some());
        let marker = Metadata::checked_text(bytes::Bytes::from(marker.into_bytes()));
        assert!(parse_control(&marker).is_some());
    }

    /// The group's count: events made together, their clones dropped on several threads, and
    /// an `into_parts` that finds other handles: the group goes back to its sink once, after
    /// the last handle, and never before.
    #[test]
    fn a_batch_goes_back_to_its_sink_once_after_its_last_event() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        #[derive(Default)]
        struct Counting(AtomicUsize);
        impl AckSink for Counting {
            fn acknowledge(&self, _: usize, _: EventId) -> Result<()> {
                Ok(())
            }
            fn recycle(&self, parts: EventParts) {
                assert_eq!(parts.len(), 0, "emptied before it comes back");
                self.0.fetch_add(1, Ordering::SeqCst);
            }
            fn give_back(&self, _: Event) {}
        }
        for round in 0..200 {
            let sink = Arc::new(Counting::default());
            let events = Event::batch(
                EventParts::new(0, 0..64),
                Some(sink.clone() as Arc<dyn AckSink>),
            );
            let clones: Vec<Event> = events.iter().step_by(7).cloned().collect();
            let (a, b) = events.split_at(32);
            let (a, b) = (a.to_vec(), b.to_vec());
            drop(events);
            let t1 = std::thread::spawn(move || drop(a));
            let t2 = std::thread::spawn(move || drop(b));
            t1.join().unwrap();
            t2.join().unwrap();
            assert_eq!(
                sink.0.load(Ordering::SeqCst),
                0,
                "round {round}: clones still alive"
            );
            let mut clones = clones.into_iter();
            let first = clones.next().unwrap();
            drop(first.into_parts());
            assert_eq!(sink.0.load(Ordering::SeqCst), 0);
            drop(clones);
            assert_eq!(sink.0.load(Ordering::SeqCst), 1, "round {round}");
        }
        let sink = Arc::new(Counting::default());
        assert!(Event::batch(
            EventParts::new(0, 0..0),
            Some(sink.clone() as Arc<dyn AckSink>)
        )
        .is_empty());
        assert_eq!(
            sink.0.load(Ordering::SeqCst),
            1,
            "an empty batch's parts come back too"
        );
    }

    #[test]
    fn events_of_a_batch_share_one_group_and_split_into_their_own_parts() {
        let mut parts = EventParts::new(1, 10..13);
        for i in 0..3u64 {
            *parts.metadata_mut(i as usize) = Metadata::new(serde_json::json!({"i": i}));
            // The middle event has no data.
            if i != 1 {
                parts.set_data(i as usize, DataView::from(vec![i as u8; 4]));
            }
        }
        let mut events = Event::batch(parts, None);
        assert_eq!(events[1].data().size(), 0);
        assert_eq!(events[2].data().size(), 4);
        assert!(events.iter().all(|e| e.partition() == 1));
        assert_eq!(
            events.iter().map(Event::id).collect::<Vec<_>>(),
            vec![10, 11, 12]
        );
        assert!(GroupRef::ptr_eq(&events[0].batch, &events[2].batch));
        // With other events of the batch alive, the parts are copies of the right event's.
        let last = events.pop().unwrap();
        let (md, data) = last.into_parts();
        assert_eq!(md.json()["i"], 2);
        assert_eq!(data.to_vec(), vec![2u8; 4]);
        // The last handle moves its event's parts out.
        let first = events.remove(0);
        drop(events);
        let (md, data) = first.into_parts();
        assert_eq!(md.json()["i"], 0);
        assert_eq!(data.to_vec(), vec![0u8; 4]);
        assert!(Event::end_of_stream(3).is_end_of_stream());
        assert!(Event::end_of_stream(3).acknowledge().is_ok());
    }
}
