"""Issue 11 (trust under any input) through each module's main(): refused before any command, the
option named in ``field`` and ``msg``, a clean failure (no traceback) for every value the audit found
accepted or crashing. The host boundary is faked exactly like the modules' own unit tests do."""

import pytest

from ansible_collections.wgsp.service_proxy.plugins.modules import wg_dnat, wg_filter, wg_key
from modharness import call_main, run_module  # noqa: E402
from test_wg_route import FakeIPRoute  # noqa: E402
from test_wg_route import run_module as run_route  # noqa: E402
from test_wg_status import live  # noqa: E402
from test_wg_status import run_module as run_status  # noqa: E402

PRIV = "qElu6Ehs2YJ7kfyV3IQOKe+w5uedtHe42F3xSeauGVE="


def failed_on(result, field):
    assert result.get("failed") is True, result
    assert result["field"] == field and result["msg"].startswith(field + ": "), result["msg"]
    assert "exception" not in result


# ---------------------------------------------------------------- wg_dnat


@pytest.mark.parametrize("args, field", [
    ({"rules": [{"port": 80, "to_address": "fd00::5%1"}]}, "rules[0].to_address"),
    ({"rules": [{"port": 80, "to_address": "fd00::2", "sources": ["fd00::5%1 -m comment --comment X"]}]},
     "rules[0].sources[0]"),
    ({"sources": ["fd00::5%1"], "rules": []}, "sources[0]"),
    ({"rules": [{"port": 80, "to_address": "10.7.0.2", "in_interface": "+"}]}, "rules[0].in_interface"),
    ({"in_interface": "+", "rules": [{"port": 80, "to_address": "10.7.0.2"}]}, "in_interface"),
    ({"in_interface": "eth+", "rules": []}, "in_interface"),
    ({"out_interface": "-f", "rules": []}, "out_interface"),
    ({"rules": [{"port": 80, "to_address": "127.0.0.1"}]}, "rules[0].to_address"),
    ({"rules": [{"port": 80, "to_address": "::1"}]}, "rules[0].to_address"),
    ({"rules": [{"port": 80, "to_address": "255.255.255.255"}]}, "rules[0].to_address"),
    ({"rules": [{"port": 80, "to_address": "0.0.0.0"}]}, "rules[0].to_address"),
    ({"compact_rules": ["80:127.0.0.1:80"]}, "compact_rules[0].to_address"),
    ({"protect_ports": [-1], "rules": [{"proto": "udp", "port": 53, "to_address": "10.7.0.2"}]}, "protect_ports[0]"),
    ({"protect_ports": [70000]}, "protect_ports[0]"),
    ({"docker_network": "net;id", "compact_rules": ["web:tcp:80"]}, "docker_network"),
    ({"persist_path": "/etc/wg-service-proxy/a%i.rules"}, "persist_path"),
])
def test_wg_dnat_refuses_before_any_command(monkeypatch, args, field):
    params = dict({"name": "pub", "backend": "iptables"}, **args)
    result, host = run_module(monkeypatch, wg_dnat, params)
    failed_on(result, field)
    assert host.writes() == [] and not host.read_firewall()


def test_wg_dnat_refuses_the_broadcast_of_a_local_network(monkeypatch):
    import ipaddress

    monkeypatch.setattr(wg_dnat, "local_networks", lambda: [ipaddress.ip_network("192.0.2.0/24")])
    result, host = run_module(monkeypatch, wg_dnat, {"name": "pub", "backend": "iptables",
                                                     "rules": [{"port": 80, "to_address": "192.0.2.255"}]})
    failed_on(result, "rules[0].to_address")
    assert "broadcast address of 192.0.2.0/24" in result["msg"] and host.writes() == []


def test_local_networks_reads_this_hosts_networks():
    from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.params import local_networks

    nets = local_networks()
    assert all(net.version == 4 for net in nets)


# ---------------------------------------------------------------- wg_filter


@pytest.mark.parametrize("change, field", [
    ({"in_interface": "+"}, "in_interface"),
    ({"in_interface": "eth+"}, "in_interface"),
    ({"hook": "forward", "out_interface": "wg+"}, "out_interface"),
    ({"allow": [{"proto": "tcp", "port": 22, "sources": ["fd00::5%1"]}]}, "allow[0].sources[0]"),
    ({"allow": [{"proto": "tcp", "port": 22, "destinations": ["fe80::1%eth0/64"]}]}, "allow[0].destinations[0]"),
])
def test_wg_filter_refuses_before_any_command(monkeypatch, change, field):
    params = dict({"name": "input", "backend": "iptables", "in_interface": "wg0", "policy": "drop"}, **change)
    result, host = run_module(monkeypatch, wg_filter, params)
    failed_on(result, field)
    assert host.writes() == [] and not host.read_firewall()


# ---------------------------------------------------------------- wg_route


