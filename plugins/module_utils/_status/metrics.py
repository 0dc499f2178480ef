# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A ``wg_status`` result in the Prometheus text exposition format (version 0.0.4), for
node_exporter's textfile collector.

Names follow the Prometheus conventions: a ``wgsp_`` prefix, base units (seconds, bytes),
``_total`` on counters, timestamps as ``*_timestamp_seconds`` (an age is computed at query time
with ``time() - ...``: a file written every minute would make any exported age a minute stale),
one series per state of an enumeration. Every series carries the ``interface`` label, so several
tunnels of one host (one file each) never collide.

Internal to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

# Seconds between two runs of the writer (wg_metrics ``interval``, the roles' ``*_metrics_interval``).
MIN_INTERVAL = 10
MAX_INTERVAL = 86400

# The states ``classify`` reports, exported as one 0/1 series each (a StateSet).
STATUSES = ("connected", "handshake-stale", "no-handshake", "down", "absent")

# name: (type, help); the order in which families are written.
FAMILIES = (
    ("wgsp_collect_success", "gauge", "1 when the last collection read the tunnel, the firewall and the state file."),
    ("wgsp_collect_timestamp_seconds", "gauge", "When the last collection ran (Unix time)."),
    ("wgsp_collect_duration_seconds", "gauge", "How long the last collection took."),
    ("wgsp_info", "gauge", "The interface as the roles declared it (always 1)."),
    ("wgsp_status", "gauge", "1 for the tunnel's current status, 0 for the others (wg_status's status)."),
    ("wgsp_interface_up", "gauge", "1 when the WireGuard interface exists and is up."),
    ("wgsp_clients_connected", "gauge", "Hub only: clients whose latest handshake is fresh."),
    ("wgsp_peer_last_handshake_timestamp_seconds", "gauge",
     "The peer's latest handshake (Unix time; 0 when there never was one)."),
    ("wgsp_peer_receive_bytes_total", "counter", "Bytes received from the peer."),
    ("wgsp_peer_transmit_bytes_total", "counter", "Bytes sent to the peer."),
    ("wgsp_rule_set_in_sync", "gauge",
     "1 when the rule set is installed exactly as declared and its container addresses are current (0: drift)."),
    ("wgsp_rule_packets_total", "counter", "Packets matched by the rule set's rules, by chain, action, protocol and port."),
    ("wgsp_rule_bytes_total", "counter", "Bytes matched by the rule set's rules, by chain, action, protocol and port."),
    ("wgsp_container_address_stale", "gauge",
     "1 when the rules still send a container's traffic to an address the container no longer has."),
    ("wgsp_probe_success", "gauge", "1 when the test-connection probe succeeded (only with probes on)."),
)

_PORT_RES = (
    re.compile(r"-p (?P<proto>tcp|udp)\b.*?--dport (?P<port>[0-9]+(?::[0-9]+)?)"),  # iptables-save
    re.compile(r"\b(?P<proto>tcp|udp) dport (?P<port>[0-9]+(?:-[0-9]+)?)"),  # nft
)
_QUOTED_RE = re.compile(r'"[^"]*"')  # comments and log prefixes carry the set's name: never read as words
_TARGET_RE = re.compile(r"-j ([A-Z]+)\b")  # iptables-save
_VERDICT_RE = re.compile(r"\b(dnat|snat|accept|reject|masquerade|log|drop)\b")  # nft: the last one acts


def escape_label(value):
    return str(value).replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value):
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def rule_labels(text):
    """``(chain, action, protocol, port)`` of a counter line of ``rule_set_status``
    (``"<scope> <chain>: <rule>"``, the scope ``ipv4 nat`` or ``inet <table>``): the port in the
    ``30000-30010`` form on both backends."""
    head, _sep, rule = text.partition(": ")
    rule = _QUOTED_RE.sub('""', rule)
    chain = head.rsplit(" ", 1)[-1]
    proto = port = ""
    for regex in _PORT_RES:
        match = regex.search(rule)
        if match:
            proto, port = match.group("proto"), match.group("port").replace(":", "-")
            break
    target = _TARGET_RE.search(rule)
    verdicts = _VERDICT_RE.findall(rule)
    action = target.group(1).lower() if target else (verdicts[-1] if verdicts else "")
    return chain, action, proto, port


