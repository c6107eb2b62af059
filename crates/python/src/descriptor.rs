//! `DataDescriptor`: where an event's data lives and which part of it to read.

use crate::error::IntoPy;
use diaspora_stream::DataDescriptor;
use pyo3::prelude::*;

/// Describes an event's data (an opaque location and a size) and selections of it: a sub-range,
/// strided blocks or explicit segments. A consumer's data selector receives one and returns the
/// part to read (or None for no data).
#[pyclass(name = "DataDescriptor", module = "diaspora_stream.api", frozen)]
#[derive(Clone)]
pub struct PyDataDescriptor {
    pub inner: DataDescriptor,
}

#[pymethods]
impl PyDataDescriptor {
    /// `DataDescriptor()` (no data) or `DataDescriptor(location, size)`.
    #[new]
    #[pyo3(signature = (location = None, size = 0))]
    fn new(location: Option<&str>, size: u64) -> Self {
        PyDataDescriptor {
            inner: match location {
                Some(l) => DataDescriptor::new(l.as_bytes().to_vec(), size),
                None => DataDescriptor::new(Vec::new(), size),
            },
        }
    }

    /// Bytes of data this descriptor selects.
    #[getter]
    fn size(&self) -> u64 {
        self.inner.size()
    }

    /// The driver's location string of the data.
    #[getter]
    fn location(&self) -> String {
        String::from_utf8_lossy(self.inner.location()).into_owned()
    }

    /// The selected byte ranges of the underlying data, as a list of `(offset, size)`.
    fn flatten(&self) -> Vec<(u64, u64)> {
        self.inner.flatten()
    }

    /// `size` bytes from `offset` (clamped to the end; past the end: no data).
    #[pyo3(signature = (*, offset, size))]
    fn make_sub_view(&self, offset: u64, size: u64) -> Self {
        PyDataDescriptor {
            inner: self.inner.sub_view(offset, size),
        }
    }

    /// `num_blocks` blocks of `block_size` bytes from `offset`, `gap_size` bytes apart. Raises
    /// `InvalidArgument` when the blocks would run past the end.
    #[pyo3(signature = (*, offset, num_blocks, block_size, gap_size))]
    fn make_stride_view(
        &self,
        offset: u64,
        num_blocks: u64,
        block_size: u64,
        gap_size: u64,
    ) -> PyResult<Self> {
        Ok(PyDataDescriptor {
            inner: self
                .inner
                .strided_view(offset, num_blocks, block_size, gap_size)
                .py_err()?,
        })
    }

    /// Explicit `(offset, size)` segments, in increasing order and not overlapping. Raises
    /// `InvalidArgument` otherwise, or when one runs past the end.
    #[pyo3(signature = (*, segments))]
    fn make_unstructured_view(&self, segments: Vec<(u64, u64)>) -> PyResult<Self> {
        Ok(PyDataDescriptor {
            inner: self.inner.unstructured_view(&segments).py_err()?,
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "DataDescriptor(location={:?}, size={})",
            self.location(),
            self.inner.size()
        )
    }

    fn __eq__(&self, other: &Bound<'_, PyAny>) -> bool {
        other
            .cast::<PyDataDescriptor>()
            .map(|o| o.get().inner == self.inner)
            .unwrap_or(false)
    }
}
