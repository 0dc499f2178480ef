# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The assembly behind ``wg_status``: declared state (the roles' state file) against the live
interface, firewall and routing table, plus optional probes. Read-only.

Everything that touches the host is injected (``read_interface``, ``rule_set_status``, the route
reader, the TCP connector, the clock), so each piece is testable without a host.

Nothing here ever handles a private or preshared key: ``read_interface`` does not return them and
the state file holds none.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import ipaddress
import json
import os
import socket
import time

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import ValidationError, WgspError
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.files import check_abs_path, check_path_limits
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.checks import (
    check_float,
    check_ifname,
    check_int,
    check_no_control,
    check_port,
)

# Upper bounds of the numeric options (a probe longer than 10 minutes is a hung task, not a probe).
MAX_PROBE_TIMEOUT = 600.0
MAX_FRESH_SECONDS = 86400 * 365

STATE_VERSION = 1
FRESH_SECONDS = 180
MODES = ("server", "share", "proxy")
RULE_MODULES = ("wg_dnat", "wg_filter")
FAIL_ON = ("drift", "probe", "disconnected")
_LIST_KEYS = ("address", "access_services", "public_ports", "shared_services", "host_services",
              "external_forwards", "clients", "allowed_flows", "rule_sets")


class StateFileError(WgspError):
    """The state file exists but cannot be used (bad JSON, unknown version, wrong shape)."""


# ---------------------------------------------------------------------------------------------
# the declared side


def state_path(state_dir, interface):
    return os.path.join(state_dir, "%s.json" % interface)


