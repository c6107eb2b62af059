//! The [`Driver`] handle and the registry of drivers by name.
//!
//! [`Driver::new`] looks drivers up by name; the built-in ones are listed once, in
//! [`crate::drivers`], applications add others with [`register_driver`], and names of the form
//! `NAME:LIBRARY` load drivers from shared libraries ([`crate::plugin`]). What a driver
//! implements is the API of [`crate::backend`].

use crate::backend::DriverBackend;
use crate::backend::DriverFactory;
use crate::components::TopicComponents;
use crate::error::{Error, Result};
use crate::thread_pool::{std_pool, ThreadPool};
use crate::types::ThreadCount;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, OnceLock, RwLock};

fn drivers() -> &'static RwLock<HashMap<String, DriverFactory>> {
    static R: OnceLock<RwLock<HashMap<String, DriverFactory>>> = OnceLock::new();
    R.get_or_init(|| RwLock::new(crate::drivers::builtin().into_iter().collect()))
}

/// Registers (or replaces) a driver type under `name`.
pub fn register_driver(name: &str, factory: DriverFactory) {
    drivers()
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .insert(name.to_string(), factory);
}

/// Names of the registered drivers.
pub fn registered_drivers() -> Vec<String> {
    let mut v: Vec<String> = drivers()
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .keys()
        .cloned()
        .collect();
    v.sort();
    v
}

/// A handle on a driver instance; cheap to clone.
#[derive(Clone)]
pub struct Driver {
    backend: Arc<dyn DriverBackend>,
    default_pool: Arc<dyn ThreadPool>,
}

impl std::fmt::Debug for Driver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Driver")
            .field("name", &self.backend.name())
            .finish()
    }
}

impl Driver {
    /// Creates a driver by registered name with its JSON options, e.g.
    /// `Driver::new("files", &json!({"root_path": "/scratch/topics"}))`.
    ///
    /// `name` may also be `NAME:LIBRARY`, as with the C++ API: the driver `NAME` is then loaded
    /// from the shared library `LIBRARY` (see [`crate::plugin`]) unless a driver of that name is
    /// already registered, as the built-in ones are.
    pub fn new(name: &str, options: &Value) -> Result<Driver> {
        let (key, library) = name.split_once(':').unwrap_or((name, ""));
        let registered = drivers()
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(key);
        if !registered && !library.is_empty() {
            register_driver(key, crate::plugin::load_driver(key, library)?);
        }
        let factory = drivers()
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(key)
            .cloned()
            .ok_or_else(|| Error::UnknownComponent {
                kind: "driver",
                name: key.to_string(),
            })?;
        Ok(Driver::from_backend(factory(options)?))
    }

    /// Wraps an existing backend.
    pub fn from_backend(backend: Arc<dyn DriverBackend>) -> Driver {
        Driver {
            backend,
            default_pool: std_pool(0),
        }
    }

    /// The backend behind this handle.
    pub fn backend(&self) -> &Arc<dyn DriverBackend> {
        &self.backend
    }

    /// The backend as its concrete type, for driver-specific operations (for example
    /// `driver.backend_as::<MofkaDriver>()` to add a partition on a chosen server); `None` if
    /// this driver is of another type.
    pub fn backend_as<T: 'static>(&self) -> Option<&T> {
        self.backend.as_any()?.downcast_ref::<T>()
    }

    /// Creates a topic with default components. `options` are driver-specific
    /// (`{"num_partitions": 4}` for the files driver).
    pub fn create_topic(&self, name: &str, options: &Value) -> Result<()> {
        self.create_topic_with(name, options, TopicComponents::default())
    }

    /// Creates a topic with the given validator, partition selector and serializer.
    pub fn create_topic_with(
        &self,
        name: &str,
        options: &Value,
        components: TopicComponents,
    ) -> Result<()> {
        self.backend.create_topic(name, options, &components)
    }

    /// True if the topic exists.
    pub fn topic_exists(&self, name: &str) -> Result<bool> {
        self.backend.topic_exists(name)
    }

    /// Every topic with its description.
    pub fn list_topics(&self) -> Result<BTreeMap<String, Value>> {
        self.backend.list_topics()
    }

    /// The pool producers and consumers use when none is given (0 threads: inline).
    pub fn default_thread_pool(&self) -> Arc<dyn ThreadPool> {
        self.default_pool.clone()
    }

    /// A new std-thread pool with `count` workers.
    pub fn make_thread_pool(&self, count: ThreadCount) -> Arc<dyn ThreadPool> {
        std_pool(count.0)
    }
}
