"""Issue 11 items 3, 7 and 15 on real namespace hosts (iptables-nft and nftables).

- 3: wg_dnat and wg_filter tables never share a name; a chain or table of a set's name that does not
  carry the set's owner mark is neither replaced nor deleted (refused before any change); a table a
  set wrote under its old name is moved to the new name in one transaction.
- 7: every accepted source/destination/target reads back as rendered (a second run is
  changed=false); IPv4-mapped IPv6 is refused before any change.
- 15: the conntrack flush after a DNAT change keeps another set's flows (same proto/port/target,
  other interface).
"""

import pytest

from conftest import require_root_tools
from topology import udp_ask

SETUP = ("ip link add eth0 type veth peer name eth1; ip link set eth0 addrgenmode none; "
         "ip link set eth1 addrgenmode none; ip addr add 192.0.2.1/24 dev eth0; "
         "ip addr add fd00:1::1/64 dev eth0 nodad; ip link set eth0 up; ip link set eth1 up")
FIREWALL = r"""
iptables-save | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]//'
ip6tables-save | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]//'
nft list ruleset | sed 's/packets [0-9]* bytes [0-9]*//'
"""
BACKENDS = ["iptables", "nftables"]


def firewall(host):
    return host.run(FIREWALL).stdout


def one_host(lab):
    require_root_tools("iptables", "ip6tables", "nft")
    host = lab.host("fw")
    host.run(SETUP)
    return host


def refused(result, field):
    assert result.get("failed") and result["_rc"] != 0, result
    assert result["msg"].startswith(field + ":") or field in result["msg"], result["msg"]


# ----------------------------------------------------------------------------------------------
# item 3: names and owner marks

FILTER_X = {"name": "x", "in_interface": "eth1", "hook": "input", "policy": "drop",
            "allow": [{"proto": "tcp", "port": 22}]}
DNAT_F_X = {"name": "f_x", "in_interface": "eth0", "rules": [{"port": 80, "to_address": "192.0.2.9"}]}


@pytest.mark.parametrize("backend", BACKENDS)
def test_dnat_set_f_x_and_filter_set_x_keep_their_own_rules(lab, backend):
    host = one_host(lab)
    assert host.module("wg_filter", dict(FILTER_X, backend=backend))["changed"]
    filter_only = firewall(host)
    dnat = host.module("wg_dnat", dict(DNAT_F_X, backend=backend))
    assert dnat["_rc"] == 0 and dnat["changed"], dnat
    both = firewall(host)
    # everything the filter set installed is still there, unchanged, next to the dnat set's rules
    for line in filter_only.splitlines():
        if "wgsp" in line:
            assert line in both, (line, both)
    assert host.module("wg_filter", dict(FILTER_X, backend=backend))["changed"] is False
    assert host.module("wg_dnat", dict(DNAT_F_X, backend=backend))["changed"] is False
    # removing the dnat set leaves exactly the filter set (iptables-nft keeps the nat table it made)
    assert host.module("wg_dnat", {"name": "f_x", "state": "absent", "backend": backend})["changed"]
    ours = [line for line in firewall(host).splitlines() if "wgsp" in line.lower()]
    assert ours == [line for line in filter_only.splitlines() if "wgsp" in line.lower()] and ours
    if backend == "nftables":
        assert firewall(host) == filter_only
        assert "table inet wgsp-filter-x {" in filter_only and "wgsp_f_x" not in both
        assert "table inet wgsp-dnat-f_x {" in both


FOREIGN = {
    "iptables": ("iptables -t nat -N WGSP-PUB-PRE; iptables -t nat -A WGSP-PUB-PRE -p tcp --dport 25 -j RETURN; "
                 "iptables -N WGSP-ISO-IN; iptables -A WGSP-ISO-IN -s 192.0.2.7 -j ACCEPT",
                 "ipv4 nat chain WGSP-PUB-PRE holds 1 rule(s), none with owner mark",
                 "ipv4 filter chain WGSP-ISO-IN holds 1 rule(s), none with owner mark"),
    "nftables": ("nft add table inet wgsp-dnat-pub; nft add chain inet wgsp-dnat-pub c; "
                 "nft add table inet wgsp-filter-iso '{ comment \"wgsp:iso\"; }'",
                 "table inet wgsp-dnat-pub has owner mark None, not 'wgsp:pub'",
                 "table inet wgsp-filter-iso has owner mark 'wgsp:iso', not 'wgsp-f:iso'"),
}


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_chain_or_table_of_the_sets_name_without_its_mark_is_refused(lab, backend):
    host = one_host(lab)
    setup, dnat_text, filter_text = FOREIGN[backend]
    host.run(setup)
    before = firewall(host)
    for module, args, text in (
            ("wg_dnat", {"name": "pub", "in_interface": "eth0", "rules": [{"port": 80, "to_address": "192.0.2.9"}]},
             dnat_text),
            ("wg_dnat", {"name": "pub", "state": "absent"}, dnat_text),
            ("wg_filter", {"name": "iso", "in_interface": "eth1", "allow": [{"port": 22}]}, filter_text),
            ("wg_filter", {"name": "iso", "state": "absent"}, filter_text)):
        for check_mode in (True, False):
            result = host.module(module, dict(args, backend=backend), check_mode=check_mode)
            assert result.get("failed") and text in result["msg"], result
            assert firewall(host) == before


