"""The roles' parsing filters: inventory forms -> module arguments, and clear errors."""

import copy

import pytest

from ansible.errors import AnsibleFilterError
from ansible_collections.wgsp.service_proxy.plugins.filter import service_proxy as f

HOSTVARS = {
    "hub": {"wg_server_address": "10.7.0.1/24", "ansible_host": "192.168.30.224"},
    "share1": {"share_client_address": "10.7.0.2/32",
               "share_client_services": ["dummy:tcp:80", {"name": "dns", "container": "unbound", "proto": "udp", "port": 53}]},
    "share2": {"share_client_address": "10.7.0.4/32", "share_client_services": ["db:5432"]},
    "proxy1": {"proxy_client_address": "10.7.0.3/32", "proxy_client_access_services": ["10.7.0.2:80", "share2:db"],
               "proxy_client_public_ports": ["80:share1:dummy", "udp:5353:share1:dns", "8443:10.7.0.2:443"]},
}


@pytest.mark.parametrize("entry, expected", [
    ("dummy:tcp:80", {"name": "dummy", "container": "dummy", "proto": "tcp", "port": 80, "to_port": 80}),
    ("dummy:80", {"name": "dummy", "container": "dummy", "proto": "tcp", "port": 80, "to_port": 80}),
    ("dns:all:53", {"name": "dns", "container": "dns", "proto": "both", "port": 53, "to_port": 53}),
    ({"name": "web", "container": "web-1", "port": 8080, "to_port": 80},
     {"name": "web", "container": "web-1", "proto": "tcp", "port": 8080, "to_port": 80}),
])
def test_share_services_forms(entry, expected):
    assert f.share_services([entry]) == [expected]


@pytest.mark.parametrize("entry, message", [
    ("dummy:tcp:0", "invalid port"),
    ("dummy:icmpx:80", "invalid protocol"),
    ("a:b:c:d", "is not name[:proto]:port"),
    ("du$(id):80", "invalid container name"),
    ({"port": 80}, "needs a name"),
])
def test_share_services_errors_name_the_variable(entry, message):
    with pytest.raises(AnsibleFilterError) as err:
        f.share_services([entry])
    assert "share_client_services" in str(err.value) and message in str(err.value)


def test_host_services_and_external_forwards():
    assert f.host_services(["tcp:8080", "udp:53:5353"]) == [
        {"proto": "tcp", "port": 8080, "to_port": 8080}, {"proto": "udp", "port": 53, "to_port": 5353}]
    assert f.external_forwards(["tcp:8081:192.168.1.50:80"]) == [
        {"proto": "tcp", "port": 8081, "to_address": "192.168.1.50", "to_port": 80}]
    with pytest.raises(AnsibleFilterError, match="share_client_external_forwards"):
        f.external_forwards(["tcp:8081:nothost:80"])


def test_targets_by_address_and_by_inventory_host_service():
    assert f.resolve_target("10.7.0.2:80", HOSTVARS) == {"address": "10.7.0.2", "port": 80, "proto": "tcp", "host": None}
    assert f.resolve_target("share1:dns", HOSTVARS) == {"address": "10.7.0.2", "port": 53, "proto": "udp", "host": "share1"}
    with pytest.raises(AnsibleFilterError, match="does not share"):
        f.resolve_target("share1:nope", HOSTVARS)
    with pytest.raises(AnsibleFilterError, match="not in the inventory"):
        f.resolve_target("share9:dummy", HOSTVARS)


def test_public_ports_resolve_every_form():
    assert f.public_ports(HOSTVARS["proxy1"]["proxy_client_public_ports"], HOSTVARS) == [
        {"proto": "tcp", "port": 80, "to_address": "10.7.0.2", "to_port": 80},
        {"proto": "udp", "port": 5353, "to_address": "10.7.0.2", "to_port": 53},
        {"proto": "tcp", "port": 8443, "to_address": "10.7.0.2", "to_port": 443},
    ]