def parse_state(text, path, interface):
    """Parse and check a state file's text; returns a normalised dict.

    Errors name the file and the field, never echo the whole content.
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise StateFileError("state file %s is not valid JSON (%s); re-run the role to rewrite it" % (path, exc),
                             path=path)
    if not isinstance(data, dict):
        raise StateFileError("state file %s must hold a JSON object, not %s" % (path, type(data).__name__), path=path)
    version = data.get("version")
    if version != STATE_VERSION:
        raise StateFileError(
            "state file %s has version %r; this wg_status reads version %d. Update the collection on the "
            "controller (or re-run the role that wrote the file) so both agree" % (path, version, STATE_VERSION),
            path=path, version=version)
    mode = data.get("client_mode")
    if mode not in MODES:
        raise StateFileError("state file %s: client_mode must be one of %s (got %r)" % (path, ", ".join(MODES), mode),
                             path=path)
    if data.get("interface") not in (None, interface):
        raise StateFileError("state file %s belongs to interface %r, not %r" % (path, data.get("interface"), interface),
                             path=path)
    state = dict(data)
    state["interface"] = interface
    for key in _LIST_KEYS:
        value = state.get(key)
        if value is None:
            value = []
        elif isinstance(value, (str, dict)):
            value = [value]
        if not isinstance(value, list):
            raise StateFileError("state file %s: %s must be a list" % (path, key), path=path)
        state[key] = value
    for key in ("access_services", "public_ports", "shared_services", "host_services", "external_forwards"):
        for i, item in enumerate(state[key]):
            if not isinstance(item, dict):
                raise StateFileError("state file %s: %s[%d] must be an object" % (path, key, i), path=path)
    for i, item in enumerate(state["rule_sets"]):
        if not isinstance(item, dict) or item.get("module") not in RULE_MODULES or not isinstance(item.get("params"), dict):
            raise StateFileError("state file %s: rule_sets[%d] must be {module: %s, name, params: {...}}"
                                 % (path, i, "|".join(RULE_MODULES)), path=path)
        item.setdefault("name", item["params"].get("name"))
    state["public_exposure"] = bool(state.get("public_exposure", bool(state["public_ports"])))
    return state


def load_state(path, interface):
    """The state file as a dict, or ``None`` when there is none (the interface is unmanaged)."""
    try:
        with open(path, "r") as handle:
            text = handle.read()
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise StateFileError("cannot read state file %s: %s" % (path, exc.strerror), path=path)
    return parse_state(text, path, interface)


# ---------------------------------------------------------------------------------------------
# the tunnel: handshake ages and the connection status


def handshake_age(latest, now):
    """Seconds since the handshake (never negative), or ``None`` when there was none."""
    if not latest:
        return None
    return max(0, int(now - latest))


def _host_of(endpoint):
    text = str(endpoint or "").strip()
    if text.startswith("["):
        return text[1:].split("]", 1)[0], text.rsplit(":", 1)[-1]
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, port
    return text, None


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


# ---------------------------------------------------------------------------------------------
# routes and rules


def routes_view(routes, oif, managed_proto=87):
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


# ---------------------------------------------------------------------------------------------
# probes


def tcp_connect(address, port, timeout, refused_ok=False, clock=time.time):
    """Try a TCP connection; returns ``(ok, detail, elapsed_ms)``.

    With ``refused_ok`` an RST (connection refused) counts as an answer: the address is reachable.
    """
    start = clock()
    family = socket.AF_INET6 if ":" in str(address) else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        sock.connect((str(address), int(port)))
        ok, detail = True, "TCP connection to %s accepted" % _fmt(address, port)
    except ConnectionRefusedError:
        ok = bool(refused_ok)
        detail = ("%s answered (port closed, RST)" if refused_ok else "connection to %s refused (nothing listens)") % (
            _fmt(address, port))
    except socket.timeout:
        ok, detail = False, "no answer from %s within %gs" % (_fmt(address, port), timeout)
    except OSError as exc:
        ok, detail = False, "%s: %s" % (_fmt(address, port), exc.strerror or exc)
    finally:
        sock.close()
    return ok, detail, int(round((clock() - start) * 1000))


def _fmt(address, port):
    return "[%s]:%s" % (address, port) if ":" in str(address) else "%s:%s" % (address, port)


def _probe(name, target, ok, detail, elapsed_ms=0):
    return {"name": name, "target": target, "ok": ok, "detail": detail, "elapsed_ms": elapsed_ms}


def _not_probed(name, target, why):
    return _probe(name, target, None, why)


def _tcp_probe(name, address, port, connect, timeout, refused_ok=False):
    ok, detail, ms = connect(address, port, timeout, refused_ok=refused_ok)
    return _probe(name, _fmt(address, port), ok, detail, ms)


def build_probes(mode, state, status, age, rules, interface, connect, timeout, hub_port=22,
                 route_of=None, fresh=FRESH_SECONDS, peers=None):
    """The test-connection checks, as a list of ``{name, target, ok, detail, elapsed_ms}``.

    ``ok`` is ``None`` for a check that was not run (UDP services; no TCP probe can tell).
    ``route_of(address) -> ifname`` (optional) checks the path goes through the tunnel first.
    """
    probes = []
    state = state or {}
    if mode == "server":
        for peer in peers or []:
            key = peer["public_key"]
            probes.append(_probe("client handshake", key, peer["fresh"],
                                 "never" if peer["handshake_age"] is None else "%ds ago" % peer["handshake_age"]))
        if not peers:
            probes.append(_probe("client handshake", interface, False, "the hub has no peers"))
    else:
        probes.append(_probe("handshake", interface, status == "connected",
                             "%s (%s)" % (status, "never" if age is None else "%ds ago" % age)))
    if status in ("absent", "down"):
        return probes
    hub_address = state.get("hub_address")
    if mode in ("share", "proxy") and hub_address:
        probes.append(_tcp_probe("hub tunnel address", hub_address, hub_port, connect, timeout, refused_ok=True))

    def through_tunnel(name, address, port, proto):
        target = _fmt(address, port)
        if route_of is not None:
            dev = route_of(address)
            if dev != interface:
                return _probe(name, target, False, "%s is routed via %s, not %s" % (address, dev or "nothing", interface))
        if proto == "udp":
            return _not_probed(name, target, "UDP: not probed (no TCP handshake to test)")
        return _tcp_probe(name, address, port, connect, timeout)

    if mode == "proxy":
        for svc in state.get("access_services", []):
            probes.append(through_tunnel("access service", svc.get("address"), svc.get("port"), svc.get("proto", "tcp")))
        for pub in state.get("public_ports", []):
            probe = through_tunnel("public port %s/%s target" % (pub.get("proto", "tcp"), pub.get("port")),
                                   pub.get("to_address"), pub.get("to_port"), pub.get("proto", "tcp"))
            probes.append(probe)
    if mode == "share":
        resolved = {}
        for rule_set in rules:
            for entry in rule_set.get("containers") or []:
                name = entry.get("container")
                if entry.get("resolved"):
                    resolved[name] = entry["resolved"]
                if entry.get("error"):
                    ok, detail = False, "cannot resolve: %s" % entry["error"]
                elif entry.get("stale"):
                    ok, detail = False, "stale: rules point at %s, the container is at %s" % (
                        ", ".join(entry.get("installed") or []) or "nothing", entry.get("resolved"))
                elif not entry.get("installed"):
                    ok, detail = False, "resolves to %s but no rule points at it" % entry.get("resolved")
                else:
                    ok, detail = True, "resolves to %s, as the rules point" % entry.get("resolved")
                probes.append(_probe("container resolution", name, ok, detail))
        own = None
        for cidr in state.get("address", []):
            try:
                own = str(ipaddress.ip_interface(str(cidr)).ip)
                break
            except ValueError:
                continue
        targets = []
        for svc in state.get("shared_services", []):
            address = resolved.get(svc.get("container") or svc.get("name"))
            if address is None:
                targets.append(("shared service %s" % svc.get("name"), None, svc.get("to_port"), svc.get("proto")))
            else:
                targets.append(("shared service %s" % svc.get("name"), address, svc.get("to_port"), svc.get("proto")))
        for svc in state.get("host_services", []):
            targets.append(("host service %s/%s" % (svc.get("proto"), svc.get("port")), own, svc.get("to_port"),
                            svc.get("proto")))
        for fwd in state.get("external_forwards", []):
            targets.append(("external forward %s/%s" % (fwd.get("proto"), fwd.get("port")), fwd.get("to_address"),
                            fwd.get("to_port"), fwd.get("proto")))
        for name, address, port, proto in targets:
            if address is None:
                probes.append(_probe(name, "port %s" % port, False, "no address to probe (unresolved)"))
            elif proto == "udp":
                probes.append(_not_probed(name, _fmt(address, port), "UDP: not probed (no TCP handshake to test)"))
            else:
                probes.append(_tcp_probe(name, address, port, connect, timeout))
    return probes


# ---------------------------------------------------------------------------------------------
# the whole report


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
        entry["target"] = _fmt(item.get("address"), item.get("port"))
        out.append(entry)
    return out


def summary_line(result):
    """One compact line: ``proxy connected handshake=12s drift=no probes=4/4``."""
    age = result.get("handshake_age")
    parts = [result["client_mode"], result["status"], "handshake=%s" % ("never" if age is None else "%ds" % age),
             "drift=%s" % ("yes" if result["drift"] else "no")]
    ran = [p for p in result.get("probes") or [] if p["ok"] is not None]
    if result.get("probes"):
        parts.append("probes=%d/%d" % (len([p for p in ran if p["ok"]]), len(ran)))
    return " ".join(parts)


def failures(result, fail_on):
    """Reasons the module must fail for ``fail_on``, as short strings (empty = pass)."""
    reasons = []
    if "disconnected" in fail_on and result["status"] != "connected":
        reasons.append("status is %s" % result["status"])
    if "drift" in fail_on and result["drift"]:
        names = ["%s %s" % (r.get("module"), r.get("name")) for r in result["rules"] if not r.get("in_sync")]
        reasons.append("drift in %s" % ", ".join(names))
    if "probe" in fail_on:
        bad = ["%s %s" % (p["name"], p["target"]) for p in result["probes"] if p["ok"] is False]
        if bad:
            reasons.append("probes failed: %s" % "; ".join(bad))
    return reasons


class StatusReport:
    """One ``wg_status`` run. Every host access is a callable passed in."""

    def __init__(self, interface, read_interface, rule_status, routes=None, route_of=None, connect=tcp_connect,
                 state_dir="/etc/wg-service-proxy", state_file=None, now=time.time, fresh=FRESH_SECONDS,
                 probe=False, probe_timeout=2.0, hub_probe_port=22):
        self.interface = check_ifname("interface", interface)
        fresh = check_int("fresh_seconds", fresh, 1, MAX_FRESH_SECONDS)
        probe_timeout = check_float("probe_timeout", probe_timeout, 0.001, MAX_PROBE_TIMEOUT)
        hub_probe_port = check_port("hub_probe_port", hub_probe_port)
        if state_file is not None:
            state_file = check_abs_path("state_file", state_file)
        elif not os.path.isabs(check_no_control("state_dir", state_dir) or ""):
            raise ValidationError("state_dir", "must be an absolute path (got %r)" % (state_dir,))
        else:
            # the file read is <state_dir>/<interface>.json: the whole path within the kernel's name limits
            check_path_limits("state_dir", state_path(state_dir, self.interface))
        self.read_interface = read_interface
        self.rule_status = rule_status
        self.routes = routes
        self.route_of = route_of
        self.connect = connect
        self.path = state_file or state_path(state_dir, self.interface)
        self.now = now
        self.fresh = fresh
        self.probe = probe
        self.probe_timeout = probe_timeout
        self.hub_probe_port = hub_probe_port

    def run(self):
        state = load_state(self.path, self.interface)
        mode = state["client_mode"] if state else "unmanaged"
        iface = self.read_interface(self.interface)
        now = self.now()
        status, age, hub_key, roles = classify(iface, mode, state, now, self.fresh)
        peers = peers_view(iface, roles, now, self.fresh)
        rules = rules_view(state, self.rule_status)
        routes = self.routes(self.interface) if (self.routes and iface.get("exists")) else []
        result = {
            "status": status,
            "interface": self.interface,
            "client_mode": mode,
            "public_exposure": bool(state and state.get("public_exposure")),
            "access_services": _access_view(state.get("access_services", [])) if state else [],
            "shared_services": list(state.get("shared_services", [])) if state else [],
            "public_ports": list(state.get("public_ports", [])) if state else [],
            "address": list(iface.get("addresses") or []),
            "public_key": iface.get("public_key"),
            "backend": iface.get("backend"),
            "up": bool(iface.get("up")),
            "mtu": iface.get("mtu"),
            "listen_port": iface.get("listen_port") or 0,
            "handshake_age": age,
            "hub_public_key": hub_key,
            "peers": peers,
            "routes": routes,
            "rules": rules,
            "drift": rules_drift(rules),
            "probes": [],
            "state_file": self.path if state else None,
            "declared": _declared_view(state),
        }
        if mode == "server":
            result["clients_connected"] = len([p for p in peers if p["fresh"]])
        if self.probe:
            route_of = None
            if self.route_of is not None and iface.get("exists"):
                route_of = self.route_of
            result["probes"] = build_probes(mode, state, status, age, rules, self.interface, self.connect,
                                            self.probe_timeout, hub_port=self.hub_probe_port, route_of=route_of,
                                            fresh=self.fresh, peers=peers)
        result["summary"] = summary_line(result)
        return result
