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

import os
import time

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.checks import (
    check_float,
    check_ifname,
    check_int,
    check_no_control,
    check_port,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import ValidationError
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.files import check_abs_path, check_path_limits
from ansible_collections.wgsp.service_proxy.plugins.module_utils._status.probes import build_probes, tcp_connect
from ansible_collections.wgsp.service_proxy.plugins.module_utils._status.state import load_state, state_path
from ansible_collections.wgsp.service_proxy.plugins.module_utils._status.views import (
    FRESH_SECONDS,
    _access_view,
    _declared_view,
    classify,
    peers_view,
    rules_drift,
    rules_view,
)


# Upper bounds of the numeric options (a probe longer than 10 minutes is a hung task, not a probe).
MAX_PROBE_TIMEOUT = 600.0
MAX_FRESH_SECONDS = 86400 * 365
FAIL_ON = ("drift", "probe", "disconnected")


def not_configured(result):
    """No tunnel here: neither the roles' state file nor the interface (a host of a mixed inventory
    that is not part of the service proxy, or one the disconnect playbook cleaned)."""
    return result["client_mode"] == "unmanaged" and result["status"] == "absent"


def summary_line(result):
    """One compact line: ``proxy connected handshake=12s drift=no probes=4/4``."""
    if not_configured(result):
        return "not configured: no %s interface, no state file (nothing to check)" % result["interface"]
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
    if "disconnected" in fail_on and result["status"] != "connected" and not not_configured(result):
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
