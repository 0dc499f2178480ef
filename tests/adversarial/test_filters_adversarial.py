"""Adversarial layer for the role filters of plugins/filter/service_proxy.py (issue 11).

Hostile and borderline inventory values go through every filter; each either raises
``AnsibleFilterError`` naming the variable (any other exception is a bug), or returns module
arguments that the module they are meant for accepts on a real namespace host, applies, and leaves
unchanged on a second run (the filters and the modules judge a value the same way). The shell lines
the filters build are parsed and run on the host: nothing but the intended ``ip``/``sh`` command.
"""

import copy
import os
import shlex

import pytest
from ansible.errors import AnsibleFilterError
from hypothesis import example, given
from hypothesis import strategies as st

import hostile as H
import profiles  # noqa: F401 (loads the hypothesis profile (WGSP_FUZZ_PROFILE))  pylint: disable=unused-import
from ansible_collections.wgsp.service_proxy.plugins.filter import service_proxy as F
from fuzzhost import PEER_PUB, FuzzHost, fuzz_lab, outcome, with_value  # noqa: F401 (fuzz_lab: fixture)  pylint: disable=unused-import

MARKER = "/tmp/wgsp-INJECTED"  # what the hostile shell strings would create


@pytest.fixture(scope="module")
def fz(fuzz_lab):
    return FuzzHost(fuzz_lab, "filters")


def filtered(var, call):
    """The filter's output, or None when it refused with an AnsibleFilterError naming ``var``."""
    try:
        return call()
    except AnsibleFilterError as exc:
        assert var in str(exc), "the error does not name %s: %s" % (var, exc)
        return None


def one_hostile(options):
    return st.sampled_from(sorted(options, key=repr)).flatmap(lambda p: st.tuples(st.just(p), options[p]))


# ---------------------------------------------------------------------------------------------
# share client: services, host services, external forwards -> wg_dnat rules; open ports -> wg_filter

SHARE = {"share_client_services": ["web:tcp:80", "dns:udp:53"], "share_client_host_services": ["tcp:22:2222"],
         "share_client_external_forwards": ["tcp:8080:192.0.2.7:80"], "share_client_allowed_tcp_ports": [443],
         "share_client_allowed_udp_ports": [51820]}
SHARE_OPTIONS = {
    ("share_client_services",): H.list_for(["web:80"], H.text_for("web:tcp:80")),
    ("share_client_services", 0): st.one_of(H.text_for("web:tcp:80"), st.fixed_dictionaries(
        {"name": H.text_for("web"), "port": H.number_for(80)})),
    ("share_client_host_services",): H.list_for(["udp:53"], H.text_for("tcp:22")),
    ("share_client_host_services", 0): st.one_of(H.text_for("tcp:22:2222"), st.fixed_dictionaries(
        {"proto": H.text_for("tcp"), "port": H.number_for(22), "to_port": H.number_for(2222)})),
    ("share_client_external_forwards",): H.list_for([], H.text_for("tcp:8080:192.0.2.7:80")),
    ("share_client_external_forwards", 0): st.one_of(H.text_for("tcp:8080:192.0.2.7:80"), st.fixed_dictionaries(
        {"proto": H.text_for("tcp"), "port": H.number_for(8080), "to_address": H.text_for("192.0.2.7"),
         "to_port": H.number_for(80)})),
    ("share_client_allowed_tcp_ports",): H.list_for([443], H.number_for(443)),
    ("share_client_allowed_udp_ports", 0): H.number_for(51820),
}