def test_hub_flows_are_exactly_what_proxies_declare():
    flows = f.hub_flows(["proxy1"], HOSTVARS)
    assert {"proto": "tcp", "port": 80, "sources": ["10.7.0.3"], "destinations": ["10.7.0.2"]} in flows
    assert {"proto": "tcp", "port": 5432, "sources": ["10.7.0.3"], "destinations": ["10.7.0.4"]} in flows
    assert {"proto": "udp", "port": 53, "sources": ["10.7.0.3"], "destinations": ["10.7.0.2"]} in flows
    assert len(flows) == 4  # 10.7.0.2:80 is declared twice (access + public) but allowed once


def test_client_peers_skip_unknown_keys_and_own_only_their_address():
    key = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
    peers = f.client_peers(["share1", "proxy1"], HOSTVARS, {"share1": key, "proxy1": None})
    assert peers == [{"public_key": key, "allowed_ips": ["10.7.0.2/32"]}]


def test_client_peers_refuse_a_key_that_is_not_a_wireguard_key():
    with pytest.raises(AnsibleFilterError, match=r"share1 public key: is not a WireGuard key"):
        f.client_peers(["share1"], HOSTVARS, {"share1": "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\u00a7"})


def test_hub_info_uses_the_role_defaults():
    assert f.hub_info("hub", HOSTVARS) == {"interface": "wg0", "address": "10.7.0.1", "network": "10.7.0.0/24",
                                           "addresses": ["10.7.0.1"], "networks": ["10.7.0.0/24"],
                                           "endpoint": "192.168.30.224:51820", "key_path": "/etc/wireguard/wg0.key",
                                           "psk_dir": "/etc/wireguard/wg0-psk"}


def test_client_routes_skip_what_the_address_already_covers():
    assert f.client_routes("10.7.0.2/32", ["10.7.0.0/24", "10.9.0.5"]) == [{"dest": "10.7.0.0/24"}, {"dest": "10.9.0.5/32"}]
    assert f.client_routes("10.7.0.2/24", ["10.7.0.0/24"]) == []


def test_share_rule_sets():
    containers = f.share_services(["dummy:tcp:80"])
    host = f.host_services(["tcp:2222:22", "tcp:8080"])
    external = f.external_forwards(["udp:5000:192.168.1.9:5000"])
    rules = f.share_dnat_rules(containers, host, external, "10.7.0.2", False)
    assert rules == [
        {"proto": "tcp", "port": 80, "to_port": 80, "to_container": "dummy", "masquerade": False},
        {"proto": "udp", "port": 5000, "to_address": "192.168.1.9", "to_port": 5000, "masquerade": True},
        {"proto": "tcp", "port": 2222, "to_address": "10.7.0.2", "to_port": 22, "masquerade": False},
    ]
    assert f.share_input_allow([443], [], host, True) == [
        {"proto": "tcp", "port": 443}, {"proto": "tcp", "port": 22}, {"proto": "tcp", "port": 8080}, {"proto": "icmp"}]


