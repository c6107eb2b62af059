//! `Driver`, `TopicHandle`, `ThreadPool` and the topic components.

use crate::consumer::PyConsumer;
use crate::convert;
use crate::error::IntoPy;
use crate::producer::PyProducer;
use diaspora_stream::components::{
    partition_selector_from_config, serializer_from_config, validator_from_config,
};
use diaspora_stream::{
    BatchSize, Driver, MaxNumBatches, OnFull, Ordering, PartitionSelector, Serializer,
    StartPosition, ThreadCount, ThreadPool, TopicComponents, TopicHandle, Validator,
};
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList};
use std::sync::Arc;
use std::time::Duration;

/// Whether events of one partition keep their push order (`Strict`) or may be reordered within
/// a batch (`Loose`).
#[pyclass(
    name = "Ordering",
    module = "diaspora_stream.api",
    eq,
    eq_int,
    frozen,
    from_py_object
)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum PyOrdering {
    /// Events of a partition are stored in push order.
    Strict,
    /// Events of a batch may be reordered.
    Loose,
}

/// A pool of threads on which producers and consumers run their work.
#[pyclass(
    name = "ThreadPool",
    module = "diaspora_stream.api",
    frozen,
    from_py_object
)]
#[derive(Clone)]
pub struct PyThreadPool {
    pub inner: Arc<dyn ThreadPool>,
}

impl PyThreadPool {
    fn key(&self) -> usize {
        Arc::as_ptr(&self.inner) as *const () as usize
    }
}

#[pymethods]
impl PyThreadPool {
    /// Number of threads (0: work runs in the calling thread).
    #[getter]
    fn thread_count(&self) -> usize {
        self.inner.thread_count()
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyThreadPool>()
            .map(|o| o.get().key() == self.key())
            .unwrap_or(false)
    }

    fn __hash__(&self) -> u64 {
        self.key() as u64
    }

    fn __repr__(&self) -> String {
        format!("ThreadPool(thread_count={})", self.inner.thread_count())
    }
}

macro_rules! component {
    ($py_name:literal, $rust:ident, $trait:ident, $factory:ident, $doc:literal) => {
        #[doc = $doc]
        #[pyclass(name = $py_name, module = "diaspora_stream.api", frozen, from_py_object)]
        #[derive(Clone)]
        pub struct $rust {
            pub inner: Arc<dyn $trait>,
        }

        #[pymethods]
        impl $rust {
            /// Builds one from its configuration given as keyword arguments: `type` (default
            /// `"default"`, or `"name:library.so"`) and the type's own fields (e.g. `schema`).
            #[staticmethod]
            #[pyo3(signature = (**kwargs))]
            fn from_metadata(kwargs: Option<&Bound<'_, PyDict>>) -> PyResult<Self> {
                let config = convert::options(kwargs.map(|k| k.as_any()))?;
                Ok($rust {
                    inner: $factory(&config).py_err()?,
                })
            }

            /// The configuration that rebuilds this component (stored with the topic).
            #[getter]
            fn metadata<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
                convert::to_py(py, &self.inner.metadata())
            }

            fn __repr__(&self) -> String {
                format!("{}({})", $py_name, self.inner.metadata())
            }
        }
    };
}

component!(
    "Validator",
    PyValidator,
    Validator,
    validator_from_config,
    "Checks each event before it is pushed (`default`, `schema`, `eventbridge`)."
);
component!(
    "Serializer",
    PySerializer,
    Serializer,
    serializer_from_config,
    "Turns metadata into stored bytes and back (`default`, `schema`)."
);
component!(
    "PartitionSelector",
    PyPartitionSelector,
    PartitionSelector,
    partition_selector_from_config,
    "Chooses the partition of each pushed event (`default`: round robin)."
);

/// Entry point: a driver of the given backend (`files`, `memory`, `kafka`, `mofka`, or
/// `name:library.so` for a driver built outside this package) with its options.
#[pyclass(name = "Driver", module = "diaspora_stream.api", frozen)]
pub struct PyDriver {
    pub inner: Driver,
}

#[pymethods]
impl PyDriver {
    #[new]
    #[pyo3(signature = (*, backend, options = None))]
    fn new(py: Python<'_>, backend: &str, options: Option<&Bound<'_, PyAny>>) -> PyResult<Self> {
        let options = convert::options(options)?;
        let inner = py.detach(|| Driver::new(backend, &options)).py_err()?;
        Ok(PyDriver { inner })
    }

