"""wg_status's assembly: state-file parsing, handshake classification, drift and probes, as data.

Every host access (interface, rule sets, routes, TCP connect, clock) is a fake passed in."""

import json

import pytest

from ansible_collections.wgsp.service_proxy.plugins.module_utils._status import probes as status_probes
from ansible_collections.wgsp.service_proxy.plugins.module_utils._status import report as status_report
from ansible_collections.wgsp.service_proxy.plugins.module_utils._status import state as status_state
from ansible_collections.wgsp.service_proxy.plugins.module_utils._status import views as status_views
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import ValidationError, WgspError

NOW = 1800000000
HUB_KEY = "H" * 43 + "="
SHARE_KEY = "S" * 43 + "="
PROXY_KEY = "P" * 43 + "="

PROXY_STATE = {
    "version": 1, "interface": "wg0", "client_mode": "proxy", "address": ["10.7.0.3/32"], "hub": "hub",
    "hub_endpoint": "192.168.30.224:51820", "hub_address": "10.7.0.1",
    "access_services": [{"address": "10.7.0.2", "port": 80, "proto": "tcp", "host": None},
                        {"address": "10.7.0.2", "port": 53, "proto": "udp", "host": None}],
    "public_ports": [{"proto": "tcp", "port": 80, "to_address": "10.7.0.2", "to_port": 80}],
    "public_interface": "eth1", "public_exposure": True, "shared_services": [],
    "rule_sets": [{"module": "wg_dnat", "name": "public",
                   "params": {"name": "public", "in_interface": "eth1", "out_interface": "wg0",
                              "rules": [{"proto": "tcp", "port": 80, "to_address": "10.7.0.2", "to_port": 80}]}}],
}
SHARE_STATE = {
    "version": 1, "interface": "wg0", "client_mode": "share", "address": ["10.7.0.2/32"],
    "hub_endpoint": "192.168.30.224:51820", "hub_address": "10.7.0.1",
    "shared_services": [{"name": "dummy", "container": "dummy", "proto": "tcp", "port": 80, "to_port": 80}],
    "host_services": [{"proto": "tcp", "port": 8080, "to_port": 8081}],
    "external_forwards": [{"proto": "udp", "port": 5353, "to_address": "192.168.1.50", "to_port": 53}],
    "rule_sets": [{"module": "wg_dnat", "name": "share", "params": {"name": "share"}},
                  {"module": "wg_filter", "name": "input", "params": {"name": "input"}}],
}
SERVER_STATE = {"version": 1, "interface": "wg0", "client_mode": "server", "address": ["10.7.0.1/24"],
                "clients": ["share1", "proxy1"], "isolate_clients": True, "allowed_flows": [],
                "rule_sets": [{"module": "wg_filter", "name": "isolate", "params": {"name": "isolate"}}]}


def peer(key, handshake, endpoint=None, allowed=("10.7.0.0/24",)):
    return {"public_key": key, "endpoint": endpoint, "allowed_ips": list(allowed), "persistent_keepalive": 25,
            "latest_handshake": handshake, "rx_bytes": 10, "tx_bytes": 20}


def iface(peers, exists=True, up=True):
    return {"name": "wg0", "exists": exists, "backend": "userspace" if exists else None, "up": up, "mtu": 1420,
            "addresses": ["10.7.0.3/32"] if exists else [], "listen_port": 0, "fwmark": 0,
            "public_key": PROXY_KEY if exists else None, "peers": peers if exists else []}


def in_sync(name, module="wg_dnat", containers=()):
    return {"name": name, "module": module, "backend": "iptables", "present": True, "in_sync": True,
            "drift": {"missing": [], "extra": [], "order": [], "missing_jumps": [], "extra_jumps": [], "chains": []},
            "expected": ["nat WGSP-X: -j DNAT"], "installed": ["nat WGSP-X: -j DNAT"],
            "counters": [{"rule": "nat WGSP-X: -j DNAT", "packets": 3, "bytes": 180}], "containers": list(containers)}


