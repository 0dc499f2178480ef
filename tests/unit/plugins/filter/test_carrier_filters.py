"""The role filters of the carrier (preserve_source): which published ports keep the client's
address, the carriers' peers, the hub's carrier flows, the rules on both ends and the boot lines."""

import copy

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.wgsp.service_proxy.plugins.filter import service_proxy as f

HOSTVARS = {
    "hub": {"wg_server_address": "10.7.0.1/24", "wg_server_endpoint": "192.0.2.1:51820"},
    "share1": {"share_client_address": "10.7.0.2/32",
               "share_client_services": [{"name": "web", "container": "web", "port": 443, "preserve_source": True},
                                         {"name": "echo", "proto": "udp", "port": 5353, "to_port": 53,
                                          "preserve_source": "yes"},
                                         "db:5432"],
               "share_client_host_services": [{"proto": "udp", "port": 3478, "preserve_source": True},
                                              {"proto": "tcp", "port": 8443, "to_port": 443, "preserve_source": True},
                                              "tcp:22"]},
    "share2": {"share_client_address": "10.7.0.4/32", "share_client_services": ["api:8080"]},
    "proxy1": {"proxy_client_address": "10.7.0.3/32",
               "proxy_client_public_ports": [{"port": 8443, "target": "share1:web", "preserve_source": True},
                                             {"proto": "udp", "port": 5353, "target": "share1:echo",
                                              "preserve_source": True},
                                             "80:share2:api"]},
    "proxy2": {"proxy_client_address": "10.7.0.5/32",
               "proxy_client_public_ports": [{"proto": "udp", "port": 3478, "to_address": "10.7.0.2",
                                              "to_port": 3478, "preserve_source": True}]},
}


def test_only_the_dict_entries_that_ask_keep_the_clients_address():
    ports = f.preserved_ports(HOSTVARS["proxy1"]["proxy_client_public_ports"], HOSTVARS)
    assert ports == [{"proto": "tcp", "port": 8443, "to_address": "10.7.0.2", "to_port": 443, "host": "share1"},
                     {"proto": "udp", "port": 5353, "to_address": "10.7.0.2", "to_port": 5353, "host": "share1"}]
    # a share's tunnel address stands for the share; a host service is offered by its port
    assert f.preserved_ports(HOSTVARS["proxy2"]["proxy_client_public_ports"], HOSTVARS)[0]["host"] == "share1"


@pytest.mark.parametrize(("entry", "words"), [
    ({"port": 80, "target": "share2:api", "preserve_source": True}, "share2 does not let tcp port 8080 keep it"),
    ({"port": 80, "to_address": "10.7.0.9", "to_port": 80, "preserve_source": True}, "a share of the inventory"),
    ({"port": 80, "to_address": "fd00::2", "to_port": 80, "preserve_source": True}, "needs an IPv4 target"),
    ({"port": 22, "to_address": "10.7.0.2", "to_port": 22, "preserve_source": True}, "share1 does not let tcp port 22"),
])
def test_a_port_that_cannot_keep_the_address_is_refused_naming_the_entry(entry, words):
    with pytest.raises(AnsibleFilterError, match="proxy_client_public_ports: entry") as info:
        f.preserved_ports([entry], HOSTVARS)
    assert words in str(info.value)


def test_a_share_carries_from_exactly_the_proxies_that_preserve_its_services():
    assert f.carrier_peers("share1", HOSTVARS, ["proxy2", "proxy1"]) == ["10.7.0.3", "10.7.0.5"]
    assert f.carrier_peers("share2", HOSTVARS, ["proxy1", "proxy2"]) == []


