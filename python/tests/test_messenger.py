"""The messenger from Python: two messengers in one process talking msgr2 over loopback."""

import errno
import os
import signal
import socket
import sys
import threading
import time
from types import SimpleNamespace

import pytest

import osdkit
from osdkit import _native
from _helpers import wait_until

T_PING = 0x7001
T_PONG = 0x7002
MIB = 1 << 20

# Thread names (comm) of a messenger and of the binding.
MSGR_THREADS = {"msgr-worker-0", "msgr-worker-1", "msgr-worker-2", "ms_dispatch", "ms_local", "osdkit-py-cb"}


def _threads_named(names) -> dict:
    """tid -> comm of this process's threads whose comm is in `names`."""
    found = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                name = f.read().strip()
        except OSError:  # exited meanwhile
            continue
        if name in names:
            found[tid] = name
    return found


@pytest.fixture
def make_messenger(osdkit_context_factory):
    """make(name, **kwargs) -> a Messenger on its own started context; all closed afterwards."""
    made = []

    def make(name: str = "osd.0", **kwargs) -> osdkit.Messenger:
        m = osdkit.Messenger(osdkit_context_factory(name), name, **kwargs)
        made.append(m)
        return m

    yield make
    for m in reversed(made):
        m.close()


@pytest.fixture
def echo(make_messenger):
    """A started server whose on_message echoes every message back on m.connection (type
    T_PONG, same segments and priority, tid carried over by reply()), recording what it saw."""
    srv = make_messenger("osd.0", policy="stateless_server")
    s = SimpleNamespace(srv=srv, seen=[], threads=set(), events=[])

    @srv.on_message
    def on_message(m):
        s.threads.add((_native._current_thread_name(), threading.get_ident()))
        s.seen.append((m.type, m.tid, m.front))
        m.reply(osdkit.Message(T_PONG, front=m.front, data=m.data, middle=m.middle, priority=m.priority))

    def on_event(kind, conn):
        s.threads.add((_native._current_thread_name(), threading.get_ident()))
        s.events.append((kind, conn.peer_type, conn.is_connected))

    srv.on_event(on_event)
    s.addr = srv.bind()
    srv.start()
    return s


@pytest.fixture
def client(make_messenger):
    cli = make_messenger("client.1", policy="lossy_client")
    cli.start()
    return cli


def test_bind_returns_a_v2_address(make_messenger):
    m = make_messenger("osd.3", nonce=4242)
    assert m.addr is None
    a = m.bind("127.0.0.1:0")
    assert a.startswith("v2:127.0.0.1:") and a.endswith("/4242")
    port = int(a.split(":")[2].split("/")[0])
    assert port > 0
    assert m.addr == a
    assert m.nonce == 4242 and m.name == "osd.3"
    # the port is really listening
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass


def test_echo_round_trip_with_events(echo, client):
    cli_events = []
    cli_conn_seen = []
    client.on_event(lambda kind, conn: (cli_events.append(kind), cli_conn_seen.append(conn)))
    conn = client.connect(echo.addr)
    assert conn.peer_addr == echo.addr
    assert conn.peer_type == "osd"
    assert conn.policy == "lossy_client"
    assert client.connect(echo.addr) == conn, "the session is reused"
    conn.send(osdkit.Message(T_PING, b"hello", middle=b"mid", priority=200, tid=77))
    r = client.recv(timeout=10)
    assert (r.type, r.front, r.middle, r.data, r.priority) == (T_PONG, b"hello", b"mid", b"", 200)
    assert r.tid == 77, "reply() gives a tid-0 reply the request's tid"
    assert r.seq == 1
    assert r.connection == conn and r.connection.id == conn.id
    assert r.connection.is_connected and r.connection.state == "open"
    assert echo.seen == [(T_PING, 77, b"hello")]
    # connect/accept are delivered before the message they precede
    assert wait_until(lambda: "connect" in cli_events)
    assert cli_events == ["connect"]
    assert cli_conn_seen[0] == conn
    assert echo.events == [("accept", "client", True)]
    with pytest.raises(TypeError):
        conn.send(b"not a message")


def test_one_mib_data_segments_come_back_intact(echo, client):
    conn = client.connect(echo.addr)
    sent = []
    for i in range(4):
        data = os.urandom(MIB)
        front = i.to_bytes(4, "little") + os.urandom(100)
        sent.append((front, data))
        conn.send(osdkit.Message(T_PING, front, data=bytearray(data) if i == 3 else data, tid=i + 1))
    for i, (front, data) in enumerate(sent):
        r = client.recv(timeout=30)
        assert r.tid == i + 1
        assert r.front == front
        assert len(r.data) == MIB
        assert r.data == data, f"message {i}: data segment differs"


