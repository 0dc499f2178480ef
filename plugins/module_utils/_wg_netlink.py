# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Netlink access through pyroute2: links/addresses (both backends) and WireGuard genl (kernel).

Internal to the collection. pyroute2 is imported defensively: ``HAS_PYROUTE2`` /
``PYROUTE2_IMPORT_ERROR`` let the module report ``missing_required_lib``.

- ``LinkOps`` uses only the long-stable ``IPRoute`` calls (``link_lookup``, ``get_links``,
  ``get_addr``, ``addr``, ``link``) so the userspace backend also works with Debian 12's
  python3-pyroute2 0.7.2.
- ``KernelWireGuard`` uses ``pyroute2.WireGuard`` and refuses pyroute2 < 0.9.3: earlier
  releases encoded the peer flags wrongly, so an update could wipe a peer's allowed IPs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re
import socket

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common import WgspError
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wg_keys import ZERO_KEY

try:
    import pyroute2
    from pyroute2 import IPRoute
    HAS_PYROUTE2 = True
    PYROUTE2_IMPORT_ERROR = None
except Exception as _exc:  # pylint: disable=broad-except
    pyroute2 = None
    IPRoute = None
    HAS_PYROUTE2 = False
    PYROUTE2_IMPORT_ERROR = _exc

try:
    from pyroute2 import WireGuard
except Exception:  # pylint: disable=broad-except
    WireGuard = None

MIN_KERNEL_PYROUTE2 = (0, 9, 3)
IFF_UP = 0x1
RT_SCOPE_LINK = 253


class NetlinkError(WgspError):
    pass


def pyroute2_version():
    """The installed pyroute2 version as text ('unknown' when it cannot be told)."""
    version = getattr(pyroute2, "__version__", None) if pyroute2 is not None else None
    if not version or version == "unknown":
        try:
            from importlib.metadata import version as dist_version
            version = dist_version("pyroute2")
        except Exception:  # pylint: disable=broad-except
            version = "unknown"
    return str(version)


def version_tuple(text):
    parts = []
    for piece in str(text).split(".")[:3]:
        match = re.match(r"^([0-9]+)", piece)
        if not match:
            break
        parts.append(int(match.group(1)))
    while len(parts) < 3:
        parts.append(0)
    return tuple(parts)


def check_kernel_pyroute2(version=None):
    """Raise ``NetlinkError`` unless pyroute2 can drive the kernel WireGuard backend correctly."""
    version = version or pyroute2_version()
    if not HAS_PYROUTE2 and version == "unknown":
        raise NetlinkError("the kernel backend needs pyroute2 >= 0.9.3, which is not installed")
    if version_tuple(version) < MIN_KERNEL_PYROUTE2:
        raise NetlinkError(
            "the kernel backend needs pyroute2 >= 0.9.3, found pyroute2 %s: releases before 0.9.3 send "
            "wrong WireGuard peer flags (an update wipes the peer's allowed IPs). Upgrade pyroute2 "
            "(pip install 'pyroute2>=0.9.3') or use backend=userspace." % version,
            pyroute2_version=version)
    if WireGuard is None:
        raise NetlinkError("pyroute2 %s has no WireGuard class; the kernel backend needs pyroute2 >= 0.9.3" % version)


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
        self.calls = []  # mutating calls, for tests and for the run's accounting

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
        self.calls.append(action)
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


def _text(value):
    if isinstance(value, bytes):
        return value.decode("ascii")
    return value


def _key_attr(msg, name):
    value = _attr(msg, name)
    if value is None:
        return None
    if hasattr(value, "get") and not isinstance(value, (str, bytes)):
        value = value.get("value")
    return _text(value)


def _format_endpoint(value):
    if value is None or not hasattr(value, "get"):
        return None
    addr, port = value.get("addr"), value.get("port")
    if not addr or not port:
        return None
    if ":" in addr:
        return "[%s]:%d" % (addr, port)
    return "%s:%d" % (addr, port)


