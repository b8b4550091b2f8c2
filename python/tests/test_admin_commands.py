import errno
import os
import threading

import pytest

import osdkit
from _helpers import loads, wait_until

ECHO = "echo name=msg,type=CephString"


def test_echo_through_socket(osdkit_context):
    seen = []

    def echo(args):
        seen.append(args)
        return args["msg"]

    osdkit_context.register_command(ECHO, "echo back the message", echo)
    path = osdkit_context.asok_path
    assert osdkit.admin_command(path, "echo", "hello") == "hello"
    assert osdkit.asok_request(path, {"prefix": "echo", "msg": "raw"}) == "raw"
    assert osdkit_context.admin_command("echo", msg="inproc") == "inproc"
    assert seen == [{"msg": "hello"}, {"msg": "raw"}, {"msg": "inproc"}]
    help_ = loads(osdkit.admin_command(path, "help"))
    assert help_["echo"] == "echo back the message"


def test_handler_returning_dict_is_json(osdkit_context):
    osdkit_context.register_command(
        "status name=verbose,type=CephBool,req=false",
        "report status",
        lambda args: {"state": "active", "args": args, "n": [1, 2, 3]},
    )
    got = loads(osdkit.asok_request(osdkit_context.asok_path, {"prefix": "status"}))
    assert got == {"state": "active", "args": {}, "n": [1, 2, 3]}
    got = loads(osdkit_context.admin_command("status", verbose=True))
    assert got["args"] == {"verbose": True}
    osdkit_context.register_command("nothing", "returns None", lambda args: None)
    assert osdkit_context.admin_command("nothing") == "null"


def test_handler_exception_becomes_error_reply(osdkit_context):
    def boom(args):
        raise ValueError("bad things")

    osdkit_context.register_command("boom", "always fails", boom)
    reply = osdkit.asok_request(osdkit_context.asok_path, {"prefix": "boom"})
    assert reply == "ERROR: (22) Invalid argument\nValueError: bad things\n"
    with pytest.raises(OSError) as ei:
        osdkit_context.admin_command("boom")
    assert ei.value.errno == errno.EINVAL
    assert "ValueError: bad things" in str(ei.value)


def test_handler_exception_errno_is_used(osdkit_context):
    def busy(args):
        raise OSError(errno.EBUSY, "try later")

    class Custom(Exception):
        errno = errno.ENOSPC

    def full(args):
        raise Custom("disk full")

    def not_int(args):
        e = RuntimeError("odd errno")
        e.errno = "seven"  # type: ignore[attr-defined]
        raise e

    osdkit_context.register_command("busy", "", busy)
    osdkit_context.register_command("full", "", full)
    osdkit_context.register_command("odd", "", not_int)
    path = osdkit_context.asok_path
    assert osdkit.asok_request(path, {"prefix": "busy"}).startswith(f"ERROR: ({errno.EBUSY}) ")
    assert "OSError: [Errno 16] try later" in osdkit.asok_request(path, {"prefix": "busy"})
    full_reply = osdkit.asok_request(path, {"prefix": "full"})
    assert full_reply.startswith(f"ERROR: ({errno.ENOSPC}) ")
    assert full_reply.endswith("Custom: disk full\n")
    assert osdkit.asok_request(path, {"prefix": "odd"}).startswith("ERROR: (22) ")
    with pytest.raises(OSError) as ei:
        osdkit_context.admin_command("busy")
    assert ei.value.errno == errno.EBUSY


def test_non_json_result_is_an_error(osdkit_context):
    osdkit_context.register_command("weird", "", lambda args: object())
    assert osdkit.asok_request(osdkit_context.asok_path, {"prefix": "weird"}).startswith("ERROR: (22) ")


def test_register_errors(osdkit_context):
    osdkit_context.register_command("dup", "", lambda a: "1")
    with pytest.raises(FileExistsError):
        osdkit_context.register_command("dup", "", lambda a: "2")
    with pytest.raises(TypeError):
        osdkit_context.register_command("notcallable", "", 42)  # type: ignore[arg-type]
    with pytest.raises(OSError) as ei:
        osdkit_context.register_command("bad name=x,notkeyvalue", "", lambda a: "")
    assert ei.value.errno == errno.EINVAL


def test_unregister(osdkit_context):
    osdkit_context.register_command(ECHO, "", lambda a: a["msg"])
    assert osdkit_context.admin_command("echo", msg="x") == "x"
    assert osdkit_context.unregister_command(ECHO) is True
    assert osdkit_context.unregister_command(ECHO) is False
    reply = osdkit.asok_request(osdkit_context.asok_path, {"prefix": "echo", "msg": "x"})
    assert reply.startswith("ERROR: (22) ")
    # the descriptor can be registered again
    osdkit_context.register_command(ECHO, "", lambda a: a["msg"].upper())
    assert osdkit_context.admin_command("echo", msg="x") == "X"


def test_handlers_run_on_the_callback_thread(osdkit_context):
    osdkit_context.register_command("where", "", lambda a: osdkit._native._current_thread_name())
    assert osdkit.asok_request(osdkit_context.asok_path, {"prefix": "where"}) == "osdkit-py-cb"
    # in-process calls too: the caller's thread never runs the handler
    assert osdkit_context.admin_command("where") == "osdkit-py-cb"


def test_handler_can_call_its_own_context(osdkit_context):
    osdkit_context.register_command(ECHO, "", lambda a: a["msg"])
    osdkit_context.register_command(
        "twice name=msg,type=CephString",
        "",
        lambda a: osdkit_context.admin_command("echo", msg=a["msg"]) * 2,
    )
    assert osdkit.asok_request(osdkit_context.asok_path, {"prefix": "twice", "msg": "ab"}) == "abab"


def test_unregister_from_inside_the_handler(osdkit_context):
    results = []

    def once(args):
        results.append(osdkit_context.unregister_command("once"))
        return "bye"

    osdkit_context.register_command("once", "", once)
    path = osdkit_context.asok_path
    assert osdkit.asok_request(path, {"prefix": "once"}) == "bye"
    assert results == [True]
    assert wait_until(lambda: "once" not in loads(osdkit.admin_command(path, "help")), timeout=10)
    assert osdkit.asok_request(path, {"prefix": "once"}).startswith("ERROR: (22) ")


def test_concurrent_socket_clients(osdkit_context):
    osdkit_context.register_command(ECHO, "", lambda a: a["msg"])
    path = osdkit_context.asok_path
    errors = []

    def client(i):
        try:
            for j in range(10):
                msg = f"{i}-{j}"
                got = osdkit.admin_command(path, "echo", msg)
                if got != msg:
                    errors.append((msg, got))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads)
    assert errors == []


def test_close_from_inside_a_handler(tmp_path):
    ctx = osdkit.Context("osd.0", run_dir=tmp_path)
    ctx.start()
    path = ctx.asok_path

    def stop(args):
        ctx.close()
        return "closing"

    ctx.register_command("stop", "", stop)
    assert osdkit.asok_request(path, {"prefix": "stop"}) == "closing"
    assert wait_until(lambda: not os.path.exists(path), timeout=10)
    with pytest.raises(RuntimeError):
        ctx.register_command("late", "", lambda a: "")


def test_commands_stop_answering_after_close(tmp_path):
    ctx = osdkit.Context("osd.0", run_dir=tmp_path)
    ctx.start()
    ctx.register_command(ECHO, "", lambda a: a["msg"])
    ctx.close()
    with pytest.raises(OSError):
        ctx.admin_command("echo", msg="x")
    # built-ins still answer in-process
    assert loads(ctx.admin_command("version"))["version"] == osdkit.version()
