"""A throwaway Ceph 16 cluster for comparison tests: one ceph-mon and one memstore ceph-osd
(Debian's packages) on loopback under a scratch directory, no auth, pools of size 1.

    with Ceph16(tmpdir) as conffile:
        ...   # rados.Rados(conffile=conffile)
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid

TOOLS = ("ceph-mon", "ceph-osd", "monmaptool", "ceph")


def missing_tools():
    return [t for t in TOOLS if shutil.which(t) is None]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Ceph16:
    def __init__(self, d):
        self.dir = str(d)
        self.conf = os.path.join(self.dir, "ceph.conf")
        self.procs = []

    def _log_tail(self, name):
        p = os.path.join(self.dir, "log", name + ".log")
        if not os.path.exists(p):
            return ""
        with open(p, errors="replace") as f:
            return "".join(f.readlines()[-20:])

    def _ceph(self, *args, timeout=20):
        return subprocess.run(
            ["ceph", "-c", self.conf, *args],
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def _wait(self, what, pred, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError("%s exited with %s while waiting for %s:\n%s" % (
                        name, p.returncode, what, self._log_tail(name)))
            try:
                if pred():
                    return
            except (subprocess.TimeoutExpired, ValueError):
                pass
            time.sleep(0.5)
        raise RuntimeError("Ceph: no %s within %d s" % (what, timeout))

    def _start(self, name, argv):
        p = subprocess.Popen(argv + ["-f"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append((name, p))

    def __enter__(self):
        d = self.dir
        for sub in ("run", "log", "mon.a", "osd.0"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)
        port = _free_port()
        fsid = str(uuid.uuid4())
        with open(self.conf, "w") as f:
            f.write(
                "[global]\n"
                "fsid = %(fsid)s\n"
                "mon host = [v2:127.0.0.1:%(port)d]\n"
                "public network = 127.0.0.0/8\n"
                "ms bind msgr1 = false\n"
                "auth cluster required = none\nauth service required = none\nauth client required = none\n"
                "keyring = %(d)s/keyring\n"
                "run dir = %(d)s/run\nadmin socket = %(d)s/run/$name.asok\n"
                "pid file = %(d)s/run/$name.pid\nlog file = %(d)s/log/$name.log\n"
                "mon cluster log file = %(d)s/log/cluster.log\ncrash dir = %(d)s/crash\n"
                "log to stderr = false\nerr to stderr = false\n"
                "mon allow pool size one = true\nmon allow pool delete = true\n"
                "mon warn on pool no redundancy = false\n"
                "mon data avail warn = 2\nmon data avail crit = 1\n"
                "osd pool default size = 1\nosd pool default min size = 1\n"
                "osd pool default pg num = 8\nosd pool default pg autoscale mode = off\n"
                "osd crush chooseleaf type = 0\n"
                "[mon]\nmon data = %(d)s/mon.$id\nmon initial members = a\n"
                "[osd]\nosd data = %(d)s/osd.$id\nosd objectstore = memstore\n"
                "memstore device bytes = 1073741824\n" % {"fsid": fsid, "port": port, "d": d}
            )
        open(os.path.join(d, "keyring"), "w").close()
        monmap = os.path.join(d, "monmap")
        subprocess.run(["monmaptool", "--create", "--clobber", "--fsid", fsid, "--addv", "a",
                        "[v2:127.0.0.1:%d]" % port, monmap], check=True, capture_output=True)
        subprocess.run(["ceph-mon", "-c", self.conf, "--mkfs", "-i", "a", "--monmap", monmap],
                       check=True, capture_output=True)
        self._start("mon.a", ["ceph-mon", "-c", self.conf, "-i", "a"])
        self._wait("monitor", lambda: self._ceph("mon", "stat", timeout=10).returncode == 0, 60)
        osd_uuid = str(uuid.uuid4())
        r = self._ceph("osd", "new", osd_uuid)
        if r.returncode != 0 or r.stdout.strip() != "0":
            raise RuntimeError("ceph osd new: %s %s" % (r.stdout, r.stderr))
        subprocess.run(["ceph-osd", "-c", self.conf, "-i", "0", "--mkfs", "--osd-uuid", osd_uuid],
                       check=True, capture_output=True)
        self._start("osd.0", ["ceph-osd", "-c", self.conf, "-i", "0"])

        def osd_up():
            r = self._ceph("osd", "stat", "--format", "json", timeout=10)
            return r.returncode == 0 and json.loads(r.stdout).get("num_up_osds") == 1

        self._wait("OSD up", osd_up, 90)
        return self.conf

    def __exit__(self, *exc):
        # SIGKILL: a memstore OSD would save every object on a clean stop.
        for _, p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
        for _, p in self.procs:
            p.wait()
        return False
