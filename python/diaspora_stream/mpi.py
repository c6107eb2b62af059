"""Collective helpers for MPI programs, on mpi4py communicators.

Available when the package was built with MPI (``MATURIN_PEP517_ARGS="--features mpi" pip
install .``), with mpi4py running on the same MPI library. Every helper is collective over the
communicator it is given, and every rank gets the same outcome: an error on one rank raises on
all of them, naming the ranks that failed.

Example (the analysis side of a coupled job)::

    from mpi4py import MPI
    from diaspora_stream.api import Driver
    from diaspora_stream import mpi as dmpi

    comm = MPI.COMM_WORLD
    driver = Driver(backend="files", options={"root_path": "/scratch/run42"})
    topic = dmpi.create_or_open_topic(comm, driver, "snapshots", {"num_partitions": 4})
    mine = dmpi.consumer_partitions(comm, topic)
    consumer = topic.consumer("analysis", targets=mine)
"""

from . import _native
from .api import Exception as _DiasporaException

__all__ = [
    "available",
    "create_or_open_topic",
    "consumer_partitions",
    "producer_partitions",
    "flush",
    "end_step",
    "end_of_stream",
]

#: True when this build of the package has the MPI helpers.
available = bool(_native.MPI_SUPPORT)


def _handle(comm):
    if not available:
        raise _DiasporaException(
            "diaspora_stream was built without MPI: rebuild it with "
            "MATURIN_PEP517_ARGS='--features mpi' pip install ."
        )
    from mpi4py import MPI

    ours = _native._mpi_library_version().split(",")[0].split()[:2]
    theirs = MPI.Get_library_version().split(",")[0].split()[:2]
    if ours != theirs:
        raise _DiasporaException(
            f"mpi4py runs on {' '.join(theirs)} but diaspora_stream was built with "
            f"{' '.join(ours)}: both must use the same MPI library"
        )
    return MPI._handleof(comm)


def create_or_open_topic(comm, driver, name, options=None):
    """Rank 0 creates topic ``name`` if it does not exist; then every rank opens it."""
    return _native._mpi_create_or_open_topic(_handle(comm), driver, name, options)


def consumer_partitions(comm, topic, partition_map="block"):
    """The partitions this rank reads when the ranks of ``comm`` share the topic's partitions
    (``"block"``: contiguous ranges, ``"cyclic"``: round robin); together they cover every
    partition once."""
    return _native._mpi_consumer_partitions(
        partition_map, comm.Get_rank(), comm.Get_size(), len(topic.partitions)
    )


def producer_partitions(comm, topic, partition_map="block"):
    """The partitions this rank writes to (never empty)."""
    return _native._mpi_producer_partitions(
        partition_map, comm.Get_rank(), comm.Get_size(), len(topic.partitions)
    )


def flush(comm, producer):
    """Flushes ``producer`` on every rank of ``comm``."""
    _native._mpi_flush(_handle(comm), producer)


def end_step(comm, producer, step):
    """Every rank of ``comm`` closes step ``step``; consumers see it complete once all did."""
    _native._mpi_end_step(_handle(comm), producer, step)


def end_of_stream(comm, producer):
    """Every rank of ``comm`` ends its stream; consumers get the end-of-stream marker once all
    did."""
    _native._mpi_end_of_stream(_handle(comm), producer)
