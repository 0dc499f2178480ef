# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""WireGuard's generic netlink API, spoken directly on an ``AF_NETLINK`` socket.

Internal to the collection. Only the standard library (``socket``, ``struct``): no pyroute2, whose
WireGuard class sent wrong peer flags before 0.9.3 (Debian 12 ships 0.7.2, Debian 13 0.7.7) and was
rewritten as async in 0.9. The protocol is the kernel's ``include/uapi/linux/wireguard.h``; the
message layout follows ``wg(8)`` (``ipc-linux.h``).

- ``WireGuardGenl.resolve_family()``: the family id of ``wireguard`` (``CTRL_CMD_GETFAMILY``);
  ``FamilyNotFound`` when the kernel has no WireGuard module loaded.
- ``WireGuardGenl.get_device(ifname)``: ``WG_CMD_GET_DEVICE`` as a dump, multi-part replies merged
  (a peer whose allowed IPs span messages is repeated by the kernel with its public key).
- ``WireGuardGenl.set_device(ifname, ...)``: ``WG_CMD_SET_DEVICE`` with an ACK per message; a peer
  with more allowed IPs than fit in ``MAX_SET_MESSAGE`` bytes is continued in further messages
  (the first one carries ``REPLACE_ALLOWEDIPS``, the later ones append with ``UPDATE_ONLY``).

Keys cross this module as base64 text and travel as 32 raw bytes. No exception text or ``repr``
here ever contains key material, and the socket asks the kernel not to echo requests in its ACKs.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import errno
import os
import socket
import struct

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import WgspError

NETLINK_GENERIC = 16
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11

NLMSG_NOOP = 1
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_OVERRUN = 4
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP_INTR = 0x10
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH
NLM_F_CAPPED = 0x100  # on NLMSG_ERROR: only the request's header is echoed
NLM_F_ACK_TLVS = 0x200  # on NLMSG_ERROR: extended ACK attributes follow
NLMSGERR_ATTR_MSG = 1

NLA_F_NESTED = 0x8000
NLA_F_NET_BYTEORDER = 0x4000
NLA_TYPE_MASK = 0xFFFF & ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER)

GENL_ID_CTRL = 0x10
CTRL_CMD_GETFAMILY = 3
CTRL_ATTR_FAMILY_ID = 1
CTRL_ATTR_FAMILY_NAME = 2

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

NLMSG_HDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
GENL_HDR = struct.Struct("=BBH")  # command, version, reserved
NLA_HDR = struct.Struct("=HH")  # length, type
NLMSGERR = struct.Struct("=i")
SOCKADDR_IN = struct.Struct("=H2s4s8x")  # family (host order), port (network order), address
SOCKADDR_IN6 = struct.Struct("=H2s4s16sI")  # family, port, flowinfo, address, scope id
TIMESPEC = struct.Struct("=qq")  # struct __kernel_timespec

# One WG_CMD_SET_DEVICE message stays below this many bytes (header included); wg(8) splits the
# same way. The kernel would accept more, but a bounded size keeps every message well inside the
# socket buffers.
MAX_SET_MESSAGE = 32768
RECV_SIZE = 65536
DEFAULT_TIMEOUT = 10.0
DUMP_RETRIES = 5
ZERO_KEY_BYTES = b"\0" * WG_KEY_LEN

FAMILY_MISSING = ("the kernel has no WireGuard module loaded (generic netlink family '%s' not found)"
                  % WG_GENL_NAME)


class NetlinkError(WgspError):
    """A netlink request failed; ``errno``/``strerror`` when the kernel answered with an error."""

    def __init__(self, msg, errno=None, strerror=None, **details):  # pylint: disable=redefined-outer-name
        if errno is not None:
            details["errno"] = errno
        super(NetlinkError, self).__init__(msg, **details)
        self.errno = errno
        self.strerror = strerror


class FamilyNotFound(NetlinkError):
    """The ``wireguard`` generic netlink family does not resolve: no WireGuard module in the kernel."""


# --------------------------------------------------------------------------------------------
# encoding


