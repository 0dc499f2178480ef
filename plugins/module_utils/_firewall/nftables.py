# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""nftables backend of ``wg_dnat``: one owned ``inet`` table per set, replaced atomically.

Table ``inet wgsp-dnat-<set>`` holds three base chains: ``prerouting`` (nat, priority dstnat: LOG and
DNAT), ``postrouting`` (nat, priority srcnat: MASQUERADE) and ``forward`` (filter, priority
filter: exact accepts and the REJECT of other sources). Rules are rendered as ``nft list table``
prints them (counters are stripped before comparing). A change is one ``nft -f`` transaction
that creates the table if missing, deletes it and re-adds it, after ``nft -c -f`` validated it.

Ownership: the table carries the comment ``wgsp:<set>`` (its owner mark). A table of the set's name
with another mark (or none) is not replaced or deleted: the run is refused before any change. The
table was called ``inet wgsp_<set>`` before, which collided with wg_filter's ``wgsp_f_<set>``
(a wg_dnat set ``f_x`` and a wg_filter set ``x``); no name of the ``wgsp-dnat-``/``wgsp-filter-``
scheme can equal an old name. A table under the old name that carries this set's mark is deleted
(by handle) in the transaction that writes the new one.

Note: an accept in this table does not override a drop in another table (e.g. iptables-nft's
FORWARD DROP set by Docker); that is why the ``auto`` backend prefers iptables on Docker hosts.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import shutil

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.net import join_host_port
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.rules import format_ports
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.state import (
    Desired,
    Installed,
    Plan,
    by_chain,
    interface_matches,
    rendered_lines,
    split_dnat_target,
)

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
    return "wgsp-dnat-%s" % set_name


_HANDLE_RE = re.compile(r"^table \S+ \S+ \{ # handle (\d+)$")


def _net(text):
    """nft prints host prefixes without the length."""
    addr, _sep, plen = text.partition("/")
    if plen and int(plen) == (32 if ":" not in addr else 128):
        return addr
    return text


def _ifaces(in_if=None, out_if=None):
    return interface_matches(in_if, out_if, 'iifname "%s"', 'oifname "%s"')


def _dnat_target(rule, proto):
    if rule.to_port == rule.port:
        return rule.to_address  # the destination port is kept as it is
    if rule.port[0] == rule.port[1]:
        return join_host_port(rule.to_address, rule.to_port[0])
    # a remapped range, port by port: a map of each port, as nft lists it (and reads it back)
    shift = rule.to_port[0] - rule.port[0]
    return join_host_port(rule.to_address, "%s dport map { %s }" % (proto, ", ".join(
        "%d : %d" % (p, p + shift) for p in range(rule.port[0], rule.port[1] + 1))))


def render_rule_lines(set_name, rule):
    """``{chain: [lines]}`` for one Rule, in ``nft list`` form."""
    ipk = "ip" if rule.family == 4 else "ip6"
    nfproto = "meta nfproto ipv%d" % rule.family
    tag = 'comment "wgsp:%s"' % set_name
    port = format_ports(rule.port)
    to_port = format_ports(rule.to_port)
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
                                          "dnat %s to %s" % (ipk, _dnat_target(rule, proto)), tag]))
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
    r"counter dnat ip6? to (?P<dest>\S+?)(?::(?:tcp|udp) dport map \{ (?P<map>[0-9 :,]+) \})?(?: |$)")


def parse_mapping(line):
    match = _DNAT_RE.match(line)
    if not match:
        return None
    family = int(match.group("fam"))
    port = tuple(int(p) for p in match.group("port").split("-"))
    port = (port[0], port[-1])
    addr, to_port = split_dnat_target(match.group("dest"), port)
    if match.group("map"):
        targets = [int(pair.split(":")[1]) for pair in match.group("map").split(",")]
        to_port = (min(targets), max(targets))
    return (family, match.group("proto"), match.group("iif"), port, addr, to_port)


