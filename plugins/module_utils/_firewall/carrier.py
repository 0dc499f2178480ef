# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The firewall side of a share's carrier (``wg_carrier``, ``side: share``): which proxy carried
each connection, and nothing else in through the carrier.

A connection that arrives on the carrier device keeps its public source address; the share must
send its replies back through the proxy that carried it (the routing tables ``wg_carrier``
writes, one per proxy, chosen by a packet mark). The set:

- marks each connection that arrives on the carrier with its proxy's mark (the proxy is known by the
  frame's source MAC: each carrier's MAC is derived from its tunnel address, and the carrier only
  knows its peers' MACs); its packets keep no mark, so they are routed as usual;
- restores the connection's mark on every packet of its reply direction that does not come from the
  carrier (the replies, from a container or from the host itself, and the errors about the client's
  packets), so the policy rule of that proxy routes them back into the carrier - not an error the
  share sends the service about a reply (fragmentation needed before the carrier's smaller MTU);
- drops what arrives on the carrier and was not DNAT'ed (to the host or forwarded), except the
  listed ports of the host's own services: only the shared services are reachable that way, as
  through the hub's isolation.

Only the bits of ``mask`` are touched, in the packet mark and in the connection mark.

- iptables: ``mangle`` chains ``WGSP-<NAME>-CPR`` (from PREROUTING) and ``WGSP-<NAME>-COU`` (from
  OUTPUT), ``filter`` chains ``WGSP-<NAME>-CIN`` (from INPUT ``-i <device>``) and ``WGSP-<NAME>-CFW``
  (from FORWARD ``-i <device>``, or DOCKER-USER when that chain exists). Comment ``wgsp-c:<name>``.
- nftables: table ``inet wgsp-carrier-<name>`` with the chains ``prerouting`` (filter, priority
  mangle), ``output`` (route, priority mangle), ``input`` and ``forward`` (filter).
IPv4 only: the carrier runs between IPv4 tunnel addresses and carries IPv4.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.iptables import (
    DOCKER_USER,
    IptablesBackend,
    chain_name,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.nftables import NftablesBackend
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.rules import format_ports
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.state import Desired

FULL = 0xFFFFFFFF
# (table, chain suffix, built-in parent)
IPT_HOOKS = (("mangle", "CPR", "PREROUTING"), ("mangle", "COU", "OUTPUT"),
             ("filter", "CIN", "INPUT"), ("filter", "CFW", "FORWARD"))


def tag(set_name):
    return "wgsp-c:%s" % set_name


def ipt_comment(set_name):
    return '-m comment --comment "%s"' % tag(set_name)


class CarrierMarks:
    """The validated firewall side of one share carrier: its device, its mark mask, each peer's
    ``(mac, mark)`` (``mark`` within ``mask``) and the ``(proto, (low, high))`` ports of the host's own
    services that carried connections may reach without DNAT."""

    __slots__ = ("device", "mask", "peers", "allow")

    def __init__(self, device, mask, peers, allow=()):
        self.device = device
        self.mask = mask
        self.peers = tuple(peers)
        self.allow = tuple(allow)

    def to_dict(self):
        return {"device": self.device, "mask": "0x%x" % self.mask,
                "peers": [{"mac": mac, "mark": "0x%x" % mark} for mac, mark in self.peers],
                "allow": [{"proto": proto, "port": format_ports(port)} for proto, port in self.allow]}


def render_iptables_lines(set_name, marks):
    """``{suffix: [lines]}`` in ``iptables-save`` form (IPv4)."""
    cpr, cou, cin, cfw = (chain_name(set_name, s) for _t, s, _p in IPT_HOOKS)
    comment = ipt_comment(set_name)
    masks = "--nfmask 0x%x --ctmask 0x%x" % (marks.mask, marks.mask)
    dev = marks.device
    # the connection gets its proxy's mark; the packet keeps none, so it is routed as usual
    pre = ["-A %s -i %s -m mac --mac-source %s %s -j CONNMARK --set-xmark 0x%x/0x%x"
           % (cpr, dev, mac, comment, mark, marks.mask) for mac, mark in marks.peers]
    # only the reply direction: an ICMP error the share sends the service about a reply (fragmentation
    # needed, on the carrier's smaller MTU) belongs to the connection too, and must reach the service
    reply = "-m conntrack --ctdir REPLY"
    pre.append("-A %s ! -i %s %s %s -j CONNMARK --restore-mark %s" % (cpr, dev, reply, comment, masks))
    out = ["-A %s %s %s -j CONNMARK --restore-mark %s" % (cou, reply, comment, masks)]
    drop = "-m conntrack ! --ctstate DNAT %s -j DROP" % comment
    allow = ["-A %s -p %s -m %s --dport %s %s -j ACCEPT" % (cin, proto, proto, format_ports(port, ":"), comment)
             for proto, port in marks.allow]
    return {"CPR": pre, "COU": out, "CIN": allow + ["-A %s %s" % (cin, drop)], "CFW": ["-A %s %s" % (cfw, drop)]}


class CarrierIptablesBackend(IptablesBackend):
    """iptables backend of a share carrier's set: the dnat backend's read/plan/apply, other chains."""

    hooks = IPT_HOOKS
    tables = ("mangle", "filter")
    marker = staticmethod(ipt_comment)

    def render(self, set_name, rules, installed=None):
        desired = Desired(self.name, set_name)
        if not rules:
            return desired
        (marks,) = rules
        docker_user = (installed.facts.get("docker_user", {}) if installed is not None else {}).get(4)
        lines = render_iptables_lines(set_name, marks)
        for table, suffix, hook in IPT_HOOKS:
            scope = self._scope(4, table)
            chain = chain_name(set_name, suffix)
            desired.chains[(scope, chain)] = ""
            desired.entries.extend((scope, chain, line) for line in lines[suffix])
            parent = DOCKER_USER if (suffix == "CFW" and docker_user) else hook
            match = "-i %s " % marks.device if table == "filter" else ""
            desired.jumps.append((scope, parent, "-A %s %s%s -j %s" % (parent, match, ipt_comment(set_name), chain)))
        return desired


def _set_bits(marks, value):
    """nft's form of "the mask's bits := value": it lists the AND mask with the value's bits set, and
    no AND at all when that mask keeps every bit (a mark that fills the mask)."""
    keep = (FULL & ~marks.mask) | value
    return "| 0x%08x" % value if keep == FULL else "& 0x%08x | 0x%08x" % (keep, value)


def _has_mark(marks, value):
    """nft's form of "the mask's bits == value" (no AND when the mask is every bit)."""
    if marks.mask == FULL:
        return "ct mark == 0x%08x" % value
    return "ct mark & 0x%08x == 0x%08x" % (marks.mask, value)


def render_nft_lines(set_name, marks):
    """``{chain: [rules]}`` in ``nft list`` form."""
    comment = 'comment "%s"' % tag(set_name)
    dev = '"%s"' % marks.device
    pre, out = [], []
    for mac, mark in marks.peers:
        pre.append("iifname %s ether saddr %s ct mark set ct mark %s %s" % (dev, mac, _set_bits(marks, mark), comment))
    for _mac, mark in marks.peers:
        restore = "ct direction reply %s meta mark set meta mark %s %s" % (
            _has_mark(marks, mark), _set_bits(marks, mark), comment)
        pre.append("iifname != %s %s" % (dev, restore))
        out.append(restore)
    allow = ["iifname %s %s dport %s counter accept %s" % (dev, proto, format_ports(port), comment)
             for proto, port in marks.allow]
    drop = "iifname %s ct status & dnat != dnat counter drop %s" % (dev, comment)
    return {"prerouting": pre, "output": out, "input": allow + [drop], "forward": [drop]}


NFT_CHAINS = (
    ("prerouting", "type filter hook prerouting priority mangle; policy accept;"),
    ("output", "type route hook output priority mangle; policy accept;"),
    ("input", "type filter hook input priority filter; policy accept;"),
    ("forward", "type filter hook forward priority filter; policy accept;"),
)


class CarrierNftablesBackend(NftablesBackend):
    """nftables backend of a share carrier's set: table ``inet wgsp-carrier-<name>``."""

    @staticmethod
    def table(set_name):
        return "wgsp-carrier-%s" % set_name

    @staticmethod
    def legacy_tables(set_name):
        return []

    @staticmethod
    def comment(set_name):
        return tag(set_name)

    def render(self, set_name, rules, installed=None):
        if not rules:
            return Desired(self.name, set_name)
        (marks,) = rules
        return self.desired_table(set_name, NFT_CHAINS, render_nft_lines(set_name, marks))
