"""wg_interface with ``rule_sets`` and ``record``/``record_path``: the tunnel, the firewall that uses it
and the status record in one call, on fresh namespace hosts (real wireguard-go, real iptables/nftables).

What a user sees: check mode on a fresh host plans the interface, both sets and the record and creates
nothing; the first call creates the interface, the sets (the published port answers through the tunnel,
the filtered one does not) and the record (the JSON given, sorted keys, 0644); a second identical call
changes and writes nothing; a bad set or a bad record path fails naming it before the interface exists;
a set that fails when applied leaves the interface and the sets before it, and no record.

Underlay 192.0.2.0/24 (hub .1, client .2), tunnel 10.7.0.0/24; everything stays in the lab's namespaces.
"""

import json

import pytest

from conftest import require_root_tools
from topology import tcp_get
from test_wg_filter_lab import snapshot
from test_wg_interface_lab import ok, wait_for, wg_go_pids

HUB, CLIENT = "10.7.0.1", "10.7.0.2"
SHARE_PATH = "/etc/wg-service-proxy/wg0-share.rules"
INPUT_PATH = "/etc/wg-service-proxy/wg0-input.rules"
RECORD_PATH = "/var/lib/wgsp-service-proxy/state/wg0.json"
# what the lab's private directories hold on a fresh host (the rig mounts each one empty)
FILES = "find /etc/wireguard /etc/wg-service-proxy /var/lib/wgsp-service-proxy /run/wireguard | sort"
EMPTY = "/etc/wg-service-proxy\n/etc/wireguard\n/run/wireguard\n/var/lib/wgsp-service-proxy\n"
# the set's own chain / table, by backend: (dnat set "share", filter set "input")
SET_NAMES = {"iptables": ("WGSP-SHARE-PRE", "WGSP-INPUT-IN"),
             "nftables": ("table inet wgsp-dnat-share", "table inet wgsp-filter-input")}
FOREIGN_FILTER = {"iptables": "iptables -N WGSP-INPUT-IN && iptables -A WGSP-INPUT-IN -j ACCEPT",
                  "nftables": "nft add table inet wgsp-filter-input"}
# keys out of order on purpose: the file must have them sorted
RECORD = {"version": 1, "interface": "wg0", "mode": "share", "ports": [80, 8080],
          "rule_sets": [{"name": "share", "module": "wg_dnat"}, {"name": "input", "module": "wg_filter"}],
          "address": [CLIENT + "/32"], "public_exposure": False}


def record_text(record):
    """The record as the module (and the roles' to_nice_json before it) writes it."""
    return json.dumps(record, indent=4, sort_keys=True, separators=(",", ": ")) + "\n"


def sets(backend):
    dnat = {"name": "share", "backend": backend, "in_interface": "wg0", "persist_path": SHARE_PATH,
            "rules": [{"proto": "tcp", "port": 8080, "to_address": HUB, "to_port": 80}]}
    filt = {"name": "input", "backend": backend, "hook": "input", "in_interface": "wg0", "policy": "drop",
            "allow": [{"proto": "tcp", "port": 80}, {"proto": "icmp"}], "persist_path": INPUT_PATH}
    return [{"module": "wg_dnat", "name": "share", "params": dnat}, {"module": "wg_filter", "params": filt}]


def hub_args(backend, peers=()):
    return {"name": "wg0", "addresses": [HUB + "/24"], "listen_port": 51820, "peers": list(peers),
            "rule_sets": sets(backend), "record": RECORD, "record_path": RECORD_PATH}


def _tools():
    require_root_tools("wireguard-go", "wg", "iptables", "ip6tables", "nft", "curl")


def no_interface(host):
    return host.run(["ip", "link", "show", "wg0"], check=False).returncode != 0 and wg_go_pids(host) == []


def state(host, backend):
    """Everything the call manages, byte for byte: the firewall (counters stripped), the device (its
    peers' handshakes and counters left out: the client keeps the tunnel alive), the addresses, the
    wireguard-go process and every file with its inode, mode and mtime."""
    device = host.run("wg show wg0 dump | cut -f1-4,8; ip -o addr show dev wg0 scope global; "
                      "ip -o link show wg0 | grep -o 'mtu [0-9]*'").stdout
    files = host.run("find /etc/wireguard /etc/wg-service-proxy /var/lib/wgsp-service-proxy -type f "
                     "-printf '%p %i %m %T@\\n' | sort; cat " + " ".join([SHARE_PATH, INPUT_PATH, RECORD_PATH])).stdout
    return snapshot(host, backend), device, wg_go_pids(host), files


