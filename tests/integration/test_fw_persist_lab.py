"""persist_path: the boot script re-creates a wiped rule set without Ansible, twice is harmless, and the
module then finds nothing to change. Runs inside a throw-away host (private /etc/wg-service-proxy)."""

import pytest

from conftest import require_root_tools

PATH = "/etc/wg-service-proxy/wg0-public.rules"
PUBLIC = {"name": "public", "in_interface": "eth1", "out_interface": "wg0", "masquerade": True,
          "sources": ["203.0.113.0/24"],
          "rules": [{"port": 80, "to_address": "10.7.0.2"},
                    {"proto": "udp", "port": "5000-5010", "to_address": "10.7.0.2", "log": True},
                    {"proto": "both", "port": 8443, "to_address": "fd00:7::2", "to_port": 443,
                     "sources": ["2001:db8::/32"]}],
          "persist_path": PATH}


def snapshot(host, backend=None):
    """The host's rules, counters stripped. iptables-save sorts chains by name; ``nft list ruleset``
    lists iptables-nft's chains in creation order, so the iptables backend compares the save form."""
    if backend == "iptables":
        return host.run("iptables-save | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//'; "
                        "ip6tables-save | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//'").stdout
    return host.run("iptables-save | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//'; "
                    "ip6tables-save | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//'; "
                    "nft list ruleset | sed 's/packets [0-9]* bytes [0-9]*//'").stdout


WIPE = {
    "iptables": "for t in nat filter; do for c in PREROUTING POSTROUTING FORWARD DOCKER-USER; do "
                "  iptables -t $t -S $c 2>/dev/null | grep wgsp | sed 's/^-A/-D/' | while read -r l; do eval iptables -t $t $l; done; "
                "  ip6tables -t $t -S $c 2>/dev/null | grep wgsp | sed 's/^-A/-D/' | while read -r l; do eval ip6tables -t $t $l; done; "
                "done; done; "
                "for c in PRE POST FWD; do t=nat; [ $c = FWD ] && t=filter; "
                "  iptables -t $t -F WGSP-PUBLIC-$c; iptables -t $t -X WGSP-PUBLIC-$c; "
                "  ip6tables -t $t -F WGSP-PUBLIC-$c; ip6tables -t $t -X WGSP-PUBLIC-$c; done",
    "nftables": "nft delete table inet wgsp-dnat-public",
}


@pytest.mark.parametrize("backend,docker_user", [("iptables", False), ("iptables", True), ("nftables", False)])
def test_script_restores_a_wiped_set_and_is_idempotent(lab, backend, docker_user):
    require_root_tools("iptables", "ip6tables", "nft")
    host = lab.host("proxy")
    if docker_user:
        host.run("iptables -N DOCKER-USER; iptables -A DOCKER-USER -j RETURN; iptables -A FORWARD -j DOCKER-USER")
    params = dict(PUBLIC, backend=backend)
    check = host.module("wg_dnat", params, check_mode=True, diff=True)
    assert check["changed"] and check["persist_path"] == {"path": PATH, "changed": True, "removed": []}
    assert host.run(["test", "-e", PATH], check=False).returncode != 0
    assert isinstance(check["diff"], list) and check["diff"][1]["after"].startswith("#!/bin/sh\n")

    first = host.module("wg_dnat", params)
    assert first["changed"] and first["persist_path"]["changed"], first
    assert host.run(["stat", "-c", "%a", PATH]).stdout.strip() == "644"
    script = host.run(["cat", PATH]).stdout
    applied = snapshot(host, backend)
    # the unchanged re-run does not rewrite the file
    mtime = host.run(["stat", "-c", "%Y.%y", PATH]).stdout
    again = host.module("wg_dnat", params)
    assert again["changed"] is False and again["persist_path"] == {"path": PATH, "changed": False, "removed": []}
    assert host.run(["stat", "-c", "%Y.%y", PATH]).stdout == mtime

    host.run(WIPE[backend])
    assert "wgsp" not in snapshot(host).lower()
    for _run in range(2):
        host.run(["sh", PATH])
        assert snapshot(host, backend) == applied
    if docker_user:
        assert "-j WGSP-PUBLIC-FWD" in host.run("iptables -S DOCKER-USER").stdout
    rerun = host.module("wg_dnat", params)
    assert rerun["changed"] is False and rerun["plan"] == [], rerun["plan"]
    assert host.run(["cat", PATH]).stdout == script

    gone = host.module("wg_dnat", {"name": "public", "state": "absent", "backend": backend, "persist_path": PATH})
    assert gone["changed"] and gone["persist_path"]["changed"]
    assert host.run(["test", "-e", PATH], check=False).returncode != 0
    assert host.module("wg_dnat", {"name": "public", "state": "absent", "backend": backend,
                                   "persist_path": PATH})["changed"] is False


def test_bad_persist_path_fails_before_anything(lab):
    require_root_tools("iptables")
    host = lab.host("proxy")
    before = snapshot(host)
    for bad in ("relative/path", "/etc/x;reboot", "/etc/$(reboot)", "/etc/a b", "/etc/../x"):
        result = host.module("wg_dnat", dict(PUBLIC, backend="iptables", persist_path=bad))
        assert result.get("failed") and result["field"] == "persist_path", (bad, result)
    assert snapshot(host) == before
