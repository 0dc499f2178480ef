"""wg_filter: validation per field, rendering per backend, the pipeline on the iptables model, no
collision with a wg_dnat set of the same name, status and boot script."""

import os
import sys

import pytest

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import ValidationError
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.backend import (
    RuleSet,
    persist_rule_set,
    rule_set_status,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.filter import render_iptables_lines, render_nft_lines
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.nftables import parse_table
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.params import filter_rules, module_params
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.rules import normalise

sys.path.insert(0, os.path.dirname(__file__))
from test_fw_iptables import FakeRunner, which_all  # noqa: E402

HUB = {"name": "isolate", "backend": "iptables", "hook": "forward", "in_interface": "wg0", "out_interface": "wg0",
       "allow": [{"proto": "tcp", "port": 80, "sources": ["10.7.0.3"], "destinations": ["10.7.0.2"]}],
       "policy": "drop"}
SHARE = {"name": "input", "backend": "iptables", "hook": "input", "in_interface": "wg0",
         "allow": [{"proto": "tcp", "port": 22}, {"proto": "icmp"}], "policy": "reject", "log": True}
TAG = '-m comment --comment "wgsp-f:%s"'


def fset(params):
    return filter_rules(module_params("wg_filter", params))[0]


def test_render_iptables_hub_isolation():
    chain, v4 = render_iptables_lines(fset(HUB), 4)
    tag = TAG % "isolate"
    assert chain == "WGSP-ISOLATE-FLT"
    assert v4 == [
        "-A WGSP-ISOLATE-FLT -m conntrack --ctstate RELATED,ESTABLISHED %s -j ACCEPT" % tag,
        "-A WGSP-ISOLATE-FLT -s 10.7.0.3/32 -d 10.7.0.2/32 -p tcp -m tcp --dport 80 %s -j ACCEPT" % tag,
        "-A WGSP-ISOLATE-FLT %s -j DROP" % tag]
    # the IPv4-only allow is not rendered for IPv6, the policy is
    assert render_iptables_lines(fset(HUB), 6)[1] == [v4[0], v4[2]]


def test_render_iptables_share_input_icmp_log_reject():
    tag = TAG % "input"
    chain, v6 = render_iptables_lines(fset(SHARE), 6)
    assert chain == "WGSP-INPUT-IN" and v6 == [
        "-A WGSP-INPUT-IN -m conntrack --ctstate RELATED,ESTABLISHED %s -j ACCEPT" % tag,
        "-A WGSP-INPUT-IN -p tcp -m tcp --dport 22 %s -j ACCEPT" % tag,
        "-A WGSP-INPUT-IN -p ipv6-icmp %s -j ACCEPT" % tag,
        '-A WGSP-INPUT-IN -m limit --limit 5/min %s -j LOG --log-prefix "wgsp-input "' % tag,
        "-A WGSP-INPUT-IN %s -j REJECT --reject-with icmp6-port-unreachable" % tag]
    _chain, v4 = render_iptables_lines(fset(dict(SHARE, established=False, policy="accept")), 4)
    assert v4 == ["-A WGSP-INPUT-IN -p tcp -m tcp --dport 22 %s -j ACCEPT" % tag,
                  "-A WGSP-INPUT-IN -p icmp %s -j ACCEPT" % tag, "-A WGSP-INPUT-IN %s -j ACCEPT" % tag]


def test_render_nft():
    assert render_nft_lines(fset(HUB)) == [
        'iifname "wg0" oifname "wg0" ct state established,related counter accept comment "wgsp-f:isolate"',
        'iifname "wg0" oifname "wg0" ip saddr 10.7.0.3 ip daddr 10.7.0.2 tcp dport 80 counter accept comment "wgsp-f:isolate"',
        'iifname "wg0" oifname "wg0" counter drop comment "wgsp-f:isolate"']
    extra = [{"proto": "both", "port": "5-6", "sources": ["fd00::/64"]}]
    lines = render_nft_lines(fset(dict(SHARE, allow=SHARE["allow"] + extra)))
    assert lines[1:] == [
        'iifname "wg0" tcp dport 22 counter accept comment "wgsp-f:input"',
        'iifname "wg0" meta l4proto icmp counter accept comment "wgsp-f:input"',
        'iifname "wg0" meta l4proto ipv6-icmp counter accept comment "wgsp-f:input"',
        'iifname "wg0" ip6 saddr fd00::/64 tcp dport 5-6 counter accept comment "wgsp-f:input"',
        'iifname "wg0" ip6 saddr fd00::/64 udp dport 5-6 counter accept comment "wgsp-f:input"',
        'iifname "wg0" limit rate 5/minute log prefix "wgsp-input " comment "wgsp-f:input"',
        'iifname "wg0" counter reject comment "wgsp-f:input"']


ACCESS = {"name": "access", "backend": "iptables", "hook": "forward", "out_interface": "wg0", "established": False,
          "allow": [{"proto": "tcp", "port": 80, "destinations": ["10.7.0.2"]}], "policy": "continue",
          "log_accepted": True}


def test_log_accepted_and_continue_render_a_set_that_only_accepts_and_logs():
    """A proxy's access log: forwarded to wg0 from any interface, each allowed new connection logged
    before it is accepted, and no verdict for the rest (no final rule: it returns to FORWARD)."""
    tag = TAG % "access"
    chain, v4 = render_iptables_lines(fset(ACCESS), 4)
    assert v4 == [
        '-A WGSP-ACCESS-FLT -d 10.7.0.2/32 -p tcp -m tcp --dport 80 -m conntrack --ctstate NEW %s '
        '-j LOG --log-prefix "wgsp-access-new "' % tag,
        "-A WGSP-ACCESS-FLT -d 10.7.0.2/32 -p tcp -m tcp --dport 80 %s -j ACCEPT" % tag]
    assert render_iptables_lines(fset(ACCESS), 6)[1] == []
    assert render_nft_lines(fset(ACCESS)) == [
        'oifname "wg0" ip daddr 10.7.0.2 tcp dport 80 ct state new counter log prefix "wgsp-access-new " '
        'comment "wgsp-f:access"',
        'oifname "wg0" ip daddr 10.7.0.2 tcp dport 80 counter accept comment "wgsp-f:access"']
    runner = FakeRunner()
    rs = RuleSet(runner, "access", "iptables", which=which_all, kind="filter")
    assert rs.run([fset(ACCESS)])["changed"]
    tables = runner.fam[4].tables["filter"]
    assert tables["FORWARD"] == ["-A FORWARD -o wg0 %s -j WGSP-ACCESS-FLT" % tag] and tables[chain] == v4
    assert not rs.run([fset(ACCESS)])["changed"]
    # log (a policy log) means nothing with continue; the policy's own log stays for drop/reject
    assert render_iptables_lines(fset(dict(ACCESS, log=True)), 4)[1] == v4


@pytest.mark.parametrize("change,field", [
    ({"allow": [{"proto": "icmp", "port": 8}]}, "allow[0].port"),
    # ansible-core's ArgumentSpecValidator judges the suboptions first, as the module does
    ({"allow": [{"proto": "icmpx"}]}, "wg_filter"),
    ({"allow": [{"port": 0}]}, "allow[0].port"),
    ({"allow": [{"port": 65536}]}, "allow[0].port"),
    ({"allow": [{"port": "90-80"}]}, "allow[0].port"),
    ({"allow": [{"port": "$(reboot)"}]}, "allow[0].port"),
    ({"allow": [{"sources": ["10.7.0.0/40"]}]}, "allow[0].sources[0]"),
    ({"allow": [{"destinations": ["10.7.0.2;"]}]}, "allow[0].destinations[0]"),
    ({"allow": [{"sources": ["10.7.0.3"], "destinations": ["fd00::2"]}]}, "allow[0]"),
    ({"allow": [{"bogus": 1}]}, "wg_filter"),
    ({"in_interface": "wg0\n-A INPUT -j ACCEPT"}, "in_interface"),
    ({"in_interface": "w g0"}, "in_interface"),
    ({"in_interface": "x" * 16}, "in_interface"),
    ({"in_interface": None}, "in_interface"),
    ({"in_interface": None, "hook": "input", "out_interface": "wg0"}, "out_interface"),
    ({"in_interface": None, "hook": "forward"}, "in_interface"),
    ({"policy": "return"}, "wg_filter"),
    ({"out_interface": "wg0"}, "out_interface"),
    ({"name": "Bad-Name"}, "name"),
    ({"name": "a" * 13}, "name"),
    ({"persist_path": "/etc/x y"}, "persist_path"),
])
def test_bad_input_names_the_field(change, field):
    params = dict(SHARE, **change)
    with pytest.raises(ValidationError) as info:
        filter_rules(module_params("wg_filter", params))
    assert info.value.field == field


def test_pipeline_create_idempotent_absent_and_others_untouched():
    runner = FakeRunner()
    t = runner.fam[4].tables["filter"]
    t["INPUT"] = ["-A INPUT -i eth0 -p tcp -m tcp --dport 22 -j ACCEPT"]
    rs = RuleSet(runner, "input", "iptables", which=which_all, kind="filter")
    check = rs.run(filter_rules(module_params("wg_filter", SHARE)), check_mode=True)
    assert check["changed"] and runner.writes() == []
    first = rs.run(filter_rules(module_params("wg_filter", SHARE)))
    assert first["changed"] and first["applied"]
    assert t["INPUT"] == ['-A INPUT -i wg0 -m comment --comment "wgsp-f:input" -j WGSP-INPUT-IN',
                          "-A INPUT -i eth0 -p tcp -m tcp --dport 22 -j ACCEPT"]
    assert t["WGSP-INPUT-IN"][-1].endswith("-j REJECT --reject-with icmp-port-unreachable")
    runner.calls = []
    assert not rs.run(filter_rules(module_params("wg_filter", SHARE)))["changed"] and runner.writes() == []
    # hook input -> forward moves the set: old chain and jump go
    moved = rs.run(filter_rules(module_params("wg_filter", dict(SHARE, hook="forward", out_interface="wg1"))))
    assert "WGSP-INPUT-IN" not in t and "WGSP-INPUT-FLT" in t
    assert moved["changed"] and t["FORWARD"] == ['-A FORWARD -i wg0 -o wg1 -m comment --comment "wgsp-f:input" -j WGSP-INPUT-FLT']
    rs.run([], state="absent")
    assert t["INPUT"] == ["-A INPUT -i eth0 -p tcp -m tcp --dport 22 -j ACCEPT"] and t["FORWARD"] == []
    assert sorted(t) == ["FORWARD", "INPUT", "OUTPUT"]


def test_forward_jump_goes_to_docker_user():
    runner = FakeRunner()
    runner.fam[4].tables["filter"]["DOCKER-USER"] = ["-A DOCKER-USER -j RETURN"]
    RuleSet(runner, "isolate", "iptables", which=which_all, kind="filter").run(filter_rules(module_params("wg_filter", HUB)))
    assert runner.fam[4].tables["filter"]["DOCKER-USER"][0] == (
        '-A DOCKER-USER -i wg0 -o wg0 -m comment --comment "wgsp-f:isolate" -j WGSP-ISOLATE-FLT')


def test_no_collision_with_a_dnat_set_of_the_same_name():
    runner = FakeRunner()
    dnat = RuleSet(runner, "pub", "iptables", which=which_all)
    filt = RuleSet(runner, "pub", "iptables", which=which_all, kind="filter")
    dnat_rules = normalise([{"port": 80, "to_address": "10.7.0.2"}], defaults={"in_interface": "wg0"})
    filter_set = filter_rules(module_params("wg_filter", dict(HUB, name="pub")))
    dnat.run(dnat_rules)
    filt.run(filter_set)
    runner.calls = []
    assert not dnat.run(dnat_rules)["changed"] and not filt.run(filter_set)["changed"]
    filt.run([], state="absent")
    assert not dnat.run(dnat_rules)["changed"]
    assert "WGSP-PUB-FWD" in runner.fam[4].tables["filter"] and "WGSP-PUB-FLT" not in runner.fam[4].tables["filter"]


def test_status_and_persist_for_wg_filter(tmp_path):
    runner = FakeRunner()
    rs = RuleSet(runner, "isolate", "iptables", which=which_all, kind="filter")
    rs.run(filter_rules(module_params("wg_filter", HUB)))
    status = rule_set_status("wg_filter", HUB, runner, which=which_all)
    assert status["in_sync"] and status["module"] == "wg_filter" and status["containers"] == []
    runner.fam[4].tables["filter"]["WGSP-ISOLATE-FLT"].pop(1)
    status = rule_set_status("wg_filter", HUB, runner, which=which_all)
    assert not status["in_sync"] and len(status["drift"]["missing"]) == 1 and "--dport 80" in status["drift"]["missing"][0]
    path = str(tmp_path / "isolate.rules")
    persist_rule_set("wg_filter", rs, path, "present")
    text = open(path).read()
    assert ":WGSP-ISOLATE-FLT - [0:0]" in text and "wg_filter" in text
    assert ('iptables -w -t filter -C "$fwd" -i wg0 -o wg0 -m comment --comment wgsp-f:isolate -j WGSP-ISOLATE-FLT'
            in text)


# `nft list table inet wgsp-filter-input` after loading SHARE's table, as nft 1.1.3 (Debian 13) prints it:
# the log rule's packet limit shows nft's default burst, which nft 1.0.6 (Debian 12) leaves out.
NFT_1_1_LISTING = (
    'table inet wgsp-filter-input {\n'
    '\tcomment "wgsp-f:input"\n'
    '\tchain input {\n'
    '\t\ttype filter hook input priority filter; policy accept;\n'
    '\t\tiifname "wg0" ct state established,related counter packets 0 bytes 0 accept comment "wgsp-f:input"\n'
    '\t\tiifname "wg0" tcp dport 22 counter packets 0 bytes 0 accept comment "wgsp-f:input"\n'
    '\t\tiifname "wg0" meta l4proto icmp counter packets 0 bytes 0 accept comment "wgsp-f:input"\n'
    '\t\tiifname "wg0" meta l4proto ipv6-icmp counter packets 0 bytes 0 accept comment "wgsp-f:input"\n'
    '\t\tiifname "wg0" limit rate 5/minute burst 5 packets log prefix "wgsp-input " comment "wgsp-f:input"\n'
    '\t\tiifname "wg0" counter packets 0 bytes 0 reject comment "wgsp-f:input"\n'
    '\t}\n'
    '}\n'
)


def test_nft_1_1_listing_reads_back_as_rendered():
    _headers, rules, comment = parse_table(NFT_1_1_LISTING)
    assert comment == "wgsp-f:input"
    assert [line for _chain, line, _counters in rules] == render_nft_lines(fset(SHARE))
    # only nft's default burst is dropped: another burst, or one on a byte limit, is a different rule
    for kept in ('limit rate 5/minute burst 6 packets log', 'limit rate over 5/minute burst 50 packets drop',
                 'limit rate 1 mbytes/second burst 5 mbytes accept'):
        text = NFT_1_1_LISTING.replace('limit rate 5/minute burst 5 packets log', kept)
        assert kept in [line for _c, line, _n in parse_table(text)[1]][4]


class FakeNft:
    """`nft` that lists what was loaded the way nft 1.0 or nft 1.1 prints it."""

    def __init__(self, version):
        self.version = version
        self.table = None
        self.calls = []

    def run(self, argv, data=None, check=True):
        self.calls.append(list(argv))
        if argv[:2] == ["nft", "list"] or argv[:3] == ["nft", "-a", "list"]:
            if self.table is None or argv[-1] != "wgsp-filter-input":
                return 1, "", "Error: No such file or directory"
            return 0, self.table, ""
        if argv[:2] == ["nft", "-c"]:
            return 0, "", ""
        if argv[:2] == ["nft", "-f"]:
            body = data.split("delete table inet wgsp-filter-input\n", 1)[1] if "\tcomment" in data else ""
            listing = body.replace("counter ", "counter packets 0 bytes 0 ")
            if self.version == "1.1":
                listing = listing.replace("limit rate 5/minute ", "limit rate 5/minute burst 5 packets ")
            self.table = listing or None
            return 0, "", ""
        if argv[0] in ("iptables-save", "ip6tables-save"):  # the other backend holds nothing of the set
            return 0, "*filter\n:INPUT ACCEPT [0:0]\nCOMMIT\n", ""
        raise AssertionError(argv)


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_nft_pipeline_with_a_log_rule_is_idempotent_on_nft_1_0_and_1_1(version):
    runner = FakeNft(version)
    params = dict(SHARE, backend="nftables")
    rs = RuleSet(runner, "input", "nftables", which=which_all, kind="filter")
    first = rs.run(filter_rules(module_params("wg_filter", params)))
    assert first["changed"] and first["applied"]
    assert ("burst 5 packets" in runner.table) is (version == "1.1")
    runner.calls = []
    again = rs.run(filter_rules(module_params("wg_filter", params)))
    assert again["changed"] is False and again["plan"] == []
    assert [c for c in runner.calls if c[0] == "nft" and "list" not in c[:3]] == []
    assert rule_set_status("wg_filter", params, runner, which=which_all)["in_sync"]
