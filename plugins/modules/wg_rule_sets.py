#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: wg_rule_sets
short_description: Several wg_dnat, wg_filter, wg_relay and wg_carrier sets of one host in one call
version_added: 0.1.0
description:
  - Brings every listed rule set to its state in one module call, each exactly as
    M(wgsp.service_proxy.wg_dnat) or M(wgsp.service_proxy.wg_filter) would with the same
    parameters - the same argument specs, the same rules, chains, tables, owner marks, locks, boot
    scripts and results. A host with several rule sets (a proxy client publishes ports, filters its
    tunnel input and logs its access services) needs one round trip instead of one per set.
  - A C(wg_relay) set (the cross-family relay, IPv6 published to IPv4 targets) is brought to its state
    exactly as M(wgsp.service_proxy.wg_relay) would, in the same call; a C(wg_carrier) set (the path that
    keeps a public client's address) exactly as M(wgsp.service_proxy.wg_carrier) would.
  - Every set is validated first - its parameters against its module's argument spec, its rules, its
    boot-script paths, the containers its rules name - and nothing is changed when any of them is
    wrong; the error names the entry, e.g. C(rule_sets[1].params.allow[0].port).
  - Then the sets are applied in the order listed, each in its own transaction (one
    C(iptables-restore) per family or one C(nft -f)), holding that set's lock. When applying a set
    fails, the sets before it stay applied and the sets after it are not touched; the failure names
    the set and returns what was done in RV(rule_sets).
  - The boot scripts are the ones the single modules write (their header names C(wg_dnat) or
    C(wg_filter)), so moving from separate tasks to this module changes nothing on a converged host.
author:
  - wgsp.service_proxy contributors (@wgsp)
requirements:
  - iptables (C(iptables-save), C(iptables-restore), C(ip6tables-*)) or nftables (C(nft))
  - the C(docker) Python SDK, only when a C(wg_dnat) rule names a container
attributes:
  check_mode:
    support: full
    description: Plans every set (and its boot scripts), changes nothing.
  diff_mode:
    support: full
    description: Before/after lines of each set's rules and jumps, and of each boot script that changes.
  platform:
    support: full
    platforms: linux
    description: Linux only (netfilter).
options:
  rule_sets:
    description:
      - The rule sets, applied in this order. A set (its module and name) may appear once.
      - The same list a role records for M(wgsp.service_proxy.wg_status) (C(module), C(name), C(params)).
    type: list
    elements: dict
    required: true
    suboptions:
      module:
        description: The module whose parameters O(rule_sets[].params) are.
        type: str
        required: true
        choices: [wg_carrier, wg_dnat, wg_filter, wg_relay]
      name:
        description:
          - The set's name. Optional; when given it must equal the C(name) in O(rule_sets[].params).
        type: str
      params:
        description:
          - The set's parameters, exactly the options of the module named in O(rule_sets[].module)
            (with its defaults, types and checks), for example C(name), C(state), C(backend), C(rules) or
            C(allow), C(persist_path).
        type: dict
        required: true
notes:
  - Every option of M(wgsp.service_proxy.wg_dnat), M(wgsp.service_proxy.wg_filter), M(wgsp.service_proxy.wg_relay)
    and M(wgsp.service_proxy.wg_carrier)
    is documented on their pages; this module adds no option of its own to a set.
seealso:
  - module: wgsp.service_proxy.wg_dnat
  - module: wgsp.service_proxy.wg_filter
  - module: wgsp.service_proxy.wg_relay
  - module: wgsp.service_proxy.wg_carrier
  - module: wgsp.service_proxy.wg_status
"""

EXAMPLES = r"""
- name: Publish port 80 through the tunnel and restrict what arrives on it, in one call
  wgsp.service_proxy.wg_rule_sets:
    rule_sets:
      - module: wg_dnat
        params:
          name: public
          in_interface: eth0
          out_interface: wg0
          masquerade: true
          rules:
            - {proto: tcp, port: 80, to_address: 10.7.0.2}
          persist_path: /etc/wg-service-proxy/wg0-public.rules
      - module: wg_filter
        params:
          name: input
          hook: input
          in_interface: wg0
          allow:
            - {proto: tcp, port: 22}
            - {proto: icmp}
          persist_path: /etc/wg-service-proxy/wg0-input.rules

- name: Remove a set that is no longer wanted while keeping another
  wgsp.service_proxy.wg_rule_sets:
    rule_sets:
      - {module: wg_filter, params: {name: access, state: absent, hook: forward, out_interface: wg0}}
      - {module: wg_filter, params: {name: input, hook: input, in_interface: wg0, allow: [{proto: icmp}]}}
"""

RETURN = r"""
rule_sets:
  description:
    - One entry per set, in the order applied (on failure, the sets done before it).
    - Each holds the keys of its module's result (C(changed), C(backend), C(plan), C(applied),
      C(persist_path), and C(rules), C(stale), C(conntrack) for C(wg_dnat) or C(filter) for
      C(wg_filter); C(changes), C(running), C(pid), C(listening) for C(wg_relay); C(device), C(peers),
      C(flows), C(rules), C(routes), C(rule_set), C(boot_commands) for C(wg_carrier)) plus C(module) and C(name).
  returned: always
  type: list
  elements: dict
  sample:
    - {module: wg_dnat, name: public, changed: false, backend: iptables, plan: [], applied: false,
       persist_path: {path: /etc/wg-service-proxy/wg0-public.rules, changed: false, removed: []},
       rules: [], stale: [], conntrack: []}
    - {module: wg_filter, name: input, changed: true, backend: iptables, plan: ["ipv4: create chain WGSP-INPUT-IN"],
       applied: true, persist_path: null, filter: {}}
changed_sets:
  description: The names of the sets that changed (or would change, in check mode).
  returned: always
  type: list
  elements: str
  sample: [input]
"""

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.module import WgspModule  # noqa: E402
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.runner import CommandRunner  # noqa: E402
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import WgspError, fail_from_error  # noqa: E402
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.sets import (  # noqa: E402
    RULE_SETS_OPTION,
    SetsFailed,
    apply_sets,
    prepare,
)

ARGUMENT_SPEC = dict(rule_sets=dict(RULE_SETS_OPTION, required=True))


def main():
    module = WgspModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    runner = CommandRunner(module)
    try:
        done, diffs = apply_sets(prepare(module.params["rule_sets"], runner), module, runner)
    except SetsFailed as exc:
        fail_from_error(module, exc, rule_sets=exc.done, changed=any(item["changed"] for item in exc.done))
    except WgspError as exc:
        fail_from_error(module, exc)
    changed = [item["name"] for item in done if item["changed"]]
    result = dict(changed=bool(changed), changed_sets=changed, rule_sets=done)
    if module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