@given(case=one_hostile(SHARE_OPTIONS))
@example(case=(("share_client_services", 0), "web$(touch /tmp/wgsp-INJECTED):80"))
@example(case=(("share_client_services",), -71434733))  # found: a scalar made a TypeError, not a named error
@example(case=(("share_client_external_forwards", 0), "tcp:80:[fd00::5%1]:80"))
def test_share_filters(fz, case):
    path, value = case
    values = with_value(SHARE, path, value)
    var = path[0]
    if var.endswith("_ports"):  # the role checks these with wgsp_check_vars first
        if filtered(var, lambda: F.check_vars({var: values[var]})) is None:
            return
    services = filtered("share_client_services", lambda: F.share_services(values["share_client_services"]))
    host = filtered("share_client_host_services", lambda: F.host_services(values["share_client_host_services"]))
    external = filtered("share_client_external_forwards",
                        lambda: F.external_forwards(values["share_client_external_forwards"]))
    if services is not None:
        for svc in services:  # containers need Docker: their names and ports are checked like wg_dnat's
            assert 1 <= svc["port"] <= 65535 and 1 <= svc["to_port"] <= 65535
            F.check_vars({"share_client_docker_network": svc["container"]})
    if host is None or external is None:
        return
    rules = F.share_dnat_rules([], host=host, external=external, own_address="192.0.2.1")
    if rules:
        outcome(fz, "wg_dnat", {"name": "share", "backend": "iptables", "in_interface": "eth0", "rules": rules},
                "rules", must_accept=True)
    allow = F.share_input_allow(values["share_client_allowed_tcp_ports"], values["share_client_allowed_udp_ports"],
                                host=host)
    outcome(fz, "wg_filter", {"name": "input", "backend": "nftables", "in_interface": "eth0", "allow": allow},
            "allow", must_accept=True)


# ---------------------------------------------------------------------------------------------
# proxy client and hub: access services, public ports, hub flows, host addresses -> wg_dnat, wg_filter

HOSTVARS = {
    "share1": {"share_client_address": "10.7.0.2/24", "share_client_services": ["web:tcp:80", "dns:udp:53"]},
    "proxy1": {"proxy_client_address": "10.7.0.3/24",
               "proxy_client_access_services": ["share1:web", "tcp:192.0.2.7:8080", "[192.0.2.10]:443"],
               "proxy_client_public_ports": ["8443:share1:web", "udp:5353:share1:dns", "9000:192.0.2.8:9000"]},
}
PROXY_OPTIONS = {
    ("share1", "share_client_address"): H.text_for("10.7.0.2/24"),
    ("share1", "share_client_services", 0): H.text_for("web:tcp:80"),
    ("proxy1", "proxy_client_address"): H.text_for("10.7.0.3/24"),
    ("proxy1", "proxy_client_access_services"): H.list_for(["share1:web"], H.text_for("share1:web")),
    ("proxy1", "proxy_client_access_services", 1): st.one_of(H.text_for("tcp:192.0.2.7:8080"), st.fixed_dictionaries(
        {"address": H.text_for("192.0.2.7"), "port": H.number_for(8080)})),
    ("proxy1", "proxy_client_public_ports"): H.list_for(["8443:share1:web"], H.text_for("8443:share1:web")),
    ("proxy1", "proxy_client_public_ports", 2): st.one_of(H.text_for("9000:192.0.2.8:9000"), st.fixed_dictionaries(
        {"port": H.number_for(9000), "target": H.text_for("192.0.2.8:9000")})),
}


def mixed_families(allow):
    """Found by this layer (fixed): hub_flows paired a client's first (IPv4) tunnel address with an
    IPv6 target, and wg_filter then refused the mixed entry when the hub applied it."""
    return any(len(set(":" in a for a in rule["sources"] + rule["destinations"])) > 1 for rule in allow)


@given(case=one_hostile(PROXY_OPTIONS))
@example(case=(("proxy1", "proxy_client_access_services", 1), "[fd00::5%1]:80"))
@example(case=(("share1", "share_client_services", 0), 7))
@example(case=(("proxy1", "proxy_client_access_services", 2), "[fd00:1::7]:443"))
@example(case=(("proxy1", "proxy_client_public_ports", 2), "80:127.0.0.1:80"))
def test_proxy_and_hub_filters(fz, case):
    path, value = case
    hostvars = with_value(HOSTVARS, path, value)
    var = path[1]
    proxy = hostvars["proxy1"]
    access = filtered(var, lambda: F.access_services(proxy["proxy_client_access_services"], hostvars))
    public = filtered(var, lambda: F.public_ports(proxy["proxy_client_public_ports"], hostvars))
    flows = filtered(var, lambda: F.hub_flows(["proxy1"], hostvars))
    if access is None or public is None or flows is None:
        return
    assert not mixed_families(flows), flows
    rules = [{"proto": p["proto"], "port": p["port"], "to_address": p["to_address"], "to_port": p["to_port"]}
             for p in public]
    outcome(fz, "wg_dnat", {"name": "public", "backend": "nftables", "in_interface": "eth0", "rules": rules,
                            "protect_ports": [51820]}, "rules", must_accept=True)
    outcome(fz, "wg_filter", {"name": "hub", "backend": "iptables", "hook": "forward", "in_interface": "eth0",
                              "out_interface": "eth0", "allow": flows}, "allow", must_accept=True)


