"""Issue 11 (trust under any input) on real namespace hosts: iptables-nft, nftables, wireguard-go,
wg-quick, the modules run the way Ansible runs them, the roles and playbooks through ansible-playbook.

For every hostile or borderline value the audit found accepted, the run must be refused with the
option (or role variable) named, and the host must be byte-identical before and after: iptables and
ip6tables rules, the nftables ruleset, links (``ip -d link``), addresses, routes of every table, the
files under the private /etc/wireguard, /etc/wg-service-proxy, /run/wireguard and
/var/lib/wgsp-service-proxy, the wireguard-go
processes - and no marker file a smuggled command would create.

Items covered (issue 11): 1 (scope ids, shell lines: ``test_role_refuses_*``,
``test_wg_quick_runs_only_the_rendered_lines``), 2 (wildcards), 4 (validate before any change),
16 (wg_interface names, wireguard-go's real error), 17 (debug.yml), and the "Also" list.
"""

import json
import os
import subprocess
import uuid

import pytest

from conftest import REPO, require_root_tools
from hoststate import SETUP, settled, snapshot


def _tools():
    require_root_tools("iptables", "ip6tables", "nft", "wireguard-go", "wg", "wg-quick")


def one_host(lab, name="h"):
    _tools()
    host = lab.host(name)
    host.run(SETUP)
    return host


def marker_path(lab):
    return os.path.join(lab.tmpdir, "INJECTED-%s" % uuid.uuid4().hex[:8])


def refused(result, field):
    assert result.get("failed") is True, result
    assert result.get("field") == field and result["msg"].startswith(field + ": "), result["msg"]
    assert "Traceback" not in result["_stderr"] + result["_stdout"], result["_stderr"]
    return result


# ---------------------------------------------------------------------------------------------
# modules, one hostile value each, on a real host: refused with the option named, nothing changed


def _m(backend):
    return {"backend": backend}


