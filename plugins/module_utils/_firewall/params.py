# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument specs of the firewall modules and the one ``params -> rules`` path.

The modules (``wg_dnat``, ``wg_filter``) build their ``AnsibleModule`` from the specs here, and
``backend.rule_set_status`` reads a role's recorded parameters through the same specs and
the same functions, so a module run and a status report can never compute different rules.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import os
import socket

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.module_utils.common.text.converters import to_native
from ansible.module_utils.errors import UnsupportedError

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import (
    ValidationError,
    WgspError,
    describe,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.checks import (
    check_docker_name,
    check_no_control,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.files import check_script_path
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.filter import validate_filter
from ansible_collections.wgsp.service_proxy.plugins.module_utils._carrier import ARGUMENT_SPEC as CARRIER_ARGUMENT_SPEC
from ansible_collections.wgsp.service_proxy.plugins.module_utils._relay.manage import RELAY_ARGUMENT_SPEC
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.containers import DockerResolver
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.rules import (
    check_set_name,
    listen_ports_from_wg,
    resolve_specs,
    validate_specs,
)

DNAT_RULE_OPTIONS = dict(
    proto=dict(type="str", choices=["tcp", "udp", "both", "all"], default="tcp"),
    in_interface=dict(type="str"),
    port=dict(type="raw", required=True),
    to_address=dict(type="str"),
    to_container=dict(type="str"),
    to_port=dict(type="raw"),
    out_interface=dict(type="str"),
    masquerade=dict(type="bool"),
    sources=dict(type="list", elements="str"),
    log=dict(type="bool"),
)

DNAT_ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    backend=dict(type="str", choices=["auto", "iptables", "nftables"], default="auto"),
    rules=dict(type="list", elements="dict", default=[], options=DNAT_RULE_OPTIONS,
               mutually_exclusive=[["to_address", "to_container"]],
               required_one_of=[["to_address", "to_container"]]),
    compact_rules=dict(type="list", elements="str", default=[]),
    in_interface=dict(type="str"),
    out_interface=dict(type="str"),
    masquerade=dict(type="bool", default=False),
    sources=dict(type="list", elements="str", default=[]),
    log=dict(type="bool", default=False),
    protect_ports=dict(type="list", elements="int", default=[]),
    docker_network=dict(type="str"),
    docker_host=dict(type="str"),
    flush_conntrack=dict(type="bool", default=True),
    persist_path=dict(type="path"),
)

FILTER_ALLOW_OPTIONS = dict(
    proto=dict(type="str", choices=["tcp", "udp", "both", "icmp"], default="tcp"),
    port=dict(type="raw"),
    sources=dict(type="list", elements="str", default=[]),
    destinations=dict(type="list", elements="str", default=[]),
)

FILTER_ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    backend=dict(type="str", choices=["auto", "iptables", "nftables"], default="auto"),
    hook=dict(type="str", choices=["input", "forward"], default="input"),
    in_interface=dict(type="str"),
    out_interface=dict(type="str"),
    allow=dict(type="list", elements="dict", default=[], options=FILTER_ALLOW_OPTIONS),
    policy=dict(type="str", choices=["drop", "reject", "accept", "continue"], default="drop"),
    established=dict(type="bool", default=True),
    log=dict(type="bool", default=False),
    log_accepted=dict(type="bool", default=False),
    persist_path=dict(type="path"),
)

# every module whose parameters a role records as a rule set (a relay set and a carrier beside the firewall's)
ARGUMENT_SPECS = {"wg_dnat": DNAT_ARGUMENT_SPEC, "wg_filter": FILTER_ARGUMENT_SPEC, "wg_relay": RELAY_ARGUMENT_SPEC,
                  "wg_carrier": CARRIER_ARGUMENT_SPEC}
DNAT_DEFAULT_KEYS = ("in_interface", "out_interface", "masquerade", "sources", "log")


