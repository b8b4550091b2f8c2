"""``osdkit.Rados`` and ``Ioctx``: the object client in python-rados' shape.

A script written for Debian's ``python3-rados`` (``rados.Rados(conffile=...)``,
``connect()``, ``open_ioctx(pool)``, ``write_full``, ``read``, ``stat``, ...) runs against an
osdkit cluster with ``osdkit.Rados`` in its place. Errors are ``osdkit.Error`` (an ``OSError``
with Ceph's errno) or the subclass python-rados raises for that errno: ``ObjectNotFound``,
``ObjectExists``, ``NoData``, ``PermissionError``, ``TimedOut``, ``InvalidArgumentError``.
Under it is the native ``osdkit.Client`` (the library's ``client::Rados``).
"""

import asyncio as _asyncio
import errno as _errno
import functools as _functools
import json as _json
import threading as _threading
import time as _time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from ._native import Client as _Client

__all__ = [
    "Error",
    "ObjectNotFound",
    "ObjectExists",
    "NoData",
    "PermissionError",
    "TimedOut",
    "InvalidArgumentError",
    "Rados",
    "Ioctx",
    "Object",
    "Completion",
    "WriteOp",
    "ReadOp",
    "WriteOpCtx",
    "ReadOpCtx",
    "OmapIterator",
    "LIBRADOS_CREATE_EXCLUSIVE",
]

LIBRADOS_CREATE_EXCLUSIVE = 1


class Error(OSError):
    """A failed call: ``errno`` is Ceph's errno, ``strerror`` its text."""


class ObjectNotFound(Error):
    pass


class ObjectExists(Error):
    pass


class NoData(Error):
    pass


class PermissionError(Error):  # noqa: A001 - python-rados' name
    pass


class TimedOut(Error):
    pass


class InvalidArgumentError(Error):
    pass


_BY_ERRNO = {
    _errno.ENOENT: ObjectNotFound,
    _errno.EEXIST: ObjectExists,
    _errno.ENODATA: NoData,
    _errno.EPERM: PermissionError,
    _errno.EACCES: PermissionError,
    _errno.ETIMEDOUT: TimedOut,
    _errno.EINVAL: InvalidArgumentError,
}


def _error(e: OSError) -> Error:
    cls = _BY_ERRNO.get(e.errno or 0, Error)
    return cls(e.errno, e.strerror if e.strerror else str(e))


def _converts(f: Callable) -> Callable:
    """Raises the native OSError as the python-rados-shaped class for its errno."""

    @_functools.wraps(f)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return f(*args, **kwargs)
        except Error:
            raise
        except OSError as e:
            raise _error(e) from e

    return wrapper


