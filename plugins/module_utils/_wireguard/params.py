# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The options of ``wg_interface``: each one checked and normalised before anything is touched.

Internal to the collection. ``validate_params`` returns the desired state the plan is computed from.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import os
import socket

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.checks import (
    check_ifname,
    check_int,
    check_port,
    check_shell_line,
    check_token,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import ValidationError
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.files import check_abs_path
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.net import (
    check_cidr,
    check_endpoint,
    check_interface_address,
    join_host_port,
    split_host_port,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import keys


CONF_DIR = "/etc/wireguard"


def _ip_sort_key(text):
    net = ipaddress.ip_interface(text)
    return (net.version, int(net.ip), net.network.prefixlen)


def sort_cidrs(values):
    return sorted(set(values), key=_ip_sort_key)


def normalize_address(field, value):
    """An interface address ``10.7.0.1/24`` in canonical form (a bare address gets /32 or /128)."""
    iface = check_cidr(field, value)
    return iface.with_prefixlen if iface.version == 4 else "%s/%d" % (iface.ip.compressed, iface.network.prefixlen)


def normalize_allowed_ip(field, value):
    """An allowed IP as the device stores it: the network, host bits cleared (``10.7.0.9/24`` -> ``10.7.0.0/24``)."""
    iface = check_cidr(field, value)
    return iface.network.with_prefixlen if iface.version == 4 else iface.network.compressed


def format_endpoint(ip_text, port):
    """An address and a port in canonical form (compressed IPv6, no scope id, in brackets)."""
    return join_host_port(ipaddress.ip_address(ip_text.split("%")[0]).compressed, int(port))


def normalize_device_endpoint(text):
    """An endpoint as a device reports it, in the same canonical form as resolved input."""
    if not text:
        return None
    try:
        host, port = split_host_port(text)
        return format_endpoint(host, int(port))
    except (TypeError, ValueError):
        return text


def resolve_endpoint(field, value, resolver=None):
    """``host:port`` -> canonical ``ip:port`` (``[v6]:port``); a hostname is resolved like ``wg`` does."""
    host, port = check_endpoint(field, value)
    try:
        return format_endpoint(host, port)
    except ValueError:
        pass
    resolver = resolver or socket.getaddrinfo
    try:
        infos = resolver(host, port, 0, socket.SOCK_DGRAM)
    except (socket.gaierror, socket.herror, UnicodeError, OSError) as exc:
        raise ValidationError(field, "cannot resolve host %r: %s" % (host, getattr(exc, "strerror", None) or exc))
    for info in infos:
        if info[0] in (socket.AF_INET, socket.AF_INET6):
            return format_endpoint(info[4][0], port)
    raise ValidationError(field, "host %r has no IPv4 or IPv6 address" % host)


def _no_secret_control(field, value):
    """Like ``check_no_control`` but never echoes the value (for key material)."""
    text = str(value)
    for ch in text:
        if ch in "\r\n" or ord(ch) < 32 or ord(ch) == 127:
            raise ValidationError(field, "must not contain a newline or control character")
    return text


def validate_params(params, resolver=None):
    """Check and normalise the module options; raise ``ValidationError`` on the first problem.

    Returns the desired state: ``{name, state, backend, addresses|None, listen_port|None,
    mtu|None, fwmark|None, private_key|None, private_key_path, peers: {public_key: {...}},
    exclusive_peers, persist, table, post_up, pre_down, remove_key}``.
    """
    name = check_ifname("name", params.get("name"))
    want = {
        "name": name,
        "state": params.get("state") or "present",
        "backend": params.get("backend") or "auto",
        "exclusive_peers": params.get("exclusive_peers", True) is not False,
        "persist": params.get("persist", True) is not False,
        "remove_key": bool(params.get("remove_key")),
    }
    if want["state"] not in ("present", "absent"):
        raise ValidationError("state", "must be present or absent")
    if want["backend"] not in ("auto", "kernel", "userspace"):
        raise ValidationError("backend", "must be auto, kernel or userspace")

    if params.get("private_key") is not None and params.get("private_key_path") is not None:
        raise ValidationError("private_key", "is mutually exclusive with private_key_path")
    want["private_key"] = None
    if params.get("private_key") is not None:
        want["private_key"] = keys.check_key("private_key", params["private_key"])
    path = params.get("private_key_path")
    if path is not None:
        path = check_abs_path("private_key_path", path)
    want["private_key_path"] = path or os.path.join(CONF_DIR, "%s.key" % name)

    addresses = params.get("addresses")
    if addresses is not None:
        if not isinstance(addresses, (list, tuple)):
            raise ValidationError("addresses", "must be a list of CIDRs")
        for i, address in enumerate(addresses):
            check_interface_address("addresses[%d]" % i, address)
        addresses = [normalize_address("addresses[%d]" % i, a) for i, a in enumerate(addresses)]
        addresses = sort_cidrs(addresses)
    want["addresses"] = addresses
    want["listen_port"] = None if params.get("listen_port") is None else check_port("listen_port", params["listen_port"])
    want["mtu"] = None if params.get("mtu") is None else check_int("mtu", params["mtu"], 68, 65535)
    want["fwmark"] = None if params.get("fwmark") is None else check_int("fwmark", params["fwmark"], 0, 0xFFFFFFFF)
    table = params.get("table")
    want["table"] = check_token("table", "off" if table is None else table, max_len=32)
    for hook in ("post_up", "pre_down"):
        commands = params.get(hook) or []
        if not isinstance(commands, (list, tuple)):
            raise ValidationError(hook, "must be a list of command strings")
        want[hook] = [check_shell_line("%s[%d]" % (hook, i), c) for i, c in enumerate(commands)]

    peers = {}
    owner = {}
    raw_peers = params.get("peers") or []
    if not isinstance(raw_peers, (list, tuple)):
        raise ValidationError("peers", "must be a list")
    for i, raw in enumerate(raw_peers):
        field = "peers[%d]" % i
        if not isinstance(raw, dict):
            raise ValidationError(field, "must be a dictionary")
        public_key = keys.check_key(field + ".public_key", raw.get("public_key"), secret=False)
        if public_key in peers:
            raise ValidationError(field + ".public_key", "the same public key is listed twice (also %s)" % peers[public_key]["field"])
        if raw.get("preshared_key") is not None and raw.get("preshared_key_path") is not None:
            raise ValidationError(field + ".preshared_key", "is mutually exclusive with preshared_key_path")
        psk = None
        if raw.get("preshared_key") is not None:
            _no_secret_control(field + ".preshared_key", raw["preshared_key"])
            psk = keys.check_key(field + ".preshared_key", raw["preshared_key"])
        elif raw.get("preshared_key_path") is not None:
            psk_path = check_abs_path(field + ".preshared_key_path", raw["preshared_key_path"])
            psk = keys.read_key_file(field + ".preshared_key_path", psk_path)
            if psk is None:
                raise ValidationError(field + ".preshared_key_path", "file %s does not exist" % psk_path)
        if psk == keys.ZERO_KEY:
            psk = None
        endpoint = None
        endpoint_input = None
        if raw.get("endpoint") is not None:
            host, port = check_endpoint(field + ".endpoint", raw["endpoint"])
            endpoint_input = join_host_port(host, port)
            endpoint = resolve_endpoint(field + ".endpoint", endpoint_input, resolver)
        keepalive = raw.get("persistent_keepalive")
        keepalive = 0 if keepalive is None else check_int(field + ".persistent_keepalive", keepalive, 0, 65535)
        allowed = raw.get("allowed_ips") or []
        if not isinstance(allowed, (list, tuple)):
            raise ValidationError(field + ".allowed_ips", "must be a list of CIDRs")
        allowed_ips = []
        for j, cidr in enumerate(allowed):
            sub = "%s.allowed_ips[%d]" % (field, j)
            net = normalize_allowed_ip(sub, cidr)
            if net in owner and owner[net] != i:
                raise ValidationError(sub, "%s is already an allowed IP of peers[%d]; an allowed IP can "
                                           "belong to one peer only" % (net, owner[net]))
            owner[net] = i
            allowed_ips.append(net)
        peers[public_key] = {"field": field, "public_key": public_key, "preshared_key": psk,
                             "endpoint": endpoint, "endpoint_input": endpoint_input,
                             "persistent_keepalive": keepalive, "allowed_ips": sort_cidrs(allowed_ips)}
    want["peers"] = peers
    return want