def drifted(name, module="wg_dnat"):
    report = in_sync(name, module)
    report.update(in_sync=False, installed=[])
    report["drift"]["missing"] = ["nat WGSP-X: -j DNAT"]
    return report


class Connector:
    """A fake TCP connect: answers from a table ``{(address, port): ("ok"|"refused"|"timeout")}``."""

    def __init__(self, answers=None):
        self.answers = answers or {}
        self.calls = []

    def __call__(self, address, port, timeout, refused_ok=False):
        self.calls.append((address, port, refused_ok))
        answer = self.answers.get((address, port), "ok")
        if answer == "ok":
            return True, "accepted", 1
        if answer == "refused":
            return bool(refused_ok), "refused", 1
        return False, "no answer within %gs" % timeout, int(timeout * 1000)


def report(tmp_path, state, live, rules=None, probe=False, connect=None, route_of=None, routes=None):
    path = tmp_path / "wg0.json"
    if state is not None:
        path.write_text(state if isinstance(state, str) else json.dumps(state))
    seen = []

    def rule_status(module, params):
        seen.append((module, params))
        value = (rules or {}).get(params.get("name"))
        if isinstance(value, Exception):
            raise value
        return value or in_sync(params.get("name"), module)

    rep = status_report.StatusReport("wg0", lambda name: live, rule_status, routes=routes, route_of=route_of,
                                     connect=connect or Connector(), state_dir=str(tmp_path), now=lambda: NOW,
                                     probe=probe, probe_timeout=0.5)
    result = rep.run()
    result["_rule_calls"] = seen
    return result


# ---------------------------------------------------------------------------------------------
# state file

@pytest.mark.parametrize("text, message", [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "must hold a JSON object"),
    (json.dumps({"version": 2, "client_mode": "proxy"}), "has version 2; this wg_status reads version 1"),
    (json.dumps({"client_mode": "proxy"}), "has version None"),
    (json.dumps({"version": 1, "client_mode": "disabled"}), "client_mode must be one of server, share, proxy"),
    (json.dumps({"version": 1, "client_mode": "proxy", "interface": "wg1"}), "belongs to interface 'wg1'"),
    (json.dumps({"version": 1, "client_mode": "proxy", "access_services": 5}), "access_services must be a list"),
    (json.dumps({"version": 1, "client_mode": "proxy", "public_ports": ["80:x"]}), "public_ports[0] must be an object"),
    (json.dumps({"version": 1, "client_mode": "share", "rule_sets": [{"module": "iptables", "params": {}}]}),
     "rule_sets[0] must be"),
    (json.dumps({"version": 1, "client_mode": "share", "rule_sets": [{"module": "wg_dnat"}]}), "rule_sets[0] must be"),
])
def test_bad_state_file_is_a_clear_error_naming_the_file(tmp_path, text, message):
    with pytest.raises(status_state.StateFileError) as err:
        report(tmp_path, text, iface([]))
    assert message in err.value.msg and str(tmp_path / "wg0.json") in err.value.msg


def test_missing_state_file_is_unmanaged_and_still_reports_the_interface(tmp_path):
    result = report(tmp_path, None, iface([peer(HUB_KEY, NOW - 5, "192.0.2.1:51820")]))
    assert result["client_mode"] == "unmanaged" and result["status"] == "connected"
    assert result["state_file"] is None and result["rules"] == [] and result["drift"] is False
    assert result["peers"][0]["public_key"] == HUB_KEY and result["peers"][0]["handshake_age"] == 5
    assert result["access_services"] == [] and result["public_exposure"] is False


def test_unreadable_state_file_is_an_error(tmp_path):
    (tmp_path / "wg0.json").mkdir()
    with pytest.raises(status_state.StateFileError, match="cannot read state file"):
        report(tmp_path, None, iface([]))


