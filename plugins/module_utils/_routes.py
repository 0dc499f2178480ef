# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Routes of ``wg_route`` through pyroute2's ``IPRoute`` (stable API only: ``link_lookup``,
``get_routes``, ``route('replace'|'del')``; works with pyroute2 0.7.2 and 0.9.x).

The module marks its routes with its own routing protocol number (``proto``, default
``ROUTE_PROTO`` = 87, not assigned in ``/etc/iproute2/rt_protos``; ``ip route`` shows
``proto 87``). Only routes carrying that number on the managed interface are ever deleted, and a
route carrying another number (someone else's: ``proto boot``, ``kernel``, ``static``, ...) is never
replaced either: a listed route whose destination, table and metric it already holds is refused.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import os
import socket

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import ValidationError, WgspError
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.net import check_address, check_cidr
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.checks import (
    check_ifname,
    check_int,
    check_no_control,
)

ROUTE_PROTO = 87
# The names accepted for a table: the kernel's fixed tables a route of ours may go to. "local" (255)
# and "unspec" (0) are refused whether given as a name or a number.
TABLE_NAMES = {"main": 254, "default": 253}
RESERVED_TABLES = {"local": 255, "unspec": 0}
MAIN = 254
V6_DEFAULT_METRIC = 1024
# rt_protos names of the protocol numbers a foreign route usually carries (for error messages)
PROTO_NAMES = {1: "redirect", 2: "kernel", 3: "boot", 4: "static", 9: "ra", 16: "dhcp"}
RTN_UNICAST = 1
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_LINK = 253


class Route:
    __slots__ = ("family", "dest", "table", "metric", "gateway", "oif", "ifname", "proto", "scope", "field", "rtype")

    def __init__(self, dest, table=MAIN, metric=None, gateway=None, oif=None, ifname=None, proto=None, scope=None,
                 rtype=RTN_UNICAST):
        net = ipaddress.ip_network(dest)
        self.family = net.version
        self.dest = str(net)
        self.table = int(table)
        if metric is None or (self.family == 6 and int(metric) == 0):
            # the kernel stores an IPv6 route of metric 0 with 1024: compare (and report) what it keeps
            metric = V6_DEFAULT_METRIC if self.family == 6 else 0
        self.metric = int(metric)
        self.gateway = str(gateway) if gateway else None
        self.oif = oif
        self.ifname = ifname
        self.proto = proto
        # The installed route's scope, when read from the kernel: a delete must name it, or the
        # kernel answers ESRCH for a route added by another tool (e.g. wg-quick's PostUp `ip route`).
        self.scope = scope
        self.field = None  # the option this route came from (routes[N]), for error messages
        self.rtype = rtype  # the kernel's route type (1 unicast; blackhole, unreachable, ... otherwise)

    def key(self):
        """The kernel's identity of a route: family, destination, table, metric."""
        return (self.family, self.dest, self.table, self.metric)

    def wanted_scope(self):
        """The scope this route gets from ``ip route add`` (iproute2): link for an IPv4 route with no
        gateway, universe otherwise (IPv6 routes are always universe). Set explicitly, so a route
        wg_route installs is the very route wg-quick's PostUp line brings back at boot."""
        if self.scope is not None:
            return self.scope
        return RT_SCOPE_LINK if self.family == 4 and not self.gateway else RT_SCOPE_UNIVERSE

    def same_path(self, other):
        return (self.oif == other.oif and self.gateway == other.gateway
                and self.wanted_scope() == other.wanted_scope())

    def to_dict(self):
        return {"dest": self.dest, "interface": self.ifname, "table": self.table, "metric": self.metric,
                "gateway": self.gateway, "family": "ipv%d" % self.family}

    def render(self):
        text = "%s%s dev %s table %d metric %d" % (
            self.dest, (" via %s" % self.gateway) if self.gateway else "", self.ifname, self.table, self.metric)
        if self.proto is not None:
            text += " proto %d" % self.proto
        return text


def check_table(field, value):
    """A routing table: a number 1-4294967295 or V(main)/V(default); local (255) and unspec (0) are refused."""
    if value is None:
        return MAIN
    text = check_no_control(field, value)
    name = value.strip().lower() if isinstance(value, str) else None
    if name in TABLE_NAMES:
        return TABLE_NAMES[name]
    if name in RESERVED_TABLES:
        raise ValidationError(field, "table %s (%d) is reserved for the kernel; use main, default or a number "
                                     "1-4294967295 other than 255" % (name, RESERVED_TABLES[name]))
    if isinstance(value, str) and not value.strip().isdigit():
        raise ValidationError(field, "must be main, default or a table number 1-4294967295 other than 255 "
                                     "(got %r)" % (value,))
    number = check_int(field, text if isinstance(value, str) else value, 0, 4294967295)
    if number in (0, 255):
        raise ValidationError(field, "table %d is reserved for the kernel (%s); use main, default or a number "
                                     "1-4294967295 other than 255" % (number, "local" if number == 255 else "unspec"))
    return number


def normalise_routes(routes, interface, default_table=None, default_metric=None):
    """Validate the route list; returns Route objects (ifname set, oif not yet resolved)."""
    interface = check_ifname("interface", interface)
    result = []
    for i, raw in enumerate(routes or []):
        field = "routes[%d]" % i
        if isinstance(raw, str):
            raw = {"dest": raw}
        if not isinstance(raw, dict):
            raise ValidationError(field, "must be a dict with dest (and table, metric, gateway)")
        unknown = sorted(set(raw) - set(("dest", "table", "metric", "gateway")))
        if unknown:
            raise ValidationError(field, "unknown key(s): %s" % ", ".join(unknown))
        if raw.get("dest") is None:
            raise ValidationError(field + ".dest", "is required")
        net = check_cidr(field + ".dest", raw["dest"], strict=True)
        table = check_table(field + ".table", raw.get("table") if raw.get("table") is not None else default_table)
        metric = raw.get("metric") if raw.get("metric") is not None else default_metric
        if metric is not None:
            metric = check_int(field + ".metric", metric, 0, 4294967295)
        gateway = raw.get("gateway")
        if gateway is not None:
            gw = check_address(field + ".gateway", gateway)
            if gw.version != net.version:
                raise ValidationError(field + ".gateway", "%s is not in the address family of %s" % (gw, net))
            gateway = str(gw)
        route = Route(str(net), table, metric, gateway, ifname=interface)
        route.field = field
        if any(r.key() == route.key() for r in result):
            other = [r for r in result if r.key() == route.key()][0]
            if not (other.gateway == route.gateway):
                raise ValidationError(field, "duplicates %s with a different gateway" % other.dest)
            continue
        result.append(route)
    return result


def _nl_text(exc):
    """A netlink error as ``strerror (errno N)`` (pyroute2's NetlinkError holds ``code`` and text)."""
    code = getattr(exc, "code", None)
    if isinstance(code, int) and code > 0:
        try:
            return "%s (errno %d)" % (os.strerror(code), code)
        except ValueError:
            pass
    return str(exc)


def _attr(msg, name):
    try:
        return msg.get_attr(name)
    except (AttributeError, KeyError):
        return None


def route_from_msg(msg, ifnames):
    family = 4 if msg["family"] == socket.AF_INET else 6
    dst = _attr(msg, "RTA_DST")
    if dst is None:
        dst = "0.0.0.0" if family == 4 else "::"
    table = _attr(msg, "RTA_TABLE") or msg["table"]
    metric = _attr(msg, "RTA_PRIORITY") or 0
    oif = _attr(msg, "RTA_OIF")
    return Route("%s/%d" % (dst, msg["dst_len"]), table, metric, _attr(msg, "RTA_GATEWAY"), oif=oif,
                 ifname=ifnames.get(oif, str(oif)), proto=msg["proto"], scope=msg["scope"], rtype=msg["type"])


class RouteManager:
    """Read, plan and apply routes of one interface. ``iproute``: a pyroute2 ``IPRoute`` (or a fake)."""

    def __init__(self, iproute, proto=ROUTE_PROTO):
        self.ipr = iproute
        self.proto = proto

    def oif(self, ifname):
        found = list(self.ipr.link_lookup(ifname=ifname))
        return found[0] if found else None

    def installed(self, oif, ifname):
        """All routes (both families, all tables, every type) as Route objects."""
        routes = []
        for family in (socket.AF_INET, socket.AF_INET6):
            for msg in self.ipr.get_routes(family=family):
                routes.append(route_from_msg(msg, {oif: ifname}))
        return routes

    def _describe(self, route):
        """A foreign route like ``ip route`` shows it: its device's name and its protocol's name."""
        ifname = route.ifname
        if route.oif is not None and ifname == str(route.oif):
            try:
                link = list(self.ipr.get_links(route.oif))[0]
                ifname = link.get_attr("IFLA_IFNAME") or ifname
            except Exception:  # noqa: BLE001 - only a nicer name for the message; the index will do
                pass
        text = route.dest if route.dest not in ("0.0.0.0/0", "::/0") else "default"
        if route.rtype != RTN_UNICAST:
            text = "type %d %s" % (route.rtype, text)
        if route.gateway:
            text += " via %s" % route.gateway
        if route.oif is not None:
            text += " dev %s" % ifname
        return "%s table %d metric %d proto %s" % (text, route.table, route.metric,
                                                   PROTO_NAMES.get(route.proto, route.proto))

    def _refuse_foreign(self, route, foreign):
        what = route.field or "routes"
        raise WgspError("%s: %s would replace the route %s, which this collection did not install (its routes carry "
                        "proto %d); it is never replaced or removed: remove it yourself, or give %s another "
                        "metric or table" % (what, route.dest, self._describe(foreign), self.proto, what),
                        field=what)

    def plan(self, desired, ifname, state="present", exclusive=False, check_mode=False):
        """Returns ``(oif, adds, deletes, before, after)``; adds/deletes are Route lists.

        A missing interface is an error, except in check mode: a role's ``--check`` on a new host
        runs before the interface exists, so every desired route is reported as an add.
        """
        oif = self.oif(ifname)
        if oif is None:
            if state == "absent":
                return None, [], [], [], []
            if check_mode:
                for route in desired:
                    route.proto = self.proto
                return None, list(desired), [], [], sorted(r.render() for r in desired)
            raise WgspError("interface: no such interface %r" % ifname)
        for route in desired:
            route.oif = oif
            route.proto = self.proto
        installed = self.installed(oif, ifname)
        ours = [r for r in installed if r.proto == self.proto and r.oif == oif and r.rtype == RTN_UNICAST]
        adds, deletes = [], []
        if state == "present":
            for route in desired:
                same = [r for r in installed if r.key() == route.key()]
                if any(r.same_path(route) and r.rtype == RTN_UNICAST for r in same):
                    continue  # already there, whoever installed it
                foreign = [r for r in same if r.proto != self.proto or r.rtype != RTN_UNICAST]
                if foreign:  # a replace would take it over (and a later absent would delete it)
                    self._refuse_foreign(route, foreign[0])
                adds.append(route)
            if exclusive:
                wanted = set(r.key() for r in desired)
                deletes = [r for r in ours if r.key() not in wanted]
        elif desired:
            wanted = set(r.key() for r in desired)
            deletes = [r for r in ours if r.key() in wanted]
        else:
            deletes = list(ours)  # absent without a list: every route we installed on the interface
        before = sorted(r.render() for r in ours)
        after_set = [r for r in ours if r not in deletes and r.key() not in set(a.key() for a in adds)]
        after = sorted([r.render() for r in after_set] + [r.render() for r in adds])
        return oif, adds, deletes, before, after

    def _args(self, route):
        net = ipaddress.ip_network(route.dest)
        args = dict(dst=str(net.network_address), dst_len=net.prefixlen, oif=route.oif, table=route.table,
                    priority=route.metric, proto=route.proto if route.proto is not None else self.proto,
                    family=socket.AF_INET if route.family == 4 else socket.AF_INET6)
        if route.gateway:
            args["gateway"] = route.gateway
        args["scope"] = route.wanted_scope()
        return args

    def apply(self, adds, deletes):
        for op, routes in (("del", deletes), ("replace", adds)):
            for route in routes:
                try:
                    self.ipr.route(op, **self._args(route))
                except Exception as exc:  # noqa: BLE001 - NetlinkError carries the kernel's errno and text
                    what = route.field or "route"
                    raise WgspError("%s: netlink refused to %s the route %s: %s" % (
                        what, "delete" if op == "del" else "add", route.render(), _nl_text(exc)),
                        field=what, errno=getattr(exc, "code", None))


def sync_routes(manager, desired, ifname, state="present", exclusive=False, check_mode=False):
    """Plan ``desired`` (``normalise_routes``) on ``ifname`` with ``manager`` (a ``RouteManager``) and,
    outside check mode, apply the difference.

    Returns ``(added, removed, diff)``: the routes added or replaced and the routes removed, rendered
    like ``ip route``, and the before/after of the manager's routes on ``ifname`` (header
    ``routes on <ifname>``)."""
    _oif, adds, deletes, before, after = manager.plan(desired, ifname, state, exclusive, check_mode=check_mode)
    if (adds or deletes) and not check_mode:
        manager.apply(adds, deletes)
    header = "routes on %s" % ifname
    diff = dict(before="".join(x + "\n" for x in before), after="".join(x + "\n" for x in after),
                before_header=header, after_header=header)
    return [r.render() for r in adds], [r.render() for r in deletes], diff