def test_order_of_1000_messages_is_kept(echo, client):
    conn = client.connect(echo.addr)
    n = 1000
    for i in range(n):
        conn.send(osdkit.Message(T_PING, i.to_bytes(4, "little"), data=bytes([i % 256]) * (i % 13), tid=i + 1))
    got = []
    for m in client.messages(timeout=30):
        got.append((m.tid, int.from_bytes(m.front, "little"), m.data))
        if len(got) == n:
            break
    assert [t for t, _, _ in got] == list(range(1, n + 1))
    assert [f for _, f, _ in got] == list(range(n))
    assert all(d == bytes([(t - 1) % 256]) * ((t - 1) % 13) for t, _, d in got)
    assert [tid for _, tid, _ in echo.seen] == list(range(1, n + 1)), "server saw them in order too"


def test_callbacks_run_on_the_binding_thread_not_ms_dispatch(echo, client):
    seen = []
    client.on_message(lambda m: seen.append((_native._current_thread_name(), threading.get_ident())))
    conn = client.connect(echo.addr)
    for i in range(20):
        conn.send(osdkit.Message(T_PING, tid=i + 1))
    assert wait_until(lambda: len(seen) == 20)
    assert wait_until(lambda: len(echo.seen) == 20)
    main = threading.main_thread().ident
    for where in (set(seen), echo.threads):
        names = {n for n, _ in where}
        idents = {i for _, i in where}
        assert names == {"osdkit-py-cb"}, names
        assert len(idents) == 1 and main not in idents, "one callback thread per messenger, not main"
    assert set(seen) != echo.threads, "each messenger has its own callback thread"


def test_recv_timeout_raises_promptly(make_messenger):
    m = make_messenger("osd.0")
    m.start()
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        m.recv(timeout=0.3)
    elapsed = time.monotonic() - t0
    assert 0.29 <= elapsed < 1.5, elapsed
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        m.recv(timeout=0)
    assert time.monotonic() - t0 < 0.5
    it = m.messages(timeout=0.1)
    with pytest.raises(TimeoutError):
        next(it)
    with pytest.raises(ValueError):
        m.recv(timeout=-1)
    with pytest.raises(ValueError):
        m.messages(timeout=float("nan"))


@pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs setitimer")
def test_recv_is_interruptible(make_messenger):
    class Interrupted(Exception):
        pass

    def handler(signum, frame):
        raise Interrupted()

    m = make_messenger("osd.0")
    m.start()
    old = signal.signal(signal.SIGALRM, handler)
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.2)
        t0 = time.monotonic()
        with pytest.raises(Interrupted):
            m.recv()
        assert time.monotonic() - t0 < 5
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    # still usable afterwards
    m.send_to_self(osdkit.Message(5))
    assert m.recv(timeout=10).type == 5


def test_send_to_self_has_no_connection(make_messenger):
    m = make_messenger("osd.0")
    m.start()
    m.send_to_self(osdkit.Message(0x55, b"self", tid=9))
    r = m.recv(timeout=10)
    assert (r.type, r.front, r.tid, r.connection) == (0x55, b"self", 9, None)
    with pytest.raises(OSError) as ei:
        r.reply(osdkit.Message(1))
    assert ei.value.errno == errno.ENOTCONN


def test_message_attributes_are_read_only_and_checked():
    m = osdkit.Message(0x10, b"f", b"d", b"m", priority=64, tid=2**64 - 1)
    assert (m.type, m.front, m.data, m.middle, m.priority, m.tid, m.seq) == (0x10, b"f", b"d", b"m", 64, 2**64 - 1, 0)
    assert m.connection is None
    assert m.data is m.data
    with pytest.raises(AttributeError):
        m.tid = 3
    assert osdkit.Message(1, bytearray(b"ba")).front == b"ba"
    assert osdkit.Message(1).front == b"" and osdkit.Message(1, None).front == b""
    for bad in (dict(type=70000), dict(type=-1), dict(type=1, priority=1 << 16), dict(type=1, tid=-1), dict(type=1, tid=2**64)):
        with pytest.raises(ValueError):
            osdkit.Message(**bad)
    with pytest.raises(TypeError, match="front must be bytes or bytearray, not str"):
        osdkit.Message(1, "text")
    with pytest.raises(TypeError):
        osdkit.Message(1, data=[1, 2])
    assert "type=0x0010" in repr(m)