CASES = [
    # 1 / 4: IPv6 scope ids (the audit's fd00::5%1 reached ip6tables-restore; UAPI -22 mid-configuration)
    ("wg_dnat", dict(name="pub", rules=[{"port": 80, "to_address": "fd00::5%1"}], **_m("iptables")), "rules[0].to_address"),
    ("wg_dnat", dict(name="pub", rules=[{"port": 80, "to_address": "fd00::5%1"}], **_m("nftables")), "rules[0].to_address"),
    ("wg_dnat", dict(name="pub", rules=[{"port": 80, "to_address": "fd00::2",
                                         "sources": ["fd00::5%1 -m comment --comment X"]}], **_m("iptables")),
     "rules[0].sources[0]"),
    ("wg_filter", dict(name="input", in_interface="eth0", allow=[{"port": 22, "sources": ["fd00::5%1"]}], **_m("iptables")),
     "allow[0].sources[0]"),
    ("wg_filter", dict(name="input", in_interface="eth0", allow=[{"port": 22, "destinations": ["fe80::1%eth0"]}],
                       **_m("nftables")), "allow[0].destinations[0]"),
    ("wg_route", dict(interface="eth0", routes=[{"dest": "fd00::9%x"}]), "routes[0].dest"),
    ("wg_route", dict(interface="eth0", routes=[{"dest": "fd00:9::/64", "gateway": "fe80::1%eth0"}]), "routes[0].gateway"),
    ("wg_interface", dict(name="wg0", addresses=["10.7.0.1/24", "fd00::9%x/64"]), "addresses[1]"),
    ("wg_interface", dict(name="wg0", addresses=["10.7.0.1/24"], listen_port=51820, peers=[
        {"public_key": "fyBlClwg+ZmIXXiIRkMNZATjrPtdgsZRF08bU0pzen4=", "allowed_ips": ["10.7.0.2/32"]},
        {"public_key": "a8ItnsOR9I+f5beIPlF/gocDndJu/6Lgi6wp5cHsnBI=", "allowed_ips": ["fd00::5%1/128"]}]),
     "peers[1].allowed_ips[0]"),
    ("wg_interface", dict(name="wg0", peers=[{"public_key": "fyBlClwg+ZmIXXiIRkMNZATjrPtdgsZRF08bU0pzen4=",
                                              "endpoint": "[fe80::1%eth0]:51820"}]), "peers[0].endpoint"),
    ("wg_interface", dict(name="wg0", addresses=["10.7.0.1/24", "ff02::1/128"]), "addresses[1]"),  # kernel refuses late
    ("wg_interface", dict(name="wg0", post_up=["ip route replace 10.9.0.0/24 dev %i # && touch /x"]), "post_up[0]"),
    # 2: interface wildcards (in_interface "+" with a drop policy on input cut loopback off)
    ("wg_filter", dict(name="input", in_interface="+", policy="drop", **_m("iptables")), "in_interface"),
    ("wg_filter", dict(name="input", in_interface="+", policy="drop", **_m("nftables")), "in_interface"),
    ("wg_filter", dict(name="fwd", hook="forward", in_interface="eth0", out_interface="eth+", **_m("iptables")),
     "out_interface"),
    ("wg_dnat", dict(name="pub", in_interface="eth+", rules=[{"port": 80, "to_address": "10.7.0.2"}], **_m("iptables")),
     "in_interface"),
    ("wg_dnat", dict(name="pub", rules=[{"port": 80, "to_address": "10.7.0.2", "out_interface": "wg+"}], **_m("nftables")),
     "rules[0].out_interface"),
    ("wg_route", dict(interface="eth+", routes=[{"dest": "10.9.0.0/24"}]), "interface"),
    ("wg_status", dict(interface="+"), "interface"),
    # 16: wg_interface names that reached wireguard-go's argv and left key files
    ("wg_interface", dict(name=".", backend="userspace"), "name"),
    ("wg_interface", dict(name="..", backend="userspace"), "name"),
    ("wg_interface", dict(name="--version", backend="userspace"), "name"),
    ("wg_interface", dict(name="-f", backend="userspace"), "name"),
    # Also: DNAT targets, protect_ports, tables, wg_key paths, wg_status numbers
    ("wg_dnat", dict(name="pub", rules=[{"port": 80, "to_address": "127.0.0.1"}], **_m("iptables")), "rules[0].to_address"),
    ("wg_dnat", dict(name="pub", rules=[{"port": 80, "to_address": "::1"}], **_m("nftables")), "rules[0].to_address"),
    ("wg_dnat", dict(name="pub", rules=[{"port": 80, "to_address": "255.255.255.255"}], **_m("iptables")),
     "rules[0].to_address"),
    ("wg_dnat", dict(name="pub", rules=[{"port": 80, "to_address": "192.0.2.255"}], **_m("iptables")),
     "rules[0].to_address"),  # the broadcast of eth0's 192.0.2.0/24
    ("wg_dnat", dict(name="pub", compact_rules=["80:0.0.0.0:80"], **_m("nftables")), "compact_rules[0].to_address"),
    ("wg_dnat", dict(name="pub", protect_ports=[-1], rules=[{"proto": "udp", "port": 53, "to_address": "10.7.0.2"}],
                     **_m("iptables")), "protect_ports[0]"),
    ("wg_dnat", dict(name="pub", protect_ports=[70000], rules=[{"port": 80, "to_address": "10.7.0.2"}], **_m("nftables")),
     "protect_ports[0]"),
    ("wg_route", dict(interface="eth0", routes=[{"dest": "10.9.0.0/24", "table": "local"}]), "routes[0].table"),
    ("wg_route", dict(interface="eth0", table="local", routes=[{"dest": "10.9.0.0/24"}]), "table"),
    ("wg_key", dict(path="wg0.key"), "path"),
    ("wg_key", dict(path=""), "path"),
    ("wg_key", dict(path="/etc/wireguard/wg0\u0000.key"), "path"),
    ("wg_status", dict(probe=True, probe_timeout=-1), "probe_timeout"),
    ("wg_status", dict(fresh_seconds=-1), "fresh_seconds"),
    ("wg_status", dict(hub_probe_port=70000), "hub_probe_port"),
]