OLD_DNAT_TABLE = """table inet wgsp_pub {
    comment "wgsp:pub"
    chain prerouting {
        type nat hook prerouting priority dstnat; policy accept;
        iifname "eth0" meta nfproto ipv4 tcp dport 80 counter dnat ip to 192.0.2.9 comment "wgsp:pub"
    }
}
table inet wgsp_f_x {
    comment "wgsp-f:x"
    chain input {
        type filter hook input priority filter; policy accept;
        iifname "eth1" counter accept comment "wgsp-f:x"
    }
}
"""


def test_tables_under_the_old_names_move_to_the_new_ones_only_when_marked_as_this_sets(lab):
    host = one_host(lab)
    host.run(["nft", "-f", "-"], input=OLD_DNAT_TABLE)
    # wg_dnat set f_x: the old-named wgsp_f_x is wg_filter set x's (its mark says so): left alone.
    first = host.module("wg_dnat", dict(DNAT_F_X, backend="nftables"))
    assert first["_rc"] == 0 and not any("wgsp_f_x" in a for a in first["plan"]), first
    assert 'comment "wgsp-f:x"' in host.run("nft list table inet wgsp_f_x").stdout
    # wg_dnat set pub: its old table is deleted in the transaction that writes the new one.
    pub = {"name": "pub", "in_interface": "eth0", "rules": [{"port": 80, "to_address": "192.0.2.9"}],
           "backend": "nftables"}
    check = host.module("wg_dnat", pub, check_mode=True)
    assert "delete table inet wgsp_pub (this set's old table name, 1 rules)" in check["plan"], check
    moved = host.module("wg_dnat", pub)
    assert moved["_rc"] == 0 and moved["changed"], moved
    tables = host.run("nft list tables").stdout
    assert "wgsp_pub" not in tables and "table inet wgsp-dnat-pub" in tables
    assert host.module("wg_dnat", pub)["changed"] is False
    # wg_filter set x moves its own old table too
    filt = host.module("wg_filter", dict(FILTER_X, backend="nftables"))
    assert filt["_rc"] == 0 and "delete table inet wgsp_f_x (this set's old table name, 1 rules)" in filt["plan"]
    assert "wgsp_f_x" not in host.run("nft list tables").stdout
    assert host.module("wg_filter", dict(FILTER_X, backend="nftables"))["changed"] is False


# ----------------------------------------------------------------------------------------------
# item 7: every accepted value converges

DNAT_ANY = {"name": "anysrc", "in_interface": "eth0",
            "rules": [{"port": 80, "to_address": "192.0.2.9", "sources": ["0.0.0.0/0"]},
                      {"port": 81, "to_address": "192.0.2.9", "sources": ["198.51.100.0/24", "0.0.0.0/0"]},
                      {"port": 82, "to_address": "fd00:1::9", "sources": ["::/0"]},
                      {"port": 83, "to_address": "fd00:1::9", "sources": ["::1.2.3.4/120", "::0.0.0.9"]},
                      {"port": 84, "to_address": "::1.2.3.4"}]}
FILTER_ANY = {"name": "anyf", "in_interface": "eth1",
              "allow": [{"proto": "tcp", "port": 22, "sources": ["0.0.0.0/0"]},
                        {"proto": "udp", "port": 53, "destinations": ["::/0"]},
                        {"proto": "tcp", "port": 80, "sources": ["::1.2.3.0/120"], "destinations": ["::/0"]},
                        {"proto": "icmp", "sources": ["198.51.100.7/24"], "destinations": ["0.0.0.0/0"]}]}


