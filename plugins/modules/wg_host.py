#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: wg_host
short_description: The host side of a service proxy node - IP forwarding, its key, the kernel's WireGuard, the status record
version_added: 0.1.0
description:
  - One call for what the roles used to do in a chain of small tasks, each a round trip to the host -
    reports whether the kernel has WireGuard and whether systemd runs, which of the packages the host
    needs are missing, turns IPv4 forwarding on now and after a reboot, makes sure of the host's WireGuard
    key (generated on the host) and returns its public key, and writes the record of the declared state
    that M(wgsp.service_proxy.wg_status) compares with.
  - Every part is optional; a call with none of them only reports. The parts change in this order -
    forwarding, the key, the boot units, the record - after every value was judged.
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
  key_path:
    description:
      - Also make sure of the host's WireGuard private key in this file (an absolute path) and return its
        public key, RV(public_key), as M(wgsp.service_proxy.wg_key) does - a missing key is generated here,
        on the host that owns it, and written 0600 (a missing directory is created 0700); nothing is
        generated in check mode. The private key is never returned.
      - Unset leaves keys alone.
    type: path
    version_added: 0.1.0
  network:
    description:
      - Also return RV(network), the host's interfaces and addresses (from C(ip -j), iproute2) in the shape
        of Ansible's network facts, for a role that needs them without gathering facts.
    type: bool
    default: false
extends_documentation_fragment:
  - wgsp.service_proxy.record
notes:
  - The roles call it first on each host (forwarding, the packages, the key; site.yml does it for every
    host at once, so the hub and its clients then configure each other without going back for a key).
    Their last call, M(wgsp.service_proxy.wg_interface), takes O(record) and O(boot_units) after every
    other change succeeded.
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
public_key:
  description:
    - The public key of the private key in O(key_path) (null in check mode when the key does not exist yet).
  returned: when O(key_path) is set
  type: str
  sample: xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=
generated:
  description: Whether the key in O(key_path) was generated by this call (would be, in check mode).
  returned: when O(key_path) is set
  type: bool
  sample: false
key_path:
  description: The private key's file, as given in O(key_path).
  returned: when O(key_path) is set
  type: str
  sample: /etc/wireguard/wg0.key
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
    - What changed (or would change) - C(forwarding), C(forwarding_ipv6), C(sysctl_path), C(key_path) (a key
      generated), C(boot_units:<unit>) for each unit enabled, and C(record_path), in that order.
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
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.files import check_abs_path, check_writable_dir
from ansible_collections.wgsp.service_proxy.plugins.module_utils._status.record import (
    RECORD_OPTIONS,
    Files,
    Record,
    read_text,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard.keys import ensure_key

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


class Host(object):
    """Plans the forwarding switches and their sysctl.d file first (every value judged before
    anything is written), then applies them."""

    def __init__(self, params, check_mode):
        self.check_mode = check_mode
        self.files = Files()
        self.changes = []
        self.diff = []
        text = sysctl_text(params)
        if text is not None:
            self.files.add("sysctl_path", params["sysctl_path"], text)
        self.switches = [(option, live) for option, live, _key in forwarding_switches() if params.get(option)]

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
        self.files.apply(self.check_mode)
        self.changes.extend(self.files.changes)
        self.diff.extend(self.files.diff)
        return live


def main():
    module = WgspModule(
        argument_spec=dict(
            forwarding=dict(type="bool", default=False),
            forwarding_ipv6=dict(type="bool", default=False),
            sysctl_path=dict(type="path", default="/etc/sysctl.d/60-wgsp-forwarding.conf"),
            network=dict(type="bool", default=False),
            packages=dict(type="list", elements="str", default=[]),
            userspace_packages=dict(type="list", elements="str", default=[]),
            key_path=dict(type="path", no_log=False),
            **RECORD_OPTIONS
        ),
        supports_check_mode=True,
    )
    key, host = None, None
    try:
        packages = check_packages("packages", module.params["packages"])
        userspace = check_packages("userspace_packages", module.params["userspace_packages"])
        host = Host(module.params, module.check_mode)
        record = Record(module.params)
        generated, public = False, None
        if module.params["key_path"] is not None:
            # judged before anything changes: the path, an existing key file, where a new one would go
            key = check_abs_path("key_path", module.params["key_path"])
            generated, public = ensure_key(key, check_mode=True, field="key_path")
            if generated:
                check_writable_dir("key_path", key)
        systemd = systemd_.runs()
        live = host.apply()
        if generated and not module.check_mode:
            generated, public = ensure_key(key, field="key_path")
        record.apply(module, systemd, module.check_mode)
    except WgspError as exc:
        fail_from_error(module, exc, changed=bool(host.changes) if host else False)
    except (IOError, OSError) as exc:
        module.fail_json(msg="cannot write %s: %s" % (getattr(exc, "filename", None) or "a file", exc.strerror or exc),
                         changed=bool(host.changes) if host else False)
    changes = host.changes + (["key_path"] if generated else []) + record.changes
    kernel = kernel_wireguard(module)
    wanted = packages + [name for name in ([] if kernel else userspace) if name not in packages]
    result = dict(changed=bool(changes), changes=changes, forwarding=live["forwarding"],
                  forwarding_ipv6=live["forwarding_ipv6"], kernel_wireguard=kernel,
                  systemd=systemd, packages_missing=missing_packages(module, wanted))
    if key:
        result.update(key_path=key, public_key=public, generated=generated)
    if module.params["network"]:
        result["network"] = network_report(module)
    if module._diff and changes:
        key_diff = [{"before_header": key, "after_header": key, "before": "",
                     "after": "(a new private key, not shown)\n"}] if generated else []
        result["diff"] = host.diff + key_diff + record.diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
