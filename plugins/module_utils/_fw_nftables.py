# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nftables backend of ``wg_dnat``: one owned ``inet`` table per set, replaced atomically.

Table ``inet wgsp_<set>`` holds three base chains: ``prerouting`` (nat, priority dstnat: LOG and
DNAT), ``postrouting`` (nat, priority srcnat: MASQUERADE) and ``forward`` (filter, priority
filter: exact accepts and the REJECT of other sources). Rules are rendered as ``nft list table``
prints them (counters are stripped before comparing). A change is one ``nft -f`` transaction
that creates the table if missing, deletes it and re-adds it, after ``nft -c -f`` validated it.

Note: an accept in this table does not override a drop in another table (e.g. iptables-nft's
FORWARD DROP set by Docker); that is why the ``auto`` backend prefers iptables on Docker hosts.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import shutil

from ansible_collections.wgsp.service_proxy.plugins.module_utils._fw_rules import format_ports
from ansible_collections.wgsp.service_proxy.plugins.module_utils._fw_state import Desired, Installed, Plan, by_chain, split_dnat_target

CHAINS = (
    ("prerouting", "type nat hook prerouting priority dstnat; policy accept;"),
    ("postrouting", "type nat hook postrouting priority srcnat; policy accept;"),
    ("forward", "type filter hook forward priority filter; policy accept;"),
)
_COUNTER_RE = re.compile(r"counter packets (\d+) bytes (\d+)")
# A packet limit without a burst gets nft's default burst of 5 packets. nft 1.0 (Debian 12) lists
# it as "limit rate 5/minute", nft 1.1 (Debian 13) as "limit rate 5/minute burst 5 packets"; the
# kernel holds the same rule. Listings are brought to the 1.0 form, the one rules are rendered in.
_DEFAULT_BURST_RE = re.compile(r"(\blimit rate (?:over )?\d+/(?:second|minute|hour|day|week)) burst 5 packets\b")


def table_name(set_name):
    return "wgsp_%s" % set_name


def _net(text):
    """nft prints host prefixes without the length."""
    addr, _sep, plen = text.partition("/")
    if plen and int(plen) == (32 if ":" not in addr else 128):
        return addr
    return text


def _ifaces(in_if=None, out_if=None):
    parts = []
    if in_if:
        parts.append('iifname "%s"' % in_if)
    if out_if:
        parts.append('oifname "%s"' % out_if)
    return parts


def render_rule_lines(set_name, rule):
    """``{chain: [lines]}`` for one Rule, in ``nft list`` form."""
    ipk = "ip" if rule.family == 4 else "ip6"
    nfproto = "meta nfproto ipv%d" % rule.family
    tag = 'comment "wgsp:%s"' % set_name
    port = format_ports(rule.port)
    to_port = format_ports(rule.to_port)
    if rule.to_port == rule.port:
        target = rule.to_address
    elif rule.family == 4:
        target = "%s:%s" % (rule.to_address, to_port)
    else:
        target = "[%s]:%s" % (rule.to_address, to_port)
    reject = "reject with icmp port-unreachable" if rule.family == 4 else "reject with icmpv6 port-unreachable"
    out = {"prerouting": [], "postrouting": [], "forward": []}
    for proto in rule.protos:
        if rule.log:
            for src in rule.sources or (None,):
                out["prerouting"].append(" ".join(
                    _ifaces(rule.in_interface) + (["%s saddr %s" % (ipk, _net(src))] if src else [nfproto])
                    + ["%s dport %s" % (proto, port), 'log prefix "wgsp-%s "' % set_name, tag]))
        out["prerouting"].append(" ".join(
            _ifaces(rule.in_interface) + [nfproto, "%s dport %s" % (proto, port), "counter",
                                          "dnat %s to %s" % (ipk, target), tag]))
        ct_orig = "ct status dnat ct original proto-dst %s" % port
        dest = "%s daddr %s" % (ipk, rule.to_address)
        for src in rule.sources or (None,):
            out["forward"].append(" ".join(
                _ifaces(rule.in_interface, rule.out_interface) + (["%s saddr %s" % (ipk, _net(src))] if src else [])
                + [dest, "%s dport %s" % (proto, to_port), ct_orig, "counter accept", tag]))
        out["forward"].append(" ".join(
            _ifaces(rule.out_interface, rule.in_interface)
            + ["%s saddr %s" % (ipk, rule.to_address), "%s sport %s" % (proto, to_port),
               "ct status dnat ct direction reply counter accept", tag]))
        if rule.sources:
            out["forward"].append(" ".join(
                _ifaces(rule.in_interface) + [dest, "%s dport %s" % (proto, to_port), ct_orig, "counter", reject, tag]))
        if rule.masquerade:
            out["postrouting"].append(" ".join(
                _ifaces(None, rule.out_interface)
                + [dest, "%s dport %s" % (proto, to_port), ct_orig, "counter masquerade", tag]))
    return out


