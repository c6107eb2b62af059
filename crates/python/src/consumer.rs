//! `Consumer`, `Event` and the future of a pull.

use crate::buffer;
use crate::convert;
use crate::descriptor::PyDataDescriptor;
use crate::driver::{PyThreadPool, PyTopicHandle};
use crate::error::{self, IntoPy};
use crate::wait::{self, Deadline};
use diaspora_stream::{
    Allocation, Consumer, ConsumerBuilder, DataDescriptor, Event, Future, Metadata, NO_MORE_EVENTS,
};
use pyo3::prelude::*;
use pyo3::types::{PyList, PyTuple};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Objects a Python data allocator returned, by the address of their first buffer, until the
/// event whose data they hold reaches Python.
type Owners = Arc<Mutex<HashMap<usize, Py<PyAny>>>>;

/// What events of one consumer need to become Python objects.
#[derive(Clone)]
struct Context {
    topic: Arc<Py<PyTopicHandle>>,
    owners: Option<Owners>,
}

impl Context {
    fn event(&self, py: Python<'_>, event: Event) -> PyEvent {
        let owner = self.owners.as_ref().and_then(|o| {
            let first = event.data().segments().first()?.as_ptr() as usize;
            o.lock().unwrap_or_else(|e| e.into_inner()).remove(&first)
        });
        PyEvent {
            event,
            topic: self.topic.clone_ref(py),
            owner,
            metadata: OnceLock::new(),
        }
    }
}

/// Calls a Python callback from a library thread; a Python exception becomes a callback
/// failure of the library that [`error::to_py`] turns back into that exception.
fn call_back<T>(f: impl FnOnce(Python<'_>) -> PyResult<T>) -> T {
    match Python::attach(f) {
        Ok(v) => v,
        Err(e) => std::panic::resume_unwind(Box::new(error::park(e))),
    }
}

fn metadata_and_descriptor<'py>(
    py: Python<'py>,
    md: &Metadata,
    d: &DataDescriptor,
) -> PyResult<(Bound<'py, PyAny>, Bound<'py, PyDataDescriptor>)> {
    Ok((
        convert::to_py(py, md.json())?,
        Bound::new(py, PyDataDescriptor { inner: d.clone() })?,
    ))
}

fn is_builtin(obj: &Bound<'_, PyAny>, name: &str) -> bool {
    obj.getattr("__diaspora_builtin__")
        .and_then(|v| v.extract::<String>())
        .is_ok_and(|v| v == name)
}

/// Reads events from a topic. Iterating over it yields events until none arrives for 5 s or
/// the stream ends (`events(timeout_ms=...)` chooses the wait).
#[pyclass(name = "Consumer", module = "diaspora_stream.api", frozen)]
pub struct PyConsumer {
    inner: Mutex<Option<Arc<Consumer>>>,
    context: Context,
    selector: Option<Py<PyAny>>,
    allocator: Option<Py<PyAny>>,
}

impl PyConsumer {
    pub fn build(
        topic: &Bound<'_, PyTopicHandle>,
        mut builder: ConsumerBuilder,
        selector: Option<Bound<'_, PyAny>>,
        allocator: Option<Bound<'_, PyAny>>,
    ) -> PyResult<PyConsumer> {
        let py = topic.py();
        let selector = selector.filter(|s| !s.is_none());
        let allocator = allocator.filter(|a| !a.is_none());
        if let Some(sel) = selector.as_ref().filter(|s| !is_builtin(s, "full")) {
            if !sel.is_callable() {
                return Err(error::invalid_argument("data_selector must be callable"));
            }
            let sel = sel.clone().unbind();
            builder = builder.data_selector(move |md, d| {
                call_back(|py| {
                    let (m, dd) = metadata_and_descriptor(py, md, d)?;
                    let out = sel.bind(py).call1((m, dd))?;
                    if out.is_none() {
                        return Ok(DataDescriptor::none());
                    }
                    match out.cast::<PyDataDescriptor>() {
                        Ok(o) => Ok(o.get().inner.clone()),
                        Err(_) => Err(error::invalid_argument(format!(
                            "the data selector returned a {}, not a DataDescriptor or None",
                            out.get_type().name()?
                        ))),
                    }
                })
            });
        }
        let mut owners = None;
        if let Some(alloc) = allocator.as_ref() {
            if !alloc.is_callable() {
                return Err(error::invalid_argument("data_allocator must be callable"));
            }
            let map: Owners = Arc::new(Mutex::new(HashMap::new()));
            owners = Some(map.clone());
            let alloc = alloc.clone().unbind();
            builder = builder.data_allocator(move |md, d| {
                call_back(|py| -> PyResult<Allocation> {
                    let (m, dd) = metadata_and_descriptor(py, md, d)?;
                    let out = alloc.bind(py).call1((m, dd))?;
                    let (allocation, first) = buffer::writable_allocation(&out)?;
                    if let Some(addr) = first {
                        map.lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .insert(addr, out.unbind());
                    }
                    Ok(allocation)
                })
            });
        }
        let consumer = py.detach(|| builder.build()).py_err()?;
        Ok(PyConsumer {
            inner: Mutex::new(Some(Arc::new(consumer))),
            context: Context {
                topic: Arc::new(topic.clone().unbind()),
                owners,
            },
            selector: selector.map(Bound::unbind),
            allocator: allocator.map(Bound::unbind),
        })
    }

