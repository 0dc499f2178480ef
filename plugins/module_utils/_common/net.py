# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Addresses, networks and endpoints: the validators of every value that names a host or a network.

Internal to the collection. Each raises ``ValidationError`` naming the field.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import re
import socket

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.checks import check_no_control, check_port
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import ValidationError, describe


def _address_text(field, value):
    text = check_no_control(field, value)
    if text is None or isinstance(value, bool):
        raise ValidationError(field, "is required (an IPv4 or IPv6 address)")
    text = str(text).strip()
    if "%" in text:
        # ipaddress keeps anything after "%" as an IPv6 scope id, verbatim: it would reach
        # shell lines, restore files and the UAPI unchanged.
        raise ValidationError(field, "must not carry an IPv6 scope id ('%%zone'); link-local zones are not "
                                     "supported (got %s)" % describe(value))
    return text


def check_address(field, value):
    """A single IPv4/IPv6 address (no prefix, no scope id); returns ``ipaddress`` object."""
    text = _address_text(field, value)
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValidationError(field, "is not a valid IPv4 or IPv6 address (got %s)" % describe(value))


def check_cidr(field, value, strict=False):
    """An address with an optional prefix, e.g. ``10.7.0.2/32``; returns ``ipaddress`` interface.

    With ``strict`` host bits must be zero (a network, as in allowed IPs and routes) and a
    network object is returned. IPv6 scope ids (``fe80::1%eth0``) are refused.
    """
    text = _address_text(field, value)
    try:
        if strict:
            return ipaddress.ip_network(text, strict=True)
        return ipaddress.ip_interface(text)
    except ValueError as exc:
        raise ValidationError(field, "is not a valid CIDR (got %s: %s)" % (describe(value), exc))


# IPv4-mapped IPv6 addresses (``::ffff:a.b.c.d``): a socket-API notation, never the address of an
# IPv6 packet on the wire, and printed by iptables and nft in their own way.
_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
# The networks that match every address of their family.
ANY_NETWORKS = ("0.0.0.0/0", "::/0")


def address_text(ip):
    """An address as iptables-save and nft print it: the C library's ``inet_ntop``.

    Python and ``inet_ntop`` differ on IPv6 addresses with an embedded IPv4 part (Python
    ``::1:2``, ``inet_ntop`` ``::0.1.0.2``); a rule rendered with Python's text would never read
    back the same.
    """
    if ip.version == 6:
        return socket.inet_ntop(socket.AF_INET6, ip.packed)
    return str(ip)


def _refuse_mapped(field, net, value):
    if net.version == 6 and net.subnet_of(_MAPPED):
        raise ValidationError(field, "%s is an IPv4-mapped IPv6 address: no IPv6 packet carries one; write the "
                                     "IPv4 form (e.g. %s) instead" % (describe(value), net.network_address.ipv4_mapped))


def check_match_networks(field, values):
    """The source/destination networks a firewall rule matches, in the one form both backends read back.

    ``values``: a list (or one string) of addresses/CIDRs. Returns a list of texts
    ``<address_text>/<prefix>`` in input order, without duplicates:

    - host bits are cleared (``10.0.0.5/24`` -> ``10.0.0.0/24``);
    - IPv4-mapped IPv6 networks (``::ffff:1.2.3.4``) are refused, naming the IPv4 form;
    - a ``/0`` (``0.0.0.0/0``, ``::/0``) means every address of its family: it replaces every other
      entry of that family, and the renderers leave the address match out (iptables-save omits it,
      so a rendered ``-s 0.0.0.0/0`` would never read back); the family restriction stays.
    """
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, (list, tuple)):
        raise ValidationError(field, "must be a list of CIDRs (got %s)" % describe(values))
    nets = []
    for i, value in enumerate(values):
        item = "%s[%d]" % (field, i)
        net = check_cidr(item, value).network
        _refuse_mapped(item, net, value)
        nets.append(net)
    wide = set(net.version for net in nets if net.prefixlen == 0)
    out = []
    for net in nets:
        if net.version in wide and net.prefixlen != 0:
            continue
        text = "%s/%d" % (address_text(net.network_address), net.prefixlen)
        if text not in out:
            out.append(text)
    return out


