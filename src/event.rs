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
#[derive(Clone)]
pub struct Event {
    inner: Arc<EventInner>,
}

struct EventInner {
    metadata: Metadata,
    data: DataView,
    partition: usize,
    id: EventId,
    ack: Option<Arc<dyn AckSink>>,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("partition", &self.inner.partition)
            .field("id", &self.inner.id)
            .field("metadata", &self.inner.metadata)
            .field("data", &self.inner.data)
            .finish()
    }
}

impl Event {
    pub(crate) fn new(
        metadata: Metadata,
        data: DataView,
        partition: usize,
        id: EventId,
        ack: Option<Arc<dyn AckSink>>,
    ) -> Self {
        Event {
            inner: Arc::new(EventInner {
                metadata,
                data,
                partition,
                id,
                ack,
            }),
        }
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
        &self.inner.metadata
    }

    /// The data that the consumer's data selector chose (all of it by default).
    pub fn data(&self) -> &DataView {
        &self.inner.data
    }

    /// Index of the partition the event came from.
    pub fn partition(&self) -> usize {
        self.inner.partition
    }

    /// Event id within its partition (0-based), or [`NO_MORE_EVENTS`].
    pub fn id(&self) -> EventId {
        self.inner.id
    }

    /// True for the end-of-stream marker.
    pub fn is_end_of_stream(&self) -> bool {
        self.inner.id == NO_MORE_EVENTS
    }

    /// Records that this event and every earlier event of its partition have been processed by
    /// this consumer's name. A consumer restarted with the same name starts right after it.
    pub fn acknowledge(&self) -> Result<()> {
        match &self.inner.ack {
            Some(sink) if self.inner.id != NO_MORE_EVENTS => {
                sink.acknowledge(self.inner.partition, self.inner.id)
            }
            _ => Ok(()),
        }
    }

    /// Splits the event into its metadata and data (copying them only if the event is shared).
    pub fn into_parts(self) -> (Metadata, DataView) {
        match Arc::try_unwrap(self.inner) {
            Ok(inner) => (inner.metadata, inner.data),
            Err(shared) => (shared.metadata.clone(), shared.data.clone()),
        }
    }
}
