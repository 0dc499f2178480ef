#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: wg_carrier
short_description: Keep a public client's address from a proxy to a share (a VXLAN carrier inside the tunnel)
version_added: 0.3.0
description:
  - A published port normally reaches a share with the proxy's tunnel address as its source (masquerade),
    because WireGuard drops a packet whose source is not in its peer's allowed IPs. A carrier keeps the
    public client's address instead - the shared service logs it, limits it, allows it - by carrying the
    public packets in a VXLAN device between the proxy's and the share's tunnel addresses. The tunnel
    carries the carrier's UDP (O(port)) between those two addresses only; the carrier's payload is
    encrypted and authenticated by WireGuard like any other packet.
  - Each carrier's MAC is derived from its tunnel address (C(02:00) and the address's four bytes), so
    each end knows the other's without asking (no learning, no ARP), with a permanent forwarding entry and
    neighbour per peer.
  - On a proxy (O(side=proxy)), each of O(flows) is one policy rule that sends the DNAT'ed connections of a
    published port into the carrier (the rule sees the destination after DNAT - the share's address and
    the service's port), and O(table) routes each share's address into the carrier. Publish those ports
    without masquerade (M(wgsp.service_proxy.wg_dnat) C(masquerade=false), C(out_interface) the carrier).
  - On a share (O(side=share)), the connections that arrive on the carrier are marked with the proxy that
    carried them (the frame's source MAC), and every reply is routed back through that proxy - one table
    per proxy (O(table) + n, where n is the proxy address's last bits in O(mark_mask)), one C(fwmark)
    rule each. Several proxies can carry connections to one share. Only DNAT'ed connections are accepted
    from the carrier (the shared services, as through the hub's isolation). DNAT them with
    M(wgsp.service_proxy.wg_dnat) C(in_interface) the carrier and C(masquerade=false).
  - The firewall side of a share (marks, the restore of the mark on replies, the drop of what was not
    DNAT'ed) is a rule set of its own (O(rule_set)) on iptables or nftables, owned and replaced in one
    transaction like M(wgsp.service_proxy.wg_dnat)'s.
  - Ownership - the device carries the alias C(wgsp carrier), rules and routes the routing protocol
    C(88) (C(ip rule) and C(ip route) show C(proto 88); M(wgsp.service_proxy.wg_route)'s routes carry 87). Rules of
    protocol 88 that look up one of the carrier's tables, and routes of protocol 88 in those tables, are the carrier's; nothing else is changed
    or removed. A device of O(name) that is not a carrier, and a route of another protocol where the carrier
    needs one of its own, are refused before anything changes.
  - Every value is judged before anything changes; an error names the option, e.g. C(flows[1].to_address).
author:
  - wgsp.service_proxy contributors (@wgsp)
requirements:
  - pyroute2 (Debian's C(python3-pyroute2) 0.7 or later)
  - a kernel with VXLAN (every Debian kernel) and policy-routing port selectors (4.17 or later)
  - iptables (with C(mac), C(MARK), C(CONNMARK), C(conntrack)) or nftables, on a share
attributes:
  check_mode:
    support: full
    description: Reports what would be created, set or deleted; changes nothing.
  diff_mode:
    support: full
    description: The carrier's device, entries, rules, routes and sysctls before and after, and its rule set's lines.
  platform:
    support: full
    platforms: linux
    description: Linux only (netlink, netfilter).
options:
  name:
    description: The carrier device's name (an interface name, not O(interface)).
    type: str
    required: true
  interface:
    description:
      - The WireGuard interface the carrier runs through. It must exist (bring the tunnel up first); its MTU
        less 50 is the carrier's default MTU.
    type: str
    required: true
  side:
    description: V(proxy) sends published connections into the carrier; V(share) accepts them and routes the replies back.
    type: str
    required: true
    choices: [proxy, share]
  local:
    description: This host's IPv4 tunnel address (the carrier's outer source). Required with O(state=present).
    type: str
  peers:
    description:
      - The IPv4 tunnel addresses of the other ends - on a proxy its shares, on a share its proxies.
      - On a share each must differ from the others in the last bits of O(mark_mask) (10 by default), and
        those bits must not all be 0.
    type: list
    elements: str
    default: []
  flows:
    description: On a proxy, the connections sent into the carrier, by where they arrive and where DNAT sends them.
    type: list
    elements: dict
    default: []
    suboptions:
      in_interface:
        description: The interface the published connections arrive on (the public one).
        type: str
        required: true
      proto:
        description: V(tcp), V(udp) or V(both).
        type: str
        default: tcp
        choices: [tcp, udp, both]
      port:
        description: The destination port after DNAT (the service's port on the share), or a range V(N-M).
        type: raw
        required: true
      to_address:
        description: The destination after DNAT - one of O(peers).
        type: str
        required: true
  port:
    description: The carrier's UDP port (both ends use the same). The hub must let it pass between the two ends.
    type: int
    default: 4789
  vni:
    description: The VXLAN network identifier (both ends use the same).
    type: int
    default: 7700
  mtu:
    description: The carrier's MTU. Defaults to the MTU of O(interface) less 50 (the VXLAN overhead).
    type: int
  table:
    description:
      - The first of the carrier's routing tables. A proxy uses this one; a share uses O(table) + n for the
        proxy whose address ends in n (in the bits of O(mark_mask)). The range must not include 253-255.
      - The range is the carrier's - give another carrier on the same host another range.
    type: int
    default: 5200
  priority:
    description:
      - The priority of the carrier's policy rules. A share's last rule (the reverse-path check of what arrives on
        the carrier, after the main table) has priority 32768.
    type: int
    default: 5200
  mark_mask:
    description:
      - The bits of the packet and connection marks a share uses (one run of contiguous bits, at least 2).
        No other bit of either mark is changed. Choose bits no other tool on the host uses (Kubernetes uses
        C(0x4000) and C(0x8000), Tailscale C(0xff0000), wg-quick C(0xca6c)).
    type: str
    default: "0x3ff00000"
  local_ports:
    description:
      - On a share, the ports of the host's own services that carried connections may reach as they are
        (without DNAT); everything else that arrives on the carrier and was not DNAT'ed is dropped.
    type: list
    elements: dict
    default: []
    suboptions:
      proto:
        description: V(tcp), V(udp) or V(both).
        type: str
        default: tcp
        choices: [tcp, udp, both]
      port:
        description: The port, or a range V(N-M).
        type: raw
        required: true
  persist_path:
    description:
      - Where to write the share's rule set as a boot script (as M(wgsp.service_proxy.wg_dnat)'s
        O(wgsp.service_proxy.wg_dnat#module:persist_path)); removed with O(state=absent) or on a proxy.
    type: path
  rule_set:
    description: The name of the share's firewall rule set (1-12 characters from C(a-z 0-9 _)). Unused on a proxy, where any set of that name is removed.
    type: str
    default: carrier
  backend:
    description: The firewall of the rule set, as in M(wgsp.service_proxy.wg_dnat).
    type: str
    default: auto
    choices: [auto, iptables, nftables]
  state:
    description: V(absent) removes the device, its rules, its routes and its rule set.
    type: str
    default: present
    choices: [present, absent]
notes:
  - O(table) and O(mark_mask) define what the carrier owns - to change them, remove the carrier first (O(state=absent)
    with the old values); a run with new values leaves the rules and routes of the old range alone.
  - A second carrier on the same host needs its own O(name), O(table) range, O(priority), O(rule_set), and another
    O(vni) or O(port).
  - The service must route replies to public addresses back through the share, as a container on the
    share's Docker network or a service of the share host itself does.
  - A share whose firewall's INPUT policy drops must let the carrier's UDP port in from its proxies' tunnel addresses.
  - The carrier is not persisted by this module - the roles re-create it with the tunnel at boot
    (RV(boot_commands) on the interface's wg-quick C(PostUp) and C(PreDown) lines).
seealso:
  - module: wgsp.service_proxy.wg_dnat
  - module: wgsp.service_proxy.wg_filter
"""

EXAMPLES = r"""
- name: On the proxy - publish 80 to share 10.7.0.2 with the client's own address
  wgsp.service_proxy.wg_carrier:
    name: wg0c
    interface: wg0
    side: proxy
    local: 10.7.0.3
    peers: [10.7.0.2]
    flows:
      - {in_interface: eth0, proto: tcp, port: 80, to_address: 10.7.0.2}

- name: On the share - carry connections from two proxies and route each reply back through its proxy
  wgsp.service_proxy.wg_carrier:
    name: wg0c
    interface: wg0
    side: share
    local: 10.7.0.2
    peers: [10.7.0.3, 10.7.0.4]

- name: Remove it
  wgsp.service_proxy.wg_carrier:
    name: wg0c
    interface: wg0
    side: share
    state: absent
"""

RETURN = r"""
device:
  description: The carrier device as declared (null with O(state=absent)).
  returned: always
  type: dict
  sample: {name: wg0c, mac: "02:00:0a:07:00:02", vni: 7700, port: 4789, local: 10.7.0.2}
peers:
  description: Each peer's address and MAC, and on a share its mark and table.
  returned: always
  type: list
  elements: dict
  sample: [{address: 10.7.0.3, mac: "02:00:0a:07:00:03", mark: "0x300000", table: 5203}]
flows:
  description: The flows, normalised.
  returned: always
  type: list
  elements: dict
plan:
  description: What changed (or would change), one line each.
  returned: always
  type: list
  elements: str
  sample: ["create device wg0c (vxlan id 7700 local 10.7.0.2 dstport 4789)", "add fdb 02:00:0a:07:00:03 dst 10.7.0.3"]
rules:
  description: The carrier's policy rules as declared, like C(ip rule) prints them.
  returned: always
  type: list
  elements: str
  sample: ["5200: from all fwmark 0x300000/0x3ff00000 lookup 5203 proto 88", "32768: from all iif wg0c lookup 5200 proto 88"]
routes:
  description: The carrier's routes as declared.
  returned: always
  type: list
  elements: str
  sample: ["default via 10.7.0.3 dev wg0c table 5203 proto 88 onlink", "10.7.0.3/32 dev wg0 table 5203 proto 88"]
backend:
  description: The firewall backend of the rule set (null when no firewall tool was needed).
  returned: always
  type: str
rule_set:
  description: The share's rule set's plan (its lines are in the diff).
  returned: always
  type: list
  elements: str
persist_path:
  description: The boot script of the rule set (path, changed, removed); null without O(persist_path).
  returned: always
  type: dict
boot_commands:
  description:
    - The wg-quick lines that bring the carrier back with the tunnel (C(post_up)) and remove it with it
      (C(pre_down)); no line fails, so a carrier that cannot come back never takes the tunnel down.
  returned: always
  type: dict
  sample: {post_up: ["ip link add wg0c type vxlan id 7700 local 10.7.0.2 dstport 4789 nolearning && ..."], pre_down: ["ip link del wg0c || true"]}
"""

from ansible_collections.wgsp.service_proxy.plugins.module_utils._carrier import ARGUMENT_SPEC, apply_carrier  # noqa: E402
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import WgspError, fail_from_error  # noqa: E402
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.module import WgspModule  # noqa: E402
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.runner import CommandRunner  # noqa: E402


def main():
    module = WgspModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    try:
        result = apply_carrier(module.params, CommandRunner(module), check_mode=module.check_mode,
                               want_diff=module._diff)
    except WgspError as exc:  # ValidationError included
        fail_from_error(module, exc)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