def parse_kernel_info(messages):
    """Turn ``WireGuard.info()`` messages (a dump may be split) into the UAPI-style device dict."""
    device = {"private_key": None, "public_key": None, "listen_port": 0, "fwmark": 0, "peers": []}
    by_key = {}
    for msg in messages:
        private = _key_attr(msg, "WGDEVICE_A_PRIVATE_KEY")
        if private and private != ZERO_KEY:
            device["private_key"] = private
        public = _key_attr(msg, "WGDEVICE_A_PUBLIC_KEY")
        if public and public != ZERO_KEY:
            device["public_key"] = public
        device["listen_port"] = _attr(msg, "WGDEVICE_A_LISTEN_PORT", device["listen_port"])
        device["fwmark"] = _attr(msg, "WGDEVICE_A_FWMARK", device["fwmark"])
        for peer_msg in _attr(msg, "WGDEVICE_A_PEERS", []) or []:
            public_key = _key_attr(peer_msg, "WGPEER_A_PUBLIC_KEY")
            if public_key is None:
                continue
            peer = by_key.get(public_key)
            if peer is None:
                peer = {"public_key": public_key, "preshared_key": None, "endpoint": None, "allowed_ips": [],
                        "persistent_keepalive": 0, "latest_handshake": 0, "rx_bytes": 0, "tx_bytes": 0}
                by_key[public_key] = peer
                device["peers"].append(peer)
            psk = _key_attr(peer_msg, "WGPEER_A_PRESHARED_KEY")
            if psk and psk != ZERO_KEY:
                peer["preshared_key"] = psk
            endpoint = _format_endpoint(_attr(peer_msg, "WGPEER_A_ENDPOINT"))
            if endpoint:
                peer["endpoint"] = endpoint
            peer["persistent_keepalive"] = _attr(peer_msg, "WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL",
                                                 peer["persistent_keepalive"])
            handshake = _attr(peer_msg, "WGPEER_A_LAST_HANDSHAKE_TIME")
            if handshake is not None and hasattr(handshake, "get"):
                peer["latest_handshake"] = handshake.get("tv_sec") or 0
            peer["rx_bytes"] = _attr(peer_msg, "WGPEER_A_RX_BYTES", peer["rx_bytes"])
            peer["tx_bytes"] = _attr(peer_msg, "WGPEER_A_TX_BYTES", peer["tx_bytes"])
            for allowed in _attr(peer_msg, "WGPEER_A_ALLOWEDIPS", []) or []:
                cidr = allowed.get("addr") if hasattr(allowed, "get") else None
                if cidr:
                    peer["allowed_ips"].append(cidr)
    return device


def kernel_peer_request(op):
    """The ``peer`` dict ``pyroute2.WireGuard.set`` takes for one planned peer operation.

    add: a new peer, allowed IPs replaced; update: ``update_only`` plus only the changed fields
    (``replace_allowed_ips`` only when the allowed IPs change); remove: ``remove``.
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
        host, _sep, port = op["endpoint"].rpartition(":")
        peer["endpoint_addr"] = host.strip("[]")
        peer["endpoint_port"] = int(port)
    if "persistent_keepalive" in op:
        peer["persistent_keepalive"] = op["persistent_keepalive"]
    if "allowed_ips" in op:
        peer["replace_allowed_ips"] = True
        peer["allowed_ips"] = list(op["allowed_ips"])
    return peer


class KernelWireGuard:
    """WireGuard genl for a kernel ``wireguard`` link, one ``set`` per device change / peer."""

    def __init__(self, name, wireguard_factory=None, version=None):
        self.name = name
        self._factory = wireguard_factory
        self._version = version
        self.set_requests = 0

    def _wg(self):
        if self._factory is None:
            check_kernel_pyroute2(self._version)
            self._factory = WireGuard
        return self._factory()

    def get(self):
        wg = self._wg()
        try:
            return parse_kernel_info(list(wg.info(self.name)))
        except Exception as exc:  # pylint: disable=broad-except
            raise _nl_error("WireGuard get on %s" % self.name, exc)
        finally:
            wg.close()

    def apply(self, device, peer_ops):
        """Send the device attributes (if any) and then one request per peer operation."""
        requests = []
        if device:
            kwargs = {}
            if "private_key" in device:
                kwargs["private_key"] = device["private_key"]
            if "listen_port" in device:
                kwargs["listen_port"] = device["listen_port"]
            if "fwmark" in device:
                kwargs["fwmark"] = device["fwmark"]
            requests.append(kwargs)
        for op in peer_ops:
            requests.append({"peer": kernel_peer_request(op)})
        if not requests:
            return
        wg = self._wg()
        try:
            for kwargs in requests:
                self.set_requests += 1
                try:
                    wg.set(self.name, **kwargs)
                except Exception as exc:  # pylint: disable=broad-except
                    # the exception text is pyroute2's (errno and strerror); keys are never in it
                    raise _nl_error("WireGuard set on %s" % self.name, exc)
        finally:
            wg.close()