class Exposition:
    """Samples gathered by family, written in ``FAMILIES`` order with their HELP and TYPE."""

    def __init__(self, interface):
        self.interface = interface
        self.samples = dict((name, []) for name, _type, _help in FAMILIES)

    def add(self, name, value, **labels):
        if value is None:
            return
        pairs = [("interface", self.interface)] + sorted(labels.items())
        self.samples[name].append(("{%s}" % ",".join('%s="%s"' % (k, escape_label(v)) for k, v in pairs), value))

    def text(self):
        lines = []
        for name, kind, text in FAMILIES:
            if not self.samples[name]:
                continue
            lines.append("# HELP %s %s" % (name, text))
            lines.append("# TYPE %s %s" % (name, kind))
            lines.extend("%s%s %s" % (name, labels, _number(value)) for labels, value in self.samples[name])
        return "\n".join(lines) + "\n"


def _add_rules(out, rules):
    for rule_set in rules:
        labels = {"rule_set": rule_set.get("name") or "", "module": rule_set.get("module") or ""}
        out.add("wgsp_rule_set_in_sync", bool(rule_set.get("in_sync")), backend=rule_set.get("backend") or "", **labels)
        totals = {}
        order = []
        for counter in rule_set.get("counters") or []:
            key = rule_labels(counter["rule"])
            if key not in totals:
                totals[key] = [0, 0]
                order.append(key)
            totals[key][0] += int(counter.get("packets") or 0)
            totals[key][1] += int(counter.get("bytes") or 0)
        for key in order:
            chain, action, proto, port = key
            extra = dict(labels, chain=chain, action=action, protocol=proto, port=port)
            out.add("wgsp_rule_packets_total", totals[key][0], **extra)
            out.add("wgsp_rule_bytes_total", totals[key][1], **extra)
        stale = {}
        for entry in rule_set.get("containers") or []:
            stale[entry["container"]] = stale.get(entry["container"], False) or bool(entry.get("stale"))
        for container in sorted(stale):
            out.add("wgsp_container_address_stale", stale[container], rule_set=labels["rule_set"], container=container)


def render(interface, result, now, duration, error=None):
    """The textfile for one interface. ``result`` is a ``wg_status`` result, or None when the
    collection failed (``error`` says why, in a comment line): then only the collection's own
    series are written, so an alert on ``wgsp_collect_success == 0`` fires instead of the others
    going silently stale."""
    out = Exposition(interface)
    out.add("wgsp_collect_success", result is not None)
    out.add("wgsp_collect_timestamp_seconds", round(float(now), 3))
    out.add("wgsp_collect_duration_seconds", round(float(duration), 6))
    if result is None:
        reason = " ".join(str(error or "unknown error").split())[:500]
        return "# wgsp: collection failed: %s\n%s" % (reason, out.text())
    out.add("wgsp_info", 1, client_mode=result.get("client_mode") or "", backend=result.get("backend") or "",
            public_key=result.get("public_key") or "")
    for status in STATUSES:
        out.add("wgsp_status", result.get("status") == status, status=status)
    out.add("wgsp_interface_up", bool(result.get("up")))
    if result.get("client_mode") == "server":
        out.add("wgsp_clients_connected", int(result.get("clients_connected") or 0))
    for peer in result.get("peers") or []:
        labels = {"public_key": peer.get("public_key") or "", "role": peer.get("role") or ""}
        out.add("wgsp_peer_last_handshake_timestamp_seconds", int(peer.get("latest_handshake") or 0), **labels)
        out.add("wgsp_peer_receive_bytes_total", int(peer.get("rx_bytes") or 0), **labels)
        out.add("wgsp_peer_transmit_bytes_total", int(peer.get("tx_bytes") or 0), **labels)
    _add_rules(out, result.get("rules") or [])
    for probe in result.get("probes") or []:
        if probe.get("ok") is not None:
            out.add("wgsp_probe_success", bool(probe["ok"]), probe=probe.get("name") or "", target=probe.get("target") or "")
    return out.text()
