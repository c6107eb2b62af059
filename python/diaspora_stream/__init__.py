"""diaspora-stream: stream events between HPC programs through partitioned topics.

``diaspora_stream.api`` has the classes and names of the C++ reference's Python package
(``Driver``, ``TopicHandle``, ``Producer``, ``Consumer``, ``Event``, ``DataDescriptor``...);
``diaspora_stream.mpi`` has the collective helpers for mpi4py programs (in a build with MPI).
"""

import signal as _signal

from . import _native
from ._native import __version__  # noqa: F401

if _native.LINKS_MERCURY:
    # Mercury's transports load libraries that replace the process's SIGINT and SIGTERM handlers
    # when they are loaded (with handlers that exit with status 1): give Python its own back, so
    # that Ctrl-C still raises KeyboardInterrupt and SIGTERM still terminates.
    for _sig in (_signal.SIGINT, _signal.SIGTERM):
        try:
            _signal.signal(_sig, _signal.getsignal(_sig))
        except (ValueError, TypeError):  # not the main thread, or a handler set outside Python
            pass
