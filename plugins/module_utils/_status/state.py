# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The state file a role records for ``wg_status`` (``<state_dir>/<interface>.json``): what the host
was declared to be (mode, hub, services, rule sets).

Internal to the collection. The file holds no key.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import json
import os

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import WgspError


STATE_VERSION = 1
MODES = ("server", "share", "proxy")
RULE_MODULES = ("wg_dnat", "wg_filter", "wg_relay", "wg_carrier")
_LIST_KEYS = ("address", "access_services", "public_ports", "shared_services", "host_services",
              "external_forwards", "clients", "allowed_flows", "rule_sets")


class StateFileError(WgspError):
    """The state file exists but cannot be used (bad JSON, unknown version, wrong shape)."""


def state_path(state_dir, interface):
    return os.path.join(state_dir, "%s.json" % interface)


def parse_state(text, path, interface):
    """Parse and check a state file's text; returns a normalised dict.

    Errors name the file and the field, never echo the whole content.
    """
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise StateFileError("state file %s is not valid JSON (%s); re-run the role to rewrite it" % (path, exc),
                             path=path)
    if not isinstance(data, dict):
        raise StateFileError("state file %s must hold a JSON object, not %s" % (path, type(data).__name__), path=path)
    version = data.get("version")
    if version != STATE_VERSION:
        raise StateFileError(
            "state file %s has version %r; this wg_status reads version %d. Update the collection on the "
            "controller (or re-run the role that wrote the file) so both agree" % (path, version, STATE_VERSION),
            path=path, version=version)
    mode = data.get("client_mode")
    if mode not in MODES:
        raise StateFileError("state file %s: client_mode must be one of %s (got %r)" % (path, ", ".join(MODES), mode),
                             path=path)
    if data.get("interface") not in (None, interface):
        raise StateFileError("state file %s belongs to interface %r, not %r" % (path, data.get("interface"), interface),
                             path=path)
    state = dict(data)
    state["interface"] = interface
    for key in _LIST_KEYS:
        value = state.get(key)
        if value is None:
            value = []
        elif isinstance(value, (str, dict)):
            value = [value]
        if not isinstance(value, list):
            raise StateFileError("state file %s: %s must be a list" % (path, key), path=path)
        state[key] = value
    for key in ("access_services", "public_ports", "shared_services", "host_services", "external_forwards"):
        for i, item in enumerate(state[key]):
            if not isinstance(item, dict):
                raise StateFileError("state file %s: %s[%d] must be an object" % (path, key, i), path=path)
    for i, item in enumerate(state["rule_sets"]):
        if not isinstance(item, dict) or item.get("module") not in RULE_MODULES or not isinstance(item.get("params"), dict):
            raise StateFileError("state file %s: rule_sets[%d] must be {module: %s, name, params: {...}}"
                                 % (path, i, "|".join(RULE_MODULES)), path=path)
        item.setdefault("name", item["params"].get("name"))
    state["public_exposure"] = bool(state.get("public_exposure", bool(state["public_ports"])))
    return state


def load_state(path, interface):
    """The state file as a dict, or ``None`` when there is none (the interface is unmanaged)."""
    try:
        with open(path, "r") as handle:
            text = handle.read()
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise StateFileError("cannot read state file %s: %s" % (path, exc.strerror), path=path)
    return parse_state(text, path, interface)
