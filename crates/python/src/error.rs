//! The library's errors as Python exceptions.
//!
//! `diaspora_stream.api.Exception` (a `RuntimeError`, as in the reference) carries the library's
//! message. Bad arguments and configurations raise `InvalidArgument`, a subclass of both that
//! exception and `ValueError`; a lost producer raises `ProducerLost`, also a subclass.
//! An exception raised by a Python callback (data selector or allocator) reaches the caller as
//! the original exception object.

use diaspora_stream::Error;
use pyo3::exceptions::{PyRuntimeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyDict, PyTuple, PyType};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

pyo3::create_exception!(
    _native,
    Exception,
    PyRuntimeError,
    "An error of the diaspora-stream library; its message names what failed."
);

fn subclass(py: Python<'_>, name: &str, extra: Option<&Bound<'_, PyType>>) -> PyResult<Py<PyType>> {
    let base = py.get_type::<Exception>();
    let bases = match extra {
        Some(e) => PyTuple::new(py, [base.as_any(), e.as_any()])?,
        None => PyTuple::new(py, [base.as_any()])?,
    };
    let ns = PyDict::new(py);
    ns.set_item("__module__", "diaspora_stream.api")?;
    let t = py.get_type::<PyType>().call1((name, bases, ns))?;
    Ok(t.cast_into::<PyType>()?.unbind())
}

/// `InvalidArgument(Exception, ValueError)`.
pub fn invalid_argument_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    static T: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    T.get_or_try_init(py, || {
        subclass(py, "InvalidArgument", Some(&py.get_type::<PyValueError>()))
    })
    .map(|t| t.bind(py))
}

/// `ProducerLost(Exception)`.
pub fn producer_lost_type(py: Python<'_>) -> PyResult<&Bound<'_, PyType>> {
    static T: PyOnceLock<Py<PyType>> = PyOnceLock::new();
    T.get_or_try_init(py, || subclass(py, "ProducerLost", None))
        .map(|t| t.bind(py))
}

/// A `diaspora_stream.api.Exception` with `message`.
pub fn exception(message: impl Into<String>) -> PyErr {
    Exception::new_err(message.into())
}

/// An `InvalidArgument` with `message`.
pub fn invalid_argument(message: impl Into<String>) -> PyErr {
    let message = message.into();
    Python::attach(|py| match invalid_argument_type(py) {
        Ok(t) => PyErr::from_type(t.clone(), message),
        Err(e) => e,
    })
}

/// Python exceptions raised by callbacks that the library is carrying as a callback failure,
/// by token.
fn parked() -> &'static Mutex<HashMap<u64, PyErr>> {
    static P: OnceLock<Mutex<HashMap<u64, PyErr>>> = OnceLock::new();
    P.get_or_init(|| Mutex::new(HashMap::new()))
}

const TOKEN: &str = "[python exception #";

/// Keeps `err` (raised by a Python callback) and returns the text by which the library's error
/// will name it; [`to_py`] turns that error back into `err`.
pub fn park(err: PyErr) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let text = format!("{TOKEN}{id}] {err}");
    parked()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, err);
    text
}

fn unpark(message: &str) -> Option<PyErr> {
    let start = message.find(TOKEN)? + TOKEN.len();
    let end = message[start..].find(']')? + start;
    let id: u64 = message[start..end].parse().ok()?;
    parked()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id)
}

/// The Python exception for a library error.
pub fn to_py(err: Error) -> PyErr {
    Python::attach(|py| {
        let message = err.to_string();
        if let Error::CallbackPanicked(_) = &err {
            if let Some(original) = unpark(&message) {
                return original;
            }
        }
        let t = match &err {
            Error::InvalidArgument(_)
            | Error::InvalidConfig { .. }
            | Error::InvalidMetadata(_)
            | Error::Json(_)
            | Error::DataSelection(_) => invalid_argument_type(py).ok(),
            Error::ProducerLost(_) => producer_lost_type(py).ok(),
            _ => None,
        };
        match t {
            Some(t) => PyErr::from_type(t.clone(), message),
            None => exception(message),
        }
    })
}

/// `Result<T, Error>` into `PyResult<T>`.
pub trait IntoPy<T> {
    /// Converts the error with [`to_py`].
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for Result<T, Error> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}
