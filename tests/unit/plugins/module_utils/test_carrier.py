"""wg_carrier's logic without root or netlink: what ``Carrier`` accepts and refuses (each error names
its field), the MAC of a tunnel address, the rules and routes each side wants, the share's firewall
lines on both backends, and ``plan()`` against a fake ``Netlink`` (create, in sync, a stale peer,
absent, a foreign device, strict reverse-path filtering)."""

import copy

import ipaddress

import pytest

from ansible_collections.wgsp.service_proxy.plugins.module_utils import _carrier
from ansible_collections.wgsp.service_proxy.plugins.module_utils._carrier import (
    ALIAS,
    ARGUMENT_SPEC,
    Carrier,
    carrier_mac,
    plan,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import ValidationError, WgspError
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.carrier import (
    CarrierMarks,
    render_iptables_lines,
    render_nft_lines,
)

SHARE, P1, P2 = "10.7.0.2", "10.7.0.3", "10.7.0.4"
MAC_SHARE, MAC_P1, MAC_P2 = "02:00:0a:07:00:02", "02:00:0a:07:00:03", "02:00:0a:07:00:04"
RP = "/proc/sys/net/ipv4/conf/%s/rp_filter"
FLOW_80 = {"in_interface": "eth1", "proto": "both", "port": 80, "to_address": SHARE}
FLOW_5300 = {"in_interface": "eth1", "proto": "udp", "port": "5300-5310", "to_address": SHARE}


def params(**overrides):
    """ARGUMENT_SPEC's defaults (suboptions too, as Ansible fills them), a share by default."""
    out = dict((key, copy.deepcopy(spec.get("default"))) for key, spec in ARGUMENT_SPEC.items())
    out.update(name="wg0c", interface="wg0", side="share", local=SHARE)
    out.update(overrides)
    for key, spec in ARGUMENT_SPEC.items():
        options = spec.get("options")
        if options and out.get(key):
            out[key] = [dict(dict((k, copy.deepcopy(v.get("default"))) for k, v in options.items()), **item)
                        for item in out[key]]
    return out


def share_params(**overrides):
    return params(**dict(dict(peers=[P1, P2], local_ports=[{"proto": "tcp", "port": 8080}]), **overrides))


def proxy_params(**overrides):
    return params(**dict(dict(side="proxy", local=P1, peers=[SHARE], flows=[FLOW_80, FLOW_5300]), **overrides))


def refused(field, **overrides):
    with pytest.raises(ValidationError) as info:
        Carrier(params(**overrides))
    assert info.value.field == field, info.value.msg
    assert info.value.msg.startswith(field + ": ")
    return info.value.msg


# -- validation ----------------------------------------------------------------------------


def test_defaults_are_accepted_for_both_sides():
    share = Carrier(share_params())
    assert (share.name, share.interface, share.port, share.vni, share.table, share.priority) == (
        "wg0c", "wg0", 4789, 7700, 5200, 5200)
    assert share.tables == (5200, 5200 + 1023) and share.mask == 0x3ff00000
    assert [p.to_dict() for p in share.peers] == [
        {"address": P1, "mac": MAC_P1, "mark": "0x300000", "table": 5203},
        {"address": P2, "mac": MAC_P2, "mark": "0x400000", "table": 5204}]
    assert share.local_ports == [("tcp", (8080, 8080))]
    proxy = Carrier(proxy_params())
    assert proxy.tables == (5200, 5200) and proxy.mac == MAC_P1
    assert [p.to_dict() for p in proxy.peers] == [{"address": SHARE, "mac": MAC_SHARE}]
    assert [f.to_dict() for f in proxy.flows] == [
        {"in_interface": "eth1", "proto": "both", "port": 80, "to_address": SHARE},
        {"in_interface": "eth1", "proto": "udp", "port": "5300-5310", "to_address": SHARE}]


def test_absent_needs_no_local_nor_peers():
    carrier = Carrier(params(state="absent", local=None, peers=[]))
    assert carrier.local is None and carrier.peers == [] and carrier.flows == []


@pytest.mark.parametrize("field, overrides, words", [
    ("peers[1]", dict(peers=[P1, "10.7.0.x"]), "not a valid"),
    ("peers[0]", dict(peers=["fd00::3"]), "IPv4"),
    ("peers[1]", dict(peers=[P1, P1]), "listed twice"),
    ("peers[0]", dict(peers=[SHARE]), "own address"),
    ("peers[0]", dict(peers=["224.0.0.1"]), "unicast"),
    # 10.7.4.3 ends in the same 10 bits as 10.7.0.3 (0x403 & 0x3ff == 3)
    ("peers[1]", dict(peers=[P1, "10.7.4.3"]), "share their last 10 bits"),
    # 10.7.4.0: 0x400 & 0x3ff == 0, whose mark would be no mark
    ("peers[0]", dict(peers=["10.7.4.0"]), "ends in 0"),
    ("local", dict(local=None), "required"),
    ("local", dict(local="fd00::2"), "IPv4"),
    ("local", dict(local="127.0.0.1"), "unicast"),
    ("name", dict(name="wg0"), "must differ from interface"),
    ("name", dict(name="a-name-far-too-long"), ""),
    ("interface", dict(interface="wg+"), "'+'"),
    ("mark_mask", dict(mark_mask="0x5"), "contiguous"),
    ("mark_mask", dict(mark_mask="0x100000"), "at least 2 bits"),
    ("mark_mask", dict(mark_mask="0"), "non-zero"),
    ("mark_mask", dict(mark_mask="0x1ffffffff"), "32-bit"),
    ("mark_mask", dict(mark_mask="many"), "mark mask"),
    # a share's tables run from table to table + 1023 with the default mask: 100-1123 holds 253-255
    ("table", dict(table=100), "253"),
    ("table", dict(table=0), "between"),
    ("priority", dict(priority=32766), "between"),
    ("port", dict(port=0), "between"),
    ("vni", dict(vni=16777216), "between"),
    ("mtu", dict(mtu=100), "between"),
    ("rule_set", dict(rule_set="Bad-Name"), "a-z 0-9 _"),
    ("flows", dict(flows=[FLOW_80]), "side=proxy"),
])
def test_share_refusals_name_the_field(field, overrides, words):
    assert words in refused(field, **overrides)


@pytest.mark.parametrize("field, overrides, words", [
    ("local_ports", dict(local_ports=[{"proto": "tcp", "port": 8080}]), "side=share"),
    ("flows[0].to_address", dict(flows=[dict(FLOW_80, to_address="10.7.0.9")]), "not one of peers"),
    ("flows[0].to_address", dict(flows=[dict(FLOW_80, to_address="fd00::2")]), "IPv4"),
    ("flows[1].to_address", dict(flows=[FLOW_80, dict(FLOW_80, port=81, to_address="")]), ""),
    ("flows[0].in_interface", dict(flows=[dict(FLOW_80, in_interface="wg0c")]), "not wg0c"),
    ("flows[0].in_interface", dict(flows=[dict(FLOW_80, in_interface="wg0")]), "not wg0"),
    ("flows[0].port", dict(flows=[dict(FLOW_80, port="90-80")]), "reversed"),
    ("flows[0].port", dict(flows=[dict(FLOW_80, port=70000)]), "between"),
    ("flows[0].proto", dict(flows=[dict(FLOW_80, proto="icmp")]), "tcp, udp or both"),
    ("flows[1].port", dict(flows=[FLOW_80, dict(FLOW_80, proto="tcp", port="70-80")]), "overlaps flows[0]"),
    ("peers[0]", dict(peers=["fd00::2"]), "IPv4"),
    ("table", dict(table=254), "254"),
])
def test_proxy_refusals_name_the_field(field, overrides, words):
    base = dict(side="proxy", local=P1, peers=[SHARE], flows=[])
    assert words in refused(field, **dict(base, **overrides))


def test_share_local_ports_are_checked_and_deduplicated():
    assert refused("local_ports[1].port", peers=[P1], local_ports=[{"port": 22}, {"port": "x"}])
    assert refused("local_ports[0].proto", peers=[P1], local_ports=[{"proto": "sctp", "port": 22}])
    carrier = Carrier(share_params(local_ports=[{"proto": "both", "port": 53}, {"proto": "udp", "port": 53},
                                                {"port": "6000-6010"}]))
    assert carrier.local_ports == [("tcp", (53, 53)), ("udp", (53, 53)), ("tcp", (6000, 6010))]


def test_a_proxy_may_use_the_peers_low_bits_and_one_table():
    """Only a share marks by the peer's last bits: a proxy's peers may share them, and its one table
    may sit just below the reserved ones."""
    carrier = Carrier(params(side="proxy", local=P1, peers=[SHARE, "10.7.4.2", "10.7.4.0"], table=252))
    assert carrier.tables == (252, 252) and all(p.mark is None for p in carrier.peers)


def test_a_narrower_mask_gives_other_marks_and_tables():
    carrier = Carrier(share_params(mark_mask="0x30", table=7000, peers=[P1, "10.7.0.5"]))
    assert carrier.tables == (7000, 7003) and carrier.shift == 4
    assert [(p.mark, p.table) for p in carrier.peers] == [(0x30, 7003), (0x10, 7001)]
    # 10.7.0.4 ends in 00 in the mask's two bits
    with pytest.raises(ValidationError) as info:
        Carrier(share_params(mark_mask="0x30", peers=[P1, P2]))
    assert info.value.field == "peers[1]"


# -- MAC -----------------------------------------------------------------------------------


def test_carrier_mac_is_02_00_and_the_address_bytes():
    assert carrier_mac(SHARE) == MAC_SHARE
    assert carrier_mac("192.0.2.255") == "02:00:c0:00:02:ff"
    assert carrier_mac("255.1.16.0") == "02:00:ff:01:10:00"
    assert Carrier(share_params()).mac == MAC_SHARE


# -- rules and routes ----------------------------------------------------------------------


def test_proxy_rules_and_routes():
    carrier = Carrier(proxy_params())
    assert [r.render() for r in carrier.wanted_rules()] == [
        "5200: from all to 10.7.0.2/32 iif eth1 ipproto tcp dport 80 lookup 5200 proto 88",
        "5200: from all to 10.7.0.2/32 iif eth1 ipproto udp dport 80 lookup 5200 proto 88",
        "5200: from all to 10.7.0.2/32 iif eth1 ipproto udp dport 5300-5310 lookup 5200 proto 88",
        "5200: from all iif wg0c lookup 5200 proto 88",
    ]
    assert [r.render() for r in carrier.wanted_routes()] == ["10.7.0.2/32 dev wg0c table 5200 proto 88"]
    args = carrier.wanted_rules()[2].args()
    assert args["dport_range"] == "5300:5310" and args["ip_proto"] == 17 and args["iifname"] == "eth1"
    assert (args["dst"], args["dst_len"], args["table"], args["priority"], args["protocol"]) == (
        SHARE, 32, 5200, 5200, 88)
    # a proxy without flows sends nothing into the carrier
    bare = Carrier(proxy_params(flows=[]))
    assert bare.wanted_rules() == [] and bare.wanted_routes() == [] and bare.marks() is None


def test_share_rules_and_routes():
    carrier = Carrier(share_params())
    assert [r.render() for r in carrier.wanted_rules()] == [
        "5200: from all fwmark 0x300000/0x3ff00000 lookup 5203 proto 88",
        "5200: from all fwmark 0x400000/0x3ff00000 lookup 5204 proto 88",
        "32768: from all iif wg0c lookup 5200 proto 88",
        "32768: from 10.7.0.2/32 lookup 5200 proto 88",
    ]
    assert [r.render() for r in carrier.wanted_routes()] == [
        "default dev wg0c table 5200 proto 88",
        "default via 10.7.0.3 dev wg0c table 5203 proto 88 onlink",
        "10.7.0.3/32 dev wg0 table 5203 proto 88",
        "default via 10.7.0.4 dev wg0c table 5204 proto 88 onlink",
        "10.7.0.4/32 dev wg0 table 5204 proto 88",
    ]
    args = carrier.wanted_rules()[1].args()
    assert (args["fwmark"], args["fwmask"], args["table"]) == (0x400000, 0x3ff00000, 5204)
    bare = Carrier(share_params(peers=[]))
    assert bare.wanted_rules() == [] and bare.wanted_routes() == [] and bare.marks() is None


def test_ownership_is_the_table_range():
    share, proxy = Carrier(share_params()), Carrier(proxy_params())
    rule = _carrier.Rule(5200, 6223, iifname="x")
    assert share.in_tables(rule) and not proxy.in_tables(rule)
    assert not share.in_tables(_carrier.Rule(5200, 6224)) and not share.in_tables(_carrier.Rule(5200, 5199))
    assert proxy.owns_route(_carrier.Route(5200, "0.0.0.0/0", "wg0c"))
    assert not proxy.owns_route(_carrier.Route(5201, "0.0.0.0/0", "wg0c"))


# -- the share's firewall lines ------------------------------------------------------------

C = '-m comment --comment "wgsp-c:carrier"'
NC = 'comment "wgsp-c:carrier"'


def _marks():
    return Carrier(share_params(local_ports=[{"proto": "tcp", "port": 8080},
                                             {"proto": "udp", "port": "6000-6010"}])).marks()


def test_marks_of_a_share():
    marks = _marks()
    assert isinstance(marks, CarrierMarks)
    assert marks.to_dict() == {
        "device": "wg0c", "mask": "0x3ff00000",
        "peers": [{"mac": MAC_P1, "mark": "0x300000"}, {"mac": MAC_P2, "mark": "0x400000"}],
        "allow": [{"proto": "tcp", "port": "8080"}, {"proto": "udp", "port": "6000-6010"}]}
    assert Carrier(proxy_params()).marks() is None


def test_iptables_lines_of_a_two_peer_share():
    restore = "-j CONNMARK --restore-mark --nfmask 0x3ff00000 --ctmask 0x3ff00000"
    drop = "-m conntrack ! --ctstate DNAT %s -j DROP" % C
    assert render_iptables_lines("carrier", _marks()) == {
        "CPR": [
            "-A WGSP-CARRIER-CPR -i wg0c -m mac --mac-source %s %s -j CONNMARK --set-xmark 0x300000/0x3ff00000"
            % (MAC_P1, C),
            "-A WGSP-CARRIER-CPR -i wg0c -m mac --mac-source %s %s -j CONNMARK --set-xmark 0x400000/0x3ff00000"
            % (MAC_P2, C),
            "-A WGSP-CARRIER-CPR ! -i wg0c -m conntrack --ctdir REPLY %s %s" % (C, restore),
        ],
        "COU": ["-A WGSP-CARRIER-COU -m conntrack --ctdir REPLY %s %s" % (C, restore)],
        "CIN": [
            "-A WGSP-CARRIER-CIN -p tcp -m tcp --dport 8080 %s -j ACCEPT" % C,
            "-A WGSP-CARRIER-CIN -p udp -m udp --dport 6000:6010 %s -j ACCEPT" % C,
            "-A WGSP-CARRIER-CIN %s" % drop,
        ],
        "CFW": ["-A WGSP-CARRIER-CFW %s" % drop],
    }


def test_nft_lines_of_a_two_peer_share():
    restore3 = ("ct direction reply ct mark & 0x3ff00000 == 0x00300000 meta mark set meta mark & 0xc03fffff | 0x00300000 %s" % NC)
    restore4 = ("ct direction reply ct mark & 0x3ff00000 == 0x00400000 meta mark set meta mark & 0xc04fffff | 0x00400000 %s" % NC)
    drop = 'iifname "wg0c" ct status & dnat != dnat counter drop %s' % NC
    assert render_nft_lines("carrier", _marks()) == {
        "prerouting": [
            'iifname "wg0c" ether saddr %s ct mark set ct mark & 0xc03fffff | 0x00300000 %s' % (MAC_P1, NC),
            'iifname "wg0c" ether saddr %s ct mark set ct mark & 0xc04fffff | 0x00400000 %s' % (MAC_P2, NC),
            'iifname != "wg0c" ' + restore3,
            'iifname != "wg0c" ' + restore4,
        ],
        "output": [restore3, restore4],
        "input": [
            'iifname "wg0c" tcp dport 8080 counter accept %s' % NC,
            'iifname "wg0c" udp dport 6000-6010 counter accept %s' % NC,
            drop,
        ],
        "forward": [drop],
    }


def test_firewall_lines_touch_only_the_mask():
    """Every value the lines write keeps the bits outside the mask: (mark & ~mask) == 0, and nft's AND
    mask keeps every bit outside the mask."""
    marks = CarrierMarks("c0", 0x0000ff00, [("02:00:0a:07:00:05", 0x500)], [])
    nft = render_nft_lines("x", marks)
    assert nft["prerouting"][0].startswith('iifname "c0" ether saddr 02:00:0a:07:00:05 ct mark set ct mark '
                                           '& 0xffff05ff | 0x00000500')
    ipt = render_iptables_lines("x", marks)
    assert "--set-xmark 0x500/0xff00" in ipt["CPR"][0] and "--nfmask 0xff00 --ctmask 0xff00" in ipt["COU"][0]
    assert ipt["CIN"] == ['-A WGSP-X-CIN -m conntrack ! --ctstate DNAT -m comment --comment "wgsp-c:x" -j DROP']


# -- plan() against a fake Netlink ---------------------------------------------------------


def host_of(carrier):
    """The addresses of the host a carrier runs on: its own tunnel address (absent: none needed)."""
    return [(carrier.local, ipaddress.ip_network(carrier.local + "/32"))] if carrier.local else []


class FakeNetlink:
    """The reads ``plan()`` makes, from plain data: ``links`` {name: dict as ``Netlink.link`` returns},
    ``fdbs``/``neighs`` {index: {...}}, ``rules``/``routes`` lists of ``Rule``/``Route`` (protocol 88
    only, as ``Netlink`` reads them), ``sysctls`` {path: text}. Writing is not its business."""

    def __init__(self, links=None, fdbs=None, neighs=None, rules=(), routes=(), sysctls=None, addresses=None):
        self._links = links or {}
        self._addresses = list(addresses or [])  # the host's IPv4 addresses
        self._fdbs = fdbs or {}
        self._neighs = neighs or {}
        self._rules = list(rules)
        self._routes = list(routes)
        self.sysctls = dict(sysctls or {})
        self.route_names = None

    def index(self, name):
        link = self._links.get(name)
        return link["index"] if link else None

    def link(self, name):
        link = self._links.get(name)
        return dict(link) if link else None

    def fdb(self, index):
        return dict(self._fdbs.get(index, {}))

    def neighbours(self, index):
        return dict(self._neighs.get(index, {}))

    def rules(self):
        return list(self._rules)

    def routes(self, names):
        self.route_names = dict(names)
        return list(self._routes)

    def read_sysctl(self, path):
        return self.sysctls.get(path)

    def addresses(self):
        return list(self._addresses)


WG = {"index": 3, "kind": "wireguard", "alias": None, "mac": None, "mtu": 1420, "up": True}
LOOSE = {RP % "all": "0", RP % "default": "0"}


def carrier_link(carrier, mtu=1370, **changes):
    link = {"index": 9, "kind": "vxlan", "alias": ALIAS, "mac": carrier.mac, "mtu": mtu, "up": True,
            "vni": carrier.vni, "local": carrier.local, "port": carrier.port, "learning": 0}
    link.update(changes)
    return link


def in_sync(carrier, sysctls=None, **extra):
    """The kernel as a run of ``carrier`` leaves it."""
    sysctls = dict(LOOSE, **{RP % carrier.name: "0"}) if sysctls is None else sysctls
    return FakeNetlink(
        addresses=host_of(carrier),
        links={"wg0": WG, carrier.name: carrier_link(carrier)},
        fdbs={9: dict((p.mac, p.address) for p in carrier.peers)},
        neighs={9: dict((p.address, p.mac) for p in carrier.peers)},
        rules=carrier.wanted_rules() + list(extra.get("rules", ())),
        routes=carrier.wanted_routes() + list(extra.get("routes", ())),
        sysctls=sysctls)


def test_plan_fresh_share():
    carrier = Carrier(share_params())
    nl = FakeNetlink(addresses=host_of(carrier), links={"wg0": WG}, sysctls=LOOSE)
    result, before, after = plan(carrier, nl)
    assert result.actions == [
        "create device wg0c (vxlan id 7700 local 10.7.0.2 dstport 4789)",
        "add fdb 02:00:0a:07:00:03 dst 10.7.0.3",
        "add fdb 02:00:0a:07:00:04 dst 10.7.0.4",
        "add neigh 10.7.0.3 lladdr 02:00:0a:07:00:03",
        "add neigh 10.7.0.4 lladdr 02:00:0a:07:00:04",
        "add rule 5200: from all fwmark 0x300000/0x3ff00000 lookup 5203 proto 88",
        "add rule 5200: from all fwmark 0x400000/0x3ff00000 lookup 5204 proto 88",
        "add rule 32768: from all iif wg0c lookup 5200 proto 88",
        "add rule 32768: from 10.7.0.2/32 lookup 5200 proto 88",
        "add route default dev wg0c table 5200 proto 88",
        "add route default via 10.7.0.3 dev wg0c table 5203 proto 88 onlink",
        "add route 10.7.0.3/32 dev wg0 table 5203 proto 88",
        "add route default via 10.7.0.4 dev wg0c table 5204 proto 88 onlink",
        "add route 10.7.0.4/32 dev wg0 table 5204 proto 88",
    ]
    assert result.link == "create" and result.mtu == 1420 - 50 and result.sysctls == {}
    assert result.rules_del == [] and result.routes_del == [] and result.fdb_del == [] and result.neigh_del == []
    assert before == []
    assert after[0] == ("link wg0c vxlan id 7700 local 10.7.0.2 dstport 4789 learning 0 "
                        "address 02:00:0a:07:00:02 mtu 1370 up")
    assert "fdb 02:00:0a:07:00:04 dst 10.7.0.4 permanent" in after
    assert "neigh 10.7.0.3 lladdr 02:00:0a:07:00:03 permanent" in after
    assert "rule 32768: from all iif wg0c lookup 5200 proto 88" in after
    assert "route 10.7.0.4/32 dev wg0 table 5204 proto 88" in after
    assert nl.route_names == {3: "wg0"}


def test_plan_fresh_proxy_with_a_given_mtu():
    carrier = Carrier(proxy_params(mtu=1300))
    result, _before, _after = plan(carrier, FakeNetlink(addresses=host_of(carrier), links={"wg0": WG}, sysctls=LOOSE))
    assert result.actions == [
        "create device wg0c (vxlan id 7700 local 10.7.0.3 dstport 4789)",
        "add fdb 02:00:0a:07:00:02 dst 10.7.0.2",
        "add neigh 10.7.0.2 lladdr 02:00:0a:07:00:02",
        "add rule 5200: from all to 10.7.0.2/32 iif eth1 ipproto tcp dport 80 lookup 5200 proto 88",
        "add rule 5200: from all to 10.7.0.2/32 iif eth1 ipproto udp dport 80 lookup 5200 proto 88",
        "add rule 5200: from all to 10.7.0.2/32 iif eth1 ipproto udp dport 5300-5310 lookup 5200 proto 88",
        "add rule 5200: from all iif wg0c lookup 5200 proto 88",
        "add route 10.7.0.2/32 dev wg0c table 5200 proto 88",
    ]
    assert result.mtu == 1300


def test_plan_without_the_wireguard_interface():
    carrier = Carrier(share_params())
    with pytest.raises(WgspError) as info:
        plan(carrier, FakeNetlink(addresses=host_of(carrier), sysctls=LOOSE))
    assert info.value.details.get("field") == "interface" and "wg0" in info.value.msg
    # check mode only reports (the tunnel may come up in the same play); the MTU is WireGuard's default less 50
    result, _before, _after = plan(carrier, FakeNetlink(addresses=host_of(carrier), sysctls=LOOSE), check_mode=True)
    assert result.actions[0].startswith("create device wg0c") and result.mtu == 1370


@pytest.mark.parametrize("make", [share_params, proxy_params])
def test_plan_in_sync_has_nothing_to_do(make):
    carrier = Carrier(make())
    # another owner's protocol-88 rule and route (a table outside the carrier's range) are not the carrier's
    foreign_rule = _carrier.Rule(100, 7000, dst="198.51.100.0/24")
    foreign_route = _carrier.Route(7000, "198.51.100.0/24", "wg0")
    nl = in_sync(carrier, rules=[foreign_rule], routes=[foreign_route])
    result, before, after = plan(carrier, nl)
    assert result.actions == []
    assert (result.link, result.link_set, result.sysctls) == (None, {}, {})
    assert result.rules_add == result.rules_del == result.routes_add == result.routes_del == []
    assert before == after


def test_plan_in_sync_mtu_and_mac_drift_are_set_not_recreated():
    carrier = Carrier(share_params())
    nl = in_sync(carrier)
    nl._links["wg0c"].update(mtu=1500, mac="02:00:0a:07:00:99")
    result, _before, _after = plan(carrier, nl)
    assert result.link is None and result.link_set == {"mac": MAC_SHARE, "mtu": 1370}
    assert result.actions == ["set device wg0c mac 02:00:0a:07:00:99 -> 02:00:0a:07:00:02",
                              "set device wg0c mtu 1500 -> 1370"]


def test_plan_another_vni_recreates_the_device_and_its_entries():
    carrier = Carrier(share_params())
    nl = in_sync(carrier)
    nl._links["wg0c"]["vni"] = 42
    result, _before, _after = plan(carrier, nl)
    assert result.link == "recreate"
    assert result.actions[0] == ("recreate device wg0c (vxlan id 42 -> 7700, local 10.7.0.2 -> 10.7.0.2, "
                                 "dstport 4789 -> 4789)")
    # a recreated device comes without its entries and the routes through it
    assert ("add fdb 02:00:0a:07:00:03 dst 10.7.0.3") in result.actions
    assert sorted(r.render() for r in result.routes_add) == [
        "default dev wg0c table 5200 proto 88",
        "default via 10.7.0.3 dev wg0c table 5203 proto 88 onlink",
        "default via 10.7.0.4 dev wg0c table 5204 proto 88 onlink"]
    assert result.routes_del == [] and result.rules_add == []


def test_plan_one_stale_peer_deletes_only_it():
    old = Carrier(share_params())
    nl = in_sync(old)
    carrier = Carrier(share_params(peers=[P1]))
    result, _before, after = plan(carrier, nl)
    assert result.actions == [
        "delete fdb 02:00:0a:07:00:04 dst 10.7.0.4",
        "delete neigh 10.7.0.4 lladdr 02:00:0a:07:00:04",
        "delete rule 5200: from all fwmark 0x400000/0x3ff00000 lookup 5204 proto 88",
        "delete route default via 10.7.0.4 dev wg0c table 5204 proto 88 onlink",
        "delete route 10.7.0.4/32 dev wg0 table 5204 proto 88",
    ]
    assert result.link is None and result.fdb_add == [] and result.rules_add == [] and result.routes_add == []
    assert not any("10.7.0.4" in line or "0x400000" in line or "5204" in line for line in after)


def test_plan_absent_deletes_everything_of_the_carrier_and_nothing_else():
    present = Carrier(share_params())
    foreign_rule = _carrier.Rule(100, 7000, dst="198.51.100.0/24")
    nl = in_sync(present, rules=[foreign_rule])
    carrier = Carrier(params(state="absent"))
    result, before, after = plan(carrier, nl)
    assert result.actions == [
        "delete device wg0c",
        "delete rule 5200: from all fwmark 0x300000/0x3ff00000 lookup 5203 proto 88",
        "delete rule 5200: from all fwmark 0x400000/0x3ff00000 lookup 5204 proto 88",
        "delete rule 32768: from all iif wg0c lookup 5200 proto 88",
        "delete rule 32768: from 10.7.0.2/32 lookup 5200 proto 88",
        "delete route default dev wg0c table 5200 proto 88",
        "delete route default via 10.7.0.3 dev wg0c table 5203 proto 88 onlink",
        "delete route 10.7.0.3/32 dev wg0 table 5203 proto 88",
        "delete route default via 10.7.0.4 dev wg0c table 5204 proto 88 onlink",
        "delete route 10.7.0.4/32 dev wg0 table 5204 proto 88",
    ]
    assert result.link == "delete" and after == [] and before
    assert foreign_rule not in result.rules_del
    # nothing left: nothing to do
    empty, _before, _after = plan(carrier, FakeNetlink(addresses=host_of(carrier), links={"wg0": WG}, sysctls=LOOSE))
    assert empty.actions == [] and empty.link is None


@pytest.mark.parametrize("state", ["present", "absent"])
@pytest.mark.parametrize("link", [
    {"index": 9, "kind": "veth", "alias": None, "mac": "02:aa:00:00:00:01", "mtu": 1500, "up": True},
    {"index": 9, "kind": None, "alias": ALIAS, "mac": "02:aa:00:00:00:01", "mtu": 1500, "up": True},
    # a VXLAN device that is not ours (no alias)
    {"index": 9, "kind": "vxlan", "alias": None, "mac": MAC_SHARE, "mtu": 1370, "up": True, "vni": 7700,
     "local": SHARE, "port": 4789, "learning": 0},
])
def test_plan_refuses_a_foreign_device(state, link):
    carrier = Carrier(share_params(state=state))
    with pytest.raises(WgspError) as info:
        plan(carrier, FakeNetlink(addresses=host_of(carrier), links={"wg0": WG, "wg0c": link}, sysctls=LOOSE))
    assert info.value.details.get("field") == "name"
    assert info.value.msg.startswith("name: ") and "wg0c" in info.value.msg


@pytest.mark.parametrize("sysctls", [
    {RP % "all": "1", RP % "default": "0"},
    {RP % "all": "0", RP % "default": "1"},
    {RP % "all": "1", RP % "default": "1"},
])
def test_plan_strict_rp_filter_is_made_loose(sysctls):
    carrier = Carrier(share_params())
    result, _before, after = plan(carrier, FakeNetlink(addresses=host_of(carrier), links={"wg0": WG}, sysctls=sysctls))
    assert result.sysctls == {RP % "wg0c": "2"}
    assert result.actions[-1] == "set net.ipv4.conf.wg0c.rp_filter = 2 (loose)"
    assert after[-1] == "sysctl net.ipv4.conf.wg0c.rp_filter = 2"


def test_plan_strict_device_rp_filter_of_an_existing_carrier_is_made_loose():
    carrier = Carrier(share_params())
    nl = in_sync(carrier, sysctls=dict(LOOSE, **{RP % "wg0c": "1"}))
    result, before, _after = plan(carrier, nl)
    assert result.actions == ["set net.ipv4.conf.wg0c.rp_filter = 2 (loose)"]
    assert before[-1] == "sysctl net.ipv4.conf.wg0c.rp_filter = 1"


def test_plan_loose_rp_filter_needs_nothing():
    carrier = Carrier(share_params())
    nl = FakeNetlink(addresses=host_of(carrier), links={"wg0": WG}, sysctls={RP % "all": "2", RP % "default": "0"})
    result, _before, _after = plan(carrier, nl)
    assert result.sysctls == {} and not any("rp_filter" in a for a in result.actions)


def test_plan_strict_all_with_the_carrier_already_loose_is_in_sync():
    """all=1 and the carrier's own rp_filter 2: the kernel uses the higher of the two (2, loose), and
    the first run left exactly that - a second run must have nothing to do (idempotence on a host
    hardened with net.ipv4.conf.all.rp_filter=1)."""
    carrier = Carrier(share_params())
    nl = in_sync(carrier, sysctls={RP % "all": "1", RP % "default": "1", RP % "wg0c": "2"})
    result, before, after = plan(carrier, nl)
    assert result.actions == [] and result.sysctls == {}
    assert before == after


def test_nft_lines_when_a_mark_fills_the_mask():
    """mark_mask 0x30 and a peer ending in 11: its mark is the whole mask. nft lists "& 0xffffffff | x"
    as "| x"; the lines are compared with what nft lists, so they must be written that way."""
    marks = Carrier(share_params(mark_mask="0x30", peers=[P1], local_ports=[])).marks()
    assert marks.peers == (("02:00:0a:07:00:03", 0x30),)
    lines = render_nft_lines("carrier", marks)
    assert lines["prerouting"] == [
        'iifname "wg0c" ether saddr 02:00:0a:07:00:03 ct mark set ct mark | 0x00000030 %s' % NC,
        'iifname != "wg0c" ct direction reply ct mark & 0x00000030 == 0x00000030 meta mark set meta mark | 0x00000030 %s'
        % NC]
    assert lines["output"] == [
        'ct direction reply ct mark & 0x00000030 == 0x00000030 meta mark set meta mark | 0x00000030 %s' % NC]


# -- values the kernel would refuse only half-way: judged before anything changes -------------------


def test_plan_refuses_a_local_address_the_host_does_not_have():
    carrier = Carrier(share_params())
    nl = FakeNetlink(links={"wg0": WG}, sysctls=LOOSE, addresses=[("10.7.0.9", ipaddress.ip_network("10.7.0.9/32"))])
    with pytest.raises(ValidationError) as info:
        plan(carrier, nl)
    assert info.value.field == "local"


def test_plan_refuses_a_peer_that_is_the_hosts_own_address_or_a_broadcast_address():
    carrier = Carrier(share_params())
    own = host_of(carrier) + [(P1, ipaddress.ip_network(P1 + "/32"))]
    with pytest.raises(ValidationError) as info:
        plan(carrier, FakeNetlink(links={"wg0": WG}, sysctls=LOOSE, addresses=own))
    assert info.value.field == "peers[0]"
    carrier = Carrier(share_params(peers=["10.7.0.255"]))
    lan = host_of(carrier) + [("10.7.0.77", ipaddress.ip_network("10.7.0.77/24", strict=False))]
    with pytest.raises(ValidationError) as info:
        plan(carrier, FakeNetlink(links={"wg0": WG}, sysctls=LOOSE, addresses=lan))
    assert info.value.field == "peers[0]" and "broadcast" in info.value.msg


class RefusingIPRoute:
    """An IPRoute whose route requests the kernel refuses; records every request."""

    def __init__(self, nl):
        self.nl, self.calls = nl, []

    def link(self, command, **kwargs):
        self.calls.append(("link", command, kwargs))
        if command == "add":
            self.nl._links[kwargs["ifname"]] = {"index": 9, "kind": "vxlan", "alias": None, "mac": None, "mtu": 1500,
                                                "up": False}

    def fdb(self, command, **kwargs):
        self.calls.append(("fdb", command, kwargs))

    def neigh(self, command, **kwargs):
        self.calls.append(("neigh", command, kwargs))

    def rule(self, command, **kwargs):
        self.calls.append(("rule", command, kwargs))

    def route(self, command, **kwargs):
        self.calls.append(("route", command, kwargs))
        if command == "replace":
            error = OSError("Invalid argument")
            error.code = 22
            raise error


def test_a_refused_apply_takes_this_runs_additions_away_again():
    carrier = Carrier(share_params())
    nl = FakeNetlink(links={"wg0": WG}, sysctls=LOOSE, addresses=host_of(carrier))
    result, _before, _after = plan(carrier, nl)
    nl.ipr = RefusingIPRoute(nl)
    nl.write_sysctl = lambda path, value, why="": None
    with pytest.raises(WgspError) as info:
        _carrier.apply(carrier, nl, result)
    assert "taken away again" in info.value.msg
    calls = nl.ipr.calls
    added = [c[2] for c in calls if c[0] == "rule" and c[1] == "add"]
    removed = [c[2] for c in calls if c[0] == "rule" and c[1] == "del"]
    assert added and removed == list(reversed(added))
    assert calls[-1] == ("link", "del", {"index": 9})  # the device it made goes last
