# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The last step of a converge, which wg_host and wg_interface both take: boot units, then the status record."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    DOCUMENTATION = r"""
options:
  record:
    description:
      - The declared state of an interface (mode, services, ports, rule sets with the arguments their module
        ran with), written as JSON with sorted keys to O(record_path), for M(wgsp.service_proxy.wg_status).
        Never give it a secret.
      - Written last, after every other change of the call succeeded, so a failed run leaves the previous
        record in place. Unset leaves the record alone.
    type: dict
  record_path:
    description:
      - The record's file (0644; its directory is created 0755 when missing). Required with O(record).
    type: path
  boot_units:
    description:
      - systemd units to enable at boot (for example V(wg-quick@wg0)), only where systemd runs the host
        (C(/run/systemd/system) exists); elsewhere (containers, chroots) they are left alone and not reported
        as changed.
      - A unit C(systemctl is-enabled) reports C(enabled) (or C(static), C(indirect), C(generated), C(alias))
        is left alone; any other (C(disabled), C(enabled-runtime), ...) is enabled with C(systemctl enable),
        which fails clearly for a masked or missing unit. Nothing is started or stopped.
      - The units are enabled after every other change of the call, before the record is written.
      - "Each a unit name: 1-255 characters from C(a-z A-Z 0-9 : _ . @ -), not starting with C(-)."
    type: list
    elements: str
    default: []
"""