class Rados:
    """A connection to a cluster, made from a config file (``conffile``; its ``mon_host``)
    as ``rados.Rados`` is. ``name`` is the client's entity (``client.admin``); python-rados'
    ``rados_id="admin"`` is accepted too."""

    def __init__(
        self,
        conffile: Optional[str] = None,
        name: Optional[str] = None,
        rados_id: Optional[str] = None,
        conf: Optional[Dict[str, str]] = None,
    ) -> None:
        if conffile is None:
            raise InvalidArgumentError(_errno.EINVAL, "osdkit.Rados needs conffile= (a file with mon_host)")
        if conf:
            raise InvalidArgumentError(_errno.EINVAL, "conf= overrides are not supported; put them in conffile")
        self.conffile = conffile
        self.name = name or ("client." + rados_id if rados_id else "client.admin")
        self._client: Optional[_Client] = None
        self.state = "configuring"

    @_converts
    def connect(self, timeout: int = 0) -> None:
        """Reads the config file and connects to its monitor (waits for the first map)."""
        if self._client is None:
            self._client = _Client.from_conf(self.conffile, self.name)
        self.state = "connected"

    def shutdown(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        self.state = "shutdown"

    def __enter__(self) -> "Rados":
        self.connect()
        return self

    def __exit__(self, *exc: Any) -> bool:
        self.shutdown()
        return False

    def _c(self) -> _Client:
        if self._client is None:
            raise Error(_errno.ENOTCONN, "not connected: call connect() first")
        return self._client

    @_converts
    def mon_command(self, cmd: str, inbuf: bytes = b"", timeout: int = 0) -> Tuple[int, bytes, str]:
        """``(ret, outbuf, outs)`` as python-rados returns them; ``ret`` is ``-errno`` on failure."""
        try:
            outs, outbuf = self._c().mon_command(cmd)
        except OSError as e:
            return (-(e.errno or _errno.EIO), b"", e.strerror or str(e))
        return (0, outbuf, outs)

    @_converts
    def list_pools(self) -> List[str]:
        ret, out, outs = self.mon_command(_json.dumps({"prefix": "osd pool ls", "format": "json"}))
        if ret < 0:
            raise _error(OSError(-ret, outs))
        return list(_json.loads(out))

    def pool_exists(self, pool_name: str) -> bool:
        return pool_name in self.list_pools()

    @_converts
    def create_pool(self, pool_name: str, pg_num: int = 32, size: int = 1) -> None:
        """Creates the pool and waits until this client's map has it, so ``open_ioctx`` and
        writes work at once (as python-rados' ``create_pool`` does)."""
        self._c().pool_create(pool_name, pg_num, size)

    @_converts
    def delete_pool(self, pool_name: str) -> None:
        self._c().pool_delete(pool_name)

    @_converts
    def open_ioctx(self, ioctx_name: str) -> "Ioctx":
        """A handle on pool ``ioctx_name``; ``ObjectNotFound`` if it does not exist."""
        if ioctx_name not in self.list_pools():
            raise ObjectNotFound(_errno.ENOENT, "pool '%s' does not exist" % ioctx_name)
        return Ioctx(self, ioctx_name)


class Object:
    """One entry of ``Ioctx.list_objects()``."""

    def __init__(self, ioctx: "Ioctx", key: str) -> None:
        self.ioctx = ioctx
        self.key = key
        self.nspace = ""

    def __repr__(self) -> str:
        return "rados.Object(ioctx=%s,key=%s)" % (self.ioctx.name, self.key)


class Completion:
    """An async call's completion (python-rados' ``Completion``), also awaitable from asyncio:
    ``await ioctx.aio_write(...)`` gives the return value."""

    def __init__(self, oncomplete: Optional[Callable[["Completion"], Any]] = None) -> None:
        self._done = _threading.Event()
        self._ret = 0
        self._data: Optional[bytes] = None
        self._oncomplete = oncomplete
        self._waiters: List[Tuple[Any, Any]] = []
        self._lock = _threading.Lock()

    def _finish(self, ret: int, data: Optional[bytes]) -> None:
        self._ret, self._data = ret, data
        with self._lock:
            self._done.set()
            waiters, self._waiters = self._waiters, []
        for loop, fut in waiters:
            loop.call_soon_threadsafe(_resolve, fut, ret)
        if self._oncomplete is not None:
            self._oncomplete(self)

    def is_complete(self) -> bool:
        return self._done.is_set()

    def wait_for_complete(self) -> None:
        self._done.wait()

    def wait_for_complete_and_cb(self) -> None:
        self._done.wait()

    def get_return_value(self) -> int:
        """0 (or the bytes read, for a read) on success, ``-errno`` on failure."""
        return self._ret

    def __await__(self) -> Any:
        loop = _asyncio.get_running_loop()
        fut = loop.create_future()
        with self._lock:
            if self._done.is_set():
                fut.set_result(self._ret)
            else:
                self._waiters.append((loop, fut))
        return fut.__await__()


def _resolve(fut: Any, ret: int) -> None:
    if not fut.done():
        fut.set_result(ret)


class WriteOp:
    """Write ops on one object collected, then sent by ``Ioctx.operate_write_op`` as one
    request that applies atomically (python-rados' ``WriteOp``)."""

    def __init__(self) -> None:
        self._ops: List[Any] = []

    def release(self) -> None:
        self._ops = []

    def new(self, exclusive: Optional[int] = None) -> None:
        self._ops.append(("create", bool(exclusive)))

    def remove(self) -> None:
        self._ops.append(("remove",))

    def write(self, to_write: bytes, offset: int = 0) -> None:
        self._ops.append(("write", offset, bytes(to_write)))

    def write_full(self, to_write: bytes) -> None:
        self._ops.append(("write_full", bytes(to_write)))

    def append(self, to_append: bytes) -> None:
        self._ops.append(("append", bytes(to_append)))

    def truncate(self, offset: int) -> None:
        self._ops.append(("truncate", offset))

    def zero(self, offset: int, length: int) -> None:
        self._ops.append(("zero", offset, length))

    def set_xattr(self, xattr_name: str, xattr_value: bytes) -> None:
        self._ops.append(("setxattr", xattr_name, bytes(xattr_value)))

    def rm_xattr(self, xattr_name: str) -> None:
        self._ops.append(("rmxattr", xattr_name))


class WriteOpCtx(WriteOp):
    """``WriteOp`` as a context manager (``with rados.WriteOpCtx() as op:``)."""

    def __enter__(self) -> "WriteOpCtx":
        return self

    def __exit__(self, *exc: Any) -> bool:
        self.release()
        return False


class OmapIterator:
    """``(key, value)`` pairs of an omap read, filled in by ``Ioctx.operate_read_op``; keys
    are ``str``, values ``bytes`` (``None`` for ``get_omap_keys``)."""

    def __init__(self, keys_only: bool = False, prefix: str = "") -> None:
        self._items: List[Tuple[str, Optional[bytes]]] = []
        self._keys_only = keys_only
        self._prefix = prefix

    def _fill(self, vals: Dict[str, bytes]) -> None:
        self._items = [
            (k, None if self._keys_only else v) for k, v in sorted(vals.items()) if k.startswith(self._prefix)
        ]

    def __iter__(self) -> Iterator[Tuple[str, Optional[bytes]]]:
        return iter(list(self._items))


class ReadOp:
    """Read ops on one object collected, then sent by ``Ioctx.operate_read_op`` as one
    request; each ``get_omap_*`` call returns an ``OmapIterator`` filled in then."""

    def __init__(self) -> None:
        self._ops: List[Any] = []
        self._sinks: List[Optional[OmapIterator]] = []

    def release(self) -> None:
        self._ops = []
        self._sinks = []

    def _add(self, op: Any, sink: Optional[OmapIterator]) -> None:
        self._ops.append(op)
        self._sinks.append(sink)


class ReadOpCtx(ReadOp):
    """``ReadOp`` as a context manager (``with rados.ReadOpCtx() as op:``)."""

    def __enter__(self) -> "ReadOpCtx":
        return self

    def __exit__(self, *exc: Any) -> bool:
        self.release()
        return False


class Ioctx:
    """One pool of a ``Rados`` (python-rados' ``Ioctx``)."""

    def __init__(self, rados: Rados, name: str) -> None:
        self.rados = rados
        self.name = name

    def _c(self) -> _Client:
        return self.rados._c()

    def close(self) -> None:
        pass

    def __enter__(self) -> "Ioctx":
        return self

    def __exit__(self, *exc: Any) -> bool:
        return False

    @_converts
    def write(self, key: str, data: bytes, offset: int = 0) -> None:
        self._c().operate(self.name, key, [("write", offset, bytes(data))])

    @_converts
    def write_full(self, key: str, data: bytes) -> None:
        self._c().operate(self.name, key, [("write_full", bytes(data))])

    @_converts
    def append(self, key: str, data: bytes) -> None:
        self._c().operate(self.name, key, [("append", bytes(data))])

    @_converts
    def read(self, key: str, length: int = 8192, offset: int = 0) -> bytes:
        return self._c().operate(self.name, key, [("read", offset, length)])[0]

    @_converts
    def stat(self, key: str) -> Tuple[int, _time.struct_time]:
        """``(size, mtime)``, the mtime a ``time.struct_time`` in local time as python-rados
        gives it."""
        size, mtime = self._c().operate(self.name, key, [("stat",)])[0]
        return (size, _time.localtime(mtime))

    @_converts
    def remove_object(self, key: str) -> bool:
        self._c().operate(self.name, key, [("remove",)])
        return True

    @_converts
    def trunc(self, key: str, size: int) -> int:
        self._c().operate(self.name, key, [("truncate", size)])
        return 0

    @_converts
    def get_xattr(self, key: str, xattr_name: str) -> bytes:
        return self._c().operate(self.name, key, [("getxattr", xattr_name)])[0]

    @_converts
    def set_xattr(self, key: str, xattr_name: str, xattr_value: bytes) -> bool:
        self._c().operate(self.name, key, [("setxattr", xattr_name, bytes(xattr_value))])
        return True

    @_converts
    def rm_xattr(self, key: str, xattr_name: str) -> bool:
        self._c().operate(self.name, key, [("rmxattr", xattr_name)])
        return True

    @_converts
    def get_xattrs(self, oid: str) -> Iterator[Tuple[str, bytes]]:
        """``(name, value)`` pairs, in name order."""
        return iter(sorted(self._c().operate(self.name, oid, [("getxattrs",)])[0].items()))

    @_converts
    def list_objects(self) -> Iterator[Object]:
        return iter([Object(self, k) for k in self._c().list(self.name)])

    @_converts
    def set_omap_values(self, key: str, values: Dict[str, bytes]) -> None:
        """The omap entries ``values`` set, creating the object (python-rados does this with a
        ``WriteOpCtx`` and ``set_omap``)."""
        self._c().operate(self.name, key, [("omap_set", {k: bytes(v) for k, v in values.items()})])

    @_converts
    def get_omap_values(self, key: str, keys: Optional[List[str]] = None) -> Dict[str, bytes]:
        """The omap entries of ``keys`` that exist, or every entry (python-rados: a
        ``ReadOpCtx`` with ``get_omap_vals`` / ``get_omap_vals_by_keys``)."""
        return self._c().operate(self.name, key, [("omap_get", keys)])[0]

    @_converts
    def remove_omap_keys(self, op_or_key: Any, keys: List[str]) -> None:
        """python-rados' form adds the removal to a ``WriteOp``; given an object name instead,
        the keys are removed at once."""
        if isinstance(op_or_key, WriteOp):
            op_or_key._ops.append(("omap_rm", list(keys)))
        else:
            self._c().operate(self.name, op_or_key, [("omap_rm", list(keys))])

    def set_omap(self, write_op: WriteOp, keys: Any, values: Any) -> None:
        """Adds "set these omap entries" to ``write_op`` (python-rados)."""
        keys, values = list(keys), list(values)
        if len(keys) != len(values):
            raise InvalidArgumentError(_errno.EINVAL, "keys and values differ in length")
        write_op._ops.append(("omap_set", {k: bytes(v) for k, v in zip(keys, values)}))

    def get_omap_vals(
        self, read_op: ReadOp, start_after: str, filter_prefix: str, max_return: int
    ) -> Tuple[OmapIterator, int]:
        """Adds "up to ``max_return`` entries after ``start_after``" to ``read_op``; the
        iterator is filled by ``operate_read_op``. ``filter_prefix`` is applied to the page
        the OSD returns (Ceph's OSD applies it before counting)."""
        it = OmapIterator(prefix=filter_prefix or "")
        read_op._add(("omap_get_vals", start_after or "", int(max_return)), it)
        return it, 0

    def get_omap_keys(self, read_op: ReadOp, start_after: str, max_return: int) -> Tuple[OmapIterator, int]:
        it = OmapIterator(keys_only=True)
        read_op._add(("omap_get_vals", start_after or "", int(max_return)), it)
        return it, 0

    def get_omap_vals_by_keys(self, read_op: ReadOp, keys: Any) -> Tuple[OmapIterator, int]:
        it = OmapIterator()
        read_op._add(("omap_get", list(keys)), it)
        return it, 0

    @_converts
    def operate_write_op(self, write_op: WriteOp, oid: str, mtime: int = 0, flags: int = 0) -> None:
        """Sends ``write_op``'s ops on ``oid`` as one request: all apply, or none."""
        self._c().operate(self.name, oid, list(write_op._ops))

    @_converts
    def operate_read_op(self, read_op: ReadOp, oid: str, flag: int = 0) -> None:
        """Sends ``read_op``'s ops on ``oid`` as one request and fills its iterators."""
        results = self._c().operate(self.name, oid, list(read_op._ops))
        for sink, r in zip(read_op._sinks, results):
            if sink is not None:
                sink._fill(r)

    def _aio(self, key: str, ops: List[Any], oncomplete: Optional[Callable], read: bool) -> Completion:
        comp = Completion(oncomplete)

        def done(result: Optional[List[Any]], err: Optional[OSError]) -> None:
            if err is not None:
                comp._finish(-(err.errno or _errno.EIO), None)
            elif read:
                data = result[0] if result else b""
                comp._finish(len(data), data)
            else:
                comp._finish(0, None)

        self._c().operate_async(self.name, key, ops, done)
        return comp

    def aio_write(
        self, key: str, data: bytes, offset: int = 0, oncomplete: Optional[Callable] = None
    ) -> Completion:
        return self._aio(key, [("write", offset, bytes(data))], oncomplete, False)

    def aio_write_full(self, key: str, data: bytes, oncomplete: Optional[Callable] = None) -> Completion:
        return self._aio(key, [("write_full", bytes(data))], oncomplete, False)

    def aio_read(
        self,
        key: str,
        length: int,
        offset: int,
        oncomplete: Optional[Callable[[Completion, Optional[bytes]], Any]] = None,
    ) -> Completion:
        """As python-rados: ``oncomplete(completion, data)``; ``get_return_value()`` is the
        number of bytes read or ``-errno``."""
        cb = None
        if oncomplete is not None:

            def cb(c: Completion) -> None:
                oncomplete(c, c._data)

        return self._aio(key, [("read", offset, length)], cb, True)
