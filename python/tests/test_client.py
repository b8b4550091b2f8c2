"""A monitor and OSDs hosted in this process (osdkit.Cluster) and a client (osdkit.Client):
round trips, several ops as one, errnos as OSError, async completions, kv durability across an
OSD restart."""

import errno
import threading
import time

import pytest

import osdkit


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with osdkit.Cluster(str(tmp_path_factory.mktemp("cluster")), osds=3) as c:
        yield c


@pytest.fixture
def client(cluster):
    with osdkit.Client(cluster.mon_addr) as c:
        yield c


def test_cluster_addresses(cluster):
    assert cluster.mon_addr.startswith("v2:127.0.0.1:")
    addrs = cluster.osd_addrs
    assert len(addrs) == 3 and all(a and a.startswith("v2:127.0.0.1:") for a in addrs)
    assert len(set(addrs)) == 3


def test_put_get_stat_remove_list(client):
    client.put("data", "greeting", b"hello, osd")
    assert client.get("data", "greeting") == b"hello, osd"
    size, mtime = client.stat("data", "greeting")
    assert size == 10
    assert abs(mtime - time.time()) < 60
    client.put("data", "greeting", bytearray(b"bye"))  # replaces the data
    assert client.get("data", "greeting") == b"bye"
    names = [f"obj-{i:02d}" for i in range(25)]
    for n in names:
        client.put("data", n, n.encode())
    listed = client.list("data")
    assert listed == sorted(listed)
    assert set(names) | {"greeting"} <= set(listed)
    for n in names:
        assert client.get("data", n) == n.encode()
        client.remove("data", n)
    assert not set(names) & set(client.list("data"))
    client.put("data", "empty", b"")
    assert client.get("data", "empty") == b""
    assert client.stat("data", "empty")[0] == 0


def test_xattrs_and_omap(client):
    client.setxattr("data", "x", "owner", b"me")
    assert client.getxattr("data", "x", "owner") == b"me"
    with pytest.raises(OSError) as ei:
        client.getxattr("data", "x", "missing")
    assert ei.value.errno == errno.ENODATA
    client.omap_set("data", "x", {"a": b"1", "b": b"2", "c": b""})
    assert client.omap_get("data", "x") == {"a": b"1", "b": b"2", "c": b""}
    assert client.omap_get("data", "x", ["b", "zz"]) == {"b": b"2"}
    with pytest.raises(TypeError):
        client.omap_set("data", "x", {"a": "not bytes"})


def test_errnos(client):
    with pytest.raises(FileNotFoundError) as ei:
        client.get("data", "no-such-object")
    assert ei.value.errno == errno.ENOENT
    with pytest.raises(FileNotFoundError):
        client.stat("data", "no-such-object")
    with pytest.raises(FileNotFoundError):
        client.remove("data", "no-such-object")
    with pytest.raises(FileNotFoundError):
        client.put("no-such-pool", "x", b"1")
    with pytest.raises(FileNotFoundError):
        client.list("no-such-pool")
    client.put("data", "exists", b"1")
    with pytest.raises(FileExistsError) as ei:
        client.operate("data", "exists", [("create", True)])
    assert ei.value.errno == errno.EEXIST


def test_bad_arguments(tmp_path):
    with pytest.raises(OSError) as ei:
        osdkit.Client("not an address")
    assert ei.value.errno == errno.EINVAL
    with pytest.raises(OSError) as ei:
        osdkit.Cluster(str(tmp_path), osds=1, store="bogus")
    assert ei.value.errno == errno.EINVAL


def test_operate_several_ops_as_one(client):
    r = client.operate(
        "data",
        "multi",
        [
            ("create", True),
            ("write_full", b"abc"),
            ("append", b"def"),
            ("setxattr", "k", b"v"),
            ("omap_set", {"m": b"1"}),
        ],
    )
    assert r == [None] * 5
    r = client.operate(
        "data",
        "multi",
        [("read",), ("read", 1, 2), ("stat",), ("getxattr", "k"), ("omap_get",), ("omap_get", ["m", "q"])],
    )
    assert r[0] == b"abcdef" and r[1] == b"bc"
    assert r[2][0] == 6
    assert r[3] == b"v"
    assert r[4] == {"m": b"1"} and r[5] == {"m": b"1"}


