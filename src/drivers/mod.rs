//! The built-in drivers. Each folder implements [`crate::backend::DriverBackend`] and
//! [`crate::backend::TopicBackend`]; `builtin()` is the one list of them that the registry of
//! [`crate::driver`] starts from.

use crate::backend::{DriverBackend, DriverFactory};
use std::sync::Arc;

pub mod files;
pub(crate) mod heartbeats;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod memory;
pub mod mofka;

/// The drivers compiled into this build, by name: `files` and `memory` always, `kafka` (alias `octopus`,
/// the C++ driver's name) with feature `kafka`, `mofka` with feature `mofka`.
pub(crate) fn builtin() -> Vec<(String, DriverFactory)> {
    #[allow(unused_mut)] // only the feature-gated drivers push
    let mut v: Vec<(String, DriverFactory)> = vec![(
        "files".into(),
        Arc::new(|o: &serde_json::Value| {
            Ok(Arc::new(files::FilesDriver::new(o)?) as Arc<dyn DriverBackend>)
        }),
    )];
    v.push((
        "memory".into(),
        Arc::new(|o: &serde_json::Value| {
            Ok(Arc::new(memory::MemoryDriver::new(o)?) as Arc<dyn DriverBackend>)
        }),
    ));
    #[cfg(feature = "mofka")]
    v.push((
        "mofka".into(),
        Arc::new(|o: &serde_json::Value| {
            Ok(Arc::new(mofka::MofkaDriver::new(o)?) as Arc<dyn DriverBackend>)
        }),
    ));
    #[cfg(feature = "kafka")]
    for name in ["kafka", "octopus"] {
        v.push((
            name.into(),
            Arc::new(|o: &serde_json::Value| {
                Ok(Arc::new(kafka::KafkaDriver::new(o)?) as Arc<dyn DriverBackend>)
            }),
        ));
    }
    v
}
