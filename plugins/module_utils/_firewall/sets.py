# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Several rule sets of one host in one module call - ``wg_rule_sets``, and ``wg_interface``'s
``rule_sets`` (the host's sets in the same round trip as its tunnel): every set judged first, then
each applied in its own transaction, exactly as its own module would.

Internal to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import sys

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import (
    ValidationError,
    WgspError,
    describe,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.backend import (
    MODULE_KINDS,
    apply_rule_set,
    check_persist,
    set_result,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._relay.manage import Plan, apply as apply_relay
from ansible_collections.wgsp.service_proxy.plugins.module_utils._carrier import Carrier, apply_carrier
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.params import (
    dnat_rules,
    filter_rules,
    local_networks,
    module_params,
)

# the set kinds that are not a firewall rule set of their own (their key among the sets of one call)
OWN_KINDS = {"wg_relay": "relay", "wg_carrier": "carrier"}

# the ``rule_sets`` option (documented in the ``rule_sets`` doc fragment)
RULE_SETS_OPTION = dict(type="list", elements="dict", options=dict(
    module=dict(type="str", required=True, choices=sorted(list(MODULE_KINDS) + list(OWN_KINDS))),
    name=dict(type="str"),
    params=dict(type="dict", required=True),
))


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
    for index, entry in enumerate(entries or []):
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


class SetsFailed(WgspError):
    """Applying a set failed: ``done`` holds the results of the sets applied before it."""

    def __init__(self, msg, done, **details):
        super(SetsFailed, self).__init__(msg, **details)
        self.done = done


def apply_sets(prepared, module, runner):
    """Apply the prepared sets in order (``module``: the AnsibleModule, for check mode, diff and
    commands): ``(results, diffs)``, one result per set with its ``module`` and ``name``. Raises
    ``SetsFailed`` naming the set that failed; the sets before it stay applied."""
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
            raise SetsFailed("rule set %s (%s): %s" % (params["name"], module_name, exc.msg), done, **exc.details)
        diff = output.pop("diff", None)
        if diff is not None:
            diffs.extend(diff if isinstance(diff, list) else [diff])
        done.append(dict(output, module=module_name, name=params["name"]))
    return done, diffs
