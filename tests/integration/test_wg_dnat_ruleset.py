"""wg_dnat against real iptables / nft in a throw-away host: check mode, idempotence, atomicity,
rules of others, hand-deleted jump, removal, and each bad input (one test per case)."""

import pytest

from conftest import require_root_tools

PUBLIC = {"name": "public", "in_interface": "eth1", "out_interface": "wg0", "masquerade": True,
          "sources": ["203.0.113.0/24"],
          "rules": [{"port": 80, "to_address": "10.7.0.2"},
                    {"proto": "udp", "port": "5000-5010", "to_address": "10.7.0.2", "log": True},
                    {"proto": "both", "port": 8443, "to_address": "fd00:7::2", "to_port": 443,
                     "sources": ["2001:db8::/32"]}]}
FOREIGN = """
iptables -N DOCKER-USER
iptables -A DOCKER-USER -j RETURN
iptables -A FORWARD -j DOCKER-USER
iptables -A FORWARD -i br-x -j ACCEPT
iptables -P FORWARD DROP
iptables -t nat -A PREROUTING -p tcp --dport 22 -j DNAT --to-destination 10.0.0.9
iptables -t nat -A POSTROUTING -s 172.17.0.0/16 -j MASQUERADE
ip6tables -A FORWARD -s 2001:db8:1::/48 -j ACCEPT
"""


def snapshot(host):
    """Every ruleset the host has, counters stripped (byte comparison)."""
    return host.run("iptables-save | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//'; "
                    "ip6tables-save | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//'; "
                    "nft list ruleset | sed 's/packets [0-9]* bytes [0-9]*//'").stdout


def host_with_foreign_rules(lab):
    require_root_tools("iptables", "ip6tables", "nft")
    host = lab.host("proxy")
    host.run(FOREIGN)
    return host


def test_iptables_lifecycle_with_docker_like_chains(lab):
    host = host_with_foreign_rules(lab)
    foreign_filter = host.run("iptables -S FORWARD; iptables -S DOCKER-USER; iptables -t nat -S").stdout
    clean = snapshot(host)

    check = host.module("wg_dnat", dict(PUBLIC, backend="auto"), check_mode=True, diff=True)
    assert check["changed"] and check["backend"] == "iptables" and check["plan"] and not check["applied"]
    assert "DOCKER-USER" in check["diff"]["after"]
    assert snapshot(host) == clean

    first = host.module("wg_dnat", dict(PUBLIC, backend="auto"))
    assert first["changed"] and first["applied"], first
    # the filter jump went to DOCKER-USER (first), Docker's and the hand-added rules kept their order.
    docker_user = host.run("iptables -S DOCKER-USER").stdout.splitlines()
    assert docker_user[1:] == ['-A DOCKER-USER -m comment --comment "wgsp:public" -j WGSP-PUBLIC-FWD',
                               "-A DOCKER-USER -j RETURN"]
    assert host.run("iptables -S FORWARD").stdout.splitlines()[1:] == [
        "-A FORWARD -j DOCKER-USER", "-A FORWARD -i br-x -j ACCEPT"]
    nat = host.run("iptables -t nat -S").stdout
    assert "--dport 22 -j DNAT --to-destination 10.0.0.9" in nat and "-s 172.17.0.0/16 -j MASQUERADE" in nat
    assert "WGSP-PUBLIC-PRE" in host.run("ip6tables -t nat -S").stdout

    applied = snapshot(host)
    second = host.module("wg_dnat", dict(PUBLIC, backend="auto"))
    assert second["changed"] is False and second["applied"] is False and second["plan"] == []
    assert snapshot(host) == applied

    # jump deleted by hand -> restored, changed=true; nothing else touched.
    host.run(["iptables", "-t", "nat", "-D", "PREROUTING", "-m", "comment", "--comment", "wgsp:public",
              "-j", "WGSP-PUBLIC-PRE"])
    repaired = host.module("wg_dnat", dict(PUBLIC, backend="auto"))
    assert repaired["changed"] and repaired["plan"] == [
        'ipv4 nat: insert jump PREROUTING -m comment --comment "wgsp:public" -j WGSP-PUBLIC-PRE']
    assert snapshot(host) == applied

    # removing a rule removes it (and only it).
    fewer = dict(PUBLIC, rules=PUBLIC["rules"][:1])
    assert host.module("wg_dnat", dict(fewer, backend="auto"))["changed"]
    text = host.run("iptables-save; ip6tables-save").stdout
    assert "5000:5010" not in text and "WGSP-PUBLIC" not in host.run("ip6tables-save").stdout
    assert "--dport 80" in text

    # absent: no chain, no jump; the others' rules are exactly as before we came.
    gone = host.module("wg_dnat", {"name": "public", "state": "absent"})
    assert gone["changed"]
    # (iptables-nft keeps the empty built-in ip6 nat table it created on first use: not ours to delete)
    assert "wgsp" not in snapshot(host).lower()
    assert host.run("iptables-save | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//'").stdout in clean
    assert host.run("iptables -S FORWARD; iptables -S DOCKER-USER; iptables -t nat -S").stdout == foreign_filter


