# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Each option of the original -> the roles' variables, with the original's meaning (its main.go)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common import forms
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.checks import check_docker_name, check_port
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import ValidationError
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.net import check_address, split_host_port

from .parse import EnvImportError, PREFIX, _IPV4, _check_items, _int, _items, _lower_proto, _ports, original_bool

# ---------------------------------------------------------------------------------------------
# the mapping

API_SERVER = ("an option of the original's HTTP API server (its port, connecting at start, the paths of its "
              "config and .env files, debug logging); the collection has no server: Ansible applies the "
              "configuration at each run, `wg_status` reports, `-v` shows detail")
NOT_READ = "not read by the original (setting it changed nothing there)"


def _why_common():
    """Options the collection handles another way, in every mode: key -> why (comment text)."""
    return {
        "CLIENT_MODE": None,  # handled: the group
        "WG_DNS": "not mapped: the collection does not change the host's resolver (wg-quick DNS= would rewrite "
                  "resolv.conf); configure DNS with your usual resolver role if the tunnel needs it",
        "WG_PUBLIC_KEY": "not needed: the public key is derived from the private key on the host; "
                         "`ansible <host> -m wgsp.service_proxy.wg_status` shows it",
        "WG_PEER_PUBLIC_KEY": "not needed: the hub's public key is read on the hub itself at every run "
                              "(the hub's key is generated there)",
        "WG_ENDPOINT": "belongs to the hub, not to this host: put `wg_server_endpoint: %s` in the hub's group_vars "
                       "(group_vars/wg_server.yml)",
        "WG_ALLOWED_IPS": "not mapped: the tunnel network is the hub's `wg_server_address` (e.g. 10.7.0.1/24 gives "
                          "10.7.0.0/24); add destinations beyond it with `%sextra_routes` (value was %s)",
        "WG_INTERFACE_ROUTING_MASK": "not mapped: the tunnel network's prefix is the prefix of the hub's "
                                     "`wg_server_address` (value was %s)",
        "WG_DISABLE_INTERFACE_ROUTING": "not mapped: the roles always route the tunnel network through the interface "
                                        "(the service proxy needs it); only routes marked proto 87 are managed",
        "WG_PRIVATE_KEY": "moved to the secrets file (see its header): copy it to the key path on the host before the "
                          "first run to keep the old key, or let the role generate a new one on the host",
        "WG_PRESHARED_KEY": "mapped to `%s: true`: the hub makes a new preshared key for this client and hands it "
                            "over in the run's memory (the original's key stays in the secrets file, for reference)",
        "WG_DOCKER_FORWARD_TO_HOST": NOT_READ + "; host services are shared when WG_SHARE_HOST_SERVICES=true",
        "WG_PUBLIC_NETWORK": (NOT_READ + " (it always looks for the Docker network named public-network); the proxy "
                              "publishes on `proxy_client_public_interface` (auto: the interface of the default "
                              "route; WG_PUBLIC_INTERFACE sets it)"),
        "SERVER_PORT": API_SERVER, "AUTO_CONNECT": API_SERVER, "CONFIG_PATH": API_SERVER,
        "ENV_FILE_PATH": API_SERVER, "DEBUG": API_SERVER,
    }


def _map_common(prefix, key, value, mapped):
    if key == "WG_INTERFACE_NAME":
        if not value:
            return SKIP, "empty: the default interface, wg0 (as in the original)"
        mapped[prefix + "interface"] = value
    elif key == "WG_ADDRESS":
        items = _items(value)
        if not items:
            raise EnvImportError("WG_ADDRESS is empty")
        _check_items(key, items, r"^[0-9a-fA-F:.]+/[0-9]+$", "an address with prefix (10.7.0.2/32)")
        # wg-quick's Address list: the first address of each family (a dual-stack tunnel takes one of each)
        kept = []
        for item in items:
            if not any((":" in k) == (":" in item) for k in kept):
                kept.append(item)
        mapped[prefix + "address"] = kept[0] if len(kept) == 1 else kept
        dropped = [item for item in items if item not in kept]
        if dropped:
            return "only the first address of each family is mapped (%s); a tunnel takes one IPv4 and one IPv6 " \
                   "address per client, the others were %s" % (", ".join(kept), ", ".join(dropped))
        if len(kept) > 1:
            return "a dual-stack tunnel: the hub's `wg_server_address` needs an address of each family too"
    elif key in ("WG_MTU", "WG_PERSISTENT_KEEPALIVE") and not value.strip():
        return SKIP, "empty: the default (as in the original)"
    elif key == "WG_MTU":
        mapped[prefix + "mtu"] = _int(key, value, 576, 65535)
    elif key == "WG_PERSISTENT_KEEPALIVE":
        mapped[prefix + "persistent_keepalive"] = _int(key, value, 0, 65535)
    elif key in ("WG_ALLOWED_TCP_PORTS", "WG_ALLOWED_UDP_PORTS"):
        mapped[prefix + key[3:].lower()] = _ports(key, value)
        return "the original only added ACCEPT rules for them (the tunnel input stayed open unless the host's " \
               "INPUT policy dropped); here the tunnel input accepts only these (`%sinput_filter`)" % prefix
    elif key == "WG_ALLOW_ICMP":
        return _set_bool(mapped, prefix + "allow_icmp", key, value)
    else:
        return False
    return None


