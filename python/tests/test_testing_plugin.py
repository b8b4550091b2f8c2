"""The pytest plugin's cluster fixtures (osdkit.testing): a started cluster per test, a client
on it, several clusters from the factory, and everything closed after the test."""

import osdkit
import pytest


def test_osdkit_client_round_trip(osdkit_cluster, osdkit_client):
    assert len(osdkit_cluster.osd_addrs) == 3
    osdkit_client.put("data", "fixture-obj", b"from the fixture")
    assert osdkit_client.get("data", "fixture-obj") == b"from the fixture"
    assert "fixture-obj" in osdkit_client.list("data")


_seen = []


def test_each_test_gets_a_fresh_cluster_first(osdkit_cluster, osdkit_client):
    _seen.append(osdkit_cluster)
    osdkit_client.put("data", "left-behind", b"x")


def test_each_test_gets_a_fresh_cluster_second(osdkit_cluster, osdkit_client):
    # The previous test's cluster is closed and this one never saw its object.
    assert _seen and _seen[0].closed
    assert osdkit_cluster is not _seen[0] and not osdkit_cluster.closed
    assert "left-behind" not in osdkit_client.list("data")


def test_factory_builds_independent_clusters(osdkit_cluster_factory):
    a = osdkit_cluster_factory(osds=1)
    b = osdkit_cluster_factory(osds=2, store="kv")
    assert len(a.osd_addrs) == 1 and len(b.osd_addrs) == 2
    assert a.mon_addr != b.mon_addr
    with osdkit.Client(a.mon_addr) as ca, osdkit.Client(b.mon_addr) as cb:
        ca.put("data", "only-in-a", b"a")
        assert "only-in-a" not in cb.list("data")
        # An OSD of one cluster stops without touching the other.
        b.stop_osd(1)
        assert b.osd_addrs[1] is None
        assert ca.get("data", "only-in-a") == b"a"
    _seen.append(b)


def test_factory_closed_its_clusters(osdkit_cluster_factory):
    assert _seen[-1].closed


def _osdkit_bin():
    import os
    from pathlib import Path

    b = os.environ.get("OSDKIT_BIN") or str(Path(__file__).resolve().parents[2] / "target" / "debug" / "osdkit")
    assert os.path.exists(b), "%s missing: cargo build -p osdkit (or set OSDKIT_BIN)" % b
    return b


def test_hosted_cluster_fixture(osdkit_hosted_cluster, osdkit_rados):
    import json
    import subprocess

    c = osdkit_hosted_cluster
    assert [o.state for o in c.osds] == ["active"] * 3
    # osdkit_conf (no --osdkit-conf given) is this very cluster's conf.
    io = osdkit_rados.open_ioctx("data")
    io.write_full("via-conf", b"x")
    assert c.osds[0].name == "osd.0" and c.asok("osd.2").endswith("ceph-osd.2.asok")
    assert '"whoami": 2' in osdkit.admin_command(c.asok("osd.2"), "status")
    r = subprocess.run([_osdkit_bin(), "status", "-c", c.conf, "-f", "json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    assert st["num_up_osds"] == 3 and "data" in [p["name"] for p in st["pools"]]
    # The real ceph CLI finds a daemon's socket by name through the same conf.
    out = _ceph(["-c", c.conf, "daemon", "osd.1", "status"])
    assert json.loads(out)["whoami"] == 1


def test_hosted_cluster_factory_hosts_two_clusters(osdkit_hosted_cluster_factory):
    a = osdkit_hosted_cluster_factory(osds=1, size=1)
    b = osdkit_hosted_cluster_factory(osds=2, store="kv")
    assert a.cluster != b.cluster  # both host an osd.0 in this one process
    import json

    # Each conf is named after its cluster: the ceph CLI reaches each one's osd.0.
    assert json.loads(_ceph(["-c", b.conf, "daemon", "osd.0", "status"]))["objectstore"] == "kv"
    assert json.loads(_ceph(["-c", a.conf, "daemon", "osd.0", "status"]))["objectstore"] == "mem"
    with osdkit.Rados(conffile=a.conf) as ra, osdkit.Rados(conffile=b.conf) as rb:
        ra.open_ioctx("data").write_full("only-in-a", b"a")
        assert [o.key for o in rb.open_ioctx("data").list_objects()] == []


def test_osdkit_conf_option_points_at_an_existing_cluster(osdkit_hosted_cluster, tmp_path):
    import subprocess
    import sys

    conf = osdkit_hosted_cluster.conf
    t = tmp_path / "test_inner.py"
    t.write_text(
        "def test_inner(osdkit_conf, osdkit_rados):\n"
        "    assert osdkit_conf == %r\n"
        "    osdkit_rados.open_ioctx('data').write_full('from-inner', b'inner')\n" % conf
    )
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(t), "--osdkit-conf", conf],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    with osdkit.Rados(conffile=conf) as rados:
        assert rados.open_ioctx("data").read("from-inner") == b"inner"
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(t), "--osdkit-conf", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0 and "no such file" in r.stdout


def _ceph(args):
    """Output of Debian's `ceph` CLI; skipped without it, failed when OSDKIT_REQUIRE_CEPH=1."""
    import os
    import shutil
    import subprocess

    if not shutil.which("ceph"):
        msg = "no ceph CLI (apt-get install ceph-common)"
        if os.environ.get("OSDKIT_REQUIRE_CEPH") == "1":
            pytest.fail(msg + " but OSDKIT_REQUIRE_CEPH=1")
        pytest.skip(msg)
    r = subprocess.run(["ceph", *args], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout
