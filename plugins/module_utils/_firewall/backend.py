# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backend selection and the one pipeline of ``wg_dnat`` (also the entry points for ``wg_status``).

Public functions:

- ``select_backend(name, runner)`` -> backend object (``auto``: iptables when Docker's chains
  exist or ``nft`` is missing, else nftables);
- ``backend.installed(set_name)`` -> ``Installed`` (entries with packet/byte counters);
- ``backend.render(set_name, rules, installed)`` -> ``Desired``;
- ``drift(installed, desired)`` (from ``state``) -> missing/extra rules and jumps;
- ``RuleSet(...).run(check_mode)``: read -> plan -> (check mode stops) -> apply -> read back;
- ``lock.set_lock(kind, set_name)``: the lock a module holds around ``RuleSet.run`` and the boot script,
  so two runs of one set take turns (the second sees the first one's result);
- ``rule_set_status(module_name, params, runner, resolver_factory=None)``: the read-only report
  of one recorded rule set (for ``wg_status``), computed through the module's own argspec and
  ``params -> rules`` function (``params``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import ValidationError, WgspError, fail_from_error
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall import (
    params as _fw_params,
    persist as _fw_persist,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.carrier import (
    CarrierIptablesBackend,
    CarrierNftablesBackend,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.filter import (
    FilterIptablesBackend,
    FilterNftablesBackend,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.iptables import IptablesBackend
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.nftables import NftablesBackend
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.lock import set_lock
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.rules import check_set_name
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.state import drift, render_lines


BACKENDS = ("auto", "iptables", "nftables")
# A port range longer than this is cleaned from conntrack by address only (one call, not one per port).
CONNTRACK_PER_PORT_LIMIT = 32

# The backend classes of each kind of rule set: (iptables, nftables).
KINDS = {
    "dnat": (IptablesBackend, NftablesBackend),
    "filter": (FilterIptablesBackend, FilterNftablesBackend),
    "carrier": (CarrierIptablesBackend, CarrierNftablesBackend),
}
MODULE_KINDS = {"wg_dnat": "dnat", "wg_filter": "filter"}


def select_backend(name, runner, which=None, kind="dnat"):
    """Return ``(backend, other)``: the backend to use and the other one (for cleaning leftovers).

    ``kind`` picks the rule-set family (``dnat`` for wg_dnat, ``filter`` for wg_filter); the
    ``auto`` rule is the same for all of them.
    """
    kwargs = {"which": which} if which else {}
    ipt_class, nft_class = KINDS[kind]
    ipt = ipt_class(runner, **kwargs)
    nft = nft_class(runner, **kwargs)
    if name not in BACKENDS:
        raise ValidationError("backend", "must be one of %s (got %r)" % (", ".join(BACKENDS), name))
    if name == "auto":
        if not nft.available():
            name = "iptables"
        elif ipt.available() and ipt.docker_chains():
            name = "iptables"
        else:
            name = "nftables"
    chosen, other = (ipt, nft) if name == "iptables" else (nft, ipt)
    if not chosen.available():
        raise WgspError("backend %s is not usable: its tools are not installed" % name)
    return chosen, (other if other.available() else None)


def stale_mappings(installed, desired):
    """DNAT mappings installed before that the desired state no longer has (target changed/removed)."""
    return sorted(installed.mappings - desired.mappings, key=repr)


def interface_addresses(runner, ifname, family):
    """The addresses of ``ifname`` in ``family`` (4/6) as ``ip -j addr`` prints them; ``[]`` when unknown."""
    try:
        rc, out, _err = runner.run(["ip", "-j", "-%d" % family, "addr", "show", "dev", ifname], check=False)
    except WgspError:
        return []
    if rc != 0:
        return []
    try:
        links = json.loads(out or "[]")
    except ValueError:
        return []
    found = []
    for link in links if isinstance(links, list) else []:
        for info in link.get("addr_info") or []:
            if info.get("local") and info["local"] not in found:
                found.append(info["local"])
    return found


def conntrack_commands(mappings, addresses=None):
    """``conntrack -D`` argv lists removing the flows of stale DNAT mappings, and only this set's.

    Another set may DNAT the same protocol and port to the same target on another interface; its
    flows differ from ours only in the interface they arrived on, which conntrack does not record.
    They do differ in the original destination: clients address this host on the interface the
    rule matches. So for a mapping with an ``in_interface`` each address of that interface
    (``addresses(ifname, family)``) is one more filter (``--orig-dst``); with no address found
    nothing is deleted. A mapping without ``in_interface`` matches every interface and keeps the
    plain filter.
    """
    commands = []
    for family, proto, iif, port, to_address, _to_port in mappings:
        base = ["conntrack", "-D", "-f", "ipv%d" % family if family == 4 else "ipv6", "-p", proto]
        if iif is None:
            bases = [base]
        else:
            bases = [base + ["--orig-dst", addr] for addr in (addresses(iif, family) if addresses else [])]
        for head in bases:
            if port[1] - port[0] < CONNTRACK_PER_PORT_LIMIT:
                for number in range(port[0], port[1] + 1):
                    commands.append(head + ["--orig-port-dst", str(number), "--dst-nat", to_address])
            else:
                commands.append(head + ["--dst-nat", to_address])
    return commands


def flush_conntrack(runner, mappings, which):
    """Delete conntrack entries of stale mappings; "nothing found" is fine. Returns the argv run."""
    if not mappings or not which("conntrack"):
        return []
    done = []
    for argv in conntrack_commands(mappings, lambda ifname, family: interface_addresses(runner, ifname, family)):
        runner.run(argv, check=False)
        done.append(argv)
    return done


class RuleSet:
    """Manage one named rule set with one backend: the module's whole pipeline."""

    def __init__(self, runner, set_name, backend="auto", which=None, kind="dnat"):
        import shutil

        self.runner = runner
        self.set_name = check_set_name(set_name)
        self.which = which or shutil.which
        self.kind = kind
        self.backend, self.other = select_backend(backend, runner, which=self.which, kind=kind)
        self.desired = None

    def run(self, rules, state="present", check_mode=False, conntrack=True):
        """Bring the set to ``rules`` (``state=absent``: no rules, nothing left behind).

        Returns a dict: changed, backend, plan (actions), before/after lines, stale mappings,
        conntrack commands run.
        """
        rules = list(rules) if state == "present" else []
        installed = self.backend.installed(self.set_name)
        desired = self.backend.render(self.set_name, rules, installed)
        self.desired = desired
        plan = self.backend.plan(installed, desired)
        # Leftovers of this set under the other backend (e.g. nftables before Docker was installed).
        other_plan, other_installed = None, None
        if self.other is not None:
            other_installed = self.other.installed(self.set_name)
            if other_installed.present or other_installed.extra.get("table") or other_installed.extra.get("legacy"):
                other_plan = self.other.plan(other_installed, self.other.render(self.set_name, [], other_installed))
        foreign = self.backend.foreign(installed) + (self.other.foreign(other_installed) if other_installed else [])
        if foreign:
            raise WgspError(
                "set %s: refusing to change a chain or table of this set's name that this set did not write "
                "(its owner mark differs); nothing was changed: %s" % (self.set_name, "; ".join(foreign)),
                foreign=foreign)
        stale = stale_mappings(installed, desired)
        if other_installed is not None:
            stale = sorted(set(stale) | (other_installed.mappings - desired.mappings), key=repr)
        actions = list(plan.actions)
        if other_plan:
            actions.extend("%s: %s" % (self.other.name, a) for a in other_plan.actions)
        result = {
            "changed": bool(actions),
            "backend": self.backend.name,
            "plan": actions,
            "before": render_lines(installed) + (render_lines(other_installed) if other_plan else []),
            "after": render_lines(desired),
            "stale": stale,
            "conntrack": [],
            "applied": False,
        }
        if not actions or check_mode:
            return result
        if plan:
            self.backend.apply(plan)
        if other_plan:
            self.other.apply(other_plan)
        result["applied"] = True
        if conntrack:
            result["conntrack"] = flush_conntrack(self.runner, stale, self.which)
        after = self.backend.installed(self.set_name)
        remaining = drift(after, desired)
        if not remaining["in_sync"]:
            raise WgspError(
                "the %s rules of set %s differ from what was applied (read back): %s"
                % (self.backend.name, self.set_name, remaining), drift=remaining)
        result["after"] = render_lines(after)
        return result


def check_persist(module_name, set_name, path, state):
    """Check every file the set's boot script involves, before the firewall changes (``BootScripts``):
    the path's syntax and name limits, that whatever is there is this set's own boot script, and
    that the directories are writable. Raises ``ValidationError("persist_path")`` otherwise."""
    path = _fw_params.check_persist_path("persist_path", path)
    return _fw_persist.BootScripts(module_name, check_set_name(set_name), path, state)


def persist_rule_set(module_name, ruleset, path, state, check_mode=False, scripts=None):
    """Write (``present``) or remove (``absent``) the set's boot script at ``path`` after ``run``;
    ``absent`` also removes the boot scripts the set recorded, with or without ``path``.

    ``scripts``: the ``check_persist`` result made before ``run`` (made here when not given).
    Returns ``None`` when no file is involved, else ``{path, changed, removed, diff}``.
    """
    if scripts is None:
        scripts = check_persist(module_name, ruleset.set_name, path, state)
    content = None
    if state == "present" and scripts.path:
        content = _fw_persist.render_script(module_name, ruleset.set_name, ruleset.backend, ruleset.desired)
    return scripts.sync(content, check_mode=check_mode)


def module_output(result, persisted, label, want_diff):
    """The result keys wg_dnat and wg_filter share: changed (rules or boot script), backend, plan,
    applied, persist_path, and with ``want_diff`` a before/after of the set (plus each boot script's
    that changes: only this set's own files, whose content is ours)."""
    output = dict(
        changed=result["changed"] or bool(persisted and persisted["changed"]),
        backend=result["backend"],
        plan=result["plan"],
        applied=result["applied"],
        persist_path=dict(path=persisted["path"], changed=persisted["changed"],
                          removed=persisted["removed"]) if persisted else None,
    )
    if want_diff:
        diff = dict(
            before_header="%s %s (installed)" % (result["backend"], label),
            after_header="%s %s (desired)" % (result["backend"], label),
            before="".join(line + "\n" for line in result["before"]),
            after="".join(line + "\n" for line in result["after"]),
        )
        if persisted and persisted["diff"]:
            diff = [diff] + [dict(before_header=item["path"], after_header=item["path"],
                                  before=item["before"], after=item["after"]) for item in persisted["diff"]]
        output["diff"] = diff
    return output


def apply_rule_set(module_name, params, rules, runner, check_mode=False, want_diff=False, conntrack=False):
    """Bring one validated set (``params`` as its module's spec reads them, ``rules`` from its
    ``params -> rules`` function) to its state: holding the set's lock, check every boot-script path,
    plan and apply (in check mode only plan) the set in one transaction, write or remove its boot scripts.

    Returns ``(output, result)``: the result keys wg_dnat and wg_filter share (``module_output``) and
    the pipeline's own result. Raises ``WgspError``."""
    kind = MODULE_KINDS[module_name]
    with set_lock(kind, params["name"]):  # two runs of one set take turns
        ruleset = RuleSet(runner, params["name"], params["backend"], kind=kind)
        scripts = check_persist(module_name, params["name"], params["persist_path"], params["state"])
        result = ruleset.run(rules, state=params["state"], check_mode=check_mode, conntrack=conntrack)
        persisted = persist_rule_set(module_name, ruleset, params["persist_path"], params["state"],
                                     check_mode=check_mode, scripts=scripts)
    label = "%sset %s" % ("" if kind == "dnat" else kind + " ", params["name"])
    return module_output(result, persisted, label, want_diff), result


def set_result(module_name, output, rules, result):
    """``output`` plus the keys only one module returns: ``rules``, ``stale`` and ``conntrack`` (wg_dnat)
    or ``filter`` (wg_filter)."""
    output = dict(output)
    if MODULE_KINDS[module_name] == "dnat":
        output.update(rules=[rule.to_dict() for rule in rules], stale=[list(m) for m in result["stale"]],
                      conntrack=result["conntrack"])
    else:
        output["filter"] = rules[0].to_dict() if rules else None
    return output


def run_module(module, runner, module_name, rules_of, conntrack=False):
    """A ``wg_dnat`` / ``wg_filter`` run after argument parsing: validate (``rules_of(params)``, before
    anything changes), then ``apply_rule_set``.

    Returns ``(output, rules, result)``: the result keys both modules share (``module_output``), the
    rules and the pipeline's own result; a ``WgspError`` fails the module."""
    params = module.params
    try:
        # The same params -> rules path as rule_set_status (wg_status), so they cannot disagree.
        rules = rules_of(params)
        output, result = apply_rule_set(module_name, params, rules, runner, check_mode=module.check_mode,
                                        want_diff=module._diff, conntrack=conntrack)
    except WgspError as exc:
        fail_from_error(module, exc)
    return output, rules, result


def _status_lines(state):
    """Rules (by chain, in order) then jumps sorted: listings print jumps in their own order."""
    lines = render_lines(state)
    rules = [line for line in lines if not line.endswith("  (jump)")]
    return rules + sorted(line for line in lines if line.endswith("  (jump)"))


def rule_set_status(module_name, params, runner, resolver_factory=None, which=None):
    """Report one rule set against what its module would install, changing nothing.

    ``module_name``: ``"wg_dnat"`` or ``"wg_filter"``; ``params``: exactly what a role passed to
    that module (missing keys take the module's defaults); ``runner``: a ``CommandRunner`` (only
    read-only commands are run: ``*-save``, ``nft list``, ``wg show``); ``resolver_factory(params)``
    -> ``resolver(container) -> (address, network)`` (default: the Docker SDK).

    Returns ``{name, module, backend, present, in_sync, drift, expected, installed, counters,
    containers}``; ``in_sync`` is false when the rules drifted or a container's installed
    address is stale. Bad parameters raise ``ValidationError`` naming the field.
    """
    import shutil

    params = _fw_params.module_params(module_name, params)
    if module_name == "wg_relay":  # a relay set: its process and files, not a ruleset
        from ansible_collections.wgsp.service_proxy.plugins.module_utils._relay.manage import status as relay_status
        return relay_status(params)
    if module_name == "wg_carrier":  # a carrier: its device, rules and routes, and its own rule set
        from ansible_collections.wgsp.service_proxy.plugins.module_utils._carrier import status as carrier_status
        return carrier_status(params, runner)
    kind = MODULE_KINDS.get(module_name)
    if kind is None:
        raise ValidationError("module", "no rule set kind for %s" % module_name)
    name = check_set_name(params["name"])
    backend, _other = select_backend(params["backend"], runner, which=which or shutil.which, kind=kind)
    installed = backend.installed(name)
    containers = []
    if kind == "dnat":
        rules, containers = _fw_params.dnat_rules_status(params, runner, installed, resolver_factory)
    else:
        rules = _fw_params.filter_rules(params)
    desired = backend.render(name, rules, installed)
    report = drift(installed, desired)
    in_sync = report.pop("in_sync") and not any(c["stale"] for c in containers)
    counters = []
    for item in sorted(installed.rules_with_counters(), key=lambda item: (item["scope"], item["chain"])):
        if "packets" in item:
            counters.append({"rule": "%s %s: %s" % (item["scope"], item["chain"], item["rule"]),
                             "packets": item["packets"], "bytes": item["bytes"]})
    return {
        "name": name,
        "module": module_name,
        "backend": backend.name,
        "present": bool(installed.present or installed.extra.get("table") or installed.extra.get("legacy")),
        "in_sync": bool(in_sync),
        "drift": report,
        "expected": _status_lines(desired),
        "installed": _status_lines(installed),
        "counters": counters,
        "containers": containers,
    }
