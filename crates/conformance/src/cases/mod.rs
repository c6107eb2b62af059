//! The cases of the kit, one module per area of the API, and the helpers they share. Each case
//! is a plain function that panics on failure; [`crate::conformance_tests!`] turns them into
//! `#[test]`s. They reach the driver under test through [`test_driver`], which reads the
//! [`crate::Target`] set by [`crate::run`].

pub use crate::target::{backend_name, test_driver, topic_args, topic_args_with, unique_topic};
use diaspora_stream::components::{
    register_partition_selector, validator_from_config, PartitionSelector, TopicComponents,
};
use diaspora_stream::thread_pool::Job;
use diaspora_stream::{
    Allocation, BatchSize, Consumer, DataDescriptor, DataView, Driver, Error, Event, EventId, Flow,
    Future, MaxNumBatches, Metadata, NumEvents, OnFull, Ordering, PartitionInfo, ProcessOptions,
    Producer, ThreadCount, ThreadPool, TopicHandle, NO_MORE_EVENTS,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Deadline for one blocking operation (a push, a flush, a batch of pulls). Deadlines are for a
/// loaded machine, never speed assertions.
pub const WAIT: Duration = Duration::from_secs(30);
/// Deadline for the long concurrent scenarios.
pub const LONG_WAIT: Duration = Duration::from_secs(60);
/// One pull attempt, as in the reference tests (`pull().wait(100)`).
pub const POLL: Duration = Duration::from_millis(100);

const ALPHA: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

pub mod acks;
pub mod concurrency;
pub mod consumers;
pub mod creation;
pub mod data_selection;
pub mod driver;
pub mod futures;
pub mod helpers;
pub mod iteration;
pub mod liveness;
pub mod process;
pub mod producers;
pub mod steps;
pub mod targets;
pub mod validators;

pub use helpers::*;
