"""Adversarial layer for the modules (issue 11): hostile and borderline values for every string,
number and list option of wg_interface, wg_dnat, wg_filter, wg_route, wg_status and wg_key, each run
on a real namespace host (iptables-nft, nftables, wireguard-go) the way Ansible runs a module.

For each example, either the module refuses (failed, the message names the option, no traceback) and
the host is byte-identical (rules, ruleset, links, addresses, routes, policy rules, private files,
wireguard-go processes), or it accepts, applies, and an identical second run reports changed=false.
In every case neither the host's private key, its preshared key, nor any key a module generated
appears in the module's output. One host per test module, reset between examples.

What the layer or the audit found is kept as an explicit ``@example``, so the random search can
never lose it.
"""

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import hostile as H
import profiles  # noqa: F401 (loads the hypothesis profile (WGSP_FUZZ_PROFILE))  pylint: disable=unused-import
from fuzzhost import FUZZ_KEY, PEER_PUB, FuzzHost, fuzz_lab, outcome, with_value  # noqa: F401 (fuzz_lab: fixture)  pylint: disable=unused-import

# ---------------------------------------------------------------------------------------------
# the modules: a valid base set of arguments, and every option with the strategy for its values


def _dnat(backend):
    return {"name": "pub", "backend": backend, "in_interface": "eth0", "protect_ports": [51820],
            "rules": [{"port": 80, "to_address": "192.0.2.7", "to_port": 8080, "sources": ["198.51.100.0/24"]},
                      {"proto": "udp", "port": 53, "to_address": "fd00:1::7"}]}


def _filter(backend):
    return {"name": "input", "backend": backend, "in_interface": "eth0", "policy": "drop",
            "allow": [{"port": 22, "sources": ["198.51.100.0/24"]}, {"proto": "udp", "port": 53,
                                                                     "destinations": ["fd00:1::1"]}]}


CIDR = H.text_for("10.9.0.0/24")
DNAT_OPTIONS = {
    ("name",): H.text_for("pub"), ("in_interface",): H.text_for("eth0"), ("out_interface",): H.text_for("eth1"),
    ("rules",): H.list_for([{"port": 80, "to_address": "192.0.2.7"}], st.one_of(H.texts, H.wrong, st.fixed_dictionaries(
        {"port": H.number_for(80), "to_address": H.text_for("192.0.2.7")}))),
    ("rules", 0, "port"): H.number_for(80), ("rules", 0, "to_port"): H.number_for(8080),
    ("rules", 0, "to_address"): H.text_for("192.0.2.7"), ("rules", 0, "proto"): H.text_for("tcp"),
    ("rules", 0, "sources"): H.list_for(["198.51.100.0/24"], CIDR), ("rules", 0, "sources", 0): H.text_for("198.51.100.0/24"),
    ("rules", 0, "in_interface"): H.text_for("eth0"), ("rules", 0, "out_interface"): H.text_for("eth1"),
    ("rules", 1, "to_address"): H.text_for("fd00:1::7"),
    ("compact_rules",): H.list_for(["81:192.0.2.8:81"], H.text_for("81:192.0.2.8:81")),
    ("sources",): H.list_for(["203.0.113.0/24"], CIDR), ("protect_ports",): H.list_for([22], H.number_for(22)),
    ("protect_ports", 0): H.number_for(51820), ("persist_path",): H.path_for("/etc/wg-service-proxy"),
    ("state",): H.text_for("present"), ("backend",): H.text_for("iptables"),
    ("masquerade",): H.wrong, ("log",): H.wrong, ("flush_conntrack",): H.wrong,
}
FILTER_OPTIONS = {
    ("name",): H.text_for("input"), ("hook",): H.text_for("input"), ("in_interface",): H.text_for("eth0"),
    ("out_interface",): H.text_for("eth1"), ("policy",): H.text_for("drop"),
    ("allow",): H.list_for([{"port": 22}], st.one_of(H.texts, H.wrong, st.fixed_dictionaries({"port": H.number_for(22)}))),
    ("allow", 0, "port"): H.number_for(22), ("allow", 0, "proto"): H.text_for("tcp"),
    ("allow", 0, "sources"): H.list_for(["198.51.100.0/24"], CIDR), ("allow", 0, "sources", 0): H.text_for("198.51.100.0/24"),
    ("allow", 1, "destinations", 0): H.text_for("fd00:1::1"), ("persist_path",): H.path_for("/etc/wg-service-proxy"),
    ("state",): H.text_for("present"), ("backend",): H.text_for("nftables"), ("log",): H.wrong, ("established",): H.wrong,
}
ROUTE_OPTIONS = {
    ("interface",): H.text_for("eth0"),
    ("routes",): H.list_for([{"dest": "10.9.0.0/24"}], st.one_of(CIDR, H.wrong, st.fixed_dictionaries({"dest": CIDR}))),
    ("routes", 0, "dest"): CIDR, ("routes", 0, "table"): st.one_of(H.number_for(100), H.text_for("main")),
    ("routes", 0, "metric"): H.number_for(10), ("routes", 1, "gateway"): H.text_for("fd00:1::fe"),
    ("routes", 1, "dest"): H.text_for("fd00:9::/64"), ("table",): st.one_of(H.number_for(100), H.text_for("main")),
    ("metric",): H.number_for(10), ("proto",): H.number_for(87), ("state",): H.text_for("present"),
    ("exclusive",): H.wrong,
}
ROUTE_BASE = {"interface": "eth0", "routes": [{"dest": "10.9.0.0/24", "metric": 5},
                                              {"dest": "fd00:9::/64", "gateway": "fd00:1::fe"}]}