def test_port_ranges_end_to_end_in_the_forms_and_what_the_modules_make_of_them():
    """Ranges in share_client_services, share_client_host_services and proxy_client_public_ports, remapped
    port by port to a range of the same length; the hub lets exactly the range through, and wg_dnat and
    wg_filter take what the filters give (the same validators)."""
    from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall import params
    from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.rules import validate_specs

    containers = f.share_services(["game:udp:27015-27020", {"name": "rtp", "proto": "udp", "port": "10000-10009",
                                                            "to_port": "20000-20009"}])
    assert [(c["port"], c["to_port"]) for c in containers] == [("27015-27020", "27015-27020"), ("10000-10009", "20000-20009")]
    host = f.host_services(["udp:31000-31002:41000-41002", "tcp:5000-5001"])
    assert host == [{"proto": "udp", "port": "31000-31002", "to_port": "41000-41002"},
                    {"proto": "tcp", "port": "5000-5001", "to_port": "5000-5001"}]
    rules = f.share_dnat_rules(containers, host, f.external_forwards(["tcp:6000-6001:192.168.1.9:7000-7001"]), "10.7.0.2")
    specs = validate_specs(rules)
    assert [(s.port, s.to_port) for s in specs] == [((27015, 27020), (27015, 27020)), ((10000, 10009), (20000, 20009)),
                                                    ((6000, 6001), (7000, 7001)), ((31000, 31002), (41000, 41002))]
    allow = f.share_input_allow([], [], host, False)
    assert allow == [{"proto": "udp", "port": "41000-41002"}, {"proto": "tcp", "port": "5000-5001"}]
    (fset,) = params.filter_rules(params.module_params("wg_filter", {"name": "input", "in_interface": "wg0", "allow": allow}))
    assert [a.port for a in fset.allows] == [(41000, 41002), (5000, 5001)]

    hostvars = dict(HOSTVARS, share1=dict(HOSTVARS["share1"], share_client_services=["game:udp:27015-27020"]),
                    proxy1=dict(HOSTVARS["proxy1"], proxy_client_access_services=[],
                                proxy_client_public_ports=["udp:32000-32002:10.7.0.2:31000-31002",
                                                           "udp:27015-27020:share1:game"]))
    public = f.public_ports(hostvars["proxy1"]["proxy_client_public_ports"], hostvars)
    assert public == [{"proto": "udp", "port": "32000-32002", "to_address": "10.7.0.2", "to_port": "31000-31002"},
                      {"proto": "udp", "port": "27015-27020", "to_address": "10.7.0.2", "to_port": "27015-27020"}]
    assert validate_specs(public)[0].to_port == (31000, 31002)
    assert f.hub_flows(["proxy1"], hostvars) == [
        {"proto": "udp", "port": "31000-31002", "sources": ["10.7.0.3"], "destinations": ["10.7.0.2"]},
        {"proto": "udp", "port": "27015-27020", "sources": ["10.7.0.3"], "destinations": ["10.7.0.2"]}]


@pytest.mark.parametrize("func, entry, words", [
    (f.host_services, "udp:31000-31002:41000-41001", ["share_client_host_services", "udp:31000-31002:41000-41001",
                                                      "41000-41001 is 2 port(s)", "31000-31002, are 3"]),
    (f.host_services, "udp:31000-31002:41000", ["share_client_host_services", "41000 is 1 port(s)"]),
    (f.host_services, "udp:31002-31000", ["share_client_host_services", "reversed"]),
    (f.share_services, {"name": "rtp", "port": "1-2", "to_port": "3-5"}, ["share_client_services", "3-5 is 3 port(s)"]),
    (f.external_forwards, "tcp:6000-6001:192.168.1.9:7000", ["share_client_external_forwards", "7000 is 1 port(s)"]),
])
def test_a_range_to_a_range_of_another_length_is_refused_naming_the_entry(func, entry, words):
    with pytest.raises(AnsibleFilterError) as err:
        func([entry])
    assert all(word in str(err.value) for word in words), str(err.value)


def test_a_public_range_to_a_target_of_another_length_is_refused():
    with pytest.raises(AnsibleFilterError) as err:
        f.public_ports(["udp:32000-32002:10.7.0.2:31000"], HOSTVARS)
    assert "proxy_client_public_ports" in str(err.value) and "31000 is 1 port(s)" in str(err.value)


def test_public_interface_picking():
    facts = {"interfaces": ["lo", "eth0", "eth1"], "default_ipv4": {"interface": "eth0"},
             "eth0": {"ipv4": {"address": "192.168.30.20"}}, "eth1": {"ipv4": {"address": "203.0.113.20"}}}
    assert f.public_interface("auto", facts) == "eth0"
    assert f.public_interface("203.0.113.0/24", facts) == "eth1"
    assert f.public_interface("eth1", facts) == "eth1"
    assert f.public_interface("public-network", facts) is None
    with pytest.raises(AnsibleFilterError, match="no interface"):
        f.public_interface("198.51.100.0/24", facts)