def test_bad_input_raises_clear_errors(make_messenger, osdkit_context):
    with pytest.raises(ValueError, match="TYPE.ID"):
        osdkit.Messenger(osdkit_context, "nonsense")
    with pytest.raises(ValueError, match="unknown policy 'bogus'"):
        osdkit.Messenger(osdkit_context, "osd.0", policy="bogus")
    with pytest.raises(ValueError):
        osdkit.Messenger(osdkit_context, "osd.0", nonce=-1)
    with pytest.raises(TypeError):
        osdkit.Messenger("not a context", "osd.0")
    m = make_messenger("osd.0")
    with pytest.raises(ValueError, match="not an address"):
        m.bind("not an address")
    with pytest.raises(ValueError):
        m.bind("300.1.1.1:0")
    with pytest.raises(OSError):
        m.bind("192.0.2.1:0")  # not an address of this host
    with pytest.raises(RuntimeError, match="start"):
        m.connect("v2:127.0.0.1:6800/0")
    with pytest.raises(ValueError, match="unknown policy"):
        m.set_policy("osd", "bogus")
    with pytest.raises(ValueError, match="unknown peer type 'disk'"):
        m.set_policy("disk", "lossy_client")
    m.set_policy("client", "stateless_server")
    with pytest.raises(TypeError, match="callable"):
        m.on_message(42)
    with pytest.raises(TypeError, match="callable"):
        m.on_event("x")
    m.start()
    with pytest.raises(RuntimeError, match="before start"):
        m.bind()
    with pytest.raises(ValueError, match="not an address"):
        m.connect("nonsense")
    with pytest.raises(ValueError, match="msgr1"):
        m.connect("v1:127.0.0.1:6789/0")
    with pytest.raises(ValueError, match="unknown peer type"):
        m.connect("v2:127.0.0.1:6800/0", peer_type="disk")


def test_sending_on_a_closed_connection_raises_oserror(echo, client):
    conn = client.connect(echo.addr)
    conn.send(osdkit.Message(T_PING, tid=1))
    assert client.recv(timeout=10).tid == 1
    conn.mark_down()
    assert not conn.is_connected and conn.state == "closed"
    with pytest.raises(OSError) as ei:
        conn.send(osdkit.Message(T_PING))
    assert ei.value.errno == errno.ENOTCONN
    # a new session after mark_down
    conn2 = client.connect(echo.addr)
    assert conn2 != conn
    conn2.send(osdkit.Message(T_PING, tid=2))
    assert client.recv(timeout=10).tid == 2
    client.close()
    with pytest.raises(OSError) as ei:
        conn2.send(osdkit.Message(T_PING))
    assert ei.value.errno == errno.ENOTCONN


def test_connections_listing_and_mark_down_all(echo, client):
    conn = client.connect(echo.addr)
    conn.send(osdkit.Message(T_PING, tid=1))
    client.recv(timeout=10)
    (c,) = client.connections()
    assert c["id"] == conn.id and c["peer_addr"] == echo.addr
    assert (c["state"], c["policy"], c["outgoing"], c["peer_type"]) == ("open", "lossy_client", True, 4)
    (s,) = echo.srv.connections()
    assert (s["state"], s["policy"], s["outgoing"], s["peer_type"]) == ("open", "stateless_server", False, 8)
    client.mark_down_all()
    assert client.connections() == []
    assert not conn.is_connected
    client.connect(echo.addr)
    client.mark_down(echo.addr)
    assert client.connections() == []


def test_events_refused_and_reset(make_messenger, client):
    events = []
    client.on_event(lambda kind, conn: events.append((kind, conn.state)))
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nobody listens there now
    client.connect(f"v2:127.0.0.1:{port}/0")
    assert wait_until(lambda: events), "refused"
    assert events == [("refused", "closed")]
    srv = make_messenger("osd.0", policy="stateless_server")
    addr = srv.bind()
    srv.start()
    client.connect(addr).send(osdkit.Message(T_PING))
    assert wait_until(lambda: len(events) == 2)
    assert events[1] == ("connect", "open")
    srv.close()  # the lossy session faults: the client is told
    assert wait_until(lambda: len(events) == 3)
    assert events[2] == ("reset", "closed")


def test_on_message_none_goes_back_to_recv(echo, client):
    got = []
    assert client.on_message(got.append) == got.append
    conn = client.connect(echo.addr)
    conn.send(osdkit.Message(T_PING, tid=1))
    assert wait_until(lambda: got)
    assert client.on_message(None) is None
    conn.send(osdkit.Message(T_PING, tid=2))
    assert client.recv(timeout=10).tid == 2
    assert [m.tid for m in got] == [1]


