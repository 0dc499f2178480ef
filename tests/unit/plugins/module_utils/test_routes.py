"""wg_route logic against a fake pyroute2 IPRoute (the netlink boundary)."""

import socket

import pytest

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import ValidationError, WgspError
from ansible_collections.wgsp.service_proxy.plugins.module_utils._routes import RouteManager, normalise_routes


class Msg(dict):
    def __init__(self, attrs, **fields):
        super().__init__(fields)
        self.attrs = attrs

    def get_attr(self, name):
        return self.attrs.get(name)


class FakeIPRoute:
    """Keeps routes as dicts keyed like the kernel (family, dst, len, table, priority)."""

    def __init__(self):
        self.links = {"wg0": 5, "eth0": 2}
        self.routes = []
        self.writes = []

    def link_lookup(self, ifname):
        return [self.links[ifname]] if ifname in self.links else []

    def get_routes(self, family):
        for r in self.routes:
            if r["family"] == family:
                attrs = {"RTA_DST": r["dst"], "RTA_TABLE": r["table"], "RTA_OIF": r["oif"],
                         "RTA_PRIORITY": r.get("priority") or None, "RTA_GATEWAY": r.get("gateway")}
                yield Msg(attrs, family=family, dst_len=r["dst_len"], table=min(r["table"], 252),
                          proto=r["proto"], type=1, scope=r.get("scope", 0 if r.get("gateway") else 253))

    def route(self, command, **kw):
        self.writes.append((command, kw))
        key = (kw["family"], kw["dst"], kw["dst_len"], kw["table"], kw.get("priority") or 0)
        if command == "del":
            # Like the kernel seen through pyroute2: a delete must name the route's scope.
            match = [r for r in self.routes if (r["family"], r["dst"], r["dst_len"], r["table"], r.get("priority") or 0) == key]
            if not match or kw.get("scope") != match[0].get("scope", 0 if match[0].get("gateway") else 253):
                raise OSError(3, "No such process")
        self.routes = [r for r in self.routes if (r["family"], r["dst"], r["dst_len"], r["table"], r.get("priority") or 0) != key]
        if command == "replace":
            self.routes.append(dict(kw))

    def add(self, dst, dst_len, oif, proto, table=254, priority=0, family=socket.AF_INET, gateway=None):
        self.routes.append(dict(dst=dst, dst_len=dst_len, oif=oif, proto=proto, table=table, priority=priority,
                                family=family, gateway=gateway))


def run(ipr, routes, state="present", exclusive=False, ifname="wg0", check=False):
    desired = normalise_routes(routes, ifname)
    manager = RouteManager(ipr)
    _oif, adds, deletes, before, after = manager.plan(desired, ifname, state, exclusive)
    if not check:
        manager.apply(adds, deletes)
    return adds, deletes, before, after


ROUTES = [{"dest": "10.7.0.0/24"}, {"dest": "10.9.0.0/24", "table": 1000, "metric": 10},
          {"dest": "fd00:7::/64"}, {"dest": "192.168.5.0/24", "gateway": "10.7.0.1"}]


def test_add_then_idempotent_without_netlink_write():
    ipr = FakeIPRoute()
    adds, deletes, before, after = run(ipr, ROUTES)
    assert len(adds) == 4 and not deletes and before == []
    assert "fd00:7::/64 dev wg0 table 254 metric 1024 proto 87" in after
    assert all(kw["proto"] == 87 and kw["oif"] == 5 for _c, kw in ipr.writes)
    ipr.writes = []
    adds, deletes, _b, _a = run(ipr, ROUTES)
    assert adds == [] and deletes == [] and ipr.writes == []


def test_check_mode_writes_nothing():
    ipr = FakeIPRoute()
    adds, _d, _b, _a = run(ipr, ROUTES, check=True)
    assert adds and ipr.writes == []


def test_exclusive_removes_only_our_routes_on_that_interface():
    ipr = FakeIPRoute()
    ipr.add("10.50.0.0", 24, 5, proto=3)           # someone else's on wg0 (proto boot)
    ipr.add("10.51.0.0", 24, 2, proto=87)          # ours but on eth0
    ipr.add("10.52.0.0", 24, 5, proto=87)          # ours on wg0, no longer listed
    adds, deletes, _b, _a = run(ipr, [{"dest": "10.7.0.0/24"}], exclusive=True)
    assert [d.dest for d in deletes] == ["10.52.0.0/24"]
    dests = sorted(r["dst"] for r in ipr.routes)
    assert dests == ["10.50.0.0", "10.51.0.0", "10.7.0.0"]