def test_hosts_outside():
    assert f.hosts_outside(["10.7.0.2", "172.20.0.5"], "10.7.0.0/24") == ["172.20.0.5/32"]


def test_route_commands_for_the_boot_path():
    assert f.route_commands([{"dest": "10.7.0.0/24"}, {"dest": "fd07::/64"}]) == [
        "ip route replace 10.7.0.0/24 dev %i proto 87", "ip -6 route replace fd07::/64 dev %i proto 87"]


def test_hub_flows_do_not_depend_on_the_order_of_the_proxies():
    hostvars = dict(HOSTVARS, proxy2={"proxy_client_address": "10.7.0.5/32", "proxy_client_access_services": ["10.7.0.2:443"]})
    assert f.hub_flows(["proxy1", "proxy2"], hostvars) == f.hub_flows(["proxy2", "proxy1"], hostvars)


def test_hub_flows_take_the_proxys_address_of_the_targets_family():
    hostvars = copy.deepcopy(HOSTVARS)
    hostvars["proxy1"]["proxy_client_address"] = ["10.7.0.3/32", "fd00:7::3/128"]
    hostvars["proxy1"]["proxy_client_access_services"] = ["[fd00:1::7]:443", "10.7.0.2:80"]
    flows = f.hub_flows(["proxy1"], hostvars)
    pairs = {(r["sources"][0], r["destinations"][0]) for r in flows}
    assert ("fd00:7::3", "fd00:1::7") in pairs and ("10.7.0.3", "10.7.0.2") in pairs


DUAL = {
    "hub": {"wg_server_address": ["10.7.0.1/24", "fd07:7::1/64"], "ansible_host": "192.168.30.224"},
    "share1": {"share_client_address": ["10.7.0.2/32", "fd07:7::2/128"], "share_client_services": ["dummy:tcp:80"],
               "share_client_host_services": ["tcp:8086"]},
    "proxy1": {"proxy_client_address": ["10.7.0.3/32", "fd07:7::3/128"],
               "proxy_client_access_services": ["share1:dummy", "[fd07:7::2]:8086", "10.7.0.2:8086"],
               "proxy_client_public_ports": ["80:share1:dummy", "8086:[fd07:7::2]:8086"]},
}


def test_a_dual_stack_hub_gives_its_clients_both_networks():
    hub = f.hub_info("hub", DUAL)
    assert (hub["address"], hub["network"]) == ("10.7.0.1", "10.7.0.0/24")
    assert hub["addresses"] == ["10.7.0.1", "fd07:7::1"] and hub["networks"] == ["10.7.0.0/24", "fd07:7::/64"]
    # the client routes the hub's networks its own addresses do not cover, and owns both addresses at the hub
    assert f.client_routes(DUAL["share1"]["share_client_address"], hub["networks"]) == [
        {"dest": "10.7.0.0/24"}, {"dest": "fd07:7::/64"}]
    peers = f.client_peers(["share1"], DUAL, {"share1": "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="})
    assert peers[0]["allowed_ips"] == ["10.7.0.2/32", "fd07:7::2/128"]
    assert f.tunnel_families(["10.7.0.2/32", "fd07:7::2/128"], hub, "share_client_address") == [
        "10.7.0.2/32", "fd07:7::2/128"]
    assert f.hosts_outside(["10.7.0.2", "fd07:7::9", "fd08::1", "192.0.2.1"], hub["networks"]) == [
        "fd08::1/128", "192.0.2.1/32"]