class NftablesBackend:
    name = "nftables"

    @staticmethod
    def table(set_name):
        return table_name(set_name)

    @staticmethod
    def legacy_tables(set_name):
        """Names this set's table had before (``wgsp_<set>`` collided with wg_filter's ``wgsp_f_<set>``)."""
        return ["wgsp_%s" % set_name]

    @staticmethod
    def comment(set_name):
        return "wgsp:%s" % set_name

    def __init__(self, runner, which=shutil.which):
        self.runner = runner
        self.which = which

    def available(self, family=4):
        return bool(self.which("nft"))

    def _list(self, table):
        """``nft -a list table inet <table>`` -> ``(handle, headers, rules, comment)``; ``None`` when absent."""
        rc, out, err = self.runner.run(["nft", "-a", "list", "table", "inet", table], check=False)
        if rc != 0:
            if "No such file or directory" in err or "does not exist" in err:
                return None
            self.runner.run(["nft", "-a", "list", "table", "inet", table])  # raises with the details
        handle = None
        for line in out.splitlines():
            match = _HANDLE_RE.match(line.strip())
            if match:
                handle = int(match.group(1))
                break
        headers, rules, table_comment = parse_table(out)
        return handle, headers, rules, table_comment

    def foreign(self, installed):
        """The set's table when it does not carry this set's owner mark (its comment): not ours to touch."""
        if not installed.extra.get("table"):
            return []
        found, want = installed.extra.get("comment"), self.comment(installed.set_name)
        if found == want:
            return []
        text = "table inet %s has owner mark %s, not %s" % (self.table(installed.set_name), repr(found), repr(want))
        return [text]

    def installed(self, set_name):
        state = Installed(self.name, set_name)
        state.extra["legacy"] = []
        if not self.available():
            return state
        # A table this set wrote under an old name (recognised by its owner mark) is read as part of
        # the set: the next change deletes it (by handle, in the same transaction). A table of that
        # name with another mark is someone else's and is left alone.
        for old in self.legacy_tables(set_name):
            listing = self._list(old)
            if listing is None or listing[3] != self.comment(set_name):
                continue
            handle, headers, rules, _comment = listing
            state.extra["legacy"].append((old, handle))
            self._add(state, "inet %s" % old, headers, rules)
        table = self.table(set_name)
        listing = self._list(table)
        if listing is None:
            return state
        _handle, headers, rules, table_comment = listing
        state.extra["comment"] = table_comment
        state.extra["table"] = True
        self._add(state, "inet %s" % table, headers, rules)
        return state

    @staticmethod
    def _add(state, scope, headers, rules):
        for chain, header in headers.items():
            state.chains[(scope, chain)] = header
        for chain, line, counters in rules:
            state.entries.append((scope, chain, line))
            state.counters.append(counters)
            if chain == "prerouting":
                mapping = parse_mapping(line)
                if mapping:
                    state.mappings.add(mapping)

    def render(self, set_name, rules, installed=None):
        if not rules:
            return Desired(self.name, set_name)
        lines, mappings = rendered_lines(set_name, rules, render_rule_lines, ("prerouting", "postrouting", "forward"))
        desired = self.desired_table(set_name, CHAINS, lines)
        desired.mappings.update(mappings)
        return desired

    def desired_table(self, set_name, chains, lines):
        """The set's table: each ``(chain, header)`` of ``chains`` with its ``lines[chain]``."""
        desired = Desired(self.name, set_name)
        scope = "inet %s" % self.table(set_name)
        for chain, header in chains:
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
        scope_of = dict((name, "inet %s" % name) for name, _handle in installed.extra.get("legacy", []))
        own = [e for e in installed.entries if e[0] == table]
        payload = ""
        if not desired.present:
            if installed.extra.get("table"):
                plan.actions.append("delete table %s (%d rules)" % (table, len(own)))
                payload += "delete table %s\n" % table
        else:
            same = (by_chain(own) == by_chain(desired.entries)
                    and dict((k, v) for k, v in installed.chains.items() if k[0] == table) == desired.chains
                    and installed.extra.get("comment") == self.comment(desired.set_name))
            if not same:
                plan.actions.append("%s table %s (%d rules, was %d)" % (
                    "replace" if installed.extra.get("table") else "create", table,
                    len(desired.entries), len(own)))
                payload += self.render_file(desired.set_name, desired)
        for name, handle in installed.extra.get("legacy", []):
            # by handle: exactly the table whose owner mark was read, in the same transaction
            count = len([e for e in installed.entries if e[0] == scope_of[name]])
            plan.actions.append("delete table inet %s (this set's old table name, %d rules)" % (name, count))
            payload += ("delete table inet handle %d\n" % handle if handle is not None
                        else "delete table inet %s\n" % name)
        if payload:
            plan.payloads.append(("inet", payload))
        return plan

    def apply(self, plan):
        for _family, payload in plan.payloads:
            self.runner.run(["nft", "-c", "-f", "/dev/stdin"], data=payload)
        for _family, payload in plan.payloads:
            self.runner.run(["nft", "-f", "/dev/stdin"], data=payload)