def test_state_file_defaults_and_unknown_keys():
    state = status_state.parse_state(json.dumps({"version": 1, "client_mode": "proxy", "future_key": 1,
                                                 "public_ports": [{"port": 80, "to_address": "10.7.0.2", "to_port": 80}],
                                                 "rule_sets": [{"module": "wg_dnat", "params": {"name": "public"}}]}),
                                     "/x/wg0.json", "wg0")
    assert state["access_services"] == [] and state["shared_services"] == [] and state["interface"] == "wg0"
    assert state["public_exposure"] is True  # derived from the published ports when not recorded
    assert state["rule_sets"][0]["name"] == "public" and state["future_key"] == 1


def test_declared_fields_keep_the_original_names(tmp_path):
    result = report(tmp_path, PROXY_STATE, iface([peer(HUB_KEY, NOW - 1, "192.168.30.224:51820")]))
    assert result["client_mode"] == "proxy" and result["public_exposure"] is True
    assert [s["target"] for s in result["access_services"]] == ["10.7.0.2:80", "10.7.0.2:53"]
    assert result["public_ports"] == PROXY_STATE["public_ports"]
    assert result["declared"]["hub_endpoint"] == "192.168.30.224:51820"
    assert result["summary"] == "proxy connected handshake=1s drift=no"


# ---------------------------------------------------------------------------------------------
# handshake classification

HUB_EP = "192.168.30.224:51820"


@pytest.mark.parametrize("live, status, age", [
    (iface([peer(HUB_KEY, NOW - 10, HUB_EP)]), "connected", 10),
    (iface([peer(HUB_KEY, NOW - 179, HUB_EP)]), "connected", 179),
    (iface([peer(HUB_KEY, NOW - 180, HUB_EP)]), "handshake-stale", 180),
    (iface([peer(HUB_KEY, NOW - 4000, HUB_EP)]), "handshake-stale", 4000),
    (iface([peer(HUB_KEY, 0, HUB_EP)]), "no-handshake", None),
    (iface([]), "no-handshake", None),
    (iface([peer(HUB_KEY, NOW - 10, HUB_EP)], up=False), "down", 10),
    (iface([], exists=False), "absent", None),
    # a clock step backwards never gives a negative age
    (iface([peer(HUB_KEY, NOW + 30, HUB_EP)]), "connected", 0),
])
def test_client_status(tmp_path, live, status, age):
    result = report(tmp_path, PROXY_STATE, live)
    assert (result["status"], result["handshake_age"]) == (status, age)


def test_the_hub_peer_decides_not_another_fresh_peer(tmp_path):
    live = iface([peer(HUB_KEY, NOW - 500, HUB_EP), peer(SHARE_KEY, NOW - 1, "192.0.2.9:4000", ["10.9.0.0/24"])])
    result = report(tmp_path, PROXY_STATE, live)
    assert result["status"] == "handshake-stale" and result["hub_public_key"] == HUB_KEY
    assert [(p["public_key"], p["role"], p["fresh"]) for p in result["peers"]] == [
        (HUB_KEY, "hub", False), (SHARE_KEY, "peer", True)]


@pytest.mark.parametrize("peers, expected", [
    # endpoint as recorded
    ([peer(SHARE_KEY, 1, "192.0.2.9:1"), peer(HUB_KEY, 1, HUB_EP)], HUB_KEY),
    # roamed endpoint: found by the hub's tunnel address in its allowed IPs
    ([peer(SHARE_KEY, 1, "192.0.2.9:1", ["10.9.0.0/24"]), peer(HUB_KEY, 1, "198.51.100.7:51820")], HUB_KEY),
    # only one peer: that is the hub
    ([peer(HUB_KEY, 1, None, [])], HUB_KEY),
    # two peers and neither matches
    ([peer(SHARE_KEY, 1, None, []), peer(HUB_KEY, 1, None, [])], None),
    ([], None),
])
def test_find_hub_peer(peers, expected):
    found = status_views.find_hub_peer(peers, PROXY_STATE)
    assert (found["public_key"] if found else None) == expected


