"""osdkit.Monitor and osdkit.Osd: daemons hosted one by one in the Python process, made from
one conf file; each with its own admin socket, which the real ``ceph --admin-daemon`` reads."""

import errno
import json
import os
import queue
import shutil
import socket
import subprocess

import pytest

import osdkit


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def conf(tmp_path):
    p = tmp_path / "osdkit.conf"
    p.write_text(
        "[global]\nmon_host = v2:127.0.0.1:%d\nrun_dir = %s/run\nlog_file =\n"
        "[mon]\nmon_data = %s/$name\n[osd]\nosd_objectstore = mem\n" % (_free_port(), tmp_path, tmp_path)
    )
    return str(p)


def test_monitor_and_osds_hosted_from_one_conf(conf, tmp_path):
    events = queue.Queue()
    with osdkit.Monitor("a", conf=conf, on_active=lambda: events.put("mon")) as mon:
        mon.wait_active(30)
        assert events.get(timeout=10) == "mon"
        assert mon.state == "active" and mon.addr.startswith("v2:127.0.0.1:")
        osds = [
            osdkit.Osd(
                i,
                conf=conf,
                on_active=lambda i=i: events.put("osd.%d" % i),
                on_shutdown=lambda i=i: events.put("gone.%d" % i),
                osd_op_num_shards=2,
            )
            for i in range(2)
        ]
        with pytest.raises(FileExistsError):
            osdkit.Osd(0, conf=conf)
        # As in Ceph, an OSD must exist in the map before it boots.
        with pytest.raises(FileNotFoundError) as e:
            osds[0].start()
        assert "osd.0 does not exist in the osdmap" in str(e.value)
        assert osds[0].state == "failed"
        ret, out, outs = mon.command(json.dumps({"prefix": "osd create", "id": 0}))
        assert (ret, out) == (0, b"0")
        assert mon.command(json.dumps({"prefix": "osd create"}))[:2] == (0, b"1")
        ret, _, outs = mon.command('{"prefix": "nonsense"}')
        assert ret == -errno.EINVAL and "unknown command" in outs
        for o in osds:
            assert o.state in ("new", "failed")
            o.start()
        for o in osds:
            o.wait_active(30)
            assert o.state == "active" and o.why is None
        assert sorted(events.get(timeout=10) for _ in osds) == ["osd.0", "osd.1"]
        assert osds[1].asok_path == str(tmp_path / "run" / "ceph-osd.1.asok")
        out = osdkit.admin_command(osds[1].asok_path, "config", "get", "osd_op_num_shards")
        assert '"2"' in out
        if shutil.which("ceph") is not None or os.environ.get("OSDKIT_REQUIRE_CEPH") == "1":
            r = subprocess.run(
                ["ceph", "--admin-daemon", osds[0].asok_path, "status"], capture_output=True, text=True, timeout=60
            )
            assert r.returncode == 0, r.stderr
            assert '"whoami": 0' in r.stdout

        with osdkit.Rados(conffile=conf) as r:
            r.create_pool("p", pg_num=8, size=2)
            io = r.open_ioctx("p")
            io.write_full("obj", b"hosted in python")
            # Direct I/O on a hosted OSD: objects it is primary for, no network hop.
            mine = []
            for i in range(30):
                oid = "direct-%d" % i
                try:
                    osds[0].write("p", oid, oid.encode())
                    mine.append(oid)
                except OSError as e:
                    assert e.errno == errno.ENXIO
            assert 0 < len(mine) < 30
            assert io.read(mine[0]) == mine[0].encode()
            # The same without waiting: completions on the OSD's callback thread.
            done = queue.Queue()
            osds[0].aio_write("p", mine[1], b"async", lambda r, err: done.put(("w", r, err)))
            assert done.get(timeout=30) == ("w", None, None)
            osds[0].aio_read("p", mine[1], lambda r, err: done.put(("r", r, err)), length=5)
            assert done.get(timeout=30) == ("r", b"async", None)
            osds[0].aio_truncate("p", mine[1], 2, lambda r, err: done.put(("t", r, err)))
            assert done.get(timeout=30) == ("t", None, None)
            assert io.read(mine[1]) == b"as"
            osds[0].aio_read("p", "no-such-object-%d" % os.getpid(), lambda r, err: done.put(("e", r, err)))
            _, res, err = done.get(timeout=30)
            assert res is None and isinstance(err, OSError) and err.errno in (errno.ENOENT, errno.ENXIO)
            with pytest.raises(TypeError):
                osds[0].aio_read("p", "x", "not callable")
            osds[0].truncate("p", mine[0], 3)
            assert osds[0].read("p", mine[0]) == mine[0].encode()[:3]
            osds[1].shutdown()
            assert osds[1].join(30) == "stopped"
            assert osds[1].asok_path is None
            with pytest.raises(OSError) as e:
                osds[1].read("p", "obj")
            assert e.value.errno == errno.ENODEV
            osds[1].start()
            osds[1].wait_active(30)
            assert io.read("obj") == b"hosted in python"
            assert events.get(timeout=10) == "osd.1"
            # Marked down more often than osd_max_markdown_count allows, an OSD stops on its own
            # (not through shutdown): on_shutdown runs, and the state says why.
            osdkit.admin_command(osds[1].asok_path, "config", "set", "osd_max_markdown_count", "0")
            assert r.mon_command(json.dumps({"prefix": "osd down", "ids": ["1"]}))[0] == 0
            assert events.get(timeout=30) == "gone.1"
            assert osds[1].join(30) == "failed" and "osd_max_markdown_count" in osds[1].why
            assert events.empty()

        # A start that cannot work says why, and the OSD can be made again after it is gone.
        bad = osdkit.Osd(2, conf=conf, public_addr="not-an-address")
        with pytest.raises(OSError) as e:
            bad.start()
        assert e.value.errno == errno.EINVAL
        assert bad.state == "failed" and "public_addr" in bad.why
        with pytest.raises(OSError):
            bad.wait_active(1)
        osds[0].close()
        assert osds[0].state == "stopped"
    assert mon.state == "stopped"