def test_a_dual_stack_proxy_reaches_and_publishes_in_each_targets_family():
    access = f.access_services(DUAL["proxy1"]["proxy_client_access_services"], DUAL)
    # a container service is reached at the share's IPv4 address (the share forwards it to Docker's IPv4)
    assert [a["address"] for a in access] == ["10.7.0.2", "fd07:7::2", "10.7.0.2"]
    public = f.public_ports(DUAL["proxy1"]["proxy_client_public_ports"], DUAL)
    assert [(p["port"], p["to_address"]) for p in public] == [(80, "10.7.0.2"), (8086, "fd07:7::2")]
    flows = f.hub_flows(["proxy1"], DUAL)
    assert {(r["sources"][0], r["destinations"][0], r["port"]) for r in flows} == {
        ("10.7.0.3", "10.7.0.2", 80), ("fd07:7::3", "fd07:7::2", 8086), ("10.7.0.3", "10.7.0.2", 8086)}
    # each published port is limited to the allowed networks of its own family
    limited = f.rule_sources(public, ["198.51.100.0/24", "2001:db8::/32"], "proxy_client_public_allowed_cidrs")
    assert [r["sources"] for r in limited] == [["198.51.100.0/24"], ["2001:db8::/32"]]
    assert f.rule_sources(public, [], "proxy_client_public_allowed_cidrs") == public


def test_a_publish_of_a_family_the_allowed_networks_lack_is_refused_not_opened():
    public = f.public_ports(DUAL["proxy1"]["proxy_client_public_ports"], DUAL)
    with pytest.raises(AnsibleFilterError, match=r"proxy_client_public_allowed_cidrs: has no IPv6 network, so the "
                                                 r"IPv6 publish of port 8086 \(to \[fd07:7::2\]:8086\) would be open"):
        f.rule_sources(public, ["198.51.100.0/24"], "proxy_client_public_allowed_cidrs")


def test_the_relay_takes_the_ipv6_allowed_networks_and_refuses_a_list_without_one():
    assert f.relay_sources(["198.51.100.0/24", "2001:db8::/32"], "proxy_client_public_allowed_cidrs") == ["2001:db8::/32"]
    assert f.relay_sources([], "proxy_client_public_allowed_cidrs") == []
    with pytest.raises(AnsibleFilterError, match=r"proxy_client_public_allowed_cidrs: has no IPv6 network, so the IPv6 "
                                                 r"publish of the ports with an IPv4 target \(the relay\) would be open"):
        f.relay_sources(["198.51.100.0/24"], "proxy_client_public_allowed_cidrs")


def test_a_dual_stack_share_remaps_a_host_service_in_both_families():
    host = f.host_services(["udp:31000-31001:41000-41001"])
    rules = f.share_dnat_rules([], host, [], ["10.7.0.2/32", "fd07:7::2/128"])
    assert [(r["to_address"], r["port"], r["to_port"]) for r in rules] == [
        ("10.7.0.2", "31000-31001", "41000-41001"), ("fd07:7::2", "31000-31001", "41000-41001")]
    # one address, with or without its prefix, as before
    assert [r["to_address"] for r in f.share_dnat_rules([], host, [], "10.7.0.2")] == ["10.7.0.2"]


@pytest.mark.parametrize("value, message", [
    (["10.7.0.2/32", "10.7.0.9/32"], r"share_client_address\[1\]: is a second IPv4 address; a tunnel takes one IPv4 and one IPv6"),
    ([], r"share_client_address: needs a tunnel address"),
    (["10.7.0.2/32", "fe80::1%eth0/64"], r"share_client_address\[1\]"),
])
def test_tunnel_addresses_are_one_of_each_family(value, message):
    with pytest.raises(AnsibleFilterError, match=message):
        f.check_vars({"share_client_address": value})


def test_a_client_address_of_a_family_the_hub_lacks_is_refused():
    hub = f.hub_info("hub", HOSTVARS)
    with pytest.raises(AnsibleFilterError, match=r"proxy_client_address: fd07:7::3/128 is IPv6, but the hub's tunnel "
                                                 r"has no IPv6 network \(10.7.0.0/24\)"):
        f.tunnel_families(["10.7.0.3/32", "fd07:7::3/128"], hub, "proxy_client_address")


def test_a_container_service_of_a_share_without_an_ipv4_address_is_refused():
    hostvars = copy.deepcopy(DUAL)
    hostvars["share1"]["share_client_address"] = "fd07:7::2/128"
    with pytest.raises(AnsibleFilterError, match=r"container service dummy of share1.*no IPv4 tunnel address"):
        f.access_services(["share1:dummy"], hostvars)


