# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The read-only views ``wg_status`` reports: handshake ages and connection state of the peers,
the routes through the interface, the recorded rule sets' drift, the declared services.

Internal to the collection. Pure functions of what was read; nothing here touches the host.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import WgspError
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.net import join_host_port, split_host_port
from ansible_collections.wgsp.service_proxy.plugins.module_utils._routes import ROUTE_PROTO


FRESH_SECONDS = 180


def handshake_age(latest, now):
    """Seconds since the handshake (never negative), or ``None`` when there was none."""
    if not latest:
        return None
    return max(0, int(now - latest))


def _host_of(endpoint):
    try:
        return split_host_port(endpoint)
    except ValueError:  # a device never reports one; a hand-edited state file might
        return str(endpoint).strip(), None


def _contains(allowed_ips, address):
    try:
        addr = ipaddress.ip_address(str(address))
    except ValueError:
        return False
    for cidr in allowed_ips or []:
        try:
            if addr in ipaddress.ip_network(str(cidr), strict=False):
                return True
        except ValueError:
            continue
    return False


def find_hub_peer(peers, state):
    """The client's hub among its peers: by endpoint, then by the hub's tunnel address, then the only peer."""
    if not peers:
        return None
    state = state or {}
    want = _host_of(state.get("hub_endpoint"))
    if want[0]:
        for peer in peers:
            got = _host_of(peer.get("endpoint"))
            if got[0] == want[0] and (want[1] is None or got[1] == want[1]):
                return peer
    if state.get("hub_address"):
        for peer in peers:
            if _contains(peer.get("allowed_ips"), state["hub_address"]):
                return peer
    if len(peers) == 1:
        return peers[0]
    return None


def classify(iface, mode, state, now, fresh=FRESH_SECONDS):
    """``(status, handshake_age, hub_peer_key, peer_roles)`` for one interface.

    Clients: ``connected`` when the interface is up and the hub peer's handshake is younger than
    ``fresh`` seconds. The hub (``server``): when at least one client is fresh. Unmanaged
    interfaces (no state file): when any peer is fresh (the hub cannot be told apart from others).
    """
    peers = iface.get("peers") or []
    roles = {}
    hub = None
    if mode in ("share", "proxy"):
        hub = find_hub_peer(peers, state)
        for peer in peers:
            roles[peer["public_key"]] = "hub" if hub is not None and peer is hub else "peer"
        watched = [hub] if hub is not None else peers
    elif mode == "server":
        for peer in peers:
            roles[peer["public_key"]] = "client"
        watched = peers
    else:
        watched = peers
    if not iface.get("exists"):
        return "absent", None, None, roles
    ages = [handshake_age(p.get("latest_handshake"), now) for p in watched]
    known = [a for a in ages if a is not None]
    best = min(known) if known else None
    hub_key = hub["public_key"] if hub is not None else None
    if not iface.get("up"):
        return "down", best, hub_key, roles
    if best is None:
        return "no-handshake", None, hub_key, roles
    if best >= fresh:
        return "handshake-stale", best, hub_key, roles
    return "connected", best, hub_key, roles


def peers_view(iface, roles, now, fresh=FRESH_SECONDS):
    out = []
    for peer in iface.get("peers") or []:
        age = handshake_age(peer.get("latest_handshake"), now)
        out.append({
            "public_key": peer.get("public_key"),
            "role": roles.get(peer.get("public_key"), "peer"),
            "endpoint": peer.get("endpoint"),
            "allowed_ips": list(peer.get("allowed_ips") or []),
            "persistent_keepalive": peer.get("persistent_keepalive") or 0,
            "latest_handshake": peer.get("latest_handshake") or 0,
            "handshake_age": age,
            "fresh": age is not None and age < fresh,
            "rx_bytes": peer.get("rx_bytes") or 0,
            "tx_bytes": peer.get("tx_bytes") or 0,
        })
    return out


def routes_view(routes, oif, managed_proto=ROUTE_PROTO):
    """Routes through the interface (``Route`` objects from ``RouteManager.installed``)."""
    out = []
    for route in routes or []:
        if oif is None or route.oif != oif:
            continue
        item = route.to_dict()
        item["proto"] = route.proto
        item["managed"] = route.proto == managed_proto
        out.append(item)
    out.sort(key=lambda r: (r["family"], r["table"], r["dest"], r["metric"]))
    return out


def rules_view(state, status_fn):
    """``status_fn(module, params)`` for each declared rule set; an error is reported, not raised."""
    out = []
    for item in (state or {}).get("rule_sets", []):
        try:
            report = dict(status_fn(item["module"], item["params"]))
        except WgspError as exc:
            report = {"name": item.get("name"), "module": item["module"], "present": None, "in_sync": False,
                      "error": exc.msg, "drift": {}, "expected": [], "installed": [], "counters": [],
                      "containers": []}
        out.append(report)
    return out


def rules_drift(rules):
    return any(not r.get("in_sync") for r in rules)


def _declared_view(state):
    if state is None:
        return {}
    keep = ("hub", "hub_endpoint", "hub_address", "public_interface", "clients", "isolate_clients",
            "allowed_flows", "host_services", "external_forwards", "address")
    return dict((k, state[k]) for k in keep if k in state)


def _access_view(items):
    out = []
    for item in items:
        entry = dict(item)
        entry["target"] = join_host_port(item.get("address"), item.get("port"))
        out.append(entry)
    return out
