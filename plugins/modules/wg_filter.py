#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: wg_filter
short_description: Owned, atomic filter sets (allow-list plus policy) on a WireGuard interface
version_added: 0.1.0
description:
  - Manages one named filter set as a whole. It applies to the traffic arriving on
    O(in_interface) for this host (O(hook=input)), or forwarded from O(in_interface) to
    O(out_interface) (O(hook=forward)); other interfaces are not affected.
  - The set accepts established/related traffic (O(established)), then what O(allow) lists
    (optionally logging each new connection it accepts, O(log_accepted)), and applies O(policy) to
    everything else of that interface, optionally logging it (O(log)).
  - "Uses: the hub isolates its clients (O(hook=forward), O(in_interface=wg0),
    O(out_interface=wg0), only the declared flows pass); a share client restricts what arrives on
    its tunnel (O(hook=input), O(in_interface=wg0)); a proxy client logs the connections it
    forwards to its access services (O(hook=forward), O(out_interface=wg0) alone,
    O(policy=continue), O(log_accepted=true))."
  - "iptables backend: one chain per set, C(WGSP-<NAME>-IN) (input) or C(WGSP-<NAME>-FLT)
    (forward), in the filter table of IPv4 and IPv6, reached by ONE jump from C(INPUT)
    (C(-i <in_interface>)) or C(FORWARD) (C(-i <in_interface> -o <out_interface>); from
    C(DOCKER-USER) when that chain exists), inserted only when missing. The chain ends with the
    policy. Every rule carries the comment C(wgsp-f:<name>). The chains never collide with a
    M(wgsp.service_proxy.wg_dnat) set of the same name (C(-PRE), C(-POST), C(-FWD)). Changes go in
    one C(iptables-restore --noflush) per family after C(--test) validated both."
  - "nftables backend: table C(inet wgsp-filter-<name>) (comment C(wgsp-f:<name>), its owner mark;
    never the same name as a M(wgsp.service_proxy.wg_dnat) table, C(inet wgsp-dnat-<name>)) with one
    base chain on the hook whose rules all match the interface(s), replaced in one C(nft -f)
    transaction after C(nft -c). A drop in this table is final; an accept here does not override a
    drop in another table. A table named C(inet wgsp_f_<name>) (its earlier name) that carries
    this set's owner mark is deleted in the same transaction."
  - A chain or table of the set's name that does not carry the set's owner mark (iptables - a chain
    with rules none of which has the comment C(wgsp-f:<name>); nftables - a table whose comment
    differs) is never replaced or deleted; the run fails before any change, naming it.
author:
  - wgsp.service_proxy contributors (@wgsp)
requirements:
  - iptables (C(iptables-save), C(iptables-restore), C(ip6tables-*)) or nftables (C(nft))
attributes:
  diff_mode:
    support: full
    description: Before/after lines of the set's rules and jump (and of the O(persist_path) script).
  platform:
    support: full
    platforms: linux
    description: Linux only (netfilter).