def _special(ip):
    """Why ``ip`` cannot be a unicast host address (``None`` when it can)."""
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return _special(ip.ipv4_mapped)
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.version == 4 and ip == ipaddress.IPv4Address("255.255.255.255"):
        return "the broadcast address"
    return None


def check_interface_address(field, value):
    """An interface address (``10.7.0.1/24``): a unicast host address with a prefix.

    Unspecified, loopback, multicast and broadcast addresses are refused before anything changes
    (the kernel refuses several of them only after the interface exists).
    """
    iface = check_cidr(field, value)
    why = _special(iface.ip)
    if why:
        raise ValidationError(field, "%s is %s, not an interface address" % (iface.ip, why))
    return iface


def check_dnat_target(field, value, networks=()):
    """A DNAT target address: unicast, not loopback, not a broadcast address.

    ``networks``: the host's connected networks (``ipaddress`` networks) when known; the broadcast
    address of any of them is refused too. Returns the ``ipaddress`` object.
    """
    ip = check_address(field, value)
    _refuse_mapped(field, ipaddress.ip_network(ip), value)
    why = _special(ip)
    if why is None and ip.version == 4:
        for net in networks or ():
            if net.version == 4 and net.prefixlen < 31 and ip == net.broadcast_address:
                why = "the broadcast address of %s" % net
                break
    if why:
        raise ValidationError(field, "%s is %s; a DNAT target must be a unicast address of another host "
                                     "or of this host's own interfaces" % (ip, why))
    return ip


def check_relay_target(field, value):
    """A relay's target: a unicast address, as for DNAT, except that a loopback address is allowed (a
    relay connects from this host itself, so it may publish a service listening on loopback only)."""
    ip = check_address(field, value)
    _refuse_mapped(field, ipaddress.ip_network(ip), value)
    why = _special(ip)
    if why and not ip.is_loopback:
        raise ValidationError(field, "%s is %s; a relay target must be a unicast address" % (ip, why))
    return ip


def split_host_port(text):
    """The one reading of ``host:port`` text, and its inverse ``join_host_port``.

    ``[v6]:port``, ``[v6]``, ``host:port``, ``host`` or a bare IPv6 address -> ``(host, port)``: host
    unbracketed, port the text after the separating ``:`` (a number, a range, a service name) or
    ``None``. Syntax only: the ``check_*`` validators judge the values. A ``[`` without its ``]``, or
    text after ``]`` that is not ``:port``, raises ``ValueError``.
    """
    text = str(text or "").strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError("%r is not [address] or [address]:port" % (text,))
        return host, (rest[1:] if rest else None)
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, port
    return text, None  # a host, or an IPv6 address without brackets (so without a port)


def join_host_port(host, port):
    """``host:port``, an IPv6 address in brackets (``[2001:db8::1]:51820``): the one form an endpoint
    or a target is written in."""
    return "[%s]:%s" % (host, port) if ":" in str(host) else "%s:%s" % (host, port)


# RFC 1123 host names (an endpoint's host when it is not an address).
_HOSTNAME_RE = re.compile(r"^(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                          r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")


def check_endpoint(field, value):
    """``host:port`` or ``[v6]:port``; returns ``(host, port)`` with host unbracketed."""
    text = check_no_control(field, value)
    text = str(text).strip() if text is not None else ""
    try:
        host, port = split_host_port(text)
    except ValueError:
        host = port = None
    bracketed = text.startswith("[")
    if not host or not port or not port.isdigit() or not (bracketed or _HOSTNAME_RE.match(host)):
        raise ValidationError(field, "must be host:port or [ipv6]:port with a port (got %s)" % describe(value))
    if bracketed and check_address(field, host).version != 6:
        raise ValidationError(field, "brackets are for IPv6 addresses only (got %s)" % describe(value))
    return host, check_port(field, port)
