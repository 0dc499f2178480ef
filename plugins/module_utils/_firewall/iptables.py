# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""iptables backend of ``wg_dnat``: owned chains, one jump each, one restore per family.

Per set ``<s>`` (upper-cased ``<S>``) and address family:

- ``nat``    ``WGSP-<S>-PRE``  (jump from PREROUTING): LOG (optional) and DNAT;
- ``nat``    ``WGSP-<S>-POST`` (jump from POSTROUTING): MASQUERADE of the set's DNAT'ed flows;
- ``filter`` ``WGSP-<S>-FWD``  (jump from DOCKER-USER when that chain exists, else FORWARD): the
  exact accepts (original and reply direction) and, when ``sources`` limits a rule, a REJECT of
  the rule's other DNAT'ed traffic.

Every rule carries ``-m comment --comment "wgsp:<s>"``. Rules are rendered exactly as
``iptables-save`` prints them, so the comparison with the installed chains is a plain list
comparison. Changes go in one ``iptables-restore --noflush`` per family (``:CHAIN - [0:0]``
flushes just that chain), after ``iptables-restore --test`` of every family's payload.

A jump (``-j``/``-g``) into one of our chains without our comment is an admin's: it is never
deleted, and a plan that would delete a chain it targets is refused before anything changes.
iptables-nft commits each ``*table`` of a restore on its own, so a failed apply can leave earlier
tables (and families) committed: ``apply`` then restores our chains and jumps in every table to the
snapshot taken just before (jumps at their old positions) and fails naming what blocked it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import shutil

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import WgspError
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.net import join_host_port
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.rules import format_ports
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.state import (
    Desired,
    Installed,
    Plan,
    interface_matches,
    rendered_lines,
    split_dnat_target,
)

TOOLS = {4: ("iptables-save", "iptables-restore"), 6: ("ip6tables-save", "ip6tables-restore")}
HOOKS = (("nat", "PRE", "PREROUTING"), ("nat", "POST", "POSTROUTING"), ("filter", "FWD", "FORWARD"))
DOCKER_USER = "DOCKER-USER"


def chain_name(set_name, suffix):
    return "WGSP-%s-%s" % (set_name.upper(), suffix)


def comment(set_name):
    return '-m comment --comment "wgsp:%s"' % set_name


def _net(text, family):
    """A source/destination as iptables-save prints it (always with a prefix length)."""
    return text if "/" in text else "%s/%d" % (text, 32 if family == 4 else 128)


def _dnat_target(rule):
    if rule.to_port == rule.port:
        return rule.to_address  # the destination port is kept as it is
    if rule.port[0] == rule.port[1]:
        return join_host_port(rule.to_address, rule.to_port[0])
    # a remapped range, port by port: /base shifts each port by to_port - base (DNAT revision 2)
    return join_host_port(rule.to_address, "%s/%d" % (format_ports(rule.to_port), rule.port[0]))


def _ifaces(in_if=None, out_if=None):
    return interface_matches(in_if, out_if, "-i %s", "-o %s")


