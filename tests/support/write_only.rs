//! A driver serving one write-only topic that a test implements (`tests/producer_memory.rs`,
//! `tests/producer_pipeline.rs`): the test writes the topic's appends; what a producer never
//! calls is a no-op, given by [`write_only_topic!`].
#![allow(dead_code)]

use diaspora_stream::backend::{DriverBackend, TopicBackend};
use diaspora_stream::{Driver, Result, TopicComponents};
use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::Arc;

/// The `TopicBackend` methods a producer never calls (reads and offsets), as no-ops, and a
/// `sync` that has nothing to do; for inside an `impl TopicBackend` block.
macro_rules! write_only_topic {
    () => {
        fn sync(&self, _partitions: &[usize]) -> diaspora_stream::Result<()> {
            Ok(())
        }
        fn fetch(
            &self,
            _: usize,
            _: diaspora_stream::EventId,
            _: usize,
            _: bool,
        ) -> diaspora_stream::Result<Vec<diaspora_stream::backend::StoredEvent>> {
            Ok(Vec::new())
        }
        fn read_data(
            &self,
            _: usize,
            _: &diaspora_stream::backend::StoredEvent,
            _: &[(u64, u64)],
            _: &mut [&mut [u8]],
        ) -> diaspora_stream::Result<()> {
            Ok(())
        }
        fn load_offset(
            &self,
            _: &str,
            _: usize,
        ) -> diaspora_stream::Result<diaspora_stream::EventId> {
            Ok(0)
        }
        fn store_offset(
            &self,
            _: &str,
            _: usize,
            _: diaspora_stream::EventId,
        ) -> diaspora_stream::Result<()> {
            Ok(())
        }
    };
}

/// Every topic name opens `topic`.
struct OneTopic(Arc<dyn TopicBackend>);

impl DriverBackend for OneTopic {
    fn name(&self) -> &'static str {
        "one-topic"
    }
    fn create_topic(&self, _: &str, _: &Value, _: &TopicComponents) -> Result<()> {
        Ok(())
    }
    fn open_topic(&self, _: &str) -> Result<Arc<dyn TopicBackend>> {
        Ok(self.0.clone())
    }
    fn topic_exists(&self, _: &str) -> Result<bool> {
        Ok(true)
    }
    fn list_topics(&self) -> Result<BTreeMap<String, Value>> {
        Ok(BTreeMap::new())
    }
}

/// A driver whose every topic is `topic`.
pub fn driver_of(topic: Arc<dyn TopicBackend>) -> Driver {
    Driver::from_backend(Arc::new(OneTopic(topic)))
}