@pytest.mark.parametrize("module, args, field", CASES, ids=["%s-%s-%d" % (m, f, i) for i, (m, a, f) in enumerate(CASES)])
def test_module_refuses_before_any_change(lab, module, args, field):
    host = one_host(lab)
    # the relative key path would be written into the working directory: run from a known empty one
    cwd = os.path.join(lab.tmpdir, "cwd")
    os.makedirs(cwd, exist_ok=True)
    before = settled(host)
    result = _module_in(host, module, args, cwd) if module == "wg_key" else host.module(module, args)
    refused(result, field)
    assert snapshot(host) == before
    assert os.listdir(cwd) == []


def _module_in(host, module, args, cwd):
    """``host.module`` run from ``cwd`` (wg_key with a relative path wrote into the working directory)."""
    from rig import PYTHON

    path = os.path.join(host.lab.tmpdir, "args-%s.json" % uuid.uuid4().hex[:6])
    with open(path, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": dict(args, _ansible_tmpdir=host.lab.tmpdir)}, handle)
    proc = host.run(["env", "-C", cwd, PYTHON, os.path.join(REPO, "plugins", "modules", module + ".py"), path],
                    check=False, env={"PYTHONPATH": os.path.join(REPO, "collections")})
    os.unlink(path)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, "no JSON (a traceback?): %s %s" % (proc.stdout, proc.stderr)
    result = json.loads(lines[-1])
    result.update(_rc=proc.returncode, _stderr=proc.stderr, _stdout=proc.stdout)
    return result


def test_wildcard_drop_policy_refused_through_the_ansible_cli(lab):
    """Item 2 as the audit ran it: ``ansible -m wg_filter`` with in_interface "+" and a drop policy on
    input; loopback stays reachable and nothing is installed."""
    host = one_host(lab)
    host.serve("tcp", "127.0.0.1", 8080)
    before = settled(host)
    for backend in ("iptables", "nftables"):
        proc = host.ansible("wgsp.service_proxy.wg_filter", {"name": "input", "in_interface": "+", "policy": "drop",
                                                             "backend": backend})
        assert proc.returncode != 0 and "in_interface: must name one interface" in proc.stdout, proc.stdout
        assert snapshot(host) == before
    assert host.run(["curl", "-sS", "--max-time", "2", "http://127.0.0.1:8080/"], check=False).returncode == 0


def test_netlink_error_names_the_route(lab):
    """Also: a route the kernel refuses (gateway not on the link) fails naming routes[N], not a bare errno."""
    host = one_host(lab)
    before = settled(host)
    result = host.module("wg_route", {"interface": "eth0", "routes": [{"dest": "10.9.0.0/24", "gateway": "10.99.0.1"}]})
    assert result["failed"] and result["msg"].startswith("routes[0]: netlink refused to add the route 10.9.0.0/24 via 10.99.0.1")
    assert "exception" not in result
    assert snapshot(host) == before


def test_failed_wireguard_go_start_shows_its_error_and_leaves_nothing(lab):
    """Item 16: a failed start shows wireguard-go's error (stdout), not the banner it prints on stderr;
    the key generated for it is not left behind."""
    host = one_host(lab)
    host.run("mount --bind /dev/null /dev/net/tun")  # this host's private mount namespace only
    before = settled(host)
    result = host.module("wg_interface", {"name": "wg0", "backend": "userspace", "addresses": ["10.7.0.1/24"]})
    assert result["failed"] and "Failed to create TUN device" in result["msg"], result["msg"]
    assert "Running wireguard-go is not required" not in result["msg"]
    assert snapshot(host) == before


def test_valid_values_still_apply_and_converge(lab):
    """The stricter rules keep every documented form working: one run applies, the second is unchanged."""
    host = one_host(lab)
    args = [("wg_dnat", {"name": "pub", "backend": "iptables", "in_interface": "eth0", "protect_ports": [51820],
                         "rules": [{"port": 80, "to_address": "192.0.2.7"}, {"port": 81, "to_address": "fd00:1::7"}]}),
            ("wg_filter", {"name": "input", "backend": "nftables", "in_interface": "eth0", "policy": "drop",
                           "allow": [{"port": 22, "sources": ["fd00:1::/64"]}]}),
            ("wg_route", {"interface": "eth0", "table": "main", "routes": [{"dest": "10.9.0.0/24"}, {"dest": "fd00:9::/64"}]}),
            ("wg_interface", {"name": "w=g.0-_x", "addresses": ["10.7.0.1/24"], "listen_port": 51820,
                              "post_up": ["ip route replace 10.8.0.0/24 dev %i proto 87"]})]
    for module, module_args in args:
        first = host.module(module, module_args)
        assert not first.get("failed") and first["changed"], (module, first.get("msg"))
        assert host.module(module, module_args)["changed"] is False, module


# ---------------------------------------------------------------------------------------------
# the roles and playbooks through ansible-playbook, each host's modules run inside its namespaces


def inventory(tmp_path, groups, host_vars=None):
    from rig import namespace_inventory

    path = namespace_inventory(tmp_path, groups)
    (tmp_path / "host_vars").mkdir(exist_ok=True)
    for name, values in (host_vars or {}).items():
        (tmp_path / "host_vars" / ("%s.json" % name)).write_text(json.dumps(values))
    return path


def playbook(tmp_path, inv, book, *extra):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"), PWD=str(tmp_path))
    proc = subprocess.run([os.path.join(REPO, ".venv", "bin", "ansible-playbook"), "-i", inv, book, *extra],
                          cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False, timeout=300)
    return proc


ROLE_PLAY = """
- name: Apply the role
  hosts: {group}
  gather_facts: false
  roles:
    - role: wgsp.service_proxy.{role}
"""

FORWARDING_CONF = "/etc/sysctl.d/60-wgsp-forwarding.conf"  # the one file a role writes outside the namespaces


def _role_cases(marker):
    return [
        ("share_client", {"share_client_extra_routes": ["fd00::9%%x||touch %s#" % marker]}, "share_client_extra_routes[0]"),
        ("share_client", {"share_client_extra_routes": ["fd00::9%x||echo INJECTED#"]}, "share_client_extra_routes[0]"),
        ("share_client", {"share_client_interface": "wg0;touch %s" % marker}, "share_client_interface"),
        ("share_client", {"share_client_interface": "+"}, "share_client_interface"),
        ("share_client", {"share_client_state_dir": "/etc/wg-service-proxy;touch %s;" % marker}, "share_client_state_dir"),
        ("share_client", {"share_client_address": "fd00::2%$(touch " + marker + ")/128"}, "share_client_address"),
        ("share_client", {"share_client_services": ["web$(touch %s):80" % marker]}, "share_client_services"),
        ("proxy_client", {"proxy_client_public_allowed_cidrs": ["fd00::%1/64"]}, "proxy_client_public_allowed_cidrs[0]"),
        ("proxy_client", {"proxy_client_extra_routes": ["10.9.0.0/24", "fe80::1%eth0"]}, "proxy_client_extra_routes[1]"),
        ("proxy_client", {"proxy_client_access_services": ["[fd00::5%1]:80"]}, "proxy_client_access_services"),
        ("wg_server", {"wg_server_interface": "-f"}, "wg_server_interface"),
        ("wg_server", {"wg_server_state_dir": "/etc/x;touch %s" % marker}, "wg_server_state_dir"),
    ]


@pytest.mark.parametrize("case", range(12))
def test_role_refuses_hostile_values_before_any_change(lab, tmp_path, case):
    """Item 1 and the one validation layer: the roles judge their variables with the modules' own
    validators before their first change (package install, sysctl, key, interface, rule sets)."""
    _tools()
    marker = marker_path(lab)
    role, bad, var = _role_cases(marker)[case]
    hub, client = lab.host("hub"), lab.host("client")
    group = {"wg_server": "wg_server", "share_client": "share_clients", "proxy_client": "proxy_clients"}[role]
    groups = {"wg_server": [hub]} if role == "wg_server" else {"wg_server": [hub], group: [client]}
    target = hub if role == "wg_server" else client
    base = {"share_client": {"share_client_address": "10.7.0.2/32"},
            "proxy_client": {"proxy_client_address": "10.7.0.3/32", "proxy_client_public_ports": []},
            "wg_server": {}}[role]
    inv = inventory(tmp_path, groups, {target.name: dict(base, **bad)})
    book = tmp_path / "play.yml"
    book.write_text(ROLE_PLAY.format(group=group, role=role))
    conf_before = os.path.exists(FORWARDING_CONF)
    before = {h.name: settled(h) for h in (hub, client)}
    proc = playbook(tmp_path, inv, str(book))
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert var in out, out[-3000:]
    assert "Validate the" in out or "Parse the" in out or "Resolve the" in out, out[-3000:]
    assert "Install WireGuard" not in out, out[-3000:]  # stopped before the first change
    assert {h.name: snapshot(h) for h in (hub, client)} == before
    assert os.path.exists(FORWARDING_CONF) == conf_before
    assert not os.path.exists(marker)


def test_debug_playbook_does_not_run_an_inventory_value(lab, tmp_path):
    """Item 17: ``proxy_client_interface: "wg0;echo X"`` ran ``echo X`` in debug.yml's shell commands."""
    _tools()
    marker = marker_path(lab)
    proxy = lab.host("proxy")
    inv = inventory(tmp_path, {"proxy_clients": [proxy]},
                    {"proxy": {"proxy_client_interface": "wg0;touch %s;echo X" % marker}})
    before = settled(proxy)
    proc = playbook(tmp_path, inv, "wgsp.service_proxy.debug", "-e", "debug_dir=%s" % (tmp_path / "dbg"))
    assert proc.returncode != 0
    assert "proxy_client_interface" in proc.stdout and "invalid interface name" in proc.stdout, proc.stdout[-3000:]
    assert not os.path.exists(marker) and "\nX\n" not in proc.stdout
    assert snapshot(proxy) == before
    # the state directory is checked the same way
    inv = inventory(tmp_path, {"proxy_clients": [proxy]},
                    {"proxy": {"proxy_client_state_dir": "/etc/$(touch %s)" % marker}})
    proc = playbook(tmp_path, inv, "wgsp.service_proxy.debug", "-e", "debug_dir=%s" % (tmp_path / "dbg"))
    assert proc.returncode != 0 and "proxy_client_state_dir" in proc.stdout and not os.path.exists(marker)


def test_restart_playbook_refuses_a_hostile_interface(lab, tmp_path):
    _tools()
    marker = marker_path(lab)
    share = lab.host("share")
    inv = inventory(tmp_path, {"share_clients": [share]}, {"share": {"share_client_interface": "wg0 -x;touch %s" % marker}})
    before = settled(share)
    proc = playbook(tmp_path, inv, "wgsp.service_proxy.restart")
    assert proc.returncode != 0 and "share_client_interface" in proc.stdout, proc.stdout[-3000:]
    assert not os.path.exists(marker) and snapshot(share) == before


# ---------------------------------------------------------------------------------------------
# item 1: the rendered wg-quick config, with the worst values the validators accept, runs exactly
# the lines the filters built - wg-quick up and sh of the boot script execute nothing else


def test_wg_quick_runs_only_the_rendered_lines(lab):
    from ansible.errors import AnsibleFilterError

    from ansible_collections.wgsp.service_proxy.plugins.filter import service_proxy as f

    host = one_host(lab, "share")
    marker = marker_path(lab)
    name = "w=g.0-_x"  # '=', '.', '-', '_' are accepted in names
    state_dir = "/etc/wg-service-proxy/a,b+c@d=e"  # ',', '+', '@', '=' are accepted in paths
    persist = "%s/%s-share.rules" % (state_dir, name)

    # hostile values never make it into a line: the filters refuse them
    for bad in (["fd00::9%%x||touch %s#" % marker], ["10.9.0.0/24;touch %s" % marker], ["$(touch %s)" % marker]):
        with pytest.raises(AnsibleFilterError):
            f.client_routes("10.7.0.2/32", ["10.7.0.0/24"] + bad, "share_client_extra_routes")
    for bad in ("%s;touch %s" % (state_dir, marker), "%s/$(touch %s)" % (state_dir, marker), state_dir + "/%i"):
        with pytest.raises(AnsibleFilterError):
            f.boot_commands([bad], "share_client_state_dir")

    # the worst accepted values, rendered the way the roles render them
    routes = f.client_routes("10.7.0.2/32", ["10.7.0.0/24", "fd00:9::/64", "198.51.100.7", "fd00:9::/64"],
                             "share_client_extra_routes")
    post_up = f.route_commands(routes) + f.boot_commands([persist], "share_client_state_dir")
    dnat = host.module("wg_dnat", {"name": "share", "backend": "iptables", "in_interface": name, "persist_path": persist,
                                   "rules": [{"port": 80, "to_address": "198.51.100.7"}]})
    assert dnat["changed"] and not dnat.get("failed"), dnat.get("msg")
    iface = host.module("wg_interface", {"name": name, "backend": "userspace", "addresses": ["10.7.0.2/32", "fd00:7::2/128"],
                                         "post_up": post_up})
    assert iface["changed"] and not iface.get("failed"), iface.get("msg")
    conf = host.run(["cat", "/etc/wireguard/%s.conf" % name]).stdout
    assert [line[len("PostUp = "):] for line in conf.splitlines() if line.startswith("PostUp = ")] == post_up

    # the boot script alone, by sh: exit 0, rules in place, nothing else
    proc = host.run(["sh", "-x", persist], check=False)
    assert proc.returncode == 0, proc.stderr
    assert all(line.startswith("+ ") or not line.strip() for line in proc.stderr.splitlines()), proc.stderr
    ran = [line[2:].split()[0] for line in proc.stderr.splitlines() if line.startswith("+ ")]
    assert set(ran) <= {"iptables-restore", "ip6tables-restore", "iptables", "ip6tables", "fwd=FORWARD", "set"}, ran

    # wg-quick down + up: the hooks it runs are exactly the rendered lines, with %i expanded
    host.run(["wg-quick", "down", name])
    proc = host.run(["wg-quick", "up", name], check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    executed = [line[4:] for line in proc.stderr.splitlines() if line.startswith("[#] ")]
    hooks = [cmd for cmd in executed if cmd.startswith(("ip route replace", "ip -6 route replace", "sh "))]
    assert hooks == [line.replace("%i", name) for line in post_up], executed
    assert not any(cmd.startswith(("touch", "echo")) for cmd in executed)
    assert "10.9.0.0" not in proc.stderr
    routes_now = host.run("ip route show dev %s; ip -6 route show dev %s" % (name, name)).stdout
    assert "10.7.0.0/24 proto 87" in routes_now and "198.51.100.7 proto 87" in routes_now and "fd00:9::/64 proto 87" in routes_now
    assert "WGSP-SHARE-PRE" in host.run("iptables-save -t nat").stdout
    assert not os.path.exists(marker)