def render_rule_lines(set_name, rule):
    """``{suffix: [lines]}`` for one Rule, in iptables-save form (``-A CHAIN ...``)."""
    pre, post, fwd = (chain_name(set_name, s) for s in ("PRE", "POST", "FWD"))
    tag = comment(set_name)
    port = format_ports(rule.port, ":")
    to_port = format_ports(rule.to_port, ":")
    dest = _net(rule.to_address, rule.family)
    reject = "icmp-port-unreachable" if rule.family == 4 else "icmp6-port-unreachable"
    out = {"PRE": [], "POST": [], "FWD": []}
    for proto in rule.protos:
        match = "-p %s -m %s" % (proto, proto)
        if rule.log:
            for src in rule.sources or (None,):
                out["PRE"].append(" ".join(
                    ["-A", pre] + (["-s", _net(src, rule.family)] if src else []) + _ifaces(rule.in_interface)
                    + [match, "--dport", port, tag, '-j LOG --log-prefix "wgsp-%s "' % set_name]))
        out["PRE"].append(" ".join(
            ["-A", pre] + _ifaces(rule.in_interface)
            + [match, "--dport", port, tag, "-j DNAT --to-destination", _dnat_target(rule)]))
        ct_orig = "-m conntrack --ctstate DNAT --ctorigdstport %s" % port
        for src in rule.sources or (None,):
            out["FWD"].append(" ".join(
                ["-A", fwd] + (["-s", _net(src, rule.family)] if src else []) + ["-d", dest]
                + _ifaces(rule.in_interface, rule.out_interface)
                + [match, "--dport", to_port, ct_orig, tag, "-j ACCEPT"]))
        out["FWD"].append(" ".join(
            ["-A", fwd, "-s", dest] + _ifaces(rule.out_interface, rule.in_interface)
            + [match, "--sport", to_port, "-m conntrack --ctstate DNAT --ctdir REPLY", tag, "-j ACCEPT"]))
        if rule.sources:
            out["FWD"].append(" ".join(
                ["-A", fwd, "-d", dest] + _ifaces(rule.in_interface)
                + [match, "--dport", to_port, ct_orig, tag, "-j REJECT --reject-with", reject]))
        if rule.masquerade:
            out["POST"].append(" ".join(
                ["-A", post, "-d", dest] + _ifaces(None, rule.out_interface)
                + [match, "--dport", to_port, ct_orig, tag, "-j MASQUERADE"]))
    return out


def parse_save(text):
    """Parse ``iptables-save -c`` output: ``{table: {"chains": {name: policy}, "rules": [(chain, line, (p, b))]}}``."""
    tables = {}
    current = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("*"):
            current = tables.setdefault(line[1:], {"chains": {}, "rules": []})
            continue
        if current is None or line == "COMMIT":
            continue
        if line.startswith(":"):
            fields = line[1:].split()
            current["chains"][fields[0]] = fields[1] if len(fields) > 1 else "-"
            continue
        counters = None
        match = re.match(r"^\[(\d+):(\d+)\]\s+(.*)$", line)
        if match:
            counters = (int(match.group(1)), int(match.group(2)))
            line = match.group(3)
        fields = line.split(None, 2)
        if len(fields) >= 2 and fields[0] == "-A":
            current["rules"].append((fields[1], line, counters))
    return tables


_DNAT_RE = re.compile(
    r"^-A \S+(?: -i (?P<iif>\S+))? -p (?P<proto>tcp|udp) -m (?:tcp|udp) --dport (?P<port>[0-9:]+) .*"
    r"-j DNAT --to-destination (?P<dest>\S+)$")


def parse_mapping(line, family):
    """The DNAT mapping of one installed PRE line, or None."""
    match = _DNAT_RE.match(line)
    if not match:
        return None
    port = tuple(int(p) for p in match.group("port").split(":"))
    port = (port[0], port[-1])
    addr, to_port = split_dnat_target(match.group("dest"), port)
    return (family, match.group("proto"), match.group("iif"), port, addr, to_port)