def _plain(value):
    """``value`` as plain dicts and lists. A filter on the controller is handed ansible-core's lazy
    containers, and the validator's deep copy of one templates it again from the whole variable
    context (a third of site.yml's controller time, bench/results/site.md); copying it once here
    renders each value once."""
    if isinstance(value, dict):
        return dict((k, _plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def module_params(module_name, params):
    """A module's parameters as the module sees them, judged by ansible-core's own
    ``ArgumentSpecValidator`` against the module's spec (defaults, types, choices, suboptions,
    required and mutually exclusive options), so a recorded rule set and a module run can never
    read the same parameters differently.

    ``params`` is exactly what a role passed to the module; the first problem core reports
    raises a ``ValidationError`` naming the option.
    """
    if module_name not in ARGUMENT_SPECS:
        raise ValidationError("module", "must be one of %s (got %s)" % (
            ", ".join(sorted(ARGUMENT_SPECS)), describe(module_name)))
    if not isinstance(params, dict):
        raise ValidationError("params", "must be a dict of %s options" % module_name)
    params = dict((k, _plain(v)) for k, v in params.items() if not str(k).startswith("_ansible"))
    result = ArgumentSpecValidator(ARGUMENT_SPECS[module_name]).validate(params)
    if result.error_messages:
        problem = to_native(result.error_messages[0])
        if isinstance(result.errors.errors[0], UnsupportedError):
            problem = "unsupported parameter %s" % problem
        raise ValidationError(module_name, problem)
    return result.validated_parameters


def check_persist_path(field, value):
    """An absolute path that is safe on a wg-quick ``PostUp = sh <path>`` line (``check_script_path``)."""
    if value is None:
        return None
    text = check_script_path(field, value)
    if os.path.isdir(text):
        raise ValidationError(field, "%s is a directory" % text)
    return text


def local_networks():
    """The IPv4 networks of this host's interfaces (``ipaddress`` networks); ``[]`` when unknown."""
    try:
        from pyroute2 import IPRoute
    except ImportError:
        return []
    networks = []
    try:
        ipr = IPRoute()
        try:
            for msg in ipr.get_addr(family=socket.AF_INET):
                local = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
                if local:
                    networks.append(ipaddress.ip_interface("%s/%d" % (local, msg["prefixlen"])).network)
        finally:
            ipr.close()
    except Exception:  # noqa: BLE001 - only a refinement of the target check
        return []
    return networks


# ---------------------------------------------------------------------------------------------
# wg_dnat


def dnat_specs(params, runner, networks=()):
    """Validate the rules of ``wg_dnat`` parameters (no container resolved yet); returns RuleSpecs."""
    defaults = dict((key, params[key]) for key in DNAT_DEFAULT_KEYS)
    if params.get("docker_network") is not None:
        check_docker_name("docker_network", params["docker_network"], what="Docker network")
    check_no_control("docker_host", params.get("docker_host"))
    rules_in = []
    for i, rule in enumerate(params["rules"] or []):
        if not isinstance(rule, dict):
            raise ValidationError("rules[%d]" % i, "must be a dict")
        rules_in.append(dict((k, v) for k, v in rule.items() if v is not None))
    return validate_specs(rules_in, params["compact_rules"], defaults, params["protect_ports"],
                          listen_ports_from_wg(runner), networks)


def docker_resolver_factory(params):
    """The default resolver: the ``docker`` SDK on ``docker_host`` or the environment's engine."""
    try:
        import docker
        from docker.errors import NotFound
    except ImportError as exc:
        raise WgspError("to_container needs the docker Python SDK (python3-docker): %s" % exc)
    try:
        client = (docker.DockerClient(base_url=params["docker_host"]) if params.get("docker_host")
                  else docker.from_env())
    except Exception as exc:  # noqa: BLE001 - the SDK raises several types
        raise WgspError("to_container: cannot reach the Docker API: %s" % exc)
    return DockerResolver(client, network=params.get("docker_network") or None, not_found=(NotFound,))


def dnat_rules(params, runner, resolver_factory=None, networks=()):
    """``wg_dnat`` parameters (defaults applied) -> the normalised Rule list the module installs.

    ``resolver_factory(params) -> resolver`` is called only when a rule names a container, after
    every rule validated. ``networks``: the host's connected networks (``local_networks()``), whose
    broadcast addresses are refused as targets. ``state=absent`` -> ``[]``.
    """
    check_set_name(params["name"])
    check_persist_path("persist_path", params.get("persist_path"))
    if params["state"] != "present":
        return []
    specs = dnat_specs(params, runner, networks)
    resolver = None
    if any(spec.container is not None for spec in specs):
        resolver = (resolver_factory or docker_resolver_factory)(params)
    return resolve_specs(specs, resolver)


def _installed_targets(spec, installed):
    """Addresses the installed DNAT mappings of this rule point at (matched on proto/iif/ports)."""
    found = set()
    for family, proto, iif, port, address, to_port in installed.mappings:
        if proto in spec.protos and iif == spec.in_interface and port == spec.port and to_port == spec.to_port:
            found.add(address)
    return sorted(found)


def dnat_rules_status(params, runner, installed, resolver_factory=None):
    """Like ``dnat_rules`` but never fails on a container: returns ``(rules, containers)``.

    A container that cannot be resolved is reported (``resolved: None``, ``error``) and its rule
    is expected at the address it is installed with (or left out when it is not installed), so the
    rest of the set is still compared.
    """
    check_set_name(params["name"])
    if params["state"] != "present":
        return [], []
    specs = dnat_specs(params, runner)
    resolver, resolver_error = None, None
    if any(spec.container is not None for spec in specs):
        try:
            resolver = (resolver_factory or docker_resolver_factory)(params)
        except WgspError as exc:
            resolver_error = exc.msg
    containers, usable, answers = [], [], {}
    for spec in specs:
        if spec.container is None:
            usable.append(spec)
            continue
        targets = _installed_targets(spec, installed)
        entry = {"container": spec.container, "rule": spec.field, "resolved": None, "installed": targets,
                 "stale": True}
        if resolver is None:
            entry["error"] = resolver_error
        else:
            try:
                answers[spec.container] = resolver(spec.container)
                entry["resolved"] = answers[spec.container][0]
            except WgspError as exc:
                entry["error"] = exc.msg
        if entry["resolved"] is not None:
            entry["stale"] = any(ip != entry["resolved"] for ip in targets)
            usable.append(spec)
        elif targets:
            answers[spec.container] = (targets[0], params.get("docker_network") or None)
            usable.append(spec)
        containers.append(entry)
    rules = resolve_specs(usable, lambda name: answers[name])
    return rules, containers


# ---------------------------------------------------------------------------------------------
# wg_filter


def filter_rules(params):
    """``wg_filter`` parameters (defaults applied) -> ``[FilterSet]`` (``[]`` for state=absent)."""
    check_persist_path("persist_path", params.get("persist_path"))
    fset = validate_filter(params)
    return [fset] if fset is not None else []
