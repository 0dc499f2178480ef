"""wg_status on the namespace rig (seed topology, wireguard-go): the status follows the real tunnel,
drift follows the real rule set, probes follow the real service, and nothing secret is printed.

State files are written by hand here in the roles' format (each host has a private
/etc/wg-service-proxy), so the module is tested against the contract, not against the roles."""

import json

from conftest import require_root_tools
from topology import LISTEN_PORT, PROXY_PUBLIC, SVC, TUNNEL, UNDERLAY, seed

SHARE_SET = {"name": "share", "backend": "iptables", "in_interface": "wg0",
             "rules": [{"port": 80, "to_address": SVC, "to_port": 8080}]}
PUBLIC_SET = {"name": "public", "backend": "iptables", "in_interface": "eth1", "out_interface": "wg0",
              "masquerade": True, "rules": [{"port": 80, "to_address": TUNNEL["share"], "to_port": 80}]}
HUB_ENDPOINT = "%s:%d" % (UNDERLAY["hub"], LISTEN_PORT)

STATES = {
    "proxy": {"version": 1, "interface": "wg0", "client_mode": "proxy", "address": [TUNNEL["proxy"] + "/32"],
              "hub": "hub", "hub_endpoint": HUB_ENDPOINT, "hub_address": TUNNEL["hub"],
              "access_services": [{"address": TUNNEL["share"], "port": 80, "proto": "tcp", "host": None},
                                  {"address": TUNNEL["share"], "port": 53, "proto": "udp", "host": None}],
              "public_ports": [{"proto": "tcp", "port": 80, "to_address": TUNNEL["share"], "to_port": 80}],
              "public_interface": "eth1", "public_exposure": True, "shared_services": [],
              "rule_sets": [{"module": "wg_dnat", "name": "public", "params": PUBLIC_SET}]},
    "share": {"version": 1, "interface": "wg0", "client_mode": "share", "address": [TUNNEL["share"] + "/32"],
              "hub": "hub", "hub_endpoint": HUB_ENDPOINT, "hub_address": TUNNEL["hub"], "shared_services": [],
              "host_services": [],
              "external_forwards": [{"proto": "tcp", "port": 80, "to_address": SVC, "to_port": 8080}],
              "public_exposure": False, "access_services": [], "public_ports": [],
              "rule_sets": [{"module": "wg_dnat", "name": "share", "params": SHARE_SET}]},
    "hub": {"version": 1, "interface": "wg0", "client_mode": "server", "address": [TUNNEL["hub"] + "/24"],
            "clients": ["share", "proxy"], "isolate_clients": False, "allowed_flows": [], "rule_sets": []},
}


def write_state(host, state):
    host.run("umask 022 && cat > /etc/wg-service-proxy/wg0.json", input=json.dumps(state))


def status(host, **args):
    """wg_status that must succeed (the failing cases call host.module and assert the failure)."""
    result = host.module("wg_status", args)
    assert result["_rc"] == 0 and not result.get("failed"), result
    return result


def by_name(result):
    return [(p["name"], p["target"], p["ok"]) for p in result["probes"]]


def lab_up(lab):
    require_root_tools("wireguard-go", "wg", "iptables", "curl")
    topo = seed(lab, with_service=True)
    for name in ("hub", "share", "proxy"):
        write_state(getattr(topo, name), STATES[name])
    assert topo.share.module("wg_dnat", SHARE_SET)["changed"]
    assert topo.proxy.module("wg_dnat", PUBLIC_SET)["changed"]
    topo.wait_tunnel()
    return topo


def test_status_follows_the_tunnel(lab):
    topo = lab_up(lab)
    hub_key = topo.hub.run(["wg", "show", "wg0", "public-key"]).stdout.strip()
    proxy_key = topo.proxy.run(["wg", "show", "wg0", "public-key"]).stdout.strip()

    result = status(topo.proxy)
    assert result["changed"] is False and result["status"] == "connected", result["summary"]
    assert result["client_mode"] == "proxy" and result["public_exposure"] is True
    assert result["backend"] == "userspace" and result["public_key"] == proxy_key
    assert result["hub_public_key"] == hub_key and result["handshake_age"] < 180
    assert [s["target"] for s in result["access_services"]] == ["10.7.0.2:80", "10.7.0.2:53"]
    assert result["address"] == ["10.7.0.3/32"] and result["drift"] is False
    assert any(r["dest"] == "10.7.0.0/24" for r in result["routes"])
    assert result["rules"][0]["name"] == "public" and result["rules"][0]["in_sync"] is True

    hub = status(topo.hub)
    assert hub["client_mode"] == "server" and hub["status"] == "connected" and hub["clients_connected"] == 2
    assert sorted(p["role"] for p in hub["peers"]) == ["client", "client"]

    # check mode reports the same and changes nothing
    checked = topo.proxy.module("wg_status", {}, check_mode=True)
    assert checked["changed"] is False and checked["status"] == "connected"

    # no handshake: a host whose only peer has no endpoint (nothing is ever sent)
    lonely = lab.host("lonely")
    lonely.wg_go("wg0")
    lonely.run("wg genkey > /etc/wireguard/wg0.key && wg set wg0 private-key /etc/wireguard/wg0.key "
               "peer %s allowed-ips 10.7.0.0/24 && ip link set wg0 up" % hub_key)
    result = status(lonely)
    assert (result["status"], result["client_mode"], result["handshake_age"]) == ("no-handshake", "unmanaged", None)
    failed = lonely.module("wg_status", {"fail_on": ["disconnected"]})
    assert failed["failed"] and failed["msg"].startswith("wg0: status is no-handshake")

    # absent: a host without the interface
    result = status(topo.public)
    assert result["status"] == "absent" and result["peers"] == [] and result["public_key"] is None

    # down: the link is set down by hand
    topo.proxy.run(["ip", "link", "set", "wg0", "down"])
    result = status(topo.proxy, probe=True)
    assert result["status"] == "down" and by_name(result) == [("handshake", "wg0", False)]


