# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The WireGuard generic netlink family's messages (``include/uapi/linux/wireguard.h``): a device and
its peers encoded into ``WG_CMD_SET_DEVICE`` messages, a ``WG_CMD_GET_DEVICE`` dump parsed back.

Internal to the collection. Keys cross this module as base64 text and travel as 32 raw bytes; no
exception text or ``repr`` here ever contains key material.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import socket
import struct

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.net import split_host_port
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard.genl_msg import (
    GENL_HDR,
    NLA_HDR,
    NLMSG_HDR,
    NetlinkError,
    _u,
    genl_payload,
    nla,
    nla_nested,
    nla_strz,
    nla_u16,
    nla_u32,
    nla_u8,
    parse_attrs,
)


WG_GENL_NAME = "wireguard"
WG_GENL_VERSION = 1
WG_KEY_LEN = 32
WG_CMD_GET_DEVICE = 0
WG_CMD_SET_DEVICE = 1

WGDEVICE_A_IFINDEX = 1
WGDEVICE_A_IFNAME = 2
WGDEVICE_A_PRIVATE_KEY = 3
WGDEVICE_A_PUBLIC_KEY = 4
WGDEVICE_A_FLAGS = 5
WGDEVICE_A_LISTEN_PORT = 6
WGDEVICE_A_FWMARK = 7
WGDEVICE_A_PEERS = 8
WGDEVICE_F_REPLACE_PEERS = 1

WGPEER_A_PUBLIC_KEY = 1
WGPEER_A_PRESHARED_KEY = 2
WGPEER_A_FLAGS = 3
WGPEER_A_ENDPOINT = 4
WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL = 5
WGPEER_A_LAST_HANDSHAKE_TIME = 6
WGPEER_A_RX_BYTES = 7
WGPEER_A_TX_BYTES = 8
WGPEER_A_ALLOWEDIPS = 9
WGPEER_A_PROTOCOL_VERSION = 10
WGPEER_F_REMOVE_ME = 1
WGPEER_F_REPLACE_ALLOWEDIPS = 2
WGPEER_F_UPDATE_ONLY = 4

WGALLOWEDIP_A_FAMILY = 1
WGALLOWEDIP_A_IPADDR = 2
WGALLOWEDIP_A_CIDR_MASK = 3
SOCKADDR_IN = struct.Struct("=H2s4s8x")  # family (host order), port (network order), address
SOCKADDR_IN6 = struct.Struct("=H2s4s16sI")  # family, port, flowinfo, address, scope id
TIMESPEC = struct.Struct("=qq")  # struct __kernel_timespec

# One WG_CMD_SET_DEVICE message stays below this many bytes (header included); wg(8) splits the
# same way. The kernel would accept more, but a bounded size keeps every message well inside the
# socket buffers.
MAX_SET_MESSAGE = 32768
ZERO_KEY_BYTES = b"\0" * WG_KEY_LEN


def key_bytes(field, value):
    """32 raw bytes from a base64 key; the error never shows the value (it may be a secret)."""
    if isinstance(value, bytes) and len(value) == WG_KEY_LEN:
        return value
    try:
        raw = base64.b64decode(value, validate=True)
    except (TypeError, ValueError, binascii.Error):
        raw = None
    if raw is None or len(raw) != WG_KEY_LEN:
        raise NetlinkError("%s is not a WireGuard key (base64 of 32 bytes)" % field)
    return raw


def _key_text(raw):
    if raw is None or len(raw) != WG_KEY_LEN or raw == ZERO_KEY_BYTES:
        return None
    return base64.b64encode(raw).decode("ascii")


def encode_endpoint(text):
    """``ip:port`` or ``[ipv6]:port`` -> a ``sockaddr_in`` / ``sockaddr_in6``."""
    try:
        host, port = split_host_port(text)
        host = host.split("%")[0]
        port_bytes = struct.pack("!H", int(port))
        if ":" in host:
            return SOCKADDR_IN6.pack(socket.AF_INET6, port_bytes, b"\0" * 4, socket.inet_pton(socket.AF_INET6, host), 0)
        return SOCKADDR_IN.pack(socket.AF_INET, port_bytes, socket.inet_pton(socket.AF_INET, host))
    except (TypeError, ValueError, OSError, struct.error):
        raise NetlinkError("endpoint %r is not ip:port or [ipv6]:port" % (text,))


def decode_endpoint(raw):
    """``ip:port`` / ``[ipv6]:port`` from a ``sockaddr``; ``None`` for an unset or unknown one."""
    if len(raw) < 2:
        return None
    family = struct.unpack_from("=H", raw)[0]
    if family == socket.AF_INET and len(raw) >= SOCKADDR_IN.size:
        _fam, port, addr = SOCKADDR_IN.unpack_from(raw)
        return "%s:%d" % (socket.inet_ntop(socket.AF_INET, addr), struct.unpack("!H", port)[0])
    if family == socket.AF_INET6 and len(raw) >= SOCKADDR_IN6.size:
        _fam, port, _flow, addr, _scope = SOCKADDR_IN6.unpack_from(raw)
        return "[%s]:%d" % (socket.inet_ntop(socket.AF_INET6, addr), struct.unpack("!H", port)[0])
    return None


