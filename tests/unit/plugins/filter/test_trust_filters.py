"""Issue 11 (trust under any input) on the controller side: the role filters judge values with the
modules' own validators (``module_utils/_common``), name the role variable, and build every shell
line the roles write from validated, quoted values. The roles and playbooks are checked statically:
each role validates its variables before its first change, and no inventory value reaches a shell
line unquoted."""

import os
import re
import shlex
import subprocess

import pytest
import yaml

from ansible.errors import AnsibleFilterError
from ansible_collections.wgsp.service_proxy.plugins.filter import service_proxy as f
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common import checks, errors
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall import rules
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import params as wg_params

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
HOSTILE_ROUTE = "fd00::9%x||echo INJECTED#"
HUB = {"hub": {"wg_server_address": "10.7.0.1/24", "ansible_host": "192.0.2.1"}}


def filter_error(func, *args, **kwargs):
    with pytest.raises(AnsibleFilterError) as err:
        func(*args, **kwargs)
    return str(err.value)


# ---------------------------------------------------------------- 1: scope ids and shell lines


def test_hostile_extra_route_is_refused_naming_the_variable():
    """The audit's injection: the route reached a wg-quick PostUp line verbatim."""
    msg = filter_error(f.client_routes, "10.7.0.2/32", ["10.7.0.0/24", HOSTILE_ROUTE], "share_client_extra_routes")
    assert msg.startswith("share_client_extra_routes: entry %r" % HOSTILE_ROUTE) and "scope id" in msg
    msg = filter_error(f.check_vars, {"share_client_extra_routes": ["10.9.0.0/24", HOSTILE_ROUTE]})
    assert msg.startswith("share_client_extra_routes[1]: ")
    msg = filter_error(f.route_commands, [{"dest": HOSTILE_ROUTE}])
    assert msg.startswith("routes[0].dest: ")


@pytest.mark.parametrize("func, args", [
    (f.hosts_outside, (["fd00::5%1"], "10.7.0.0/24")),
    (f.hosts_outside, (["10.7.0.9"], "fd00::%x/64")),
    (f.external_forwards, (["tcp:80:[fd00::5%1]:80"],)),
    (f.resolve_target, ("[fd00::5%1]:80", {})),
    (f.client_peers, (["c"], {"c": {"share_client_address": "fd00::5%1/128"}}, {"c": "K" * 43 + "="})),
    (f.hub_info, ("hub", {"hub": {"wg_server_address": "fd00::1%x/64"}})),
    (f.host_address, ({"c": {"proxy_client_address": "fe80::1%eth0/64"}}, "c")),
    (f.public_interface, ("fd00::%x/64", {"interfaces": []})),
])
def test_scope_ids_refused_by_every_filter(func, args):
    assert "scope id" in filter_error(func, *args)


def test_route_commands_are_quoted_and_validated():
    lines = f.route_commands([{"dest": "10.9.0.0/24"}, {"dest": "fd00:9::/64"}])
    assert lines == ["ip route replace 10.9.0.0/24 dev %i proto 87", "ip -6 route replace fd00:9::/64 dev %i proto 87"]
    for line in lines:
        assert shlex.split(line.replace("%i", "wg0"))[-4:] == ["dev", "wg0", "proto", "87"]
    assert filter_error(f.route_commands, [{"dest": "10.9.0.0/24"}], "87;id").startswith("proto: ")
    assert filter_error(f.route_commands, [{"dest": "10.9.0.0/24"}], 255).startswith("proto: ")


@pytest.mark.parametrize("path", ["/etc/wg;touch /tmp/x", "/etc/$(id)/x", "/etc/a b/x", "/etc/x%i", "etc/x", "/etc/../x"])
def test_boot_commands_refuse_unsafe_paths_naming_the_variable(path):
    assert filter_error(f.boot_commands, [path], "share_client_state_dir").startswith("share_client_state_dir: ")


def test_boot_commands_quote_the_path():
    assert f.boot_commands(["/etc/wg-service-proxy/wg0-share.rules"]) == ["sh /etc/wg-service-proxy/wg0-share.rules"]
    weird = "/etc/a,b+c@d=e/x=y.z-_9-share.rules"
    line = f.boot_commands([weird], "share_client_state_dir")[0]
    assert shlex.split(line) == ["sh", weird]


# ---------------------------------------------------------------- one validation layer