def make_pair(lab):
    hub, client = lab.host("hub"), lab.host("client")
    lab.switch("under", [(hub, "eth0", ["192.0.2.1/24"]), (client, "eth0", ["192.0.2.2/24"])])
    return hub, client


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_interface_sets_and_record_in_one_call(lab, backend):
    _tools()
    hub, client = make_pair(lab)
    # the client first (a key of its own, no sets): the hub stays a fresh host until its check run
    client_res = ok(client.module("wg_interface", {"name": "wg0", "addresses": [CLIENT + "/32"]}))
    assert "rule_sets" not in client_res and "changed_sets" not in client_res and client_res["record_changes"] == []
    args = hub_args(backend, [{"public_key": client_res["public_key"], "allowed_ips": [CLIENT + "/32"]}])
    clean = snapshot(hub, backend)
    assert hub.run(FILES).stdout == EMPTY

    # check mode on the fresh hub: everything planned, nothing created
    check = ok(hub.module("wg_interface", args, check_mode=True, diff=True))
    assert check["changed"] is True and check["public_key"] is None, check
    assert check["changed_sets"] == ["share", "input"] and check["record_changes"] == ["record_path"]
    assert [(s["module"], s["name"], s["backend"], s["changed"], s["applied"]) for s in check["rule_sets"]] == [
        ("wg_dnat", "share", backend, True, False), ("wg_filter", "input", backend, True, False)]
    assert all(s["plan"] for s in check["rule_sets"]), check["rule_sets"]
    record_diffs = [d for d in check["diff"] if d.get("after_header") == RECORD_PATH]
    assert record_diffs == [{"before_header": RECORD_PATH, "after_header": RECORD_PATH, "before": "",
                             "after": record_text(RECORD)}], check["diff"]
    assert no_interface(hub) and snapshot(hub, backend) == clean and hub.run(FILES).stdout == EMPTY

    # the first call: interface, both sets, their boot scripts and the record
    first = ok(hub.module("wg_interface", args))
    assert first["changed"] is True and first["backend"] == "userspace", first
    assert first["changed_sets"] == ["share", "input"] and first["record_changes"] == ["record_path"]
    assert [(s["name"], s["applied"]) for s in first["rule_sets"]] == [("share", True), ("input", True)]
    assert hub.run(["ip", "-o", "addr", "show", "dev", "wg0"]).stdout.split()[3] == HUB + "/24"
    assert len(wg_go_pids(hub)) == 1
    ruleset = snapshot(hub, backend)
    for name in SET_NAMES[backend]:
        assert name in ruleset, ruleset
    assert hub.run("stat -c '%a %s' " + RECORD_PATH).stdout.split()[0] == "644"
    assert hub.run(["cat", RECORD_PATH]).stdout == record_text(RECORD)
    assert json.loads(hub.run(["cat", RECORD_PATH]).stdout) == RECORD
    assert hub.run(["stat", "-c", "%a", "/var/lib/wgsp-service-proxy/state"]).stdout.strip() == "755"
    assert hub.run(["test", "-s", SHARE_PATH]).returncode == 0 and hub.run(["test", "-s", INPUT_PATH]).returncode == 0

    # the sets work through the tunnel the same call made: 8080 is published to 80, 81 is filtered
    hub.serve("tcp", HUB, 80)
    hub.serve("tcp", HUB, 81)
    ok(client.module("wg_interface", {"name": "wg0", "addresses": [CLIENT + "/32"], "routes": [{"dest": "10.7.0.0/24"}],
                                      "peers": [{"public_key": first["public_key"], "endpoint": "192.0.2.1:51820",
                                                 "allowed_ips": ["10.7.0.0/24"], "persistent_keepalive": 1}]}))
    assert wait_for(lambda: tcp_get(client, HUB, 8080, timeout=1)[0] == 0, timeout=15)
    assert tcp_get(client, HUB, 8080) == (0, "hub %s" % CLIENT)
    assert tcp_get(client, HUB, 80) == (0, "hub %s" % CLIENT)
    assert tcp_get(client, HUB, 81, timeout=1)[0] != 0  # not in the input set's allow list

    # a second identical call: nothing to do, nothing written, nothing touched
    before = state(hub, backend)
    again = ok(hub.module("wg_interface", args, diff=True))
    assert again["changed"] is False and again["changed_sets"] == [] and again["record_changes"] == [], again
    assert again["actions"] == [] and again["set_requests"] == 0
    assert again["diff"] and all(d["before"] == d["after"] for d in again["diff"]), again["diff"]  # no record diff
    assert RECORD_PATH not in [d.get("after_header") for d in again["diff"]]
    assert [(s["name"], s["changed"], s["plan"], s["applied"]) for s in again["rule_sets"]] == [
        ("share", False, [], False), ("input", False, [], False)]
    assert again["public_key"] == first["public_key"]
    assert state(hub, backend) == before
    assert tcp_get(client, HUB, 8080) == (0, "hub %s" % CLIENT)


