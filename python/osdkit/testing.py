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

``osdkit_hosted_cluster_factory``: ``make(osds=3, store="mem", size=2, **options)`` hosts a
``Monitor`` and ``osds`` ``Osd`` instances in the test process, each with its admin socket
(``ceph-osd.N.asok``) and log, from a conf file it writes (``<cluster>.conf``, so ``ceph.conf``
for the first: ``osdkit status -c``, ``osdkit.Rados(conffile=...)`` and the ``ceph`` CLI's
``daemon osd.N ...`` read it), with the pool ``data``; stopped after the test.
``osdkit_hosted_cluster`` is one with three OSDs.

``osdkit_conf``: the conf file of the cluster under test: the one given with
``pytest --osdkit-conf PATH`` (an existing cluster, e.g. one ``osdkit vstart`` made), else a
fresh hosted cluster's. ``osdkit_rados``: an ``osdkit.Rados`` connected with it.
"""

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List

import pytest

from ._native import Client, Cluster, Context, Monitor, Osd

# sun_path holds 108 bytes; leave room for "/ceph-<name>.asok".
_MAX_RUN_DIR = 80


def _run_dir(base: Path, n: int, cleanup: List[str]) -> str:
    d = str(base / f"run{n}")
    if len(d) > _MAX_RUN_DIR:
        # pytest's tmp_path can be too deep for a Unix socket path.
        d = tempfile.mkdtemp(prefix="osdkit-")
        cleanup.append(d)
    return d


def _closing(make: Any, made: List[Any], cleanup: List[str]) -> Iterator[Any]:
    """A factory fixture's body: yields `make`, then closes what it made, newest first, and
    removes the scratch directories, whatever the test did."""
    try:
        yield make
    finally:
        for x in reversed(made):
            x.close()
        for d in cleanup:
            shutil.rmtree(d, ignore_errors=True)


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

    yield from _closing(make, made, cleanup)


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

    yield from _closing(make, made, [])


@pytest.fixture
def osdkit_cluster(osdkit_cluster_factory: Callable[..., Cluster]) -> Cluster:
    return osdkit_cluster_factory()


@pytest.fixture
def osdkit_client(osdkit_cluster: Cluster) -> Iterator[Client]:
    with Client(osdkit_cluster.mon_addr) as c:
        yield c


def pytest_addoption(parser: Any) -> None:
    parser.addoption(
        "--osdkit-conf",
        action="store",
        default=None,
        help="conf file of an existing osdkit cluster for the osdkit_conf / osdkit_rados fixtures",
    )


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HostedCluster:
    """A monitor and OSDs hosted in this process from one conf file (see the fixtures)."""

    def __init__(
        self, d: Path, run_dir: str, cluster: str, osds: int, store: str, size: int, options: Dict[str, Any]
    ) -> None:
        self.dir = d
        # Named after the cluster, as Ceph's tools expect: `ceph -c ceph.conf daemon osd.0 ...`
        # (ceph-conf takes $cluster from the conf file's name) finds this cluster's sockets.
        self.conf = str(d / ("%s.conf" % cluster))
        lines = [
            "[global]",
            "mon_host = v2:127.0.0.1:%d" % _free_port(),
            "run_dir = %s" % run_dir,
            "log_file = %s/$name.log" % d,
        ]
        lines += ["%s = %s" % (k, str(v).lower() if isinstance(v, bool) else v) for k, v in options.items()]
        lines += ["[mon]", "mon_data = %s/$name" % d, "[osd]", "osd_objectstore = %s" % store, "osd_data = %s/$name" % d]
        Path(self.conf).write_text("\n".join(lines) + "\n")
        # One process hosts one osd.N per cluster name: a second hosted cluster gets its own.
        self.cluster = cluster
        self.mon = Monitor("a", conf=self.conf, cluster=cluster)
        self.osds: List[Osd] = []
        try:
            self.mon.start()
            self.mon.wait_active(30)
            # As in Ceph, an OSD must exist in the map before it boots.
            for i in range(osds):
                ret, _, outs = self.mon.command(json.dumps({"prefix": "osd create", "id": i}))
                if ret != 0:
                    raise OSError(-ret, "osd create %d: %s" % (i, outs))
            self.osds = [Osd(i, conf=self.conf, cluster=cluster) for i in range(osds)]
            for o in self.osds:
                o.start()
            for o in self.osds:
                o.wait_active(60)
            from .rados import Rados

            with Rados(conffile=self.conf) as r:
                r.create_pool("data", pg_num=32, size=min(size, osds))
        except BaseException:
            self.close()
            raise

    def asok(self, name: str) -> str:
        """The admin socket path of ``osd.N`` or ``mon.a``."""
        for d in [self.mon] + self.osds:
            if d.name == name and d.asok_path:
                return d.asok_path
        raise KeyError(name)

    def close(self) -> None:
        for o in reversed(self.osds):
            o.close()
        self.mon.close()


@pytest.fixture
def osdkit_hosted_cluster_factory(tmp_path: Path) -> Iterator[Callable[..., HostedCluster]]:
    made: List[HostedCluster] = []
    cleanup: List[str] = []

    def make(osds: int = 3, store: str = "mem", size: int = 2, **options: Any) -> HostedCluster:
        d = tmp_path / f"hosted{len(made)}"
        d.mkdir()
        name = "ceph" if not made else "ceph%d" % len(made)
        c = HostedCluster(d, _run_dir(tmp_path, 100 + len(made), cleanup), name, osds, store, size, options)
        made.append(c)
        return c

    yield from _closing(make, made, cleanup)


@pytest.fixture
def osdkit_hosted_cluster(osdkit_hosted_cluster_factory: Callable[..., HostedCluster]) -> HostedCluster:
    return osdkit_hosted_cluster_factory()


@pytest.fixture
def osdkit_conf(request: Any) -> str:
    given = request.config.getoption("--osdkit-conf")
    if given:
        if not os.path.exists(given):
            pytest.fail("--osdkit-conf %s: no such file" % given)
        return str(given)
    return str(request.getfixturevalue("osdkit_hosted_cluster").conf)


@pytest.fixture
def osdkit_rados(osdkit_conf: str) -> Iterator[Any]:
    from .rados import Rados

    with Rados(conffile=osdkit_conf) as r:
        yield r
