# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The wg-quick configuration file ``wg_interface`` keeps (``config_file``), rendered from the plan.

Internal to the collection. The file holds the private and preshared keys: it is written 0600.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


def render_wg_quick(want, after, private_key):
    """The wg-quick file reproducing ``after`` (the planned state); holds keys: write it 0600."""
    lines = ["# Managed by wgsp.service_proxy.wg_interface: edits are overwritten.",
             "# Restores this interface with: wg-quick up %s" % want["name"],
             "[Interface]",
             "PrivateKey = %s" % private_key]
    if want["listen_port"] is not None:
        lines.append("ListenPort = %d" % want["listen_port"])
    if after["fwmark"]:
        lines.append("FwMark = 0x%x" % after["fwmark"])
    if after["addresses"]:
        lines.append("Address = %s" % ", ".join(after["addresses"]))
    if after["mtu"]:
        lines.append("MTU = %d" % after["mtu"])
    lines.append("Table = %s" % want["table"])
    for command in want["post_up"]:
        lines.append("PostUp = %s" % command)
    for command in want["pre_down"]:
        lines.append("PreDown = %s" % command)
    for pub in sorted(after["peers"]):
        peer = after["peers"][pub]
        lines.extend(["", "[Peer]", "PublicKey = %s" % pub])
        if peer.get("preshared_key"):
            lines.append("PresharedKey = %s" % peer["preshared_key"])
        if peer.get("allowed_ips"):
            lines.append("AllowedIPs = %s" % ", ".join(peer["allowed_ips"]))
        # only an endpoint the user declared: a learned (roaming) one would rewrite the file on every move
        endpoint = peer.get("endpoint_input")
        if endpoint:
            lines.append("Endpoint = %s" % endpoint)
        if peer.get("persistent_keepalive"):
            lines.append("PersistentKeepalive = %d" % peer["persistent_keepalive"])
    return "\n".join(lines) + "\n"
