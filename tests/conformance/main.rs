//! Conformance checklist of the Diaspora Stream API, ported from the C++ reference's test suite
//! (behaviour notes §5.2 and §5.3) and extended with the semantics the Rust port guarantees
//! (acknowledgements, targets, range-checked partition selectors, validators that reject).
//!
//! Every test runs against the driver named by `DIASPORA_TEST_BACKEND` (default `files`) with the
//! options in `DIASPORA_TEST_BACKEND_ARGS`; topics are created with `DIASPORA_TEST_TOPIC_ARGS`
//! (tests that depend on a partition count merge their own `num_partitions` into those). Topic
//! names are unique so that drivers which keep topics across runs work too.
//!
//! Timeouts are deadlines for a loaded machine, never speed assertions.

#[path = "../common/mod.rs"]
mod common;

use common::{backend_name, test_driver, topic_args, topic_args_with, unique_topic};
use diaspora_stream::components::{
    register_partition_selector, validator_from_config, PartitionSelector, TopicComponents,
};
use diaspora_stream::thread_pool::Job;
use diaspora_stream::{
    Allocation, BatchSize, Consumer, DataDescriptor, DataView, Driver, Error, Event, EventId, Flow,
    Future, MaxNumBatches, Metadata, NumEvents, Ordering, PartitionInfo, ProcessOptions, Producer,
    ThreadCount, ThreadPool, TopicHandle, NO_MORE_EVENTS,
};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering as AtomicOrdering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

/// Deadline for one blocking operation (a push, a flush, a batch of pulls).
const WAIT: Duration = Duration::from_secs(30);
/// Deadline for the long concurrent scenarios.
const LONG_WAIT: Duration = Duration::from_secs(60);
/// One pull attempt, as in the reference tests (`pull().wait(100)`).
const POLL: Duration = Duration::from_millis(100);

const ALPHA: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

mod acks;
mod concurrency;
mod consumers;
mod creation;
mod data_selection;
mod driver;
mod futures;
mod helpers;
mod iteration;
mod pools;
mod process;
mod producers;
mod targets;
mod validators;

use helpers::*;
