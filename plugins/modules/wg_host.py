#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: wg_host
short_description: The host side of a service proxy node - IP forwarding, the kernel's WireGuard, the status record
version_added: 0.1.0
description:
  - One call for what the roles used to do in a chain of small tasks, each a round trip to the host -
    reports whether the kernel has WireGuard and whether systemd runs, which of the packages the host
    needs are missing, turns IPv4 forwarding on now and after a reboot, and writes the record of the
    declared state that M(wgsp.service_proxy.wg_status) compares with.
  - Every part is optional; a call with none of them only reports.
  - Files are written with an atomic rename and only when their content or mode differs, so a second
    run changes nothing and writes nothing.
author:
  - wgsp.service_proxy contributors (@wgsp)
attributes:
  check_mode:
    support: full
    description: Reports what would change (with the diff) and writes nothing.
  diff_mode:
    support: full
    description: The forwarding file and the record, before and after. Neither ever holds a secret.
  platform:
    support: full
    platforms: linux
    description: Linux hosts (C(/proc/sys), C(/sys/module), C(/etc/sysctl.d)).
options:
  forwarding:
    description:
      - V(true) makes sure C(net.ipv4.ip_forward) is 1 now (written only when it is not, so a container
        whose engine set it and whose C(/proc/sys) is read-only is left alone) and after a reboot
        (O(sysctl_path)).
      - V(false) or unset leaves forwarding as it is (the file is not removed - another service on the
        host may rely on forwarding).
    type: bool
    default: false
  forwarding_ipv6:
    description:
      - V(true) does the same for IPv6, C(net.ipv6.conf.all.forwarding) (a dual-stack tunnel's hub, a proxy
        that publishes on IPv6); the same O(sysctl_path) keeps it after a reboot.
      - With IPv6 forwarding on, Linux ignores router advertisements on an interface whose C(accept_ra) is 1
        (a router takes none). A host that learns its own IPv6 address or default route by SLAAC must set
        C(accept_ra) to 2 on that interface, or it loses them when they expire.
      - V(false) or unset leaves IPv6 forwarding as it is.
    type: bool
    default: false
  sysctl_path:
    description: The C(sysctl.d) file that keeps forwarding on after a reboot (O(forwarding=true), O(forwarding_ipv6=true)).
    type: path
    default: /etc/sysctl.d/60-wgsp-forwarding.conf
  record:
    description:
      - The declared state of an interface (mode, services, ports, rule sets with the arguments their module
        ran with), written as JSON with sorted keys to O(record_path). Never give it a secret.
      - Unset leaves the record alone.
    type: dict
  record_path:
    description:
      - The record's file (0644; its directory is created 0755 when missing). Required with O(record).
    type: path
  packages:
    description:
      - Debian packages the host needs; RV(packages_missing) lists those C(dpkg-query) does not show
        installed, so the caller runs the package manager only when one is missing (a re-run on a
        ready host then costs no package-manager round trip). Nothing is installed here.
      - Each a Debian package name (lowercase letters, digits, C(+ - .), starting with a letter or digit).
    type: list
    elements: str
    default: []
  userspace_packages:
    description: Added to O(packages) only when the kernel has no WireGuard (C(wireguard-go)).
    type: list
    elements: str
    default: []
  boot_units:
    description:
      - systemd units to enable at boot (for example V(wg-quick@wg0)), only where systemd runs the host
        (RV(systemd)); elsewhere (containers, chroots) they are left alone and not reported as changed.
      - A unit C(systemctl is-enabled) reports C(enabled) (or C(static), C(indirect), C(generated), C(alias))
        is left alone; any other (C(disabled), C(enabled-runtime), ...) is enabled with C(systemctl enable),
        which fails clearly for a masked or missing unit. Nothing is started or stopped.
      - The units are enabled before the record is written.
      - "Each a unit name: 1-255 characters from C(a-z A-Z 0-9 : _ . @ -), not starting with C(-)."
    type: list
    elements: str
    default: []
    version_added: 0.1.0
  network:
    description:
      - Also return RV(network), the host's interfaces and addresses (from C(ip -j), iproute2) in the shape
        of Ansible's network facts, for a role that needs them without gathering facts.
    type: bool
    default: false
notes:
  - The roles call it twice per host - forwarding first, the record and the boot unit last (after every
    change succeeded), so a failed run leaves the previous record in place.
seealso:
  - module: wgsp.service_proxy.wg_status
"""

EXAMPLES = r"""
- name: Turn forwarding on and learn whether the kernel has WireGuard
  wgsp.service_proxy.wg_host:
    forwarding: true
  register: host

- name: Install wireguard-go only where the kernel lacks WireGuard
  ansible.builtin.package:
    name: "{{ ['wireguard-tools'] + ([] if host.kernel_wireguard else ['wireguard-go']) }}"

- name: Record what was declared for wg0 (wg_status compares the host with it)
  wgsp.service_proxy.wg_host:
    record_path: /var/lib/wgsp/wg0.json
    record:
      version: 1
      interface: wg0
      client_mode: share
