"""wg_interface's O(routes): the interface and its routes in one module call, through main().

The interface side runs the real WgInterface against the wg_interface unit fakes (FakeLinkOps for the
link, the userspace backend over FakeUapi); the routes side against FakeIPRoute (the netlink
boundary: what ``IPRoute()`` returns), whose links follow the fake link."""

import os
import sys

from ansible_collections.wgsp.service_proxy.plugins.modules import wg_interface as mod
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import backends as wg_backends
from modharness import run_module as run  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "module_utils"))
from fake_links import FakeLinkOps  # noqa: E402
from test_routes import FakeIPRoute  # noqa: E402
from test_wg_plan import PRIV, PUB1, FakeUapi, make  # noqa: E402


class LinkedIPRoute(FakeIPRoute):
    """FakeIPRoute whose wg0 is the fake link (absent until the interface is created)."""

    def __init__(self, link_ops):
        super().__init__()
        self.link_ops = link_ops
        self.opened = 0
        self.closed = 0

    def link_lookup(self, ifname):
        if ifname == "wg0":
            return [self.link_ops.link["index"]] if self.link_ops.link is not None else []
        return super().link_lookup(ifname)

    def close(self):
        self.closed += 1


class Host:
    """One faked host: its link, its wireguard-go device, its routes, its /etc/wireguard."""

    def __init__(self, tmp_path, monkeypatch, link=None):
        self.tmp_path = tmp_path
        self.monkeypatch = monkeypatch
        self.link_ops = FakeLinkOps(link)
        self.client = FakeUapi()
        self.ipr = LinkedIPRoute(self.link_ops)
        monkeypatch.setattr(wg_backends, "find_binary", lambda name: "/usr/bin/wireguard-go")

        def interface(params, check_mode=False, want_diff=False, runner=None):
            return make(params, tmp_path, self.link_ops, self.client, check_mode=check_mode, diff=want_diff)

        def iproute():
            self.ipr.opened += 1
            return self.ipr

        monkeypatch.setattr(mod, "WgInterface", interface)
        monkeypatch.setattr(mod, "IPRoute", iproute)

    def run(self, args, check_mode=False, diff=False):
        self.link_ops.calls = []
        self.ipr.writes = []
        return run(self.monkeypatch, mod, args, check_mode=check_mode, diff=diff)[0]


def args(**extra):
    params = {"name": "wg0", "backend": "userspace", "private_key": PRIV, "addresses": ["10.7.0.2/32"],
              "listen_port": 51820,
              "peers": [{"public_key": PUB1, "endpoint": "192.0.2.2:51820", "allowed_ips": ["10.7.0.0/24"]}],
              "routes": [{"dest": "10.7.0.0/24"}, {"dest": "192.168.50.0/24", "metric": 100},
                         {"dest": "fd00:7::/64", "table": 1000}]}
    params.update(extra)
    return params


ADDED = ["10.7.0.0/24 dev wg0 table 254 metric 0 proto 87",
         "192.168.50.0/24 dev wg0 table 254 metric 100 proto 87",
         "fd00:7::/64 dev wg0 table 1000 metric 1024 proto 87"]


def test_check_mode_plans_interface_and_routes_and_writes_nothing(tmp_path, monkeypatch):
    host = Host(tmp_path, monkeypatch)
    result = host.run(args(), check_mode=True, diff=True)
    assert not result.get("failed"), result
    assert result["changed"] is True and result["routes_added"] == ADDED and result["routes_removed"] == []
    assert [r["dest"] for r in result["routes"]] == ["10.7.0.0/24", "192.168.50.0/24", "fd00:7::/64"]
    assert result["routes"][2] == {"dest": "fd00:7::/64", "interface": "wg0", "table": 1000, "metric": 1024,
                                   "gateway": None, "family": "ipv6"}
    assert host.link_ops.link is None and host.link_ops.calls == [] and host.client.sets == []
    assert host.ipr.writes == [] and host.ipr.routes == [] and host.ipr.opened == host.ipr.closed == 1
    assert not (tmp_path / "etc").exists()
    # diff: a list, the interface's diff first, then the routes
    interface_diff, routes_diff = result["diff"]
    assert interface_diff["before"]["state"] == "absent" and interface_diff["after"]["state"] == "present"
    assert routes_diff["before_header"] == routes_diff["after_header"] == "routes on wg0"
    assert routes_diff["before"] == "" and routes_diff["after"] == "".join(sorted(r + "\n" for r in ADDED))
    assert PRIV not in str(result)


def test_real_run_adds_routes_then_changes_nothing(tmp_path, monkeypatch):
    host = Host(tmp_path, monkeypatch)
    first = host.run(args())
    assert not first.get("failed"), first
    assert first["changed"] is True and first["routes_added"] == ADDED and first["routes_removed"] == []
    assert host.link_ops.link is not None and ("set_up",) in host.link_ops.calls
    oif = host.link_ops.link["index"]
    assert sorted(kw["dst"] for _c, kw in host.ipr.writes) == ["10.7.0.0", "192.168.50.0", "fd00:7::"]
    assert all(c == "replace" and kw["oif"] == oif and kw["proto"] == 87 for c, kw in host.ipr.writes)
    assert all("add route %s" % r in first["actions"] for r in ADDED)
    assert host.ipr.opened == host.ipr.closed == 1

    second = host.run(args())
    assert second["changed"] is False and second["actions"] == [] and second["set_requests"] == 0
    assert second["routes_added"] == [] and second["routes_removed"] == [] and len(second["routes"]) == 3
    assert host.ipr.writes == [] and host.link_ops.calls == []


