# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The optional TCP probes of ``wg_status``: the hub through the tunnel, the published and shared
services, each a connect with a timeout.

Internal to the collection. The connector and the clock are injected.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import socket
import time

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.net import join_host_port
from ansible_collections.wgsp.service_proxy.plugins.module_utils._status.views import FRESH_SECONDS


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
        ok, detail = True, "TCP connection to %s accepted" % join_host_port(address, port)
    except ConnectionRefusedError:
        ok = bool(refused_ok)
        detail = ("%s answered (port closed, RST)" if refused_ok else "connection to %s refused (nothing listens)") % (
            join_host_port(address, port))
    except socket.timeout:
        ok, detail = False, "no answer from %s within %gs" % (join_host_port(address, port), timeout)
    except OSError as exc:
        ok, detail = False, "%s: %s" % (join_host_port(address, port), exc.strerror or exc)
    finally:
        sock.close()
    return ok, detail, int(round((clock() - start) * 1000))


RANGE_NOT_PROBED = "a port range: not probed (which of its ports listen is the service's choice)"


def _is_range(port):
    return "-" in str(port)


def _probe(name, target, ok, detail, elapsed_ms=0):
    return {"name": name, "target": target, "ok": ok, "detail": detail, "elapsed_ms": elapsed_ms}


def _not_probed(name, target, why):
    return _probe(name, target, None, why)


def _tcp_probe(name, address, port, connect, timeout, refused_ok=False):
    ok, detail, ms = connect(address, port, timeout, refused_ok=refused_ok)
    return _probe(name, join_host_port(address, port), ok, detail, ms)


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
        target = join_host_port(address, port)
        if route_of is not None:
            dev = route_of(address)
            if dev != interface:
                return _probe(name, target, False, "%s is routed via %s, not %s" % (address, dev or "nothing", interface))
        if proto == "udp":
            return _not_probed(name, target, "UDP: not probed (no TCP handshake to test)")
        if _is_range(port):
            return _not_probed(name, target, RANGE_NOT_PROBED)
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
                probes.append(_not_probed(name, join_host_port(address, port), "UDP: not probed (no TCP handshake to test)"))
            elif _is_range(port):
                probes.append(_not_probed(name, join_host_port(address, port), RANGE_NOT_PROBED))
            else:
                probes.append(_tcp_probe(name, address, port, connect, timeout))
    return probes
