import errno
import os
import stat

import pytest

import osdkit
from _helpers import loads


def test_version_matches_package():
    v = osdkit.version()
    assert v and v == osdkit.__version__
    assert v.count(".") >= 2


def test_lifecycle(tmp_path):
    ctx = osdkit.Context("osd.0", run_dir=str(tmp_path))
    assert ctx.name == "osd.0"
    assert ctx.asok_path is None  # not started yet
    ctx.start()
    path = ctx.asok_path
    assert path == str(tmp_path / "ceph-osd.0.asok")
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    ctx.start()  # idempotent
    ctx.close()
    assert not os.path.exists(path)
    ctx.close()  # idempotent
    with pytest.raises(OSError) as ei:
        ctx.start()
    assert ei.value.errno == errno.EINVAL


def test_context_manager_starts_and_closes(tmp_path):
    with osdkit.Context("osd.7", run_dir=tmp_path) as ctx:
        path = ctx.asok_path
        assert path is not None and os.path.exists(path)
        assert "osd.7" in path
    assert not os.path.exists(path)
    with pytest.raises(OSError):
        with ctx:
            pass


def test_context_manager_closes_on_exception(tmp_path):
    with pytest.raises(ZeroDivisionError):
        with osdkit.Context("osd.0", run_dir=tmp_path) as ctx:
            path = ctx.asok_path
            1 / 0
    assert not os.path.exists(path)


def test_asok_mode_is_0600(osdkit_context):
    mode = stat.S_IMODE(os.stat(osdkit_context.asok_path).st_mode)
    assert mode == 0o600


def test_options_from_constructor_and_set_option(tmp_path):
    ctx = osdkit.Context("osd.1", run_dir=tmp_path, debug_ms=5, log_to_stderr=False, ms_async_op_threads=2)
    assert ctx.get_option("debug_ms") == "5/5"
    assert ctx.get_option("log_to_stderr") == "false"
    assert ctx.get_option("ms_async_op_threads") == "2"
    assert ctx.get_option("run_dir") == str(tmp_path)
    ctx.set_option("log_to_stderr", True)
    assert ctx.get_option("log_to_stderr") == "true"
    ctx.set_option("debug_ms", "1/3")
    assert ctx.get_option("debug_ms") == "1/3"
    ctx.close()


def test_conf_file(tmp_path):
    conf = tmp_path / "ceph.conf"
    conf.write_text("[global]\ndebug ms = 2\n[osd]\nosd heartbeat grace = 33\n[osd.4]\ndebug_osd = 7\n")
    ctx = osdkit.Context("osd.4", conf=str(conf), run_dir=tmp_path)
    assert ctx.get_option("debug_ms") == "2/2"
    assert ctx.get_option("osd_heartbeat_grace") == "33"
    assert ctx.get_option("debug_osd") == "7/7"
    ctx.close()


def test_errors_are_oserrors():
    with pytest.raises(OSError) as ei:
        osdkit.Context("not-an-entity")
    assert ei.value.errno == errno.EINVAL
    with pytest.raises(FileNotFoundError):
        osdkit.Context("osd.0", no_such_option=1)
    ctx = osdkit.Context("osd.0")
    with pytest.raises(FileNotFoundError):
        ctx.get_option("no_such_option")
    with pytest.raises(OSError) as ei:
        ctx.set_option("debug_ms", "x/y")
    assert ei.value.errno == errno.EINVAL
    with pytest.raises(FileNotFoundError):
        osdkit.Context("osd.0", conf="/nonexistent/ceph.conf")
    ctx.close()


def test_in_process_admin_command(osdkit_context):
    v = loads(osdkit_context.admin_command("version"))
    assert v["version"] == osdkit.version()
    got = loads(osdkit_context.admin_command("config get", var="debug_ms"))
    assert got == {"debug_ms": osdkit_context.get_option("debug_ms")}
    with pytest.raises(OSError) as ei:
        osdkit_context.admin_command("no such command")
    assert ei.value.errno == errno.EINVAL
    with pytest.raises(FileNotFoundError):
        osdkit_context.admin_command("config get", var="no_such_option")


def test_config_through_socket(osdkit_context):
    path = osdkit_context.asok_path
    assert loads(osdkit.admin_command(path, "config", "get", "debug_ms")) == {"debug_ms": "0/0"}
    set_reply = loads(osdkit.admin_command(path, "config", "set", "debug_ms", "5"))
    assert "success" in set_reply
    assert loads(osdkit.admin_command(path, "config", "get", "debug_ms")) == {"debug_ms": "5/5"}
    assert osdkit_context.get_option("debug_ms") == "5/5"
    diff = loads(osdkit.asok_request(path, {"prefix": "config diff"}))
    assert diff["diff"]["debug_ms"]["final"] == "5/5"
    bad = osdkit.admin_command(path, "config", "get", "no_such_option")
    assert bad.startswith("ERROR: (2) ")


def test_asok_request_raw_text_and_bad_input(osdkit_context):
    path = osdkit_context.asok_path
    assert osdkit.asok_request(path, '{"prefix": "0"}') == "2"
    assert osdkit.asok_request(path, "not json").startswith("ERROR: (22) ")
    with pytest.raises(TypeError):
        osdkit.asok_request(path, 42)  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        osdkit.asok_request(os.path.join(os.path.dirname(path), "missing.asok"), {"prefix": "0"})


def test_log_accepts_known_subsystems(tmp_path):
    log_file = tmp_path / "osd.0.log"
    ctx = osdkit.Context("osd.0", run_dir=tmp_path, log_file=str(log_file), debug_osd=5)
    ctx.start()
    ctx.log("osd", 1, "hello from python")
    ctx.log("osd", 20, "too verbose to keep")
    with pytest.raises(ValueError):
        ctx.log("no_such_subsys", 1, "x")
    ctx.close()
    text = log_file.read_text()
    assert "hello from python" in text
    assert "too verbose to keep" not in text


def test_factory_makes_independent_contexts(osdkit_context_factory):
    a = osdkit_context_factory("osd.0")
    b = osdkit_context_factory("osd.1", debug_ms=3)
    assert a.asok_path != b.asok_path
    assert os.path.exists(a.asok_path) and os.path.exists(b.asok_path)
    assert loads(osdkit.admin_command(b.asok_path, "config", "get", "debug_ms")) == {"debug_ms": "3/3"}
    assert loads(osdkit.admin_command(a.asok_path, "config", "get", "debug_ms")) == {"debug_ms": "0/0"}
