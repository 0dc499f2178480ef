# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The plan of ``wg_interface``: current and desired state compared (device, per peer, link), and
the views of a state that results and diffs show.

Internal to the collection. No view ever holds a private or preshared key: a preshared key shows
as a mark (``PSK_SET``, ``PSK_CHANGED``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import keys
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard.params import (
    normalize_address,
    normalize_allowed_ip,
    normalize_device_endpoint,
    sort_cidrs,
)


PSK_SET = "<preshared key set>"
PSK_CHANGED = "<preshared key changed>"
KEY_UNKNOWN = "<generated on apply>"


def normalize_device(device):
    """Canonical form of a device dict read from a backend (sorted IPs, canonical endpoints)."""
    peers = {}
    for peer in device.get("peers") or []:
        item = dict(peer)
        item["allowed_ips"] = sort_cidrs(normalize_allowed_ip("allowed_ips", c) for c in peer.get("allowed_ips") or [])
        item["endpoint"] = normalize_device_endpoint(peer.get("endpoint"))
        item["persistent_keepalive"] = peer.get("persistent_keepalive") or 0
        peers[item["public_key"]] = item
    private = device.get("private_key")
    public = device.get("public_key") or (keys.public_key(private) if private else None)
    return {"private_key": private, "public_key": public, "listen_port": device.get("listen_port") or 0,
            "fwmark": device.get("fwmark") or 0, "peers": peers}


def normalize_link(link):
    if link is None:
        return None
    out = dict(link)
    out["addresses"] = sort_cidrs(normalize_address("addresses", a) for a in link.get("addresses") or [])
    return out


EMPTY_DEVICE = {"private_key": None, "public_key": None, "listen_port": 0, "fwmark": 0, "peers": {}}


class Plan:
    """What has to change; empty means ``changed=false`` and nothing is sent."""

    def __init__(self):
        self.create = False
        self.delete = False
        self.kill_pids = []
        self.device = {}
        self.peer_ops = []
        self.add_addresses = []
        self.del_addresses = []
        self.mtu = None
        self.up = False
        self.write_key = None  # "generate" | "adopt" | None
        self.write_config = False
        self.remove_config = False
        self.remove_key = False
        self.actions = []

    def empty(self):
        return not (self.create or self.delete or self.kill_pids or self.device or self.peer_ops
                    or self.add_addresses or self.del_addresses or self.mtu is not None or self.up
                    or self.write_key or self.write_config or self.remove_config or self.remove_key)


def plan_peers(current_peers, want_peers, exclusive):
    """Per-peer operations: remove / add / update with only the changed fields."""
    ops = []
    if exclusive:
        for pub in sorted(current_peers):
            if pub not in want_peers:
                ops.append({"op": "remove", "public_key": pub})
    for pub in sorted(want_peers):
        want = want_peers[pub]
        have = current_peers.get(pub)
        if have is None:
            op = {"op": "add", "public_key": pub, "allowed_ips": list(want["allowed_ips"])}
            if want["preshared_key"]:
                op["preshared_key"] = want["preshared_key"]
            if want["endpoint"]:
                op["endpoint"] = want["endpoint"]
            if want["persistent_keepalive"]:
                op["persistent_keepalive"] = want["persistent_keepalive"]
            ops.append(op)
            continue
        op = {"op": "update", "public_key": pub}
        if (want["preshared_key"] or None) != (have.get("preshared_key") or None):
            op["preshared_key"] = want["preshared_key"]
        if want["endpoint"] and want["endpoint"] != have.get("endpoint"):
            op["endpoint"] = want["endpoint"]
        if want["persistent_keepalive"] != (have.get("persistent_keepalive") or 0):
            op["persistent_keepalive"] = want["persistent_keepalive"]
        if want["allowed_ips"] != have.get("allowed_ips"):
            op["allowed_ips"] = list(want["allowed_ips"])
        if len(op) > 2:
            ops.append(op)
    return ops


def describe_peer_op(op):
    if op["op"] == "remove":
        return "remove peer %s" % op["public_key"]
    fields = [k for k in ("endpoint", "allowed_ips", "persistent_keepalive", "preshared_key") if k in op]
    return "%s peer %s%s" % (op["op"], op["public_key"], (" (" + ", ".join(fields) + ")") if fields else "")


def compute_plan(want, link, device, private_key, key_action):
    """The plan for ``state=present``.

    ``link``/``device``: normalised current state (``None`` / ``EMPTY_DEVICE`` when absent);
    ``private_key``: the key the device must have (``None`` when it is generated on apply);
    ``key_action``: ``"generate"``/``"adopt"``/``None`` for the key file.
    """
    plan = Plan()
    if link is None:
        plan.create = True
        plan.actions.append("create interface %s" % want["name"])
        link = {"addresses": [], "mtu": None, "up": False}
    if key_action:
        plan.write_key = key_action
        verb = "generate" if key_action == "generate" else "write the device's"
        plan.actions.append("%s private key file %s" % (verb, want["private_key_path"]))
    if private_key is None or private_key != device.get("private_key"):
        plan.device["private_key"] = private_key
        plan.actions.append("set private key")
    if want["listen_port"] is not None and want["listen_port"] != device.get("listen_port"):
        plan.device["listen_port"] = want["listen_port"]
        plan.actions.append("set listen_port %d" % want["listen_port"])
    if want["fwmark"] is not None and want["fwmark"] != device.get("fwmark"):
        plan.device["fwmark"] = want["fwmark"]
        plan.actions.append("set fwmark %d" % want["fwmark"])
    plan.peer_ops = plan_peers(device.get("peers") or {}, want["peers"], want["exclusive_peers"])
    plan.actions.extend(describe_peer_op(op) for op in plan.peer_ops)
    if want["addresses"] is not None:
        plan.add_addresses = [a for a in want["addresses"] if a not in link["addresses"]]
        plan.del_addresses = [a for a in link["addresses"] if a not in want["addresses"]]
        plan.actions.extend("add address %s" % a for a in plan.add_addresses)
        plan.actions.extend("remove address %s" % a for a in plan.del_addresses)
    if want["mtu"] is not None and want["mtu"] != link.get("mtu"):
        plan.mtu = want["mtu"]
        plan.actions.append("set mtu %d" % want["mtu"])
    if not link.get("up"):
        plan.up = True
        plan.actions.append("set link up")
    return plan


def public_view(link, device, include_stats=False):
    peers = []
    for pub in sorted(device["peers"]):
        peer = device["peers"][pub]
        item = {"public_key": pub, "endpoint": peer.get("endpoint"), "allowed_ips": list(peer.get("allowed_ips") or []),
                "persistent_keepalive": peer.get("persistent_keepalive") or 0}
        if include_stats:
            item.update({"latest_handshake": peer.get("latest_handshake") or 0,
                         "rx_bytes": peer.get("rx_bytes") or 0, "tx_bytes": peer.get("tx_bytes") or 0})
        peers.append(item)
    return {"up": bool(link and link.get("up")), "mtu": link.get("mtu") if link else None,
            "addresses": list(link.get("addresses") or []) if link else [],
            "listen_port": device.get("listen_port") or 0, "fwmark": device.get("fwmark") or 0,
            "public_key": device.get("public_key"), "peers": peers}


def _diff_view(name, link, device, config_state, psk_marks=None):
    if link is None:
        return {"interface": name, "state": "absent", "config_file": config_state}
    view = public_view(link, device)
    view.pop("up")
    peers = {}
    for item in view.pop("peers"):
        pub = item.pop("public_key")
        psk = device["peers"][pub].get("preshared_key")
        mark = (psk_marks or {}).get(pub)
        item["preshared_key"] = mark or (PSK_SET if psk else None)
        peers[pub] = item
    view.update({"interface": name, "state": "present", "up": bool(link.get("up")), "peers": peers,
                 "config_file": config_state})
    return view
