"""nftables backend: rendering in `nft list` form, parsing listings, plan and the nft -f transaction."""

import os
import sys

import pytest

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import CommandError, WgspError
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.backend import RuleSet, conntrack_commands
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.nftables import (
    NftablesBackend,
    parse_mapping,
    parse_table,
    render_rule_lines,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.rules import normalise

sys.path.insert(0, os.path.dirname(__file__))
from test_fw_iptables import addr_show  # noqa: E402


def listing(desired_file):
    """What `nft list table` prints after loading our file (counters added, tabs, blank lines)."""
    body = desired_file.split("delete table inet wgsp-dnat-pub\n", 1)[1]
    out = []
    for line in body.splitlines():
        out.append(line.replace("counter ", "counter packets 7 bytes 420 "))
        if line == "\t}":
            out.append("")
    return "\n".join(out) + "\n"


class FakeRunner:
    def __init__(self):
        self.calls = []
        self.table = None
        self.fail_check = False

    def run(self, argv, data=None, check=True):
        self.calls.append((list(argv), data))
        if argv[:2] == ["nft", "list"] or argv[:3] == ["nft", "-a", "list"]:
            if self.table is None or argv[-1] != "wgsp-dnat-pub":
                return 1, "", "Error: No such file or directory; did you mean table 'x'?"
            return 0, self.table, ""
        if argv[:2] == ["nft", "-c"]:
            if self.fail_check:
                raise CommandError("nft failed", argv, 1, "", "syntax error")
            return 0, "", ""
        if argv[:2] == ["nft", "-f"]:
            self.table = listing(data) if "table inet wgsp-dnat-pub {\n\tcomment" in data else None
            return 0, "", ""
        if argv[0] == "iptables-save" or argv[0] == "ip6tables-save":
            return 0, "*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n", ""
        if argv[0] == "conntrack":
            return 0, "", ""
        if argv[0] == "ip" and argv[-2:-1] == ["dev"]:
            return addr_show(argv)
        raise AssertionError(argv)

    def writes(self):
        return [a for a, _d in self.calls if a[:2] in (["nft", "-f"], ["nft", "-c"]) or a[0] == "conntrack"]


def which(tool):
    return "/usr/sbin/" + tool


PUBLIC = dict(in_interface="eth0", out_interface="wg0", masquerade=True, sources=["203.0.113.0/24"])


def test_render_exact():
    (rule,) = normalise([{"port": 80, "to_address": "10.7.0.2", "to_port": 8080}], defaults=PUBLIC)
    out = render_rule_lines("pub", rule)
    assert out["prerouting"] == ['iifname "eth0" meta nfproto ipv4 tcp dport 80 counter dnat ip to 10.7.0.2:8080 comment "wgsp:pub"']
    assert out["forward"][0] == ('iifname "eth0" oifname "wg0" ip saddr 203.0.113.0/24 ip daddr 10.7.0.2 tcp dport 8080 '
                                 'ct status dnat ct original proto-dst 80 counter accept comment "wgsp:pub"')
    assert out["forward"][2].endswith('counter reject with icmp port-unreachable comment "wgsp:pub"')
    assert out["postrouting"] == ['oifname "wg0" ip daddr 10.7.0.2 tcp dport 8080 ct status dnat ct original proto-dst 80 '
                                  'counter masquerade comment "wgsp:pub"']
    (v6,) = normalise([{"proto": "udp", "port": "53-54", "to_address": "fd00::2", "sources": ["2001:db8::1"]}])
    out = render_rule_lines("pub", v6)
    assert out["prerouting"] == ['meta nfproto ipv6 udp dport 53-54 counter dnat ip6 to fd00::2 comment "wgsp:pub"']
    assert out["forward"][0].startswith("ip6 saddr 2001:db8::1 ip6 daddr fd00::2 udp dport 53-54")
    assert "icmpv6 port-unreachable" in out["forward"][2]


def test_a_remapped_range_goes_port_by_port_and_reads_back():
    """30000-30002 to 40000-40002: an anonymous map of each port, in the form nft 1.0 lists it (and reads)."""
    (v4, v6) = normalise([{"proto": "udp", "port": "30000-30002", "to_address": "10.7.0.2", "to_port": "40000-40002"},
                          {"proto": "udp", "port": "30000-30002", "to_address": "fd00::2", "to_port": "40000-40002"}])
    pre = render_rule_lines("pub", v4)["prerouting"]
    assert pre == ['meta nfproto ipv4 udp dport 30000-30002 counter dnat ip to 10.7.0.2:udp dport map '
                   '{ 30000 : 40000, 30001 : 40001, 30002 : 40002 } comment "wgsp:pub"']
    assert parse_mapping(pre[0]) == (4, "udp", None, (30000, 30002), "10.7.0.2", (40000, 40002))
    pre = render_rule_lines("pub", v6)["prerouting"]
    assert pre == ['meta nfproto ipv6 udp dport 30000-30002 counter dnat ip6 to [fd00::2]:udp dport map '
                   '{ 30000 : 40000, 30001 : 40001, 30002 : 40002 } comment "wgsp:pub"']
    assert parse_mapping(pre[0]) == (6, "udp", None, (30000, 30002), "fd00::2", (40000, 40002))
    assert "udp dport 40000-40002 ct status dnat ct original proto-dst 30000-30002" in render_rule_lines("pub", v4)["forward"][0]


def test_parse_table_and_mapping():
    text = ('table inet wgsp-dnat-pub { # handle 5\n\tcomment "wgsp:pub"\n\tchain prerouting { # handle 1\n'
            '\t\ttype nat hook prerouting priority dstnat; policy accept;\n'
            '\t\tmeta nfproto ipv4 tcp dport 80 counter packets 2 bytes 120 dnat ip to 10.7.0.2:8080 comment "wgsp:pub" # handle 4\n'
            '\t}\n}\n')
    headers, rules, comment = parse_table(text)
    assert comment == "wgsp:pub"
    assert headers == {"prerouting": "type nat hook prerouting priority dstnat; policy accept;"}
    assert rules == [("prerouting", 'meta nfproto ipv4 tcp dport 80 counter dnat ip to 10.7.0.2:8080 comment "wgsp:pub"', (2, 120))]
    assert parse_mapping(rules[0][1]) == (4, "tcp", None, (80, 80), "10.7.0.2", (8080, 8080))
    assert parse_mapping('meta nfproto ipv6 udp dport 5-6 counter dnat ip6 to [fd00::2]:7-8') == (6, "udp", None, (5, 6), "fd00::2", (7, 8))


def test_create_idempotent_change_absent():
    runner = FakeRunner()
    rs = RuleSet(runner, "pub", "nftables", which=which)
    desired = normalise([{"port": 80, "to_address": "10.7.0.2"}, {"proto": "udp", "port": 53, "to_address": "10.7.0.2"}],
                        defaults=PUBLIC)
    result = rs.run(desired)
    assert result["changed"] and result["plan"] == ["create table inet wgsp-dnat-pub (10 rules, was 0)"]
    files = [d for a, d in runner.calls if a[:2] == ["nft", "-f"]]
    assert len(files) == 1
    assert files[0].startswith("table inet wgsp-dnat-pub {\n}\ndelete table inet wgsp-dnat-pub\ntable inet wgsp-dnat-pub {\n")
    assert [a for a, _d in runner.calls if a[0] == "nft" and "-f" in a] == [["nft", "-c", "-f", "/dev/stdin"], ["nft", "-f", "/dev/stdin"]]
    runner.calls = []
    assert not rs.run(desired)["changed"]
    assert runner.writes() == []
    # retarget the UDP rule: table replaced, stale flows deleted
    changed = normalise([{"port": 80, "to_address": "10.7.0.2"}, {"proto": "udp", "port": 53, "to_address": "10.7.0.3"}],
                        defaults=PUBLIC)
    result = rs.run(changed)
    assert result["plan"] == ["replace table inet wgsp-dnat-pub (10 rules, was 10)"]
    # only the flows that arrived for eth0's address (this set's in_interface)
    assert result["conntrack"] == [["conntrack", "-D", "-f", "ipv4", "-p", "udp", "--orig-dst", "192.0.2.1",
                                    "--orig-port-dst", "53", "--dst-nat", "10.7.0.2"]]
    result = rs.run([], state="absent")
    assert result["plan"] == ["delete table inet wgsp-dnat-pub (10 rules)"] and runner.table is None
    assert not rs.run([], state="absent")["changed"]


def test_check_failure_leaves_table():
    runner = FakeRunner()
    runner.fail_check = True
    rs = RuleSet(runner, "pub", "nftables", which=which)
    with pytest.raises(CommandError):
        rs.run(normalise([{"port": 80, "to_address": "10.7.0.2"}]))
    assert runner.table is None and [a for a, _d in runner.calls if a[:2] == ["nft", "-f"]] == []


def test_hand_edit_is_repaired():
    runner = FakeRunner()
    rs = RuleSet(runner, "pub", "nftables", which=which)
    desired = normalise([{"port": 80, "to_address": "10.7.0.2"}])
    rs.run(desired)
    runner.table = runner.table.replace("\t\tmeta nfproto ipv4 tcp dport 80", "\t\ttcp dport 22 accept\n\t\tmeta nfproto ipv4 tcp dport 80")
    assert rs.run(desired)["plan"] == ["replace table inet wgsp-dnat-pub (3 rules, was 4)"]


def test_conntrack_commands_for_ranges():
    small = conntrack_commands([(6, "tcp", None, (80, 81), "fd00::2", (80, 81))])
    assert small == [["conntrack", "-D", "-f", "ipv6", "-p", "tcp", "--orig-port-dst", p, "--dst-nat", "fd00::2"] for p in ("80", "81")]
    big = conntrack_commands([(4, "udp", None, (1000, 2000), "10.7.0.2", (1000, 2000))])
    assert big == [["conntrack", "-D", "-f", "ipv4", "-p", "udp", "--dst-nat", "10.7.0.2"]]


def test_installed_counters():
    runner = FakeRunner()
    rs = RuleSet(runner, "pub", "nftables", which=which)
    rs.run(normalise([{"port": 80, "to_address": "10.7.0.2"}]))
    counted = NftablesBackend(runner, which=which).installed("pub").rules_with_counters()
    assert counted[0]["packets"] == 7 and counted[0]["chain"] == "prerouting"


def test_conntrack_commands_only_for_the_interface_addresses():
    addresses = {("eth1", 4): ["192.0.2.1", "192.0.2.9"], ("eth1", 6): ["fd00:1::1"]}

    def lookup(ifname, family):
        return addresses.get((ifname, family), [])

    assert conntrack_commands([(4, "tcp", "eth1", (80, 80), "10.7.0.2", (80, 80))], lookup) == [
        ["conntrack", "-D", "-f", "ipv4", "-p", "tcp", "--orig-dst", a, "--orig-port-dst", "80", "--dst-nat", "10.7.0.2"]
        for a in ("192.0.2.1", "192.0.2.9")]
    assert conntrack_commands([(6, "udp", "eth1", (1, 1000), "fd00::2", (1, 1000))], lookup) == [
        ["conntrack", "-D", "-f", "ipv6", "-p", "udp", "--orig-dst", "fd00:1::1", "--dst-nat", "fd00::2"]]
    # an interface without an address: nothing of this set can be told apart, nothing is deleted
    assert conntrack_commands([(4, "tcp", "wg9", (80, 80), "10.7.0.2", (80, 80))], lookup) == []


def test_a_table_of_the_sets_name_with_another_owner_mark_is_refused():
    runner = FakeRunner()
    rs = RuleSet(runner, "pub", "nftables", which=which)
    rs.run(normalise([{"port": 80, "to_address": "10.7.0.2"}]))
    runner.table = runner.table.replace('comment "wgsp:pub"\n', 'comment "admin"\n', 1)
    runner.calls = []
    for state in ("present", "absent"):
        with pytest.raises(WgspError) as err:
            rs.run(normalise([{"port": 81, "to_address": "10.7.0.2"}]), state=state)
        assert "inet wgsp-dnat-pub has owner mark 'admin', not 'wgsp:pub'" in err.value.msg
    assert runner.writes() == []
