import signal
import threading
import time

import pytest

import osdkit
from _helpers import wait_until


def test_fifo_order_and_result_codes():
    got = []
    with osdkit.Finisher("fifo") as f:
        for i in range(200):
            f.queue(lambda r, i=i: got.append((i, r)), i * 2)
        assert f.wait_for_empty(30) is True
    assert got == [(i, i * 2) for i in range(200)]


def test_wait_for_empty_covers_python_callables():
    done = []
    with osdkit.Finisher("slow") as f:
        f.queue(lambda r: (time.sleep(0.3), done.append("slow")))
        f.queue(lambda r: done.append("fast"))
        assert f.wait_for_empty() is True
        assert done == ["slow", "fast"]


def test_wait_for_empty_timeout():
    release = threading.Event()
    with osdkit.Finisher("blocked") as f:
        f.queue(lambda r: release.wait(10))
        t0 = time.monotonic()
        assert f.wait_for_empty(0.2) is False
        assert time.monotonic() - t0 < 5
        release.set()
        assert f.wait_for_empty(10) is True


def test_wait_for_empty_from_a_completion_returns_at_once():
    results = []
    with osdkit.Finisher("inner") as f:
        f.queue(lambda r: results.append(f.wait_for_empty()))
        f.queue(lambda r: results.append("second"))
        assert f.wait_for_empty(10)
    assert results == [True, "second"]


def test_completions_run_on_the_callback_thread(osdkit_context):
    names = []
    f = osdkit_context.finisher("where")
    f.queue(lambda r: names.append(osdkit._native._current_thread_name()))
    assert f.wait_for_empty(10)
    f.close()
    assert names == ["osdkit-py-cb"]


def test_exception_is_reported_and_finisher_goes_on(monkeypatch):
    reports = []
    monkeypatch.setattr("sys.unraisablehook", lambda u: reports.append(u))
    got = []

    def bad(r):
        raise KeyError("oops")

    with osdkit.Finisher("exc") as f:
        f.queue(bad)
        f.queue(lambda r: got.append(r), 7)
        assert f.wait_for_empty(10)
    assert got == [7]
    assert len(reports) == 1 and isinstance(reports[0].exc_value, KeyError)


def test_stop_drops_what_is_queued_and_refuses_more():
    got = []
    started = threading.Event()
    gate = threading.Event()
    f = osdkit.Finisher("stop")
    f.queue(lambda r: (started.set(), gate.wait(10), got.append("first")))
    assert started.wait(10)
    # queued while a batch runs: it belongs to the next batch, which stop() drops
    f.queue(lambda r: got.append("second"))
    # stop() waits for the batch in progress; release it from another thread, late enough
    # that stop() has surely been called by then (released before it, the first batch would
    # end and the second one run)
    releaser = threading.Timer(2.0, gate.set)
    releaser.start()
    f.stop()
    releaser.join(10)
    with pytest.raises(RuntimeError):
        f.queue(lambda r: got.append("late"))
    f.close()
    assert got == ["first"]


def test_stop_from_inside_a_completion():
    got = []
    f = osdkit.Finisher("selfstop")

    def stopper(r):
        got.append("stopper")
        f.stop()

    f.queue(stopper)
    assert wait_until(lambda: got)
    with pytest.raises(RuntimeError):
        f.queue(lambda r: got.append("late"))
    f.close()
    assert got == ["stopper"]


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
def test_wait_for_empty_is_interruptible():
    class Interrupted(Exception):
        pass

    def handler(signum, frame):
        raise Interrupted()

    release = threading.Event()
    old = signal.signal(signal.SIGALRM, handler)
    try:
        with osdkit.Finisher("intr") as f:
            f.queue(lambda r: release.wait(10))
            signal.setitimer(signal.ITIMER_REAL, 0.2)
            t0 = time.monotonic()
            with pytest.raises(Interrupted):
                f.wait_for_empty()
            assert time.monotonic() - t0 < 5
            release.set()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
