"""iptables backend: rendering, parsing iptables-save, planning and the restore transaction.

The command boundary is a fake runner that serves ``iptables-save`` text and records every call;
the "kernel" state is the save text, updated by applying restore payloads with a tiny interpreter.
"""

import pytest

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import CommandError
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.backend import RuleSet, drift
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.iptables import (
    IptablesBackend,
    parse_mapping,
    parse_save,
    render_rule_lines,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.rules import normalise

BUILTIN = {"nat": ["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"], "filter": ["INPUT", "FORWARD", "OUTPUT"]}


class FakeTables:
    """Minimal iptables model: chains with ordered rules; understands restore payloads we emit."""

    def __init__(self):
        self.tables = {t: dict((c, []) for c in chains) for t, chains in BUILTIN.items()}

    def save(self):
        out = []
        for table in ("filter", "nat"):
            out.append("*%s" % table)
            for chain in sorted(self.tables[table], key=lambda c: (c not in BUILTIN[table], c)):
                out.append(":%s %s [0:0]" % (chain, "ACCEPT" if chain in BUILTIN[table] else "-"))
            for chain in sorted(self.tables[table], key=lambda c: (c not in BUILTIN[table], c)):
                out.extend("[3:180] %s" % line for line in self.tables[table][chain])
            out.append("COMMIT")
        return "\n".join(out) + "\n"

    def restore(self, payload):
        table = None
        for line in payload.splitlines():
            if line.startswith("*"):
                table = self.tables[line[1:]]
            elif line.startswith(":"):
                table[line[1:].split()[0]] = []
            elif line.startswith("-A "):
                chain = line.split()[1]
                table[chain].append(line)
            elif line.startswith("-I "):
                _i, chain, pos, rest = line.split(None, 3)
                table[chain].insert(int(pos) - 1, "-A %s %s" % (chain, rest))
            elif line.startswith("-D "):
                _d, chain, rest = line.split(None, 2)
                table[chain].remove("-A %s %s" % (chain, rest))
            elif line.startswith("-X "):
                del table[line.split()[1]]


def addr_show(argv):
    """``ip -j -4|-6 addr show dev IF``: one address of that family on the interface."""
    fam = "inet" if argv[2] == "-4" else "inet6"
    addr = "192.0.2.1" if fam == "inet" else "fd00:1::1"
    return 0, '[{"ifname": "%s", "addr_info": [{"family": "%s", "local": "%s", "prefixlen": 24}]}]' % (
        argv[-1], fam, addr), ""


class FakeRunner:
    def __init__(self, v6=False):
        self.calls = []
        self.fam = {4: FakeTables(), 6: FakeTables()}
        self.fail_test = False

    def run(self, argv, data=None, check=True):
        self.calls.append((list(argv), data))
        family = 6 if argv[0].startswith("ip6") else 4
        if argv[0].endswith("-save"):
            return 0, self.fam[family].save(), ""
        if argv[0].endswith("-restore"):
            if "--test" in argv:
                if self.fail_test:
                    raise CommandError("restore failed", argv, 2, "", "line 3 failed")
                return 0, "", ""
            self.fam[family].restore(data)
            return 0, "", ""
        if argv[0] == "nft":
            return 1, "", "Error: No such file or directory"
        if argv[0] == "conntrack":
            return 1, "", "0 flow entries"
        if argv[0] == "ip" and argv[-2:-1] == ["dev"]:
            return addr_show(argv)
        raise AssertionError(argv)

    def writes(self):
        return [argv for argv, _d in self.calls if argv[0].endswith("-restore") or argv[0] in ("nft", "conntrack")
                and "list" not in argv]


def which_all(tool):
    return "/usr/sbin/" + tool


def which_no_nft(tool):
    return None if tool == "nft" else "/usr/sbin/" + tool


def rules(*raw, **defaults):
    return normalise(list(raw), defaults=defaults)


PUBLIC = dict(in_interface="eth0", out_interface="wg0", masquerade=True, sources=["203.0.113.0/24"])


def test_render_rule_lines_exact():
    (rule,) = rules({"port": 80, "to_address": "10.7.0.2"}, **PUBLIC)
    out = render_rule_lines("pub", rule)
    tag = '-m comment --comment "wgsp:pub"'
    assert out["PRE"] == ["-A WGSP-PUB-PRE -i eth0 -p tcp -m tcp --dport 80 %s -j DNAT --to-destination 10.7.0.2" % tag]
    assert out["FWD"] == [
        "-A WGSP-PUB-FWD -s 203.0.113.0/24 -d 10.7.0.2/32 -i eth0 -o wg0 -p tcp -m tcp --dport 80 "
        "-m conntrack --ctstate DNAT --ctorigdstport 80 %s -j ACCEPT" % tag,
        "-A WGSP-PUB-FWD -s 10.7.0.2/32 -i wg0 -o eth0 -p tcp -m tcp --sport 80 "
        "-m conntrack --ctstate DNAT --ctdir REPLY %s -j ACCEPT" % tag,
        "-A WGSP-PUB-FWD -d 10.7.0.2/32 -i eth0 -p tcp -m tcp --dport 80 "
        "-m conntrack --ctstate DNAT --ctorigdstport 80 %s -j REJECT --reject-with icmp-port-unreachable" % tag,
    ]
    assert out["POST"] == [
        "-A WGSP-PUB-POST -d 10.7.0.2/32 -o wg0 -p tcp -m tcp --dport 80 "
        "-m conntrack --ctstate DNAT --ctorigdstport 80 %s -j MASQUERADE" % tag]


def test_render_ipv6_range_and_port_change():
    (v6,) = rules({"proto": "udp", "port": 53, "to_address": "fd00:7::2", "to_port": 5353})
    assert v6.family == 6
    pre = render_rule_lines("s", v6)["PRE"]
    assert pre == ['-A WGSP-S-PRE -p udp -m udp --dport 53 -m comment --comment "wgsp:s" -j DNAT --to-destination [fd00:7::2]:5353']
    (rng,) = rules({"proto": "both", "port": "5000-5010", "to_address": "10.7.0.2", "log": True})
    pre = render_rule_lines("s", rng)["PRE"]
    assert len(pre) == 4 and "--dport 5000:5010" in pre[1] and pre[1].endswith("--to-destination 10.7.0.2")
    assert '-j LOG --log-prefix "wgsp-s "' in pre[0]


def test_a_remapped_range_goes_port_by_port_and_reads_back():
    """30000-30010 to 40000-40010: DNAT revision 2's /base shift, as iptables-save prints it."""
    (v4, v6) = rules({"proto": "udp", "port": "30000-30010", "to_address": "10.7.0.2", "to_port": "40000-40010"},
                     {"proto": "udp", "port": "30000-30010", "to_address": "fd00:7::2", "to_port": "40000-40010"})
    assert v4.to_dict()["to_port"] == "40000-40010"
    for rule, dest in ((v4, "10.7.0.2:40000-40010/30000"), (v6, "[fd00:7::2]:40000-40010/30000")):
        pre = render_rule_lines("s", rule)["PRE"]
        assert pre == ['-A WGSP-S-PRE -p udp -m udp --dport 30000:30010 -m comment --comment "wgsp:s" '
                       '-j DNAT --to-destination %s' % dest]
        assert parse_mapping(pre[0], rule.family) == (rule.family, "udp", None, (30000, 30010), rule.to_address,
                                                      (40000, 40010))
        fwd = render_rule_lines("s", rule)["FWD"]
        assert "--dport 40000:40010 -m conntrack --ctstate DNAT --ctorigdstport 30000:30010" in fwd[0]


def test_parse_save_and_mapping():
    text = ("# c\n*nat\n:PREROUTING ACCEPT [1:2]\n:WGSP-S-PRE - [0:0]\n"
            "[5:300] -A WGSP-S-PRE -i eth0 -p tcp -m tcp --dport 80 -m comment --comment \"wgsp:s\" -j DNAT --to-destination 10.7.0.2:8080\n"
            "COMMIT\n")
    tables = parse_save(text)
    assert tables["nat"]["chains"] == {"PREROUTING": "ACCEPT", "WGSP-S-PRE": "-"}
    chain, line, counters = tables["nat"]["rules"][0]
    assert chain == "WGSP-S-PRE" and counters == (5, 300)
    assert parse_mapping(line, 4) == (4, "tcp", "eth0", (80, 80), "10.7.0.2", (8080, 8080))
    assert parse_mapping("-A X -p udp -m udp --dport 1:5 -j DNAT --to-destination [fd00::2]", 6) == \
        (6, "udp", None, (1, 5), "fd00::2", (1, 5))


def test_create_then_idempotent_without_any_write():
    runner = FakeRunner()
    rs = RuleSet(runner, "pub", "iptables", which=which_all)
    desired = rules({"port": 80, "to_address": "10.7.0.2"}, {"proto": "udp", "port": "5000-5002", "to_address": "10.7.0.2"}, **PUBLIC)
    first = rs.run(desired)
    assert first["changed"] and first["applied"]
    restores = [c for c in runner.calls if c[0][0] == "iptables-restore"]
    assert [c[0] for c in restores] == [["iptables-restore", "-w", "--noflush", "--test"], ["iptables-restore", "-w", "--noflush"]]
    payload = restores[0][1]
    assert payload.count("COMMIT") == 2 and ":WGSP-PUB-PRE - [0:0]" in payload
    assert '-I PREROUTING 1 -m comment --comment "wgsp:pub" -j WGSP-PUB-PRE' in payload
    assert '-I FORWARD 1 -m comment --comment "wgsp:pub" -j WGSP-PUB-FWD' in payload
    runner.calls = []
    second = rs.run(desired)
    assert not second["changed"] and second["plan"] == []
    assert runner.writes() == []


def test_check_mode_plans_and_writes_nothing():
    runner = FakeRunner()
    rs = RuleSet(runner, "pub", "iptables", which=which_all)
    result = rs.run(rules({"port": 80, "to_address": "10.7.0.2"}), check_mode=True)
    assert result["changed"] and not result["applied"] and result["plan"]
    assert runner.writes() == []


def test_foreign_rules_untouched_jump_restored_and_docker_user():
    runner = FakeRunner()
    t = runner.fam[4].tables
    t["filter"]["DOCKER-USER"] = ["-A DOCKER-USER -j RETURN"]
    t["filter"]["FORWARD"] = ["-A FORWARD -j DOCKER-USER", "-A FORWARD -i br0 -j ACCEPT"]
    t["nat"]["PREROUTING"] = ["-A PREROUTING -p tcp -m tcp --dport 22 -j DNAT --to-destination 10.0.0.9"]
    rs = RuleSet(runner, "pub", "iptables", which=which_all)
    desired = rules({"port": 80, "to_address": "10.7.0.2"}, **PUBLIC)
    rs.run(desired)
    assert t["filter"]["DOCKER-USER"] == ['-A DOCKER-USER -m comment --comment "wgsp:pub" -j WGSP-PUB-FWD', "-A DOCKER-USER -j RETURN"]
    assert t["filter"]["FORWARD"] == ["-A FORWARD -j DOCKER-USER", "-A FORWARD -i br0 -j ACCEPT"]
    assert t["nat"]["PREROUTING"][1] == "-A PREROUTING -p tcp -m tcp --dport 22 -j DNAT --to-destination 10.0.0.9"
    # the jump deleted by hand comes back, nothing else is rewritten
    t["nat"]["PREROUTING"].pop(0)
    runner.calls = []
    result = rs.run(desired)
    assert result["changed"] and result["plan"] == ['ipv4 nat: insert jump PREROUTING -m comment --comment "wgsp:pub" -j WGSP-PUB-PRE']
    payload = [d for a, d in runner.calls if a[0] == "iptables-restore"][0]
    assert payload == '*nat\n-I PREROUTING 1 -m comment --comment "wgsp:pub" -j WGSP-PUB-PRE\nCOMMIT\n'


def test_jump_moves_to_docker_user_when_docker_appears():
    runner = FakeRunner()
    rs = RuleSet(runner, "pub", "iptables", which=which_all)
    desired = rules({"port": 80, "to_address": "10.7.0.2"})
    rs.run(desired)
    runner.fam[4].tables["filter"]["DOCKER-USER"] = []
    result = rs.run(desired)
    assert sorted(result["plan"]) == sorted([
        'ipv4 filter: insert jump DOCKER-USER -m comment --comment "wgsp:pub" -j WGSP-PUB-FWD',
        'ipv4 filter: delete jump FORWARD -m comment --comment "wgsp:pub" -j WGSP-PUB-FWD'])
    assert runner.fam[4].tables["filter"]["FORWARD"] == []


def test_remove_rule_flushes_conntrack_and_absent_removes_everything():
    runner = FakeRunner()
    rs = RuleSet(runner, "pub", "iptables", which=which_all)
    rs.run(rules({"port": 80, "to_address": "10.7.0.2"}, {"proto": "udp", "port": 53, "to_address": "10.7.0.2"}))
    runner.calls = []
    result = rs.run(rules({"port": 80, "to_address": "10.7.0.2"}))
    assert result["stale"] == [(4, "udp", None, (53, 53), "10.7.0.2", (53, 53))]
    assert result["conntrack"] == [["conntrack", "-D", "-f", "ipv4", "-p", "udp", "--orig-port-dst", "53", "--dst-nat", "10.7.0.2"]]
    assert not any("--dport 53" in line for line in runner.fam[4].tables["nat"]["WGSP-PUB-PRE"])
    result = rs.run([], state="absent")
    assert result["changed"]
    for table in ("nat", "filter"):
        assert sorted(runner.fam[4].tables[table]) == sorted(BUILTIN[table])
        assert all(not v for v in runner.fam[4].tables[table].values())


def test_ipv6_is_its_own_transaction():
    runner = FakeRunner()
    rs = RuleSet(runner, "pub", "iptables", which=which_all)
    rs.run(rules({"port": 80, "to_address": "10.7.0.2"}, {"port": 81, "to_address": "fd00:7::2"}))
    tools = [a[0] for a, _d in runner.calls if a[0].endswith("-restore")]
    assert tools == ["iptables-restore", "ip6tables-restore", "iptables-restore", "ip6tables-restore"]
    assert runner.fam[6].tables["nat"]["WGSP-PUB-PRE"][0].endswith("--to-destination fd00:7::2")


def test_failed_validation_applies_nothing():
    runner = FakeRunner()
    runner.fail_test = True
    rs = RuleSet(runner, "pub", "iptables", which=which_all)
    before = runner.fam[4].save()
    with pytest.raises(CommandError):
        rs.run(rules({"port": 80, "to_address": "10.7.0.2"}))
    assert runner.fam[4].save() == before
    assert [a for a, _d in runner.calls if a[0] == "iptables-restore" and "--test" not in a] == []


def test_drift_reports_missing_extra_and_jumps():
    runner = FakeRunner()
    backend = IptablesBackend(runner, which=which_all)
    rs = RuleSet(runner, "pub", "iptables", which=which_all)
    desired_rules = rules({"port": 80, "to_address": "10.7.0.2"})
    rs.run(desired_rules)
    t = runner.fam[4].tables
    t["nat"]["PREROUTING"] = []
    t["nat"]["WGSP-PUB-PRE"].append("-A WGSP-PUB-PRE -j ACCEPT")
    installed = backend.installed("pub")
    report = drift(installed, backend.render("pub", desired_rules, installed))
    assert not report["in_sync"]
    assert report["extra"] == ["ipv4 nat WGSP-PUB-PRE: -A WGSP-PUB-PRE -j ACCEPT"]
    assert report["missing_jumps"] == ['ipv4 nat PREROUTING: -A PREROUTING -m comment --comment "wgsp:pub" -j WGSP-PUB-PRE']
    assert installed.rules_with_counters()[0]["packets"] == 3


def test_auto_selects_iptables_with_docker_or_without_nft():
    from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.backend import select_backend

    runner = FakeRunner()
    assert select_backend("auto", runner, which=which_all)[0].name == "nftables"
    assert select_backend("auto", runner, which=which_no_nft)[0].name == "iptables"
    runner.fam[4].tables["nat"]["DOCKER"] = []
    assert select_backend("auto", runner, which=which_all)[0].name == "iptables"


def test_foreign_jumps_are_kept_and_a_chain_they_target_is_not_deleted():
    from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import WgspError

    runner = FakeRunner()
    rs = RuleSet(runner, "pub", "iptables", which=which_all)
    desired = rules({"port": 80, "to_address": "10.7.0.2"})
    rs.run(desired)
    t = runner.fam[4].tables
    t["filter"]["FORWARD"].append("-A FORWARD -i eth9 -g WGSP-PUB-FWD")
    t["nat"]["PREROUTING"].append("-A PREROUTING -i eth9 -j WGSP-PUB-PRE")
    runner.calls = []
    again = rs.run(desired)
    assert again["changed"] is False and runner.writes() == []
    installed = IptablesBackend(runner, which=which_all).installed("pub")
    assert installed.facts["foreign_jumps"] == [("ipv4 nat", "PREROUTING", "-A PREROUTING -i eth9 -j WGSP-PUB-PRE"),
                                                ("ipv4 filter", "FORWARD", "-A FORWARD -i eth9 -g WGSP-PUB-FWD")]
    before = runner.fam[4].save()
    with pytest.raises(WgspError) as err:
        rs.run([], state="absent", check_mode=True)
    assert "ipv4 filter: -A FORWARD -i eth9 -g WGSP-PUB-FWD" in err.value.msg and "WGSP-PUB-PRE" in err.value.msg
    with pytest.raises(WgspError):
        rs.run([], state="absent")
    assert runner.writes() == [] and runner.fam[4].save() == before


class CommitsPerTable(FakeRunner):
    """iptables-nft's restore: each ``*table`` commits on its own; the filter part fails once."""

    def __init__(self):
        super().__init__()
        self.fail_filter = False

    def run(self, argv, data=None, check=True):
        if argv[0].endswith("-restore") and "--test" not in argv and self.fail_filter and "*filter" in data:
            self.fail_filter = False
            self.calls.append((list(argv), data))
            nat = data.split("*filter")[0]
            self.fam[6 if argv[0].startswith("ip6") else 4].restore(nat)
            raise CommandError("%s failed with rc=4: CHAIN_DEL failed (Device or resource busy)" % argv[0],
                               argv, 4, "", "CHAIN_DEL failed (Device or resource busy)")
        return super().run(argv, data, check)


def test_a_failed_apply_rolls_back_the_committed_tables_with_jumps_in_place():
    runner = CommitsPerTable()
    rs = RuleSet(runner, "pub", "iptables", which=which_all)
    rs.run(rules({"port": 80, "to_address": "10.7.0.2"}, masquerade=True))
    t = runner.fam[4].tables
    t["nat"]["PREROUTING"].insert(0, "-A PREROUTING -i eth8 -j RETURN")
    before = runner.fam[4].save()
    runner.fail_filter = True
    with pytest.raises(CommandError) as err:
        rs.run([], state="absent")
    assert "rolled back" in err.value.msg and "CHAIN_DEL failed" in err.value.msg
    assert runner.fam[4].save() == before
    assert t["nat"]["PREROUTING"][1] == '-A PREROUTING -m comment --comment "wgsp:pub" -j WGSP-PUB-PRE'