def test_route_no_longer_listed_is_removed_foreign_route_left_alone(tmp_path, monkeypatch):
    host = Host(tmp_path, monkeypatch)
    host.run(args())
    oif = host.link_ops.link["index"]
    host.ipr.add("10.50.0.0", 24, oif, proto=3)      # someone else's on wg0 (proto boot)
    host.ipr.add("10.51.0.0", 24, 2, proto=87)       # the collection's, but on eth0
    result = host.run(args(routes=[{"dest": "10.7.0.0/24"}]), diff=True)
    assert result["changed"] is True and result["routes_added"] == []
    assert result["routes_removed"] == ["192.168.50.0/24 dev wg0 table 254 metric 100 proto 87",
                                        "fd00:7::/64 dev wg0 table 1000 metric 1024 proto 87"]
    assert [c for c, _kw in host.ipr.writes] == ["del", "del"]
    assert sorted(r["dst"] for r in host.ipr.routes) == ["10.50.0.0", "10.51.0.0", "10.7.0.0"]
    assert host.link_ops.calls == [] and isinstance(result["diff"], list) and len(result["diff"]) == 2
    assert result["diff"][1]["after"] == "10.7.0.0/24 dev wg0 table 254 metric 0 proto 87\n"
    # an empty list removes every route of the collection on wg0, still not the foreign one
    result = host.run(args(routes=[]))
    assert result["changed"] is True and result["routes"] == [] and len(result["routes_removed"]) == 1
    assert sorted(r["dst"] for r in host.ipr.routes) == ["10.50.0.0", "10.51.0.0"]


def test_conflict_with_a_foreign_route_fails_like_wg_route(tmp_path, monkeypatch):
    host = Host(tmp_path, monkeypatch)
    host.run(args(routes=[]))
    host.ipr.add("192.168.50.0", 24, 2, proto=4, priority=100)   # static, via eth0, same key
    result = host.run(args())
    assert result["failed"] is True and result["field"] == "routes[1]"
    assert "never replaced or removed" in result["msg"] and result["changed"] is False
    assert host.ipr.writes == [] and host.ipr.closed == host.ipr.opened


def test_bad_route_input_fails_naming_the_field_with_nothing_changed(tmp_path, monkeypatch):
    host = Host(tmp_path, monkeypatch)
    result = host.run(args(routes=[{"dest": "10.7.0.0/24", "gateway": "x;y"}]))
    assert result["failed"] is True and result["field"] == "routes[0].gateway"
    assert result["msg"].startswith("routes[0].gateway: ")
    assert host.link_ops.reads == 0 and host.link_ops.calls == [] and host.client.gets == 0
    assert host.ipr.opened == 0 and not (tmp_path / "etc").exists()
    for bad, field in (({"dest": "10.7.0.1/24"}, "routes[0].dest"),
                       ({"dest": "10.7.0.0/24", "table": "local"}, "routes[0].table"),
                       ({"dest": "10.7.0.0/24", "gateway": "fd00::1"}, "routes[0].gateway")):
        result = host.run(args(routes=[bad]))
        assert result["failed"] is True and result["field"] == field, result
    assert host.link_ops.reads == 0 and host.ipr.opened == 0


def test_without_routes_no_route_call_and_diff_unchanged(tmp_path, monkeypatch):
    host = Host(tmp_path, monkeypatch)
    params = args()
    del params["routes"]
    result = host.run(params, diff=True)
    assert result["changed"] is True and host.ipr.opened == 0
    assert not set(result) & {"routes", "routes_added", "routes_removed"}
    assert isinstance(result["diff"], dict) and result["diff"]["after"]["state"] == "present"


def test_state_absent_ignores_routes(tmp_path, monkeypatch):
    host = Host(tmp_path, monkeypatch)
    host.run(args())
    result = host.run({"name": "wg0", "state": "absent", "routes": [{"dest": "10.7.0.0/24"}]}, diff=True)
    assert result["changed"] is True and host.link_ops.link is None
    assert host.ipr.opened == 1  # only the first run's
    assert not set(result) & {"routes", "routes_added", "routes_removed"}
    assert isinstance(result["diff"], dict)


def test_netlink_error_on_routes_reports_the_interface_change(tmp_path, monkeypatch):
    host = Host(tmp_path, monkeypatch)

    def refuse(command, **kw):
        raise OSError(1, "Operation not permitted")

    host.ipr.route = refuse
    result = host.run(args())
    assert result["failed"] is True and result["changed"] is True and result["field"] == "routes[0]"
    assert "netlink refused to add" in result["msg"] and host.ipr.closed == host.ipr.opened == 1
