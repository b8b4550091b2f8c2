"""One script body written for python-rados, run unchanged against Debian's ``rados`` module
(on Ceph 16) and against ``osdkit.rados`` (on osdkit): it prints what it saw as JSON, and
test_vs_python_rados.py checks the two agree.

    python3 rados_script.py MODULE CONFFILE POOL
"""

import importlib
import json
import sys


def body(rados, conffile, pool):
    seen = {}

    def err(f):
        """The python-rados exception class a call raised, or "ok"."""
        try:
            f()
            return "ok"
        except rados.Error as e:
            return type(e).__name__

    with rados.Rados(conffile=conffile) as r:
        r.create_pool(pool)
        seen["pool_exists"] = r.pool_exists(pool)
        seen["open_missing_pool"] = err(lambda: r.open_ioctx(pool + "-nope"))
        io = r.open_ioctx(pool)

        # Whole-object and ranged I/O.
        io.write_full("o", b"hello")
        io.append("o", b" world")
        io.write("o", b"J", 0)
        seen["read"] = io.read("o").decode()
        seen["read_range"] = io.read("o", 5, 6).decode()
        seen["read_past_end"] = io.read("o", 10, 100).decode()
        seen["stat_size"] = io.stat("o")[0]
        io.trunc("o", 4)
        seen["after_trunc"] = io.read("o").decode()
        io.write("sparse", b"z", 3)
        seen["sparse"] = list(io.read("sparse"))

        # Xattrs.
        io.set_xattr("o", "owner", b"me")
        io.set_xattr("o", "tier", b"gold")
        seen["xattr"] = io.get_xattr("o", "owner").decode()
        seen["xattrs"] = sorted((k, v.decode()) for k, v in io.get_xattrs("o"))
        io.rm_xattr("o", "tier")
        seen["xattr_removed"] = err(lambda: io.get_xattr("o", "tier"))

        # Omap through op contexts.
        with rados.WriteOpCtx() as op:
            io.set_omap(op, ("a", "b", "c"), (b"1", b"2", b"3"))
            io.operate_write_op(op, "om")
        with rados.ReadOpCtx() as op:
            it, _ = io.get_omap_vals(op, "", "", 10)
            io.operate_read_op(op, "om")
            seen["omap"] = [(k, v.decode()) for k, v in it]
        with rados.ReadOpCtx() as op:
            it, _ = io.get_omap_vals(op, "a", "", 1)
            io.operate_read_op(op, "om")
            seen["omap_page"] = [(k, v.decode()) for k, v in it]
        with rados.ReadOpCtx() as op:
            it, _ = io.get_omap_vals_by_keys(op, ("c", "zz"))
            io.operate_read_op(op, "om")
            seen["omap_by_keys"] = [(k, v.decode()) for k, v in it]
        with rados.ReadOpCtx() as op:
            it, _ = io.get_omap_keys(op, "", 10)
            io.operate_read_op(op, "om")
            seen["omap_keys"] = [k for k, _ in it]
        with rados.WriteOpCtx() as op:
            io.remove_omap_keys(op, ("a", "c"))
            io.operate_write_op(op, "om")
        with rados.ReadOpCtx() as op:
            it, _ = io.get_omap_vals(op, "", "", 10)
            io.operate_read_op(op, "om")
            seen["omap_after_rm"] = [k for k, _ in it]

        # A compound write is atomic: an exclusive create of an existing object fails and
        # its other ops leave no trace.
        with rados.WriteOpCtx() as op:
            op.new(rados.LIBRADOS_CREATE_EXCLUSIVE)
            op.write_full(b"fresh")
            seen["create_new"] = err(lambda: io.operate_write_op(op, "atomic"))
        with rados.WriteOpCtx() as op:
            op.new(rados.LIBRADOS_CREATE_EXCLUSIVE)
            op.write_full(b"clobbered")
            seen["create_existing"] = err(lambda: io.operate_write_op(op, "atomic"))
        seen["atomic"] = io.read("atomic").decode()

        # Async calls.
        c = io.aio_write_full("aio", b"async data")
        c.wait_for_complete()
        seen["aio_write_rv"] = c.get_return_value()
        got = {}

        def on_read(comp, data):
            got["data"] = data.decode()

        c = io.aio_read("aio", 5, 6, on_read)
        c.wait_for_complete_and_cb()
        seen["aio_read_rv"] = c.get_return_value()
        seen["aio_read_data"] = got.get("data")
        c = io.aio_read("aio-missing", 5, 0, on_read)
        c.wait_for_complete()
        seen["aio_read_missing_rv"] = c.get_return_value()

        # Missing things.
        seen["read_missing"] = err(lambda: io.read("missing"))
        seen["stat_missing"] = err(lambda: io.stat("missing"))
        seen["xattr_missing_object"] = err(lambda: io.get_xattr("missing", "x"))
        seen["remove"] = err(lambda: io.remove_object("sparse"))
        seen["remove_again"] = err(lambda: io.remove_object("sparse"))

        seen["objects"] = sorted(o.key for o in io.list_objects())
        io.close()
        r.delete_pool(pool)
        seen["pool_gone"] = not r.pool_exists(pool)
    return seen


if __name__ == "__main__":
    module, conffile, pool = sys.argv[1:4]
    print(json.dumps(body(importlib.import_module(module), conffile, pool), sort_keys=True))