"""

RETURN = r"""
kernel_wireguard:
  description: Whether the kernel has WireGuard (loaded, or a module C(modinfo) finds).
  returned: always
  type: bool
  sample: true
forwarding:
  description: C(net.ipv4.ip_forward) as it is after the call (as it would be, in check mode).
  returned: always
  type: bool
  sample: true
forwarding_ipv6:
  description: C(net.ipv6.conf.all.forwarding) as it is after the call (as it would be, in check mode); false without IPv6.
  returned: always
  type: bool
  sample: false
packages_missing:
  description: The packages of O(packages) (and O(userspace_packages) where needed) that are not installed.
  returned: always
  type: list
  elements: str
  sample: [wireguard-go]
systemd:
  description: Whether systemd runs the host (C(/run/systemd/system) exists), i.e. wg-quick@ can be enabled at boot.
  returned: always
  type: bool
  sample: true
network:
  description:
    - With O(network=true) - C(interfaces) (names), C(default_ipv4.interface) (the interface of the default
      IPv4 route) and, per interface (C(-) written C(_)), C(ipv4.address), C(ipv4_secondaries[].address) and
      C(ipv6[].address), as Ansible's network facts have them.
  returned: when O(network=true)
  type: dict
  sample: {interfaces: [lo, eth0], default_ipv4: {interface: eth0}, eth0: {ipv4: {address: 192.0.2.20}, ipv4_secondaries: [], ipv6: []}}
changes:
  description:
    - What changed (or would change) - C(forwarding), C(sysctl_path), C(record_path), and C(boot_units:<unit>)
      for each unit enabled.
  returned: always
  type: list
  elements: str
  sample: [record_path]
"""

import json
import os
import re

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.module import WgspModule
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import (
    ValidationError,
    WgspError,
    describe,
    fail_from_error,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common import systemd as systemd_
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.files import (
    atomic_write,
    check_abs_path,
    check_writable_dir,
    file_mode,
)

IP_FORWARD = "/proc/sys/net/ipv4/ip_forward"
IP6_FORWARD = "/proc/sys/net/ipv6/conf/all/forwarding"
SYS_WIREGUARD = "/sys/module/wireguard"
SYSCTL_HEADER = "# Managed by wgsp.service_proxy: the service proxy forwards between its interfaces.\n"


def forwarding_switches():
    """(option, live file, sysctl.d key) of each family's forwarding switch."""
    return (("forwarding", IP_FORWARD, "net.ipv4.ip_forward"),
            ("forwarding_ipv6", IP6_FORWARD, "net.ipv6.conf.all.forwarding"))


def sysctl_text(params):
    """The sysctl.d file's text for the switches asked for; None when none is."""
    lines = ["%s = 1\n" % key for option, _live, key in forwarding_switches() if params.get(option)]
    return SYSCTL_HEADER + "".join(lines) if lines else None


def kernel_wireguard(module):
    """True when WireGuard is loaded or the kernel has it as a module."""
    if os.path.isdir(SYS_WIREGUARD):
        return True
    modinfo = module.get_bin_path("modinfo")
    if modinfo is None:  # a minimal container without kmod: no module to load either
        return False
    return module.run_command([modinfo, "-F", "name", "wireguard"])[0] == 0


def network_report(module):
    """Interfaces and addresses in the shape of Ansible's network facts (what wgsp_public_interface reads)."""
    ip = module.get_bin_path("ip", required=True)
    rc, out, err = module.run_command([ip, "-j", "address", "show"])
    if rc != 0:
        module.fail_json(msg="ip -j address show failed: %s" % err.strip(), rc=rc)
    report = {"interfaces": [], "default_ipv4": {}}
    for link in json.loads(out or "[]"):
        name = link.get("ifname")
        if not name:
            continue
        report["interfaces"].append(name)
        v4 = [a["local"] for a in link.get("addr_info") or [] if a.get("family") == "inet" and a.get("local")]
        v6 = [a["local"] for a in link.get("addr_info") or [] if a.get("family") == "inet6" and a.get("local")]
        entry = {"ipv4_secondaries": [{"address": a} for a in v4[1:]], "ipv6": [{"address": a} for a in v6]}
        if v4:
            entry["ipv4"] = {"address": v4[0]}
        report[name.replace("-", "_")] = entry
    rc, out, err = module.run_command([ip, "-j", "-4", "route", "show", "default"])
    routes = json.loads(out or "[]") if rc == 0 else []
    if routes and routes[0].get("dev"):
        report["default_ipv4"] = {"interface": routes[0]["dev"]}
    return report


UNIT_RE = re.compile(r"^[A-Za-z0-9:_.@][A-Za-z0-9:_.@-]{0,254}$")


