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

import sys  # noqa: E402

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.module import WgspModule  # noqa: E402
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.runner import CommandRunner  # noqa: E402
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import (  # noqa: E402
    ValidationError,
    WgspError,
    describe,
    fail_from_error,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.backend import (  # noqa: E402
    MODULE_KINDS,
    apply_rule_set,
    check_persist,
    set_result,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._relay.manage import Plan, apply as apply_relay  # noqa: E402
from ansible_collections.wgsp.service_proxy.plugins.module_utils._carrier import Carrier, apply_carrier  # noqa: E402
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.params import (  # noqa: E402
    dnat_rules,
    filter_rules,
    local_networks,
    module_params,
)

# the set kinds that are not a firewall rule set of their own (their key among the sets of one call)
OWN_KINDS = {"wg_relay": "relay", "wg_carrier": "carrier"}

ARGUMENT_SPEC = dict(
    rule_sets=dict(type="list", elements="dict", required=True, options=dict(
        module=dict(type="str", required=True, choices=sorted(list(MODULE_KINDS) + list(OWN_KINDS))),
        name=dict(type="str"),
        params=dict(type="dict", required=True),
    )),
)


def _in_entry(index, exc):
    """``exc`` raised for set ``index``, its field placed under ``rule_sets[index].params``."""
    where = "rule_sets[%d]" % index
    if not isinstance(exc, ValidationError):
        return WgspError("%s: %s" % (where, exc.msg), **exc.details)
    problem = exc.msg[len(exc.field) + 2:] if exc.msg.startswith(exc.field + ": ") else exc.msg
    # module_params names the module itself when the spec refuses a value: that is the params dict
    inner = "" if exc.field in MODULE_KINDS or exc.field in OWN_KINDS else "." + exc.field
    details = dict((k, v) for k, v in exc.details.items() if k != "field")
    return ValidationError("%s.params%s" % (where, inner), problem, **details)


def prepare(entries, runner):
    """Judge every set before anything changes: ``[(module_name, params, rules)]``. Raises
    ``ValidationError`` naming ``rule_sets[i]...``."""
    prepared, seen, networks = [], {}, None
    for index, entry in enumerate(entries):
        module_name = entry["module"]
        try:
            params = module_params(module_name, entry["params"])
        except WgspError as exc:
            raise _in_entry(index, exc)
        if entry.get("name") is not None and entry["name"] != params["name"]:
            raise ValidationError("rule_sets[%d].name" % index, "is %s but params.name is %s" % (
                describe(entry["name"]), describe(params["name"])))
        key = (MODULE_KINDS.get(module_name) or OWN_KINDS[module_name], params["name"])
        if key in seen:
            raise ValidationError("rule_sets[%d].params.name" % index, "set %s (%s) is already rule_sets[%d]" % (
                describe(params["name"]), module_name, seen[key]))
        seen[key] = index
        try:
            if module_name == "wg_relay":
                prepared.append((module_name, params, Plan(params)))
                continue
            if module_name == "wg_carrier":
                prepared.append((module_name, params, Carrier(params)))
                continue
            if module_name == "wg_dnat":
                if networks is None:
                    networks = local_networks()
                rules = dnat_rules(params, runner, networks=networks)
            else:
                rules = filter_rules(params)
            check_persist(module_name, params["name"], params["persist_path"], params["state"])
        except WgspError as exc:
            raise _in_entry(index, exc)
        prepared.append((module_name, params, rules))
    return prepared


def main():
    module = WgspModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    runner = CommandRunner(module)
    try:
        prepared = prepare(module.params["rule_sets"], runner)
    except WgspError as exc:
        fail_from_error(module, exc)
    done, diffs = [], []
    for module_name, params, rules in prepared:
        try:
            if module_name == "wg_relay":  # ``rules`` is the relay's Plan
                output = apply_relay(rules, module.run_command, sys.executable,
                                     check_mode=module.check_mode, want_diff=module._diff)
            elif module_name == "wg_carrier":  # ``rules`` is the validated Carrier; the call judges it again
                output = apply_carrier(params, runner, check_mode=module.check_mode, want_diff=module._diff)
            else:
                output, result = apply_rule_set(
                    module_name, params, rules, runner, check_mode=module.check_mode, want_diff=module._diff,
                    conntrack=module_name == "wg_dnat" and params["flush_conntrack"])
                output = set_result(module_name, output, rules, result)
        except WgspError as exc:
            exc = WgspError("rule set %s (%s): %s" % (params["name"], module_name, exc.msg), **exc.details)
            fail_from_error(module, exc, rule_sets=done, changed=any(item["changed"] for item in done))
        diff = output.pop("diff", None)
        if diff is not None:
            diffs.extend(diff if isinstance(diff, list) else [diff])
        done.append(dict(output, module=module_name, name=params["name"]))
    changed = [item["name"] for item in done if item["changed"]]
    result = dict(changed=bool(changed), changed_sets=changed, rule_sets=done)
    if module._diff:
        result["diff"] = diffs
    module.exit_json(**result)


if __name__ == "__main__":
    main()
