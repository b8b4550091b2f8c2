"""One python-rados script body (rados_script.py) run against Debian's python3-rados on a
throwaway Ceph 16 cluster and against osdkit.Rados on an osdkit cluster: what each saw must
agree, value for value and exception class for exception class.

Needs ceph-mon, ceph-osd and python3-rados (for /usr/bin/python3): without them this test fails
when OSDKIT_REQUIRE_CEPH=1 (the test command sets it) and is skipped otherwise."""

import json
import os
import subprocess
import sys

import pytest

import osdkit

from ceph16 import Ceph16, missing_tools

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "rados_script.py")
SYSTEM_PYTHON = "/usr/bin/python3"


def _python_rados_missing():
    try:
        r = subprocess.run([SYSTEM_PYTHON, "-c", "import rados"], capture_output=True, timeout=30)
    except OSError as e:
        return str(e)
    return None if r.returncode == 0 else r.stderr.decode(errors="replace").strip()


def _require_ceph():
    why = []
    if missing_tools():
        why.append("missing " + ", ".join(missing_tools()))
    p = _python_rados_missing()
    if p:
        why.append("python3-rados: " + p)
    if why:
        msg = "Ceph 16 comparison needs Debian's ceph-mon, ceph-osd, ceph-common, python3-rados (%s)" % "; ".join(why)
        if os.environ.get("OSDKIT_REQUIRE_CEPH") == "1":
            pytest.fail(msg + " but OSDKIT_REQUIRE_CEPH=1")
        pytest.skip(msg)


def _run(python, module, conffile, pool, env=None):
    r = subprocess.run(
        [python, SCRIPT, module, conffile, pool],
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )
    assert r.returncode == 0, "%s %s failed:\n%s\n%s" % (python, module, r.stdout, r.stderr)
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_one_script_agrees_on_ceph16_and_osdkit(tmp_path):
    _require_ceph()
    with Ceph16(tmp_path / "ceph") as ceph_conf:
        ceph = _run(SYSTEM_PYTHON, "rados", ceph_conf, "cmp")
    with osdkit.Cluster(str(tmp_path / "osdkit"), osds=1) as c:
        conf = tmp_path / "osdkit.conf"
        conf.write_text("[global]\nmon_host = %s\n" % c.mon_addr)
        env = dict(os.environ, PYTHONPATH=HERE)
        ours = _run(sys.executable, "osdkit.rados", str(conf), "cmp", env=env)
    # A few facts the script must have seen on Ceph, so that agreement means something.
    assert ceph["read"] == "Jello world"
    assert ceph["create_existing"] == "ObjectExists" and ceph["atomic"] == "fresh"
    assert ceph["omap"] == [["a", "1"], ["b", "2"], ["c", "3"]]
    assert ceph["read_missing"] == "ObjectNotFound"
    diff = {k: (ceph.get(k), ours.get(k)) for k in sorted(set(ceph) | set(ours)) if ceph.get(k) != ours.get(k)}
    assert not diff, "python3-rados on Ceph 16 vs osdkit.Rados (key: (ceph, osdkit)): %r" % diff
