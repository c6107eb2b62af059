//! The collective helpers of `diaspora_stream::mpi` for mpi4py communicators.
//!
//! `diaspora_stream.mpi` (Python) passes the communicator's C handle (`MPI._handleof(comm)`),
//! after checking that mpi4py runs on the MPI library this module was built with. The helpers
//! use that communicator as it is (never freeing it), so that their collective calls match
//! those of Rust ranks calling the same helpers in the same job.

use crate::driver::{PyDriver, PyTopicHandle};
use crate::error::IntoPy;
use crate::producer::PyProducer;
use diaspora_stream::mpi::mpi::ffi;
use diaspora_stream::mpi::mpi::raw::FromRaw;
use diaspora_stream::mpi::mpi::topology::SimpleCommunicator;
use diaspora_stream::mpi::PartitionMap;
use diaspora_stream::Producer;
use pyo3::prelude::*;
use std::mem::ManuallyDrop;

/// The caller's communicator, borrowed: never freed here. `Python::detach` runs its closure on
/// the calling thread (it only releases the GIL), so the communicator never changes threads.
struct Comm(ManuallyDrop<SimpleCommunicator>);
unsafe impl Send for Comm {}
unsafe impl Sync for Comm {}

impl Comm {
    fn get(&self) -> &SimpleCommunicator {
        &self.0
    }
}

/// The communicator whose C handle is `handle`. It is used as it is, not duplicated: a
/// duplication is collective, and the other ranks of a coupled job may be Rust programs that
/// call the same helpers on their own communicator without one.
fn borrow(handle: usize) -> PyResult<Comm> {
    // SAFETY: MPI is initialized (checked) and `handle` is a live intra-communicator's handle
    // given by mpi4py; the wrapper is never dropped, so the handle is never freed here.
    unsafe {
        let mut initialized = 0;
        ffi::MPI_Initialized(&mut initialized);
        if initialized == 0 {
            return Err(crate::error::exception("MPI is not initialized"));
        }
        // MPI_Comm is a pointer (Open MPI) or an int (MPICH): the handle's low bytes either way
        // on the little-endian machines MPI runs on here.
        let raw: ffi::MPI_Comm = std::mem::transmute_copy(&handle);
        let comm = if raw == ffi::RSMPI_COMM_WORLD {
            SimpleCommunicator::world()
        } else if raw == ffi::RSMPI_COMM_SELF {
            SimpleCommunicator::self_comm()
        } else {
            SimpleCommunicator::from_raw(raw)
        };
        Ok(Comm(ManuallyDrop::new(comm)))
    }
}

fn partition_map(name: &str) -> PyResult<PartitionMap> {
    match name {
        "block" => Ok(PartitionMap::Block),
        "cyclic" => Ok(PartitionMap::Cyclic),
        other => Err(crate::error::invalid_argument(format!(
            "partition map must be \"block\" or \"cyclic\", not {other:?}"
        ))),
    }
}

/// The MPI library this module was built with.
#[pyfunction]
fn _mpi_library_version() -> String {
    diaspora_stream::mpi::mpi::environment::library_version().unwrap_or_default()
}

/// Collective: rank 0 creates the topic if needed, every rank opens it.
#[pyfunction]
#[pyo3(signature = (comm, driver, name, options = None))]
fn _mpi_create_or_open_topic(
    py: Python<'_>,
    comm: usize,
    driver: &PyDriver,
    name: &str,
    options: Option<&Bound<'_, PyAny>>,
) -> PyResult<PyTopicHandle> {
    let options = crate::convert::options(options)?;
    let comm = borrow(comm)?;
    let topic = py
        .detach(|| {
            diaspora_stream::mpi::create_or_open_topic(comm.get(), &driver.inner, name, &options)
        })
        .py_err()?;
    Ok(PyTopicHandle { inner: topic })
}

/// Runs the collective `call` over the communicator `comm` with `producer`'s producer.
fn with_producer(
    py: Python<'_>,
    comm: usize,
    producer: &PyProducer,
    call: impl FnOnce(&SimpleCommunicator, &Producer) -> diaspora_stream::Result<()> + Send,
) -> PyResult<()> {
    let p = producer.get()?;
    let comm = borrow(comm)?;
    py.detach(|| call(comm.get(), &p)).py_err()
}

/// Collective over the producing ranks: flush.
#[pyfunction]
fn _mpi_flush(py: Python<'_>, comm: usize, producer: &PyProducer) -> PyResult<()> {
    with_producer(py, comm, producer, diaspora_stream::mpi::collective_flush)
}

/// Collective over the producing ranks: end of stream, as rank of size.
#[pyfunction]
fn _mpi_end_of_stream(py: Python<'_>, comm: usize, producer: &PyProducer) -> PyResult<()> {
    with_producer(py, comm, producer, diaspora_stream::mpi::end_of_stream)
}

/// Collective over the producing ranks: close step `step`.
#[pyfunction]
fn _mpi_end_step(py: Python<'_>, comm: usize, producer: &PyProducer, step: u64) -> PyResult<()> {
    with_producer(py, comm, producer, |c, p| {
        diaspora_stream::mpi::end_step(c, p, step)
    })
}

/// The partitions consumer rank `rank` of `size` reads.
#[pyfunction]
fn _mpi_consumer_partitions(
    map: &str,
    rank: usize,
    size: usize,
    num_partitions: usize,
) -> PyResult<Vec<usize>> {
    partition_map(map)?
        .consumer_partitions(rank, size, num_partitions)
        .py_err()
}

/// The partitions producer rank `rank` of `size` writes to.
#[pyfunction]
fn _mpi_producer_partitions(
    map: &str,
    rank: usize,
    size: usize,
    num_partitions: usize,
) -> PyResult<Vec<usize>> {
    partition_map(map)?
        .producer_partitions(rank, size, num_partitions)
        .py_err()
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(_mpi_library_version, m)?)?;
    m.add_function(wrap_pyfunction!(_mpi_create_or_open_topic, m)?)?;
    m.add_function(wrap_pyfunction!(_mpi_flush, m)?)?;
    m.add_function(wrap_pyfunction!(_mpi_end_of_stream, m)?)?;
    m.add_function(wrap_pyfunction!(_mpi_end_step, m)?)?;
    m.add_function(wrap_pyfunction!(_mpi_consumer_partitions, m)?)?;
    m.add_function(wrap_pyfunction!(_mpi_producer_partitions, m)?)?;
    Ok(())
}