def _align(length):
    return (length + 3) & ~3


def nla(attr_type, payload):
    """One attribute, padded to 4 bytes (the padding is not part of its length)."""
    length = NLA_HDR.size + len(payload)
    return NLA_HDR.pack(length, attr_type) + payload + b"\0" * (_align(length) - length)


def nla_nested(attr_type, children):
    """A nested attribute (``NLA_F_NESTED`` set, as the kernel's strict parsers require)."""
    return nla(attr_type | NLA_F_NESTED, b"".join(children))


def nla_u8(attr_type, value):
    return nla(attr_type, struct.pack("=B", value))


def nla_u16(attr_type, value):
    return nla(attr_type, struct.pack("=H", value))


def nla_u32(attr_type, value):
    return nla(attr_type, struct.pack("=I", value))


def nla_strz(attr_type, text):
    return nla(attr_type, text.encode("ascii") + b"\0")


def nlmsg(msg_type, flags, seq, payload, port_id=0):
    return NLMSG_HDR.pack(NLMSG_HDR.size + len(payload), msg_type, flags, seq, port_id) + payload


def genl_payload(cmd, version, attrs):
    return GENL_HDR.pack(cmd, version, 0) + b"".join(attrs)


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
    host, _sep, port = str(text).rpartition(":")
    host = host.strip("[]").split("%")[0]
    try:
        port_bytes = struct.pack("!H", int(port))
        if ":" in host:
            return SOCKADDR_IN6.pack(socket.AF_INET6, port_bytes, b"\0" * 4, socket.inet_pton(socket.AF_INET6, host), 0)
        return SOCKADDR_IN.pack(socket.AF_INET, port_bytes, socket.inet_pton(socket.AF_INET, host))
    except (ValueError, OSError, struct.error):
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


# --------------------------------------------------------------------------------------------
# decoding


def parse_attrs(data, offset=0):
    """``[(type, payload), ...]`` of a run of attributes (type without the NESTED/BYTEORDER bits)."""
    attrs = []
    end = len(data)
    while offset + NLA_HDR.size <= end:
        length, attr_type = NLA_HDR.unpack_from(data, offset)
        if length < NLA_HDR.size or offset + length > end:
            raise NetlinkError("malformed netlink attribute (length %d at offset %d of %d)" % (length, offset, end))
        attrs.append((attr_type & NLA_TYPE_MASK, data[offset + NLA_HDR.size:offset + length]))
        offset += _align(length)
    return attrs


def _u(fmt, raw, default=None):
    size = struct.calcsize(fmt)
    if len(raw) < size:
        return default
    return struct.unpack_from(fmt, raw)[0]


def split_messages(data):
    """``[(type, flags, seq, payload), ...]`` of one datagram; a truncated message is an error."""
    out = []
    offset = 0
    while offset + NLMSG_HDR.size <= len(data):
        length, msg_type, flags, seq, _port = NLMSG_HDR.unpack_from(data, offset)
        if length < NLMSG_HDR.size or offset + length > len(data):
            raise NetlinkError("truncated netlink message (length %d, %d bytes left)" % (length, len(data) - offset))
        out.append((msg_type, flags, seq, data[offset + NLMSG_HDR.size:offset + length]))
        offset += _align(length)
    return out


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


def parse_error(payload):
    """The errno of an ``NLMSG_ERROR`` payload (0: an ACK)."""
    code = _u("=i", payload)
    if code is None:
        raise NetlinkError("truncated netlink error message")
    return -code


def _extack_message(flags, payload):
    if not flags & NLM_F_ACK_TLVS or len(payload) < NLMSGERR.size + NLMSG_HDR.size:
        return None
    offset = NLMSGERR.size + NLMSG_HDR.size
    if not flags & NLM_F_CAPPED:
        offset = NLMSGERR.size + _align(NLMSG_HDR.unpack_from(payload, NLMSGERR.size)[0])
    try:
        attrs = dict(parse_attrs(payload, offset))
    except NetlinkError:
        return None
    text = attrs.get(NLMSGERR_ATTR_MSG)
    return text.rstrip(b"\0").decode("ascii", "replace") if text else None


