"""rule_set_status on a real host: in sync after apply, drift when a rule is deleted by hand, in sync
again after the module re-applied; nothing is written by the status itself."""

import json
import os

import pytest

from conftest import COLLECTIONS, require_root_tools

STATUS = (
    "import json, sys\n"
    "from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.runner import CommandRunner\n"
    "from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.backend import rule_set_status\n"
    "module, params = sys.argv[1], json.loads(sys.argv[2])\n"
    "print(json.dumps(rule_set_status(module, params, CommandRunner())))\n"
)
PUBLIC = {"name": "public", "in_interface": "eth1", "out_interface": "wg0", "masquerade": True,
          "rules": [{"port": 80, "to_address": "10.7.0.2"}, {"proto": "udp", "port": 53, "to_address": "fd00:7::2"}]}


def status(host, module, params):
    from rig import PYTHON

    proc = host.run([PYTHON, "-c", STATUS, module, json.dumps(params)], env={"PYTHONPATH": COLLECTIONS})
    return json.loads(proc.stdout)


def snapshot(host):
    return host.run("iptables-save | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//'; "
                    "ip6tables-save | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//'; "
                    "nft list ruleset | sed 's/packets [0-9]* bytes [0-9]*//'").stdout


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_drift_appears_on_hand_deletion_and_goes_after_reapply(lab, backend):
    require_root_tools("iptables", "ip6tables", "nft")
    host = lab.host("proxy")
    params = dict(PUBLIC, backend=backend)
    empty = status(host, "wg_dnat", params)
    assert empty["present"] is False and empty["in_sync"] is False and empty["drift"]["missing"]

    assert host.module("wg_dnat", params)["changed"]
    ok = status(host, "wg_dnat", params)
    assert ok["present"] and ok["in_sync"] and ok["backend"] == backend, ok["drift"]
    assert ok["expected"] == ok["installed"] and ok["counters"]
    assert all(set(c) == {"rule", "packets", "bytes"} for c in ok["counters"])

    # delete the DNAT rule of port 80 by hand
    if backend == "iptables":
        line = host.run("iptables -t nat -S WGSP-PUBLIC-PRE | grep -- '--dport 80'").stdout.strip()
        host.run("iptables -t nat " + line.replace("-A ", "-D ", 1))
    else:
        handle = host.run("nft -a list chain inet wgsp-dnat-public prerouting | grep 'dport 80' | sed 's/.*# handle //'").stdout.strip()
        host.run(["nft", "delete", "rule", "inet", "wgsp-dnat-public", "prerouting", "handle", handle])
    before = snapshot(host)
    drifted = status(host, "wg_dnat", params)
    assert drifted["in_sync"] is False and drifted["present"]
    assert len(drifted["drift"]["missing"]) == 1 and "dport 80" in drifted["drift"]["missing"][0]
    assert drifted["drift"]["extra"] == [] and drifted["drift"]["missing_jumps"] == []
    assert snapshot(host) == before  # the status wrote nothing

    assert host.module("wg_dnat", params)["changed"]
    again = status(host, "wg_dnat", params)
    assert again["in_sync"] and again["drift"]["missing"] == []
    host.module("wg_dnat", {"name": "public", "state": "absent", "backend": backend})
    assert status(host, "wg_dnat", params)["present"] is False
    assert os.path.isdir(COLLECTIONS)
