# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.wireguard.com/xplatform/ for the protocol)
"""The wireguard-go cross-platform UAPI (``get=1`` / ``set=1`` over a unix socket).

Internal to the collection. Three layers, each testable alone:

- ``parse_get(text)``: the reply of ``get=1`` -> a device dict with **base64** keys.
- ``render_set(device, peer_ops)``: a plan -> the ``set=1`` payload (hex keys: a secret).
- ``UapiClient``: the socket. Errors carry the errno the daemon answered, never the payload
  (Ansible's no_log masking only matches the exact base64 string, not its hex form).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno as errno_mod
import os
import socket
import stat
import time

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import WgspError
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard.keys import ZERO_KEY, b64_from_hex, hex_key

SOCKET_DIR = "/var/run/wireguard"


class UapiError(WgspError):
    pass


def socket_path(name, directory=SOCKET_DIR):
    return os.path.join(directory, "%s.sock" % name)


def _int(key, value):
    try:
        return int(value)
    except ValueError:
        raise UapiError("UAPI reply has a non-numeric %s" % key)


def parse_get(text):
    """Parse a ``get=1`` reply into a device dict.

    Returns ``{private_key, listen_port, fwmark, peers: [ {public_key, preshared_key, endpoint,
    allowed_ips, persistent_keepalive, latest_handshake, rx_bytes, tx_bytes} ]}`` where keys are
    base64 (``None`` when unset; an all-zero preshared key means none). Raises ``UapiError``
    when the reply ends with a non-zero errno.
    """
    device = {"private_key": None, "listen_port": 0, "fwmark": 0, "peers": []}
    peer = None
    seen_errno = None
    for line in text.split("\n"):
        if not line:
            continue
        key, sep, value = line.partition("=")
        if not sep:
            raise UapiError("UAPI reply has a malformed line")
        if key == "errno":
            seen_errno = _int(key, value)
            continue
        if key == "public_key":
            peer = {"public_key": b64_from_hex(value), "preshared_key": None, "endpoint": None,
                    "allowed_ips": [], "persistent_keepalive": 0, "latest_handshake": 0,
                    "rx_bytes": 0, "tx_bytes": 0}
            device["peers"].append(peer)
            continue
        if peer is None:
            if key == "private_key":
                device["private_key"] = b64_from_hex(value)
            elif key == "listen_port":
                device["listen_port"] = _int(key, value)
            elif key == "fwmark":
                device["fwmark"] = _int(key, value)
            # unknown device keys are ignored (forward compatible)
            continue
        if key == "preshared_key":
            psk = b64_from_hex(value)
            peer["preshared_key"] = None if psk == ZERO_KEY else psk
        elif key == "endpoint":
            peer["endpoint"] = value
        elif key == "allowed_ip":
            peer["allowed_ips"].append(value)
        elif key == "persistent_keepalive_interval":
            peer["persistent_keepalive"] = _int(key, value)
        elif key == "last_handshake_time_sec":
            peer["latest_handshake"] = _int(key, value)
        elif key == "rx_bytes":
            peer["rx_bytes"] = _int(key, value)
        elif key == "tx_bytes":
            peer["tx_bytes"] = _int(key, value)
    if seen_errno is None:
        raise UapiError("UAPI reply ended without errno")
    if seen_errno != 0:
        raise UapiError("UAPI get failed: errno=%d (%s)" % (seen_errno, os.strerror(seen_errno)), errno=seen_errno)
    return device


def render_set(device=None, peer_ops=()):
    """Render the ``set=1`` request body for a plan (without the ``set=1`` line and final blank).

    ``device``: dict with any of ``private_key`` (base64), ``listen_port``, ``fwmark``.
    ``peer_ops``: list of dicts ``{op: add|update|remove, public_key, preshared_key?, endpoint?,
    persistent_keepalive?, allowed_ips?}``; for ``update`` only the keys present are sent and
    ``update_only=true`` guarantees a peer removed meanwhile is not re-created half-configured.
    The result holds hex secrets: send it, never log it.
    """
    lines = []
    device = device or {}
    if "private_key" in device:
        lines.append("private_key=%s" % hex_key(device["private_key"]))
    if "listen_port" in device:
        lines.append("listen_port=%d" % device["listen_port"])
    if "fwmark" in device:
        lines.append("fwmark=%d" % device["fwmark"])
    for op in peer_ops:
        lines.append("public_key=%s" % hex_key(op["public_key"]))
        if op["op"] == "remove":
            lines.append("remove=true")
            continue
        if op["op"] == "update":
            lines.append("update_only=true")
        if "preshared_key" in op:
            lines.append("preshared_key=%s" % hex_key(op["preshared_key"] or ZERO_KEY))
        if op.get("endpoint"):
            lines.append("endpoint=%s" % op["endpoint"])
        if "persistent_keepalive" in op:
            lines.append("persistent_keepalive_interval=%d" % op["persistent_keepalive"])
        if "allowed_ips" in op:
            lines.append("replace_allowed_ips=true")
            for cidr in op["allowed_ips"]:
                lines.append("allowed_ip=%s" % cidr)
    return "".join(line + "\n" for line in lines)


class UapiClient:
    """One unix-socket conversation per request (wireguard-go closes after each reply)."""

    def __init__(self, path, timeout=5.0):
        self.path = path
        self.timeout = timeout
        self.set_requests = 0

    def _exchange(self, request):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            try:
                sock.connect(self.path)
            except (IOError, OSError) as exc:
                raise UapiError("cannot connect to the wireguard-go control socket %s: %s" % (
                    self.path, exc.strerror or exc.__class__.__name__))
            try:
                sock.sendall(request.encode("ascii"))
                chunks = []
                while True:
                    chunk = sock.recv(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    tail = b"".join(chunks[-2:])
                    if tail.endswith(b"\n\n") and b"errno=" in tail:
                        break
            except (IOError, OSError) as exc:
                # no payload in the message: it may hold hex keys
                raise UapiError("UAPI exchange on %s failed: %s" % (self.path, exc.strerror or exc.__class__.__name__))
        finally:
            sock.close()
        return b"".join(chunks).decode("ascii", "replace")

    def get(self):
        return parse_get(self._exchange("get=1\n\n"))

    def set(self, body):
        """Send one ``set=1`` transaction; raise ``UapiError`` with the errno only."""
        if not body:
            return
        self.set_requests += 1
        reply = self._exchange("set=1\n" + body + "\n")
        code = None
        for line in reply.split("\n"):
            if line.startswith("errno="):
                try:
                    code = int(line[6:])
                except ValueError:
                    code = -1
        if code is None:
            raise UapiError("UAPI set on %s got no errno in the reply" % self.path)
        if code != 0:
            raise UapiError("UAPI set on %s failed: errno=%d (%s); the request is not shown because it holds keys" % (
                self.path, code, os.strerror(code) if code > 0 else "unknown"), errno=code)


def wait_for_socket(path, timeout=5.0, interval=0.02):
    deadline = time.time() + timeout
    while True:
        try:
            if stat.S_ISSOCK(os.stat(path).st_mode):
                return True
        except OSError as exc:
            if exc.errno != errno_mod.ENOENT:
                raise
        if time.time() >= deadline:
            return False
        time.sleep(interval)
