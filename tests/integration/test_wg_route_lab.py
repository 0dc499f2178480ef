"""wg_route on a real wireguard-go interface: check mode, idempotence (no netlink write), exclusive,
routes of others untouched, IPv4/IPv6, tables, absent."""

from conftest import require_root_tools

ROUTES = [{"dest": "10.7.0.0/24"}, {"dest": "192.168.50.0/24", "metric": 100},
          {"dest": "10.9.0.0/24", "table": 1000}, {"dest": "fd00:7::/64"}]


def routes(host):
    return host.run("ip route show table all | grep -v '^local\\|^broadcast\\|^multicast'; "
                    "ip -6 route show table all | grep -v '^local\\|^multicast\\|^anycast'; true").stdout


def test_wg_route_lifecycle(lab):
    require_root_tools("wireguard-go", "ip")
    host = lab.host("proxy")
    host.wg_go("wg0")
    host.run("ip addr add 10.7.0.3/32 dev wg0; ip -6 addr add fd00:7::3/128 dev wg0; ip link set wg0 up; "
             "ip route add 172.20.0.0/16 dev wg0")  # somebody else's route on the same interface
    clean = routes(host)

    check = host.module("wg_route", {"interface": "wg0", "routes": ROUTES}, check_mode=True, diff=True)
    assert check["changed"] and len(check["added"]) == 4 and routes(host) == clean
    assert "fd00:7::/64 dev wg0 table 254 metric 1024 proto 87" in check["diff"]["after"]

    first = host.module("wg_route", {"interface": "wg0", "routes": ROUTES})
    assert first["changed"], first
    text = routes(host)
    assert "10.7.0.0/24 dev wg0 proto 87" in text and "192.168.50.0/24 dev wg0 proto 87 scope link metric 100" in text
    assert "10.9.0.0/24 dev wg0 table 1000 proto 87" in text and "fd00:7::/64 dev wg0 proto 87" in text

    second = host.module("wg_route", {"interface": "wg0", "routes": ROUTES})
    assert second["changed"] is False and second["added"] == [] and second["removed"] == []
    assert routes(host) == text

    # exclusive: our unlisted routes go, the foreign route stays
    third = host.module("wg_route", {"interface": "wg0", "routes": ROUTES[:1], "exclusive": True})
    assert third["changed"] and len(third["removed"]) == 3
    text = routes(host)
    assert "192.168.50.0/24" not in text and "fd00:7::/64 dev wg0 proto 87" not in text
    assert "172.20.0.0/16 dev wg0" in text

    gone = host.module("wg_route", {"interface": "wg0", "state": "absent"})
    assert gone["changed"] and routes(host) == clean
    assert host.module("wg_route", {"interface": "wg0", "state": "absent"})["changed"] is False


def test_wg_route_bad_input_and_missing_interface(lab):
    require_root_tools("ip")
    host = lab.host("proxy")
    before = routes(host)
    bad = host.module("wg_route", {"interface": "wg0", "routes": [{"dest": "10.7.0.1/24"}]})
    assert bad["failed"] and "routes[0].dest" in bad["msg"]
    missing = host.module("wg_route", {"interface": "wg0", "routes": [{"dest": "10.7.0.0/24"}]})
    assert missing["failed"] and "no such interface" in missing["msg"]
    assert routes(host) == before


def test_wg_route_check_mode_before_the_interface_exists(lab):
    """A role's --check on a brand-new host runs through: the routes it would add, nothing changed."""
    require_root_tools("ip")
    host = lab.host("proxy")
    before = routes(host)
    check = host.module("wg_route", {"interface": "wg0", "routes": ROUTES}, check_mode=True, diff=True)
    assert not check.get("failed") and check["changed"], check
    assert check["added"] == ["10.7.0.0/24 dev wg0 table 254 metric 0 proto 87",
                              "192.168.50.0/24 dev wg0 table 254 metric 100 proto 87",
                              "10.9.0.0/24 dev wg0 table 1000 metric 0 proto 87",
                              "fd00:7::/64 dev wg0 table 254 metric 1024 proto 87"]
    assert check["removed"] == [] and check["diff"]["before"] == ""
    assert routes(host) == before


def test_installed_routes_are_the_ones_wg_quick_restores_at_boot(lab):
    """What wg_route installs is exactly what the roles' wg-quick PostUp lines (route_commands) bring
    back at boot: same scope (link for an IPv4 device route, as ``ip route`` makes it), proto, metric;
    the VM lab's reboot found wg_route's IPv4 routes in scope universe and the boot's in scope link."""
    require_root_tools("wireguard-go", "ip")
    from ansible_collections.wgsp.service_proxy.plugins.filter.service_proxy import route_commands

    host = lab.host("share")
    host.wg_go("wg0")
    host.run("ip addr add 10.7.0.2/32 dev wg0; ip -6 addr add fd00:7::2/128 dev wg0; ip link set wg0 up")
    dests = [{"dest": "10.7.0.0/24"}, {"dest": "fd00:7::/64"}]
    show = "ip -d route show dev wg0; ip -d -6 route show dev wg0"
    first = host.module("wg_route", {"interface": "wg0", "routes": dests})
    assert first.get("changed"), first
    by_module = host.run(show).stdout
    assert "unicast 10.7.0.0/24 proto 87 scope link" in by_module, by_module

    host.run("ip route flush proto 87; ip -6 route flush proto 87")
    host.run("; ".join(line.replace("%i", "wg0") for line in route_commands(dests)))
    assert host.run(show).stdout == by_module
    again = host.module("wg_route", {"interface": "wg0", "routes": dests})
    assert again["changed"] is False, again

    # a route an earlier release installed in scope universe is put right once, then left alone
    host.run("ip route replace 10.7.0.0/24 dev wg0 proto 87 scope global")
    fixed = host.module("wg_route", {"interface": "wg0", "routes": dests})
    assert fixed["changed"] and host.run(show).stdout == by_module, fixed
    assert host.module("wg_route", {"interface": "wg0", "routes": dests})["changed"] is False
