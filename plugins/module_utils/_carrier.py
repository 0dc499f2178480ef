# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``wg_carrier``: the path that keeps a public client's address from a proxy to a share.

WireGuard drops a packet whose source address is not in its peer's allowed IPs, so a published
connection that keeps its public source cannot cross the hub as it is. A carrier is a VXLAN device
between the tunnel addresses of a proxy and of its shares: the tunnel carries the carrier's UDP
(proxy and share tunnel addresses only, which every peer allows), the carrier carries the public
packets. The VXLAN payload is already inside WireGuard: it is encrypted and authenticated there.

Each carrier's MAC is derived from its tunnel address (``02:00`` + the four bytes), so both ends
know each other's without asking: the carrier learns nothing (``nolearning``, no ARP: a permanent
forwarding entry and neighbour per peer), and a frame's source MAC names the carrier it came from.

- A **proxy** routes its published, DNAT'ed connections into the carrier with one policy rule per
  published port (``iif <public> to <share> ipproto <p> dport <port> lookup <table>``; the rules
  see the destination after DNAT) and a table with each share's address on the carrier. A rule
  ``iif <carrier> lookup <table>`` answers the reverse-path check of the replies (their source, the
  share, is otherwise routed through the tunnel).
- A **share** accepts them on its carrier; its firewall side (``_firewall/carrier``) marks each
  connection with the proxy that carried it and restores the mark on the replies: one rule and one
  table per proxy (``fwmark <mark> lookup <table + n>``: ``default via <proxy> dev <carrier> onlink``,
  and the proxy's own address through the WireGuard interface, so the carrier's own UDP to that
  proxy, which inherits the reply's mark, never loops into it). What arrives on the carrier carries
  no packet mark and is routed by the main table; a last rule ``iif <carrier> lookup <table>`` (after
  main) answers the reverse-path check for sources the main table has no route for.
- Strict reverse-path filtering would drop the carrier's packets anyway where the main table routes
  their sources elsewhere: the carrier's ``rp_filter`` is set to loose (2) when it would be strict.

Ownership: the device carries the alias ``wgsp carrier``; rules and routes carry routing protocol
``88`` (``ip rule``/``ip route`` show ``proto 88``; wg_route's routes carry 87). Rules are ours when they
carry 88 and look up one of the carrier's tables; routes when they carry 88 in one of its tables.
Only those are ever replaced or deleted.

pyroute2's stable API only (``link``, ``fdb``, ``neigh``, ``rule``, ``route``, their ``get_*``); works
with Debian's 0.7.2 (12) and 0.7.7 (13) and with 0.9.x.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import errno
import ipaddress
import socket

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.checks import (
    check_ifname,
    check_int,
    check_no_control,
    check_port,
    check_port_range,
    ports_value,
    shell_quote,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import ValidationError, WgspError
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.net import check_address
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.carrier import CarrierMarks
from ansible_collections.wgsp.service_proxy.plugins.module_utils._routes import _nl_text

# The routing protocol number of the carrier's rules and routes (wg_route's and wg_interface's routes carry 87;
# the carrier's route through the WireGuard interface must not look like one of theirs).
PROTO = 88
ALIAS = "wgsp carrier"
MAIN = 254
# The VXLAN header, UDP, the outer IPv4 header and the inner Ethernet header.
OVERHEAD = 50
NUD_PERMANENT = 0x80
NTF_SELF = 0x02
RTNH_F_ONLINK = 4
IP_PROTOS = {"tcp": 6, "udp": 17}
PROTO_NAMES = dict((v, k) for k, v in IP_PROTOS.items())
PROTOS = {"tcp": ("tcp",), "udp": ("udp",), "both": ("tcp", "udp")}
SIDES = ("proxy", "share")
RESERVED_TABLES = (0, 253, 254, 255)
# A share's rule for the reverse-path check of what arrives on the carrier: after the main table
# (32766), so it answers only for sources the main table has no route for.
FALLBACK_PRIORITY = 32768
RP_FILTER = "/proc/sys/net/ipv4/conf/%s/rp_filter"

ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    interface=dict(type="str", required=True),
    side=dict(type="str", choices=list(SIDES), required=True),
    local=dict(type="str"),
    peers=dict(type="list", elements="str", default=[]),
    flows=dict(type="list", elements="dict", default=[], options=dict(
        in_interface=dict(type="str", required=True),
        proto=dict(type="str", choices=["tcp", "udp", "both"], default="tcp"),
        port=dict(type="raw", required=True),
        to_address=dict(type="str", required=True),
    )),
    local_ports=dict(type="list", elements="dict", default=[], options=dict(
        proto=dict(type="str", choices=["tcp", "udp", "both"], default="tcp"),
        port=dict(type="raw", required=True),
    )),
    port=dict(type="int", default=4789),
    vni=dict(type="int", default=7700),
    mtu=dict(type="int"),
    table=dict(type="int", default=5200),
    priority=dict(type="int", default=5200),
    mark_mask=dict(type="str", default="0x3ff00000"),
    rule_set=dict(type="str", default="carrier"),
    backend=dict(type="str", choices=["auto", "iptables", "nftables"], default="auto"),
    persist_path=dict(type="path"),
    state=dict(type="str", choices=["present", "absent"], default="present"),
)


def carrier_mac(address):
    """The carrier MAC of a tunnel address: locally administered, unicast, ``02:00`` + its bytes."""
    return "02:00:" + ":".join("%02x" % b for b in ipaddress.IPv4Address(address).packed)


def _ipv4(field, value):
    ip = check_address(field, value)
    if ip.version != 4:
        raise ValidationError(field, "must be an IPv4 tunnel address: the carrier runs between IPv4 tunnel "
                                     "addresses (got %s)" % ip)
    if ip.is_unspecified or ip.is_loopback or ip.is_multicast or ip == ipaddress.IPv4Address("255.255.255.255"):
        raise ValidationError(field, "%s is not a unicast tunnel address" % ip)
    return str(ip)


def _protos(field, value):
    protos = PROTOS.get(str(value or "tcp").lower())
    if protos is None:
        raise ValidationError(field, "must be tcp, udp or both (got %r)" % (value,))
    return protos


def check_mask(field, value):
    """A packet-mark mask: one run of contiguous bits, at least 2 of them (0x... or decimal)."""
    text = check_no_control(field, value)
    try:
        mask = int(str(text).strip(), 0)
    except (TypeError, ValueError):
        raise ValidationError(field, "must be a mark mask like 0x3ff00000 (got %r)" % (value,))
    if mask <= 0 or mask > 0xFFFFFFFF:
        raise ValidationError(field, "must be a non-zero 32-bit mask (got %r)" % (value,))
    shift = (mask & -mask).bit_length() - 1
    bits = mask >> shift
    if bits & (bits + 1):
        raise ValidationError(field, "must be one run of contiguous bits, e.g. 0x3ff00000 (got 0x%x)" % mask)
    if bits < 3:
        raise ValidationError(field, "must have at least 2 bits (got 0x%x)" % mask)
    return mask, shift, bits


class Peer:
    __slots__ = ("field", "address", "mac", "index", "mark", "table")

    def __init__(self, field, address, mac, index=None, mark=None, table=None):
        self.field, self.address, self.mac = field, address, mac
        self.index, self.mark, self.table = index, mark, table

    def to_dict(self):
        out = {"address": self.address, "mac": self.mac}
        if self.mark is not None:
            out.update(mark="0x%x" % self.mark, table=self.table)
        return out


class Flow:
    __slots__ = ("field", "in_interface", "protos", "port", "to_address")

    def __init__(self, field, in_interface, protos, port, to_address):
        self.field, self.in_interface, self.protos = field, in_interface, protos
        self.port, self.to_address = port, to_address

    def to_dict(self):
        return {"in_interface": self.in_interface, "proto": "both" if len(self.protos) == 2 else self.protos[0],
                "port": ports_value(self.port), "to_address": self.to_address}


class Rule:
    """One policy rule (IPv4): ``key`` is what the kernel tells rules apart by."""

    __slots__ = ("priority", "table", "iifname", "dst", "fwmark", "fwmask", "ip_proto", "dport", "src")

    def __init__(self, priority, table, iifname=None, dst=None, fwmark=None, fwmask=None, ip_proto=None, dport=None,
                 src=None):
        self.priority, self.table, self.iifname, self.dst = priority, table, iifname, dst
        self.fwmark, self.fwmask, self.ip_proto, self.dport = fwmark, fwmask, ip_proto, dport
        self.src = src

    def key(self):
        return (self.priority, self.table, self.iifname, self.dst, self.fwmark, self.fwmask, self.ip_proto, self.dport,
                self.src)

    def selectors(self, quote=str):
        """The rule's selectors in ``ip rule``'s words (``quote``: how a name is written)."""
        words = []
        if self.dst:
            words.append("to %s" % self.dst)
        if self.fwmark is not None:
            words.append("fwmark 0x%x/0x%x" % (self.fwmark, self.fwmask))
        if self.iifname:
            words.append("iif %s" % quote(self.iifname))
        if self.ip_proto is not None:
            words.append("ipproto %s" % PROTO_NAMES.get(self.ip_proto, self.ip_proto))
        if self.dport is not None:
            words.append("dport %s" % ports_value(self.dport))
        return words

    def render(self):
        """The rule as ``ip rule`` lists it."""
        return " ".join(["%d:" % self.priority, "from %s" % (self.src or "all")] + self.selectors()
                        + ["lookup %d proto %d" % (self.table, PROTO)])

    def args(self):
        args = dict(family=socket.AF_INET, table=self.table, priority=self.priority, protocol=PROTO)
        if self.iifname:
            args["iifname"] = self.iifname
        if self.dst:
            net = ipaddress.ip_network(self.dst)
            args.update(dst=str(net.network_address), dst_len=net.prefixlen)
        if self.src:
            net = ipaddress.ip_network(self.src)
            args.update(src=str(net.network_address), src_len=net.prefixlen)
        if self.fwmark is not None:
            args.update(fwmark=self.fwmark, fwmask=self.fwmask)
        if self.ip_proto is not None:
            args["ip_proto"] = self.ip_proto
        if self.dport is not None:
            args["dport_range"] = "%d:%d" % self.dport
        return args


class Route:
    """One route of a carrier table (IPv4): ``key`` is the kernel's identity (table, destination)."""

    __slots__ = ("table", "dst", "gateway", "ifname", "oif", "scope", "proto")

    def __init__(self, table, dst, ifname, gateway=None, oif=None, scope=None):
        self.table, self.dst, self.ifname, self.gateway, self.oif = table, dst, ifname, gateway, oif
        # the kernel's scope of an installed route: a delete must name it (else ESRCH)
        self.scope = scope
        self.proto = PROTO

    def key(self):
        return (self.table, self.dst)

    def same(self, other):
        return self.key() == other.key() and self.gateway == other.gateway and self.ifname == other.ifname

    def render(self, dev=None):
        """The route as ``ip route`` takes it (``dev``: the device as written, by default its name)."""
        dst = "default" if self.dst == "0.0.0.0/0" else self.dst
        via = " via %s" % self.gateway if self.gateway else ""
        onlink = " onlink" if self.gateway else ""
        return "%s%s dev %s table %d proto %d%s" % (dst, via, dev or self.ifname, self.table, PROTO, onlink)

    def args(self, **extra):
        """pyroute2's ``route`` arguments of this route's identity (table, destination, protocol)."""
        net = ipaddress.ip_network(self.dst)
        return dict(family=socket.AF_INET, table=self.table, dst=str(net.network_address), dst_len=net.prefixlen,
                    proto=PROTO, **extra)


class Carrier:
    """The validated parameters and everything derived from them."""

    def __init__(self, params):
        self.state = params["state"]
        self.name = check_ifname("name", params["name"])
        self.interface = check_ifname("interface", params["interface"])
        if self.name == self.interface:
            raise ValidationError("name", "must differ from interface (%s is the WireGuard interface)" % self.name)
        self.side = params["side"]
        self.port = check_port("port", params["port"])
        self.vni = check_int("vni", params["vni"], 1, 16777215)
        self.mtu = None if params.get("mtu") is None else check_int("mtu", params["mtu"], 576, 65535)
        self.priority = check_int("priority", params["priority"], 1, 32765)
        self.mask, self.shift, bits = check_mask("mark_mask", params["mark_mask"])
        span = bits if self.side == "share" else 0
        self.table = check_int("table", params["table"], 1, 0xFFFFFFFF - span)
        clash = [t for t in RESERVED_TABLES if self.table <= t <= self.table + span]
        if clash:
            raise ValidationError("table", "the carrier's tables %d-%d include table %d, which the kernel reserves; "
                                           "choose a range above 255" % (self.table, self.table + span, clash[0]))
        self.tables = (self.table, self.table + span)
        from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.rules import check_set_name
        try:
            self.rule_set = check_set_name(params["rule_set"])
        except ValidationError as exc:
            raise ValidationError("rule_set", exc.msg.split(": ", 1)[1])
        self.backend = params["backend"]
        self.local = None
        self.peers, self.flows, self.local_ports = [], [], []
        if self.state == "absent":
            return
        if params.get("local") is None:
            raise ValidationError("local", "is required with state=present (this host's IPv4 tunnel address)")
        self.local = _ipv4("local", params["local"])
        self.mac = carrier_mac(self.local)
        self._peers(params.get("peers") or [], bits)
        self._flows(params.get("flows") or [])
        self._local_ports(params.get("local_ports") or [])

    def _peers(self, values, bits):
        seen = {}
        for i, value in enumerate(values):
            field = "peers[%d]" % i
            address = _ipv4(field, value)
            if address == self.local:
                raise ValidationError(field, "%s is this host's own address (local)" % address)
            if address in seen:
                raise ValidationError(field, "%s is listed twice (%s)" % (address, seen[address]))
            seen[address] = field
            peer = Peer(field, address, carrier_mac(address))
            if self.side == "share":
                peer.index = int(ipaddress.IPv4Address(address)) & bits
                if peer.index == 0:
                    raise ValidationError(field, "%s ends in 0 in the mark mask's %d bits (0x%x): its mark would be "
                                                 "no mark; use a wider mark_mask" % (address, bits.bit_length(), self.mask))
                other = [p for p in self.peers if p.index == peer.index]
                if other:
                    raise ValidationError(field, "%s and %s (%s) share their last %d bits, so they would get the same "
                                                 "mark and table; use a wider mark_mask" % (
                                                     address, other[0].address, other[0].field, bits.bit_length()))
                peer.mark = peer.index << self.shift
                peer.table = self.table + peer.index
            self.peers.append(peer)

    def _flows(self, values):
        if values and self.side == "share":
            raise ValidationError("flows", "is for side=proxy (a share routes by the proxy that carried each connection)")
        addresses = dict((p.address, p) for p in self.peers)
        seen = {}
        for i, raw in enumerate(values):
            field = "flows[%d]" % i
            in_if = check_ifname(field + ".in_interface", raw.get("in_interface"))
            if in_if in (self.name, self.interface):
                raise ValidationError(field + ".in_interface", "must be the interface published connections arrive on, "
                                                               "not %s" % in_if)
            protos = _protos(field + ".proto", raw.get("proto"))
            port = check_port_range(field + ".port", raw.get("port"))
            to_address = _ipv4(field + ".to_address", raw.get("to_address"))
            if to_address not in addresses:
                raise ValidationError(field + ".to_address", "%s is not one of peers: the carrier reaches only its peers"
                                      % to_address)
            for proto in protos:
                for key, where in seen.items():
                    if key[0] == in_if and key[1] == proto and key[2] == to_address and not (
                            port[1] < key[3][0] or key[3][1] < port[0]):
                        raise ValidationError(field + ".port", "overlaps %s (same interface, protocol and address)" % where)
                seen[(in_if, proto, to_address, port)] = field
            self.flows.append(Flow(field, in_if, protos, port, to_address))

    def _local_ports(self, values):
        if values and self.side != "share":
            raise ValidationError("local_ports", "is for side=share (the ports of the share host's own services)")
        for i, raw in enumerate(values):
            field = "local_ports[%d]" % i
            protos = _protos(field + ".proto", raw.get("proto"))
            port = check_port_range(field + ".port", raw.get("port"))
            for proto in protos:
                if (proto, port) not in self.local_ports:
                    self.local_ports.append((proto, port))

    # -- what the kernel should hold -------------------------------------------------------

    def wanted_rules(self):
        if self.side == "proxy":
            if not self.flows:
                return []
            rules = [Rule(self.priority, self.table, iifname=f.in_interface, dst=f.to_address + "/32",
                          ip_proto=IP_PROTOS[proto], dport=f.port)
                     for f in self.flows for proto in f.protos]
            # the reverse-path check of the replies (their source, a share, is routed through the tunnel)
            rules.append(Rule(self.priority, self.table, iifname=self.name))
            return rules
        if not self.peers:
            return []
        rules = [Rule(self.priority, p.table, fwmark=p.mark, fwmask=self.mask) for p in self.peers]
        rules.append(Rule(FALLBACK_PRIORITY, self.table, iifname=self.name))
        # a reply of the host's own service is routed before its mark is restored: on a host whose main
        # table has no route to the client (no default route), that first lookup must not fail
        rules.append(Rule(FALLBACK_PRIORITY, self.table, src=self.local + "/32"))
        return rules

    def wanted_routes(self):
        if self.side == "proxy":
            if not self.flows:
                return []
            return [Route(self.table, p.address + "/32", self.name) for p in self.peers]
        if not self.peers:
            return []
        routes = [Route(self.table, "0.0.0.0/0", self.name)]
        for p in self.peers:
            routes.append(Route(p.table, "0.0.0.0/0", self.name, gateway=p.address))
            # the carrier's own UDP to that proxy carries the reply's mark: through the tunnel, not back in
            routes.append(Route(p.table, p.address + "/32", self.interface))
        return routes

    def marks(self):
        """The share's firewall side (``None`` on a proxy or without peers)."""
        if self.side != "share" or not self.peers:
            return None
        return CarrierMarks(self.name, self.mask, [(p.mac, p.mark) for p in self.peers], self.local_ports)

    def in_tables(self, item):
        """A rule that looks up, or a route that is in, one of the carrier's tables."""
        return self.tables[0] <= item.table <= self.tables[1]

    def owns_route(self, route):
        return self.in_tables(route) and route.proto == PROTO


def _attr(msg, name):
    try:
        return msg.get_attr(name)
    except Exception:  # noqa: BLE001 - a message without that attribute
        return None


def _dport(value):
    if value is None:
        return None
    if isinstance(value, dict):
        return (int(value.get("start")), int(value.get("end")))
    if isinstance(value, str) and ":" in value:
        low, high = value.split(":", 1)
        return (int(low), int(high))
    return None


class Netlink:
    """Reads and changes the carrier's kernel state. ``ipr``: a pyroute2 ``IPRoute`` (or a fake)."""

    def __init__(self, ipr):
        self.ipr = ipr

    def index(self, name):
        found = list(self.ipr.link_lookup(ifname=name))
        return found[0] if found else None

    def link(self, name):
        """``None`` or ``{index, kind, alias, vni, local, port, learning, mac, mtu, up}``."""
        index = self.index(name)
        if index is None:
            return None
        msg = list(self.ipr.get_links(index))[0]
        info = _attr(msg, "IFLA_LINKINFO")
        kind = _attr(info, "IFLA_INFO_KIND") if info is not None else None
        data = _attr(info, "IFLA_INFO_DATA") if info is not None else None
        out = {"index": index, "kind": kind, "alias": _attr(msg, "IFLA_IFALIAS"), "mac": _attr(msg, "IFLA_ADDRESS"),
               "mtu": _attr(msg, "IFLA_MTU"), "up": bool(msg["flags"] & 1)}
        if kind == "vxlan" and data is not None:
            out.update(vni=_attr(data, "IFLA_VXLAN_ID"), local=_attr(data, "IFLA_VXLAN_LOCAL"),
                       port=_attr(data, "IFLA_VXLAN_PORT"), learning=_attr(data, "IFLA_VXLAN_LEARNING"))
        return out

    def fdb(self, index):
        """``{mac: dst}`` of the device's permanent forwarding entries."""
        out = {}
        for msg in self.ipr.get_neighbours(family=socket.AF_BRIDGE, ifindex=index):
            if msg["ifindex"] == index and msg["state"] & NUD_PERMANENT and _attr(msg, "NDA_DST"):
                out[_attr(msg, "NDA_LLADDR")] = _attr(msg, "NDA_DST")
        return out

    def neighbours(self, index):
        """``{address: mac}`` of the device's permanent IPv4 neighbours."""
        out = {}
        for msg in self.ipr.get_neighbours(family=socket.AF_INET, ifindex=index):
            if msg["ifindex"] == index and msg["state"] & NUD_PERMANENT:
                out[_attr(msg, "NDA_DST")] = _attr(msg, "NDA_LLADDR")
        return out

    def rules(self):
        """Every IPv4 rule of the carrier's protocol."""
        out = []
        for msg in self.ipr.get_rules(family=socket.AF_INET):
            if _attr(msg, "FRA_PROTOCOL") != PROTO:
                continue
            dst = _attr(msg, "FRA_DST")
            src = _attr(msg, "FRA_SRC")
            out.append(Rule(_attr(msg, "FRA_PRIORITY") or 0, _attr(msg, "FRA_TABLE") or msg["table"],
                            iifname=_attr(msg, "FRA_IIFNAME"),
                            dst=("%s/%d" % (dst, msg["dst_len"])) if dst else None,
                            fwmark=_attr(msg, "FRA_FWMARK"),
                            fwmask=_attr(msg, "FRA_FWMASK") if _attr(msg, "FRA_FWMARK") is not None else None,
                            ip_proto=_attr(msg, "FRA_IP_PROTO"), dport=_dport(_attr(msg, "FRA_DPORT_RANGE")),
                            src=("%s/%d" % (src, msg["src_len"])) if src else None))
        return out

    def routes(self, names):
        """Every IPv4 route outside the main table, as ``Route`` (``proto``: its routing protocol)."""
        out = []
        for msg in self.ipr.get_routes(family=socket.AF_INET):
            table = _attr(msg, "RTA_TABLE") or msg["table"]
            if table in (MAIN, 255):
                continue
            dst = _attr(msg, "RTA_DST") or "0.0.0.0"
            oif = _attr(msg, "RTA_OIF")
            route = Route(table, "%s/%d" % (dst, msg["dst_len"]), names.get(oif, str(oif)),
                          gateway=_attr(msg, "RTA_GATEWAY"), oif=oif, scope=msg["scope"])
            route.proto = msg["proto"]
            out.append(route)
        return out

    def addresses(self):
        """``[(address, network)]`` of the host's IPv4 addresses."""
        out = []
        for msg in self.ipr.get_addr(family=socket.AF_INET):
            address = _attr(msg, "IFA_LOCAL") or _attr(msg, "IFA_ADDRESS")
            if address:
                out.append((address, ipaddress.ip_network("%s/%d" % (address, msg["prefixlen"]), strict=False)))
        return out

    def read_sysctl(self, path):
        try:
            with open(path) as handle:
                return handle.read().strip()
        except (IOError, OSError):
            return None

    def write_sysctl(self, path, value, why=""):
        try:
            with open(path, "w") as handle:
                handle.write(value + "\n")
        except (IOError, OSError) as exc:
            raise WgspError("cannot set %s to %s (%s): %s" % (_sysctl_name(path), value, exc.strerror or exc, why))


class Plan:
    def __init__(self):
        self.actions = []
        self.link = None  # "create", "recreate", "delete" or None
        self.link_set = {}
        self.fdb_add, self.fdb_del = [], []
        self.neigh_add, self.neigh_del = [], []
        self.rules_add, self.rules_del = [], []
        self.routes_add, self.routes_del = [], []
        self.sysctls = {}
        self.mtu = None
        self.wg_index = None  # the WireGuard interface's index, as plan() found it


def _sysctl_name(path):
    """``net.ipv4.conf.x.rp_filter`` of ``/proc/sys/net/ipv4/conf/x/rp_filter``."""
    return path.replace("/proc/sys/", "").replace("/", ".")


def _state_lines(link, fdb, neigh, rules, routes, sysctls):
    lines = []
    if link:
        lines.append("link %s vxlan id %s local %s dstport %s learning %s address %s mtu %s %s" % (
            link["name"], link.get("vni"), link.get("local"), link.get("port"), link.get("learning"), link.get("mac"),
            link.get("mtu"), "up" if link.get("up") else "down"))
    lines.extend("fdb %s dst %s permanent" % (mac, dst) for mac, dst in sorted(fdb.items()))
    lines.extend("neigh %s lladdr %s permanent" % (addr, mac) for addr, mac in sorted(neigh.items()))
    lines.extend("rule %s" % r.render() for r in sorted(rules, key=lambda r: tuple((v is not None, v) for v in r.key())))
    lines.extend("route %s" % r.render() for r in sorted(routes, key=lambda r: (r.table, r.dst)))
    lines.extend("sysctl %s = %s" % (_sysctl_name(path), value)
                 for path, value in sorted(sysctls.items()) if value is not None)
    return lines


def _effective_rp(all_value, dev_value):
    """The reverse-path mode the kernel applies to a device: the higher of ``all`` and its own."""
    values = [int(v) for v in (all_value, dev_value) if v is not None and str(v).strip().isdigit()]
    return max(values) if values else 0


def plan(carrier, nl, check_mode=False):
    """Compare the kernel with ``carrier``: ``(plan, before_lines, after_lines)``. Refuses (before any
    change) a device of the carrier's name that is not a carrier, and a missing WireGuard interface."""
    plan = Plan()
    link = nl.link(carrier.name)
    if link is not None and (link["kind"] != "vxlan" or link["alias"] != ALIAS):
        raise WgspError("name: a device %s exists and is not a carrier of this collection (%s, alias %r); it is never "
                        "changed or deleted: choose another name" % (carrier.name, link["kind"] or "no kind",
                                                                     link["alias"]), field="name")
    names = {}
    fdb, neigh = {}, {}
    if link is not None:
        link["name"] = carrier.name
        names[link["index"]] = carrier.name
        fdb, neigh = nl.fdb(link["index"]), nl.neighbours(link["index"])
    wg = nl.link(carrier.interface)
    wg_index = plan.wg_index = wg["index"] if wg else None
    if wg_index is not None:
        names[wg_index] = carrier.interface
    rules = [r for r in nl.rules() if carrier.in_tables(r)]
    in_tables = [r for r in nl.routes(names) if carrier.in_tables(r)]
    routes = [r for r in in_tables if carrier.owns_route(r)]
    foreign = [r for r in in_tables if not carrier.owns_route(r)]
    rp_path = RP_FILTER % carrier.name
    rp_now = nl.read_sysctl(rp_path) if link is not None else None
    before = _state_lines(link, fdb, neigh, rules, routes, {rp_path: rp_now})

    if carrier.state == "absent":
        if link is not None:
            plan.link = "delete"
            plan.actions.append("delete device %s" % carrier.name)
        plan.rules_del = rules
        plan.routes_del = routes
        plan.actions.extend("delete rule %s" % r.render() for r in rules)
        plan.actions.extend("delete route %s" % r.render() for r in routes)
        return plan, before, []

    if wg_index is None and not check_mode:
        raise WgspError("interface: no such interface %r (the carrier runs through it; bring the tunnel up first)"
                        % carrier.interface, field="interface")
    if wg_index is not None:
        # before anything changes: the kernel would refuse these only half-way through
        host = nl.addresses()
        own = set(a for a, _n in host)
        if carrier.local not in own:
            raise ValidationError("local", "%s is not an address of this host (the tunnel's own address, the "
                                           "carrier's outer source)" % carrier.local)
        for peer in carrier.peers:
            if peer.address in own:
                raise ValidationError(peer.field, "%s is an address of this host, not another end" % peer.address)
            ip = ipaddress.IPv4Address(peer.address)
            for _a, net in host:
                if net.prefixlen < 31 and ip in (net.network_address, net.broadcast_address):
                    what = "network" if ip == net.network_address else "broadcast"
                    raise ValidationError(peer.field, "%s is the %s address of %s on this host, not a host"
                                          % (peer.address, what, net))
    mtu = carrier.mtu
    if mtu is None:
        mtu = (wg["mtu"] - OVERHEAD) if wg and wg.get("mtu") else 1420 - OVERHEAD
    plan.mtu = mtu
    want_link = {"name": carrier.name, "vni": carrier.vni, "local": carrier.local, "port": carrier.port,
                 "learning": 0, "mac": carrier.mac, "mtu": mtu, "up": True}
    fresh = False
    if link is None:
        plan.link, fresh = "create", True
        plan.actions.append("create device %s (vxlan id %d local %s dstport %d)" % (
            carrier.name, carrier.vni, carrier.local, carrier.port))
    elif any(link.get(k) != want_link[k] for k in ("vni", "local", "port", "learning")):
        plan.link, fresh = "recreate", True
        plan.actions.append("recreate device %s (vxlan id %s -> %d, local %s -> %s, dstport %s -> %d)" % (
            carrier.name, link.get("vni"), carrier.vni, link.get("local"), carrier.local, link.get("port"), carrier.port))
    else:
        for key in ("mac", "mtu", "up"):
            if link.get(key) != want_link[key]:
                plan.link_set[key] = want_link[key]
                plan.actions.append("set device %s %s %s -> %s" % (carrier.name, key, link.get(key), want_link[key]))
    want_fdb = dict((p.mac, p.address) for p in carrier.peers)
    want_neigh = dict((p.address, p.mac) for p in carrier.peers)
    have_fdb = {} if fresh else fdb
    have_neigh = {} if fresh else neigh
    plan.fdb_add = sorted((m, d) for m, d in want_fdb.items() if have_fdb.get(m) != d)
    plan.fdb_del = sorted((m, d) for m, d in have_fdb.items() if want_fdb.get(m) != d)
    plan.neigh_add = sorted((a, m) for a, m in want_neigh.items() if have_neigh.get(a) != m)
    plan.neigh_del = sorted((a, m) for a, m in have_neigh.items() if a not in want_neigh)
    plan.actions.extend("delete fdb %s dst %s" % item for item in plan.fdb_del)
    plan.actions.extend("add fdb %s dst %s" % item for item in plan.fdb_add)
    plan.actions.extend("delete neigh %s lladdr %s" % item for item in plan.neigh_del)
    plan.actions.extend("add neigh %s lladdr %s" % item for item in plan.neigh_add)

    want_rules = carrier.wanted_rules()
    want_keys = set(r.key() for r in want_rules)
    have_keys = set(r.key() for r in rules)
    plan.rules_del = [r for r in rules if r.key() not in want_keys]
    plan.rules_add = [r for r in want_rules if r.key() not in have_keys]
    plan.actions.extend("delete rule %s" % r.render() for r in plan.rules_del)
    plan.actions.extend("add rule %s" % r.render() for r in plan.rules_add)

    want_routes = carrier.wanted_routes()
    for want in want_routes:
        for other in foreign:
            if other.key() == want.key():
                # a replace would take it over (and a later absent would delete it): never
                raise WgspError(
                    "table: the carrier's route %s would replace the route %s (proto %s), which this collection did "
                    "not install; it is never replaced or removed: remove it, or give the carrier another table range"
                    % (want.render(), "%s table %d dev %s" % (other.dst, other.table, other.ifname), other.proto),
                    field="table")
    # a recreated device takes its routes with it
    live = [r for r in routes if not (fresh and r.ifname == carrier.name)]
    plan.routes_del = [r for r in live if not any(r.same(w) for w in want_routes)]
    plan.routes_add = [w for w in want_routes if not any(r.same(w) for r in live)]
    plan.actions.extend("delete route %s" % r.render() for r in plan.routes_del)
    plan.actions.extend("add route %s" % r.render() for r in plan.routes_add)

    # Strict reverse-path filtering would drop what the carrier brings (its sources are routed
    # elsewhere): loose on the carrier (the effective mode is the higher of "all" and the device's).
    rp_dev = nl.read_sysctl(RP_FILTER % "default") if fresh else rp_now
    if _effective_rp(nl.read_sysctl(RP_FILTER % "all"), rp_dev) == 1:
        plan.sysctls[rp_path] = "2"
        plan.actions.append("set %s = 2 (loose)" % _sysctl_name(rp_path))
    after = _state_lines(want_link, want_fdb, want_neigh, want_rules, want_routes,
                         {rp_path: plan.sysctls.get(rp_path, rp_dev)})
    return plan, before, after


def apply(carrier, nl, plan):
    """Carry out ``plan``: deletions first (routes, rules, device), then the device, its entries,
    its sysctls, the rules and the routes. Netlink refusals become ``WgspError`` naming what failed;
    what this call had added by then (a new device with its entries, rules, routes) is taken away
    again first, so a refused value leaves no half-made carrier behind."""
    ipr = nl.ipr
    undo = []

    def do(what, func, *args, **kwargs):
        field = kwargs.pop("_field", None)
        try:
            return func(*args, **kwargs)
        except WgspError:
            raise
        except Exception as exc:  # noqa: BLE001 - NetlinkError carries the kernel's errno and text
            code = getattr(exc, "code", None)
            if field == "port" and code == errno.EADDRINUSE:
                raise ValidationError("port", "UDP port %d is taken on this host (another carrier or service "
                                              "listens on it); choose another port" % carrier.port, errno=code)
            raise WgspError("netlink refused to %s: %s" % (what, _nl_text(exc)), errno=code)

    try:
        _apply(carrier, nl, plan, ipr, do, undo)
    except WgspError as exc:
        if not undo:
            raise
        failed = []
        for what, func, args, kwargs in reversed(undo):
            try:
                func(*args, **kwargs)
            except Exception:  # noqa: BLE001 - keep undoing the rest; the message says what stayed
                failed.append(what)
        exc.msg += ("; this run's additions were taken away again" if not failed
                    else "; taking this run's additions away failed for: %s" % ", ".join(failed))
        exc.args = (exc.msg,)
        raise


def _apply(carrier, nl, plan, ipr, do, undo):
    for route in plan.routes_del:
        do("delete route %s" % route.render(), ipr.route, "del",
           **route.args(scope=route.scope if route.scope is not None else (0 if route.gateway else 253)))
    for rule in plan.rules_del:
        do("delete rule %s" % rule.render(), ipr.rule, "del", **rule.args())
    index = nl.index(carrier.name)
    if plan.link in ("delete", "recreate") and index is not None:
        do("delete device %s" % carrier.name, ipr.link, "del", index=index)
        index = None
    if carrier.state == "absent":
        return
    if plan.link in ("create", "recreate"):
        do("create device %s" % carrier.name, ipr.link, "add", ifname=carrier.name, kind="vxlan",
           vxlan_id=carrier.vni, vxlan_local=carrier.local, vxlan_port=carrier.port, vxlan_learning=0)
        index = nl.index(carrier.name)
        undo.append(("delete device %s" % carrier.name, ipr.link, ("del",), {"index": index}))
        do("name device %s" % carrier.name, ipr.link, "set", index=index, ifalias=ALIAS)
        plan.link_set = {"mac": carrier.mac, "mtu": plan.mtu, "up": True}
    if plan.link_set:
        args = {}
        if "mac" in plan.link_set:
            args["address"] = carrier.mac
        if "mtu" in plan.link_set:
            args["mtu"] = plan.link_set["mtu"]
        if args:
            do("set device %s %s" % (carrier.name, ", ".join(sorted(args))), ipr.link, "set", index=index, **args)
    for path, value in sorted(plan.sysctls.items()):
        if nl.read_sysctl(path) != value:
            nl.write_sysctl(path, value, "strict reverse-path filtering (rp_filter=1) would drop the carrier's "
                                         "packets; where /proc/sys is read-only (a container), set "
                                         "net.ipv4.conf.all.rp_filter and net.ipv4.conf.default.rp_filter to 0 or 2")
    if plan.link_set.get("up"):
        do("bring device %s up" % carrier.name, ipr.link, "set", index=index, state="up", _field="port")
    for mac, dst in plan.fdb_del:
        do("delete fdb %s" % mac, ipr.fdb, "del", ifindex=index, lladdr=mac, dst=dst)
    for addr, mac in plan.neigh_del:
        do("delete neigh %s" % addr, ipr.neigh, "del", ifindex=index, dst=addr, lladdr=mac)
    for mac, dst in plan.fdb_add:
        do("add fdb %s dst %s" % (mac, dst), ipr.fdb, "replace", ifindex=index, lladdr=mac, dst=dst,
           state=NUD_PERMANENT, flags=NTF_SELF)
    for addr, mac in plan.neigh_add:
        do("add neigh %s" % addr, ipr.neigh, "replace", ifindex=index, dst=addr, lladdr=mac, state=NUD_PERMANENT,
           family=socket.AF_INET)
    for rule in plan.rules_add:
        do("add rule %s" % rule.render(), ipr.rule, "add", **rule.args())
        undo.append(("delete rule %s" % rule.render(), ipr.rule, ("del",), rule.args()))
    for route in plan.routes_add:
        scope = 0 if route.gateway else 253
        path = dict(oif=index if route.ifname == carrier.name else plan.wg_index)
        if route.gateway:
            path.update(gateway=route.gateway, flags=RTNH_F_ONLINK)
        do("add route %s" % route.render(), ipr.route, "replace", **route.args(scope=scope, **path))
        undo.append(("delete route %s" % route.render(), ipr.route, ("del",), route.args(scope=scope)))


# -- one call: validate, plan, apply (the module and wg_rule_sets) -------------------------------


@contextlib.contextmanager
def _netlink(ipr=None):
    """A ``Netlink`` over ``ipr``, or over an ``IPRoute`` of its own, closed afterwards."""
    own = ipr is None
    if own:
        try:
            from pyroute2 import IPRoute
        except ImportError:
            raise WgspError("wg_carrier needs pyroute2 on the host (Debian: python3-pyroute2)")
        ipr = IPRoute()
    try:
        yield Netlink(ipr)
    finally:
        if own:
            ipr.close()


def _text(lines):
    return "".join(x + "\n" for x in lines)


def apply_carrier(params, runner, check_mode=False, want_diff=False, ipr=None):
    """Bring one carrier to ``params`` (``ARGUMENT_SPEC``'s): its netlink side and, on a share, its
    rule set and that set's boot script (``persist_path``). Everything is judged and planned before
    anything changes (a firewall refusal too). Returns the module's result; raises ``WgspError``."""
    from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.backend import (
        RuleSet,
        check_persist,
        persist_rule_set,
    )
    from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.lock import set_lock

    carrier = Carrier(params)
    with _netlink(ipr) as nl:
        plan_, before, after = plan(carrier, nl, check_mode=check_mode)
        marks = carrier.marks() if carrier.state == "present" else None
        fw_state = "present" if marks else "absent"
        with set_lock("carrier", carrier.rule_set):
            scripts = check_persist("wg_carrier", carrier.rule_set, params.get("persist_path"), fw_state)
            ruleset = RuleSet(runner, carrier.rule_set, carrier.backend, kind="carrier")
            fw = ruleset.run([marks] if marks else [], state=fw_state, check_mode=True)
            if not check_mode:
                if carrier.state == "absent":
                    if fw["changed"]:
                        fw = ruleset.run([], state="absent")
                    apply(carrier, nl, plan_)
                else:
                    apply(carrier, nl, plan_)
                    if fw["changed"]:
                        fw = ruleset.run([marks] if marks else [], state=fw_state)
            persisted = persist_rule_set("wg_carrier", ruleset, params.get("persist_path"), fw_state,
                                         check_mode=check_mode, scripts=scripts)
    post_up, pre_down = boot_commands(carrier)
    present = carrier.state == "present"
    result = dict(
        changed=bool(plan_.actions) or fw["changed"] or bool(persisted and persisted["changed"]),
        plan=plan_.actions,
        device=dict(name=carrier.name, mac=carrier.mac, vni=carrier.vni, port=carrier.port,
                    local=carrier.local) if present else None,
        peers=[p.to_dict() for p in carrier.peers],
        flows=[f.to_dict() for f in carrier.flows],
        rules=[r.render() for r in carrier.wanted_rules()] if present else [],
        routes=[r.render() for r in carrier.wanted_routes()] if present else [],
        backend=fw["backend"],
        rule_set=fw["plan"],
        persist_path=dict(path=persisted["path"], changed=persisted["changed"],
                          removed=persisted["removed"]) if persisted else None,
        boot_commands={"post_up": post_up, "pre_down": pre_down},
    )
    if want_diff:
        header = "carrier %s" % carrier.name
        diff = [dict(before_header=header, after_header=header, before=_text(before), after=_text(after)),
                dict(before_header="%s carrier set %s (installed)" % (fw["backend"], carrier.rule_set),
                     after_header="%s carrier set %s (desired)" % (fw["backend"], carrier.rule_set),
                     before=_text(fw["before"]), after=_text(fw["after"]))]
        if persisted and persisted["diff"]:
            diff.extend(dict(before_header=item["path"], after_header=item["path"], before=item["before"],
                             after=item["after"]) for item in persisted["diff"])
        result["diff"] = diff
    return result


def status(params, runner, ipr=None):
    """``wg_status``'s report of one carrier, changing nothing: in sync when neither its netlink side
    nor its rule set would change."""
    from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.backend import RuleSet

    carrier = Carrier(params)
    with _netlink(ipr) as nl:
        plan_, before, after = plan(carrier, nl, check_mode=True)
        present = nl.link(carrier.name) is not None
    marks = carrier.marks() if carrier.state == "present" else None
    ruleset = RuleSet(runner, carrier.rule_set, carrier.backend, kind="carrier")
    fw = ruleset.run([marks] if marks else [], state="present" if marks else "absent", check_mode=True)
    drift = {}
    if plan_.actions:
        drift["carrier"] = plan_.actions
    if fw["changed"]:
        drift["rule_set"] = fw["plan"]
    return {
        "name": carrier.name,
        "module": "wg_carrier",
        "backend": fw["backend"],
        "present": present,
        "in_sync": not drift,
        "drift": drift,
        "expected": after + fw["after"],
        "installed": before + fw["before"],
        "counters": [],
        "containers": [],
    }


# -- at boot: wg-quick PostUp / PreDown lines ----------------------------------------------------


def boot_commands(carrier):
    """The wg-quick lines that bring the carrier back with the tunnel (``PostUp``) and remove it
    with it (``PreDown``): ``(post_up, pre_down)``, lists of lines, every value validated (``Carrier``)
    and quoted. ``%i`` is wg-quick's own expansion to the tunnel's name.

    A carrier that cannot come back at boot must not take the tunnel down with it - wg-quick aborts
    and removes the interface when a PostUp line fails - so no line fails; wg_status then reports
    the carrier's drift and the next run of the role repairs it."""
    if carrier.state != "present" or not (carrier.peers and (carrier.side == "share" or carrier.flows)):
        return [], []
    name = shell_quote(carrier.name)
    # the tunnel's MTU less the carrier's overhead, read from the tunnel as wg-quick brought it up
    mtu = str(carrier.mtu) if carrier.mtu else "$(( $(ip -o link show %%i | grep -o 'mtu [0-9]*' | cut -d' ' -f2) - %d ))" % OVERHEAD
    up = ["ip link add %s type vxlan id %d local %s dstport %d nolearning && ip link set %s address %s mtu %s "
          "alias %s up || true" % (name, carrier.vni, carrier.local, carrier.port, name, carrier.mac, mtu,
                                   shell_quote(ALIAS))]
    rp = RP_FILTER % carrier.name
    up.append("grep -qx 1 %s %s && sysctl -qw %s=2 || true" % (
        RP_FILTER % "all", shell_quote(rp), shell_quote(_sysctl_name(rp))))
    for p in carrier.peers:
        up.append("bridge fdb append %s dev %s dst %s self permanent || true" % (p.mac, name, p.address))
        up.append("ip neigh replace %s lladdr %s dev %s nud permanent || true" % (p.address, p.mac, name))
    down = []
    for rule in carrier.wanted_rules():
        words = " ".join((["from %s" % rule.src] if rule.src else []) + rule.selectors(shell_quote)
                         + ["lookup %d priority %d proto %d" % (rule.table, rule.priority, PROTO)])
        up.append("ip rule add %s || true" % words)
        down.append("ip rule del %s || true" % words)
    for route in carrier.wanted_routes():
        up.append("ip route replace %s || true" % route.render(dev="%i" if route.ifname == carrier.interface else name))
    down.append("ip link del %s || true" % name)
    return up, down