# ---------------------------------------------------------------------------------------------
# routes and shell lines: client_routes, hosts_outside -> wg_route; route_commands, boot_commands -> sh

ROUTING = {"address": ["10.7.0.3/24", "fd00:7::3/64"], "extra_routes": ["10.9.0.0/24", "fd00:9::/64", "10.7.0.0/25"],
           "network": "10.7.0.0/24", "addresses": ["10.7.0.3/24", "192.0.2.9/32"], "state_dir": "/etc/wg-service-proxy/boot.sh",
           "proto": 87}
ROUTING_OPTIONS = {
    ("address",): H.list_for(["10.7.0.3/24"], H.text_for("10.7.0.3/24")), ("address", 0): H.text_for("10.7.0.3/24"),
    ("extra_routes",): H.list_for(["10.9.0.0/24"], H.text_for("10.9.0.0/24")),
    ("extra_routes", 1): H.text_for("fd00:9::/64"), ("network",): H.text_for("10.7.0.0/24"),
    ("addresses", 1): H.text_for("192.0.2.9/32"), ("state_dir",): H.path_for("/etc/wg-service-proxy"),
    ("proto",): H.number_for(87),
}


def _run_lines(fz, lines, argv0):
    """Each line is exactly one ``argv0`` command (quoting holds); run them on the host: no injection."""
    for line in lines:
        argv = shlex.split(line.replace("%i", "eth0"))
        assert argv[0] == argv0 and not any(t in (";", "|", "&&", "||") for t in argv), line
    existed = os.path.exists(MARKER)
    script = "\n".join(line.replace("%i", "eth0") for line in lines) + "\ntrue\n"
    fz.host.run(["sh", "-c", script], check=False)
    assert os.path.exists(MARKER) == existed, "a shell line ran an injected command: %r" % lines


@given(case=one_hostile(ROUTING_OPTIONS))
@example(case=(("extra_routes", 1), "fd00::9%x||touch /tmp/wgsp-INJECTED#"))
@example(case=(("state_dir",), "/etc/wg-service-proxy/x;touch /tmp/wgsp-INJECTED;"))
def test_routing_filters(fz, case):
    path, value = case
    v = with_value(ROUTING, path, value)
    var = {"address": "address", "extra_routes": "extra_routes", "network": "network", "addresses": "addresses",
           "state_dir": "state_dir", "proto": "proto"}[path[0]]
    routes = filtered(var, lambda: F.client_routes(v["address"], v["extra_routes"]))
    outside = filtered(var, lambda: F.hosts_outside(v["addresses"], v["network"]))
    lines = filtered(var, lambda: F.route_commands(routes or [], proto=v["proto"]))
    boot = filtered(var, lambda: F.boot_commands([v["state_dir"]]))
    if boot is not None:
        _run_lines(fz, boot, "sh")
    relay_path = "%s/wg0-relay.json" % (v["state_dir"],)
    relay = filtered(var, lambda: F.relay_commands(relay_path, "/run/wgsp-relay-wg0.pid", var))
    if relay is not None:  # the relay's wg-quick lines: exactly its own argv (quoting holds), nothing more
        argv = ["python3", relay_path[:-len(".json")] + ".py", "--config", relay_path, "--pidfile", "/run/wgsp-relay-wg0.pid"]
        assert shlex.split(relay["post_up"]) == argv + ["--daemon", "||", "true"], relay
        assert shlex.split(relay["pre_down"]) == argv + ["--stop"], relay
    if routes is None or outside is None or lines is None:
        return
    args = {"interface": "eth0", "routes": routes + [{"dest": d} for d in outside], "proto": v["proto"]}
    outcome(fz, "wg_route", args, "routes", must_accept=True)
    fz.reset()
    _run_lines(fz, lines, "ip")


