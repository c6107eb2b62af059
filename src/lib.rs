//! # diaspora-stream
//!
//! Stream events between the programs of an HPC workflow: simulation ranks produce, analysis
//! ranks consume, through *topics* split into *partitions*. This crate implements the Diaspora
//! Stream API in Rust.
//!
//! An [`Event`] is a small JSON [`Metadata`] part plus an optional, possibly large, data part
//! ([`DataView`]) that is never copied by the library on the way out, and on the way in is read
//! (only the parts a consumer selects with a [`DataDescriptor`]) straight into memory the
//! application provides.
//!
//! ```
//! use diaspora_stream::{Driver, BatchSize, DataView};
//! use serde_json::json;
//! use std::time::Duration;
//!
//! # fn main() -> diaspora_stream::Result<()> {
//! # let dir = tempfile::tempdir().unwrap();
//! let driver = Driver::new("files", &json!({"root_path": dir.path()}))?;
//! driver.create_topic("steps", &json!({"num_partitions": 2}))?;
//! let topic = driver.open_topic("steps")?;
//!
//! let producer = topic.producer().batch_size(BatchSize::Fixed(64)).build()?;
//! let id = producer.push(json!({"step": 1}), DataView::from(vec![1u8, 2, 3]));
//! producer.flush().wait()?;
//! assert_eq!(id.wait()?, 0);
//!
//! let consumer = topic.consumer("analysis").build()?;
//! let event = consumer.pull().wait_timeout(Duration::from_secs(5))?.expect("an event");
//! assert_eq!(event.metadata().json()["step"], 1);
//! assert_eq!(event.data().to_vec(), vec![1, 2, 3]);
//! event.acknowledge()?; // a consumer named "analysis" restarts after this event
//! # Ok(()) }
//! ```
//!
//! Layers: core types ([`Metadata`], [`DataView`], [`DataDescriptor`], [`Event`], [`Future`]),
//! the topic pipeline ([`components`]), the engines ([`Producer`], [`Consumer`]) and the drivers
//! ([`driver`], [`drivers::files`]).

#![warn(missing_docs)]

#[cfg(feature = "argobots")]
pub mod argobots;
pub mod backend;
pub mod components;
pub mod consumer;
pub mod data_view;
pub mod descriptor;
pub mod driver;
pub mod drivers;
mod error;
pub mod event;
pub mod future;
#[cfg(feature = "hdf5")]
pub mod hdf5;
pub mod json;
pub mod margo;
#[cfg(feature = "mercury")]
pub mod mercury;
pub mod metadata;
#[cfg(feature = "mpi")]
pub mod mpi;
pub mod options;
pub mod plugin;
pub mod producer;
mod signal;
pub mod thread_pool;
pub mod topic;
pub mod types;

pub use backend::{DriverBackend, TopicBackend};
pub use components::{PartitionSelector, Serializer, TopicComponents, Validator};
pub use consumer::{
    Consumer, ConsumerBuilder, DataAllocator, DataSelector, Flow, ProcessOptions, StartPosition,
};
pub use data_view::{Allocation, DataBuffer, DataView};
pub use descriptor::{DataDescriptor, Selection};
pub use driver::Driver;
pub use error::{Error, LostProducer, Result};
pub use event::Event;
pub use future::Future;
pub use metadata::{Metadata, PartitionInfo};
pub use producer::{OnFull, Producer, ProducerBuilder};
#[cfg(feature = "rayon")]
pub use thread_pool::RayonThreadPool;
pub use thread_pool::{StdThreadPool, ThreadPool};
pub use topic::TopicHandle;
pub use types::{
    BatchSize, EventId, MaxNumBatches, NumEvents, Ordering, ThreadCount, NO_MORE_EVENTS,
    STEP_COMPLETE,
};