options:
  name:
    description:
      - Name of the filter set, 1-12 characters from C(a-z 0-9 _). It names the chain and the table.
    type: str
    required: true
  state:
    description:
      - V(present) makes the set exactly as described; V(absent) removes its chains, jumps, table
        and the boot scripts it wrote (O(persist_path), also the recorded ones without it).
    type: str
    choices: [present, absent]
    default: present
  hook:
    description:
      - V(input) filters traffic arriving on O(in_interface) for this host; V(forward) filters
        traffic forwarded from O(in_interface) (to O(out_interface) when set).
    type: str
    choices: [input, forward]
    default: input
  in_interface:
    description:
      - The interface the filtered traffic arrives on. Required when O(state=present), except with
        O(hook=forward) and O(out_interface) - the set then filters what is forwarded to
        O(out_interface) from any interface.
      - One interface name (1-15 characters from C(a-z A-Z 0-9 _ = . -), not C(.)/C(..), not starting with
        C(-)). Wildcards such as C(+) or C(eth+) are refused - iptables reads them as wildcards and nftables
        as literal names, so the same value would filter different traffic on the two backends.
    type: str
  out_interface:
    description:
      - With O(hook=forward), only traffic leaving on this interface is filtered (one name, no wildcard).
    type: str
  allow:
    description: What passes (evaluated after O(established)).
    type: list
    elements: dict
    default: []
    suboptions:
      proto:
        description: Protocol; V(both) is TCP and UDP; V(icmp) is ICMP for IPv4 and ICMPv6 for IPv6.
        type: str
        choices: [tcp, udp, both, icmp]
        default: tcp
      port:
        description: Destination port V(N) or range V(N-M); omit for any port. Not allowed with V(icmp).
        type: raw
      sources:
        description:
          - Source CIDRs; empty = any. One entry uses one address family.
          - V(0.0.0.0/0) (V(::/0)) means any IPv4 (IPv6) address; the entry then applies to that family
            only, with no address match installed. Host bits are cleared. IPv4-mapped IPv6 addresses
            (V(::ffff:192.0.2.1)) are refused; write the IPv4 form.
        type: list
        elements: str
        default: []
      destinations:
        description: Destination CIDRs; empty = any. The same forms as O(allow[].sources).
        type: list
        elements: str
        default: []
  policy:
    description:
      - What happens to the other traffic of that interface (and hook).
      - V(continue) decides nothing - the traffic goes on through the host's other rules (iptables -
        back to the chain that jumped to the set; nftables - the base chain's policy accept, which
        never overrides another table's drop). Use it for a set that only accepts and logs flows.
    type: str
    choices: [drop, reject, accept, continue]
    default: drop
  established:
    description: Accept packets of established and related connections first (replies of allowed flows).
    type: bool
    default: true
  log:
    description: Log what the policy drops or rejects (kernel log, 5 per minute, prefix C(wgsp-<name>)).
    type: bool
    default: false
  log_accepted:
    description:
      - Log each new connection an O(allow) entry accepts (kernel log, prefix C(wgsp-<name>-new), not
        rate-limited, one line per connection - its first packet, conntrack state NEW), an audit
        trail of the flows the set lets through. The log rules count packets too.
      - Kernel log lines of a network namespace other than the host's are dropped by the kernel
        unless C(net.netfilter.nf_log_all_netns=1); the counters still count.
    type: bool
    default: false
  persist_path:
    description:
      - With O(state=present), also write a POSIX C(sh) script to this absolute path that re-creates
        exactly this set without Ansible and can run any number of times (e.g. from the wg-quick
        config's C(PostUp = sh <persist_path>)). Same format as M(wgsp.service_proxy.wg_dnat)'s.
      - Written atomically with mode C(0644), only when its content changes; missing directories are
        created C(0755), whatever the umask. Removed with O(state=absent).
      - "The same rules as M(wgsp.service_proxy.wg_dnat)'s O(wgsp.service_proxy.wg_dnat#module:persist_path):
        only this set's own boot script (header line C(# Generated by wgsp.service_proxy.wg_filter:
        rule set <name> ...)) is replaced or removed; anything else at the path (a key, a foreign file,
        another set's script, a symbolic link, a directory), a directory that is not writable or a
        name over NAME_MAX (255 bytes) is refused before the firewall changes, naming
        O(persist_path); diff mode never shows another file's content."
      - The paths written are recorded in C(/var/lib/wgsp-service-proxy/boot-scripts/wg_filter.<name>);
        O(state=absent) removes every recorded script still carrying this set's header, also without
        O(persist_path).
      - At most 1024 characters from C(A-Z a-z 0-9 _ . , + @ = / -); C(..) is refused.
    type: path
notes:
  - The module never touches rules outside its own chains/table, and only inserts or deletes its own jump.
extends_documentation_fragment:
  - wgsp.service_proxy.rule_set
seealso:
  - module: wgsp.service_proxy.wg_dnat
"""

EXAMPLES = r"""
- name: Hub, isolate the clients (only the proxy may reach the share's port 80 through the hub)
  wgsp.service_proxy.wg_filter:
    name: isolate
    hook: forward
    in_interface: wg0
    out_interface: wg0
    allow:
      - {proto: tcp, port: 80, sources: [10.7.0.3], destinations: [10.7.0.2]}
    policy: drop
    log: true
    persist_path: /etc/wg-service-proxy/wg0-isolate.rules

- name: Share client, only SSH and ping arrive through the tunnel
  wgsp.service_proxy.wg_filter:
    name: input
    hook: input
    in_interface: wg0
    allow:
      - {proto: tcp, port: 22}
      - {proto: icmp}
    policy: drop

- name: Proxy client, log each new connection forwarded to an access service (decides nothing else)
  wgsp.service_proxy.wg_filter:
    name: access
    hook: forward
    out_interface: wg0
    established: false
    allow:
      - {proto: tcp, port: 80, destinations: [10.7.0.2]}
    policy: continue
    log_accepted: true

- name: Remove the set
  wgsp.service_proxy.wg_filter:
    name: input
    state: absent
"""

RETURN = r"""
backend:
  description: The backend used.
  returned: always
  type: str
  sample: iptables
filter:
  description: The normalised filter set (null with O(state=absent)).
  returned: always
  type: dict
  sample:
    name: isolate
    hook: forward
    in_interface: wg0
    out_interface: wg0
    policy: drop
    established: true
    log: false
    log_accepted: false
    allow: [{proto: tcp, port: 80, sources: [10.7.0.3/32], destinations: [10.7.0.2/32]}]
plan:
  description: The changes made (or, in check mode, that would be made).
  returned: always
  type: list
  elements: str
  sample: ["ipv4 filter: create chain WGSP-ISOLATE-FLT (3 rules, was 0)"]
applied:
  description: Whether a transaction was applied (false when nothing changed and in check mode).
  returned: always
  type: bool
persist_path:
  description:
    - The boot scripts written or removed; null when none is involved (no O(persist_path), and no
      recorded script for O(state=absent) to remove).
  returned: always
  type: dict
  contains:
    path:
      description: O(persist_path) (null when O(state=absent) removes recorded scripts without it).
      type: str
      returned: success
    changed:
      description: Whether a script or the record was (or, in check mode, would be) written or removed.
      type: bool
      returned: success
    removed:
      description: The boot scripts of this set removed (or, in check mode, that would be removed).
      type: list
      elements: str
      returned: success
  sample: {path: /etc/wg-service-proxy/wg0-isolate.rules, changed: false, removed: []}
"""


from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.module import WgspModule  # noqa: E402
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.runner import CommandRunner  # noqa: E402
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.backend import run_module, set_result  # noqa: E402
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.params import (  # noqa: E402
    FILTER_ARGUMENT_SPEC,
    filter_rules,
)

# One argument spec, shared with rule_set_status (module_utils/_firewall/params.py).
ARGUMENT_SPEC = FILTER_ARGUMENT_SPEC


def main():
    module = WgspModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    output, rules, result = run_module(module, CommandRunner(module), "wg_filter", filter_rules)
    module.exit_json(**set_result("wg_filter", output, rules, result))


if __name__ == "__main__":
    main()
