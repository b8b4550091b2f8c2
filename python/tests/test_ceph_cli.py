"""The real `ceph --admin-daemon` CLI (Debian's ceph-common) against osdkit admin sockets.

(a) a context started from Python, (b) one started by the C host program named in
OSDKIT_C_HOST (skipped when unset). Without `ceph` these tests fail if OSDKIT_REQUIRE_CEPH=1,
else skip.
"""

import json
import os
import selectors
import shutil
import subprocess
import tempfile
from typing import Iterator, List

import pytest

import osdkit

CEPH = shutil.which("ceph")
CLI_TIMEOUT = 60


def _require_ceph() -> str:
    if CEPH is None:
        if os.environ.get("OSDKIT_REQUIRE_CEPH") == "1":
            pytest.fail("the ceph CLI is not installed but OSDKIT_REQUIRE_CEPH=1")
        pytest.skip("the ceph CLI is not installed (apt-get install ceph-common)")
    return CEPH


def ceph(path: str, *words: str) -> str:
    """Runs `ceph --admin-daemon PATH WORDS...` and returns its stdout (the raw reply)."""
    env = dict(os.environ, CEPH_ARGS="")
    # -c /dev/null: never read a machine-wide ceph.conf.
    cmd = [_require_ceph(), "-c", "/dev/null", "--admin-daemon", path, *words]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=CLI_TIMEOUT, env=env, stdin=subprocess.DEVNULL)
    assert p.returncode == 0, f"{cmd} exited {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
    return p.stdout


def _read_line(proc: "subprocess.Popen[str]", timeout: float) -> str:
    assert proc.stdout is not None
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            raise AssertionError(f"the C host printed nothing within {timeout} s")
        return proc.stdout.readline().strip()
    finally:
        sel.close()


@pytest.fixture
def short_dir() -> Iterator[str]:
    # A Unix socket path must fit in 108 bytes; pytest's tmp_path can be deep.
    d = tempfile.mkdtemp(prefix="osdkit-cli-")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(params=["python", "c"])
def daemon(request, short_dir) -> Iterator[str]:
    """The admin socket path of an osd.0 with `echo name=msg,type=CephString` registered."""
    _require_ceph()
    if request.param == "python":
        ctx = osdkit.Context("osd.0", run_dir=short_dir)
        ctx.start()
        ctx.register_command("echo name=msg,type=CephString", "echo back the message", lambda a: a["msg"])
        pc = ctx.perf_counters("pytest_cli", [("ops", "u64_counter", "Operations"), ("lat", "time_avg", "Latency")])
        pc.inc("ops", 2)
        pc.tinc("lat", 0.5)
        try:
            assert ctx.asok_path is not None
            yield ctx.asok_path
        finally:
            pc.close()
            ctx.close()
        return
    host = os.environ.get("OSDKIT_C_HOST")
    if not host:
        pytest.skip("OSDKIT_C_HOST is not set (path of the C host built by scripts/c-tests.sh)")
    if not os.access(host, os.X_OK):
        pytest.fail(f"OSDKIT_C_HOST={host} is not an executable (scripts/c-tests.sh builds it)")
    proc = subprocess.Popen(
        [host, short_dir], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        path = _read_line(proc, 30)
        assert path and os.path.exists(path), f"C host printed {path!r}"
        yield path
    finally:
        assert proc.stdin is not None
        proc.stdin.close()
        try:
            rc = proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
            raise
        assert rc == 0, f"C host exited {rc}: {proc.stderr.read() if proc.stderr else ''}"


def _json(text: str):
    try:
        return json.loads(text)
    except ValueError:
        raise AssertionError(f"not JSON: {text!r}") from None


def test_version(daemon):
    v = _json(ceph(daemon, "version"))
    assert v["version"] == osdkit.version()


def test_help_lists_commands(daemon):
    h = _json(ceph(daemon, "help"))
    for cmd in ("config get", "config set", "config diff", "perf dump", "perf schema", "echo"):
        assert cmd in h, f"{cmd!r} missing from help: {sorted(h)}"


def test_perf_dump_and_schema(daemon):
    dump = _json(ceph(daemon, "perf", "dump"))
    schema = _json(ceph(daemon, "perf", "schema"))
    assert isinstance(dump, dict) and isinstance(schema, dict)
    assert set(dump) <= set(schema)
    for logger, counters in schema.items():
        for name, entry in counters.items():
            assert {"type", "description", "nick"} <= set(entry), (logger, name, entry)
    if "pytest_cli" in schema:  # the Python daemon's own logger
        assert dump["pytest_cli"]["ops"] == 2
        assert dump["pytest_cli"]["lat"]["avgcount"] == 1
        assert schema["pytest_cli"]["lat"]["type"] == 5


def test_config_get_set_diff(daemon):
    before = _json(ceph(daemon, "config", "get", "debug_ms"))
    assert set(before) == {"debug_ms"}
    assert "/" in before["debug_ms"]
    set_reply = _json(ceph(daemon, "config", "set", "debug_ms", "5"))
    assert "success" in set_reply
    assert _json(ceph(daemon, "config", "get", "debug_ms")) == {"debug_ms": "5/5"}
    diff = _json(ceph(daemon, "config", "diff"))
    assert diff["diff"]["debug_ms"]["final"] == "5/5"


def test_echo(daemon):
    assert ceph(daemon, "echo", "hello") == "hello"
    words: List[str] = ["echo", "two words"]
    assert ceph(daemon, *words) == "two words"
