import ast
import inspect
import os
import sys

import pytest

import osdkit
from osdkit import _native
from _helpers import wait_until

PKG_DIR = os.path.dirname(osdkit.__file__)
# Special methods the stubs must declare (they matter to type checkers); the others
# (__repr__, __eq__, ...) are left to `object`'s.
_TYPED_DUNDERS = ("__enter__", "__exit__", "__iter__", "__next__")


def _stub_tree() -> ast.Module:
    with open(os.path.join(PKG_DIR, "_native.pyi")) as f:
        return ast.parse(f.read())


def test_package_ships_stubs_and_py_typed():
    assert os.path.isfile(os.path.join(PKG_DIR, "py.typed"))
    assert os.path.isfile(os.path.join(PKG_DIR, "_native.pyi"))
    assert _native.__name__ == "osdkit._native"


def test_stubs_match_the_module():
    tree = _stub_tree()
    stub_classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    stub_funcs = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
    native_classes = {n for n, v in vars(_native).items() if inspect.isclass(v) and v.__module__ == "osdkit._native"}
    native_funcs = {n for n, v in vars(_native).items() if callable(v) and not inspect.isclass(v)}
    assert set(stub_classes) == native_classes
    assert stub_funcs == native_funcs
    for name, node in stub_classes.items():
        cls = getattr(_native, name)
        stub_members = {n.name for n in node.body if isinstance(n, ast.FunctionDef) and n.name != "__init__"}
        native_members = {m for m in vars(cls) if not m.startswith("__") or m in _TYPED_DUNDERS}
        assert stub_members == native_members, name


def test_stub_signatures_match_text_signatures():
    tree = _stub_tree()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            obj = getattr(_native, node.name)
        elif isinstance(node, ast.ClassDef):
            for m in node.body:
                if isinstance(m, ast.FunctionDef) and m.name == "__init__":
                    _check(getattr(_native, node.name), m, skip_self=True)
                elif isinstance(m, ast.FunctionDef) and not m.decorator_list and m.name not in ("__enter__", "__exit__"):
                    _check(getattr(getattr(_native, node.name), m.name), m, skip_self=True)
            continue
        else:
            continue
        _check(obj, node, skip_self=False)


def _check(obj, node: ast.FunctionDef, skip_self: bool) -> None:
    try:
        sig = inspect.signature(obj)
    except (TypeError, ValueError):
        if inspect.isclass(obj) and sys.version_info < (3, 10):
            return  # the limited API before 3.10 gives classes no text signature
        pytest.fail(f"{obj!r} has no text signature")
    a = node.args
    stub = [x.arg for x in a.posonlyargs + a.args]
    if skip_self:
        stub = stub[1:]
    if a.vararg:
        stub.append("*" + a.vararg.arg)
    stub += [x.arg for x in a.kwonlyargs]
    if a.kwarg:
        stub.append("**" + a.kwarg.arg)
    native = []
    for p in sig.parameters.values():
        if p.name in ("self", "cls"):
            continue
        prefix = {p.VAR_POSITIONAL: "*", p.VAR_KEYWORD: "**"}.get(p.kind, "")
        native.append(prefix + p.name)
    assert stub == native, f"{node.name}: stub {stub} != native {native}"


def test_pytest_plugin_is_registered():
    if sys.version_info >= (3, 10):
        from importlib.metadata import entry_points

        eps = entry_points(group="pytest11")
    else:  # pragma: no cover
        from importlib.metadata import entry_points

        eps = entry_points().get("pytest11", [])
    assert any(ep.name == "osdkit" and ep.value == "osdkit.testing" for ep in eps)


def test_fixture_context_is_started(osdkit_context):
    assert osdkit_context.name == "osd.0"
    assert osdkit_context.asok_path is not None and os.path.exists(osdkit_context.asok_path)


def _named_threads(names) -> set:
    found = set()
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/comm") as f:
                if f.read().strip() in names:
                    found.add(tid)
        except OSError:  # exited meanwhile
            pass
    return found


def test_dispatcher_threads_are_joined_on_close():
    if not os.path.isdir("/proc/self/task"):
        pytest.skip("needs /proc")
    names = {"osdkit-py-cb", "safe_timer", "finisher"}
    before = _named_threads(names)
    objs = [osdkit.SafeTimer(f"t{i}") for i in range(3)] + [osdkit.Finisher(f"f{i}") for i in range(3)]
    # each object: one library thread and one osdkit-py-cb thread (a new thread names itself
    # once it runs, so give them a moment)
    assert wait_until(lambda: len(_named_threads(names) - before) == 12, timeout=10)
    ours = _named_threads(names) - before
    for o in objs:
        o.close()
    # close() returns only after the threads were joined
    assert not (_named_threads(names) & ours)