def encode_allowed_ip(cidr):
    """One allowed IP (``10.7.0.0/24``, ``fd07::/64``) as a nested ``WGALLOWEDIP_A_*`` set."""
    addr, _sep, mask = str(cidr).partition("/")
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    full = 128 if family == socket.AF_INET6 else 32
    try:
        packed = socket.inet_pton(family, addr)
        mask = full if mask == "" else int(mask)
    except (ValueError, OSError):
        packed = None
    if packed is None or not 0 <= mask <= full:
        raise NetlinkError("allowed IP %r is not a CIDR" % (cidr,))
    return nla_nested(0, [nla_u16(WGALLOWEDIP_A_FAMILY, family), nla(WGALLOWEDIP_A_IPADDR, packed),
                          nla_u8(WGALLOWEDIP_A_CIDR_MASK, mask)])


def encode_device_attrs(private_key=None, listen_port=None, fwmark=None, replace_peers=False):
    attrs = []
    if private_key is not None:
        attrs.append(nla(WGDEVICE_A_PRIVATE_KEY, key_bytes("private_key", private_key)))
    if listen_port is not None:
        attrs.append(nla_u16(WGDEVICE_A_LISTEN_PORT, int(listen_port)))
    if fwmark is not None:
        attrs.append(nla_u32(WGDEVICE_A_FWMARK, int(fwmark)))
    if replace_peers:
        attrs.append(nla_u32(WGDEVICE_A_FLAGS, WGDEVICE_F_REPLACE_PEERS))
    return attrs


def peer_flags(peer, continued=False):
    """The ``WGPEER_F_*`` bits of one peer spec (``continued``: a later part of a split peer)."""
    if continued:
        return WGPEER_F_UPDATE_ONLY
    flags = 0
    if peer.get("remove"):
        flags |= WGPEER_F_REMOVE_ME
    if peer.get("replace_allowed_ips"):
        flags |= WGPEER_F_REPLACE_ALLOWEDIPS
    if peer.get("update_only"):
        flags |= WGPEER_F_UPDATE_ONLY
    return flags


def _peer_head(peer, continued):
    """The attributes of a peer before its allowed IPs (the first part carries all of them)."""
    attrs = [nla(WGPEER_A_PUBLIC_KEY, key_bytes("peer public_key", peer["public_key"]))]
    flags = peer_flags(peer, continued)
    if flags:
        attrs.append(nla_u32(WGPEER_A_FLAGS, flags))
    if continued or peer.get("remove"):
        return attrs
    if peer.get("preshared_key") is not None:
        attrs.append(nla(WGPEER_A_PRESHARED_KEY, key_bytes("preshared_key", peer["preshared_key"])))
    if peer.get("endpoint"):
        attrs.append(nla(WGPEER_A_ENDPOINT, encode_endpoint(peer["endpoint"])))
    if peer.get("persistent_keepalive") is not None:
        attrs.append(nla_u16(WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, int(peer["persistent_keepalive"])))
    return attrs


def build_set_messages(ifname, device=None, peers=(), limit=MAX_SET_MESSAGE):
    """The genl payloads (``genlmsghdr`` + attributes) of one ``WG_CMD_SET_DEVICE`` change.

    ``device``: ``{private_key, listen_port, fwmark, replace_peers}`` (each optional), sent in the
    first message only. ``peers``: specs ``{public_key, remove, update_only, replace_allowed_ips,
    preshared_key, endpoint, persistent_keepalive, allowed_ips}``. Several peers share a message
    while they fit; a peer whose allowed IPs do not fit is continued in the next message.
    """
    base = genl_payload(WG_CMD_SET_DEVICE, WG_GENL_VERSION, [nla_strz(WGDEVICE_A_IFNAME, ifname)])
    overhead = NLMSG_HDR.size + len(base) + NLA_HDR.size  # + the WGDEVICE_A_PEERS nest header
    messages = []
    state = {"attrs": encode_device_attrs(**(device or {})), "peers": []}
    state["size"] = overhead + sum(len(a) for a in state["attrs"])

    def flush():
        attrs = list(state["attrs"])
        if state["peers"]:
            attrs.append(nla_nested(WGDEVICE_A_PEERS, state["peers"]))
        messages.append(base + b"".join(attrs))
        state.update(attrs=[], peers=[], size=overhead)

    if state["size"] > limit:
        raise NetlinkError("the device attributes alone exceed %d bytes" % limit)
    for peer in peers:
        ips = [encode_allowed_ip(c) for c in peer.get("allowed_ips") or []]
        done = 0
        continued = False
        while True:
            head = b"".join(_peer_head(peer, continued))
            size = NLA_HDR.size + len(head)
            room = limit - state["size"] - size
            taken = []
            if done < len(ips):
                room -= NLA_HDR.size  # the WGPEER_A_ALLOWEDIPS nest header
                for encoded in ips[done:]:
                    if len(encoded) > room:
                        break
                    taken.append(encoded)
                    room -= len(encoded)
            fits = room >= 0 and (taken or done >= len(ips))
            if not fits:
                if state["attrs"] or state["peers"]:
                    flush()
                    continue
                raise NetlinkError("one peer does not fit in a %d-byte netlink message" % limit)
            children = [head]
            if taken:
                children.append(nla_nested(WGPEER_A_ALLOWEDIPS, taken))
            nest = nla_nested(0, children)
            state["peers"].append(nest)
            state["size"] += len(nest)
            done += len(taken)
            if done >= len(ips):
                break
            flush()
            continued = True
    if state["attrs"] or state["peers"] or not messages:
        flush()
    return messages