    fn get(&self) -> PyResult<Arc<Consumer>> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| error::exception("the consumer was closed"))
    }

    fn take(&self) -> Option<Arc<Consumer>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

#[pymethods]
impl PyConsumer {
    /// A future of the next event. Waiting on it returns the Event, or None if none arrived in
    /// time; a timed-out pull loses nothing.
    fn pull(slf: &Bound<'_, Self>) -> PyResult<PyFutureEvent> {
        let this = slf.get();
        let consumer = this.get()?;
        let inner = slf.py().detach(|| consumer.pull());
        Ok(PyFutureEvent {
            inner,
            context: this.context.clone(),
            _consumer: slf.clone().unbind(),
        })
    }

    /// Takes up to `max` events at once, waiting at most `timeout_ms` (None: without limit) for
    /// the first; an empty list means the time ran out. Cheaper per event than `pull`.
    #[pyo3(signature = (max = 64, *, timeout_ms = None))]
    fn pull_many<'py>(
        &self,
        py: Python<'py>,
        max: usize,
        timeout_ms: Option<f64>,
    ) -> PyResult<Bound<'py, PyList>> {
        let consumer = self.get()?;
        let mut out = Vec::new();
        wait::until(py, &Deadline::after_ms(timeout_ms), |s| {
            Ok((consumer.pull_many(&mut out, max, Some(s))? > 0).then_some(()))
        })?;
        let list = PyList::empty(py);
        for ev in out {
            list.append(self.context.event(py, ev))?;
        }
        Ok(list)
    }

    /// An iterator over events that ends when none arrives within `timeout_ms` or at the end of
    /// the stream.
    #[pyo3(signature = (timeout_ms = 5000.0))]
    fn events(slf: Py<Self>, timeout_ms: Option<f64>) -> EventIterator {
        EventIterator {
            consumer: slf,
            timeout_ms,
            done: Mutex::new(false),
        }
    }

    fn __iter__(slf: Py<Self>) -> EventIterator {
        Self::events(slf, Some(5000.0))
    }

    /// Calls `processor(event)` on each event in this thread until it raises StopIteration,
    /// `max_events` were processed, none arrives within `timeout_ms` (negative: without limit),
    /// or the stream ends. Returns the number of events processed. `thread_pool` is accepted for
    /// the reference's signature and not used: a Python callback runs under the GIL anyway.
    #[pyo3(signature = (processor, *, timeout_ms = -1.0, max_events = u64::MAX, thread_pool = None))]
    fn process(
        &self,
        py: Python<'_>,
        processor: &Bound<'_, PyAny>,
        timeout_ms: f64,
        max_events: u64,
        thread_pool: Option<PyThreadPool>,
    ) -> PyResult<u64> {
        let _ = thread_pool;
        let consumer = self.get()?;
        let mut n = 0;
        while n < max_events {
            let f = py.detach(|| consumer.pull());
            let Some(ev) = wait::future(py, &f, Some(timeout_ms))? else {
                break;
            };
            if ev.id() == NO_MORE_EVENTS {
                break;
            }
            n += 1;
            match processor.call1((self.context.event(py, ev),)) {
                Ok(_) => {}
                Err(e) if e.is_instance_of::<pyo3::exceptions::PyStopIteration>(py) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(n)
    }

    /// Waits at most `timeout_ms` (None: without limit) until every producer closed step
    /// `step` over this consumer's partitions; False if the time ran out or the stream ended.
    #[pyo3(signature = (step, *, timeout_ms = None))]
    fn wait_step(&self, py: Python<'_>, step: u64, timeout_ms: Option<f64>) -> PyResult<bool> {
        let consumer = self.get()?;
        let done = wait::until(py, &Deadline::after_ms(timeout_ms), |s| {
            let start = std::time::Instant::now();
            if consumer.wait_step(step, s)? {
                return Ok(Some(true));
            }
            // Before its time is up, a wait ends without the step only at the end of the stream.
            Ok((start.elapsed() < s).then_some(false))
        })?;
        Ok(done.unwrap_or(false))
    }

    /// The last step every producer has closed over this consumer's partitions, or None.
    #[getter]
    fn completed_step(&self) -> PyResult<Option<u64>> {
        Ok(self.get()?.completed_step())
    }

    /// The partitions this consumer reads.
    #[getter]
    fn targets(&self) -> PyResult<Vec<usize>> {
        Ok(self.get()?.targets().to_vec())
    }

    /// The id each target partition started at.
    #[getter]
    fn start_ids(&self) -> PyResult<Vec<u64>> {
        Ok(self.get()?.start_ids().to_vec())
    }

    /// Stops the consumer (also done when it is garbage-collected).
    fn close(&self, py: Python<'_>) {
        if let Some(c) = self.take() {
            py.detach(move || drop(c));
        }
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> bool {
        self.close(py);
        false
    }

    /// The consumer's name.
    #[getter]
    fn name(&self) -> PyResult<String> {
        Ok(self.get()?.name().to_string())
    }

    /// The topic it reads.
    #[getter]
    fn topic(&self, py: Python<'_>) -> Py<PyTopicHandle> {
        self.context.topic.clone_ref(py)
    }

    /// Its thread pool.
    #[getter]
    fn thread_pool(&self) -> PyResult<PyThreadPool> {
        Ok(PyThreadPool {
            inner: self.get()?.thread_pool().clone(),
        })
    }

    /// Events per fetched batch (`AdaptiveBatchSize` when adaptive).
    #[getter]
    fn batch_size(&self) -> PyResult<u64> {
        Ok(self.get()?.batch_size().to_raw() as u64)
    }

    /// Batches prefetched ahead.
    #[getter]
    fn max_num_batches(&self) -> PyResult<usize> {
        Ok(self.get()?.max_num_batches().0)
    }

    /// The data selector given at creation (None: the whole data).
    #[getter]
    fn data_selector(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.selector.as_ref().map(|s| s.clone_ref(py))
    }

    /// The data allocator given at creation (None: memory owned by the event).
    #[getter]
    fn data_allocator(&self, py: Python<'_>) -> Option<Py<PyAny>> {
        self.allocator.as_ref().map(|s| s.clone_ref(py))
    }

    fn __repr__(&self) -> String {
        match self.get() {
            Ok(c) => format!(
                "Consumer(name={:?}, topic={:?})",
                c.name(),
                c.topic().name()
            ),
            Err(_) => "Consumer(closed)".into(),
        }
    }
}

impl Drop for PyConsumer {
    fn drop(&mut self) {
        if let Some(c) = self.take() {
            // Stopping joins the prefetch thread, which may be waiting for the GIL to call a
            // Python data selector or allocator.
            Python::attach(|py| py.detach(move || drop(c)));
        }
    }
}

/// Iterator over a consumer's events (see `Consumer.events`).
#[pyclass(module = "diaspora_stream.api", frozen)]
pub struct EventIterator {
    consumer: Py<PyConsumer>,
    timeout_ms: Option<f64>,
    done: Mutex<bool>,
}

#[pymethods]
impl EventIterator {
    fn __iter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Option<PyEvent>> {
        if *self.done.lock().unwrap_or_else(|e| e.into_inner()) {
            return Ok(None);
        }
        let c = self.consumer.get();
        let consumer = c.get()?;
        let f = py.detach(|| consumer.pull());
        match wait::future(py, &f, self.timeout_ms)? {
            Some(ev) if ev.id() != NO_MORE_EVENTS => Ok(Some(c.context.event(py, ev))),
            _ => {
                *self.done.lock().unwrap_or_else(|e| e.into_inner()) = true;
                Ok(None)
            }
        }
    }
}

/// The future of a pull.
#[pyclass(name = "FutureEvent", module = "diaspora_stream.api", frozen)]
pub struct PyFutureEvent {
    inner: Future<Event>,
    context: Context,
    /// Keeps the consumer open while its pull is pending (`topic.consumer(...).pull()`).
    _consumer: Py<PyConsumer>,
}

#[pymethods]
impl PyFutureEvent {
    /// Waits at most `timeout_ms` (None or negative: without limit); returns the Event, or None
    /// if none arrived in time (the future can be waited on again).
    #[pyo3(signature = (*, timeout_ms = None))]
    fn wait(&self, py: Python<'_>, timeout_ms: Option<f64>) -> PyResult<Option<PyEvent>> {
        Ok(wait::future(py, &self.inner, timeout_ms)?.map(|ev| self.context.event(py, ev)))
    }

    /// True once an event (or an error) is available. A method, as in the reference.
    fn completed(&self) -> bool {
        self.inner.completed()
    }
}

/// An event read from a topic.
#[pyclass(name = "Event", module = "diaspora_stream.api", frozen)]
pub struct PyEvent {
    event: Event,
    topic: Py<PyTopicHandle>,
    /// What the consumer's data allocator returned for this event.
    owner: Option<Py<PyAny>>,
    metadata: OnceLock<Py<PyAny>>,
}

#[pymethods]
impl PyEvent {
    /// The metadata (a dict for object metadata); the same object on every access.
    #[getter]
    fn metadata(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        if let Some(m) = self.metadata.get() {
            return Ok(m.clone_ref(py));
        }
        let m = convert::to_py(py, self.event.metadata().json())?.unbind();
        Ok(self.metadata.get_or_init(|| m).clone_ref(py))
    }

    /// The data: what the consumer's data allocator returned, or else a list of read-only
    /// memoryviews on memory the event owns (no copy).
    #[getter]
    fn data<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        if let Some(o) = &self.owner {
            return Ok(o.bind(py).clone());
        }
        let list = PyList::empty(py);
        for seg in self.event.data().segments() {
            list.append(buffer::memoryview_of(py, seg.clone())?)?;
        }
        Ok(list.into_any())
    }

    /// The event's id in its partition; None for the end-of-stream marker.
    #[getter]
    fn event_id(&self) -> Option<u64> {
        (self.event.id() != NO_MORE_EVENTS).then(|| self.event.id())
    }

    /// The partition's information (a dict, as the topic's `partitions` lists it).
    #[getter]
    fn partition<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let topic = self.topic.get();
        match topic.inner.partitions().get(self.event.partition()) {
            Some(p) => convert::to_py(py, p.json()),
            None => Ok(py.None().into_bound(py)),
        }
    }

    /// The partition's index.
    #[getter]
    fn partition_index(&self) -> usize {
        self.event.partition()
    }

    /// For a step marker: the step every producer has now closed; None for other events.
    #[getter]
    fn completed_step(&self) -> Option<u64> {
        self.event.completed_step()
    }

    /// True for the end-of-stream marker.
    #[getter]
    fn is_end_of_stream(&self) -> bool {
        self.event.is_end_of_stream()
    }

    /// Marks this event and those before it in its partition as processed: a consumer started
    /// later with the same name resumes after it.
    fn acknowledge(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.event.acknowledge()).py_err()
    }

    fn __repr__(&self) -> String {
        let id = match self.event_id() {
            Some(id) => id.to_string(),
            None => "None".into(),
        };
        format!(
            "Event(partition={}, event_id={id}, data_size={})",
            self.event.partition(),
            self.event.data().size()
        )
    }
}