def parse_table(text):
    """Parse ``nft list table`` output: ``({chain: header}, [(chain, rule, counters)], comment)``.

    Rules come back counter-free and in the form nft 1.0 prints them (see ``_DEFAULT_BURST_RE``)."""
    headers, rules, table_comment = {}, [], None
    chain = None
    for raw in text.splitlines():
        line = raw.split(" # handle")[0].strip()
        if not line or line.startswith("table ") or line == "}":
            if line == "}":
                chain = None
            continue
        match = re.match(r"^chain (\S+) \{$", line)
        if match:
            chain = match.group(1)
            headers[chain] = ""
            continue
        if chain is None:
            if line.startswith("comment "):
                table_comment = line[len("comment "):].strip('"')
            continue
        if line.startswith("type ") and not headers[chain]:
            headers[chain] = line
            continue
        line = _DEFAULT_BURST_RE.sub(r"\1", line)
        counters = None
        match = _COUNTER_RE.search(line)
        if match:
            counters = (int(match.group(1)), int(match.group(2)))
            line = _COUNTER_RE.sub("counter", line)
        rules.append((chain, line, counters))
    return headers, rules, table_comment


_DNAT_RE = re.compile(
    r'^(?:iifname "(?P<iif>[^"]+)" )?meta nfproto ipv(?P<fam>[46]) (?P<proto>tcp|udp) dport (?P<port>[0-9-]+) '
    r"counter dnat ip6? to (?P<dest>\S+)")


def parse_mapping(line):
    match = _DNAT_RE.match(line)
    if not match:
        return None
    family = int(match.group("fam"))
    port = tuple(int(p) for p in match.group("port").split("-"))
    port = (port[0], port[-1])
    addr, to_port = split_dnat_target(match.group("dest"), family, port)
    return (family, match.group("proto"), match.group("iif"), port, addr, to_port)


class NftablesBackend:
    name = "nftables"

    @staticmethod
    def table(set_name):
        return table_name(set_name)

    @staticmethod
    def comment(set_name):
        return "wgsp:%s" % set_name

    def __init__(self, runner, which=shutil.which):
        self.runner = runner
        self.which = which

    def available(self, family=4):
        return bool(self.which("nft"))

    def installed(self, set_name):
        state = Installed(self.name, set_name)
        if not self.available():
            return state
        table = self.table(set_name)
        rc, out, err = self.runner.run(["nft", "list", "table", "inet", table], check=False)
        if rc != 0:
            if "No such file or directory" in err or "does not exist" in err:
                return state
            self.runner.run(["nft", "list", "table", "inet", table])  # raises with the details
        headers, rules, table_comment = parse_table(out)
        scope = "inet %s" % table
        state.extra["comment"] = table_comment
        state.extra["table"] = True
        for chain, header in headers.items():
            state.chains[(scope, chain)] = header
        for chain, line, counters in rules:
            state.entries.append((scope, chain, line))
            state.counters.append(counters)
            if chain == "prerouting":
                mapping = parse_mapping(line)
                if mapping:
                    state.mappings.add(mapping)
        return state

    def render(self, set_name, rules, installed=None):
        desired = Desired(self.name, set_name)
        if not rules:
            return desired
        scope = "inet %s" % self.table(set_name)
        lines = {"prerouting": [], "postrouting": [], "forward": []}
        seen = set()
        for rule in rules:
            for chain, rendered in render_rule_lines(set_name, rule).items():
                for line in rendered:
                    if line not in seen:
                        seen.add(line)
                        lines[chain].append(line)
            desired.mappings.update(rule.mappings())
        for chain, header in CHAINS:
            desired.chains[(scope, chain)] = header
            desired.entries.extend((scope, chain, line) for line in lines[chain])
        return desired

    def render_file(self, set_name, desired):
        table = self.table(set_name)
        out = ["table inet %s {" % table, "}", "delete table inet %s" % table]
        if desired.present:
            out.append("table inet %s {" % table)
            out.append('\tcomment "%s"' % self.comment(set_name))
            for (_scope, chain), header in desired.chains.items():
                out.append("\tchain %s {" % chain)
                out.append("\t\t%s" % header)
                out.extend("\t\t%s" % rule for (_s, c, rule) in desired.entries if c == chain)
                out.append("\t}")
            out.append("}")
        return "\n".join(out) + "\n"

    def plan(self, installed, desired):
        plan = Plan(self.name, desired.set_name)
        table = "inet %s" % self.table(desired.set_name)
        if not desired.present:
            if installed.present or installed.extra.get("table"):
                plan.actions.append("delete table %s (%d rules)" % (table, len(installed.entries)))
                plan.payloads.append(("inet", "delete table %s\n" % table))
            return plan
        same = (by_chain(installed.entries) == by_chain(desired.entries) and installed.chains == desired.chains
                and installed.extra.get("comment") == self.comment(desired.set_name))
        if not same:
            plan.actions.append("%s table %s (%d rules, was %d)" % (
                "replace" if installed.extra.get("table") else "create", table,
                len(desired.entries), len(installed.entries)))
            plan.payloads.append(("inet", self.render_file(desired.set_name, desired)))
        return plan

    def apply(self, plan):
        for _family, payload in plan.payloads:
            self.runner.run(["nft", "-c", "-f", "/dev/stdin"], data=payload)
        for _family, payload in plan.payloads:
            self.runner.run(["nft", "-f", "/dev/stdin"], data=payload)