INTERFACE_OPTIONS = {
    ("name",): H.text_for("wg0"), ("addresses",): H.list_for(["10.7.0.1/24"], H.text_for("fd00:7::1/64")),
    ("addresses", 0): H.text_for("10.7.0.1/24"), ("listen_port",): H.number_for(51820), ("mtu",): H.number_for(1420),
    ("fwmark",): H.number_for(51820), ("private_key",): H.text_for("x"), ("private_key_path",): H.path_for("/etc/wireguard"),
    ("peers",): H.list_for([{"public_key": PEER_PUB}], st.one_of(H.texts, H.wrong, st.fixed_dictionaries(
        {"public_key": H.text_for(PEER_PUB)}))),
    ("peers", 0, "public_key"): H.text_for(PEER_PUB), ("peers", 0, "endpoint"): H.text_for("192.0.2.9:51820"),
    ("peers", 0, "allowed_ips"): H.list_for(["10.7.0.2/32"], H.text_for("10.7.0.3/32")),
    ("peers", 0, "allowed_ips", 0): H.text_for("10.7.0.2/32"), ("peers", 0, "persistent_keepalive"): H.number_for(25),
    ("peers", 0, "preshared_key"): H.text_for("x"), ("table",): H.text_for("off"),
    ("post_up",): H.list_for(["ip route replace 10.8.0.0/24 dev %i proto 87"], H.text_for("true")),
    ("pre_down", 0): H.text_for("true"), ("backend",): H.text_for("userspace"), ("state",): H.text_for("present"),
    ("exclusive_peers",): H.wrong, ("persist",): H.wrong, ("remove_key",): H.wrong,
}
STATUS_OPTIONS = {
    ("interface",): H.text_for("wg0"), ("state_dir",): H.path_for("/etc/wg-service-proxy"),
    ("state_file",): H.path_for("/etc/wg-service-proxy"), ("fresh_seconds",): H.number_for(180),
    ("probe_timeout",): st.one_of(H.number_for(2), st.floats(allow_nan=True, allow_infinity=True)),
    ("hub_probe_port",): H.number_for(22), ("fail_on",): H.list_for(["down"], H.text_for("down")),
    ("probe",): H.wrong,
}
KEY_OPTIONS = {("path",): H.path_for("/etc/wireguard")}
# wg_carrier on the fuzz host: eth0 (192.0.2.1/24) stands in for the tunnel interface
CARRIER_SHARE = {"name": "wgc0", "interface": "eth0", "side": "share", "local": "192.0.2.1",
                 "peers": ["192.0.2.7", "192.0.2.8"], "local_ports": [{"proto": "udp", "port": 3478}],
                 "backend": "iptables", "persist_path": "/etc/wg-service-proxy/c.rules"}
