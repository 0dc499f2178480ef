# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters the roles use to turn inventory variables (the original project's compact ``.env``
forms, or structured dicts) into module arguments. Parsing lives here, in Python, so a bad entry
fails on the controller with a message naming the variable and the entry, before any host changes.

Every value is judged by the validators of ``module_utils/_common/``, the same functions the
modules run on the host: a value the filters accept is one the modules accept, and the other way
round. Shell lines (wg-quick ``PostUp``) are built here only from validated values, every value
quoted with ``shlex.quote``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from collections.abc import Mapping
import ipaddress
import os
import re

from ansible.errors import AnsibleError, AnsibleFilterError
from ansible.module_utils.parsing.convert_bool import BOOLEANS, boolean
from ansible.parsing.utils.yaml import from_yaml

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import ValidationError
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.forms import (
    PROTO_WORDS,
    access_form,
    external_form,
    host_service_form,
    publish_form,
    share_form,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.files import check_abs_path, check_script_path
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.net import (
    check_cidr,
    check_dnat_target,
    check_endpoint,
    check_interface_address,
    join_host_port,
    split_host_port,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.checks import (
    check_docker_name,
    check_ifname,
    check_int,
    check_port,
    check_port_range,
    check_to_ports,
    ports_value,
    shell_quote,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._status.metrics import MAX_INTERVAL as METRICS_MAX_INTERVAL
from ansible_collections.wgsp.service_proxy.plugins.module_utils._status.metrics import MIN_INTERVAL as METRICS_MIN_INTERVAL
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard.keys import check_key, check_peer_name
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.params import module_params
from ansible_collections.wgsp.service_proxy.plugins.module_utils._relay.manage import command_lines as relay_command_lines
from ansible_collections.wgsp.service_proxy.plugins.module_utils._carrier import (
    ARGUMENT_SPEC as CARRIER_SPEC,
    Carrier,
    boot_commands as carrier_boot_commands,
)

PROTOS = PROTO_WORDS
_BOOLEAN_WORDS = frozenset([""] + [str(word).lower() for word in BOOLEANS])
ROUTE_PROTO_RANGE = (5, 254)


def _fail(var, entry, problem):
    raise AnsibleFilterError("%s: entry %r %s" % (var, entry, problem))


def _check(var, entry, what, func, value, *args):
    """Run one ``_common`` validator; its ValidationError becomes an AnsibleFilterError naming ``var``."""
    try:
        return func(what, value, *args)
    except ValidationError as exc:
        if entry is None:
            raise AnsibleFilterError(exc.msg)
        problem = exc.msg[len(exc.field) + 2:] if exc.msg.startswith(exc.field + ": ") else exc.msg
        raise AnsibleFilterError("%s: entry %r has an invalid %s: %s" % (var, entry, what, problem))


def _entries(var, entries):
    """A list variable's entries; a scalar or a dict there is an error naming ``var`` (not a TypeError)."""
    if entries in (None, ""):
        return []
    if not isinstance(entries, (list, tuple)):
        raise AnsibleFilterError("%s: must be a list of entries (got %r)" % (var, entries))
    return entries


def _port(var, entry, value):
    """A port or a range ``N-M``: an int, or ``"N-M"`` for a range (as wg_dnat and wg_filter take it)."""
    return ports_value(_check(var, entry, "port", check_port_range, value))


def _to_port(var, entry, port, value):
    """Where ``port`` (a ``_port`` value) goes: ``value``, a port or a range of the same length (a
    range is forwarded port by port); the same ports when ``value`` is None."""
    pair = check_port_range("port", port)
    return ports_value(_check(var, entry, "target port", check_to_ports, pair, value))


def _form(var, entry, parse):
    """One compact entry split by the collection's one compact-form parser (``_common.forms``)."""
    try:
        return parse(var, entry)
    except ValidationError as exc:
        _fail(var, entry, exc.msg[len(var) + 2:] if exc.msg.startswith(var + ": ") else exc.msg)


def _proto(var, entry, value):
    text = str(value or "tcp").strip().lower()
    if text not in PROTOS:
        _fail(var, entry, "has an invalid protocol %r (tcp, udp, both, all)" % (value,))
    return "both" if text == "all" else text


def _address(var, entry, value):
    """A service address (a DNAT target or an access service): unicast, no scope id."""
    text = str(value).strip()
    if text.startswith("[") and text.endswith("]"):
        text = text[1:-1]
    return str(_check(var, entry, "address", check_dnat_target, text))


def tunnel_addresses(var, value):
    """A tunnel address variable (``*_address``): one CIDR, or a list of one IPv4 and/or one IPv6 CIDR
    (a dual-stack tunnel) -> its ip_interface values, the error naming ``var`` (``var[N]`` in a list)."""
    values = value if isinstance(value, (list, tuple)) else [value]
    if not values:
        raise ValidationError(var, "needs a tunnel address (one CIDR, or a list of one IPv4 and one IPv6 CIDR)")
    out = []
    for i, cidr in enumerate(values):
        field = "%s[%d]" % (var, i) if isinstance(value, (list, tuple)) else var
        iface = check_interface_address(field, cidr)
        if any(o.version == iface.version for o in out):
            raise ValidationError(field, "is a second IPv%d address; a tunnel takes one IPv4 and one IPv6 address"
                                  % iface.version)
        out.append(iface)
    return out


def _tunnel(var, value):
    """``tunnel_addresses`` for a filter: a bad value is an AnsibleFilterError naming ``var``."""
    return _check(var, None, var, tunnel_addresses, value)


def host_address(hostvars, host, version=None, needed_by=None):
    """A client's tunnel address (no prefix) from its inventory vars: the first one, or the first of
    IP ``version`` (4 or 6) when given; a host without an address of that family is an error naming
    the variable that asked for it (``needed_by``) and the one to extend."""
    vars_ = hostvars[host]
    for var in ("share_client_address", "proxy_client_address", "wg_server_address"):
        cidr = vars_.get(var)
        if cidr:
            name = "%s.%s" % (host, var)
            for address in [iface.ip for iface in _tunnel(name, cidr)]:
                if version in (None, address.version):
                    return str(address)
            raise AnsibleFilterError("%s: an IPv%d target, but %s has no IPv%d tunnel address to reach it "
                                     "through the hub (add one to %s)" % (needed_by or name, version, name, version, var))
    raise AnsibleFilterError("host %s has no share_client_address/proxy_client_address/wg_server_address" % host)


def share_services(entries, var="share_client_services"):
    """``name[:proto]:port`` strings or dicts -> [{name, container, proto, port, to_port}]."""
    out = []
    for entry in _entries(var, entries):
        if isinstance(entry, dict):
            name = entry.get("name") or entry.get("container")
            if not name:
                _fail(var, entry, "needs a name or a container")
            name = _check(var, entry, "container name", check_docker_name, name)
            container = _check(var, entry, "container name", check_docker_name, entry.get("container") or name)
            proto = _proto(var, entry, entry.get("proto"))
            port = _port(var, entry, entry.get("port"))
            to_port = _to_port(var, entry, port, entry.get("to_port"))
            out.append({"name": name, "container": container,
                        "proto": proto, "port": port, "to_port": to_port})
            continue
        form = _form(var, entry, share_form)
        name = _check(var, entry, "container name", check_docker_name, form["name"])
        port = _port(var, entry, form["port"])
        out.append({"name": name, "container": name, "proto": _proto(var, entry, form["proto"]),
                    "port": port, "to_port": port})
    return out


def host_services(entries, var="share_client_host_services"):
    """``proto:port`` or ``proto:port:target_port`` -> [{proto, port, to_port}]."""
    out = []
    for entry in _entries(var, entries):
        if isinstance(entry, dict):
            proto, port = entry.get("proto"), entry.get("port")
            to_port = entry.get("to_port", port)
        else:
            form = _form(var, entry, host_service_form)
            proto, port, to_port = form["proto"], form["port"], form["to_port"]
        port = _port(var, entry, port)
        out.append({"proto": _proto(var, entry, proto), "port": port, "to_port": _to_port(var, entry, port, to_port)})
    return out


def external_forwards(entries, var="share_client_external_forwards"):
    """``proto:port:ip:port`` -> [{proto, port, to_address, to_port}]."""
    out = []
    for entry in _entries(var, entries):
        if isinstance(entry, dict):
            proto, port, addr, to_port = entry.get("proto"), entry.get("port"), entry.get("to_address"), entry.get("to_port")
        else:
            form = _form(var, entry, external_form)
            proto, port, addr, to_port = form["proto"], form["port"], form["to_address"], form["to_port"]
        port = _port(var, entry, port)
        out.append({"proto": _proto(var, entry, proto), "port": port,
                    "to_address": _address(var, entry, addr), "to_port": _to_port(var, entry, port, to_port or None)})
    return out


def resolve_target(target, hostvars, var="target", proto=None):
    """``address:port`` or ``inventory_host:service`` -> {address, port, proto, host}."""
    text = str(target).strip()
    try:
        host, service = split_host_port(text)
    except ValueError:
        host = service = None
    if not host or not service:
        _fail(var, target, "is not address:port, [ipv6]:port or inventory_host:service")
    if (text.startswith("[") or re.match(r"^[0-9.]+$", host)) and re.match(r"^[0-9]+(-[0-9]+)?$", service):
        return {"address": _address(var, target, host), "port": _port(var, target, service),
                "proto": _proto(var, target, proto), "host": None}
    if host not in hostvars:
        _fail(var, target, "names host %r, which is not in the inventory" % host)
    services = share_services(hostvars[host].get("share_client_services", []), var="%s.share_client_services" % host)
    for svc in services:
        if svc["name"] == service or str(svc["port"]) == service:
            # the share forwards a container service from its IPv4 tunnel address to the container's
            # IPv4 address (Docker's own family): the target is that tunnel address, also on a
            # dual-stack share
            address = host_address(hostvars, host, 4, needed_by="%s (container service %s of %s)" % (var, service, host))
            return {"address": address, "port": svc["port"],
                    "proto": _proto(var, target, proto) if proto else svc["proto"], "host": host}
    _fail(var, target, "names service %r, which %s does not share (share_client_services: %s)"
          % (service, host, ", ".join(s["name"] for s in services) or "none"))


def access_services(entries, hostvars, var="proxy_client_access_services"):
    """ACCESS_SERVICES entries (``address:port``, ``host:service``, or ``proto:address:port``)."""
    out = []
    for entry in _entries(var, entries):
        proto = None
        if isinstance(entry, dict):
            target = "%s:%s" % (entry.get("address") or entry.get("host"), entry.get("port") or entry.get("service"))
            proto = entry.get("proto")
        else:
            form = _form(var, entry, access_form)
            proto, target = form["proto"], form["target"]
        out.append(resolve_target(target, hostvars, var=var, proto=proto))
    return out


def public_ports(entries, hostvars, var="proxy_client_public_ports"):
    """WG_PUBLIC_PORTS entries ``[proto:]public_port:target`` -> [{proto, port, to_address, to_port}]."""
    out = []
    for entry in _entries(var, entries):
        if isinstance(entry, dict):
            public = entry.get("port")
            # an IPv6 to_address in brackets, as the target form has it
            target = entry.get("target") or join_host_port(str(entry.get("to_address")).strip("[]"),
                                                           entry.get("to_port") or public)
            proto = entry.get("proto")
        else:
            form = _form(var, entry, publish_form)
            proto, public, target = form["proto"], form["port"], form["target"]
        resolved = resolve_target(target, hostvars, var=var, proto=proto)
        public = _port(var, entry, public)
        out.append({"proto": resolved["proto"], "port": public,
                    "to_address": resolved["address"], "to_port": _to_port(var, entry, public, resolved["port"])})
    return out


def hub_flows(proxies, hostvars):
    """The flows the hub lets through between clients: what each proxy declares it reaches.

    Proxies are taken in sorted order, so the rule set is the same whatever order they come in
    (Ansible's ``intersect`` returns a set; a reordered list would re-apply the set every run)."""
    allow = []
    seen = set()
    for proxy in sorted(proxies or []):
        vars_ = hostvars[proxy]
        targets = []
        for name, parse, address, port in (("proxy_client_access_services", access_services, "address", "port"),
                                           ("proxy_client_public_ports", public_ports, "to_address", "to_port")):
            var = "%s.%s" % (proxy, name)
            targets += [(t[address], t[port], t["proto"], var) for t in parse(vars_.get(name, []), hostvars, var=var)]
        for address, port, proto, var in targets:
            # the proxy's own address of the target's family: a flow never mixes IPv4 and IPv6
            source = host_address(hostvars, proxy, ipaddress.ip_address(address).version, needed_by=var)
            key = (source, address, port, proto)
            if key in seen:
                continue
            seen.add(key)
            allow.append({"proto": proto, "port": port, "sources": [source], "destinations": [address]})
        # the carriers of its ports that keep the client's address: their UDP, both ways (each end
        # sends to the other's carrier port)
        var = "%s.proxy_client_public_ports" % proxy
        for share in sorted(set(p["host"] for p in preserved_ports(vars_.get("proxy_client_public_ports", []),
                                                                   hostvars, var=var))):
            pair = (host_address(hostvars, proxy, 4, needed_by=var), host_address(hostvars, share, 4, needed_by=var))
            for source, address in (pair, pair[::-1]):
                key = (source, address, CARRIER_PORT, "udp")
                if key not in seen:
                    seen.add(key)
                    allow.append({"proto": "udp", "port": CARRIER_PORT, "sources": [source], "destinations": [address]})
    return allow


# -- the carrier: published ports that keep the public client's address (wg_carrier) -------------

CARRIER_PORT = CARRIER_SPEC["port"]["default"]


def _preserves(entry):
    return isinstance(entry, dict) and boolean(entry.get("preserve_source", False), strict=False)


def _share_at(address, hostvars):
    """The inventory share whose IPv4 tunnel address is ``address`` (``None`` when none is)."""
    for host in sorted(hostvars):
        vars_ = hostvars[host]
        if vars_.get("share_client_address"):
            try:
                ips = [str(i.ip) for i in _tunnel("%s.share_client_address" % host, vars_["share_client_address"])]
            except AnsibleFilterError:
                continue
            if address in ips:
                return host
    return None


def _preserved(entries, parse, var):
    """``(entry, service)`` of each entry of a service variable that asks to keep the client's address
    (a dict with ``preserve_source: true``), ``service`` as ``parse`` reads it."""
    entries = _entries(var, entries)
    return [(entry, svc) for entry, svc in zip(entries, parse(entries, var=var)) if _preserves(entry)]


def _preserving_services(host, hostvars):
    """``{(proto, tunnel port)}`` of the services share ``host`` lets keep the client's address
    (``preserve_source: true`` in its share_client_services or share_client_host_services dicts)."""
    vars_ = hostvars[host]
    out = set()
    for var, parse in (("share_client_services", share_services), ("share_client_host_services", host_services)):
        for _entry, svc in _preserved(vars_.get(var, []), parse, "%s.%s" % (host, var)):
            out.add((svc["proto"], str(svc["port"])))
    return out


def preserved_ports(entries, hostvars, var="proxy_client_public_ports"):
    """The published ports with ``preserve_source: true`` (dict entries of ``proxy_client_public_ports``):
    ``[{proto, port, to_address, to_port, host}]``, ``host`` the share they go to.

    Refused, naming the entry: a target that is not a share of the inventory (the share must carry its
    side of the path), an IPv6 target (the carrier runs between IPv4 tunnel addresses), and a service
    the share does not let keep the client's address (``preserve_source`` on its service entry)."""
    out = []
    entries = _entries(var, entries)
    for entry, port in zip(entries, public_ports(entries, hostvars, var=var)):
        if not _preserves(entry):
            continue
        if ":" in port["to_address"]:
            _fail(var, entry, "keeps the client's address (preserve_source), which needs an IPv4 target; "
                              "%s is IPv6" % port["to_address"])
        share = _share_at(port["to_address"], hostvars)
        if share is None:
            _fail(var, entry, "keeps the client's address (preserve_source), which needs a share of the inventory "
                              "as its target (host:service, or a share's IPv4 tunnel address); %s is none"
                              % port["to_address"])
        wanted = ("tcp", "udp") if port["proto"] == "both" else (port["proto"],)
        offered = _preserving_services(share, hostvars)
        missing = [p for p in wanted if (p, str(port["to_port"])) not in offered
                   and ("both", str(port["to_port"])) not in offered]
        if missing:
            _fail(var, entry, "keeps the client's address (preserve_source), but %s does not let %s port %s keep it: "
                              "set preserve_source: true on that service in its share_client_services or "
                              "share_client_host_services" % (share, "/".join(missing), port["to_port"]))
        out.append(dict(port, host=share))
    return out


def carrier_peers(host, hostvars, proxies):
    """The IPv4 tunnel addresses of the ``proxies`` that publish a port of share ``host`` keeping the
    client's address (sorted): the other ends of the share's carrier."""
    peers = set()
    for proxy in sorted(proxies or []):
        var = "%s.proxy_client_public_ports" % proxy
        for port in preserved_ports(hostvars[proxy].get("proxy_client_public_ports", []), hostvars, var=var):
            if port["host"] == host:
                peers.add(host_address(hostvars, proxy, 4, needed_by=var))
    return sorted(peers, key=ipaddress.ip_address)


def preserve_rules(rules, preserved, carrier):
    """The proxy's wg_dnat ``rules`` with each preserved port (``preserved_ports``) sent into the carrier
    without masquerade (the service sees the client's address)."""
    keys = set((p["proto"], str(p["port"])) for p in preserved or [])
    return [dict(rule, out_interface=carrier, masquerade=False) if (rule["proto"], str(rule["port"])) in keys
            else rule for rule in rules or []]


def share_carrier(containers, host, peers, carrier, own_address=None, rules=None):
    """A share's side of the carrier, from ``share_client_services`` and ``share_client_host_services``
    as given (their dict entries with ``preserve_source: true``):

    - ``rules``: ``rules`` (the share's wg_dnat rules, ``wgsp_share_dnat_rules``) with the preserved
      container services not masqueraded - a preserved service keeps its clients' addresses on every
      path (its container routes its replies through this host) - and, with ``peers``, the rules that
      take the carried connections to the containers and remapped host services (``in_interface`` the
      carrier, no masquerade);
    - ``local_ports``: with ``peers``, the ports of the host services reached as they are."""
    keep = set()
    carried, local = [], []
    for _entry, svc in _preserved(containers, share_services, "share_client_services"):
        keep.add((svc["container"], svc["proto"], str(svc["port"])))
        carried.append({"proto": svc["proto"], "port": svc["port"], "to_port": svc["to_port"],
                        "to_container": svc["container"], "in_interface": carrier, "masquerade": False})
    own = None
    for entry, svc in _preserved(host, host_services, "share_client_host_services"):
        if svc["port"] == svc["to_port"]:
            local.append({"proto": svc["proto"], "port": svc["port"]})
            continue
        if own is None:
            own = [str(i.ip) for i in _tunnel("share_client_address", own_address) if i.version == 4]
            if not own:
                _fail("share_client_host_services", entry,
                      "keeps the client's address (preserve_source), which needs an IPv4 share_client_address")
        carried.append({"proto": svc["proto"], "port": svc["port"], "to_address": own[0], "to_port": svc["to_port"],
                        "in_interface": carrier, "masquerade": False})
    base = [dict(rule, masquerade=False) if (rule.get("to_container"), rule["proto"], str(rule["port"])) in keep
            else rule for rule in rules or []]
    if not peers:
        return {"rules": base, "dnat": [], "local_ports": []}
    return {"rules": base + carried, "dnat": carried, "local_ports": local}


def carrier_commands(params, var="carrier"):
    """The wg-quick ``PostUp`` and ``PreDown`` lines of a carrier (``wg_carrier``'s own boot_commands),
    from its parameters: ``{post_up: [...], pre_down: [...]}``; a bad value names ``var``."""
    try:
        # read as the module reads it (its argument spec, through the one params reader of the set kinds)
        params = module_params("wg_carrier", params)
        post_up, pre_down = carrier_boot_commands(Carrier(params))
    except ValidationError as exc:
        problem = exc.msg[len(exc.field) + 2:] if exc.field == "wg_carrier" else exc.msg
        raise AnsibleFilterError("%s: %s" % (var, problem))
    return {"post_up": post_up, "pre_down": pre_down, "port": params["port"]}


def client_peers(clients, hostvars, keys, preshared=None):
    """The hub's peers: one per client that has a public key, allowed IPs = its tunnel address(es);
    ``preshared``: ``{client: key}`` of the clients with a preshared key (``wgsp_preshared_keys``)."""
    peers = []
    for client in clients or []:
        public = (keys or {}).get(client)
        if not public:
            continue
        # the key read from the client host: validated like wg_interface does, before it reaches the hub
        public = _check("%s public key" % client, None, "%s public key" % client,
                        lambda field, value: check_key(field, value, secret=False), public)
        vars_ = hostvars[client]
        var = "share_client_address" if vars_.get("share_client_address") else "proxy_client_address"
        # Each client owns exactly its own tunnel address(es) at the hub, as host routes.
        allowed = [str(ipaddress.ip_network((iface.ip, iface.max_prefixlen)))
                   for iface in _tunnel("%s.%s" % (client, var), vars_.get(var))]
        peer = {"public_key": public, "allowed_ips": allowed}
        if (preshared or {}).get(client):
            peer["preshared_key"] = preshared[client]
        peers.append(peer)
    return peers


def _psk_of(client, hostvars, hub):
    """``(uses, given)`` of a client's preshared key with its hub. It uses one when the hub gives every
    client one (``wg_server_preshared_keys``) or the client asks for one (``<role>_preshared_key``:
    true, or the key itself, from a vaulted variable). ``given``: that key itself, checked as a
    WireGuard key (the error names the variable, never the value), else None."""
    vars_ = hostvars[client]
    var = "%s_preshared_key" % host_tunnel(vars_, vars_.get("group_names")).get("role")
    value = vars_.get(var)
    given = None
    if value is not None and not isinstance(value, bool) and str(value).strip().lower() not in _BOOLEAN_WORDS:
        name = "%s.%s" % (client, var)
        given = _check(name, None, name, lambda field, v: check_key(field, v, secret=True), str(value).strip())
    hub_wide = hostvars[hub].get("wg_server_preshared_keys") if hub in hostvars else False
    uses = given is not None or boolean(hub_wide, strict=False) or boolean(value, strict=False)
    return uses, given


def preshared_key_peers(clients, hostvars, hub, rotated=None):
    """The hub's ``wg_preshared_keys`` peers: ``{name}`` of each client that uses a preshared key
    (its inventory name, which names the key file: validated here, the error naming the client),
    with ``regenerate`` when the client or the hub is among ``rotated`` (rotate_keys), or with
    ``key`` when the client's variable holds the key itself (a vaulted value: written on the hub
    as given, never regenerated - a new vaulted value rotates it). A secret then: only for a
    ``no_log`` task's arguments."""
    rotated = list(rotated or [])
    peers = []
    for client in clients or []:
        uses, given = _psk_of(client, hostvars, hub)
        if not uses:
            continue
        peer = {"name": _check("%s (inventory name)" % client, None, "preshared key of %s" % client, check_peer_name, client),
                "regenerate": hub in rotated or client in rotated}
        if given is not None:
            peer.update(key=given, regenerate=False)
        peers.append(peer)
    return peers


def preshared_keys(clients, hostvars, hub, read=None):
    """``{client: key}`` for the clients that use a preshared key and whose key is known: what the
    hub's ``wg_preshared_keys`` returned in this run (``__wgsp_psk`` of the hub: the wg_server role's
    host entry point, in site.yml's first play or run alone) or ``read`` (a result read on the hub). A client that uses one but
    whose key is not known yet (check mode before the hub made it) is left out."""
    known = {}
    results = [r for r in (hostvars[hub].get("__wgsp_psk") if hub in hostvars else None, read)
               if isinstance(r, Mapping) and isinstance(r.get("preshared_keys"), Mapping)]
    for client in clients or []:
        uses, given = _psk_of(client, hostvars, hub)
        if not uses:
            continue
        # a vaulted key is taken as given (the module returns a given key masked, as for any no_log option)
        key = given or next(
            (r["preshared_keys"][client] for r in results if r["preshared_keys"].get(client)), None)
        if key:
            known[client] = key
    return known


# The roles' default values have one home, each role's defaults/main.yml. The filters that stand in
# for a role where it does not run (a hub's settings seen from its clients, a host's interface in the
# operations playbooks) read the plain (untemplated) values there, so they cannot drift apart.
_ROLE_DEFAULTS = {}

# The inventory group of each role, in the order a host in several groups is judged by (as the
# operations playbooks did); a host in none is taken as a proxy client.
ROLE_GROUPS = (("wg_server", "wg_server"), ("share_clients", "share_client"), ("proxy_clients", "proxy_client"))


def fleet_summary(groups):
    """The hosts site.yml configures, counted by role: ``"1 hub, 2 share clients, 1 proxy client"``
    (``groups``: the inventory's ``groups``)."""
    groups = groups or {}
    words = (("wg_server", "hub", "hubs"), ("share_clients", "share client", "share clients"),
             ("proxy_clients", "proxy client", "proxy clients"))
    parts = []
    for group, one, many in words:
        count = len(groups.get(group) or [])
        parts.append("%d %s" % (count, one if count == 1 else many))
    return ", ".join(parts)


def role_defaults(role):
    """The plain defaults of one of the collection's roles (``roles/<role>/defaults/main.yml``);
    templated values (``{{ }}``) are left out - the caller derives those itself."""
    if role not in _ROLE_DEFAULTS:
        path = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir, os.pardir,
                            "roles", role, "defaults", "main.yml")
        try:
            with open(path) as handle:
                values = from_yaml(handle.read(), file_name=path) or {}
        except (IOError, OSError, AnsibleError) as exc:
            raise AnsibleFilterError("cannot read the defaults of the role %s (%s): %s" % (role, path, exc))
        _ROLE_DEFAULTS[role] = dict((k, v) for k, v in values.items() if not (isinstance(v, str) and "{{" in v))
    return _ROLE_DEFAULTS[role]


def host_tunnel(host_vars, groups):
    """The role, interface and state directory of one inventory host, from its groups (``group_names``)
    and its variables (``hostvars[inventory_hostname]``), with the role's defaults: the one mapping the
    operations playbooks (status, test_connection, debug, restart) use."""
    groups = groups or []
    role = next((name for group, name in ROLE_GROUPS if group in groups), "proxy_client")
    defaults = role_defaults(role)

    def get(suffix):
        key = "%s_%s" % (role, suffix)
        value = host_vars.get(key) if host_vars else None
        return value if value not in (None, "") else defaults.get(key)

    interface = get("interface")
    key_var = "%s_private_key_path" % role
    return {"role": role, "interface": interface, "state_dir": get("state_dir"),
            "key_path": _key_path(key_var, key_var, get("private_key_path"), interface)}


def _key_path(var, what, value, interface):
    """A role's private key file: ``value`` (validated, the error naming ``what``) or, unset, the roles'
    default ``/etc/wireguard/<interface>.key`` (templated in their defaults, so role_defaults omits it)."""
    return _check(var, None, what, check_abs_path, value or "/etc/wireguard/%s.key" % interface)


def prepared_keys(hosts, hostvars):
    """The public keys site.yml's first play learned on each host (``__wgsp_host``, the result of the
    roles' ``wg_host`` call with the key), by inventory name; hosts it did not reach (outside ``--limit``, or
    a role run alone) are left out, for the caller to read on the host. A key that does not exist yet
    in check mode is ``None``, as a read there returns it."""
    known = {}
    for host in hosts or []:
        if host not in hostvars:
            continue
        result = hostvars[host].get("__wgsp_host")
        if isinstance(result, Mapping) and "public_key" in result and not result.get("skipped"):
            known[host] = result.get("public_key")
    return known


def controller_path(path):
    """``path`` as an absolute path on the controller: a relative one is taken from the directory
    ansible-playbook was started in (Ansible runs local tasks, and the ``pipe`` lookup, in the
    playbook's own directory, and the ``PWD`` variable is not set when no shell started it)."""
    text = str(path or "")
    if not text or "\0" in text:
        raise AnsibleFilterError("wgsp_controller_path: a path is required (got %r)" % (path,))
    return os.path.abspath(os.path.expanduser(text))


def hub_info(hub, hostvars):
    """What a client needs to know of its hub, from the hub's inventory vars (the wg_server role's
    defaults for the ones unset): endpoint, tunnel network, tunnel address, key path, interface."""
    if hub not in hostvars:
        raise AnsibleFilterError("hub %r is not in the inventory (set share_client_hub / proxy_client_hub)" % (hub,))
    vars_ = hostvars[hub]

    def get(key):
        value = vars_.get(key)
        return value if value not in (None, "") else role_defaults("wg_server").get(key)

    def check(var, func, value):
        return _check(var, None, "%s.%s" % (hub, var), func, value)

    interface = check("wg_server_interface", check_ifname, get("wg_server_interface"))
    addresses = _tunnel("%s.wg_server_address" % hub, get("wg_server_address"))
    port = check("wg_server_listen_port", check_port, get("wg_server_listen_port"))
    host = str(vars_.get("ansible_host") or hub)
    endpoint = vars_.get("wg_server_endpoint") or join_host_port(host, port)
    host, endpoint_port = check("wg_server_endpoint", check_endpoint, endpoint)
    key_path = _key_path("wg_server_private_key_path", "%s.wg_server_private_key_path" % hub,
                         vars_.get("wg_server_private_key_path"), interface)
    return {
        "interface": interface,
        # the first address and its network, and all of them (a dual-stack hub has one of each family)
        "address": str(addresses[0].ip),
        "network": str(addresses[0].network),
        "addresses": [str(a.ip) for a in addresses],
        "networks": [str(a.network) for a in addresses],
        "endpoint": join_host_port(host, endpoint_port),
        "key_path": key_path,
        # the hub's preshared keys (wg_preshared_keys): beside its private key
        "psk_dir": os.path.join(os.path.dirname(key_path), "%s-psk" % interface),
    }


def client_routes(addresses, destinations, var="extra_routes", address_var="address"):
    """wg_route entries for ``destinations`` not already covered by the connected network of one of
    the interface's own ``addresses`` (the kernel routes those itself)."""
    connected = [a.network for a in _tunnel(address_var, addresses)]
    routes = []
    for dest in _entries(var, destinations):
        net = _check(var, dest, "route", check_cidr, dest).network
        if any(net.version == c.version and net.subnet_of(c) for c in connected):
            continue
        if str(net) not in [r["dest"] for r in routes]:
            routes.append({"dest": str(net)})
    return routes


def share_dnat_rules(containers, host=None, external=None, own_address=None, masquerade=False):
    """The share client's wg_dnat rules: containers (to_container), LAN forwards (masqueraded so the
    LAN host's replies come back), and host services whose tunnel port differs from their real one."""
    rules = []
    for svc in containers or []:
        rules.append({"proto": svc["proto"], "port": svc["port"], "to_port": svc["to_port"],
                      "to_container": svc["container"], "masquerade": bool(masquerade)})
    for fwd in external or []:
        rules.append({"proto": fwd["proto"], "port": fwd["port"], "to_address": fwd["to_address"],
                      "to_port": fwd["to_port"], "masquerade": True})
    # a remapped host service: to its real port on this host's own tunnel address, in each family
    # it has (an address or a CIDR, or a list of them on a dual-stack tunnel)
    own = [] if not own_address else _tunnel("share_client_address", own_address)
    for svc in host or []:
        if svc["port"] != svc["to_port"]:
            if not own:
                raise AnsibleFilterError("share_client_host_services: remapping %s needs the tunnel address" % svc)
            for iface in own:
                rules.append({"proto": svc["proto"], "port": svc["port"], "to_address": str(iface.ip),
                              "to_port": svc["to_port"], "masquerade": False})
    return rules


def _allowed_networks(var, cidrs):
    """The networks of an allowed-sources variable (``[]``: every source may come)."""
    return [_check(var, None, "%s[%d]" % (var, i), check_cidr, c).network for i, c in enumerate(_entries(var, cidrs))]


def _networks_of_family(var, nets, version, what):
    """The IPv``version`` networks of ``nets`` (``_allowed_networks``), as CIDRs. ``nets`` that has
    networks but none of that family is refused, naming ``var`` and ``what`` (the publish that would
    otherwise be open to every source of that family)."""
    mine = [str(n) for n in nets if n.version == version]
    if nets and not mine:
        raise AnsibleFilterError("%s: has no IPv%d network, so the IPv%d publish of %s would be open to every "
                                 "source; add the IPv%d networks allowed (%s for all)"
                                 % (var, version, version, what, version, "0.0.0.0/0" if version == 4 else "::/0"))
    return mine


def rule_sources(rules, cidrs, var="sources"):
    """``rules`` (wg_dnat rules with ``to_address``) each limited to the networks of ``cidrs`` of its
    own family (a rule matches one family). No ``cidrs``: the rules as they are (every source). A
    rule whose family none of ``cidrs`` has is refused: left unlimited it would be open to all."""
    nets = _allowed_networks(var, cidrs)
    if not nets:
        return list(rules or [])
    return [dict(rule, sources=_networks_of_family(
        var, nets, ipaddress.ip_address(rule["to_address"]).version,
        "port %s (to %s)" % (rule["port"], join_host_port(rule["to_address"], rule["to_port"]))))
        for rule in rules or []]


def relay_sources(cidrs, var="sources"):
    """The IPv6 networks of ``cidrs`` (the allowed sources of the IPv6 relay of IPv4 targets); none
    when ``cidrs`` is empty (every source). A list with no IPv6 network is refused: the relay would
    otherwise be open to every IPv6 source."""
    return _networks_of_family(var, _allowed_networks(var, cidrs), 6, "the ports with an IPv4 target (the relay)")


def relay_commands(path, pidfile, var="state_dir"):
    """The wg-quick ``PostUp`` and ``PreDown`` lines of a relay set (``wg_relay``'s own), validated
    and quoted: ``{post_up, pre_down}``."""
    try:
        post_up, pre_down = relay_command_lines(path, pidfile)
    except ValidationError as exc:
        raise AnsibleFilterError("%s: %s" % (var, exc.msg))
    return {"post_up": post_up, "pre_down": pre_down}


def tunnel_families(addresses, hub, var="address"):
    """``addresses`` (a client's tunnel address variable) as a list of CIDRs, when the hub's tunnel
    (``hub``: ``wgsp_hub_info``) has a network of each of their families; an IPv6 client address on an
    IPv4-only hub (or the other way round) is refused, naming ``var``: nothing would route it."""
    out = []
    networks = [_check("network", None, "network", check_cidr, n).network for n in hub.get("networks") or [hub["network"]]]
    for iface in _tunnel(var, addresses):
        if not any(n.version == iface.version for n in networks):
            have = ", ".join(str(n) for n in networks)
            raise AnsibleFilterError(
                "%s: %s is IPv%d, but the hub's tunnel has no IPv%d network (%s); give the hub's "
                "wg_server_address an IPv%d address too" % (var, iface, iface.version, iface.version, have, iface.version))
        out.append(str(iface))
    return out


def share_input_allow(tcp_ports=None, udp_ports=None, host=None, icmp=True):
    """What may arrive on the tunnel for the share host itself (after DNAT, so real ports)."""
    allow = [{"proto": "tcp", "port": int(p)} for p in tcp_ports or []]
    allow += [{"proto": "udp", "port": int(p)} for p in udp_ports or []]
    allow += [{"proto": svc["proto"], "port": svc["to_port"]} for svc in host or []]
    if icmp:
        allow.append({"proto": "icmp"})
    return allow


def public_interface(value, facts):
    """Pick the proxy's public interface from gathered facts.

    ``auto``: the interface of the default IPv4 route; a CIDR: the interface holding an address in
    it; an existing interface name: itself. Anything else is returned as ``None`` (the role then
    looks it up as a Docker network name, whose bridge is ``br-<id>``).
    """
    facts = facts or {}
    names = facts.get("interfaces", [])
    text = str(value or "auto").strip()
    if text == "auto":
        iface = (facts.get("default_ipv4") or {}).get("interface")
        if not iface:
            raise AnsibleFilterError("proxy_client_public_interface: auto found no default IPv4 route; name the interface")
        return iface
    if "/" in text:
        net = _check("proxy_client_public_interface", None, "proxy_client_public_interface", check_cidr, text).network
        for name in names:
            data = facts.get(name.replace("-", "_")) or {}
            addrs = [data.get("ipv4") or {}] + (data.get("ipv4_secondaries") or []) + (data.get("ipv6") or [])
            for addr in addrs:
                ip = addr.get("address")
                if ip and ipaddress.ip_address(ip) in net:
                    return name
        raise AnsibleFilterError("proxy_client_public_interface: no interface has an address in %s" % text)
    if text in names:
        return text
    return None


def hosts_outside(addresses, network, var="addresses"):
    """Host CIDRs (/32, /128) of the ``addresses`` that are not inside ``network`` (a CIDR, or a
    list of them: a dual-stack tunnel's networks)."""
    nets = [_check("network", None, "network", check_cidr, n).network
            for n in (network if isinstance(network, (list, tuple)) else [network])]
    out = []
    for i, addr in enumerate(_entries(var, addresses)):
        ip = _check(var, None, "%s[%d]" % (var, i), check_cidr, addr).ip
        if any(ip.version == net.version and ip in net for net in nets):
            continue
        cidr = str(ipaddress.ip_network((ip, ip.max_prefixlen)))
        if cidr not in out:
            out.append(cidr)
    return out


def route_commands(routes, proto=87, var="routes"):
    """wg-quick PostUp lines that restore ``routes`` (wg_route entries) at boot, marked like wg_route's.

    Each destination is validated (no scope id: ``fd00::9%x||cmd`` is refused) and quoted; ``%i`` is
    wg-quick's own expansion to the (validated) interface name."""
    proto = _check(var, None, "proto", check_int, proto, *ROUTE_PROTO_RANGE)
    lines = []
    for i, route in enumerate(_entries(var, routes)):
        dest = route.get("dest") if isinstance(route, dict) else route
        net = _check(var, None, "%s[%d].dest" % (var, i), check_cidr, dest).network
        family = "-6 " if net.version == 6 else ""
        lines.append("ip %sroute replace %s dev %%i proto %d" % (family, shell_quote(net), proto))
    return lines


def boot_commands(paths, var="state_dir"):
    """wg-quick PostUp lines running the rule sets' boot scripts: ``sh <path>``, the path validated
    (the same rule as the modules' ``persist_path``) and quoted."""
    return ["sh %s" % shell_quote(_check(var, None, var, check_script_path, path)) for path in _entries(var, paths)]


# The kinds of the roles' variables, by the end of their name (wg_server_*, share_client_*, proxy_client_*).
def _kind(name):
    if name == "proxy_client_public_interface":
        return "public_interface"
    for suffix, kind in (("_interface", "ifname"), ("_address", "interface_address"),
                         ("_extra_routes", "cidrs"), ("_public_allowed_cidrs", "cidrs"),
                         ("_state_dir", "dir"), ("_metrics_textfile_dir", "dir"),
                         ("_metrics_interval", "interval"), ("_private_key_path", "path"), ("_mtu", "mtu"),
                         ("_persistent_keepalive", "keepalive"), ("_listen_port", "port"),
                         ("_allowed_tcp_ports", "ports"), ("_allowed_udp_ports", "ports"),
                         ("_docker_network", "docker_network"), ("_endpoint", "endpoint"),
                         ("_extra_peers", "peers")):
        if name.endswith(suffix):
            return kind
    return None


def _check_var(name, value):
    kind = _kind(name)
    if kind is None:
        raise AnsibleFilterError("wgsp_check_vars: no rule for variable %s" % name)
    if kind == "ifname":
        return check_ifname(name, value)
    if kind == "interface_address":
        return [str(iface) for iface in tunnel_addresses(name, value)]
    if kind == "cidrs":
        if not isinstance(value, list):
            raise ValidationError(name, "must be a list of CIDRs (got %r)" % (value,))
        return [str(check_cidr("%s[%d]" % (name, i), v)) for i, v in enumerate(value)]
    if kind == "ports":
        if not isinstance(value, list):
            raise ValidationError(name, "must be a list of ports (got %r)" % (value,))
        return [check_port("%s[%d]" % (name, i), v) for i, v in enumerate(value)]
    if kind == "dir":
        text = str(value or "")
        return check_script_path(name, text.rstrip("/") if len(text) > 1 else text)
    if kind == "path":
        return check_abs_path(name, value)
    if kind == "mtu":
        return None if value in (None, "") else check_int(name, value, 68, 65535)
    if kind == "keepalive":
        return check_int(name, value, 0, 65535)
    if kind == "interval":
        return check_int(name, value, METRICS_MIN_INTERVAL, METRICS_MAX_INTERVAL)
    if kind == "port":
        return check_port(name, value)
    if kind == "docker_network":
        return None if value in (None, "") else check_docker_name(name, value, what="Docker network")
    if kind == "endpoint":
        return check_endpoint(name, value)
    if kind == "peers":
        return _check_peers(name, value)
    # proxy_client_public_interface: auto, a CIDR, an interface name or a Docker network name
    text = str(value or "auto").strip()
    if text == "auto":
        return text
    if "/" in text:
        return str(check_cidr(name, text).network)
    try:
        return check_ifname(name, text)
    except ValidationError:
        return check_docker_name(name, text, what="interface or Docker network")


def _check_peers(name, peers):
    """wg_interface peer entries: the values that reach the device or the wg-quick file."""
    if not isinstance(peers, list):
        raise ValidationError(name, "must be a list of peers (got %r)" % (peers,))
    for i, peer in enumerate(peers):
        field = "%s[%d]" % (name, i)
        if not isinstance(peer, dict):
            raise ValidationError(field, "must be a dict with public_key, allowed_ips, endpoint, ...")
        check_key(field + ".public_key", peer.get("public_key"), secret=False)
        allowed = peer.get("allowed_ips") or []
        if not isinstance(allowed, list):
            raise ValidationError(field + ".allowed_ips", "must be a list of CIDRs")
        for j, cidr in enumerate(allowed):
            check_cidr("%s.allowed_ips[%d]" % (field, j), cidr)
        if peer.get("endpoint") is not None:
            check_endpoint(field + ".endpoint", peer["endpoint"])
        if peer.get("persistent_keepalive") is not None:
            check_int(field + ".persistent_keepalive", peer["persistent_keepalive"], 0, 65535)
    return peers


def check_vars(values):
    """Validate a role's variables (``{name: value}``) with the modules' own validators, before the
    role changes anything. Returns ``True``; a bad value raises an error naming the variable."""
    if not isinstance(values, dict):
        raise AnsibleFilterError("wgsp_check_vars: expects a dict of role variables")
    for name in sorted(values):
        try:
            _check_var(name, values[name])
        except ValidationError as exc:
            raise AnsibleFilterError(exc.msg)
    return True


def check_ifname_filter(value, var="interface"):
    """``value`` when it is a valid interface name (the modules' rule), else an error naming ``var``."""
    return _check(var, None, var, check_ifname, value)


class FilterModule(object):
    def filters(self):
        return {
            "wgsp_share_services": share_services,
            "wgsp_host_services": host_services,
            "wgsp_external_forwards": external_forwards,
            "wgsp_resolve_target": resolve_target,
            "wgsp_access_services": access_services,
            "wgsp_public_ports": public_ports,
            "wgsp_hub_flows": hub_flows,
            "wgsp_client_peers": client_peers,
            "wgsp_preshared_key_peers": preshared_key_peers,
            "wgsp_preshared_keys": preshared_keys,
            "wgsp_host_address": host_address,
            "wgsp_hub_info": hub_info,
            "wgsp_host_tunnel": host_tunnel,
            "wgsp_prepared_keys": prepared_keys,
            "wgsp_controller_path": controller_path,
            "wgsp_client_routes": client_routes,
            "wgsp_route_commands": route_commands,
            "wgsp_boot_commands": boot_commands,
            "wgsp_check_vars": check_vars,
            "wgsp_check_ifname": check_ifname_filter,
            "wgsp_share_dnat_rules": share_dnat_rules,
            "wgsp_share_input_allow": share_input_allow,
            "wgsp_public_interface": public_interface,
            "wgsp_hosts_outside": hosts_outside,
            "wgsp_rule_sources": rule_sources,
            "wgsp_relay_sources": relay_sources,
            "wgsp_relay_commands": relay_commands,
            "wgsp_tunnel_families": tunnel_families,
            "wgsp_preserved_ports": preserved_ports,
            "wgsp_carrier_peers": carrier_peers,
            "wgsp_preserve_rules": preserve_rules,
            "wgsp_carrier_commands": carrier_commands,
            "wgsp_share_carrier": share_carrier,
            "wgsp_fleet_summary": fleet_summary,
        }
