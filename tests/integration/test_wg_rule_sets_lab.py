"""wg_rule_sets on the seed topology (real wireguard-go tunnels, namespace hosts), both backends:
a share's two rule sets (DNAT from its tunnel address, a filter on its tunnel input) in one call.

What a user sees: check mode changes nothing; the published port answers and the filtered one does
not; a second run writes nothing; a bad later set fails naming it with the ruleset untouched; the
ruleset and the boot scripts are byte for byte what wg_dnat and wg_filter write when called one by one.
"""

import pytest

from conftest import require_root_tools
from topology import TUNNEL, seed, tcp_get
from test_wg_filter_lab import snapshot

SHARE_PATH = "/etc/wg-service-proxy/wg0-share.rules"
INPUT_PATH = "/etc/wg-service-proxy/wg0-input.rules"


def sets(backend):
    dnat = {"name": "share", "backend": backend, "in_interface": "wg0", "persist_path": SHARE_PATH,
            "rules": [{"proto": "tcp", "port": 8080, "to_address": TUNNEL["share"], "to_port": 80}]}
    filt = {"name": "input", "backend": backend, "hook": "input", "in_interface": "wg0", "policy": "drop",
            "allow": [{"proto": "tcp", "port": 80}, {"proto": "icmp"}], "persist_path": INPUT_PATH}
    return dnat, filt


def scripts(host):
    return host.run("cat %s %s" % (SHARE_PATH, INPUT_PATH)).stdout


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_share_rule_sets_in_one_call(lab, backend):
    require_root_tools("wireguard-go", "wg", "iptables", "ip6tables", "nft", "curl")
    topo = seed(lab)
    share, proxy = topo.share, topo.proxy
    share.serve("tcp", TUNNEL["share"], 80)
    share.serve("tcp", TUNNEL["share"], 81)
    topo.wait_tunnel()
    clean = snapshot(share, backend)
    dnat, filt = sets(backend)
    args = {"rule_sets": [{"module": "wg_dnat", "name": "share", "params": dnat},
                          {"module": "wg_filter", "params": filt}]}

    check = share.module("wg_rule_sets", args, check_mode=True, diff=True)
    assert check["changed"] and check["changed_sets"] == ["share", "input"], check
    assert len(check["diff"]) == 4  # each set's rules and its boot script
    assert snapshot(share, backend) == clean
    assert share.run(["test", "-e", SHARE_PATH], check=False).returncode != 0

    first = share.module("wg_rule_sets", args)
    assert first["changed"] and [s["applied"] for s in first["rule_sets"]] == [True, True], first
    assert tcp_get(proxy, TUNNEL["share"], 8080) == (0, "share %s" % TUNNEL["proxy"])
    assert tcp_get(proxy, TUNNEL["share"], 80)[0] == 0
    assert tcp_get(proxy, TUNNEL["share"], 81, timeout=1)[0] != 0  # not in the input set's allow list
    applied, written = snapshot(share, backend), scripts(share)

    again = share.module("wg_rule_sets", args)
    assert again["changed"] is False and again["changed_sets"] == [], again
    assert snapshot(share, backend) == applied

    bad = share.module("wg_rule_sets", {"rule_sets": [args["rule_sets"][0], {
        "module": "wg_filter", "params": dict(filt, allow=[{"proto": "tcp", "port": "80;reboot"}])}]})
    assert bad.get("failed") and bad["field"] == "rule_sets[1].params.allow[0].port", bad
    assert snapshot(share, backend) == applied and scripts(share) == written

    # the same sets through the single modules: the same ruleset and the same boot scripts
    gone = share.module("wg_rule_sets", {"rule_sets": [
        {"module": "wg_dnat", "params": dict(dnat, state="absent")},
        {"module": "wg_filter", "params": dict(filt, state="absent")}]})
    assert gone["changed"] and gone["changed_sets"] == ["share", "input"], gone
    assert "wgsp" not in snapshot(share, backend).lower()
    assert share.run(["test", "-e", SHARE_PATH], check=False).returncode != 0
    assert share.module("wg_dnat", dnat)["changed"] and share.module("wg_filter", filt)["changed"]
    assert snapshot(share, backend) == applied and scripts(share) == written
    # and the combined call sees nothing to do on what the single modules wrote
    assert share.module("wg_rule_sets", args)["changed"] is False