CARRIER_PROXY = {"name": "wgc0", "interface": "eth0", "side": "proxy", "local": "192.0.2.1", "peers": ["192.0.2.7"],
                 "flows": [{"in_interface": "eth1", "proto": "both", "port": "8000-8010", "to_address": "192.0.2.7"}]}
CARRIER_COMMON = {
    ("name",): H.text_for("wgc0"), ("interface",): H.text_for("eth0"), ("local",): H.text_for("192.0.2.1"),
    ("peers",): H.list_for(["192.0.2.7"], H.text_for("192.0.2.8")), ("peers", 0): H.text_for("192.0.2.7"),
    ("port",): H.number_for(4789), ("vni",): H.number_for(7700), ("mtu",): H.number_for(1400),
    ("table",): H.number_for(5200), ("priority",): H.number_for(5200), ("state",): H.text_for("present"),
    ("side",): H.text_for("share"), ("backend",): H.text_for("nftables"),
}
CARRIER_SHARE_OPTIONS = dict(CARRIER_COMMON)
CARRIER_SHARE_OPTIONS.update({
    ("local_ports",): H.list_for([{"port": 8080}], st.one_of(H.texts, H.wrong, st.fixed_dictionaries(
        {"port": H.number_for(8080)}))),
    ("local_ports", 0, "port"): H.number_for(8080), ("local_ports", 0, "proto"): H.text_for("tcp"),
    ("mark_mask",): H.text_for("0x3ff00000"), ("rule_set",): H.text_for("carrier"),
    ("persist_path",): H.path_for("/etc/wg-service-proxy"),
})
CARRIER_PROXY_OPTIONS = dict(CARRIER_COMMON)
CARRIER_PROXY_OPTIONS.update({
    ("flows",): H.list_for([{"in_interface": "eth1", "port": 80, "to_address": "192.0.2.7"}], st.one_of(
        H.texts, H.wrong, st.fixed_dictionaries({"in_interface": H.text_for("eth1"), "port": H.number_for(80),
                                                 "to_address": H.text_for("192.0.2.7")}))),
    ("flows", 0, "in_interface"): H.text_for("eth1"), ("flows", 0, "port"): H.number_for(8000),
    ("flows", 0, "proto"): H.text_for("udp"), ("flows", 0, "to_address"): H.text_for("192.0.2.7"),
})


def interface_base(fz):
    return {"name": "wg0", "backend": "userspace", "addresses": ["10.7.0.1/24", "fd00:7::1/64"], "listen_port": 51820,
            "private_key_path": FUZZ_KEY, "post_up": [], "pre_down": ["true"],
            "peers": [{"public_key": PEER_PUB, "allowed_ips": ["10.7.0.2/32"], "endpoint": "192.0.2.9:51820",
                       "preshared_key": fz.psk, "persistent_keepalive": 25}]}


MODULES = {
    "wg_route": (lambda fz: ROUTE_BASE, ROUTE_OPTIONS),
    "wg_dnat": (lambda fz: _dnat("iptables"), DNAT_OPTIONS),
    "wg_filter": (lambda fz: _filter("nftables"), FILTER_OPTIONS),
    "wg_interface": (interface_base, INTERFACE_OPTIONS),
    "wg_status": (lambda fz: {"interface": "wg0"}, STATUS_OPTIONS),
    "wg_key": (lambda fz: {"path": "/etc/wireguard/k.key"}, KEY_OPTIONS),
    "wg_carrier": (lambda fz: CARRIER_SHARE, CARRIER_SHARE_OPTIONS),
    "wg_carrier_proxy": (lambda fz: CARRIER_PROXY, CARRIER_PROXY_OPTIONS),
}
# entries of MODULES that run another module (the same module with another side's base)
RUN_AS = {"wg_carrier_proxy": "wg_carrier"}


def check_example(fz, module, path, value):
    base, _options = MODULES[module]
    outcome(fz, RUN_AS.get(module, module), with_value(base(fz), path, value), path[0])


def _strategy(module):
    options = MODULES[module][1]
    return st.sampled_from(sorted(options, key=repr)).flatmap(lambda p: st.tuples(st.just(p), options[p]))


