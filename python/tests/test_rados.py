"""osdkit.Rados / Ioctx, python-rados' shape, against a cluster hosted in this process and
reached through a config file (mon_host), as a python-rados script reaches Ceph."""

import asyncio
import errno
import time

import pytest

import osdkit


@pytest.fixture(scope="module")
def conffile(tmp_path_factory):
    d = tmp_path_factory.mktemp("rados")
    with osdkit.Cluster(str(d / "cluster"), osds=2) as c:
        conf = d / "ceph.conf"
        conf.write_text("[global]\nmon_host = %s\n" % c.mon_addr)
        yield str(conf)


@pytest.fixture
def rados(conffile):
    with osdkit.Rados(conffile=conffile) as r:
        yield r


def test_connect_pools_and_errors(rados, conffile):
    assert rados.state == "connected"
    assert "data" in rados.list_pools() and rados.pool_exists("data")
    rados.create_pool("p1", pg_num=8)
    assert rados.pool_exists("p1")
    with pytest.raises(osdkit.rados.ObjectExists) as e:
        rados.create_pool("p1")
    assert e.value.errno == errno.EEXIST and isinstance(e.value, OSError)
    rados.delete_pool("p1")
    assert not rados.pool_exists("p1")
    with pytest.raises(osdkit.rados.ObjectNotFound):
        rados.open_ioctx("p1")
    ret, out, outs = rados.mon_command('{"prefix": "osd pool ls", "format": "json"}')
    assert ret == 0 and b"data" in out
    ret, _, outs = rados.mon_command('{"prefix": "no such command"}')
    assert ret < 0 and outs
    # A missing config file fails at connect with ENOENT; rados_id= names client.<id>.
    r = osdkit.Rados(conffile=conffile + ".missing", rados_id="admin")
    assert r.name == "client.admin"
    with pytest.raises(osdkit.Error) as e:
        r.connect()
    assert e.value.errno == errno.ENOENT
    with pytest.raises(osdkit.rados.InvalidArgumentError):
        osdkit.Rados()


def test_object_calls_as_python_rados_names_them(rados):
    io = rados.open_ioctx("data")
    io.write_full("o", b"hello")
    io.append("o", b" world")
    io.write("o", b"J", 0)
    assert io.read("o") == b"Jello world"
    assert io.read("o", 5, 6) == b"world"
    size, mtime = io.stat("o")
    assert size == 11 and isinstance(mtime, time.struct_time)
    assert abs(time.mktime(mtime) - time.time()) < 120
    io.trunc("o", 5)
    assert io.read("o") == b"Jello"
    io.set_xattr("o", "b", b"2")
    io.set_xattr("o", "a", b"1")
    assert io.get_xattr("o", "a") == b"1"
    assert list(io.get_xattrs("o")) == [("a", b"1"), ("b", b"2")]
    io.rm_xattr("o", "a")
    with pytest.raises(osdkit.rados.NoData) as e:
        io.get_xattr("o", "a")
    assert e.value.errno == errno.ENODATA
    io.set_omap_values("o", {"k1": b"v1", "k2": b"v2"})
    assert io.get_omap_values("o") == {"k1": b"v1", "k2": b"v2"}
    io.remove_omap_keys("o", ["k1"])
    assert io.get_omap_values("o", ["k1", "k2"]) == {"k2": b"v2"}
    assert "o" in [obj.key for obj in io.list_objects()]
    assert io.remove_object("o")
    with pytest.raises(osdkit.rados.ObjectNotFound) as e:
        io.stat("o")
    assert isinstance(e.value, osdkit.Error) and e.value.errno == errno.ENOENT


def test_completions_wait_callback_and_await(rados):
    io = rados.open_ioctx("data")
    called = []
    c = io.aio_write_full("a", b"async data", oncomplete=lambda comp: called.append(comp.get_return_value()))
    c.wait_for_complete()
    assert c.is_complete() and c.get_return_value() == 0
    got = []
    r = io.aio_read("a", 100, 0, oncomplete=lambda comp, data: got.append(data))
    r.wait_for_complete()
    assert r.get_return_value() == len(b"async data")
    deadline = time.time() + 10
    while (not called or not got) and time.time() < deadline:
        time.sleep(0.01)
    assert called == [0] and got == [b"async data"]
    missing = io.aio_read("nope", 10, 0)
    missing.wait_for_complete()
    assert missing.get_return_value() == -errno.ENOENT

    async def both():
        w = await io.aio_write("b", b"xyz")
        n = await io.aio_read("b", 10, 0)
        return w, n

    assert asyncio.run(both()) == (0, 3)


def test_op_contexts_as_python_rados_has_them(rados):
    io = rados.open_ioctx("data")
    with osdkit.rados.WriteOpCtx() as op:
        op.new(osdkit.rados.LIBRADOS_CREATE_EXCLUSIVE)
        op.write_full(b"body")
        op.set_xattr("x", b"1")
        io.set_omap(op, ("p.a", "p.b", "q"), (b"1", b"2", b"3"))
        io.operate_write_op(op, "opctx")
        # Sent again, the exclusive create fails and nothing else is applied.
        with pytest.raises(osdkit.rados.ObjectExists):
            io.operate_write_op(op, "opctx")
    with pytest.raises(osdkit.rados.InvalidArgumentError):
        io.set_omap(osdkit.rados.WriteOpCtx(), ("a", "b"), (b"1",))
    with osdkit.rados.ReadOpCtx() as op:
        vals, _ = io.get_omap_vals(op, "", "p.", 10)
        keys, _ = io.get_omap_keys(op, "p.a", 10)
        by_keys, _ = io.get_omap_vals_by_keys(op, ("q", "nope"))
        assert list(vals) == []  # filled by operate_read_op
        io.operate_read_op(op, "opctx")
    assert list(vals) == [("p.a", b"1"), ("p.b", b"2")]
    assert list(keys) == [("p.b", None), ("q", None)]
    assert list(by_keys) == [("q", b"3")]
    with osdkit.rados.WriteOpCtx() as op:
        io.remove_omap_keys(op, ("p.a",))
        io.operate_write_op(op, "opctx")
    io.remove_omap_keys("opctx", ["q"])  # the one-call form
    assert io.get_omap_values("opctx") == {"p.b": b"2"}
    with osdkit.rados.ReadOpCtx() as op:
        io.get_omap_vals(op, "", "", 10)
        with pytest.raises(osdkit.rados.ObjectNotFound):
            io.operate_read_op(op, "no-such-object")
