import threading
import time

import pytest

import osdkit
from _helpers import wait_until


def test_deadline_order_and_fifo_for_equal_deadlines():
    ran = []
    done = threading.Event()
    with osdkit.SafeTimer("order") as t:
        # A second between the deadlines: the 21 adds must not outlast it (a slow machine
        # could take longer than the tenths of a second this once left).
        t.add_event_after(2.0, lambda: (ran.append("late"), done.set()))
        for i in range(20):
            t.add_event_after(1.0, lambda i=i: ran.append(i))
        t.add_event_after(0.0, lambda: ran.append("first"))
        assert done.wait(10)
    assert ran == ["first", *range(20), "late"]


def test_callbacks_run_on_the_callback_thread():
    names = []
    with osdkit.SafeTimer("where") as t:
        t.add_event_after(0, lambda: names.append(osdkit._native._current_thread_name()))
        assert wait_until(lambda: names)
    assert names == ["osdkit-py-cb"]
    assert threading.current_thread().name == "MainThread"


def test_cancel_event():
    ran = []
    with osdkit.SafeTimer("cancel") as t:
        # Long enough that neither fires before the checks below; a's deadline is no later
        # than b's, so once b has run, a would have run too had the cancel not worked.
        a = t.add_event_after(1.0, lambda: ran.append("a"))
        b = t.add_event_after(1.0, lambda: ran.append("b"))
        assert t.pending == 2
        assert t.cancel_event(a) is True
        assert t.cancel_event(a) is False
        assert t.pending == 1
        assert wait_until(lambda: ran)
        assert t.cancel_event(b) is False  # already ran
        assert t.cancel_event(12345) is False
        time.sleep(0.3)
    assert ran == ["b"]


def test_cancel_from_inside_a_callback():
    ran = []
    results = []
    with osdkit.SafeTimer("inner") as t:
        later = t.add_event_after(0.5, lambda: ran.append("later"))
        me = []

        def first():
            results.append(t.cancel_event(later))
            results.append(t.cancel_event(me[0]))  # itself: already running
            ran.append("first")

        me.append(t.add_event_after(0.05, first))
        assert wait_until(lambda: ran)
        time.sleep(0.7)
        assert t.pending == 0
    assert ran == ["first"]
    assert results == [True, False]


def test_cancel_all_events():
    ran = []
    with osdkit.SafeTimer("all") as t:
        for i in range(5):
            t.add_event_after(1.0, lambda i=i: ran.append(i))
        t.cancel_all_events()
        assert t.pending == 0
        # Due no earlier than the cancelled ones: once it has run, they would have too.
        t.add_event_after(1.0, lambda: ran.append("after"))
        assert wait_until(lambda: ran)
        time.sleep(0.3)
    assert ran == ["after"]


def test_shutdown_with_events_pending_runs_nothing_more():
    ran = []
    t = osdkit.SafeTimer("shut")
    added = time.monotonic()
    for i in range(5):
        t.add_event_after(1.0, lambda i=i: ran.append(i))
    assert t.pending == 5
    t.shutdown()
    assert t.pending == 0
    # Past their deadlines: none ran.
    time.sleep(max(0.0, added + 1.3 - time.monotonic()))
    assert ran == []
    with pytest.raises(RuntimeError):
        t.add_event_after(0, lambda: None)
    t.shutdown()
    t.close()


def test_shutdown_from_inside_a_callback():
    ran = []
    t = osdkit.SafeTimer("selfstop")

    def stopper():
        ran.append("stopper")
        t.shutdown()

    t.add_event_after(0.05, stopper)
    for i in range(10):
        t.add_event_after(0.05, lambda i=i: ran.append(i))
    assert wait_until(lambda: ran)
    time.sleep(0.3)
    assert ran == ["stopper"]
    t.close()


def test_callback_exception_is_reported_and_timer_goes_on(monkeypatch):
    reports = []
    monkeypatch.setattr("sys.unraisablehook", lambda u: reports.append(u))
    ran = []

    def bad():
        raise RuntimeError("callback failed")

    with osdkit.SafeTimer("exc") as t:
        t.add_event_after(0, bad)
        t.add_event_after(0.05, lambda: ran.append("next"))
        assert wait_until(lambda: ran)
    assert ran == ["next"]
    assert len(reports) == 1
    assert isinstance(reports[0].exc_value, RuntimeError)
    assert reports[0].object is bad


def test_callback_may_add_events_and_use_context(osdkit_context):
    ran = []
    t = osdkit_context.timer("chain")

    def step(n):
        ran.append(n)
        if n < 3:
            t.add_event_after(0.01, lambda: step(n + 1))

    t.add_event_after(0, lambda: step(0))
    assert wait_until(lambda: len(ran) == 4)
    assert ran == [0, 1, 2, 3]
    t.close()


def test_bad_arguments():
    with osdkit.SafeTimer("bad") as t:
        with pytest.raises(ValueError):
            t.add_event_after(-1, lambda: None)
        with pytest.raises(ValueError):
            t.add_event_after(float("nan"), lambda: None)
        with pytest.raises(TypeError):
            t.add_event_after(0, "not callable")  # type: ignore[arg-type]
        assert t.pending == 0