def test_ipv6_endpoint_matches():
    state = dict(PROXY_STATE, hub_endpoint="[2001:db8::1]:51820", hub_address="fd00::1")
    peers = [peer(SHARE_KEY, 1, "192.0.2.9:1", []), peer(HUB_KEY, 1, "[2001:db8::1]:51820", [])]
    assert status_views.find_hub_peer(peers, state)["public_key"] == HUB_KEY


def test_server_is_connected_when_one_client_is_fresh_and_reports_each_age(tmp_path):
    live = iface([peer(SHARE_KEY, NOW - 30, None, ["10.7.0.2/32"]), peer(PROXY_KEY, 0, None, ["10.7.0.3/32"])])
    result = report(tmp_path, SERVER_STATE, live, probe=True)
    assert result["status"] == "connected" and result["handshake_age"] == 30 and result["clients_connected"] == 1
    assert [(p["role"], p["handshake_age"], p["fresh"]) for p in result["peers"]] == [
        ("client", 30, True), ("client", None, False)]
    assert [(p["name"], p["target"], p["ok"]) for p in result["probes"]] == [
        ("client handshake", SHARE_KEY, True), ("client handshake", PROXY_KEY, False)]


def test_server_without_fresh_clients(tmp_path):
    live = iface([peer(SHARE_KEY, NOW - 900, None), peer(PROXY_KEY, 0, None)])
    assert report(tmp_path, SERVER_STATE, live)["status"] == "handshake-stale"
    assert report(tmp_path, SERVER_STATE, iface([peer(SHARE_KEY, 0, None)]))["status"] == "no-handshake"


# ---------------------------------------------------------------------------------------------
# rules / drift

def test_each_declared_rule_set_is_checked_with_its_recorded_params(tmp_path):
    result = report(tmp_path, SHARE_STATE, iface([peer(HUB_KEY, NOW - 1, HUB_EP)]),
                    rules={"input": drifted("input", "wg_filter")})
    assert result["_rule_calls"] == [("wg_dnat", {"name": "share"}), ("wg_filter", {"name": "input"})]
    assert [(r["name"], r["in_sync"]) for r in result["rules"]] == [("share", True), ("input", False)]
    assert result["drift"] is True and result["rules"][1]["drift"]["missing"] == ["nat WGSP-X: -j DNAT"]
    assert result["rules"][0]["counters"][0]["packets"] == 3
    assert "drift=yes" in result["summary"]


def test_a_rule_set_that_cannot_be_read_is_reported_as_drift_not_raised(tmp_path):
    result = report(tmp_path, PROXY_STATE, iface([peer(HUB_KEY, NOW - 1, HUB_EP)]),
                    rules={"public": ValidationError("rules[0].port", "must be between 1 and 65535")})
    assert result["drift"] is True
    assert result["rules"][0]["error"] == "rules[0].port: must be between 1 and 65535"
    assert result["rules"][0]["in_sync"] is False and result["rules"][0]["module"] == "wg_dnat"


def test_routes_view_keeps_the_interface_and_marks_ours():
    from ansible_collections.wgsp.service_proxy.plugins.module_utils._routes import Route

    routes = [Route("10.7.0.0/24", oif=5, ifname="wg0", proto=87), Route("0.0.0.0/0", oif=2, ifname="2", proto=3),
              Route("10.7.0.2/32", oif=5, ifname="wg0", proto=3)]
    view = status_views.routes_view(routes, 5)
    assert [(r["dest"], r["managed"]) for r in view] == [("10.7.0.0/24", True), ("10.7.0.2/32", False)]
    assert status_views.routes_view(routes, None) == []


def test_routes_are_read_only_when_the_interface_exists(tmp_path):
    asked = []

    def reader(name):
        asked.append(name)
        return [{"dest": "10.7.0.0/24"}]

    assert report(tmp_path, PROXY_STATE, iface([], exists=False), routes=reader)["routes"] == []
    assert report(tmp_path, PROXY_STATE, iface([]), routes=reader)["routes"] == [{"dest": "10.7.0.0/24"}]
    assert asked == ["wg0"]


