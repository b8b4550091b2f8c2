"""pytest plugin (entry point ``pytest11: osdkit``): fixtures giving started osdkit contexts.

``osdkit_context``: a started ``Context("osd.0")`` whose run_dir (and so admin socket) is in
the test's temporary directory; closed after the test.

``osdkit_context_factory``: ``make(name="osd.0", **options)`` returns another started context,
each with its own run_dir; all are closed after the test, newest first.

``osdkit_cluster_factory``: ``make(osds=3, store="mem")`` returns a started in-process
``Cluster`` (a monitor, ``osds`` OSDs and the pool ``data``) in its own directory; all are closed
after the test, newest first, even when the test fails.

``osdkit_cluster``: a three-OSD ``mem`` cluster; ``osdkit_client``: a ``Client`` connected to it.
Both last one test: a test that stops OSDs or fills the store leaves nothing for the next.
"""

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, List

import pytest

from ._native import Client, Cluster, Context

# sun_path holds 108 bytes; leave room for "/ceph-<name>.asok".
_MAX_RUN_DIR = 80


def _run_dir(base: Path, n: int, cleanup: List[str]) -> str:
    d = str(base / f"run{n}")
    if len(d) > _MAX_RUN_DIR:
        # pytest's tmp_path can be too deep for a Unix socket path.
        d = tempfile.mkdtemp(prefix="osdkit-")
        cleanup.append(d)
    return d


@pytest.fixture
def osdkit_context_factory(tmp_path: Path) -> Iterator[Callable[..., Context]]:
    made: List[Context] = []
    cleanup: List[str] = []

    def make(name: str = "osd.0", **options: Any) -> Context:
        if "run_dir" not in options:
            options["run_dir"] = _run_dir(tmp_path, len(made), cleanup)
        os.makedirs(str(options["run_dir"]), exist_ok=True)
        ctx = Context(name, **options)
        made.append(ctx)
        ctx.start()
        return ctx

    try:
        yield make
    finally:
        for ctx in reversed(made):
            ctx.close()
        for d in cleanup:
            shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def osdkit_context(osdkit_context_factory: Callable[..., Context]) -> Context:
    return osdkit_context_factory("osd.0")


@pytest.fixture
def osdkit_cluster_factory(tmp_path: Path) -> Iterator[Callable[..., Cluster]]:
    made: List[Cluster] = []

    def make(osds: int = 3, store: str = "mem") -> Cluster:
        d = tmp_path / f"cluster{len(made)}"
        d.mkdir()
        c = Cluster(str(d), osds=osds, store=store)
        made.append(c)
        return c

    try:
        yield make
    finally:
        for c in reversed(made):
            c.close()


@pytest.fixture
def osdkit_cluster(osdkit_cluster_factory: Callable[..., Cluster]) -> Cluster:
    return osdkit_cluster_factory()


@pytest.fixture
def osdkit_client(osdkit_cluster: Cluster) -> Iterator[Client]:
    with Client(osdkit_cluster.mon_addr) as c:
        yield c
