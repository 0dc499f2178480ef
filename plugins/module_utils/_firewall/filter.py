# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``wg_filter``: one named filter set on an interface (input) or an interface pair (forward).

Validation turns the module's parameters into a ``FilterSet``; two backends render it with the
same owned-chain / owned-table pipeline as ``wg_dnat`` (``backend.RuleSet``):

- iptables: chain ``WGSP-<NAME>-IN`` (hook input) or ``WGSP-<NAME>-FLT`` (hook forward) in the
  filter table of each address family, reached by ONE jump from INPUT (``-i <in>``) or FORWARD
  (``-i <in> [-o <out>]``; from DOCKER-USER when that chain exists). The chain holds the
  established accept, the allow-list (each entry optionally preceded by a LOG of its new
  connections), the rate-limited LOG and ends with the policy (none for ``continue``). Rules carry
  ``-m comment --comment "wgsp-f:<name>"``. The suffixes never collide with wg_dnat's
  ``-PRE``/``-POST``/``-FWD``.
- nftables: table ``inet wgsp-filter-<name>`` (wg_dnat's is ``wgsp-dnat-<name>``: the prefixes
  differ and a set name has no ``-``, so the two never collide) with one base chain on the hook;
  every rule matches the interface(s), so other traffic is not affected. The old name
  ``wgsp_f_<name>`` is migrated when it carries this set's owner mark (see ``_fw_nftables``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.net import ANY_NETWORKS, check_match_networks
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import (
    ValidationError,
    WgspError,
    describe,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.checks import (
    check_ifname,
    check_no_control,
    check_port_range,
    ports_value,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.iptables import (
    DOCKER_USER,
    TOOLS,
    IptablesBackend,
    chain_name,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.nftables import NftablesBackend
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.rules import check_set_name, format_ports
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.state import Desired, interface_matches

HOOKS = {"input": ("IN", "INPUT"), "forward": ("FLT", "FORWARD")}
POLICIES = ("drop", "reject", "accept", "continue")
ALLOW_PROTOS = {"tcp": ("tcp",), "udp": ("udp",), "both": ("tcp", "udp"), "icmp": ("icmp",)}
ALLOW_KEYS = ("proto", "port", "sources", "destinations")
LOG_LIMIT = "5/min"


def tag(set_name):
    return "wgsp-f:%s" % set_name


def ipt_comment(set_name):
    """The iptables comment match every rule and jump of the set carries."""
    return '-m comment --comment "%s"' % tag(set_name)


def log_prefix(set_name):
    return "wgsp-%s " % set_name


def accepted_log_prefix(set_name):
    """The prefix of the new connections an allow entry accepts (``log_accepted``); a set name has
    no ``-``, so it never reads as another set's policy prefix."""
    return "wgsp-%s-new " % set_name


class Allow:
    """One normalised allow entry: protocols, optional port range, address lists, families."""

    __slots__ = ("field", "protos", "port", "sources", "destinations", "families")

    def __init__(self, field, protos, port, sources, destinations):
        self.field = field
        self.protos = tuple(protos)
        self.port = port
        self.sources = tuple(sources)
        self.destinations = tuple(destinations)
        versions = set(ipaddress.ip_network(n).version for n in self.sources + self.destinations)
        self.families = tuple(sorted(versions)) if versions else (4, 6)

    def to_dict(self):
        proto = "both" if len(self.protos) == 2 else self.protos[0]
        port = None if self.port is None else ports_value(self.port)
        return {"proto": proto, "port": port, "sources": list(self.sources),
                "destinations": list(self.destinations)}


class FilterSet:
    """The validated desired state of one filter set."""

    def __init__(self, name, hook, in_interface, out_interface, allows, policy, established, log,
                 log_accepted=False):
        self.name = name
        self.hook = hook
        self.in_interface = in_interface
        self.out_interface = out_interface
        self.allows = list(allows)
        self.policy = policy
        self.established = bool(established)
        self.log = bool(log)
        self.log_accepted = bool(log_accepted)

    def families(self):
        found = set()
        for allow in self.allows:
            found.update(allow.families)
        return found

    def to_dict(self):
        return {"name": self.name, "hook": self.hook, "in_interface": self.in_interface,
                "out_interface": self.out_interface, "policy": self.policy, "established": self.established,
                "log": self.log, "log_accepted": self.log_accepted, "allow": [a.to_dict() for a in self.allows]}


def validate_allow(field, raw):
    if not isinstance(raw, dict):
        raise ValidationError(field, "must be a dict with proto, port, sources, destinations")
    unknown = sorted(set(raw) - set(ALLOW_KEYS))
    if unknown:
        raise ValidationError(field, "unknown key(s): %s" % ", ".join(unknown))
    proto = raw.get("proto")
    check_no_control(field + ".proto", proto)
    proto = "tcp" if proto is None else str(proto).strip().lower()
    if proto not in ALLOW_PROTOS:
        raise ValidationError(field + ".proto", "must be one of tcp, udp, both, icmp (got %s)" % describe(raw.get("proto")))
    port = raw.get("port")
    if port is not None and port != "":
        if proto == "icmp":
            raise ValidationError(field + ".port", "is not allowed with proto icmp")
        port = check_port_range(field + ".port", port)
    else:
        port = None
    sources = check_match_networks(field + ".sources", raw.get("sources"))
    destinations = check_match_networks(field + ".destinations", raw.get("destinations"))
    versions = set(ipaddress.ip_network(n).version for n in sources + destinations)
    if len(versions) > 1:
        raise ValidationError(field, "mixes IPv4 and IPv6 addresses in sources/destinations; use one entry per family")
    return Allow(field, ALLOW_PROTOS[proto], port, sources, destinations)


def validate_filter(params):
    """``wg_filter`` parameters (argspec defaults applied) -> ``FilterSet`` (``None`` for absent)."""
    name = check_set_name(params["name"])
    hook = params.get("hook") or "input"
    if hook not in HOOKS:
        raise ValidationError("hook", "must be input or forward (got %s)" % describe(hook))
    policy = params.get("policy") or "drop"
    if policy not in POLICIES:
        raise ValidationError("policy", "must be one of %s (got %s)" % (", ".join(POLICIES), describe(policy)))
    in_if = params.get("in_interface")
    out_if = params.get("out_interface")
    if in_if is not None:
        in_if = check_ifname("in_interface", in_if)
    if out_if is not None:
        out_if = check_ifname("out_interface", out_if)
        if hook != "forward":
            raise ValidationError("out_interface", "is only allowed with hook forward")
    allows = []
    for i, raw in enumerate(params.get("allow") or []):
        allow = validate_allow("allow[%d]" % i, dict((k, v) for k, v in raw.items() if v is not None)
                               if isinstance(raw, dict) else raw)
        if all(allow.to_dict() != a.to_dict() for a in allows):
            allows.append(allow)
    if params.get("state", "present") != "present":
        return None
    if in_if is None and not (hook == "forward" and out_if is not None):
        raise ValidationError("in_interface", "is required when state is present (with hook forward, "
                                              "out_interface alone is enough)")
    return FilterSet(name, hook, in_if, out_if, allows, policy, params.get("established", True),
                     params.get("log", False), params.get("log_accepted", False))


def logs_policy(fset):
    """Whether the set logs what its policy drops or rejects (an accepting policy logs nothing)."""
    return fset.log and fset.policy in ("drop", "reject")


# ---------------------------------------------------------------------------------------------
# iptables


def render_iptables_lines(fset, family):
    """The set's chain for one family, in ``iptables-save`` form."""
    suffix, _hook = HOOKS[fset.hook]
    chain = chain_name(fset.name, suffix)
    comment = ipt_comment(fset.name)
    lines = []
    if fset.established:
        lines.append("-A %s -m conntrack --ctstate RELATED,ESTABLISHED %s -j ACCEPT" % (chain, comment))
    for allow in fset.allows:
        if family not in allow.families:
            continue
        for src in allow.sources or (None,):
            for dst in allow.destinations or (None,):
                for proto in allow.protos:
                    parts = ["-A", chain]
                    if src and src not in ANY_NETWORKS:  # the chain's family already says "any"
                        parts += ["-s", src]
                    if dst and dst not in ANY_NETWORKS:
                        parts += ["-d", dst]
                    if proto == "icmp":
                        parts += ["-p", "icmp" if family == 4 else "ipv6-icmp"]
                    else:
                        parts += ["-p", proto]
                        if allow.port is not None:
                            parts += ["-m", proto, "--dport", format_ports(allow.port, ":")]
                    for line in ([" ".join(parts + ["-m conntrack --ctstate NEW", comment, '-j LOG --log-prefix "%s"'
                                                    % accepted_log_prefix(fset.name)])]
                                 if fset.log_accepted else []) + [" ".join(parts + [comment, "-j ACCEPT"])]:
                        if line not in lines:
                            lines.append(line)
    if logs_policy(fset):
        lines.append('-A %s -m limit --limit %s %s -j LOG --log-prefix "%s"' % (
            chain, LOG_LIMIT, comment, log_prefix(fset.name)))
    if fset.policy == "drop":
        lines.append("-A %s %s -j DROP" % (chain, comment))
    elif fset.policy == "reject":
        lines.append("-A %s %s -j REJECT --reject-with %s" % (
            chain, comment, "icmp-port-unreachable" if family == 4 else "icmp6-port-unreachable"))
    elif fset.policy == "accept":
        lines.append("-A %s %s -j ACCEPT" % (chain, comment))
    # "continue": no verdict, the packet returns to the parent chain
    return chain, lines


class FilterIptablesBackend(IptablesBackend):
    """iptables backend of wg_filter: the dnat backend's read/plan/apply with other chains."""

    hooks = tuple(("filter", suffix, parent) for suffix, parent in (HOOKS["input"], HOOKS["forward"]))

    marker = staticmethod(ipt_comment)

    def render(self, set_name, rules, installed=None):
        desired = Desired(self.name, set_name)
        if not rules:
            return desired
        (fset,) = rules
        docker_user = (installed.facts.get("docker_user", {}) if installed is not None else {})
        _suffix, hook = HOOKS[fset.hook]
        for family in (4, 6):
            if not self.available(family):
                # Without ip6tables the IPv6 side cannot be filtered; only IPv6-only entries are an error.
                if family == 4 or any(a.families == (family,) for a in fset.allows):
                    raise WgspError("the filter set needs IPv%d but %s is not installed"
                                    % (family, " / ".join(TOOLS[family])))
                continue
            scope = self._scope(family, "filter")
            chain, lines = render_iptables_lines(fset, family)
            desired.chains[(scope, chain)] = ""
            desired.entries.extend((scope, chain, line) for line in lines)
            parent = DOCKER_USER if (hook == "FORWARD" and docker_user.get(family)) else hook
            match = " ".join(interface_matches(fset.in_interface, fset.out_interface, "-i %s", "-o %s"))
            desired.jumps.append((scope, parent, "-A %s %s %s -j %s" % (parent, match, ipt_comment(set_name), chain)))
        return desired


# ---------------------------------------------------------------------------------------------
# nftables


def _nft_net(text):
    addr, _sep, plen = text.partition("/")
    if plen and int(plen) == (32 if ":" not in addr else 128):
        return addr
    return text


def render_nft_lines(fset):
    """The set's base chain rules in ``nft list`` form."""
    iface = interface_matches(fset.in_interface, fset.out_interface, 'iifname "%s"', 'oifname "%s"')
    comment = 'comment "%s"' % tag(fset.name)
    lines = []
    if fset.established:
        lines.append(" ".join(iface + ["ct state established,related counter accept", comment]))
    for allow in fset.allows:
        fams = allow.families
        key = "ip" if fams == (4,) else "ip6"
        for src in allow.sources or (None,):
            for dst in allow.destinations or (None,):
                addr = []
                if src and src not in ANY_NETWORKS:
                    addr.append("%s saddr %s" % (key, _nft_net(src)))
                if dst and dst not in ANY_NETWORKS:
                    addr.append("%s daddr %s" % (key, _nft_net(dst)))
                if not addr and (src or dst):
                    # only /0 networks: every address of one family (nft prints no /0 match either)
                    addr.append("meta nfproto ipv%d" % fams[0])
                for proto in allow.protos:
                    if proto == "icmp":
                        matches = [["meta l4proto %s" % ("icmp" if fam == 4 else "ipv6-icmp")] for fam in fams]
                    elif allow.port is not None:
                        matches = [["%s dport %s" % (proto, format_ports(allow.port))]]
                    else:
                        matches = [["meta l4proto %s" % proto]]
                    for match in matches:
                        logged = ['ct state new counter log prefix "%s"' % accepted_log_prefix(fset.name), comment]
                        for line in ([" ".join(iface + addr + match + logged)] if fset.log_accepted else []) + [
                                " ".join(iface + addr + match + ["counter accept", comment])]:
                            if line not in lines:
                                lines.append(line)
    if logs_policy(fset):
        lines.append(" ".join(iface + ['limit rate 5/minute log prefix "%s"' % log_prefix(fset.name), comment]))
    if fset.policy != "continue":  # "continue": the base chain's own policy (accept) lets other tables decide
        lines.append(" ".join(iface + ["counter %s" % fset.policy, comment]))
    return lines


class FilterNftablesBackend(NftablesBackend):
    """nftables backend of wg_filter: table ``inet wgsp-filter-<name>``, one base chain on the hook."""

    @staticmethod
    def table(set_name):
        return "wgsp-filter-%s" % set_name

    @staticmethod
    def legacy_tables(set_name):
        """The old name ``wgsp_f_<name>`` (it was also wg_dnat set ``f_<name>``'s old name)."""
        return ["wgsp_f_%s" % set_name]

    @staticmethod
    def comment(set_name):
        return tag(set_name)

    def render(self, set_name, rules, installed=None):
        desired = Desired(self.name, set_name)
        if not rules:
            return desired
        (fset,) = rules
        scope = "inet %s" % self.table(set_name)
        desired.chains[(scope, fset.hook)] = "type filter hook %s priority filter; policy accept;" % fset.hook
        desired.entries.extend((scope, fset.hook, line) for line in render_nft_lines(fset))
        return desired