def test_failed_multi_op_leaves_no_trace(client):
    # On a new object: the last op fails, nothing is created.
    with pytest.raises(FileExistsError):
        client.operate("data", "atomic", [("write_full", b"x"), ("setxattr", "a", b"b"), ("create", True)])
    with pytest.raises(FileNotFoundError):
        client.stat("data", "atomic")
    assert "atomic" not in client.list("data")
    # On an existing object: a failed compare undoes the writes before it.
    client.put("data", "atomic2", b"original")
    client.setxattr("data", "atomic2", "ver", b"1")
    with pytest.raises(OSError) as ei:
        client.operate(
            "data",
            "atomic2",
            [("write_full", b"clobbered"), ("omap_set", {"k": b"v"}), ("cmpxattr", "ver", b"2")],
        )
    assert ei.value.errno == errno.ECANCELED
    assert client.get("data", "atomic2") == b"original"
    assert client.omap_get("data", "atomic2") == {}
    # A passing compare lets the rest apply.
    client.operate("data", "atomic2", [("cmpxattr", "ver", b"1"), ("write_full", b"next")])
    assert client.get("data", "atomic2") == b"next"


def test_bad_ops_are_refused_before_sending(client):
    with pytest.raises(ValueError):
        client.operate("data", "x", [])
    with pytest.raises(ValueError):
        client.operate("data", "x", [("frobnicate",)])
    with pytest.raises(ValueError):
        client.operate("data", "x", [("write_full",)])
    with pytest.raises(TypeError):
        client.operate("data", "x", ["write_full"])
    with pytest.raises(TypeError):
        client.operate("data", "x", [("write_full", "str, not bytes")])


def test_operate_async_runs_callback_on_binding_thread(client):
    done = threading.Event()
    got = {}

    def cb(result, error):
        got["result"], got["error"] = result, error
        got["thread"] = osdkit._native._current_thread_name()
        done.set()

    client.operate_async("data", "async", [("write_full", b"later"), ("stat",)], cb)
    assert done.wait(30)
    assert got["error"] is None
    assert got["result"][0] is None and got["result"][1][0] == 5
    assert got["thread"] == "osdkit-py-cb"
    assert client.get("data", "async") == b"later"

    done.clear()
    client.operate_async("data", "async", [("create", True)], cb)
    assert done.wait(30)
    assert got["result"] is None
    assert isinstance(got["error"], FileExistsError)

    done.clear()
    client.operate_async("nopool", "async", [("stat",)], cb)
    assert done.wait(30)
    assert isinstance(got["error"], FileNotFoundError)


def test_closed_objects_refuse_calls(cluster):
    c = osdkit.Client(cluster.mon_addr, name="client.closing")
    c.put("data", "c", b"1")
    c.close()
    c.close()  # idempotent
    assert c.closed
    with pytest.raises(RuntimeError):
        c.get("data", "c")


def test_kv_store_survives_osd_restart(tmp_path):
    with osdkit.Cluster(str(tmp_path), osds=2, store="kv") as cl, osdkit.Client(cl.mon_addr) as c:
        objs = {f"durable-{i}": f"value {i}".encode() * (i + 1) for i in range(20)}
        for k, v in objs.items():
            c.put("data", k, v)
        c.setxattr("data", "durable-0", "x", b"y")
        c.omap_set("data", "durable-1", {"k": b"v"})
        for osd in (0, 1):
            cl.stop_osd(osd)
            assert cl.osd_addrs[osd] is None
            with pytest.raises(FileNotFoundError):
                cl.stop_osd(osd)
            cl.start_osd(osd)
            with pytest.raises(FileExistsError):
                cl.start_osd(osd)
        with pytest.raises(OSError) as ei:
            cl.stop_osd(9)
        assert ei.value.errno == errno.EINVAL
        for k, v in objs.items():
            assert c.get("data", k) == v
        assert c.getxattr("data", "durable-0", "x") == b"y"
        assert c.omap_get("data", "durable-1") == {"k": b"v"}
        assert sorted(objs) == [n for n in c.list("data") if n.startswith("durable-")]
    assert cl.closed
    with pytest.raises(RuntimeError):
        cl.mon_addr