# ---------------------------------------------------------------------------------------------
# peers, hub info, role variables -> wg_interface

HUB = {"hub": {"wg_server_interface": "wg0", "wg_server_address": "10.7.0.1/24", "wg_server_listen_port": 51820,
               "ansible_host": "192.0.2.9"},
       "c1": {"share_client_address": "10.7.0.2/24"}, "c2": {"proxy_client_address": ["10.7.0.3/24", "fd00:7::3/64"]}}
KEYS = {"c1": PEER_PUB, "c2": "a8ItnsOR9I+f5beIPlF/gocDndJu/6Lgi6wp5cHsnBI="}
PEER_OPTIONS = {
    ("hub", "wg_server_interface"): H.text_for("wg0"), ("hub", "wg_server_address"): H.text_for("10.7.0.1/24"),
    ("hub", "wg_server_listen_port"): H.number_for(51820), ("hub", "ansible_host"): H.text_for("192.0.2.9"),
    ("hub", "wg_server_endpoint"): H.text_for("192.0.2.9:51820"),
    ("hub", "wg_server_private_key_path"): H.path_for("/etc/wireguard"),
    ("c1", "share_client_address"): H.text_for("10.7.0.2/24"), ("c2", "proxy_client_address"): H.list_for(
        ["10.7.0.3/24"], H.text_for("fd00:7::3/64")),
    ("keys", "c1"): H.text_for(PEER_PUB), ("vars", "share_client_mtu"): H.number_for(1420),
    ("vars", "proxy_client_persistent_keepalive"): H.number_for(25),
    ("vars", "proxy_client_public_interface"): H.text_for("eth0"),
}


@given(case=one_hostile(PEER_OPTIONS))
@example(case=(("hub", "wg_server_interface"), "-f"))
@example(case=(("hub", "wg_server_endpoint"), "[fe80::1%eth0]:51820"))
@example(case=(("keys", "c1"), PEER_PUB + "\u00a7?"))  # found by make fuzz: a bad client key reached wg_interface
def test_peer_filters(fz, case):
    path, value = case
    world = {"hostvars": copy.deepcopy(HUB), "keys": dict(KEYS),
             "vars": {"share_client_mtu": 1420, "proxy_client_persistent_keepalive": 25,
                      "proxy_client_public_interface": "eth0"}}
    root = world["hostvars"] if path[0] in HUB else world
    world_path = path if path[0] in HUB else path
    root = with_value(root, world_path, value)
    if path[0] in HUB:
        world["hostvars"] = root
    else:
        world = root
    var = path[0] + "." if path[0] in HUB else path[-1]  # an inventory host's value: named host.variable
    hostvars, keys, role_vars = world["hostvars"], world["keys"], world["vars"]
    if filtered(var, lambda: F.check_vars(role_vars)) is None:
        return
    public = filtered(var, lambda: F.public_interface(role_vars["proxy_client_public_interface"],
                                                      {"interfaces": ["lo", "eth0"], "default_ipv4": {"interface": "eth0"}}))
    hub = filtered(var, lambda: F.hub_info("hub", hostvars))
    peers = filtered(var, lambda: F.client_peers(["c1", "c2"], hostvars, keys))
    if public is not None:
        assert public in ("eth0", None)
    if hub is None or peers is None or filtered(var, lambda: F.check_ifname_filter(hub["interface"])) is None:
        return
    args = {"name": hub["interface"], "backend": "userspace", "addresses": [hub["address"] + "/24"],
            "private_key_path": "/etc/wireguard/fuzz.key", "mtu": role_vars["share_client_mtu"] or None,
            "peers": peers + [{"public_key": "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=", "endpoint": hub["endpoint"],
                               "allowed_ips": [hub["network"]],
                               "persistent_keepalive": int(role_vars["proxy_client_persistent_keepalive"])}]}
    outcome(fz, "wg_interface", args, "peers", must_accept=True)
