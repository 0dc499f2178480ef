# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Netlink and generic netlink messages: constants, attribute (NLA) builders, the parsers of a reply
and of an error or extended ACK.

Internal to the collection. Standard library only (``struct``); nothing WireGuard-specific, nothing
that touches a socket.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

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

NLMSG_HDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
GENL_HDR = struct.Struct("=BBH")  # command, version, reserved
NLA_HDR = struct.Struct("=HH")  # length, type
NLMSGERR = struct.Struct("=i")


class NetlinkError(WgspError):
    """A netlink request failed; ``errno``/``strerror`` when the kernel answered with an error."""

    def __init__(self, msg, errno=None, strerror=None, **details):  # pylint: disable=redefined-outer-name
        if errno is not None:
            details["errno"] = errno
        super(NetlinkError, self).__init__(msg, **details)
        self.errno = errno
        self.strerror = strerror


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
