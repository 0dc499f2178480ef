# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backend-neutral state of one rule set: what is installed, what should be, and the plan.

An *entry* is ``(scope, chain, rule)``: ``scope`` names where the chain lives
(``"ipv4 nat"``, ``"ipv6 filter"`` for iptables, ``"inet wgsp-dnat-<set>"`` for nftables), ``rule`` is
the rule text in the form the backend's listing prints it (without counters). A *jump* is
``(scope, parent_chain, rule)``. Comparing entries is exact: order matters within a chain.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.net import split_host_port


class Installed:
    """What a backend found for one set.

    ``entries``: ordered list of entries of the set's own chains/table;
    ``counters``: list of ``(packets, bytes)`` parallel to ``entries`` (``None`` when unknown);
    ``chains``: ``{(scope, chain): header}`` of the set's chains that exist (header: nft chain
    type line, ``""`` for iptables);
    ``jumps``: list of jumps into the set's chains found anywhere (iptables only);
    ``mappings``: set of DNAT mappings ``(family, proto, in_interface, (lo, hi), to_address, (lo, hi))``;
    ``facts``: backend details (e.g. ``{"docker_user": {4: True}}``).
    """

    def __init__(self, backend, set_name):
        self.backend = backend
        self.set_name = set_name
        self.entries = []
        self.counters = []
        self.chains = {}
        self.jumps = []
        self.mappings = set()
        self.facts = {}
        self.extra = {}

    @property
    def present(self):
        return bool(self.chains or self.jumps or self.entries)

    def rules_with_counters(self):
        out = []
        for (scope, chain, rule), counters in zip(self.entries, self.counters or [None] * len(self.entries)):
            item = {"scope": scope, "chain": chain, "rule": rule}
            if counters is not None:
                item["packets"], item["bytes"] = counters
            out.append(item)
        return out


class Desired:
    """What should be installed for one set (same shapes as ``Installed``)."""

    def __init__(self, backend, set_name):
        self.backend = backend
        self.set_name = set_name
        self.entries = []
        self.chains = {}
        self.jumps = []
        self.mappings = set()

    @property
    def present(self):
        return bool(self.chains or self.jumps or self.entries)


class Plan:
    """Human-readable ``actions`` plus the backend's private ``payloads`` to apply them."""

    def __init__(self, backend, set_name):
        self.backend = backend
        self.set_name = set_name
        self.actions = []
        self.payloads = []

    def __bool__(self):
        return bool(self.actions)

    __nonzero__ = __bool__


def rendered_lines(set_name, rules, render_rule_lines, chains):
    """A backend's rules, rendered: ``({chain: [lines]}, mappings)``. Lines keep the rules' order per
    chain; a line two rules render alike is kept once (its first place); ``mappings`` are the rules'
    DNAT mappings. ``render_rule_lines(set_name, rule)`` -> ``{chain: [lines]}`` is the backend's."""
    lines = dict((chain, []) for chain in chains)
    seen = set()
    mappings = set()
    for rule in rules:
        for chain, rendered in render_rule_lines(set_name, rule).items():
            for line in rendered:
                if line not in seen:
                    seen.add(line)
                    lines[chain].append(line)
        mappings.update(rule.mappings())
    return lines, mappings


def interface_matches(in_if, out_if, in_form, out_form):
    """The interface matches of a rule line in a backend's syntax (``in_form % name``)."""
    return ([in_form % in_if] if in_if else []) + ([out_form % out_if] if out_if else [])


def split_dnat_target(dest, port):
    """``addr``, ``[v6addr]:port``, ``v4addr:port`` or with a port range, shifted from a base port
    (``:40000-40010/30000``) or not (as iptables-save and nft print a DNAT target) -> ``(addr, (low,
    high))``; without a port the target port is ``port``."""
    addr, ports = split_host_port(dest)  # an unbracketed IPv6 target carries no port
    ports = (ports or "").partition("/")[0]
    to_port = tuple(int(p) for p in ports.split("-")) if ports else port
    return addr, (to_port[0], to_port[-1])


def by_chain(entries):
    """Entries grouped by ``(scope, chain)`` (sorted), keeping the order inside each chain.

    Listings print chains in their own order (iptables-save sorts them by name); only the order of
    rules inside a chain matters.
    """
    return sorted(entries, key=lambda entry: (entry[0], entry[1]))


def render_lines(state):
    """The set's rules as text lines (for diff mode): ``<scope> <chain>: <rule>`` and jumps."""
    lines = ["%s %s: %s" % entry for entry in by_chain(state.entries)]
    lines.extend("%s %s: %s  (jump)" % jump for jump in state.jumps)
    return lines


def drift(installed, desired):
    """Compare installed with desired: what is missing, what is extra, which jumps are wrong.

    Returns a dict ``{in_sync, missing, extra, missing_jumps, extra_jumps, order}``; ``order``
    is true when the same rules exist in a different order.
    """
    have = by_chain(installed.entries)
    want = by_chain(desired.entries)
    have_set, want_set = set(have), set(want)
    missing = [e for e in want if e not in have_set]
    extra = [e for e in have if e not in want_set]
    order = not missing and not extra and have != want
    missing_jumps = []
    pool = list(installed.jumps)
    for jump in desired.jumps:
        if jump in pool:
            pool.remove(jump)
        else:
            missing_jumps.append(jump)
    extra_jumps = pool
    headers = [key for key, header in desired.chains.items() if installed.chains.get(key) != header]
    headers += [key for key in installed.chains if key not in desired.chains]
    in_sync = not (missing or extra or order or missing_jumps or extra_jumps or headers)
    return {
        "in_sync": in_sync,
        "missing": ["%s %s: %s" % e for e in missing],
        "extra": ["%s %s: %s" % e for e in extra],
        "order": order,
        "missing_jumps": ["%s %s: %s" % j for j in missing_jumps],
        "extra_jumps": ["%s %s: %s" % j for j in extra_jumps],
        "chains": ["%s %s" % key for key in headers],
    }
