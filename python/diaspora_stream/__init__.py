"""diaspora-stream: stream events between HPC programs through partitioned topics.

``diaspora_stream.api`` has the classes and names of the C++ reference's Python package
(``Driver``, ``TopicHandle``, ``Producer``, ``Consumer``, ``Event``, ``DataDescriptor``...);
``diaspora_stream.mpi`` has the collective helpers for mpi4py programs (in a build with MPI).
"""

from ._native import __version__  # noqa: F401
