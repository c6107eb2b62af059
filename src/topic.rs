//! Open topics: [`Driver::open_topic`] and the [`TopicHandle`] it returns.
//!
//! A topic handle makes producers and consumers with [`TopicHandle::producer`] and
//! [`TopicHandle::consumer`]; those two live with the engines they build
//! ([`crate::producer`], [`crate::consumer`]), so that this module depends on neither.

use crate::backend::TopicBackend;
use crate::components::{PartitionSelector, Serializer, TopicComponents, Validator};
use crate::driver::Driver;
use crate::error::Result;
use crate::metadata::PartitionInfo;
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
}

impl Driver {
    /// Opens an existing topic.
    pub fn open_topic(&self, name: &str) -> Result<TopicHandle> {
        let backend = self.backend().open_topic(name)?;
        Ok(TopicHandle::new(self.clone(), backend))
    }
}
