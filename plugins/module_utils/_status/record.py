# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The last step of a converge, shared by ``wg_host`` and ``wg_interface``: systemd units enabled at
boot, then the status record (``<state_dir>/<interface>.json``) written. Both are judged before
anything changes and applied after every other change succeeded, so a failed run leaves the previous
record in place.

Internal to the collection. The record never holds a secret.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import re

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import (
    ValidationError,
    WgspError,
    describe,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.files import (
    atomic_write,
    check_abs_path,
    check_writable_dir,
    file_mode,
)

# the options both modules take, with the same meaning (documented in the ``record`` doc fragment)
RECORD_OPTIONS = dict(
    record=dict(type="dict"),
    record_path=dict(type="path"),
    boot_units=dict(type="list", elements="str", default=[]),
)

UNIT_RE = re.compile(r"^[A-Za-z0-9:_.@][A-Za-z0-9:_.@-]{0,254}$")

# What `systemctl is-enabled` prints for a unit that comes up at boot as it is (enabled-runtime does not).
BOOT_STATES = ("enabled", "static", "indirect", "generated", "alias")


def check_units(field, names):
    for index, name in enumerate(names):
        if not isinstance(name, str) or not UNIT_RE.match(name):
            raise ValidationError("%s[%d]" % (field, index), "%s is not a systemd unit name (1-255 characters from "
                                  "a-z A-Z 0-9 : _ . @ -, not starting with -)" % describe(name))
    return list(names)


def enable_units(module, units, check_mode):
    """Enable at boot each unit ``systemctl is-enabled`` does not report enabled; returns ``(changes, diff)``."""
    if not units:
        return [], []
    systemctl = module.get_bin_path("systemctl", required=True)
    changes, diff = [], []
    for unit in units:
        _rc, out, _err = module.run_command([systemctl, "is-enabled", "--", unit])
        state = out.strip() or "disabled"
        if state in BOOT_STATES:
            continue
        changes.append("boot_units:%s" % unit)
        diff.append({"before_header": "systemctl is-enabled %s" % unit, "after_header": "systemctl is-enabled %s" % unit,
                     "before": state + "\n", "after": "enabled\n"})
        if not check_mode:
            rc, out, err = module.run_command([systemctl, "enable", "--", unit])
            if rc != 0:
                raise WgspError("boot_units: systemctl enable %s failed (rc=%d, was %s): %s"
                                % (unit, rc, state, (err or out).strip()), field="boot_units", rc=rc)
    return changes, diff


def read_text(path):
    try:
        with open(path) as handle:
            return handle.read()
    except IOError:
        return None


def record_text(field, record):
    """The record as the roles always wrote it (Ansible's to_nice_json with sorted keys, a final newline)."""
    try:
        return json.dumps(record, indent=4, sort_keys=True, separators=(",", ": ")) + "\n"
    except (TypeError, ValueError) as exc:
        raise ValidationError(field, "must be JSON data (%s)" % exc)


class Files(object):
    """Whole files a module owns, planned first (each path judged before anything is written), then
    written only when their text or mode differs: ``changes`` (their option names) and ``diff``."""

    def __init__(self):
        self.files = []  # (option, path, wanted text, mode)
        self.changes = []
        self.diff = []

    def add(self, option, path, text, mode=0o644):
        path = check_abs_path(option, path)
        if os.path.isdir(path):
            raise ValidationError(option, "%s is a directory" % path)
        check_writable_dir(option, path)
        self.files.append((option, path, text, mode))

    def apply(self, check_mode):
        for option, path, text, mode in self.files:
            current = read_text(path)
            if current == text and file_mode(path) == mode:
                continue
            self.changes.append(option)
            self.diff.append({"before_header": path, "after_header": path,
                              "before": current if current is not None else "", "after": text})
            if not check_mode:
                atomic_write(path, text, mode)


class Record(object):
    """``record``/``record_path`` and ``boot_units`` of a module's params, judged on creation
    (``ValidationError`` naming the option); ``extra``: keys the module adds to the record. ``apply``
    enables the units (only where ``systemd`` runs the host), then writes the record. ``changes`` and
    ``diff`` say what changed."""

    def __init__(self, params, extra=None):
        self.units = check_units("boot_units", params["boot_units"])
        self.files = Files()
        if params["record"] is not None:
            if params["record_path"] is None:
                raise ValidationError("record_path", "is required with record")
            record = dict(params["record"], **(extra or {}))
            self.files.add("record_path", params["record_path"], record_text("record", record))
        elif params["record_path"] is not None:
            raise ValidationError("record", "is required with record_path")
        self.changes = []
        self.diff = []

    def apply(self, module, systemd, check_mode):
        unit_changes, unit_diff = enable_units(module, self.units if systemd else [], check_mode)
        self.files.apply(check_mode)
        self.changes = unit_changes + self.files.changes
        self.diff = unit_diff + self.files.diff
        return self.changes
