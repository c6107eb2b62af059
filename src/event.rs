//! Events delivered to consumers.

use crate::data_view::DataView;
use crate::error::Result;
use crate::metadata::Metadata;
use crate::types::{EventId, NO_MORE_EVENTS};
use std::sync::Arc;

/// Receives acknowledgements of events (implemented by the consumer engine).
pub(crate) trait AckSink: Send + Sync {
    fn acknowledge(&self, partition: usize, id: EventId) -> Result<()>;
}

/// One event read from a topic.
#[derive(Clone)]
pub struct Event {
    pub(crate) metadata: Metadata,
    pub(crate) data: DataView,
    pub(crate) partition: usize,
    pub(crate) id: EventId,
    pub(crate) ack: Option<Arc<dyn AckSink>>,
}

impl std::fmt::Debug for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Event")
            .field("partition", &self.partition)
            .field("id", &self.id)
            .field("metadata", &self.metadata)
            .field("data", &self.data)
            .finish()
    }
}

impl Event {
    /// An end-of-stream marker for `partition` (id [`NO_MORE_EVENTS`]).
    pub fn end_of_stream(partition: usize) -> Self {
        Event {
            metadata: Metadata::default(),
            data: DataView::new(),
            partition,
            id: NO_MORE_EVENTS,
            ack: None,
        }
    }

    /// The metadata.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The data that the consumer's data selector chose (all of it by default).
    pub fn data(&self) -> &DataView {
        &self.data
    }

    /// Index of the partition the event came from.
    pub fn partition(&self) -> usize {
        self.partition
    }

    /// Event id within its partition (0-based), or [`NO_MORE_EVENTS`].
    pub fn id(&self) -> EventId {
        self.id
    }

    /// True for the end-of-stream marker.
    pub fn is_end_of_stream(&self) -> bool {
        self.id == NO_MORE_EVENTS
    }

    /// Records that this event and every earlier event of its partition have been processed by
    /// this consumer's name. A consumer restarted with the same name starts right after it.
    pub fn acknowledge(&self) -> Result<()> {
        match &self.ack {
            Some(sink) if self.id != NO_MORE_EVENTS => sink.acknowledge(self.partition, self.id),
            _ => Ok(()),
        }
    }

    /// Splits the event into its metadata and data.
    pub fn into_parts(self) -> (Metadata, DataView) {
        (self.metadata, self.data)
    }
}
