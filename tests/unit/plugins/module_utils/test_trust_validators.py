"""Issue 11 (trust under any input): the one validation layer of ``_common`` and its users.

Each test names the audit item it covers. Every value below was accepted by the code before the
fix (scope ids, ``+`` wildcards, ``.``/``-f`` interface names, loopback/broadcast DNAT targets,
``protect_ports`` out of range, ``table: local``); the module-level runs are in
``tests/unit/plugins/modules/test_trust_modules.py``, the real-namespace runs in
``tests/integration/test_trust_validation.py``.
"""

import ipaddress
import os
import shlex
import subprocess

import pytest

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common import checks, errors, files, net
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall import rules
from ansible_collections.wgsp.service_proxy.plugins.module_utils import _routes as routes
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import backends as wg_backends
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import interface as wgi
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import params as wg_params
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import wgquick
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import ValidationError, WgspError
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.filter import validate_filter
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.params import check_persist_path
from fake_links import FakeLinkOps  # noqa: E402

PRIV = "qElu6Ehs2YJ7kfyV3IQOKe+w5uedtHe42F3xSeauGVE="
PUB1 = "fyBlClwg+ZmIXXiIRkMNZATjrPtdgsZRF08bU0pzen4="
PUB2 = "a8ItnsOR9I+f5beIPlF/gocDndJu/6Lgi6wp5cHsnBI="
HOSTILE_ROUTE = "fd00::9%x||echo INJECTED#"
SCOPED = ["fd00::9%x", "fe80::1%eth0", HOSTILE_ROUTE, "fd00::5%1 -m comment --comment X"]


def refused(func, *args):
    with pytest.raises(ValidationError) as err:
        func(*args)
    return err.value


# ---------------------------------------------------------------- 1 / 4: IPv6 scope ids


@pytest.mark.parametrize("value", SCOPED)
def test_scope_ids_are_refused_by_every_address_validator(value):
    for func, text in ((net.check_address, value), (net.check_cidr, value), (net.check_cidr, value + "/64"),
                       (net.check_interface_address, value + "/64"), (net.check_dnat_target, value)):
        err = refused(func, "opt", text)
        assert err.field == "opt" and "opt: " in err.msg
    assert "scope id" in refused(net.check_address, "opt", value).msg
    err = refused(net.check_cidr, "opt", value + "/128", True)
    assert err.field == "opt"
    assert refused(net.check_endpoint, "opt", "[%s]:51820" % value).field == "opt"


def test_plain_addresses_still_pass():
    assert str(net.check_address("a", " fd00::9 ")) == "fd00::9"
    assert str(net.check_cidr("a", "fd00::/64", True)) == "fd00::/64"
    assert net.check_endpoint("e", "[fd00::1]:51820") == ("fd00::1", 51820)
    assert net.check_endpoint("e", "hub.example.net:51820") == ("hub.example.net", 51820)


@pytest.mark.parametrize("value", ["-f:51820", "a..b:1", "[1.2.3.4]:5", "host_x:1", "x y:1", ".:1", "1.2.3.4:70000"])
def test_endpoint_hosts_follow_dns_rules(value):
    assert refused(net.check_endpoint, "peers[0].endpoint", value).field == "peers[0].endpoint"


def test_sources_with_a_scope_id_never_reach_ip6tables_restore():
    """Audit item 4: ``fd00::5%1 -m comment --comment X`` installed an extra match."""
    err = refused(rules.validate_specs, [{"port": 80, "to_address": "fd00::2", "sources": ["fd00::5%1 -m comment --comment X"]}])
    assert err.field == "rules[0].sources[0]"
    err = refused(rules.validate_specs, [], [], {"sources": ["fd00::5%1"]})
    assert err.field == "sources[0]"
    err = refused(validate_filter, {"name": "x", "in_interface": "wg0", "allow": [{"sources": ["fd00::5%1"]}]})
    assert err.field == "allow[0].sources[0]"


def test_wg_interface_validates_everything_before_any_change(tmp_path):
    """Audit item 4: a scope id in the second peer's allowed IPs failed in the UAPI after the interface,
    the key and the first peer were set. Now nothing is read, created or written."""
    links = FakeLinkOps(None)
    params = {"name": "wg0", "private_key_path": str(tmp_path / "wg0.key"), "addresses": ["10.7.0.1/24"],
              "peers": [{"public_key": PUB1, "allowed_ips": ["10.7.0.2/32"]},
                        {"public_key": PUB2, "allowed_ips": ["fd00::5%1/128"]}]}
    run = wgi.WgInterface(params, link_ops=links, conf_dir=str(tmp_path), kernel_check=lambda: False,
                          process_finder=lambda name: [])
    err = refused(run.run)
    assert err.field == "peers[1].allowed_ips[0]"
    assert links.calls == [] and links.reads == 0 and os.listdir(str(tmp_path)) == []