def test_drift_appears_when_a_rule_is_deleted_and_goes_after_reapply(lab):
    topo = lab_up(lab)
    assert status(topo.proxy, fail_on=["drift"])["drift"] is False
    line = topo.proxy.run("iptables -t nat -S WGSP-PUBLIC-PRE | grep -- '--dport 80'").stdout.strip()
    topo.proxy.run("iptables -t nat " + line.replace("-A ", "-D ", 1))

    result = status(topo.proxy)
    assert result["drift"] is True and "drift=yes" in result["summary"]
    public = result["rules"][0]
    assert public["in_sync"] is False and len(public["drift"]["missing"]) == 1 and "dport 80" in public["drift"]["missing"][0]
    failed = topo.proxy.module("wg_status", {"fail_on": ["drift"]})
    assert failed["failed"] and "drift in wg_dnat public" in failed["msg"]

    assert topo.proxy.module("wg_dnat", PUBLIC_SET)["changed"]
    result = status(topo.proxy, fail_on=["drift"])
    assert "failed" not in result and result["drift"] is False and result["rules"][0]["in_sync"] is True


def test_probes_fail_when_the_service_behind_the_share_stops(lab):
    topo = lab_up(lab)
    service = topo.svc.serve("tcp", SVC, 8080)

    result = status(topo.proxy, probe=True, probe_timeout=2)
    assert by_name(result) == [
        ("handshake", "wg0", True),
        ("hub tunnel address", "10.7.0.1:22", True),  # nothing listens on the hub: the RST is the answer
        ("access service", "10.7.0.2:80", True),
        ("access service", "10.7.0.2:53", None),  # UDP: not probed
        ("public port tcp/80 target", "10.7.0.2:80", True),
    ], result["probes"]
    assert all(isinstance(p["elapsed_ms"], int) for p in result["probes"])
    share = status(topo.share, probe=True, fail_on=["probe"])
    assert "failed" not in share and by_name(share)[-1] == ("external forward tcp/80", "198.51.100.2:8080", True)

    service.kill()
    service.wait()
    result = topo.proxy.module("wg_status", {"probe": True, "probe_timeout": 2, "fail_on": ["probe"]})
    assert result["failed"] and "access service 10.7.0.2:80" in result["msg"]
    assert [ok for _n, _t, ok in by_name(result)] == [True, True, False, None, False]
    assert "refused" in result["probes"][2]["detail"]
    share = topo.share.module("wg_status", {"probe": True, "fail_on": ["probe"]})
    assert share["failed"] and "external forward tcp/80 198.51.100.2:8080" in share["msg"]
    assert PROXY_PUBLIC not in json.dumps(result["probes"])  # probes never target the public side


def test_ansible_short_name_fqcn_and_no_secret_with_vvv(lab):
    topo = lab_up(lab)
    private = topo.proxy.run(["cat", "/etc/wireguard/wg0.key"]).stdout.strip()
    private_hex = topo.proxy.run("printf %s '" + private + "' | base64 -d | od -An -tx1 | tr -d ' \\n'").stdout.strip()
    assert len(private) == 44 and len(private_hex) == 64
    for name in ("wg_status", "wgsp.service_proxy.wg_status"):
        proc = topo.proxy.ansible(name, {"probe": True}, extra=["-vvv"])
        assert proc.returncode == 0, proc.stdout + proc.stderr
        text = proc.stdout + proc.stderr
        assert '"status": "connected"' in text and '"client_mode": "proxy"' in text
        assert private not in text and private_hex not in text
        assert "private_key" not in text


# ---------------------------------------------------------------------------------------------
# the operations playbooks against the namespace hosts: each inventory host runs its modules through
# a small interpreter wrapper that enters the host's namespaces (connection local, no network login).

def inventory(lab, tmp_path, hosts):
    """``hosts``: {group: [host, ...]} -> an INI inventory file whose hosts run inside their namespaces."""
    from rig import namespace_inventory

    return namespace_inventory(tmp_path, hosts)