BAD = [
    ("port out of range", lambda b: [dict(sets(b)[1], params=dict(sets(b)[1]["params"], allow=[{"proto": "tcp", "port": 70000}]))],
     {}, "rule_sets[0].params.allow[0].port", "rule_sets[0].params.allow[0].port: must be between 1 and 65535"),
    ("bad second set after a good one",
     lambda b: [sets(b)[0], dict(sets(b)[1], params=dict(sets(b)[1]["params"], allow=[{"proto": "tcp", "port": 70000}]))],
     {}, "rule_sets[1].params.allow[0].port", "rule_sets[1].params.allow[0].port: must be between 1 and 65535"),
    ("record path is a directory", sets, {"record_path": "/var/lib/wgsp-service-proxy/state"},
     "record_path", "record_path: /var/lib/wgsp-service-proxy/state is a directory"),
    ("record_rule_sets with a record that lists its own", sets, {"record_rule_sets": True},
     "record", "record: has rule_sets of its own"),
    ("record_rule_sets without a record", sets, {"record_rule_sets": True, "record": None, "record_path": None},
     "record_rule_sets", "record_rule_sets: needs record"),
]


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_record_rule_sets_records_the_sets_that_are_present(lab, backend):
    """record_rule_sets: the record's rule_sets are the present entries of rule_sets, as given (a set
    removed with state=absent is not recorded), so the caller lists them once."""
    _tools()
    host = lab.host("h")
    dnat, filt = sets(backend)
    filt = dict(filt, params=dict(filt["params"], state="absent"))
    record = dict((k, v) for k, v in RECORD.items() if k != "rule_sets")
    args = dict(hub_args(backend), rule_sets=[dnat, filt], record=record, record_rule_sets=True)
    first = host.module("wg_interface", args)
    assert first["changed"] and first["record_changes"] == ["record_path"], first
    written = json.loads(host.run(["cat", RECORD_PATH]).stdout)
    assert written == dict(record, rule_sets=[{"module": "wg_dnat", "name": "share", "params": dnat["params"]}])
    again = host.module("wg_interface", args)
    assert again["changed"] is False and again["record_changes"] == [], again


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
@pytest.mark.parametrize("title,rule_sets,override,field,message", BAD, ids=[c[0] for c in BAD])
def test_bad_input_fails_before_the_interface_exists(lab, backend, title, rule_sets, override, field, message):
    _tools()
    host = lab.host("h")
    host.run(["mkdir", "-p", "/var/lib/wgsp-service-proxy/state"])
    clean, files = snapshot(host, backend), host.run(FILES).stdout
    args = dict(hub_args(backend), rule_sets=rule_sets(backend), **override)
    result = host.module("wg_interface", args)
    assert result.get("failed") is True and result["_rc"] != 0, result
    assert result["field"] == field and result["msg"].startswith(message), result["msg"]
    assert not result.get("changed")
    # nothing was created: no link, no wireguard-go, no key, no rule, no boot script, no record
    assert no_interface(host)
    assert snapshot(host, backend) == clean and host.run(FILES).stdout == files


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_a_set_failing_when_applied_keeps_what_was_done_and_writes_no_record(lab, backend):
    """Someone else's chain/table of the filter set's name is only found when the set is applied (after
    the interface and the first set): the call fails naming the set, says it changed, returns the set
    done before it, and the record is not written."""
    _tools()
    host = lab.host("h")
    host.run(FOREIGN_FILTER[backend])
    result = host.module("wg_interface", hub_args(backend))
    assert result.get("failed") is True and result["_rc"] != 0, result
    assert result["msg"].startswith("rule set input (wg_filter): "), result["msg"]
    assert "owner mark" in result["msg"]
    assert result["changed"] is True
    assert [(s["name"], s["applied"]) for s in result["rule_sets"]] == [("share", True)]
    assert host.run(["ip", "link", "show", "wg0"], check=False).returncode == 0
    assert SET_NAMES[backend][0] in snapshot(host, backend)
    assert host.run(["test", "-e", RECORD_PATH], check=False).returncode != 0
    assert host.run(["test", "-e", INPUT_PATH], check=False).returncode != 0