def test_hub_flows_refuse_a_target_family_the_proxy_has_no_address_of():
    hostvars = copy.deepcopy(HOSTVARS)
    hostvars["proxy1"]["proxy_client_access_services"] = ["[fd00:1::7]:443"]
    with pytest.raises(AnsibleFilterError, match=r"proxy1\.proxy_client_access_services: an IPv6 target.*no IPv6"):
        f.hub_flows(["proxy1"], hostvars)


def test_controller_path_is_taken_from_where_ansible_started(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert f.controller_path("./wgsp-debug") == str(tmp_path / "wgsp-debug")
    assert f.controller_path("/var/tmp/x") == "/var/tmp/x"
    for bad in ("", None, "a\0b"):
        with pytest.raises(AnsibleFilterError):
            f.controller_path(bad)


def test_prepared_keys_are_the_keys_site_yml_learned_and_only_those():
    """site.yml's first play registers each host's wg_key result as __wgsp_host; hosts it did not reach
    (outside --limit, a role run alone) are left out so the role reads them on the host; a key not made
    yet in check mode is null, as a read there returns it; a skipped result is no key."""
    key = "K" * 43 + "="
    hostvars = {"hub": {"__wgsp_host": {"public_key": key, "path": "/etc/wireguard/wg0.key", "changed": False}},
                "share1": {"__wgsp_host": {"public_key": None, "generated": True}},
                "share2": {"__wgsp_host": {"skipped": True, "skip_reason": "Conditional result was False"}},
                "proxy1": {}}
    assert f.prepared_keys(["hub", "share1", "share2", "proxy1", "ghost"], hostvars) == {"hub": key, "share1": None}
    assert f.prepared_keys([], hostvars) == {}


@pytest.mark.parametrize("groups, host_vars, expected", [
    (["share_clients"], {}, "/etc/wireguard/wg0.key"),
    (["share_clients"], {"share_client_interface": "wgs"}, "/etc/wireguard/wgs.key"),
    (["proxy_clients"], {"proxy_client_private_key_path": "/srv/keys/p.key"}, "/srv/keys/p.key"),
    (["wg_server"], {"wg_server_interface": "hub0", "wg_server_private_key_path": ""}, "/etc/wireguard/hub0.key"),
])
def test_host_tunnel_knows_the_key_path_site_yml_makes_sure_of(groups, host_vars, expected):
    assert f.host_tunnel(host_vars, groups)["key_path"] == expected


def test_host_tunnel_refuses_a_bad_key_path_naming_the_variable():
    with pytest.raises(AnsibleFilterError, match="^share_client_private_key_path: must be an absolute path"):
        f.host_tunnel({"share_client_private_key_path": "keys/wg0.key"}, ["share_clients"])


PSK = "cHNrcHNrcHNrcHNrcHNrcHNrcHNrcHNrcHNrcHNrcHM="


def _psk_hostvars(hub_wide=False, **clients):
    hv = copy.deepcopy(HOSTVARS)
    hv["hub"]["group_names"] = ["wg_server"]
    hv["hub"]["wg_server_preshared_keys"] = hub_wide
    for name in ("share1", "share2"):
        hv[name]["group_names"] = ["share_clients"]
    hv["proxy1"]["group_names"] = ["proxy_clients"]
    for name, value in clients.items():
        role = "proxy_client" if name.startswith("proxy") else "share_client"
        hv[name]["%s_preshared_key" % role] = value
    return hv


def test_preshared_key_peers_hub_wide_or_per_client_and_rotation():
    clients = ["share1", "share2", "proxy1"]
    assert f.preshared_key_peers(clients, _psk_hostvars(), "hub") == []
    assert f.preshared_key_peers(clients, _psk_hostvars(proxy1=True), "hub") == [{"name": "proxy1", "regenerate": False}]
    every = f.preshared_key_peers(clients, _psk_hostvars(hub_wide=True), "hub")
    assert [p["name"] for p in every] == clients and not any(p["regenerate"] for p in every)
    # rotate_keys: a rotated client's key is made anew; a rotated hub makes every client's anew
    assert [p["regenerate"] for p in f.preshared_key_peers(clients, _psk_hostvars(hub_wide=True), "hub", ["share2"])] == [
        False, True, False]
    assert all(p["regenerate"] for p in f.preshared_key_peers(clients, _psk_hostvars(hub_wide=True), "hub", ["hub"]))


def test_preshared_key_peers_refuses_a_name_that_cannot_name_a_file():
    hv = _psk_hostvars(hub_wide=True)
    hv["../x"] = dict(hv["share1"])
    with pytest.raises(AnsibleFilterError, match=r"\.\./x"):
        f.preshared_key_peers(["../x"], hv, "hub")


def test_preshared_keys_from_the_hubs_result_or_a_read():
    hv = _psk_hostvars(proxy1=True, share1=True)
    assert f.preshared_keys(["share1", "proxy1", "share2"], hv, "hub") == {}  # nothing learned yet (check mode)
    hv["hub"]["__wgsp_psk"] = {"changed": True, "preshared_keys": {"proxy1": PSK, "share1": None}}
    assert f.preshared_keys(["share1", "proxy1", "share2"], hv, "hub") == {"proxy1": PSK}
    read = {"preshared_keys": {"share1": PSK}}
    assert f.preshared_keys(["share1"], hv, "hub", read) == {"share1": PSK}
    # a client that does not use one never gets one, whatever a result holds
    assert f.preshared_keys(["share2"], hv, "hub", {"preshared_keys": {"share2": PSK}}) == {}
    skipped = _psk_hostvars(share1=True)
    skipped["hub"]["__wgsp_psk"] = {"skipped": True, "changed": False}
    assert f.preshared_keys(["share1"], skipped, "hub") == {}


def test_client_peers_carry_the_known_preshared_keys():
    keys = {"share1": "S" * 43 + "=", "proxy1": "P" * 43 + "="}
    peers = f.client_peers(["share1", "proxy1"], HOSTVARS, keys, {"proxy1": PSK})
    assert [p.get("preshared_key") for p in peers] == [None, PSK]


def test_a_vaulted_preshared_key_is_written_on_the_hub_as_given_and_given_to_the_client():
    """<role>_preshared_key may hold the key itself (a vaulted value): the hub's wg_preshared_keys gets it
    (never regenerated, even by rotate_keys), and both ends take it as given - the module returns a
    given key masked, as Ansible masks any no_log option's value."""
    hv = _psk_hostvars(proxy1=PSK, share1="yes", share2="false")
    assert f.preshared_key_peers(["share1", "share2", "proxy1"], hv, "hub", ["proxy1", "hub"]) == [
        {"name": "share1", "regenerate": True}, {"name": "proxy1", "regenerate": False, "key": PSK}]
    hv["hub"]["__wgsp_psk"] = {"preshared_keys": {"proxy1": "********", "share1": PSK}}
    assert f.preshared_keys(["share1", "proxy1"], hv, "hub") == {"share1": PSK, "proxy1": PSK}
    # a key with spaces around it (a vault file's newline) is the same key
    assert f.preshared_keys(["proxy1"], _psk_hostvars(proxy1=" %s\n" % PSK), "hub") == {"proxy1": PSK}


@pytest.mark.parametrize("value", ["not-a-key", "c2hvcnQ=", PSK[:-2] + "\n" + PSK[-2:]])
def test_a_preshared_key_value_that_is_no_key_fails_naming_the_variable_not_the_value(value):
    with pytest.raises(AnsibleFilterError) as err:
        f.preshared_key_peers(["proxy1"], _psk_hostvars(proxy1=value), "hub")
    assert str(err.value).startswith("proxy1.proxy_client_preshared_key: ") and value.strip() not in str(err.value)
