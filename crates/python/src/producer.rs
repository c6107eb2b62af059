//! `Producer` and the futures of its pushes and flushes.

use crate::buffer;
use crate::convert;
use crate::driver::{PyThreadPool, PyTopicHandle};
use crate::error::IntoPy;
use crate::wait::{self, Deadline};
use diaspora_stream::{EventId, Future, Metadata, Producer};
use pyo3::prelude::*;
use pyo3::types::{PyString, PyTuple};
use std::sync::{Arc, Mutex};

/// The id an event will have once stored.
#[pyclass(name = "FutureUint", module = "diaspora_stream.api", frozen)]
pub struct PyFutureUint {
    inner: Future<EventId>,
}

#[pymethods]
impl PyFutureUint {
    /// Waits at most `timeout_ms` (None or negative: without limit) and returns the event's id,
    /// or None if the time ran out. Raises the error that kept the event from being stored.
    #[pyo3(signature = (*, timeout_ms = None))]
    fn wait(&self, py: Python<'_>, timeout_ms: Option<f64>) -> PyResult<Option<EventId>> {
        wait::future(py, &self.inner, timeout_ms)
    }

    /// True once the event is stored (or failed).
    #[getter]
    fn completed(&self) -> bool {
        self.inner.completed()
    }
}

/// Completion of a flush or of markers (end of step, end of stream).
#[pyclass(name = "FutureFlushed", module = "diaspora_stream.api", frozen)]
pub struct PyFutureFlushed {
    inner: Future<()>,
}

#[pymethods]
impl PyFutureFlushed {
    /// Waits at most `timeout_ms` (None or negative: without limit); True when done, False if
    /// the time ran out. Raises the first storage error since the previous flush.
    #[pyo3(signature = (*, timeout_ms = None))]
    fn wait(&self, py: Python<'_>, timeout_ms: Option<f64>) -> PyResult<bool> {
        Ok(wait::future(py, &self.inner, timeout_ms)?.is_some())
    }

    /// True once done.
    #[getter]
    fn completed(&self) -> bool {
        self.inner.completed()
    }
}

/// The ids of the events of one `push_many`.
#[pyclass(name = "FutureIds", module = "diaspora_stream.api", frozen)]
pub struct PyFutureIds {
    inner: Vec<Future<EventId>>,
}

#[pymethods]
impl PyFutureIds {
    /// Waits at most `timeout_ms` for every event and returns their ids in push order, or None
    /// if the time ran out. Raises the first error.
    #[pyo3(signature = (*, timeout_ms = None))]
    fn wait(&self, py: Python<'_>, timeout_ms: Option<f64>) -> PyResult<Option<Vec<EventId>>> {
        let deadline = Deadline::after_ms(timeout_ms);
        let mut ids = Vec::with_capacity(self.inner.len());
        for f in &self.inner {
            match wait::until(py, &deadline, |s| f.wait_timeout(s))? {
                Some(id) => ids.push(id),
                None => return Ok(None),
            }
        }
        Ok(Some(ids))
    }

    /// True once every event is stored (or failed).
    #[getter]
    fn completed(&self) -> bool {
        self.inner.iter().all(|f| f.completed())
    }

    fn __len__(&self) -> usize {
        self.inner.len()
    }
}

/// Pushes events into a topic. Data given to `push` is not copied: the producer keeps a reference
/// to the Python buffer until the event is stored, so the buffer must not be modified before its
/// future completes (or a flush returns).
#[pyclass(name = "Producer", module = "diaspora_stream.api", frozen)]
pub struct PyProducer {
    inner: Mutex<Option<Arc<Producer>>>,
    topic: Py<PyTopicHandle>,
}

impl PyProducer {
    pub fn new(producer: Producer, topic: Py<PyTopicHandle>) -> Self {
        PyProducer {
            inner: Mutex::new(Some(Arc::new(producer))),
            topic,
        }
    }

    pub fn get(&self) -> PyResult<Arc<Producer>> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| crate::error::exception("the producer was closed"))
    }

    fn take(&self) -> Option<Arc<Producer>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// One event's metadata in `push_many`: JSON text, at a range of the call's shared buffer, or
/// already made from another Python value.
enum Given {
    Text(std::ops::Range<usize>),
    Made(Metadata),
}

fn push_one(
    producer: &Producer,
    metadata: Metadata,
    data: diaspora_stream::DataView,
    partition: Option<usize>,
) -> Future<EventId> {
    match partition {
        Some(p) => producer.push_to(metadata, data, p),
        None => producer.push(metadata, data),
    }
}

#[pymethods]
impl PyProducer {
    /// Pushes an event: `metadata` is a dict (or any JSON value, or JSON text as a str), `data`
    /// an object with the buffer protocol or a list of them. `partition` asks the topic's
    /// partition selector for that partition. Returns a FutureUint of the event's id.
    #[pyo3(signature = (metadata, data = None, *, partition = None))]
    fn push(
        &self,
        py: Python<'_>,
        metadata: &Bound<'_, PyAny>,
        data: Option<&Bound<'_, PyAny>>,
        partition: Option<usize>,
    ) -> PyResult<PyFutureUint> {
        let producer = self.get()?;
        let md = convert::metadata(metadata)?;
        let view = buffer::shared_view(data)?;
        // Queued at once while the producer has room: the GIL is let go (a thread switch's
        // worth of work per push) only when the push may wait or work inline.
        let inner = match producer.try_push(md, view, partition) {
            Ok(inner) => inner,
            Err((md, view)) => py.detach(|| push_one(&producer, md, view, partition)),
        };
        Ok(PyFutureUint { inner })
    }