def _set_bool(mapped, var, key, value):
    mapped[var], remark = original_bool(key, value)
    return remark


EVERY_MODE = ("the original applies it in every mode, so a proxy with it shared too; not carried over: a "
              "proxy_client shares nothing. To keep sharing, add this host to share_clients as well (%s)")


def _compact(key, value, parse, form, judge, proto_at=None):
    """Each item of a comma list read by the collection's compact-form parser (``_common.forms``, the
    one the roles' filters use) and its values judged by the same validators; an item that fails names
    the option, the item and the form. Returns the items as typed, the protocol word (part
    ``proto_at(item)``) lower-cased."""
    out = []
    for item in _items(value):
        try:
            parts = parse(key, item)
            problem = judge(parts)
        except ValidationError as exc:
            problem = exc.msg[len(key) + 2:] if exc.msg.startswith(key + ": ") else exc.msg
        if problem:
            raise EnvImportError("%s: %r is not %s (%s)" % (key, item, form, problem))
        index = proto_at(item) if proto_at else None
        out.append(item if index is None else _lower_proto(item, index))
    return out


def _proto_ports(parts, protos=forms.PROTO_WORDS, ports=("port",)):
    if parts["proto"] not in protos:
        return "protocol %r is not one of %s" % (parts["proto"], ", ".join(protos))
    for name in ports:
        check_port(name, parts[name])
    return None


def _ipv4(field, text):
    if check_address(field, text).version != 4:
        raise ValidationError(field, "the original forwards to IPv4 addresses only (got %s)" % text)


def _docker_hosts(key, value):
    def judge(parts):
        check_docker_name("name", parts["name"])
        return _proto_ports(parts, forms.PROTO_WORDS + ("icmp",))

    return _compact(key, value, forms.share_form, forms.SHARE, judge,
                    lambda item: 1 if item.count(":") == 2 else None)


def _public_ports(key, value):
    def judge(parts):
        if parts["proto"]:
            return "the original's only form has no protocol (TCP)"
        address, port = split_host_port(parts["target"])
        _ipv4("address", address)
        check_port("port", port)
        return _proto_ports({"proto": "tcp", "port": parts["port"]})

    return _compact(key, value, forms.publish_form, "public_port:address:port (the original's only form, TCP)",
                    judge)


def _map_share(key, value, mapped, values):
    p = PREFIX["share"]
    if key == "WG_DOCKER_ALLOWED_HOSTS":
        items = _docker_hosts(key, value)
        icmp = [item for item in items if ":icmp:" in item]
        mapped[p + "services"] = [item for item in items if item not in icmp]
        if icmp:
            return "not carried over: %s (ICMP to a container: the share client answers ping on its tunnel " \
                   "address itself, `share_client_allow_icmp`)" % ", ".join(icmp)
    elif key == "WG_DOCKER_NETWORK":
        if not value:
            return SKIP, "empty: the original's default network, vpn-network (set when services are listed)"
        mapped[p + "docker_network"] = value
    elif key == "WG_SHARE_HOST_SERVICES":
        on, remark = original_bool(key, value)
        state = "true" if on else (remark or "false")
        return SKIP, "%s: WG_HOST_SERVICES %s" % (state, "is mapped" if on else "is NOT shared (as in the original)")
    elif key == "WG_HOST_SERVICES":
        if not original_bool("WG_SHARE_HOST_SERVICES", values.get("WG_SHARE_HOST_SERVICES"))[0]:
            return SKIP, ("not carried over: the original shares these only with WG_SHARE_HOST_SERVICES=true "
                          "(it would have shared nothing); to share them, set %shost_services: [%s]"
                          % (p, ", ".join(_items(value))))
        mapped[p + "host_services"] = _compact(
            key, value, forms.host_service_form, forms.HOST_SERVICE,
            lambda parts: _proto_ports(parts, ports=("port", "to_port")), lambda item: 0)
    elif key == "WG_EXTERNAL_FORWARDING":
        mapped[p + "external_forwards"] = _compact(
            key, value, forms.external_form, forms.EXTERNAL,
            lambda parts: _ipv4("address", parts["to_address"]) or _proto_ports(parts, ports=("port", "to_port")),
            lambda item: 0)
    elif key == "WG_LOG_ACCESS":
        return SKIP, ("not read in share mode by the original (it logs a proxy's access to remote services); "
                      "`%slog_access: true` logs the accesses to what this host shares" % p)
    elif key in PROXY_ONLY:
        return SKIP, "a proxy option in a share client's file: ignored by the original in share mode too"
    else:
        return False
    return None