    /// Creates a topic (`options` are the driver's, e.g. `{"num_partitions": 4}`), with optional
    /// components. Raises if it exists.
    #[pyo3(signature = (name, *, options = None, validator = None, partition_selector = None, serializer = None))]
    fn create_topic(
        &self,
        py: Python<'_>,
        name: &str,
        options: Option<&Bound<'_, PyAny>>,
        validator: Option<PyValidator>,
        partition_selector: Option<PyPartitionSelector>,
        serializer: Option<PySerializer>,
    ) -> PyResult<()> {
        let options = convert::options(options)?;
        let mut components = TopicComponents::default();
        if let Some(v) = validator {
            components.validator = v.inner;
        }
        if let Some(s) = partition_selector {
            components.partition_selector = s.inner;
        }
        if let Some(s) = serializer {
            components.serializer = s.inner;
        }
        py.detach(|| self.inner.create_topic_with(name, &options, components))
            .py_err()
    }

    /// Opens an existing topic.
    fn open_topic(&self, py: Python<'_>, name: &str) -> PyResult<PyTopicHandle> {
        let inner = py.detach(|| self.inner.open_topic(name)).py_err()?;
        Ok(PyTopicHandle { inner })
    }

    /// True if the topic exists.
    fn topic_exists(&self, py: Python<'_>, name: &str) -> PyResult<bool> {
        py.detach(|| self.inner.topic_exists(name)).py_err()
    }

    /// Every topic with its stored configuration: `{name: {...}}`.
    fn list_topics<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let topics = py.detach(|| self.inner.list_topics()).py_err()?;
        let out = PyDict::new(py);
        for (name, md) in topics {
            out.set_item(name, convert::to_py(py, &md)?)?;
        }
        Ok(out)
    }

    /// A new pool of `count` threads (0: work runs in the calling thread).
    fn make_thread_pool(&self, count: usize) -> PyThreadPool {
        PyThreadPool {
            inner: self.inner.make_thread_pool(ThreadCount(count)),
        }
    }

    /// The driver's shared pool.
    #[getter]
    fn default_thread_pool(&self) -> PyThreadPool {
        PyThreadPool {
            inner: self.inner.default_thread_pool(),
        }
    }

    fn __repr__(&self) -> String {
        format!("{:?}", self.inner)
    }
}

/// An open topic: makes producers and consumers.
#[pyclass(name = "TopicHandle", module = "diaspora_stream.api", frozen)]
#[derive(Clone)]
pub struct PyTopicHandle {
    pub inner: TopicHandle,
}

fn batch_size(raw: u64) -> BatchSize {
    BatchSize::from_raw(usize::try_from(raw).unwrap_or(usize::MAX))
}

fn max_num_batches(n: usize) -> PyResult<MaxNumBatches> {
    if n == 0 {
        return Err(crate::error::invalid_argument(
            "max_num_batches must be at least 1",
        ));
    }
    Ok(MaxNumBatches(n))
}

fn millis(name: &str, ms: Option<f64>) -> PyResult<Option<Duration>> {
    match ms {
        None => Ok(None),
        Some(v) if v.is_finite() && v >= 0.0 => Ok(Some(Duration::from_secs_f64(v / 1000.0))),
        Some(v) => Err(crate::error::invalid_argument(format!(
            "{name} must be a non-negative number of milliseconds, not {v}"
        ))),
    }
}

#[pymethods]
impl PyTopicHandle {
    /// The topic's name.
    #[getter]
    fn name(&self) -> &str {
        self.inner.name()
    }

