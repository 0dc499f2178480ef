# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Forwarding rules of ``wg_dnat``: parsing (structured and compact), validation, normalisation.
No command is run here except the optional ``wg`` listen-port probe (injected, so unit tests can
replace it); Docker container names are resolved by ``containers.DockerResolver``.

A normalised ``Rule`` is backend neutral: one protocol set, one address family, one port range,
one target. The backends (``iptables``, ``nftables``) render it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.checks import (
    check_docker_name,
    check_ifname,
    check_no_control,
    check_port,
    check_port_range,
    check_to_ports,
    ports_value,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import ValidationError, WgspError
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.forms import compact_rule
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.net import (
    ANY_NETWORKS,
    address_text,
    check_dnat_target,
    check_match_networks,
)


SET_NAME_RE = re.compile(r"^[a-z0-9_]{1,12}$")
PROTOS = {"tcp": ("tcp",), "udp": ("udp",), "both": ("tcp", "udp"), "all": ("tcp", "udp")}
RULE_KEYS = ("proto", "in_interface", "port", "to_address", "to_container", "to_port",
             "out_interface", "masquerade", "sources", "log")


def check_set_name(value):
    check_no_control("name", value)
    if not isinstance(value, str) or not SET_NAME_RE.match(value):
        raise ValidationError("name", "must be 1-12 characters from a-z 0-9 _ (it names chains and tables), got %r" % (value,))
    return value


def check_proto(field, value):
    check_no_control(field, value)
    text = str(value).strip().lower() if value is not None else "tcp"
    if text not in PROTOS:
        raise ValidationError(field, "must be one of tcp, udp, both, all (got %r)" % (value,))
    return PROTOS[text]


def format_ports(ports, sep="-"):
    low, high = ports
    return str(low) if low == high else "%d%s%d" % (low, sep, high)


class Rule:
    """One normalised forwarding rule (immutable by convention)."""

    __slots__ = ("index", "protos", "family", "in_interface", "port", "to_address", "to_port",
                 "out_interface", "masquerade", "sources", "log", "container", "network")

    def __init__(self, protos, in_interface, port, to_address, to_port, out_interface=None,
                 masquerade=False, sources=(), log=False, container=None, network=None, index=None):
        self.index = index
        self.protos = tuple(protos)
        self.in_interface = in_interface
        self.port = tuple(port)
        self.to_address = str(to_address)
        self.family = ipaddress.ip_address(self.to_address).version
        self.to_port = tuple(to_port)
        self.out_interface = out_interface
        self.masquerade = bool(masquerade)
        self.sources = tuple(sources)
        self.log = bool(log)
        self.container = container
        self.network = network

    def key(self):
        """Everything that reaches the ruleset (the container name does not)."""
        return (self.protos, self.family, self.in_interface, self.port, self.to_address, self.to_port,
                self.out_interface, self.masquerade, self.sources, self.log)

    def mappings(self):
        """``(family, proto, in_interface, port, to_address, to_port)`` per protocol."""
        return [(self.family, proto, self.in_interface, self.port, self.to_address, self.to_port)
                for proto in self.protos]

    def to_dict(self):
        proto = "both" if len(self.protos) == 2 else self.protos[0]
        result = {
            "proto": proto,
            "family": "ipv%d" % self.family,
            "in_interface": self.in_interface,
            "port": ports_value(self.port),
            "to_address": self.to_address,
            "to_port": ports_value(self.to_port),
            "out_interface": self.out_interface,
            "masquerade": self.masquerade,
            "sources": list(self.sources),
            "log": self.log,
            "to_container": self.container,
        }
        if self.container:
            result["docker_network"] = self.network
        return result

    def __eq__(self, other):
        return isinstance(other, Rule) and self.key() == other.key()

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash(self.key())

    def __repr__(self):
        return "Rule(%r)" % (self.to_dict(),)


def parse_compact(field, text):
    """One compact string (share ``name[:proto]:port`` or publish ``[proto:]public_port:address:port``)
    -> a structured rule dict, by the collection's one compact-form parser (``_common.forms``).
    Interfaces, masquerade, sources and log come from the module-level defaults."""
    check_no_control(field, text)
    if not isinstance(text, str) or not text.strip():
        raise ValidationError(field, "must be a non-empty string like 'dummy:tcp:80' or '80:10.7.0.2:80'")
    return compact_rule(field, text)


class RuleSpec:
    """A validated rule before container resolution (``to_address`` may still be unknown)."""

    def __init__(self, field, protos, in_interface, port, to_address, container, to_port,
                 out_interface, masquerade, sources, log):
        self.field = field
        self.protos = protos
        self.in_interface = in_interface
        self.port = port
        self.to_address = to_address
        self.container = container
        self.to_port = to_port
        self.out_interface = out_interface
        self.masquerade = masquerade
        self.sources = sources
        self.log = log


def _pick(raw, key, defaults):
    value = raw.get(key)
    if value is None:
        value = defaults.get(key)
    return value


def validate_rule(field, raw, defaults, networks=()):
    """Validate one structured rule dict (compact strings are parsed first); returns a RuleSpec.

    ``networks``: the host's connected networks, when known (their broadcast addresses are refused
    as targets)."""
    if not isinstance(raw, dict):
        raise ValidationError(field, "must be a dict or a compact string")
    unknown = sorted(set(raw) - set(RULE_KEYS))
    if unknown:
        raise ValidationError(field, "unknown key(s): %s" % ", ".join(unknown))
    protos = check_proto(field + ".proto", raw.get("proto") or "tcp")
    if raw.get("port") is None:
        raise ValidationError(field + ".port", "is required")
    port = check_port_range(field + ".port", raw.get("port"))
    to_port = check_to_ports(field + ".to_port", port, raw.get("to_port"))
    address = raw.get("to_address")
    container = raw.get("to_container")
    if (address is None) == (container is None):
        raise ValidationError(field, "needs exactly one of to_address or to_container")
    if address is not None:
        address = address_text(check_dnat_target(field + ".to_address", address, networks))
    else:
        check_docker_name(field + ".to_container", container)
    in_if = _pick(raw, "in_interface", defaults)
    if in_if is not None:
        in_if = check_ifname(field + ".in_interface", in_if)
    out_if = _pick(raw, "out_interface", defaults)
    if out_if is not None:
        out_if = check_ifname(field + ".out_interface", out_if)
    sources = check_match_networks(field + ".sources", _pick(raw, "sources", defaults) or [])
    masquerade = bool(_pick(raw, "masquerade", defaults))
    log = bool(_pick(raw, "log", defaults))
    return RuleSpec(field, protos, in_if, port, address, container, to_port, out_if, masquerade,
                    tuple(sources), log)


def build_rule(spec, address, network=None, index=None):
    """Turn a RuleSpec plus its resolved address into a Rule, checking the address family."""
    family = ipaddress.ip_address(address).version
    for i, src in enumerate(spec.sources):
        if ipaddress.ip_network(src).version != family:
            raise ValidationError(
                "%s.sources[%d]" % (spec.field, i),
                "%s is IPv%d but the target %s is IPv%d" % (src, ipaddress.ip_network(src).version, address, family))
    # a /0 source is every source: the rule is not limited (no source match, no REJECT of others).
    sources = () if any(src in ANY_NETWORKS for src in spec.sources) else spec.sources
    return Rule(spec.protos, spec.in_interface, spec.port, address, spec.to_port, spec.out_interface,
                spec.masquerade, sources, spec.log, container=spec.container, network=network,
                index=index)


def check_protected(specs, protect_ports, listen_ports):
    """Refuse UDP rules whose matched port covers a WireGuard listen port (the tunnel would break).

    ``protect_ports``: ports given by the user; ``listen_ports``: ``{ifname: port}`` detected.
    A rule with ``in_interface`` is checked against the protected ports and the listen ports of
    every WireGuard interface (the tunnel's packets arrive on the underlay, not on ``wg0``).
    """
    protected = set(check_port("protect_ports[%d]" % i, p) for i, p in enumerate(protect_ports or ()))
    protected.update(int(p) for p in (listen_ports or {}).values() if p)
    for spec in specs:
        if "udp" not in spec.protos:
            continue
        for port in sorted(protected):
            if spec.port[0] <= port <= spec.port[1]:
                owners = [name for name, lp in sorted((listen_ports or {}).items()) if lp == port]
                why = ("the WireGuard listen port of %s" % ", ".join(owners)) if owners else "a protected port (protect_ports)"
                raise ValidationError(
                    spec.field + ".port",
                    "%s/udp would forward %d, %s; refusing to break the tunnel" % (format_ports(spec.port), port, why))


def check_conflicts(rules):
    """Two rules that match the same packets with different targets are an error.

    Sweep per (family, in_interface, protocol) over port ranges sorted by start: O(n log n).
    """
    groups = {}
    for order, rule in enumerate(rules):
        for proto in rule.protos:
            groups.setdefault((rule.family, rule.in_interface, proto), []).append((rule.port, order, rule))
    for items in groups.values():
        items.sort(key=lambda item: (item[0], item[1]))
        reach = None  # (highest port so far, the rule reaching it)
        for port, _order, rule in items:
            if reach is not None and port[0] <= reach[0] and reach[1].key() != rule.key():
                first, second = sorted((reach[1], rule), key=rules.index)
                raise ValidationError(
                    _field_of(second),
                    "port %s overlaps %s (port %s) on the same interface and protocol" % (
                        format_ports(second.port), _field_of(first), format_ports(first.port)))
            if reach is None or port[1] > reach[0]:
                reach = (port[1], rule)


def _field_of(rule):
    return rule.index if isinstance(rule.index, str) else "rules[%s]" % rule.index


def check_defaults(defaults):
    """The module-level defaults of the rules, checked even when no rule uses them."""
    for key in ("in_interface", "out_interface"):
        if defaults.get(key) is not None:
            check_ifname(key, defaults[key])
    check_match_networks("sources", defaults.get("sources") or [])


def validate_specs(rules=None, compact_rules=None, defaults=None, protect_ports=None, listen_ports=None,
                   networks=()):
    """Validate every rule (structured and compact) without resolving containers; returns RuleSpecs."""
    defaults = defaults or {}
    check_defaults(defaults)
    for i, port in enumerate(protect_ports or ()):
        check_port("protect_ports[%d]" % i, port)
    specs = []
    for i, raw in enumerate(rules or []):
        specs.append(validate_rule("rules[%d]" % i, raw, defaults, networks))
    for i, text in enumerate(compact_rules or []):
        field = "compact_rules[%d]" % i
        specs.append(validate_rule(field, parse_compact(field, text), defaults, networks))
    check_protected(specs, protect_ports, listen_ports)
    return specs


def resolve_specs(specs, resolver=None):
    """Resolve containers and return the ordered, de-duplicated, conflict-free rule list."""
    result, seen = [], set()
    for spec in specs:
        if spec.container is not None:
            if resolver is None:
                raise WgspError("%s: to_container needs the Docker API, but no resolver is available" % spec.field)
            address, network = resolver(spec.container)
            address = address_text(check_dnat_target(spec.field + ".to_container", address))
        else:
            address, network = spec.to_address, None
        rule = build_rule(spec, address, network, index=spec.field)
        if rule.key() not in seen:
            seen.add(rule.key())
            result.append(rule)
    check_conflicts(result)
    return result


def normalise(rules=None, compact_rules=None, defaults=None, protect_ports=None, listen_ports=None,
              resolver=None, networks=()):
    """Validate everything, resolve containers and return the ordered, de-duplicated rule list.

    ``resolver(container_name) -> (address, network)`` is only called when a rule uses
    ``to_container`` (after all other validation passed, so bad input never reaches Docker).
    """
    specs = validate_specs(rules, compact_rules, defaults, protect_ports, listen_ports, networks)
    return resolve_specs(specs, resolver)


def listen_ports_from_wg(runner):
    """``{ifname: listen_port}`` of all WireGuard interfaces (kernel or wireguard-go), via ``wg``."""
    try:
        rc, out, _err = runner.run(["wg", "show", "all", "listen-port"], check=False)
    except WgspError:
        return {}
    if rc != 0:
        return {}
    ports = {}
    for line in out.splitlines():
        fields = line.split()
        if len(fields) == 2 and fields[1].isdigit() and int(fields[1]) > 0:
            ports[fields[0]] = int(fields[1])
    return ports