@pytest.mark.parametrize("args, field", [
    ({"interface": "wg0", "routes": [{"dest": "fd00::9%x"}]}, "routes[0].dest"),
    ({"interface": "wg0", "routes": [{"dest": "fd00::/64", "gateway": "fe80::1%wg0"}]}, "routes[0].gateway"),
    ({"interface": "eth+", "routes": [{"dest": "10.0.0.0/8"}]}, "interface"),
    ({"interface": "-f", "routes": [{"dest": "10.0.0.0/8"}]}, "interface"),
    ({"interface": "wg0", "routes": [{"dest": "10.0.0.0/8", "table": "local"}]}, "routes[0].table"),
    ({"interface": "wg0", "routes": [{"dest": "10.0.0.0/8", "table": 255}]}, "routes[0].table"),
    ({"interface": "wg0", "table": "local", "routes": [{"dest": "10.0.0.0/8"}]}, "table"),
])
def test_wg_route_refuses_before_any_change(monkeypatch, args, field):
    ipr = FakeIPRoute()
    result = run_route(monkeypatch, args, ipr)
    failed_on(result, field)
    assert ipr.writes == []


def test_wg_route_netlink_error_names_the_route(monkeypatch):
    ipr = FakeIPRoute()

    def refuse(command, **kw):
        raise OSError(101, "Network is unreachable")

    ipr.route = refuse
    result = run_route(monkeypatch, {"interface": "wg0", "routes": [{"dest": "10.9.0.0/24", "gateway": "10.99.0.1"}]}, ipr)
    failed_on(result, "routes[0]")
    assert "10.9.0.0/24 via 10.99.0.1" in result["msg"] and "Network is unreachable" in result["msg"]


# ---------------------------------------------------------------- wg_key


@pytest.mark.parametrize("path", ["wg0.key", "keys/wg0.key", "", "/etc/wireguard/wg0\x00.key", "/etc/wireguard/"])
def test_wg_key_refuses_relative_empty_and_nul_paths_cleanly(monkeypatch, tmp_path, path):
    monkeypatch.chdir(tmp_path)
    result = call_main(monkeypatch, wg_key.main, {"path": path})
    if "\0" in path and "embedded null character" in result.get("msg", ""):
        # ansible-core >= 2.21 refuses a NUL in any argument itself (logging the invocation), before
        # the module's own check: still a clean failure, nothing written
        assert result.get("failed") is True and "exception" not in result, result
    else:
        failed_on(result, "path")
    assert list(tmp_path.iterdir()) == []


# ---------------------------------------------------------------- wg_status


@pytest.mark.parametrize("args, field", [
    ({"probe_timeout": -1}, "probe_timeout"),
    ({"probe_timeout": 0}, "probe_timeout"),
    ({"fresh_seconds": -5}, "fresh_seconds"),
    ({"hub_probe_port": 70000}, "hub_probe_port"),
    ({"hub_probe_port": 0}, "hub_probe_port"),
    ({"interface": "+"}, "interface"),
    ({"interface": ".."}, "interface"),
    ({"state_dir": "relative/dir"}, "state_dir"),
    ({"state_file": "relative.json"}, "state_file"),
])
def test_wg_status_refuses_bad_numbers_and_names(monkeypatch, args, field):
    result = run_status(monkeypatch, dict({"state_dir": "/nonexistent"}, **args), live())
    failed_on(result, field)
    assert result["_calls"]["host"].calls == []


# ---------------------------------------------------------------- wg_interface


@pytest.mark.parametrize("args, field", [
    ({"name": "."}, "name"),
    ({"name": ".."}, "name"),
    ({"name": "--version"}, "name"),
    ({"name": "-f"}, "name"),
    ({"name": "wg+"}, "name"),
    ({"name": "wg0", "addresses": ["fd00::9%x/64"]}, "addresses[0]"),
    ({"name": "wg0", "addresses": ["::1/128"]}, "addresses[0]"),
    ({"name": "wg0", "peers": [{"public_key": PRIV, "allowed_ips": ["fd00::5%1/128"]}]}, "peers[0].allowed_ips[0]"),
    ({"name": "wg0", "peers": [{"public_key": PRIV, "endpoint": "[fe80::1%eth0]:51820"}]}, "peers[0].endpoint"),
    ({"name": "wg0", "post_up": ["ip route replace fd00::9 dev %i # rest"]}, "post_up[0]"),
    ({"name": "wg0", "pre_down": ["true\nid"]}, "pre_down[0]"),
    ({"name": "wg0", "private_key_path": "wg0.key"}, "private_key_path"),
])
def test_wg_interface_refuses_before_reading_anything(monkeypatch, tmp_path, args, field):
    from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import netlink
    from ansible_collections.wgsp.service_proxy.plugins.modules import wg_interface

    def no_netlink(*a, **k):
        raise AssertionError("nothing may be read or touched before validation")

    monkeypatch.setattr(netlink, "LinkOps", no_netlink)
    monkeypatch.chdir(tmp_path)
    result = call_main(monkeypatch, wg_interface.main, args)
    failed_on(result, field)
    assert list(tmp_path.iterdir()) == []