    /// Pushes several events at once: `events` is an iterable of `(metadata, data)` pairs or of
    /// metadata alone. Cheaper per event than `push`; returns one future for all their ids.
    #[pyo3(signature = (events, *, partition = None))]
    fn push_many(
        &self,
        py: Python<'_>,
        events: &Bound<'_, PyAny>,
        partition: Option<usize>,
    ) -> PyResult<PyFutureIds> {
        let producer = self.get()?;
        // Metadata given as text is copied into one buffer for the whole call, which each event
        // then shares (one allocation per call instead of one per event).
        let mut texts = Vec::new();
        let mut read = Vec::with_capacity(events.len().unwrap_or(0));
        for item in events.try_iter()? {
            let item = item?;
            let (metadata, view) = match item.cast::<PyTuple>() {
                Ok(t) if t.len() == 2 => {
                    (t.get_item(0)?, buffer::shared_view(Some(&t.get_item(1)?))?)
                }
                _ => (item, diaspora_stream::DataView::new()),
            };
            let metadata = match metadata.cast::<PyString>() {
                Ok(s) => {
                    let start = texts.len();
                    texts.extend_from_slice(convert::utf8(s)?.as_bytes());
                    Given::Text(start..texts.len())
                }
                Err(_) => Given::Made(convert::metadata(&metadata)?),
            };
            read.push((metadata, view));
        }
        let texts = bytes::Bytes::from(texts);
        let prepared = read
            .into_iter()
            .map(|(metadata, view)| {
                let metadata = match metadata {
                    Given::Made(m) => m,
                    Given::Text(range) => convert::text_metadata(texts.slice(range))?,
                };
                Ok((metadata, view))
            })
            .collect::<PyResult<Vec<_>>>()?;
        let inner = py.detach(|| producer.push_many(prepared, partition));
        Ok(PyFutureIds { inner })
    }

    /// Sends what is pending; the future completes when every event pushed before is stored.
    fn flush(&self, py: Python<'_>) -> PyResult<PyFutureFlushed> {
        let producer = self.get()?;
        let inner = py.detach(|| producer.flush());
        Ok(PyFutureFlushed { inner })
    }

    /// Closes step `step` for this producer (see the README's "Steps"); consumers learn the
    /// step is complete once every producer of the group closed it.
    fn end_step(&self, py: Python<'_>, step: u64) -> PyResult<PyFutureFlushed> {
        let producer = self.get()?;
        let inner = py.detach(|| producer.end_step(step));
        Ok(PyFutureFlushed { inner })
    }

    /// Declares the end of this producer's stream, as producer `index` of `count` writing to
    /// the topic; consumers get the end-of-stream marker once all `count` have.
    #[pyo3(signature = (index = 0, count = 1))]
    fn end_of_stream(
        &self,
        py: Python<'_>,
        index: usize,
        count: usize,
    ) -> PyResult<PyFutureFlushed> {
        let producer = self.get()?;
        let inner = py.detach(|| producer.end_of_stream(index, count));
        Ok(PyFutureFlushed { inner })
    }

    /// Flushes and closes the producer (also done when it is garbage-collected).
    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(p) = self.take() {
            let r = py.detach(|| {
                let r = p.flush().wait();
                drop(p);
                r
            });
            buffer::release_pending(py);
            r.py_err()?;
        }
        Ok(())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<bool> {
        self.close(py)?;
        Ok(false)
    }

    /// The producer's name.
    #[getter]
    fn name(&self) -> PyResult<String> {
        Ok(self.get()?.name().to_string())
    }

    /// The topic it pushes to.
    #[getter]
    fn topic(&self, py: Python<'_>) -> Py<PyTopicHandle> {
        self.topic.clone_ref(py)
    }

    /// The pool running its work.
    #[getter]
    fn thread_pool(&self) -> PyResult<PyThreadPool> {
        Ok(PyThreadPool {
            inner: self.get()?.thread_pool().clone(),
        })
    }

    /// Events per batch (`AdaptiveBatchSize` when adaptive).
    #[getter]
    fn batch_size(&self) -> PyResult<u64> {
        Ok(self.get()?.batch_size().to_raw() as u64)
    }

    /// Batches that may be pending before push blocks.
    #[getter]
    fn max_num_batches(&self) -> PyResult<usize> {
        Ok(self.get()?.max_num_batches().0)
    }

    /// `Ordering.Strict` or `Ordering.Loose`.
    #[getter]
    fn ordering(&self) -> PyResult<crate::driver::PyOrdering> {
        Ok(match self.get()?.ordering() {
            diaspora_stream::Ordering::Loose => crate::driver::PyOrdering::Loose,
            _ => crate::driver::PyOrdering::Strict,
        })
    }

    /// Bytes of events pushed and not yet stored.
    #[getter]
    fn buffered_bytes(&self) -> PyResult<usize> {
        Ok(self.get()?.buffered_bytes())
    }

    fn __repr__(&self) -> String {
        match self.get() {
            Ok(p) => format!(
                "Producer(name={:?}, topic={:?})",
                p.name(),
                p.topic().name()
            ),
            Err(_) => "Producer(closed)".into(),
        }
    }
}

impl Drop for PyProducer {
    fn drop(&mut self) {
        if let Some(p) = self.take() {
            // The final flush waits for the storage threads, which must not need the GIL that
            // this thread holds.
            Python::attach(|py| py.detach(move || drop(p)));
        }
    }
}
