//! Python bindings of diaspora-stream: the `diaspora_stream._native` extension module, which
//! `diaspora_stream.api` re-exports with the names of the C++ reference's Python package.
//!
//! Every call that may wait (storage, network, a future) releases the GIL, and waits check for
//! Ctrl-C every 50 ms. Event data crosses without copies in both directions (see [`buffer`]).

mod buffer;
mod consumer;
mod convert;
mod descriptor;
mod driver;
mod error;
#[cfg(feature = "mpi")]
mod mpi;
mod producer;
mod wait;

use pyo3::prelude::*;

/// Buffers pushed and not yet released (the zero-copy path keeps a reference to each pushed
/// buffer until its event is stored); for tests and memory accounting.
#[pyfunction]
fn _pending_buffer_releases(py: Python<'_>, release: bool) -> usize {
    if release {
        buffer::release_pending(py);
    }
    buffer::pending_count()
}

/// The names of the drivers built into this package.
#[pyfunction]
fn builtin_drivers() -> Vec<String> {
    diaspora_stream::driver::registered_drivers()
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = m.py();
    m.add("Exception", py.get_type::<error::Exception>())?;
    m.add("InvalidArgument", error::invalid_argument_type(py)?)?;
    m.add("ProducerLost", error::producer_lost_type(py)?)?;
    m.add("AdaptiveBatchSize", u64::MAX)?;
    m.add("NoMoreEvents", diaspora_stream::NO_MORE_EVENTS)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("MPI_SUPPORT", cfg!(feature = "mpi"))?;
    // Loading Mercury loads libfabric and, through it, libraries whose constructors install
    // their own SIGINT/SIGTERM handlers (exiting with status 1): the package puts Python's back.
    m.add("LINKS_MERCURY", cfg!(feature = "mofka"))?;
    m.add_class::<driver::PyDriver>()?;
    m.add_class::<driver::PyTopicHandle>()?;
    m.add_class::<driver::PyThreadPool>()?;
    m.add_class::<driver::PyOrdering>()?;
    m.add_class::<driver::PyValidator>()?;
    m.add_class::<driver::PySerializer>()?;
    m.add_class::<driver::PyPartitionSelector>()?;
    m.add_class::<descriptor::PyDataDescriptor>()?;
    m.add_class::<producer::PyProducer>()?;
    m.add_class::<producer::PyFutureUint>()?;
    m.add_class::<producer::PyFutureFlushed>()?;
    m.add_class::<producer::PyFutureIds>()?;
    m.add_class::<consumer::PyConsumer>()?;
    m.add_class::<consumer::PyEvent>()?;
    m.add_class::<consumer::PyFutureEvent>()?;
    m.add_class::<consumer::EventIterator>()?;
    m.add_function(wrap_pyfunction!(_pending_buffer_releases, m)?)?;
    m.add_function(wrap_pyfunction!(builtin_drivers, m)?)?;
    #[cfg(feature = "mpi")]
    mpi::register(m)?;
    Ok(())
}
