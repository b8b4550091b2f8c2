"""Failure handling from Python: a replicated in-process cluster (size 2), an OSD killed under
writes, marked down by its peers after the heartbeat grace, writes going on, the OSD back and
the cluster clean, every acknowledged write intact."""

import threading
import time

import pytest

import osdkit

GRACE = 4
OPTIONS = {"osd_heartbeat_interval": "1", "osd_heartbeat_grace": str(GRACE), "mon_osd_down_out_interval": "0"}


def osd_up(cluster, osd_id):
    return next(o for o in cluster.osdmap()["osds"] if o["osd"] == osd_id)["up"] == 1


def wait(what, timeout, pred):
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_kill_an_osd_under_writes_then_bring_it_back(tmp_path):
    with osdkit.Cluster(str(tmp_path), osds=3, size=2, options=OPTIONS) as c:
        pools = {p["pool_name"]: p for p in c.osdmap()["pools"]}
        assert pools["data"]["size"] == 2
        acked = {}
        errors = []
        stop = threading.Event()

        def writer(n):
            with osdkit.Client(c.mon_addr, f"client.{200 + n}") as cl:
                seq = 0
                while not stop.is_set():
                    seq += 1
                    name = f"py{n}-{seq % 20}"
                    try:
                        cl.put("data", name, f"{name}:{seq}".encode())
                        acked[name] = seq
                    except OSError as e:
                        errors.append(f"{name}: {e}")

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(2)]
        for t in threads:
            t.start()
        try:
            wait("writes", 30, lambda: len(acked) >= 20)
            t0 = time.monotonic()
            c.kill_osd(2)
            wait("osd.2 down", 60, lambda: not osd_up(c, 2))
            took = time.monotonic() - t0
            assert took <= GRACE + 12, f"marked down after {took:.1f} s"
            before = sum(acked.values())
            wait("writes after the kill", 30, lambda: sum(acked.values()) > before + 50)
            c.start_osd(2)
            c.wait_for_clean(60)
            assert osd_up(c, 2)
        finally:
            stop.set()
            for t in threads:
                t.join()
        assert not errors, errors
        with osdkit.Client(c.mon_addr) as cl:
            for name, seq in acked.items():
                assert cl.get("data", name) == f"{name}:{seq}".encode()
        # Back to clean, a deep scrub of every PG finds the two copies of each equal.
        reports = c.scrub(deep=True)
        assert len(reports) == 32
        assert sum(r["objects"] for r in reports) == len(acked)
        assert all(r["errors"] == 0 and len(r["osds"]) == 2 for r in reports), [r for r in reports if r["errors"]]
        one = c.scrub("1.0")
        assert [r["pgid"] for r in one] == ["1.0"] and one[0]["deep"] is False
        with pytest.raises(OSError) as ei:
            c.scrub("1.999")
        assert isinstance(ei.value, FileNotFoundError)
        with pytest.raises(OSError):
            c.scrub("nonsense")


def test_clean_stop_is_noticed_at_once_and_wait_for_clean_times_out(tmp_path):
    with osdkit.Cluster(str(tmp_path), osds=2, size=2, options=OPTIONS) as c:
        c.wait_for_clean(30)
        t0 = time.monotonic()
        c.stop_osd(1)
        took = time.monotonic() - t0
        assert not osd_up(c, 1)
        assert took < GRACE, f"mark-me-down, not the grace: stop took {took:.2f} s"
        # Size 2 with one OSD: never clean.
        with pytest.raises(OSError) as ei:
            c.wait_for_clean(0.5)
        assert isinstance(ei.value, TimeoutError)
        with pytest.raises(OSError):
            c.kill_osd(1)  # already stopped
