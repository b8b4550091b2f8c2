"""osdkit: a Ceph-style daemon runtime (config, log, perf counters, admin socket, timers,
the msgr2 messenger), and a monitor, OSDs and a client hosted in-process (``Cluster``,
``Client``).

Library threads never run Python code: every callable given to osdkit runs on a thread
owned by the object it was given to (named ``osdkit-py-cb``). Call ``close()`` or use the
objects as context managers; whatever is still open is closed at interpreter exit.
"""

import atexit as _atexit

from . import _native
from ._native import (
    Client,
    Cluster,
    Connection,
    Context,
    Finisher,
    Message,
    MessageIterator,
    Messenger,
    Monitor,
    Osd,
    PerfCounters,
    SafeTimer,
    Throttle,
    admin_command,
    asok_request,
    version,
)

from .rados import Error, Ioctx, Rados, ReadOpCtx, WriteOpCtx

__version__: str = _native.__version__

__all__ = [
    "Client",
    "Cluster",
    "Connection",
    "Context",
    "Error",
    "Finisher",
    "Ioctx",
    "Message",
    "MessageIterator",
    "Messenger",
    "Monitor",
    "Osd",
    "PerfCounters",
    "Rados",
    "ReadOpCtx",
    "SafeTimer",
    "Throttle",
    "admin_command",
    "asok_request",
    "WriteOpCtx",
    "version",
]

# Joins the callback threads while the interpreter can still run their last jobs.
_atexit.register(_native._close_all)
