# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Netlink access: links/addresses through pyroute2 (both backends), WireGuard genl (kernel).

Internal to the collection. pyroute2 is imported defensively: ``HAS_PYROUTE2`` /
``PYROUTE2_IMPORT_ERROR`` let the module report ``missing_required_lib``.

- ``LinkOps`` uses only the long-stable ``IPRoute`` calls (``link_lookup``, ``get_links``,
  ``get_addr``, ``addr``, ``link``), so any pyroute2 from 0.7 on works (Debian 12 ships 0.7.2,
  Debian 13 0.7.7).
- ``KernelWireGuard`` speaks WireGuard's generic netlink through ``genl`` (stdlib sockets),
  not through ``pyroute2.WireGuard``: releases before 0.9.3 encode the peer flags wrongly (an
  update wipes the peer's allowed IPs) and 0.9 rewrote the class as async.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import socket

from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import genl
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard.keys import ZERO_KEY

try:
    from pyroute2 import IPRoute
    HAS_PYROUTE2 = True
    PYROUTE2_IMPORT_ERROR = None
except Exception as _exc:  # pylint: disable=broad-except
    IPRoute = None
    HAS_PYROUTE2 = False
    PYROUTE2_IMPORT_ERROR = _exc

IFF_UP = 0x1
RT_SCOPE_LINK = 253

NetlinkError = genl.NetlinkError


def _attr(msg, name, default=None):
    try:
        value = msg.get_attr(name)
    except Exception:  # pylint: disable=broad-except
        value = None
    return default if value is None else value


def _nl_error(action, exc):
    code = getattr(exc, "code", None)
    text = getattr(exc, "strerror", None) or str(exc)
    return NetlinkError("netlink %s failed: %s" % (action, text), errno=code)


class LinkOps:
    """Link, address, MTU and up/down of one interface via ``IPRoute`` (stable API only)."""

    def __init__(self, name, iproute_factory=None):
        self.name = name
        self._factory = iproute_factory or IPRoute

    def _ipr(self):
        if self._factory is None:
            raise NetlinkError("pyroute2 is required")
        return self._factory()

    def _index(self, ipr):
        found = list(ipr.link_lookup(ifname=self.name))
        return found[0] if found else None

    def read(self):
        """``None`` when absent, else ``{index, kind, mtu, up, addresses: [cidr, ...]}``.

        Link-local IPv6 addresses the kernel adds by itself are left out (they are never managed).
        """
        ipr = self._ipr()
        try:
            index = self._index(ipr)
            if index is None:
                return None
            links = list(ipr.get_links(index))
            if not links:
                return None
            link = links[0]
            kind = None
            linkinfo = _attr(link, "IFLA_LINKINFO")
            if linkinfo is not None:
                kind = _attr(linkinfo, "IFLA_INFO_KIND")
            addresses = []
            for msg in ipr.get_addr(index=index):
                if msg.get("index", index) != index:
                    continue
                family = msg.get("family")
                addr = _attr(msg, "IFA_LOCAL") if family == socket.AF_INET else None
                addr = addr or _attr(msg, "IFA_ADDRESS")
                if addr is None:
                    continue
                if family == socket.AF_INET6 and msg.get("scope") == RT_SCOPE_LINK:
                    continue
                addresses.append("%s/%d" % (addr, msg.get("prefixlen")))
            return {"index": index, "kind": kind, "mtu": _attr(link, "IFLA_MTU"),
                    "up": bool(link.get("flags", 0) & IFF_UP), "addresses": addresses}
        except NetlinkError:
            raise
        except Exception as exc:  # pylint: disable=broad-except
            raise _nl_error("read of %s" % self.name, exc)
        finally:
            ipr.close()

    def _mutate(self, action, func):
        ipr = self._ipr()
        try:
            index = self._index(ipr)
            if index is None and action[0] != "add_wireguard":
                raise NetlinkError("interface %s disappeared while being configured" % self.name)
            return func(ipr, index)
        except NetlinkError:
            raise
        except Exception as exc:  # pylint: disable=broad-except
            raise _nl_error("%s on %s" % (action[0], self.name), exc)
        finally:
            ipr.close()

    def add_wireguard(self):
        return self._mutate(("add_wireguard",), lambda ipr, idx: ipr.link("add", ifname=self.name, kind="wireguard"))

    def delete(self):
        return self._mutate(("delete",), lambda ipr, idx: ipr.link("del", index=idx))

    def set_mtu(self, mtu):
        return self._mutate(("set_mtu", mtu), lambda ipr, idx: ipr.link("set", index=idx, mtu=mtu))

    def set_up(self):
        return self._mutate(("set_up",), lambda ipr, idx: ipr.link("set", index=idx, state="up"))

    def add_address(self, cidr):
        addr, prefix = cidr.split("/")
        return self._mutate(("add_address", cidr),
                            lambda ipr, idx: ipr.addr("add", index=idx, address=addr, prefixlen=int(prefix)))

    def del_address(self, cidr):
        addr, prefix = cidr.split("/")
        return self._mutate(("del_address", cidr),
                            lambda ipr, idx: ipr.addr("del", index=idx, address=addr, prefixlen=int(prefix)))


def kernel_peer_request(op):
    """The ``genl`` peer spec for one planned peer operation.

    add: a new peer, allowed IPs replaced (``WGPEER_F_REPLACE_ALLOWEDIPS``); update:
    ``WGPEER_F_UPDATE_ONLY`` plus only the changed fields (``REPLACE_ALLOWEDIPS`` only when the
    allowed IPs change); remove: ``WGPEER_F_REMOVE_ME``.
    """
    peer = {"public_key": op["public_key"]}
    if op["op"] == "remove":
        peer["remove"] = True
        return peer
    if op["op"] == "update":
        peer["update_only"] = True
    if "preshared_key" in op:
        peer["preshared_key"] = op["preshared_key"] or ZERO_KEY
    if op.get("endpoint"):
        peer["endpoint"] = op["endpoint"]
    if "persistent_keepalive" in op:
        peer["persistent_keepalive"] = op["persistent_keepalive"]
    if "allowed_ips" in op:
        peer["replace_allowed_ips"] = True
        peer["allowed_ips"] = list(op["allowed_ips"])
    return peer


class KernelWireGuard:
    """WireGuard genl for a kernel ``wireguard`` link: one SET per device change / peer operation
    (more when a peer's allowed IPs need several messages). ``set_requests`` counts the messages sent.

    ``socket_factory`` is handed to ``genl.WireGuardGenl`` (unit tests pass a fake socket).
    """

    def __init__(self, name, socket_factory=None):
        self.name = name
        self._socket_factory = socket_factory
        self.set_requests = 0
        self.unavailable_reason = None

    def _client(self):
        return genl.WireGuardGenl(socket_factory=self._socket_factory)

    def family_available(self):
        """Whether the kernel's ``wireguard`` genl family resolves (the reason is kept when not)."""
        ok, self.unavailable_reason = genl.probe_family(self._socket_factory)
        return ok

    def get(self):
        with self._client() as client:
            return client.get_device(self.name)

    def apply(self, device, peer_ops):
        """Send the device attributes (if any) and then one request per peer operation."""
        requests = []
        if device:
            requests.append((dict((k, device[k]) for k in ("private_key", "listen_port", "fwmark") if k in device), []))
        for op in peer_ops:
            requests.append((None, [kernel_peer_request(op)]))
        if not requests:
            return
        client = self._client()
        try:
            with client:
                for attrs, peers in requests:
                    client.set_device(self.name, device=attrs, peers=peers)
        finally:
            self.set_requests += client.set_messages