def test_nftables_lifecycle(lab):
    require_root_tools("nft")
    host = lab.host("proxy")
    host.run("nft add table inet other; nft add chain inet other fw '{ type filter hook forward priority 0; }'; "
             "nft add rule inet other fw tcp dport 22 accept")
    clean = snapshot(host)
    check = host.module("wg_dnat", dict(PUBLIC, backend="auto"), check_mode=True)
    assert check["changed"] and check["backend"] == "nftables" and snapshot(host) == clean
    assert host.module("wg_dnat", dict(PUBLIC, backend="auto"))["changed"]
    applied = snapshot(host)
    assert "table inet wgsp-dnat-public" in applied and "tcp dport 22 accept" in applied
    second = host.module("wg_dnat", dict(PUBLIC, backend="auto"))
    assert second["changed"] is False and second["applied"] is False
    assert snapshot(host) == applied
    # a hand edit inside our table is repaired
    host.run("nft insert rule inet wgsp-dnat-public forward tcp dport 9 accept")
    assert host.module("wg_dnat", dict(PUBLIC, backend="auto"))["changed"]
    assert snapshot(host) == applied
    assert host.module("wg_dnat", {"name": "public", "state": "absent", "backend": "nftables"})["changed"]
    assert snapshot(host) == clean


def test_switching_backend_removes_the_other_backends_leftovers(lab):
    host = host_with_foreign_rules(lab)
    # every table iptables uses exists before (iptables-nft creates a table with its built-in chains on
    # first use, and those are not ours to remove); the rules of others must come through unchanged
    host.run("ip6tables -t nat -A PREROUTING -p tcp --dport 2222 -j RETURN; "
             "ip6tables -t nat -A POSTROUTING -s fd00:99::/64 -j MASQUERADE")
    clean = snapshot(host)
    assert host.module("wg_dnat", dict(PUBLIC, backend="nftables"))["changed"]
    moved = host.module("wg_dnat", dict(PUBLIC, backend="iptables"))
    assert any(a.startswith("nftables: delete table inet wgsp-dnat-public") for a in moved["plan"])
    assert "wgsp-dnat-public" not in host.run("nft list ruleset").stdout
    host.module("wg_dnat", {"name": "public", "state": "absent", "backend": "iptables"})
    assert "wgsp" not in snapshot(host).lower()
    assert snapshot(host) == clean  # nothing of either backend is left, not even an empty chain or table


BAD = [
    ("port-0", {"port": 0, "to_address": "10.7.0.2"}, "rules[1].port"),
    ("port-65536", {"port": 65536, "to_address": "10.7.0.2"}, "rules[1].port"),
    ("range-90-80", {"port": "90-80", "to_address": "10.7.0.2"}, "rules[1].port"),
    ("proto-icmpx", {"proto": "icmpx", "port": 81, "to_address": "10.7.0.2"}, "proto"),
    ("bad-address", {"port": 81, "to_address": "10.7.0.256"}, "rules[1].to_address"),
    ("bad-cidr", {"port": 81, "to_address": "10.7.0.2", "sources": ["203.0.113.0/40"]}, "rules[1].sources[0]"),
    ("ifname-16", {"port": 81, "to_address": "10.7.0.2", "in_interface": "abcdefghijklmnop"}, "rules[1].in_interface"),
    ("newline", {"port": 81, "to_address": "10.7.0.2", "in_interface": "eth1\n-A INPUT -j ACCEPT"}, "rules[1].in_interface"),
    ("semicolon", {"port": 81, "to_address": "10.7.0.2;", "in_interface": "eth1"}, "rules[1].to_address"),
    ("space", {"port": 81, "to_address": "10.7.0.2", "out_interface": "wg 0"}, "rules[1].out_interface"),
    ("subshell", {"port": "$(reboot)", "to_address": "10.7.0.2"}, "rules[1].port"),
    ("listen-port", {"proto": "udp", "port": "51000-52000", "to_address": "10.7.0.2"}, "rules[1].port"),
]


@pytest.mark.parametrize("case,bad,field", BAD, ids=[c[0] for c in BAD])
def test_bad_input_fails_before_anything_is_touched(lab, case, bad, field):
    """A batch with one invalid rule fails naming the field; the ruleset stays byte-identical."""
    require_root_tools("iptables", "nft", "wireguard-go", "wg")
    host = lab.host("proxy")
    if case == "listen-port":  # the protection comes from the live WireGuard interface, not an option
        host.wg_go("wg0")
        host.run(["wg", "set", "wg0", "listen-port", "51820"])
    host.module("wg_dnat", {"name": "public", "backend": "iptables", "rules": [{"port": 80, "to_address": "10.7.0.2"}]})
    before = snapshot(host)
    result = host.module("wg_dnat", {"name": "public", "backend": "iptables",
                                     "rules": [{"port": 80, "to_address": "10.7.0.2"}, bad]})
    assert result.get("failed") and result["_rc"] != 0
    assert field in result["msg"], result["msg"]
    assert snapshot(host) == before
