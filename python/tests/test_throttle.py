import signal
import threading
import time

import pytest

import osdkit
from _helpers import wait_until


def test_basic_accounting():
    t = osdkit.Throttle("basic", 10)
    assert (t.max, t.current, t.waiters) == (10, 0, 0)
    assert t.get(4) is False
    assert t.current == 4
    assert t.get_or_fail(6) is True
    assert t.get_or_fail(1) is False
    assert t.put(5) == 5
    assert t.take(20) == 25  # take ignores max
    assert t.put(25) == 0
    t.reset_max(3)
    assert t.max == 3
    assert t.name == "basic"


def test_get_timeout_raises_and_takes_nothing():
    t = osdkit.Throttle("timeout", 2)
    t.take(2)
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        t.get(1, timeout=0.2)
    assert 0.15 <= time.monotonic() - t0 < 5
    assert t.current == 2 and t.waiters == 0
    with pytest.raises(ValueError):
        t.get(1, timeout=-1)
    t.put(2)
    assert t.get(1, timeout=0.2) is False


def test_fifo_with_python_threads():
    t = osdkit.Throttle("fifo", 1)
    t.take(1)
    order = []
    threads = []
    for i in range(5):
        th = threading.Thread(target=lambda i=i: (t.get(1, timeout=30), order.append(i)))
        th.start()
        threads.append(th)
        # queue them in a known order
        assert wait_until(lambda: t.waiters == i + 1)
    assert t.get_or_fail(1) is False  # no queue-jumping
    for i in range(5):
        t.put(1)
        assert wait_until(lambda: len(order) == i + 1)
    for th in threads:
        th.join(10)
    assert order == [0, 1, 2, 3, 4]
    assert t.current == 1


def test_blocking_get_releases_the_gil():
    t = osdkit.Throttle("gil", 1)
    t.take(1)
    progress = []

    def worker():
        # pure-Python work: only possible while the main thread does not hold the GIL
        for i in range(50):
            progress.append(i)
            time.sleep(0.001)
        t.put(1)

    th = threading.Thread(target=worker)
    th.start()
    assert t.get(1, timeout=30) is True
    th.join(10)
    assert len(progress) == 50


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
def test_get_is_interruptible():
    class Interrupted(Exception):
        pass

    def handler(signum, frame):
        raise Interrupted()

    t = osdkit.Throttle("intr", 1)
    t.take(1)
    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        t0 = time.monotonic()
        with pytest.raises(Interrupted):
            t.get(1)
        assert time.monotonic() - t0 < 5
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    assert t.waiters == 0 and t.current == 1


def test_context_throttle(osdkit_context):
    t = osdkit_context.throttle("ctx", 5)
    assert t.get(5) is False
    assert t.get_or_fail() is False
    assert t.put(5) == 0