@pytest.mark.parametrize("name, value", [
    ("share_client_interface", "wg0;echo X"), ("proxy_client_interface", "+"), ("wg_server_interface", "-f"),
    ("share_client_interface", ".."), ("proxy_client_interface", "eth+"),
    ("share_client_address", "fd00::9%x/64"), ("wg_server_address", "224.0.0.1/32"), ("proxy_client_address", "::1/128"),
    ("proxy_client_extra_routes", ["fe80::1%eth0/64"]), ("proxy_client_public_allowed_cidrs", ["fd00::%1/8"]),
    ("share_client_state_dir", "/etc/wg;id"), ("share_client_state_dir", "relative"), ("wg_server_state_dir", "/etc/%i"),
    ("share_client_private_key_path", "wg0.key"), ("share_client_mtu", 20), ("share_client_persistent_keepalive", -1),
    ("wg_server_listen_port", 70000), ("share_client_allowed_tcp_ports", [-1]), ("share_client_allowed_udp_ports", [70000]),
    ("share_client_docker_network", "net;id"), ("proxy_client_public_interface", "eth0;id"),
    ("proxy_client_public_interface", "fd00::%1/64"),
    ("wg_server_extra_peers", [{"public_key": "not a key", "allowed_ips": ["10.7.0.9/32"]}]),
    ("wg_server_extra_peers", [{"public_key": "fyBlClwg+ZmIXXiIRkMNZATjrPtdgsZRF08bU0pzen4=",
                                "allowed_ips": ["fd00::9%x/128"]}]),
    ("wg_server_extra_peers", [{"public_key": "fyBlClwg+ZmIXXiIRkMNZATjrPtdgsZRF08bU0pzen4=",
                                "endpoint": "[fe80::1%eth0]:51820"}]),
])
def test_check_vars_names_the_variable(name, value):
    assert filter_error(f.check_vars, {name: value}).startswith(name)


def test_check_vars_accepts_the_role_defaults_and_the_documented_forms():
    assert f.check_vars({
        "share_client_interface": "wg0", "share_client_address": "10.7.0.2/32", "share_client_extra_routes": [],
        "share_client_state_dir": "/etc/wg-service-proxy", "share_client_private_key_path": "/etc/wireguard/wg0.key",
        "share_client_mtu": None, "share_client_persistent_keepalive": 25, "share_client_allowed_tcp_ports": [22],
        "share_client_allowed_udp_ports": [], "share_client_docker_network": None,
        "proxy_client_public_interface": "auto", "proxy_client_public_allowed_cidrs": ["203.0.113.0/24"],
        "wg_server_listen_port": 51820, "wg_server_mtu": "",
        "wg_server_extra_peers": [{"public_key": "fyBlClwg+ZmIXXiIRkMNZATjrPtdgsZRF08bU0pzen4=",
                                   "allowed_ips": ["10.7.0.9/32"], "endpoint": "vpn.example.net:51820"}],
    })
    for value in ("eth1", "203.0.113.0/24", "my-docker-net", "br-1234567890ab"):
        assert f.check_vars({"proxy_client_public_interface": value})


@pytest.mark.parametrize("name", ["x" * 129, "-web", "web;id", "a b"])
def test_filter_and_module_agree_on_container_names(name):
    """They disagreed on lengths (the filter had no limit, the module 128)."""
    filter_refused = module_refused = False
    try:
        f.share_services(["%s:tcp:80" % name])
    except AnsibleFilterError:
        filter_refused = True
    try:
        rules.validate_specs([{"port": 80, "to_container": name}])
    except errors.ValidationError:
        module_refused = True
    assert filter_refused and module_refused


@pytest.mark.parametrize("name, ok", [("x" * 128, True), ("web-1.a_b", True)])
def test_filter_and_module_agree_on_good_container_names(name, ok):
    assert f.share_services(["%s:tcp:80" % name])[0]["container"] == name
    assert rules.validate_specs([{"port": 80, "to_container": name}])


@pytest.mark.parametrize("address", ["127.0.0.1", "::1", "255.255.255.255", "0.0.0.0", "fd00::5%1", "224.0.0.1"])
def test_filter_and_module_agree_on_targets(address):
    text = "[%s]" % address if ":" in address else address
    assert "invalid address" in filter_error(f.external_forwards, ["tcp:80:%s:80" % text])
    assert "invalid address" in filter_error(f.public_ports, ["80:%s:80" % text], {})
    with pytest.raises(errors.ValidationError):
        rules.validate_specs([{"port": 80, "to_address": address}])


@pytest.mark.parametrize("name", ["+", "eth+", "-f", "..", "x" * 16, "wg0;id"])
def test_filter_and_module_agree_on_interface_names(name):
    assert filter_error(f.check_vars, {"proxy_client_interface": name}).startswith("proxy_client_interface")
    assert filter_error(f.check_ifname_filter, name, "debug_interface").startswith("debug_interface")
    with pytest.raises(errors.ValidationError):
        wg_params.validate_params({"name": name, "private_key": "qElu6Ehs2YJ7kfyV3IQOKe+w5uedtHe42F3xSeauGVE="})


def test_hub_info_validates_the_hubs_variables():
    assert f.hub_info("hub", HUB)["endpoint"] == "192.0.2.1:51820"
    assert f.hub_info("hub", {"hub": {"ansible_host": "fd00::1"}})["endpoint"] == "[fd00::1]:51820"
    for key, value in (("wg_server_interface", "wg0;id"), ("wg_server_listen_port", 70000),
                       ("wg_server_endpoint", "-f:51820"), ("wg_server_private_key_path", "k.key")):
        msg = filter_error(f.hub_info, "hub", {"hub": dict(HUB["hub"], **{key: value})})
        assert msg.startswith("hub.%s: " % key)


# ---------------------------------------------------------------- the roles and playbooks, statically