def _allowed_ip(raw):
    attrs = dict(parse_attrs(raw))
    family = _u("=H", attrs.get(WGALLOWEDIP_A_FAMILY, b""))
    addr = attrs.get(WGALLOWEDIP_A_IPADDR, b"")
    mask = _u("=B", attrs.get(WGALLOWEDIP_A_CIDR_MASK, b""))
    if mask is None or (family, len(addr)) not in ((socket.AF_INET, 4), (socket.AF_INET6, 16)):
        return None
    return "%s/%d" % (socket.inet_ntop(family, addr), mask)


def parse_device(payloads):
    """The UAPI-style device dict from the genl payloads of a ``WG_CMD_GET_DEVICE`` dump.

    ``{private_key, public_key, listen_port, fwmark, peers: [{public_key, preshared_key, endpoint,
    allowed_ips, persistent_keepalive, latest_handshake, rx_bytes, tx_bytes}]}``; keys in base64,
    unset keys ``None``. A peer repeated in a later message (its allowed IPs continue) is merged.
    """
    device = {"private_key": None, "public_key": None, "listen_port": 0, "fwmark": 0, "peers": []}
    by_key = {}
    for payload in payloads:
        for attr_type, raw in parse_attrs(payload, GENL_HDR.size):
            if attr_type == WGDEVICE_A_PRIVATE_KEY:
                device["private_key"] = _key_text(raw) or device["private_key"]
            elif attr_type == WGDEVICE_A_PUBLIC_KEY:
                device["public_key"] = _key_text(raw) or device["public_key"]
            elif attr_type == WGDEVICE_A_LISTEN_PORT:
                device["listen_port"] = _u("=H", raw, device["listen_port"])
            elif attr_type == WGDEVICE_A_FWMARK:
                device["fwmark"] = _u("=I", raw, device["fwmark"])
            elif attr_type == WGDEVICE_A_PEERS:
                for _index, peer_raw in parse_attrs(raw):
                    _merge_peer(device, by_key, dict((t, v) for t, v in parse_attrs(peer_raw)))
    return device


def _merge_peer(device, by_key, attrs):
    raw_key = attrs.get(WGPEER_A_PUBLIC_KEY)
    if raw_key is None or len(raw_key) != WG_KEY_LEN:
        return
    public_key = base64.b64encode(raw_key).decode("ascii")
    peer = by_key.get(public_key)
    if peer is None:
        peer = {"public_key": public_key, "preshared_key": None, "endpoint": None, "allowed_ips": [],
                "persistent_keepalive": 0, "latest_handshake": 0, "rx_bytes": 0, "tx_bytes": 0}
        by_key[public_key] = peer
        device["peers"].append(peer)
    if WGPEER_A_PRESHARED_KEY in attrs:
        peer["preshared_key"] = _key_text(attrs[WGPEER_A_PRESHARED_KEY])
    if WGPEER_A_ENDPOINT in attrs:
        peer["endpoint"] = decode_endpoint(attrs[WGPEER_A_ENDPOINT]) or peer["endpoint"]
    if WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL in attrs:
        peer["persistent_keepalive"] = _u("=H", attrs[WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL], 0)
    if WGPEER_A_LAST_HANDSHAKE_TIME in attrs and len(attrs[WGPEER_A_LAST_HANDSHAKE_TIME]) >= TIMESPEC.size:
        peer["latest_handshake"] = TIMESPEC.unpack_from(attrs[WGPEER_A_LAST_HANDSHAKE_TIME])[0]
    if WGPEER_A_RX_BYTES in attrs:
        peer["rx_bytes"] = _u("=Q", attrs[WGPEER_A_RX_BYTES], 0)
    if WGPEER_A_TX_BYTES in attrs:
        peer["tx_bytes"] = _u("=Q", attrs[WGPEER_A_TX_BYTES], 0)
    for _index, ip_raw in parse_attrs(attrs.get(WGPEER_A_ALLOWEDIPS, b"")):
        cidr = _allowed_ip(ip_raw)
        if cidr:
            peer["allowed_ips"].append(cidr)