# ---------------------------------------------------------------------------------------------
# probes

def probes_of(result):
    return [(p["name"], p["target"], p["ok"]) for p in result["probes"]]


def test_proxy_probes(tmp_path):
    connect = Connector({("10.7.0.1", 22): "refused"})
    result = report(tmp_path, PROXY_STATE, iface([peer(HUB_KEY, NOW - 3, HUB_EP)]), probe=True, connect=connect,
                    route_of=lambda address: "wg0")
    assert probes_of(result) == [
        ("handshake", "wg0", True),
        ("hub tunnel address", "10.7.0.1:22", True),  # RST counts as an answer
        ("access service", "10.7.0.2:80", True),
        ("access service", "10.7.0.2:53", None),  # UDP: not probed
        ("public port tcp/80 target", "10.7.0.2:80", True),
    ]
    assert connect.calls == [("10.7.0.1", 22, True), ("10.7.0.2", 80, False), ("10.7.0.2", 80, False)]
    assert all(set(p) == {"name", "target", "ok", "detail", "elapsed_ms"} for p in result["probes"])
    assert result["summary"].endswith("probes=4/4")


def test_a_published_tcp_range_is_not_probed(tmp_path):
    """Which ports of a range listen is the service's choice (passive FTP listens on one at a time)."""
    state = dict(PROXY_STATE, access_services=[], public_ports=[
        {"proto": "tcp", "port": "30000-30010", "to_address": "10.7.0.2", "to_port": "40000-40010"}])
    connect = Connector({("10.7.0.1", 22): "refused"})
    result = report(tmp_path, state, iface([peer(HUB_KEY, NOW - 3, HUB_EP)]), probe=True, connect=connect,
                    route_of=lambda address: "wg0")
    assert probes_of(result)[-1] == ("public port tcp/30000-30010 target", "10.7.0.2:40000-40010", None)
    assert "a port range: not probed" in result["probes"][-1]["detail"]
    assert connect.calls == [("10.7.0.1", 22, True)]


def test_proxy_probe_failures(tmp_path):
    connect = Connector({("10.7.0.1", 22): "timeout", ("10.7.0.2", 80): "refused"})
    result = report(tmp_path, PROXY_STATE, iface([peer(HUB_KEY, NOW - 3, HUB_EP)]), probe=True, connect=connect)
    assert [ok for _n, _t, ok in probes_of(result)] == [True, False, False, None, False]
    assert "refused" in result["probes"][2]["detail"] and result["probes"][1]["elapsed_ms"] == 500
    assert result["summary"].endswith("probes=1/4")
    assert status_report.failures(result, ["probe"]) == [
        "probes failed: hub tunnel address 10.7.0.1:22; access service 10.7.0.2:80; "
        "public port tcp/80 target 10.7.0.2:80"]


def test_a_target_not_routed_through_the_tunnel_fails_without_connecting(tmp_path):
    connect = Connector()
    result = report(tmp_path, PROXY_STATE, iface([peer(HUB_KEY, NOW - 3, HUB_EP)]), probe=True, connect=connect,
                    route_of=lambda address: "eth0")
    assert result["probes"][2]["ok"] is False and "routed via eth0, not wg0" in result["probes"][2]["detail"]
    assert connect.calls == [("10.7.0.1", 22, True)]


@pytest.mark.parametrize("live", [iface([], exists=False), iface([peer(HUB_KEY, NOW - 3, HUB_EP)], up=False)])
def test_no_network_probe_when_the_interface_is_absent_or_down(tmp_path, live):
    connect = Connector()
    result = report(tmp_path, PROXY_STATE, live, probe=True, connect=connect)
    assert probes_of(result) == [("handshake", "wg0", False)] and connect.calls == []


