//! Open topics.

use crate::components::{PartitionSelector, Serializer, TopicComponents, Validator};
use crate::consumer::ConsumerBuilder;
use crate::driver::{Driver, TopicBackend};
use crate::metadata::PartitionInfo;
use crate::producer::ProducerBuilder;
use std::sync::Arc;

/// An open topic: its partitions, its components and a way to make producers and consumers.
/// Cheap to clone.
#[derive(Clone)]
pub struct TopicHandle {
    pub(crate) inner: Arc<TopicInner>,
}

pub(crate) struct TopicInner {
    pub(crate) driver: Driver,
    pub(crate) backend: Arc<dyn TopicBackend>,
    pub(crate) components: TopicComponents,
    pub(crate) partitions: Vec<PartitionInfo>,
}

impl std::fmt::Debug for TopicHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TopicHandle")
            .field("name", &self.name())
            .field("partitions", &self.inner.partitions.len())
            .finish()
    }
}

impl PartialEq for TopicHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl TopicHandle {
    pub(crate) fn new(driver: Driver, backend: Arc<dyn TopicBackend>) -> Self {
        let components = backend.components();
        let partitions = backend.partitions();
        components.partition_selector.set_partitions(&partitions);
        TopicHandle {
            inner: Arc::new(TopicInner {
                driver,
                backend,
                components,
                partitions,
            }),
        }
    }

    /// Topic name.
    pub fn name(&self) -> &str {
        self.inner.backend.name()
    }

    /// The driver this topic was opened with.
    pub fn driver(&self) -> &Driver {
        &self.inner.driver
    }

    /// The partitions (one `PartitionInfo` each).
    pub fn partitions(&self) -> &[PartitionInfo] {
        &self.inner.partitions
    }

    /// Number of partitions.
    pub fn num_partitions(&self) -> usize {
        self.inner.partitions.len()
    }

    /// The topic's validator.
    pub fn validator(&self) -> &Arc<dyn Validator> {
        &self.inner.components.validator
    }

    /// The topic's partition selector.
    pub fn partition_selector(&self) -> &Arc<dyn PartitionSelector> {
        &self.inner.components.partition_selector
    }

    /// The topic's serializer.
    pub fn serializer(&self) -> &Arc<dyn Serializer> {
        &self.inner.components.serializer
    }

    /// The driver-side handle (for tools that work below the engines).
    pub fn backend(&self) -> &Arc<dyn TopicBackend> {
        &self.inner.backend
    }

    /// Starts building a producer (see [`ProducerBuilder`] for the options).
    pub fn producer(&self) -> ProducerBuilder {
        ProducerBuilder::new(self.clone())
    }

    /// Starts building a consumer named `name`. Consumers with the same name share acknowledged
    /// positions: a consumer restarted with the same name resumes where the last one stopped.
    pub fn consumer(&self, name: &str) -> ConsumerBuilder {
        ConsumerBuilder::new(self.clone(), name)
    }
}