class Unsafe(str):
    """A ``!unsafe`` scalar: Ansible never templates it, so no inventory value can get into it."""


class Loader(yaml.SafeLoader):
    pass


Loader.add_constructor("!unsafe", lambda loader, node: Unsafe(loader.construct_scalar(node)))


def load(path):
    with open(os.path.join(REPO, path)) as handle:
        return yaml.load(handle, Loader=Loader)  # noqa: S506 - a SafeLoader subclass


@pytest.mark.parametrize("role", ["share_client", "proxy_client", "wg_server"])
def test_each_role_validates_its_variables_before_its_first_change(role):
    """The first change is wg_common's host entry point (forwarding, packages, the key), in the role's
    host entry point; the validation comes before it and touches every derived value (role vars,
    computed lazily) so a bad one fails there. The main entry point is the host entry point, then the
    tunnel side (converge; site.yml runs the two in two plays)."""
    main = load("roles/%s/tasks/main.yml" % role)
    assert [t["ansible.builtin.import_tasks"] for t in main] == ["host.yml", "converge.yml"]
    tasks = load("roles/%s/tasks/host.yml" % role)
    first_change = next(i for i, t in enumerate(tasks)
                        if (t.get("ansible.builtin.import_role") or {}).get("tasks_from") == "host")
    check = [i for i, t in enumerate(tasks) if "wgsp_check_vars" in str(t.get("ansible.builtin.assert", ""))]
    assert check and check[0] < first_change
    assert all(set(t) & {"ansible.builtin.assert", "ansible.builtin.set_fact"} for t in tasks[:first_change])
    text = str(tasks[check[0]])
    for suffix in ("_interface", "_address", "_state_dir", "_private_key_path", "_mtu"):
        assert "'%s%s'" % (role, suffix) in text
    derived = load("roles/%s/vars/main.yml" % role)
    for name in derived:
        # plain paths; the peers need the clients' keys; the public set needs the public interface,
        # found on the host (its rules are the published ports, touched there; the interface itself is
        # judged by wgsp_public_interface once wg_host reported the host's interfaces); the list of the rule
        # sets holds only the sets, each touched itself
        if name.endswith(("_path", "_script", "_peers", "_rule_sets")) or name in (
                "__proxy_client_dnat", "__proxy_client_public_host_if", "__proxy_client_public_if"):
            continue
        assert name in text or any(name in str(derived[other]) and other in text for other in derived), name
    if role != "wg_server":
        assert "'%s_extra_routes'" % role in text and "wgsp_hub_info" in str(derived)


def test_roles_build_post_up_lines_only_through_the_quoting_filters():
    for path in ("roles/share_client/tasks/converge.yml", "roles/proxy_client/tasks/converge.yml",
                 "roles/wg_server/tasks/converge.yml", "roles/wg_common/tasks/client.yml"):
        text = open(os.path.join(REPO, path)).read()
        assert "'sh ' ~" not in text, path
        for match in re.finditer(r"(?:post_up|wg_common_post_up): (.*?)(?=\n\S|\n  \S|\n    [a-z_]+:)", text, re.S):
            assert "wgsp_boot_commands" in match.group(1) or "wgsp_route_commands" in match.group(1), (path, match.group(1))


def _templates(text):
    return re.findall(r"{{(.*?)}}", text, re.S)


def test_debug_playbook_quotes_every_inventory_value_in_its_shell_commands():
    """Audit item 17: ``proxy_client_interface: "wg0;echo X"`` ran ``echo X``."""
    play = load("playbooks/debug.yml")[0]
    for item in play["vars"]["debug_commands"]:
        for expr in [] if isinstance(item["cmd"], Unsafe) else _templates(item["cmd"]):
            assert expr.strip().endswith("| quote"), (item["name"], expr)
    check = play["tasks"][0]
    assert "wgsp_check_vars" in str(check["ansible.builtin.assert"])
    assert "debug_interface" in str(check) and "debug_state_dir" in str(check)


def test_operation_playbooks_pass_inventory_values_as_argv_or_validated():
    for name in ("restart", "test_connection", "debug", "status", "import_env"):
        for play in load("playbooks/%s.yml" % name):
            for task in play.get("tasks", []):
                cmd = task.get("ansible.builtin.command")
                if cmd is not None:
                    assert isinstance(cmd, dict) and "argv" in cmd and "cmd" not in cmd, (name, task["name"])
                shell = task.get("ansible.builtin.shell")
                if shell is not None:
                    assert name == "debug" and shell["cmd"] == "set -o pipefail; {{ item.cmd }}"
    restart = load("playbooks/restart.yml")[0]["tasks"][0]
    assert "wgsp_check_vars" in str(restart)


def test_quote_filter_is_shlex_quote():
    """Ansible's ``quote`` filter and the module side's ``shell_quote`` are the same function."""
    from ansible.plugins.filter.core import quote

    for value in ("wg0;echo X", "a'b", "$(id)", "wg0"):
        assert quote(value) == checks.shell_quote(value) == shlex.quote(value)
        assert subprocess.run(["sh", "-c", "printf %s " + quote(value)], capture_output=True, text=True,
                              check=True).stdout == value