@pytest.mark.parametrize("address, why", [
    ("::/128", "unspecified"), ("0.0.0.0/0", "unspecified"), ("ff02::1/128", "multicast"), ("224.0.0.1/32", "multicast"),
    ("::1/128", "loopback"), ("127.0.0.2/8", "loopback"), ("255.255.255.255/32", "broadcast"),
    ("::ffff:127.0.0.1/128", "loopback"),
])
def test_interface_addresses_the_kernel_would_refuse_after_creation(address, why):
    """The kernel refuses ::/128, ff02::1 and ::1 only once the link exists (half-configured)."""
    err = refused(wg_params.validate_params, {"name": "wg0", "private_key": PRIV, "addresses": ["10.7.0.1/24", address]})
    assert err.field == "addresses[1]" and why in err.msg


# ---------------------------------------------------------------- 1: shell lines


@pytest.mark.parametrize("line", ["ip route replace 10.0.0.0/8 dev %i # x", "a\nb", "a\rb", "x\x00y", "   ", ""])
def test_post_up_refuses_comment_marks_newlines_and_control_chars(line):
    for hook in ("post_up", "pre_down"):
        err = refused(wg_params.validate_params, {"name": "wg0", "private_key": PRIV, hook: ["true", line]})
        assert err.field == "%s[1]" % hook


def test_post_up_accepts_a_shell_line_and_writes_it_verbatim():
    want = wg_params.validate_params({"name": "wg0", "private_key": PRIV, "post_up": ["sh '/etc/wg-service-proxy/wg0-share.rules'"]})
    text = wgquick.render_wg_quick(want, {"fwmark": 0, "addresses": [], "mtu": None, "peers": {}}, PRIV)
    assert "PostUp = sh '/etc/wg-service-proxy/wg0-share.rules'\n" in text


@pytest.mark.parametrize("path", ["/etc/x;touch /tmp/m", "/etc/$(id)", "/etc/a b", "/etc/%i", "relative/x", "/etc/../x",
                                  "/etc/x/", "", "/etc/x\n", "/etc/x\x00"])
def test_script_paths_on_shell_lines(path):
    assert refused(files.check_script_path, "persist_path", path).field == "persist_path"
    assert refused(check_persist_path, "persist_path", path).field == "persist_path"


