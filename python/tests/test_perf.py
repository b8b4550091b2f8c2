import pytest

import osdkit
from _helpers import loads

COUNTERS = [
    ("ops", "u64_counter", "Operations"),
    ("queue", "u64", "Queue length"),
    ("bytes", "u64_avg", "Bytes per op"),
    ("busy", "time", "Time busy"),
    ("lat", "time_avg", "Latency"),
]


def test_values_and_kinds(osdkit_context):
    pc = osdkit_context.perf_counters("pytest", COUNTERS)
    assert pc.name == "pytest"
    pc.inc("ops")
    pc.inc("ops", 4)
    assert pc.get("ops") == 5
    pc.set("queue", 10)
    pc.dec("queue", 3)
    assert pc.get("queue") == 7
    pc.inc("bytes", 100)
    pc.inc("bytes", 300)
    assert pc.read_avg("bytes") == (400, 2)
    pc.tinc("busy", 1.5)
    assert pc.get("busy") == 1_500_000_000
    pc.tinc("lat", 0.25)
    pc.tinc("lat", 0.75)
    assert pc.read_avg("lat") == (1_000_000_000, 2)


def test_unknown_names_and_bad_definitions(osdkit_context):
    pc = osdkit_context.perf_counters("pytest", COUNTERS)
    for call in (lambda: pc.inc("nope"), lambda: pc.get("nope"), lambda: pc.read_avg("nope"), lambda: pc.set("nope", 1)):
        with pytest.raises(KeyError):
            call()
    with pytest.raises(ValueError):
        pc.tinc("busy", -1.0)
    with pytest.raises(ValueError):
        osdkit_context.perf_counters("bad", [("x", "histogram", "no such kind")])
    with pytest.raises(ValueError):
        osdkit_context.perf_counters("bad", [("x", "u64", ""), ("x", "u64", "")])


def test_perf_dump_and_schema_have_cephs_shape(osdkit_context):
    pc = osdkit_context.perf_counters("pytest", COUNTERS)
    pc.inc("ops", 3)
    pc.set("queue", 2)
    pc.inc("bytes", 10)
    pc.tinc("lat", 0.5)
    path = osdkit_context.asok_path
    dump = loads(osdkit.admin_command(path, "perf", "dump"))
    got = dump["pytest"]
    assert got["ops"] == 3
    assert got["queue"] == 2
    assert got["bytes"] == {"avgcount": 1, "sum": 10}
    assert got["busy"] == 0.0
    assert got["lat"]["avgcount"] == 1
    assert got["lat"]["sum"] == pytest.approx(0.5)
    assert got["lat"]["avgtime"] == pytest.approx(0.5)
    only = loads(osdkit.admin_command(path, "perf", "dump", "pytest", "ops"))
    assert only == {"pytest": {"ops": 3}}

    schema = loads(osdkit.admin_command(path, "perf", "schema"))["pytest"]
    assert set(schema) == {name for name, _, _ in COUNTERS}
    for name, _, desc in COUNTERS:
        entry = schema[name]
        assert set(entry) >= {"type", "metric_type", "value_type", "description", "nick", "priority", "units"}
        assert entry["description"] == desc
    # Ceph's type bits: 1 time, 2 u64, 4 long-run average, 8 counter
    assert schema["ops"]["type"] == 10 and schema["ops"]["metric_type"] == "counter"
    assert schema["queue"]["type"] == 2 and schema["queue"]["metric_type"] == "gauge"
    assert schema["bytes"]["type"] == 6 and schema["bytes"]["value_type"] == "integer-integer-pair"
    assert schema["busy"]["type"] == 1 and schema["busy"]["value_type"] == "real"
    assert schema["lat"]["type"] == 5 and schema["lat"]["value_type"] == "real-integer-pair"


def test_close_removes_from_dump(osdkit_context):
    pc = osdkit_context.perf_counters("gone_soon", COUNTERS)
    pc.inc("ops")
    assert "gone_soon" in loads(osdkit_context.admin_command("perf dump"))
    pc.close()
    pc.close()
    assert "gone_soon" not in loads(osdkit_context.admin_command("perf dump"))


def test_helper_objects_report_counters(osdkit_context):
    t = osdkit_context.timer("pyt")
    f = osdkit_context.finisher("pyf")
    try:
        dump = loads(osdkit_context.admin_command("perf dump"))
        assert "safe_timer-pyt" in dump
        assert "finisher-pyf" in dump
    finally:
        t.close()
        f.close()