# --------------------------------------------------------------------------------------------
# the socket


def netlink_socket():
    """A generic netlink socket (``AF_NETLINK``, ``SOCK_RAW``, ``NETLINK_GENERIC``)."""
    family = getattr(socket, "AF_NETLINK", None)
    if family is None:
        raise NetlinkError("netlink sockets are not available on this platform")
    return socket.socket(family, socket.SOCK_RAW, NETLINK_GENERIC)


class WireGuardGenl:
    """A WireGuard generic netlink client; use it as a context manager (the socket is closed after).

    ``socket_factory`` returns the socket (tests pass a fake); ``set_messages`` counts the
    ``WG_CMD_SET_DEVICE`` messages sent.
    """

    def __init__(self, socket_factory=None, timeout=DEFAULT_TIMEOUT, seq=None):
        self._factory = socket_factory or netlink_socket
        self._timeout = timeout
        self._sock = None
        self._seq = (seq if seq is not None else int.from_bytes(os.urandom(4), "little")) & 0x7FFFFFFF
        self.family_id = None
        self.set_messages = 0

    def __repr__(self):
        return "<WireGuardGenl family_id=%r set_messages=%d>" % (self.family_id, self.set_messages)

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc_info):
        self.close()

    def open(self):
        if self._sock is not None:
            return
        try:
            sock = self._factory()
        except (OSError, socket.error) as exc:
            raise NetlinkError("cannot open a generic netlink socket: %s" % (exc.strerror or exc),
                               errno=exc.errno, strerror=exc.strerror)
        try:
            sock.settimeout(self._timeout)
            for option in (NETLINK_CAP_ACK, NETLINK_EXT_ACK):
                try:
                    # CAP_ACK: an error reply must not echo the request (it may hold a key);
                    # EXT_ACK: the kernel says which attribute it refused.
                    sock.setsockopt(SOL_NETLINK, option, 1)
                except (OSError, socket.error):
                    pass
            sock.bind((0, 0))
        except (OSError, socket.error) as exc:
            sock.close()
            raise NetlinkError("cannot bind a generic netlink socket: %s" % (exc.strerror or exc),
                               errno=exc.errno, strerror=exc.strerror)
        self._sock = sock

    def close(self):
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close()

    # ------------------------------------------------------------------ transport
    def _next_seq(self):
        self._seq = (self._seq + 1) & 0x7FFFFFFF or 1
        return self._seq

    def _send(self, msg_type, flags, payload):
        self.open()
        seq = self._next_seq()
        data = nlmsg(msg_type, flags, seq, payload)
        try:
            self._sock.sendto(data, (0, 0))
        except (OSError, socket.error) as exc:
            raise NetlinkError("netlink send failed: %s" % (exc.strerror or exc), errno=exc.errno,
                               strerror=exc.strerror)
        return seq

    def _recv(self, what):
        try:
            data = self._sock.recv(RECV_SIZE)
        except socket.timeout:
            raise NetlinkError("%s: no answer from the kernel within %.0fs" % (what, self._timeout),
                               errno=errno.ETIMEDOUT, strerror=os.strerror(errno.ETIMEDOUT))
        except (OSError, socket.error) as exc:
            raise NetlinkError("%s: netlink receive failed: %s" % (what, exc.strerror or exc),
                               errno=exc.errno, strerror=exc.strerror)
        if not data:
            raise NetlinkError("%s: the netlink socket was closed" % what)
        return data

    def _error(self, what, code, flags, payload):
        text = os.strerror(code)
        kernel = _extack_message(flags, payload)
        msg = "%s failed: %s (errno %d)%s" % (what, text, code, " - %s" % kernel if kernel else "")
        return NetlinkError(msg, errno=code, strerror=text)

    def _transact(self, msg_type, flags, payload, what, not_found=None):
        """Send one request; return the payloads of its replies.

        A dump ends with ``NLMSG_DONE``, anything else with its ACK (``NLM_F_ACK`` is always set
        there). ``NLM_F_DUMP_INTR`` (the device changed mid-dump) makes the whole dump restart.
        """
        dump = (flags & NLM_F_DUMP) == NLM_F_DUMP
        if not dump:
            flags |= NLM_F_ACK
        for _attempt in range(DUMP_RETRIES):
            seq = self._send(msg_type, NLM_F_REQUEST | flags, payload)
            replies = []
            interrupted = False
            finished = False
            while not finished:
                for reply_type, reply_flags, reply_seq, body in split_messages(self._recv(what)):
                    if reply_seq != seq or reply_type == NLMSG_NOOP:
                        continue  # a stale answer to an earlier request
                    if reply_type == NLMSG_ERROR:
                        code = parse_error(body)
                        if code:
                            if not_found is not None and code == errno.ENOENT:
                                raise not_found
                            raise self._error(what, code, reply_flags, body)
                        finished = True  # the ACK
                    elif reply_type == NLMSG_DONE:
                        code = -(_u("=i", body, 0) or 0)
                        if code > 0:
                            raise self._error(what, code, reply_flags, body)
                        finished = True
                    elif reply_type == NLMSG_OVERRUN:
                        raise NetlinkError("%s: netlink overrun" % what, errno=errno.ENOBUFS,
                                           strerror=os.strerror(errno.ENOBUFS))
                    else:
                        replies.append(body)
                        interrupted = interrupted or bool(reply_flags & NLM_F_DUMP_INTR)
                    if finished:
                        break
            if not interrupted:
                return replies
        raise NetlinkError("%s: the dump was interrupted %d times (the device kept changing)" % (what, DUMP_RETRIES),
                           errno=errno.EINTR, strerror=os.strerror(errno.EINTR))

    # ------------------------------------------------------------------ WireGuard
    def resolve_family(self):
        """The family id of ``wireguard``; ``FamilyNotFound`` when the kernel does not know it."""
        if self.family_id is not None:
            return self.family_id
        payload = genl_payload(CTRL_CMD_GETFAMILY, 1, [nla_strz(CTRL_ATTR_FAMILY_NAME, WG_GENL_NAME)])
        missing = FamilyNotFound(FAMILY_MISSING, errno=errno.ENOENT, strerror=os.strerror(errno.ENOENT))
        replies = self._transact(GENL_ID_CTRL, 0, payload, "CTRL_CMD_GETFAMILY %s" % WG_GENL_NAME, not_found=missing)
        for body in replies:
            family_id = _u("=H", dict(parse_attrs(body, GENL_HDR.size)).get(CTRL_ATTR_FAMILY_ID, b""))
            if family_id:
                self.family_id = family_id
                return family_id
        raise missing

    def get_device(self, ifname):
        """The device dict of ``ifname`` (see ``parse_device``)."""
        family = self.resolve_family()
        payload = genl_payload(WG_CMD_GET_DEVICE, WG_GENL_VERSION, [nla_strz(WGDEVICE_A_IFNAME, ifname)])
        return parse_device(self._transact(family, NLM_F_DUMP, payload, "WG_CMD_GET_DEVICE on %s" % ifname))

    def set_device(self, ifname, device=None, peers=(), limit=MAX_SET_MESSAGE):
        """Apply a device change and peer specs (see ``build_set_messages``); each message is ACKed."""
        family = self.resolve_family()
        messages = build_set_messages(ifname, device, peers, limit)
        for index, payload in enumerate(messages):
            self.set_messages += 1
            what = "WG_CMD_SET_DEVICE on %s" % ifname
            if len(messages) > 1:
                what += " (message %d of %d)" % (index + 1, len(messages))
            self._transact(family, 0, payload, what)
        return len(messages)


def probe_family(socket_factory=None):
    """``(True, None)`` when the ``wireguard`` family resolves, else ``(False, reason)``."""
    try:
        with WireGuardGenl(socket_factory) as client:
            client.resolve_family()
    except NetlinkError as exc:
        return False, exc.msg
    return True, None