def test_boot_script_jump_lines_are_quoted_words(tmp_path):
    """_fw_persist writes each word of a shell command with shlex.quote: parsing the line gives the
    same argv as the validated jump."""
    from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.persist import iptables_script
    from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.state import Desired

    desired = Desired("iptables", "pub")
    desired.chains = {("ipv4 nat", "WGSP-PUB-PRE"): None}
    desired.entries = [("ipv4 nat", "WGSP-PUB-PRE", "-A WGSP-PUB-PRE -j RETURN")]
    desired.jumps = [("ipv4 nat", "PREROUTING", '-A PREROUTING -i a=b.c-9 -m comment --comment "wgsp:pub" -j WGSP-PUB-PRE')]
    script = iptables_script("wg_dnat", "pub", desired)
    line = [x for x in script.splitlines() if x.startswith("iptables -w -t nat -C")][0]
    check, insert = line.split(" 2>/dev/null || ")
    assert shlex.split(check)[6:] == ["-i", "a=b.c-9", "-m", "comment", "--comment", "wgsp:pub", "-j", "WGSP-PUB-PRE"]
    assert shlex.split(insert)[7:] == shlex.split(check)[6:]
    proc = subprocess.run(["sh", "-n"], input=script, text=True, capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr


# ---------------------------------------------------------------- 2 / 16: interface names


BAD_NAMES = [".", "..", "-f", "--version", "+", "eth+", "wg+0", "a/b", "a:b", "a b", "a\tb", "x" * 16, "", "wg\n0", "wg0;id",
             "$(id)", "a'b"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_interface_names_follow_the_kernel_rules_and_refuse_wildcards(name):
    assert refused(checks.check_ifname, "in_interface", name).field == "in_interface"


@pytest.mark.parametrize("name", ["wg0", "eth0.100", "br-1a2b3c4d5e6f", "a=b", "x_y-z.9", "x" * 15, ".x", "0"])
def test_interface_names_accepted(name):
    assert checks.check_ifname("interface", name) == name


def test_plus_is_refused_with_the_reason():
    assert "wildcard" in refused(checks.check_ifname, "in_interface", "eth+").msg


@pytest.mark.parametrize("name", ["+", "eth+"])
def test_every_interface_option_refuses_wildcards(name):
    """in/out_interface of wg_dnat (rule and module level, even without rules) and wg_filter,
    the wg_route interface, wg_interface name and wg_status interface."""
    assert refused(rules.validate_specs, [{"port": 80, "to_address": "10.7.0.2", "in_interface": name}]).field == "rules[0].in_interface"
    assert refused(rules.validate_specs, [], [], {"in_interface": name}).field == "in_interface"
    assert refused(rules.validate_specs, [], [], {"out_interface": name}).field == "out_interface"
    assert refused(validate_filter, {"name": "input", "in_interface": name, "policy": "drop"}).field == "in_interface"
    assert refused(validate_filter, {"name": "i", "hook": "forward", "in_interface": "wg0",
                                     "out_interface": name}).field == "out_interface"
    assert refused(routes.normalise_routes, [{"dest": "10.0.0.0/8"}], name).field == "interface"
    assert refused(wg_params.validate_params, {"name": name, "private_key": PRIV}).field == "name"
    from ansible_collections.wgsp.service_proxy.plugins.module_utils._status.report import StatusReport
    assert refused(StatusReport, name, None, None).field == "interface"


@pytest.mark.parametrize("name", [".", "..", "--version", "-f"])
def test_wg_interface_bad_names_write_no_key_and_start_nothing(tmp_path, monkeypatch, name):
    """Audit item 16: these reached wireguard-go's argv and left key files."""
    started = []
    monkeypatch.setattr(wg_backends.UserspaceBackend, "start_daemon", lambda self, argv: started.append(argv))
    links = FakeLinkOps(None)
    run = wgi.WgInterface({"name": name, "backend": "userspace"}, link_ops=links, conf_dir=str(tmp_path),
                          kernel_check=lambda: False, process_finder=lambda n: [])
    assert refused(run.run).field == "name"
    assert started == [] and links.calls == [] and os.listdir(str(tmp_path)) == []


# ---------------------------------------------------------------- 16: wireguard-go's real error

BANNER = (u"\u250c" + u"\u2500" * 54 + u"\u2510\n"
          u"\u2502   Running wireguard-go is not required because this  \u2502\n"
          u"\u2502   kernel has first class support for WireGuard.      \u2502\n"
          u"\u2514" + u"\u2500" * 54 + u"\u2518\n")


def test_wireguard_go_error_is_the_error_not_the_banner():
    out = "ERROR: (wg0) 2026/12/03 09:49:41 Failed to create TUN device: no such file or directory\n"
    text = wg_backends.wireguard_go_error(out, BANNER)
    assert text == out.strip() and "Running wireguard-go" not in text
    assert wg_backends.wireguard_go_error("", BANNER + "something else failed\n") == "something else failed"
    assert wg_backends.wireguard_go_error("", BANNER) == "no error output"


def test_failed_start_reports_stdout_error(tmp_path):
    """A stand-in binary that behaves like wireguard-go: banner on stderr, the error on stdout, rc 1."""
    fake = tmp_path / "wireguard-go"
    fake.write_text("#!/bin/sh\nprintf '%s' \"$BANNER\" >&2\necho 'ERROR: (wg0) Failed to create TUN device: permission denied'\n"
                    "exit 1\n")
    fake.chmod(0o755)
    backend = wg_backends.UserspaceBackend("wg0", socket_dir=str(tmp_path))
    os.environ["BANNER"] = BANNER
    try:
        with pytest.raises(errors.CommandError) as err:
            backend.start_daemon([str(fake), "wg0"])
    finally:
        del os.environ["BANNER"]
    assert "Failed to create TUN device: permission denied" in err.value.msg
    assert "Running wireguard-go" not in err.value.msg


def test_wireguard_go_runs_in_a_session_of_its_own(tmp_path):
    """Not in the caller's process group: an Ansible worker that is terminated kills its whole group."""
    fake = tmp_path / "wireguard-go"
    out = tmp_path / "stat"
    fake.write_text("#!/bin/sh\nread -r stat < /proc/$$/stat\necho \"$stat\" > %s\n" % out)
    fake.chmod(0o755)
    wg_backends.UserspaceBackend("wg0", socket_dir=str(tmp_path)).start_daemon([str(fake), "wg0"])
    pgrp, session = (int(x) for x in out.read_text().rsplit(")", 1)[1].split()[2:4])
    assert session != os.getsid(0) and pgrp != os.getpgrp()


# ---------------------------------------------------------------- Also: netlink errors name the option


class FailingLinks(FakeLinkOps):
    def add_address(self, cidr):
        from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard.netlink import NetlinkError
        raise NetlinkError("netlink add_address on wg0 failed: Invalid argument", errno=22)


def test_a_netlink_error_on_an_address_names_the_option():
    with pytest.raises(WgspError) as err:
        wgi._named("addresses", FailingLinks(None).add_address, "10.7.0.1/24")
    assert err.value.msg.startswith("addresses: netlink add_address") and err.value.details["field"] == "addresses"


class RefusingIPRoute:
    def __init__(self, errno_):
        self.errno = errno_

    def route(self, op, **kw):
        from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard.genl import NetlinkError
        exc = NetlinkError("kernel says no", errno=self.errno)
        exc.code = self.errno
        raise exc


def test_a_netlink_error_on_a_route_names_the_route_option():
    desired = routes.normalise_routes([{"dest": "10.8.0.0/24"}, {"dest": "10.9.0.0/24", "gateway": "10.99.0.1"}], "wg0")
    for route in desired:
        route.oif, route.proto = 5, 87
    manager = routes.RouteManager(RefusingIPRoute(101))
    with pytest.raises(WgspError) as err:
        manager.apply(desired[1:], [])
    assert err.value.msg.startswith("routes[1]: netlink refused to add the route 10.9.0.0/24 via 10.99.0.1")
    assert "Network is unreachable" in err.value.msg and err.value.details["field"] == "routes[1]"


# ---------------------------------------------------------------- Also: DNAT targets, protect_ports, tables


@pytest.mark.parametrize("target", ["127.0.0.1", "127.1.2.3", "::1", "255.255.255.255", "0.0.0.0", "::", "224.0.0.5",
                                    "ff02::1", "::ffff:127.0.0.1"])
def test_dnat_targets_that_cannot_be_forwarded_to(target):
    err = refused(rules.validate_specs, [{"port": 80, "to_address": target}])
    assert err.field == "rules[0].to_address"
    assert refused(rules.validate_specs, [], ["80:%s:80" % (("[%s]" % target) if ":" in target else target)]).field \
        == "compact_rules[0].to_address"


def test_a_networks_broadcast_address_is_refused_when_the_network_is_known():
    nets = [ipaddress.ip_network("10.7.0.0/24"), ipaddress.ip_network("192.0.2.0/31")]
    err = refused(rules.validate_specs, [{"port": 80, "to_address": "10.7.0.255"}], [], {}, [], {}, nets)
    assert err.field == "rules[0].to_address" and "broadcast address of 10.7.0.0/24" in err.msg
    assert rules.validate_specs([{"port": 80, "to_address": "10.7.0.254"}, {"port": 81, "to_address": "192.0.2.1"}],
                                networks=nets)
    assert rules.validate_specs([{"port": 80, "to_address": "10.7.0.255"}])  # network unknown: allowed


def test_a_container_resolving_to_loopback_is_refused_before_any_change():
    specs = rules.validate_specs([{"port": 80, "to_container": "web"}])
    with pytest.raises(ValidationError) as err:
        rules.resolve_specs(specs, lambda name: ("127.0.0.1", None))
    assert err.value.field == "rules[0].to_container"


@pytest.mark.parametrize("name, ok", [("a" * 128, True), ("a" * 129, False), ("-web", False), ("web$(id)", False)])
def test_container_names_one_rule(name, ok):
    if ok:
        assert rules.validate_specs([{"port": 80, "to_container": name}])
    else:
        assert refused(rules.validate_specs, [{"port": 80, "to_container": name}]).field == "rules[0].to_container"


@pytest.mark.parametrize("port", [-1, 0, 70000, "x"])
def test_protect_ports_out_of_range(port):
    err = refused(rules.validate_specs, [{"proto": "udp", "port": 5000, "to_address": "10.7.0.2"}], [], {}, [53, port])
    assert err.field == "protect_ports[1]"
    err = refused(rules.validate_specs, [], [], {}, [port])  # even without a UDP rule
    assert err.field == "protect_ports[0]"


@pytest.mark.parametrize("table", ["local", "LOCAL", 255, "255", 0, "0", "unspec", "mytable", -1, "1e3"])
def test_route_tables_refused_consistently(table):
    assert refused(routes.check_table, "table", table).field == "table"
    assert refused(routes.normalise_routes, [{"dest": "10.0.0.0/8", "table": table}], "wg0").field == "routes[0].table"


def test_route_tables_accepted():
    assert [routes.check_table("t", v) for v in (None, "main", "default", 1000, "1000", 253, 254, 4294967295)] == [
        254, 254, 253, 1000, 1000, 253, 254, 4294967295]


# ---------------------------------------------------------------- Also: numbers and paths


@pytest.mark.parametrize("value", [-1, -0.5, 0, 601, "x", float("nan"), True])
def test_check_float(value):
    assert refused(checks.check_float, "probe_timeout", value, 0.001, 600).field == "probe_timeout"


@pytest.mark.parametrize("path", ["", "wg0.key", "./wg0.key", "/etc/wireguard/", "/etc/wireguard/wg0\x00.key",
                                  "/etc/wg\n0.key", None])
def test_abs_path(path):
    assert refused(files.check_abs_path, "path", path).field == "path"