def test_share_probes_containers_and_services(tmp_path):
    containers = [{"container": "dummy", "rule": "rules[0]", "resolved": "172.18.0.5", "installed": ["172.18.0.5"],
                   "stale": False}]
    connect = Connector({("172.18.0.5", 80): "refused"})
    result = report(tmp_path, SHARE_STATE, iface([peer(HUB_KEY, NOW - 3, HUB_EP)]), probe=True, connect=connect,
                    rules={"share": in_sync("share", containers=containers)})
    assert probes_of(result) == [
        ("handshake", "wg0", True),
        ("hub tunnel address", "10.7.0.1:22", True),
        ("container resolution", "dummy", True),
        ("shared service dummy", "172.18.0.5:80", False),  # the service behind the share is down
        ("host service tcp/8080", "10.7.0.2:8081", True),
        ("external forward udp/5353", "192.168.1.50:53", None),
    ]


@pytest.mark.parametrize("entry, detail", [
    ({"resolved": "172.18.0.9", "installed": ["172.18.0.5"], "stale": True},
     "stale: rules point at 172.18.0.5, the container is at 172.18.0.9"),
    ({"resolved": None, "installed": ["172.18.0.5"], "stale": True, "error": "no container dummy"},
     "cannot resolve: no container dummy"),
    ({"resolved": "172.18.0.9", "installed": [], "stale": False}, "resolves to 172.18.0.9 but no rule points at it"),
])
def test_stale_or_unresolved_containers_fail(tmp_path, entry, detail):
    entry = dict(entry, container="dummy", rule="rules[0]")
    result = report(tmp_path, SHARE_STATE, iface([peer(HUB_KEY, NOW - 3, HUB_EP)]), probe=True,
                    rules={"share": in_sync("share", containers=[entry])})
    found = [p for p in result["probes"] if p["name"] == "container resolution"]
    assert found[0]["ok"] is False and found[0]["detail"] == detail


# ---------------------------------------------------------------------------------------------
# fail_on


@pytest.mark.parametrize("fail_on, live, rules, expected", [
    ([], iface([]), None, []),
    (["disconnected"], iface([]), None, ["status is no-handshake"]),
    (["disconnected"], iface([peer(HUB_KEY, NOW - 1, HUB_EP)]), None, []),
    (["drift"], iface([peer(HUB_KEY, NOW - 1, HUB_EP)]), {"public": drifted("public")}, ["drift in wg_dnat public"]),
    (["drift", "disconnected"], iface([], exists=False), {"public": drifted("public")},
     ["status is absent", "drift in wg_dnat public"]),
])
def test_failures(tmp_path, fail_on, live, rules, expected):
    result = report(tmp_path, PROXY_STATE, live, rules=rules)
    assert status_report.failures(result, fail_on) == expected


@pytest.mark.parametrize("state, live, expected", [
    # a host of a mixed inventory with no tunnel at all: nothing to check, not a failure
    (None, iface([], exists=False), []),
    # the roles configured it (state file) and the interface is gone: a failure
    (PROXY_STATE, iface([], exists=False), ["status is absent"]),
    # an interface nobody recorded, down or without a handshake: still checked
    (None, iface([], up=False), ["status is down"]),
    (None, iface([]), ["status is no-handshake"]),
])
def test_disconnected_checks_every_host_that_has_a_tunnel(tmp_path, state, live, expected):
    result = report(tmp_path, state, live)
    assert status_report.failures(result, ["disconnected"]) == expected
    line = status_report.summary_line(result)
    assert line.startswith("not configured: no wg0 interface") == (expected == [])


def test_tcp_connect_real_loopback():
    import socket

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    try:
        ok, detail, ms = status_probes.tcp_connect("127.0.0.1", port, 1.0)
        assert ok and "accepted" in detail and ms >= 0
    finally:
        server.close()
    ok, detail, _ms = status_probes.tcp_connect("127.0.0.1", port, 1.0)
    assert ok is False and "refused" in detail
    ok, detail, _ms = status_probes.tcp_connect("127.0.0.1", port, 1.0, refused_ok=True)
    assert ok is True and "RST" in detail


def test_interface_name_is_validated():
    with pytest.raises(WgspError, match="invalid interface name"):
        status_report.StatusReport("wg0; rm", None, None)
