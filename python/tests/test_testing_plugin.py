"""The pytest plugin's cluster fixtures (osdkit.testing): a started cluster per test, a client
on it, several clusters from the factory, and everything closed after the test."""

import osdkit


def test_osdkit_client_round_trip(osdkit_cluster, osdkit_client):
    assert len(osdkit_cluster.osd_addrs) == 3
    osdkit_client.put("data", "fixture-obj", b"from the fixture")
    assert osdkit_client.get("data", "fixture-obj") == b"from the fixture"
    assert "fixture-obj" in osdkit_client.list("data")


_seen = []


def test_each_test_gets_a_fresh_cluster_first(osdkit_cluster, osdkit_client):
    _seen.append(osdkit_cluster)
    osdkit_client.put("data", "left-behind", b"x")


def test_each_test_gets_a_fresh_cluster_second(osdkit_cluster, osdkit_client):
    # The previous test's cluster is closed and this one never saw its object.
    assert _seen and _seen[0].closed
    assert osdkit_cluster is not _seen[0] and not osdkit_cluster.closed
    assert "left-behind" not in osdkit_client.list("data")


def test_factory_builds_independent_clusters(osdkit_cluster_factory):
    a = osdkit_cluster_factory(osds=1)
    b = osdkit_cluster_factory(osds=2, store="kv")
    assert len(a.osd_addrs) == 1 and len(b.osd_addrs) == 2
    assert a.mon_addr != b.mon_addr
    with osdkit.Client(a.mon_addr) as ca, osdkit.Client(b.mon_addr) as cb:
        ca.put("data", "only-in-a", b"a")
        assert "only-in-a" not in cb.list("data")
        # An OSD of one cluster stops without touching the other.
        b.stop_osd(1)
        assert b.osd_addrs[1] is None
        assert ca.get("data", "only-in-a") == b"a"
    _seen.append(b)


def test_factory_closed_its_clusters(osdkit_cluster_factory):
    assert _seen[-1].closed