@pytest.mark.parametrize("backend", BACKENDS)
def test_any_networks_and_embedded_ipv4_converge(lab, backend):
    host = one_host(lab)
    for module, args in (("wg_dnat", DNAT_ANY), ("wg_filter", FILTER_ANY)):
        first = host.module(module, dict(args, backend=backend))
        assert first["_rc"] == 0 and first["changed"] and first["applied"], first
        applied = firewall(host)
        second = host.module(module, dict(args, backend=backend))
        assert second["_rc"] == 0 and second["changed"] is False and second["plan"] == [], second
        assert firewall(host) == applied
    text = firewall(host)
    assert "0.0.0.0/0" not in text and "::/0" not in text
    # /0 keeps its family: the port-22 allow exists for IPv4 only, the port-53 one for IPv6 only
    if backend == "iptables":
        v4 = host.run("iptables -S WGSP-ANYF-IN").stdout
        v6 = host.run("ip6tables -S WGSP-ANYF-IN").stdout
        assert "--dport 22" in v4 and "--dport 22" not in v6
        assert "--dport 53" in v6 and "--dport 53" not in v4
    else:
        table = host.run("nft list table inet wgsp-filter-anyf").stdout
        assert "meta nfproto ipv4 tcp dport 22" in table and "meta nfproto ipv6 udp dport 53" in table
    # the sources 0.0.0.0/0 leave rules 80/81 unlimited: no REJECT for them
    assert "::1.2.3.0/120" in text


MAPPED = [
    ("wg_dnat", {"name": "m", "in_interface": "eth0",
                 "rules": [{"port": 80, "to_address": "192.0.2.9", "sources": ["::ffff:1.2.3.4"]}]},
     "rules[0].sources[0]"),
    ("wg_dnat", {"name": "m", "in_interface": "eth0", "sources": ["::ffff:0:0/96"],
                 "rules": [{"port": 80, "to_address": "fd00:1::9"}]}, "sources[0]"),
    ("wg_dnat", {"name": "m", "in_interface": "eth0", "rules": [{"port": 80, "to_address": "::ffff:192.0.2.9"}]},
     "rules[0].to_address"),
    ("wg_filter", {"name": "m", "in_interface": "eth1", "allow": [{"port": 22, "sources": ["::ffff:1.2.3.4/128"]}]},
     "allow[0].sources[0]"),
    ("wg_filter", {"name": "m", "in_interface": "eth1", "allow": [{"port": 22, "destinations": ["::ffff:192.0.2.1"]}]},
     "allow[0].destinations[0]"),
]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("module,args,field", MAPPED, ids=[m[2] + "-" + m[0] for m in MAPPED])
def test_ipv4_mapped_ipv6_is_refused_before_any_change(lab, backend, module, args, field):
    host = one_host(lab)
    before = firewall(host)
    result = host.module(module, dict(args, backend=backend))
    refused(result, field)
    assert "IPv4-mapped" in result["msg"]
    assert firewall(host) == before


# ----------------------------------------------------------------------------------------------
# item 15: the conntrack flush keeps the other set's flows

@pytest.mark.parametrize("backend", BACKENDS)
def test_conntrack_flush_keeps_the_other_sets_flows(lab, backend):
    require_root_tools("iptables", "nft", "conntrack")
    proxy, c1, c2, svc = (lab.host(n) for n in ("proxy", "c1", "c2", "svc"))
    lab.link(proxy, "eth1", ["192.0.2.1/24"], c1, "eth0", ["192.0.2.2/24"])
    lab.link(proxy, "eth2", ["198.51.100.1/24"], c2, "eth0", ["198.51.100.2/24"])
    lab.link(proxy, "eth3", ["203.0.113.1/24"], svc, "eth0", ["203.0.113.2/24", "203.0.113.3/24"])
    svc.run("ip route add default via 203.0.113.1")
    svc.serve("udp", "0.0.0.0", 53)
    sets = {"a": {"name": "seta", "in_interface": "eth1", "rules": [{"proto": "udp", "port": 53, "to_address": "203.0.113.2"}]},
            "b": {"name": "setb", "in_interface": "eth2", "rules": [{"proto": "udp", "port": 53, "to_address": "203.0.113.2"}]}}
    for args in sets.values():
        result = proxy.module("wg_dnat", dict(args, backend=backend))
        assert result["_rc"] == 0 and result["changed"], result
    assert udp_ask(c1, "192.0.2.1", 53)[0] == 0
    assert udp_ask(c2, "198.51.100.1", 53)[0] == 0

    def flows():
        out = proxy.run(["conntrack", "-L", "-p", "udp", "--dst-nat", "203.0.113.2"], check=False).stdout
        return [line for line in out.splitlines() if "dport=53" in line]

    listed = flows()
    assert any("src=192.0.2.2 " in line for line in listed) and any("src=198.51.100.2 " in line for line in listed), listed
    # set a moves its target: its flows go, set b's flow (same proto, port and target) stays.
    moved = dict(sets["a"], rules=[{"proto": "udp", "port": 53, "to_address": "203.0.113.3"}])
    result = proxy.module("wg_dnat", dict(moved, backend=backend))
    assert result["_rc"] == 0 and result["conntrack"], result
    after = flows()
    assert not any("src=192.0.2.2 " in line for line in after), after
    assert any("src=198.51.100.2 " in line for line in after), after
