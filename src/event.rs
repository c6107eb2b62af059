//! Events delivered to consumers.

use crate::data_view::DataView;
use crate::error::Result;
use crate::metadata::Metadata;
use crate::types::{EventId, NO_MORE_EVENTS};
use std::sync::Arc;

/// Key of the reserved metadata object used for control events such as end-of-stream markers.
pub const CONTROL_KEY: &str = "$diaspora";

/// Metadata of the end-of-stream marker of producer `index` of `count`.
pub(crate) fn end_of_stream_marker(index: usize, count: usize) -> Metadata {
    Metadata::new(serde_json::json!({
        CONTROL_KEY: {"end_of_stream": {"producer": index, "producers": count}}
    }))
}

/// If `metadata` is an end-of-stream marker, its (producer index, producer count).
pub(crate) fn parse_end_of_stream_marker(metadata: &Metadata) -> Option<(u64, u64)> {
    // Metadata still in its text form is only parsed if it holds the marker's key (markers are
    // written by this library, whose JSON writer never escapes it).
    if let Some(text) = metadata.unparsed_text() {
        // Building a searcher costs more than searching 100 bytes: build it once.
        static FINDER: std::sync::OnceLock<memchr::memmem::Finder<'static>> =
            std::sync::OnceLock::new();
        FINDER
            .get_or_init(|| memchr::memmem::Finder::new(CONTROL_KEY.as_bytes()))
            .find(text)?;
    }
    let m = metadata
        .json()
        .as_object()?
        .get(CONTROL_KEY)?
        .get("end_of_stream")?;
    Some((m.get("producer")?.as_u64()?, m.get("producers")?.as_u64()?))
}

/// Receives acknowledgements of events (implemented by the consumer engine).
pub(crate) trait AckSink: Send + Sync {
    fn acknowledge(&self, partition: usize, id: EventId) -> Result<()>;
}

/// One event read from a topic. Cloning is cheap (the content is shared).
///
/// The events of one fetched batch share one allocation: an event keeps its batch's events
/// alive (as it keeps the buffer its data was read into), and making or dropping an event
/// costs no allocation of its own.
#[derive(Clone)]
pub struct Event {
    batch: Arc<EventGroup>,
    index: usize,
}

/// Events made together, and where their acknowledgements go.
struct EventGroup {
    events: Vec<EventParts>,
    ack: Option<Arc<dyn AckSink>>,
}

/// The parts of one event, as [`Event::batch`] takes them.
pub(crate) struct EventParts {
    pub metadata: Metadata,
    pub data: DataView,
    pub partition: usize,
    pub id: EventId,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let e = self.inner();
        f.debug_struct("Event")
            .field("partition", &e.partition)
            .field("id", &e.id)
            .field("metadata", &e.metadata)
            .field("data", &e.data)
            .finish()
    }
}

impl Event {
    fn inner(&self) -> &EventParts {
        &self.batch.events[self.index]
    }

    /// Events made from `parts` in one allocation, acknowledged through `ack`.
    pub(crate) fn batch(parts: Vec<EventParts>, ack: Option<Arc<dyn AckSink>>) -> Vec<Event> {
        let n = parts.len();
        let group = Arc::new(EventGroup { events: parts, ack });
        (0..n)
            .map(|index| Event {
                batch: group.clone(),
                index,
            })
            .collect()
    }

    pub(crate) fn new(
        metadata: Metadata,
        data: DataView,
        partition: usize,
        id: EventId,
        ack: Option<Arc<dyn AckSink>>,
    ) -> Self {
        let parts = EventParts {
            metadata,
            data,
            partition,
            id,
        };
        Event::batch(vec![parts], ack)
            .pop()
            .expect("one event made")
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

    /// The metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.inner().metadata
    }

    /// The data that the consumer's data selector chose (all of it by default).
    pub fn data(&self) -> &DataView {
        &self.inner().data
    }

    /// Index of the partition the event came from.
    pub fn partition(&self) -> usize {
        self.inner().partition
    }

    /// Event id within its partition (0-based), or [`NO_MORE_EVENTS`].
    pub fn id(&self) -> EventId {
        self.inner().id
    }

    /// True for the end-of-stream marker.
    pub fn is_end_of_stream(&self) -> bool {
        self.inner().id == NO_MORE_EVENTS
    }

    /// Records that this event and every earlier event of its partition have been processed by
    /// this consumer's name. A consumer restarted with the same name starts right after it.
    pub fn acknowledge(&self) -> Result<()> {
        let e = self.inner();
        match &self.batch.ack {
            Some(sink) if e.id != NO_MORE_EVENTS => sink.acknowledge(e.partition, e.id),
            _ => Ok(()),
        }
    }

    /// Splits the event into its metadata and data (copying the metadata unless this is the
    /// last handle on its batch; the data is shared, never copied).
    pub fn into_parts(self) -> (Metadata, DataView) {
        let index = self.index;
        match Arc::try_unwrap(self.batch) {
            Ok(mut group) => {
                let e = group.events.swap_remove(index);
                (e.metadata, e.data)
            }
            Err(shared) => {
                let e = &shared.events[index];
                (e.metadata.clone(), e.data.clone())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_of_a_batch_share_one_group_and_split_into_their_own_parts() {
        let parts = (0..3u64)
            .map(|i| EventParts {
                metadata: Metadata::new(serde_json::json!({"i": i})),
                data: DataView::from(vec![i as u8; 4]),
                partition: 1,
                id: 10 + i,
            })
            .collect();
        let mut events = Event::batch(parts, None);
        assert_eq!(
            events.iter().map(Event::id).collect::<Vec<_>>(),
            vec![10, 11, 12]
        );
        assert!(Arc::ptr_eq(&events[0].batch, &events[2].batch));
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