@pytest.fixture(scope="module")
def hosts(fuzz_lab):
    made = {}

    def get(module):
        if module not in made:
            made[module] = FuzzHost(fuzz_lab, module.replace("_", "")[:10])
        return made[module]
    return get


def _run(hosts, module, case):
    path, value = case
    fz = hosts(module)
    check_example(fz, module, path, value)


# Regression examples: the audit's findings that this repository's code already refuses, kept so the
# random search can never lose them.
@given(case=_strategy("wg_route"))
@example(case=(("routes", 0, "table"), "local"))
@example(case=(("routes", 1, "gateway"), "fe80::1%eth0"))
@example(case=(("interface",), "eth+"))
@example(case=(("routes", 0, "dest"), "0.0.0.0/0"))
@example(case=(("metric",), 0))  # found: an IPv6 route of metric 0 never converged (the kernel keeps 1024)
def test_wg_route(hosts, case):
    _run(hosts, "wg_route", case)


@given(case=_strategy("wg_dnat"))
@example(case=(("rules", 0, "to_address"), "fd00::5%1"))
@example(case=(("protect_ports", 0), 70000))
@example(case=(("in_interface",), "+"))
@example(case=(("rules", 0, "to_address"), "127.0.0.1"))
@example(case=(("rules", 0, "sources"), ["0.0.0.0/0"]))  # item 7: never converged on iptables
@example(case=(("rules", 0, "sources"), ["::ffff:1.2.3.4"]))  # item 7: refused (no packet carries it)
@example(case=(("name",), "f_x"))  # item 3: once shared wg_filter x's table
@example(case=(("persist_path",), "/etc/wg-service-proxy/" + "k" * 300))  # item 10: refused before any change
def test_wg_dnat(hosts, case):
    _run(hosts, "wg_dnat", case)


@given(case=_strategy("wg_filter"))
@example(case=(("in_interface",), "+"))
@example(case=(("allow", 0, "sources", 0), "fd00::5%1"))
def test_wg_filter(hosts, case):
    _run(hosts, "wg_filter", case)


@given(case=_strategy("wg_interface"))
@example(case=(("name",), "--version"))
@example(case=(("name",), ".."))
@example(case=(("addresses", 0), "fd00::9%x/64"))
@example(case=(("peers", 0, "endpoint"), "[fe80::1%eth0]:51820"))
def test_wg_interface(hosts, case):
    _run(hosts, "wg_interface", case)


@given(case=_strategy("wg_status"))
@example(case=(("probe_timeout",), -1))
@example(case=(("hub_probe_port",), 70000))
@example(case=(("state_dir",), "/etc/wg-service-proxy/" + "k" * 258))  # found by make fuzz: ENAMETOOLONG not naming state_dir
def test_wg_status(hosts, case):
    _run(hosts, "wg_status", case)


@given(case=_strategy("wg_key"))
@example(case=(("path",), "/etc/wireguard/" + "k" * 250))  # found: a traceback (its temporary file's name was too long)
@example(case=(("path",), "wg0.key"))
@example(case=(("path",), ""))
def test_wg_key(hosts, case):
    _run(hosts, "wg_key", case)


@given(case=_strategy("wg_carrier"))
@example(case=(("local",), "192.0.2.9"))  # not the host's: refused before the device exists (the kernel refused half-way)
@example(case=(("peers", 0), "192.0.2.255"))  # the underlay's broadcast address: an invalid gateway for the kernel
@example(case=(("peers", 0), "192.0.2.1"))  # the host itself
@example(case=(("name",), "eth1"))  # someone else's device
@example(case=(("mark_mask",), "0x3"))  # a mark that fills the mask (nft lists it without the AND)
@example(case=(("table",), 250))  # a range over the kernel's tables
def test_wg_carrier(hosts, case):
    _run(hosts, "wg_carrier", case)


@given(case=_strategy("wg_carrier_proxy"))
@example(case=(("flows", 0, "in_interface"), "eth+"))
@example(case=(("flows", 0, "to_address"), "192.0.2.8"))  # not a peer
@example(case=(("port",), 0))
def test_wg_carrier_proxy(hosts, case):
    _run(hosts, "wg_carrier_proxy", case)