def playbook(tmp_path, inv, name, *extra):
    import os
    import subprocess

    from conftest import REPO

    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"), PWD=str(tmp_path))
    return subprocess.run([os.path.join(REPO, ".venv", "bin", "ansible-playbook"), "-i", inv,
                           "wgsp.service_proxy." + name, *extra], cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, check=False, timeout=300)


def test_playbooks_status_test_connection_debug(lab, tmp_path):
    topo = lab_up(lab)
    service = topo.svc.serve("tcp", SVC, 8080)
    inv = inventory(lab, tmp_path, {"wg_server": [topo.hub], "share_clients": [topo.share],
                                    "proxy_clients": [topo.proxy], "public_clients": [topo.public]})
    keys = [h.run(["cat", "/etc/wireguard/wg0.key"]).stdout.strip() for h in (topo.hub, topo.share, topo.proxy)]

    proc = playbook(tmp_path, inv, "status")
    assert proc.returncode == 0, proc.stdout[-3000:]
    for line in ("server connected handshake=", "share connected handshake=", "proxy connected handshake="):
        assert line in proc.stdout
    assert proc.stdout.count("drift=no") == 3
    proc = playbook(tmp_path, inv, "status", "--tags", "access-services,public-exposure", "-v")
    assert proc.returncode == 0 and '"10.7.0.2:80/tcp"' in proc.stdout and "tcp 80 -> 10.7.0.2:80" in proc.stdout
    assert "wg_dnat public (iptables): in sync" in proc.stdout

    proc = playbook(tmp_path, inv, "test_connection")
    assert proc.returncode == 0, proc.stdout[-4000:]
    assert "203.0.113.1:80 from public" in proc.stdout  # the published port, from the public side
    table = proc.stdout[proc.stdout.index("Pass/fail per host"):]
    assert table.count("PASS") == 3 and "FAIL" not in table

    proc = playbook(tmp_path, inv, "debug", "-e", "debug_dir=%s" % (tmp_path / "dbg"))
    assert proc.returncode == 0, proc.stdout[-3000:]
    for host in ("hub", "share", "proxy"):
        report = (tmp_path / "dbg" / (host + ".txt")).read_text()
        assert "## wg_status" in report and "## iptables (our chains)" in report
        assert all(key not in report for key in keys)
    assert "WGSP-PUBLIC-PRE" in (tmp_path / "dbg" / "proxy.txt").read_text()

    service.kill()
    service.wait()
    proc = playbook(tmp_path, inv, "test_connection")
    assert proc.returncode != 0
    table = proc.stdout[proc.stdout.index("Pass/fail per host"):]
    assert "FAIL: access service; public port tcp/80 target; public port from the public side 80" in table
    assert "FAIL: external forward tcp/80" in table and table.count("PASS") == 1  # the hub still passes
    assert all(key not in proc.stdout + proc.stderr for key in keys)


def test_restart_playbook_reconnects_and_reasserts_rules(lab, tmp_path):
    require_root_tools("wg-quick")
    topo = lab_up(lab)
    persist = "/etc/wg-service-proxy/wg0-public.rules"
    assert topo.proxy.module("wg_dnat", dict(PUBLIC_SET, persist_path=persist))["_rc"] == 0
    # the config wg-quick restarts from, as the roles persist it (wg_interface writes the same form)
    conf = topo.proxy.run(["wg", "showconf", "wg0"]).stdout
    conf = conf.replace("[Interface]\n", "[Interface]\nAddress = %s/32\nPostUp = ip route replace 10.7.0.0/24 dev %%i "
                        "proto 87\nPostUp = sh %s\n" % (TUNNEL["proxy"], persist), 1)
    topo.proxy.run("umask 077 && cat > /etc/wireguard/wg0.conf", input=conf)
    topo.proxy.run(["ip", "route", "replace", "10.7.0.0/24", "dev", "wg0", "proto", "87"])
    # drift by hand: the restart must re-assert the rule set
    line = topo.proxy.run("iptables -t nat -S WGSP-PUBLIC-PRE | grep -- '--dport 80'").stdout.strip()
    topo.proxy.run("iptables -t nat " + line.replace("-A ", "-D ", 1))
    assert status(topo.proxy)["drift"] is True
    pid_before = topo.proxy.run("pgrep -f 'wireguard-go wg0'", check=False).stdout.split()

    inv = inventory(lab, tmp_path, {"proxy_clients": [topo.proxy]})
    proc = playbook(tmp_path, inv, "restart", "-e", "restart_wait_seconds=30")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "proxy connected" in proc.stdout
    after = status(topo.proxy)
    assert after["status"] == "connected" and after["drift"] is False
    assert any(r["dest"] == "10.7.0.0/24" and r["managed"] for r in after["routes"])
    # wg-quick really restarted it: a new wireguard-go process serves wg0
    assert topo.proxy.run("pgrep -f 'wireguard-go wg0'", check=False).stdout.split() != pid_before