def test_a_raising_callback_does_not_stop_dispatch(make_messenger, monkeypatch):
    unraisable = []
    monkeypatch.setattr(sys, "unraisablehook", lambda u: unraisable.append(u.exc_type))
    m = make_messenger("osd.0")
    got = []

    def cb(msg):
        if msg.tid == 1:
            raise ValueError("boom")
        got.append(msg.tid)

    m.on_message(cb)
    m.start()
    for tid in (1, 2, 3):
        m.send_to_self(osdkit.Message(1, tid=tid))
    assert wait_until(lambda: len(got) == 2)
    assert got == [2, 3]
    assert unraisable == [ValueError]


def test_iteration_ends_and_recv_raises_at_close(make_messenger):
    m = make_messenger("osd.0")
    m.start()
    got, errors = [], []

    def reader():
        for msg in m:
            got.append(msg.tid)

    def waiter():
        try:
            m.recv()
        except RuntimeError as e:
            errors.append(str(e))

    m.send_to_self(osdkit.Message(1, tid=1))
    r = threading.Thread(target=reader)
    r.start()
    assert wait_until(lambda: got == [1])
    w = threading.Thread(target=waiter)
    w.start()
    time.sleep(0.2)
    m.close()
    r.join(5)
    w.join(5)
    assert not r.is_alive() and not w.is_alive()
    assert got == [1]
    assert errors == ["the messenger is closed"]
    assert list(m.messages(timeout=1)) == []
    with pytest.raises(RuntimeError, match="closed"):
        m.recv(timeout=1)


def test_close_is_idempotent_and_joins_threads(osdkit_context_factory):
    if not os.path.isdir("/proc/self/task"):
        pytest.skip("needs /proc")
    ctx_a, ctx_b = osdkit_context_factory("osd.0"), osdkit_context_factory("osd.1")
    py_threads = set(threading.enumerate())
    # every thread there now, named yet or not (a new thread names itself once it runs)
    before = set(os.listdir("/proc/self/task"))
    srv = osdkit.Messenger(ctx_a, "osd.0")
    with osdkit.Messenger(ctx_b, "osd.1") as cli:
        srv.on_message(lambda m: m.reply(osdkit.Message(T_PONG)))
        srv.on_event(lambda kind, conn: None)
        addr = srv.bind()
        srv.start()
        cli.start()
        conn = cli.connect(addr)
        conn.send(osdkit.Message(T_PING, tid=1))
        assert cli.recv(timeout=10).tid == 1
        # per messenger: 3 workers, ms_dispatch, ms_local, osdkit-py-cb
        assert wait_until(lambda: len(set(_threads_named(MSGR_THREADS)) - before) == 12), _threads_named(MSGR_THREADS)
        ours = set(_threads_named(MSGR_THREADS)) - before
        t0 = time.monotonic()
        srv.close()
        srv.close()
        assert srv.closed and not cli.closed
    assert cli.closed
    cli.close()
    assert time.monotonic() - t0 < 10
    # close() returns only once every thread of the messenger has exited
    assert not (set(_threads_named(MSGR_THREADS)) & ours)
    assert set(threading.enumerate()) == py_threads
    for m in (srv, cli):
        with pytest.raises(RuntimeError, match="closed"):
            m.start()
        with pytest.raises(RuntimeError, match="closed"):
            m.connect(addr)
        with pytest.raises(RuntimeError, match="closed"):
            m.on_message(print)
        with pytest.raises(RuntimeError, match="closed"):
            m.send_to_self(osdkit.Message(1))
        assert m.connections() == []
    with pytest.raises(OSError):
        conn.send(osdkit.Message(T_PING))


def test_close_from_inside_a_callback(make_messenger):
    m = make_messenger("osd.0")
    calls = []

    def cb(msg):
        t0 = time.monotonic()
        m.close()  # returns at once; the rest finishes after this callback
        calls.append(time.monotonic() - t0)

    m.on_message(cb)
    m.start()
    m.send_to_self(osdkit.Message(1))
    m.send_to_self(osdkit.Message(2))
    assert wait_until(lambda: calls)
    assert calls[0] < 1.0
    assert m.closed
    m.close()
    time.sleep(0.3)
    assert len(calls) == 1, "nothing is called back once closed"


def test_recv_from_its_own_callback_is_refused(make_messenger):
    m = make_messenger("osd.0")
    errors = []

    def cb(msg):
        try:
            m.recv(timeout=5)  # would wait for ms_dispatch, which waits for this callback
        except RuntimeError as e:
            errors.append(str(e))

    m.on_message(cb)
    m.start()
    t0 = time.monotonic()
    m.send_to_self(osdkit.Message(1))
    assert wait_until(lambda: errors)
    assert time.monotonic() - t0 < 4
    assert "own callbacks" in errors[0]
