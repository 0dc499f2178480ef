# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the operations playbooks (status, test_connection, debug): short text views of a
``wg_status`` result, the pass/fail table, and key redaction for debug reports."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

_KEY_RE = re.compile(r"(?<![A-Za-z0-9+/])[A-Za-z0-9+/]{42}[AEIMQUYcgkosw480]=(?![A-Za-z0-9+/=])")
_HEX_KEY_RE = re.compile(r"(?<![0-9a-fA-F])[0-9a-fA-F]{64}(?![0-9a-fA-F])")


def status_service(item):
    """``{proto, port, to_address|container|name, to_port}`` -> ``tcp 80 -> 10.7.0.2:80``."""
    item = item or {}
    target = item.get("to_address") or item.get("container") or item.get("name") or "this host"
    return "%s %s -> %s:%s" % (item.get("proto", "tcp"), item.get("port"), target, item.get("to_port", item.get("port")))


def status_container(entry):
    entry = entry or {}
    if entry.get("error"):
        state = "unresolved (%s)" % entry["error"]
    elif entry.get("stale"):
        state = "STALE: rules point at %s" % (", ".join(entry.get("installed") or []) or "nothing")
    else:
        state = "rules point at %s" % (", ".join(entry.get("installed") or []) or "nothing")
    return "container %s resolves to %s; %s" % (entry.get("container"), entry.get("resolved"), state)


def status_rule_set(report):
    report = report or {}
    packets = sum(int(c.get("packets") or 0) for c in report.get("counters") or [])
    if report.get("error"):
        return "%s %s: ERROR %s" % (report.get("module"), report.get("name"), report["error"])
    sync = "in sync" if report.get("in_sync") else "DRIFT"
    return "%s %s (%s): %s, %d packets" % (report.get("module"), report.get("name"), report.get("backend"), sync, packets)


def status_probe(probe):
    probe = probe or {}
    mark = {True: "ok  ", False: "FAIL", None: "skip"}.get(probe.get("ok"), "?")
    return "%s %s %s: %s (%s ms)" % (mark, probe.get("name"), probe.get("target"), probe.get("detail"),
                                     probe.get("elapsed_ms"))


def connection_table(rows, missing=None):
    """``[{host, mode, status, ran, passed, ok, failed: [..]}]`` (+ hosts without a result) -> text lines."""
    header = ("host", "mode", "status", "probes", "result")
    lines = []
    rows = list(rows or []) + [{"host": h, "ok": False, "failed": ["unreachable, or failed before probing"]}
                               for h in missing or []]
    for row in rows:
        failed = row.get("failed") or []
        result = "PASS" if row.get("ok") else "FAIL"
        detail = "; ".join(list(failed) + list(row.get("notes") or []))
        lines.append((row.get("host", "?"), row.get("mode", "?"), row.get("status", "?"),
                      "%s/%s" % (row.get("passed", 0), row.get("ran", 0)),
                      result + (": " + detail if detail else "")))
    widths = [max(len(str(x[i])) for x in [header] + lines) for i in range(4)]
    out = []
    for line in [header] + lines:
        out.append("  ".join(str(line[i]).ljust(widths[i]) for i in range(4)) + "  " + str(line[4]))
    return out


def redact_keys(text, public_keys=None):
    """Every base64 (or 64-hex) WireGuard key in ``text`` that is not a listed public key -> <redacted>."""
    keep = set(public_keys or [])

    def b64(match):
        return match.group(0) if match.group(0) in keep else "<redacted>"

    return _HEX_KEY_RE.sub("<redacted-hex>", _KEY_RE.sub(b64, str(text)))


class FilterModule(object):
    def filters(self):
        return {
            "wgsp_status_service": status_service,
            "wgsp_status_container": status_container,
            "wgsp_status_rule_set": status_rule_set,
            "wgsp_status_probe": status_probe,
            "wgsp_connection_table": connection_table,
            "wgsp_redact_keys": redact_keys,
        }