class IptablesBackend:
    name = "iptables"
    # (table, chain suffix, built-in parent) of every chain a set of this kind may own, and the
    # tables those chains are in (read, planned and restored in this order).
    hooks = HOOKS
    tables = ("nat", "filter")

    def __init__(self, runner, which=shutil.which):
        self.runner = runner
        self.which = which

    def available(self, family=4):
        return all(self.which(tool) for tool in TOOLS[family])

    def _scope(self, family, table):
        return "ipv%d %s" % (family, table)

    def save(self, family):
        _rc, out, _err = self.runner.run([TOOLS[family][0], "-c"])
        return parse_save(out)

    def docker_chains(self):
        """True when Docker's chains exist (IPv4): DOCKER or DOCKER-USER in filter or DOCKER in nat."""
        if not self.available(4):
            return False
        tables = self.save(4)
        filt = tables.get("filter", {}).get("chains", {})
        nat = tables.get("nat", {}).get("chains", {})
        return "DOCKER" in filt or DOCKER_USER in filt or "DOCKER" in nat

    # The comment every rule and jump of the set carries: a jump without it is not ours.
    marker = staticmethod(comment)

    def foreign(self, installed):
        """Chains of the set's names holding rules of which none carries the set's owner mark.

        Such a chain was not written by this set (an admin's, or another tool's): it is not replaced
        or deleted. An empty chain has nothing to lose; a hand-added rule next to marked ones is
        repaired like any drift.
        """
        mark = self.marker(installed.set_name)
        found = []
        for scope, chain in sorted(installed.chains):
            rules = [r for (s, c, r) in installed.entries if (s, c) == (scope, chain)]
            if rules and not any(mark in rule for rule in rules):
                found.append("%s chain %s holds %d rule(s), none with owner mark %s" % (scope, chain, len(rules), mark))
        return found

    def installed(self, set_name):
        """Our chains, their rules and our jumps; ``facts["foreign_jumps"]`` lists the jumps into our
        chains that others made, ``facts["jump_positions"]`` each jump's 1-based place in its chain."""
        state = Installed(self.name, set_name)
        ours = dict((chain_name(set_name, s), (t, s)) for t, s, _h in self.hooks)
        jump_re = re.compile(r" -[jg] (%s)$" % "|".join(re.escape(c) for c in ours))
        marker = self.marker(set_name)
        state.facts["docker_user"] = {}
        state.facts["foreign_jumps"] = []
        state.facts["jump_positions"] = {}
        for family in (4, 6):
            if not self.available(family):
                continue
            tables = self.save(family)
            state.facts["docker_user"][family] = DOCKER_USER in tables.get("filter", {}).get("chains", {})
            for table in self.tables:
                data = tables.get(table, {"chains": {}, "rules": []})
                scope = self._scope(family, table)
                for chain in ours:
                    if ours[chain][0] == table and chain in data["chains"]:
                        state.chains[(scope, chain)] = ""
                position = {}
                for chain, line, counters in data["rules"]:
                    position[chain] = position.get(chain, 0) + 1
                    if chain in ours:
                        state.entries.append((scope, chain, line))
                        state.counters.append(counters)
                        if ours[chain][1] == "PRE":
                            mapping = parse_mapping(line, family)
                            if mapping:
                                state.mappings.add(mapping)
                    elif jump_re.search(line):
                        if marker not in line:
                            state.facts["foreign_jumps"].append((scope, chain, line))
                            continue
                        state.jumps.append((scope, chain, line))
                        state.facts["jump_positions"].setdefault((scope, chain, line), position[chain])
        return state

    def render(self, set_name, rules, installed=None):
        desired = Desired(self.name, set_name)
        docker_user = (installed.facts.get("docker_user", {}) if installed is not None else {})
        for family in (4, 6):
            family_rules = [r for r in rules if r.family == family]
            if not family_rules:
                continue
            if not self.available(family):
                raise WgspError("rules need IPv%d but %s is not installed" % (family, " / ".join(TOOLS[family])))
            lines, mappings = rendered_lines(set_name, family_rules, render_rule_lines, ("PRE", "POST", "FWD"))
            desired.mappings.update(mappings)
            for table, suffix, hook in HOOKS:
                scope = self._scope(family, table)
                chain = chain_name(set_name, suffix)
                desired.chains[(scope, chain)] = ""
                desired.entries.extend((scope, chain, line) for line in lines[suffix])
                parent = DOCKER_USER if (suffix == "FWD" and docker_user.get(family)) else hook
                desired.jumps.append((scope, parent, "-A %s %s -j %s" % (parent, comment(set_name), chain)))
        return desired

    def plan(self, installed, desired, positions=None):
        """The restore payload of each family. ``positions`` (``{jump: place}``, a snapshot's
        ``jump_positions``) puts inserted jumps back at those places instead of first."""
        check_blockers(installed, desired)
        positions = positions or {}
        plan = Plan(self.name, desired.set_name)
        for family in (4, 6):
            tables = {}
            for table in self.tables:
                scope = self._scope(family, table)
                decl, deletes, appends, inserts, removes = [], [], [], [], []
                want_chains = [c for (s, c) in desired.chains if s == scope]
                have_chains = [c for (s, c) in installed.chains if s == scope]
                for chain in want_chains:
                    want = [r for (s, c, r) in desired.entries if s == scope and c == chain]
                    have = [r for (s, c, r) in installed.entries if s == scope and c == chain]
                    if chain not in have_chains or want != have:
                        plan.actions.append("%s: %s chain %s (%d rules, was %d)" % (
                            scope, "write" if chain in have_chains else "create", chain, len(want), len(have)))
                        decl.append(":%s - [0:0]" % chain)
                        appends.extend(want)
                pool = [(c, r) for (s, c, r) in installed.jumps if s == scope]
                for s, parent, line in desired.jumps:
                    if s != scope:
                        continue
                    if (parent, line) in pool:
                        pool.remove((parent, line))
                    else:
                        plan.actions.append("%s: insert jump %s" % (scope, line.replace("-A ", "", 1)))
                        inserts.append("-I %s %d %s" % (parent, positions.get((s, parent, line), 1),
                                                        line.split(None, 2)[2]))
                for parent, line in pool:
                    plan.actions.append("%s: delete jump %s" % (scope, line.replace("-A ", "", 1)))
                    deletes.append("-D %s %s" % (parent, line.split(None, 2)[2]))
                for chain in have_chains:
                    if chain not in want_chains:
                        plan.actions.append("%s: delete chain %s" % (scope, chain))
                        decl.append(":%s - [0:0]" % chain)
                        removes.append("-X %s" % chain)
                body = decl + deletes + appends + inserts + removes
                if body:
                    tables[table] = body
            if tables:
                payload = []
                for table in self.tables:
                    if table in tables:
                        payload.append("*%s" % table)
                        payload.extend(tables[table])
                        payload.append("COMMIT")
                plan.payloads.append((family, "\n".join(payload) + "\n"))
        return plan

    def apply(self, plan):
        """Validate every family's payload, then apply each in one ``*-restore --noflush``.

        iptables-nft commits table by table: on a failure, whatever was committed is rolled back to
        the snapshot of our chains and jumps taken just before, and the error names the foreign
        jumps into our chains (the usual blocker) and the rollback's outcome.
        """
        for family, payload in plan.payloads:
            self.runner.run([TOOLS[family][1], "-w", "--noflush", "--test"], data=payload)
        snapshot = self.installed(plan.set_name)
        for family, payload in plan.payloads:
            try:
                self.runner.run([TOOLS[family][1], "-w", "--noflush"], data=payload)
            except WgspError as exc:
                raise self._rolled_back(exc, snapshot)

    def rollback(self, snapshot):
        """Bring our chains and jumps back to ``snapshot`` (an ``installed`` result)."""
        previous = Desired(self.name, snapshot.set_name)
        previous.chains = dict(snapshot.chains)
        previous.entries = list(snapshot.entries)
        previous.jumps = list(snapshot.jumps)
        back = self.plan(self.installed(snapshot.set_name), previous, positions=snapshot.facts["jump_positions"])
        for family, payload in back.payloads:
            self.runner.run([TOOLS[family][1], "-w", "--noflush"], data=payload)

    def _rolled_back(self, exc, snapshot):
        """The error of a failed apply, after rolling back (``exc`` keeps its details)."""
        blockers = self.installed(snapshot.set_name).facts["foreign_jumps"]
        try:
            self.rollback(snapshot)
            outcome = "the set's previous rules were rolled back"
        except WgspError as again:
            outcome = "rolling back the set's previous rules failed too: %s" % again.msg
        msg = "applying the %s rules of set %s failed: %s" % (self.name, snapshot.set_name, exc.msg)
        if blockers:
            msg += "; rules not managed by this set jump into its chains: %s" % describe_jumps(blockers)
        exc.msg = "%s; %s" % (msg, outcome)
        exc.args = (exc.msg,)
        return exc


def describe_jumps(jumps):
    return "; ".join("%s: %s" % (scope, line) for scope, _parent, line in jumps)


def check_blockers(installed, desired):
    """Refuse, before any change, to delete a chain that a jump of someone else's still targets."""
    foreign = installed.facts.get("foreign_jumps", [])
    going = set(key for key in installed.chains if key not in desired.chains)
    blockers = [jump for jump in foreign if (jump[0], jump[2].split()[-1]) in going]
    if blockers:
        raise WgspError(
            "set %s: cannot delete chain(s) %s: rules not managed by this set jump into them: %s "
            "(remove those rules first; nothing was changed)" % (
                installed.set_name, ", ".join(sorted(set("%s %s" % (j[0], j[2].split()[-1]) for j in blockers))),
                describe_jumps(blockers)), blockers=[list(j) for j in blockers])