    /// The partitions, one dict each (driver-specific information).
    #[getter]
    fn partitions<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = PyList::empty(py);
        for p in self.inner.partitions() {
            out.append(convert::to_py(py, p.json())?)?;
        }
        Ok(out)
    }

    /// The topic's validator.
    #[getter]
    fn validator(&self) -> PyValidator {
        PyValidator {
            inner: self.inner.validator().clone(),
        }
    }

    /// The topic's partition selector.
    #[getter]
    fn partition_selector(&self) -> PyPartitionSelector {
        PyPartitionSelector {
            inner: self.inner.partition_selector().clone(),
        }
    }

    /// The topic's serializer.
    #[getter]
    fn serializer(&self) -> PySerializer {
        PySerializer {
            inner: self.inner.serializer().clone(),
        }
    }

    /// A producer. Beyond the reference's arguments: `max_buffered_bytes` bounds the memory of
    /// events not yet stored, `on_full` is `"block"` (default) or `"error"`, and
    /// `push_timeout_ms` bounds how long a blocked push waits; `group=(index, count)` makes it
    /// producer `index` of `count` that close steps together.
    #[pyo3(signature = (name = "", *, batch_size = u64::MAX, max_num_batches = 2,
                        ordering = PyOrdering::Strict, thread_pool = None, options = None,
                        max_buffered_bytes = None, on_full = None, push_timeout_ms = None,
                        group = None))]
    #[allow(clippy::too_many_arguments)]
    fn producer(
        slf: &Bound<'_, Self>,
        name: &str,
        batch_size: u64,
        max_num_batches: usize,
        ordering: PyOrdering,
        thread_pool: Option<PyThreadPool>,
        options: Option<&Bound<'_, PyAny>>,
        max_buffered_bytes: Option<usize>,
        on_full: Option<&str>,
        push_timeout_ms: Option<f64>,
        group: Option<(usize, usize)>,
    ) -> PyResult<PyProducer> {
        let topic = slf.get();
        let mut b = topic
            .inner
            .producer()
            .name(name)
            .batch_size(self::batch_size(batch_size))
            .max_num_batches(self::max_num_batches(max_num_batches)?)
            .ordering(match ordering {
                PyOrdering::Strict => Ordering::Strict,
                PyOrdering::Loose => Ordering::Loose,
            })
            .options(convert::options(options)?);
        if let Some(p) = thread_pool {
            b = b.thread_pool(p.inner);
        }
        if let Some(m) = max_buffered_bytes {
            b = b.max_buffered_bytes(m);
        }
        match on_full {
            None | Some("block") => {}
            Some("error") => b = b.on_full(OnFull::Error),
            Some(other) => {
                return Err(crate::error::invalid_argument(format!(
                    "on_full must be \"block\" or \"error\", not {other:?}"
                )))
            }
        }
        if let Some(t) = millis("push_timeout_ms", push_timeout_ms)? {
            b = b.push_timeout(t);
        }
        if let Some((index, count)) = group {
            b = b.group(index, count);
        }
        let producer = slf.py().detach(|| b.build()).py_err()?;
        Ok(PyProducer::new(producer, slf.clone().unbind()))
    }

    /// A consumer. `data_selector(metadata, descriptor)` returns the part of an event's data to
    /// read (a DataDescriptor, or None for none); `data_allocator(metadata, descriptor)` returns
    /// writable buffers (a list of bytearray, numpy arrays...) that the data is read into, which
    /// then are the event's `data`. Without them the whole data is read into memory the event
    /// owns. Beyond the reference: `start` (`"last_ack"`, `"beginning"`, `"end"`, `"step:K"` or
    /// `"P=ID,..."`) and `liveness_timeout_ms`.
    #[pyo3(signature = (name, *, data_selector = None, data_allocator = None,
                        batch_size = u64::MAX, max_num_batches = 2, thread_pool = None,
                        targets = None, options = None, start = None, liveness_timeout_ms = None))]
    #[allow(clippy::too_many_arguments)]
    fn consumer(
        slf: &Bound<'_, Self>,
        name: &str,
        data_selector: Option<Bound<'_, PyAny>>,
        data_allocator: Option<Bound<'_, PyAny>>,
        batch_size: u64,
        max_num_batches: usize,
        thread_pool: Option<PyThreadPool>,
        targets: Option<Vec<usize>>,
        options: Option<&Bound<'_, PyAny>>,
        start: Option<&str>,
        liveness_timeout_ms: Option<f64>,
    ) -> PyResult<PyConsumer> {
        let topic = slf.get();
        let mut b = topic
            .inner
            .consumer(name)
            .batch_size(self::batch_size(batch_size))
            .max_num_batches(self::max_num_batches(max_num_batches)?)
            .options(convert::options(options)?);
        if let Some(p) = thread_pool {
            b = b.thread_pool(p.inner);
        }
        if let Some(t) = targets {
            b = b.targets(&t);
        }
        if let Some(s) = start {
            let pos: StartPosition = s.parse().py_err()?;
            b = b.start(pos);
        }
        if let Some(t) = millis("liveness_timeout_ms", liveness_timeout_ms)? {
            b = b.liveness_timeout(t);
        }
        PyConsumer::build(slf, b, data_selector, data_allocator)
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyTopicHandle>()
            .map(|o| o.get().inner == self.inner)
            .unwrap_or(false)
    }

    fn __hash__(&self) -> u64 {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        self.inner.name().hash(&mut h);
        h.finish()
    }

    fn __repr__(&self) -> String {
        format!(
            "TopicHandle(name={:?}, partitions={})",
            self.inner.name(),
            self.inner.num_partitions()
        )
    }
}
