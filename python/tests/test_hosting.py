"""osdkit.Monitor and osdkit.Osd: daemons hosted one by one in the Python process, made from
one conf file; each with its own admin socket, which the real ``ceph --admin-daemon`` reads."""

import errno
import os
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
    with osdkit.Monitor("a", conf=conf) as mon:
        mon.wait_active(30)
        assert mon.state == "active" and mon.addr.startswith("v2:127.0.0.1:")
        osds = [osdkit.Osd(i, conf=conf, osd_op_num_shards=2) for i in range(2)]
        with pytest.raises(FileExistsError):
            osdkit.Osd(0, conf=conf)
        for o in osds:
            assert o.state == "new"
            o.start()
        for o in osds:
            o.wait_active(30)
            assert o.state == "active" and o.why is None
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

        # A start that cannot work says why, and the OSD can be made again after it is gone.
        bad = osdkit.Osd(2, conf=conf, public_addr="not-an-address")
        with pytest.raises(OSError) as e:
            bad.start()
        assert e.value.errno == errno.EINVAL
        assert bad.state == "failed" and "public_addr" in bad.why
        with pytest.raises(OSError):
            bad.wait_active(1)
        for o in osds:
            o.close()
            assert o.state == "stopped"
    assert mon.state == "stopped"