def check_units(field, names):
    for index, name in enumerate(names):
        if not isinstance(name, str) or not UNIT_RE.match(name):
            raise ValidationError("%s[%d]" % (field, index), "%s is not a systemd unit name (1-255 characters from "
                                  "a-z A-Z 0-9 : _ . @ -, not starting with -)" % describe(name))
    return list(names)


# What `systemctl is-enabled` prints for a unit that comes up at boot as it is (enabled-runtime does not).
BOOT_STATES = ("enabled", "static", "indirect", "generated", "alias")


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


PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]{0,127}$")


def check_packages(field, names):
    for name in names:
        if not isinstance(name, str) or not PACKAGE_RE.match(name):
            raise ValidationError(field, "%s is not a Debian package name" % describe(name))
    return list(names)


def missing_packages(module, names):
    """The names dpkg does not show as installed (status ``ii``), in the order given."""
    if not names:
        return []
    dpkg_query = module.get_bin_path("dpkg-query")
    if dpkg_query is None:  # not a Debian host: let the package manager judge every one
        return list(names)
    _rc, out, _err = module.run_command([dpkg_query, "-W", "-f", "${Package} ${db:Status-Abbrev}\\n"] + list(names))
    installed = set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[1].startswith("ii"):
            installed.add(parts[0].split(":")[0])
    return [name for name in names if name not in installed]


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


class Host(object):
    """Plans the files first (every value judged before anything is written), then applies them."""

    def __init__(self, params, check_mode):
        self.check_mode = check_mode
        self.files = []  # (name, path, wanted text, mode)
        self.changes = []
        self.diff = []
        text = sysctl_text(params)
        if text is not None:
            path = check_abs_path("sysctl_path", params["sysctl_path"])
            self.files.append(("sysctl_path", path, text, 0o644))
        if params["record"] is not None:
            if params["record_path"] is None:
                raise ValidationError("record_path", "is required with record")
            path = check_abs_path("record_path", params["record_path"])
            self.files.append(("record_path", path, record_text("record", params["record"]), 0o644))
        elif params["record_path"] is not None:
            raise ValidationError("record", "is required with record_path")
        self.switches = [(option, live) for option, live, _key in forwarding_switches() if params.get(option)]
        for name, path, _text, _mode in self.files:
            if os.path.isdir(path):
                raise ValidationError(name, "%s is a directory" % path)
            check_writable_dir(name, path)

    def apply(self):
        """Apply the plan; returns ``{option: on}`` of both forwarding switches as they are after it."""
        live = dict((option, (read_text(path) or "").strip() == "1") for option, path, _key in forwarding_switches())
        for option, path in self.switches:
            if live[option]:
                continue
            self.changes.append(option)
            self.diff.append({"before_header": path, "after_header": path, "before": "0\n", "after": "1\n"})
            if not self.check_mode:
                with open(path, "w") as handle:
                    handle.write("1\n")
            live[option] = True
        for name, path, text, mode in self.files:
            current = read_text(path)
            if current == text and file_mode(path) == mode:
                continue
            self.changes.append(name)
            self.diff.append({"before_header": path, "after_header": path,
                              "before": current if current is not None else "", "after": text})
            if not self.check_mode:
                atomic_write(path, text, mode)
        return live


def main():
    module = WgspModule(
        argument_spec=dict(
            forwarding=dict(type="bool", default=False),
            forwarding_ipv6=dict(type="bool", default=False),
            sysctl_path=dict(type="path", default="/etc/sysctl.d/60-wgsp-forwarding.conf"),
            record=dict(type="dict"),
            record_path=dict(type="path"),
            network=dict(type="bool", default=False),
            boot_units=dict(type="list", elements="str", default=[]),
            packages=dict(type="list", elements="str", default=[]),
            userspace_packages=dict(type="list", elements="str", default=[]),
        ),
        supports_check_mode=True,
    )
    try:
        packages = check_packages("packages", module.params["packages"])
        userspace = check_packages("userspace_packages", module.params["userspace_packages"])
        units = check_units("boot_units", module.params["boot_units"])
        host = Host(module.params, module.check_mode)
        systemd = systemd_.runs()
        unit_changes, unit_diff = enable_units(module, units if systemd else [], module.check_mode)
        live = host.apply()
        host.changes[:0] = unit_changes
        host.diff[:0] = unit_diff
    except WgspError as exc:
        fail_from_error(module, exc)
    except (IOError, OSError) as exc:
        module.fail_json(msg="cannot write %s: %s" % (getattr(exc, "filename", None) or "a file", exc.strerror or exc))
    kernel = kernel_wireguard(module)
    wanted = packages + [name for name in ([] if kernel else userspace) if name not in packages]
    result = dict(changed=bool(host.changes), changes=host.changes, forwarding=live["forwarding"],
                  forwarding_ipv6=live["forwarding_ipv6"], kernel_wireguard=kernel,
                  systemd=systemd, packages_missing=missing_packages(module, wanted))
    if module.params["network"]:
        result["network"] = network_report(module)
    if module._diff and host.changes:
        result["diff"] = host.diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
