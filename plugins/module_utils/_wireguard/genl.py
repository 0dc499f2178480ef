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

import errno
import os
import socket

from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard.genl_codec import (
    MAX_SET_MESSAGE,
    WGDEVICE_A_IFNAME,
    WG_CMD_GET_DEVICE,
    WG_GENL_NAME,
    WG_GENL_VERSION,
    build_set_messages,
    parse_device,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard.genl_msg import (
    CTRL_ATTR_FAMILY_ID,
    CTRL_ATTR_FAMILY_NAME,
    CTRL_CMD_GETFAMILY,
    GENL_HDR,
    GENL_ID_CTRL,
    NETLINK_CAP_ACK,
    NETLINK_EXT_ACK,
    NETLINK_GENERIC,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSG_NOOP,
    NLMSG_OVERRUN,
    NLM_F_ACK,
    NLM_F_DUMP,
    NLM_F_DUMP_INTR,
    NLM_F_REQUEST,
    NetlinkError,
    SOL_NETLINK,
    _extack_message,
    _u,
    genl_payload,
    nla_strz,
    nlmsg,
    parse_attrs,
    parse_error,
    split_messages,
)


RECV_SIZE = 65536
DEFAULT_TIMEOUT = 10.0
DUMP_RETRIES = 5

FAMILY_MISSING = ("the kernel has no WireGuard module loaded (generic netlink family '%s' not found)"
                  % WG_GENL_NAME)


class FamilyNotFound(NetlinkError):
    """The ``wireguard`` generic netlink family does not resolve: no WireGuard module in the kernel."""


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