def test_the_hub_lets_each_carrier_pair_talk_both_ways_and_nothing_more():
    flows = f.hub_flows(["proxy1", "proxy2"], HOSTVARS)
    carrier = [x for x in flows if x["port"] == 4789]
    assert carrier == [
        {"proto": "udp", "port": 4789, "sources": ["10.7.0.3"], "destinations": ["10.7.0.2"]},
        {"proto": "udp", "port": 4789, "sources": ["10.7.0.2"], "destinations": ["10.7.0.3"]},
        {"proto": "udp", "port": 4789, "sources": ["10.7.0.5"], "destinations": ["10.7.0.2"]},
        {"proto": "udp", "port": 4789, "sources": ["10.7.0.2"], "destinations": ["10.7.0.5"]},
    ]
    plain = copy.deepcopy(HOSTVARS)
    plain["proxy1"]["proxy_client_public_ports"] = ["8443:share1:web"]
    assert not [x for x in f.hub_flows(["proxy1"], plain) if x["port"] == 4789]


def test_the_proxy_sends_only_the_preserved_ports_into_the_carrier_unmasqueraded():
    preserved = f.preserved_ports(HOSTVARS["proxy1"]["proxy_client_public_ports"], HOSTVARS)
    rules = f.public_ports(HOSTVARS["proxy1"]["proxy_client_public_ports"], HOSTVARS)
    out = f.preserve_rules(rules, preserved, "wg0-c")
    assert [(r["port"], r.get("out_interface"), r.get("masquerade")) for r in out] == [
        (8443, "wg0-c", False), (5353, "wg0-c", False), (80, None, None)]


def test_the_share_keeps_its_preserved_services_unmasqueraded_and_carries_them():
    vars_ = HOSTVARS["share1"]
    containers = f.share_services(vars_["share_client_services"])
    host = f.host_services(vars_["share_client_host_services"])
    base = f.share_dnat_rules(containers, host, [], "10.7.0.2/32", masquerade=True)
    carried = f.share_carrier(vars_["share_client_services"], vars_["share_client_host_services"], ["10.7.0.3"], "wg0-c",
                              "10.7.0.2/32", base)
    assert [(r.get("to_container") or r.get("to_address"), r["port"], r.get("in_interface"), r["masquerade"])
            for r in carried["rules"]] == [
        ("web", 443, None, False), ("echo", 5353, None, False), ("db", 5432, None, True),
        ("10.7.0.2", 8443, None, False),
        ("web", 443, "wg0-c", False), ("echo", 5353, "wg0-c", False), ("10.7.0.2", 8443, "wg0-c", False)]
    assert carried["local_ports"] == [{"proto": "udp", "port": 3478}]
    # no proxy carries: nothing of the carrier, the services still keep their clients' addresses
    alone = f.share_carrier(vars_["share_client_services"], vars_["share_client_host_services"], [], "wg0-c",
                            "10.7.0.2/32", base)
    assert alone["dnat"] == [] and alone["local_ports"] == [] and alone["rules"] == carried["rules"][:4]


def test_the_boot_lines_come_from_the_modules_own_validator():
    params = {"name": "wg0-c", "interface": "wg0", "side": "share", "local": "10.7.0.2", "peers": ["10.7.0.3"]}
    boot = f.carrier_commands(params)
    assert boot["port"] == 4789 and boot["pre_down"][-1] == "ip link del wg0-c || true"
    assert all(line.endswith("|| true") for line in boot["post_up"])
    assert f.carrier_commands(dict(params, state="absent")) == {"post_up": [], "pre_down": [], "port": 4789}
    with pytest.raises(AnsibleFilterError, match=r"share_client_carrier_interface: name: invalid interface name"):
        f.carrier_commands(dict(params, name="c;reboot"), "share_client_carrier_interface")
    with pytest.raises(AnsibleFilterError, match=r"share_client_carrier_interface: peers\[0\]"):
        f.carrier_commands(dict(params, peers=["10.7.0.3 && reboot"]), "share_client_carrier_interface")


def test_a_published_port_to_an_ipv6_to_address_in_dict_form_is_read():
    """found with the carrier's refusals: the dict form joined an IPv6 to_address without brackets."""
    assert f.public_ports([{"port": 80, "to_address": "fd00::2", "to_port": 8080}], HOSTVARS) == [
        {"proto": "tcp", "port": 80, "to_address": "fd00::2", "to_port": 8080}]
