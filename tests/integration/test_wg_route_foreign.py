"""Issue 11 item 9 on a real namespace host: wg_route never takes over a route it did not install.

The audit's case: an admin's ``default via 192.0.2.254`` was replaced by wg_route's own default route
and then deleted by ``state=absent`` (with ``removed=[]``). Now a listed route whose destination, table
and metric a foreign route (another ``proto``, or another route type) already holds is refused before
any change, naming the foreign route and the ``routes[N]`` entry; absent never removes it.
"""

import pytest

from conftest import require_root_tools

SETUP = ("ip link add eth0 type veth peer name eth1; ip link set eth0 addrgenmode none; "
         "ip link set eth1 addrgenmode none; ip addr add 192.0.2.1/24 dev eth0; "
         "ip addr add fd00:1::1/64 dev eth0 nodad; ip link set eth0 up; ip link set eth1 up; "
         "ip link add wg9 type veth peer name wg9p; ip link set wg9 addrgenmode none; ip link set wg9p addrgenmode none; "
         "ip link set wg9 up; ip link set wg9p up; "
         "ip addr add 10.7.0.3/24 dev wg9")


def routes(host):
    return host.run("ip route show table all; ip -6 route show table all").stdout


def host_with(lab, foreign):
    require_root_tools("ip")
    host = lab.host("h")
    host.run(SETUP)
    host.run(foreign)
    return host


CASES = [
    # the audit's case: the admin's default route (proto boot), wg_route asked for a default on wg9
    ("ip route add default via 192.0.2.254", {"dest": "0.0.0.0/0"},
     "default via 192.0.2.254 dev eth0 table 254 metric 0 proto boot"),
    # same interface, another gateway: still the admin's (proto static)
    ("ip route add 198.51.100.0/24 via 10.7.0.9 dev wg9 proto static", {"dest": "198.51.100.0/24", "gateway": "10.7.0.1"},
     "198.51.100.0/24 via 10.7.0.9 dev wg9 table 254 metric 0 proto static"),
    # the kernel's connected route of another interface
    ("true", {"dest": "192.0.2.0/24"}, "192.0.2.0/24 dev eth0 table 254 metric 0 proto kernel"),
    # IPv6, a table of its own
    ("ip -6 route add fd00:9::/64 via fd00:1::fe table 100 metric 1024", {"dest": "fd00:9::/64", "table": 100},
     "fd00:9::/64 via fd00:1::fe dev eth0 table 100 metric 1024 proto boot"),
    # a blackhole route (no device) with the same key
    ("ip route add blackhole 203.0.113.0/24 proto static", {"dest": "203.0.113.0/24"},
     "type 6 203.0.113.0/24 table 254 metric 0 proto static"),
]


@pytest.mark.parametrize("foreign, route, shown", CASES, ids=[c[2].split(" ")[0] for c in CASES])
def test_foreign_route_is_never_replaced(lab, foreign, route, shown):
    host = host_with(lab, foreign)
    before = routes(host)
    args = {"interface": "wg9", "routes": [{"dest": "10.9.0.0/24"}, route]}
    for check_mode in (True, False):
        result = host.module("wg_route", args, check_mode=check_mode, diff=True)
        assert result.get("failed") is True, result
        assert result["field"] == "routes[1]" and result["msg"].startswith("routes[1]: "), result["msg"]
        assert shown in result["msg"] and "proto 87" in result["msg"], result["msg"]
        assert routes(host) == before  # nothing changed, not even the valid routes[0]
    # absent with the route listed, and absent of everything: the foreign route stays
    for absent in ({"interface": "wg9", "routes": [route], "state": "absent"},
                   {"interface": "wg9", "state": "absent"}):
        result = host.module("wg_route", absent)
        assert not result.get("failed") and result["changed"] is False and result["removed"] == [], result
        assert routes(host) == before


def test_own_route_still_moves_and_identical_foreign_route_is_left_alone(lab):
    """What stays allowed: an identical foreign route counts as present (nothing written); a route of
    ours with another gateway is replaced; absent then removes only ours."""
    host = host_with(lab, "ip route add 198.51.100.0/24 dev wg9 proto static")
    same = host.module("wg_route", {"interface": "wg9", "routes": [{"dest": "198.51.100.0/24"}]})
    assert same["changed"] is False and same["added"] == [], same
    first = host.module("wg_route", {"interface": "wg9", "routes": [{"dest": "10.9.0.0/24", "gateway": "10.7.0.1"}]})
    assert first["changed"], first
    moved = host.module("wg_route", {"interface": "wg9", "routes": [{"dest": "10.9.0.0/24", "gateway": "10.7.0.2"}]})
    assert moved["changed"] and "10.9.0.0/24 via 10.7.0.2 dev wg9 proto 87" in routes(host)
    gone = host.module("wg_route", {"interface": "wg9", "state": "absent"})
    assert gone["removed"] == ["10.9.0.0/24 via 10.7.0.2 dev wg9 table 254 metric 0 proto 87"], gone
    text = routes(host)
    assert "10.9.0.0/24" not in text and "198.51.100.0/24 dev wg9 proto static" in text