def test_existing_identical_route_of_someone_else_is_left_alone():
    ipr = FakeIPRoute()
    ipr.add("10.7.0.0", 24, 5, proto=4)
    adds, deletes, _b, _a = run(ipr, [{"dest": "10.7.0.0/24"}])
    assert adds == [] and deletes == [] and ipr.writes == []
    # absent never removes it either
    adds, deletes, _b, _a = run(ipr, [{"dest": "10.7.0.0/24"}], state="absent")
    assert deletes == []


def test_changed_gateway_is_replaced():
    ipr = FakeIPRoute()
    run(ipr, [{"dest": "192.168.5.0/24", "gateway": "10.7.0.1"}])
    adds, _d, _b, _a = run(ipr, [{"dest": "192.168.5.0/24", "gateway": "10.7.0.9"}])
    assert len(adds) == 1 and ipr.writes[-1][0] == "replace" and ipr.routes[0]["gateway"] == "10.7.0.9"


def test_absent_removes_everything_we_installed():
    ipr = FakeIPRoute()
    run(ipr, ROUTES)
    ipr.add("10.50.0.0", 24, 5, proto=3)
    _a, deletes, _b, after = run(ipr, [], state="absent")
    assert len(deletes) == 4 and after == []
    assert [r["dst"] for r in ipr.routes] == ["10.50.0.0"]


def test_missing_interface():
    with pytest.raises(WgspError) as err:
        run(FakeIPRoute(), ROUTES, ifname="wg9")
    assert "interface" in err.value.msg
    assert run(FakeIPRoute(), ROUTES, ifname="wg9", state="absent") == ([], [], [], [])


@pytest.mark.parametrize("raw,field", [
    ({"dest": "10.7.0.1/24"}, "routes[0].dest"),             # host bits set
    ({"dest": "10.7.0.0/33"}, "routes[0].dest"),
    ({"dest": "10.7.0.0/24\n"}, "routes[0].dest"),
    ({"dest": "10.7.0.0/24", "table": 0}, "routes[0].table"),
    ({"dest": "10.7.0.0/24", "table": "main;x"}, "routes[0].table"),
    ({"dest": "10.7.0.0/24", "metric": -1}, "routes[0].metric"),
    ({"dest": "10.7.0.0/24", "gateway": "fd00::1"}, "routes[0].gateway"),
    ({"dest": "10.7.0.0/24", "via": "x"}, "routes[0]"),
])
def test_bad_routes(raw, field):
    with pytest.raises(ValidationError) as err:
        normalise_routes([raw], "wg0")
    assert err.value.field == field


def test_bad_interface():
    with pytest.raises(ValidationError) as err:
        normalise_routes([], "a-very-long-interface")
    assert err.value.field == "interface"


def test_exclusive_removes_our_proto_route_added_by_another_tool():
    """wg-quick's PostUp `ip route replace ... proto 87` makes a scope-link route with no metric
    attribute; removing it must name its scope (the kernel answered ESRCH otherwise)."""
    ipr = FakeIPRoute()
    ipr.add("1.0.0.0", 32, 5, 87, priority=None)
    manager = RouteManager(ipr)
    oif, adds, deletes, _before, _after = manager.plan(normalise_routes([{"dest": "10.7.0.0/24"}], "wg0"), "wg0", exclusive=True)
    manager.apply(adds, deletes)
    assert [r.dest for r in deletes] == ["1.0.0.0/32"] and oif == 5
    assert ("del", dict(dst="1.0.0.0", dst_len=32, oif=5, table=254, priority=0, proto=87, family=socket.AF_INET, scope=253)) in ipr.writes
    assert [r["dst"] for r in ipr.routes] == ["10.7.0.0"]


def test_foreign_route_with_the_same_key_is_refused_not_replaced():
    """Issue 11 item 9: an admin's route (proto boot) holding the listed destination/table/metric."""
    ipr = FakeIPRoute()
    ipr.add("0.0.0.0", 0, 2, proto=3, gateway="192.0.2.254")
    with pytest.raises(WgspError) as err:
        run(ipr, [{"dest": "0.0.0.0/0"}])
    assert err.value.details["field"] == "routes[0]"
    assert "default via 192.0.2.254 dev 2 table 254 metric 0 proto boot" in err.value.msg
    assert ipr.writes == []