def _access_services(key, value):
    """The original's ``ip:port[:proto]`` (IPv4 only) -> the role's ``[proto:]address:port``."""
    out = []
    for item in _items(value):
        match = re.match(r"^(%s):([0-9]+)(:(tcp|udp))?$" % _IPV4, item, re.I)
        if not match:
            raise EnvImportError("%s: %r is not address:port or address:port:proto (tcp or udp)" % (key, item))
        proto = (match.group(5) or "tcp").lower()
        out.append("%s:%s" % (match.group(1), match.group(3)) if proto == "tcp"
                   else "%s:%s:%s" % (proto, match.group(1), match.group(3)))
    return out


def _map_proxy(key, value, mapped, values):
    p = PREFIX["proxy"]
    if key == "ACCESS_SERVICES":
        mapped[p + "access_services"] = _access_services(key, value)
    elif key == "WG_ENABLE_PUBLIC_FORWARDING":
        return _set_bool(mapped, p + "enable_public_forwarding", key, value)
    elif key == "WG_PUBLIC_PORTS":
        mapped[p + "public_ports"] = _public_ports(key, value)
    elif key == "WG_PUBLIC_INTERFACE":
        if value:
            mapped[p + "public_interface"] = value
    elif key == "WG_PUBLIC_ALLOWED_CIDR":
        items = _check_items(key, _items(value), r"^[0-9a-fA-F:.]+(/[0-9]+)?$", "a CIDR")
        if items in ([], ["0.0.0.0/0"]):
            mapped[p + "public_allowed_cidrs"] = []
            return None
        mapped[p + "public_allowed_cidrs"] = items
        return "the original checked it only at the host's own ports 80, 443, 8080 and 8082; here it filters " \
               "the published ports themselves"
    elif key == "WG_LOG_PUBLIC_ACCESS":
        return _set_bool(mapped, p + "log_public_access", key, value)
    elif key == "WG_LOG_ACCESS":
        # the original's LOG rule came after its ACCEPT and so logged nothing; the role logs each
        # new connection to an access service (prefix wgsp-access-new)
        return _set_bool(mapped, p + "log_access", key, value)
    elif key in ("WG_DOCKER_ALLOWED_HOSTS", "WG_EXTERNAL_FORWARDING"):
        return SKIP, EVERY_MODE % ("share_client_services" if key == "WG_DOCKER_ALLOWED_HOSTS"
                                   else "share_client_external_forwards")
    elif key in SHARE_ONLY:
        return SKIP, "a share option in a proxy client's file: the original reads it in share mode only"
    else:
        return False
    return None


SKIP = "skip"
SHARE_ONLY = ("WG_DOCKER_ALLOWED_HOSTS", "WG_DOCKER_NETWORK", "WG_SHARE_HOST_SERVICES", "WG_HOST_SERVICES",
              "WG_EXTERNAL_FORWARDING")
PROXY_ONLY = ("ACCESS_SERVICES", "WG_ENABLE_PUBLIC_FORWARDING", "WG_PUBLIC_PORTS", "WG_PUBLIC_INTERFACE",
              "WG_PUBLIC_ALLOWED_CIDR", "WG_LOG_PUBLIC_ACCESS")
# Switches written whatever the file says (absent = the original's default), because the role's own
# default would expose more than the original did.
EXPLICIT = {"share": {"WG_ALLOW_ICMP": "share_client_allow_icmp"},
            "proxy": {"WG_ENABLE_PUBLIC_FORWARDING": "proxy_client_enable_public_forwarding",
                      "WG_ALLOW_ICMP": "proxy_client_allow_icmp"}}


def detect_mode(entries, mode=None):
    values = dict((k, v) for k, v, _n in entries)
    if mode:
        chosen = mode
    else:
        chosen = values.get("CLIENT_MODE", "").strip().lower()
    if chosen in ("share", "proxy"):
        return chosen
    if chosen == "disabled":
        raise EnvImportError("CLIENT_MODE=disabled: this host neither shares nor proxies; leave it out of the "
                             "share_clients and proxy_clients groups (pass mode=share or mode=proxy to convert anyway)")
    if chosen:
        raise EnvImportError("CLIENT_MODE must be share, proxy or disabled (got %r)" % chosen)
    if any(k in values for k in SHARE_ONLY):
        return "share"
    if any(k in values for k in PROXY_ONLY):
        return "proxy"
    raise EnvImportError("CLIENT_MODE is not set and the file has neither share nor proxy options; pass mode=share "
                         "or mode=proxy")
