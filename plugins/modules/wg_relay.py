#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: wg_relay
short_description: Publish ports of one address family to targets of the other (IPv6 to an IPv4 tunnel target)
version_added: 0.3.0
description:
  - Netfilter cannot translate between IPv4 and IPv6 (DNAT keeps the family), so a port published on
    IPv6 whose target is an IPv4 address (a share's IPv4 tunnel address, a container behind it) needs a
    relay in user space. This module runs one relay process per set that listens on every listed port
    of the unspecified address of O(listen_family) only, bound to O(interface), and relays each TCP
    connection and each UDP peer to its target from this host's own address (as a masquerading
    M(wgsp.service_proxy.wg_dnat) publish would).
  - Sources outside O(sources) are refused (a TCP connection is closed at once, a datagram dropped).
  - The set is two files and a process - the config (O(path), JSON), the program beside it (the same
    name ending in C(.py); the collection's own code, standard library only, nothing downloaded) and the
    relay process, found by its pid file (O(pidfile)) and checked by its command line. A changed config
    or program restarts the process (established connections are cut); an unchanged set running as
    declared is left alone.
  - At boot, start it with the tunnel - the roles put RV(boot_commands) on the interface's wg-quick
    C(PostUp) and C(PreDown) lines.
  - Every value is judged before anything changes; an error names the option, e.g. C(relays[1].to_address).
author:
  - wgsp.service_proxy contributors (@wgsp)
requirements:
  - python3 on the host (the relay runs with the interpreter that runs this module)
attributes:
  check_mode:
    support: full
    description: Reports what would be written, started or stopped; changes nothing.
  diff_mode:
    support: full
    description: The config file before and after (the program is named, not shown).
  platform:
    support: full
    platforms: linux
    description: Linux (C(SO_BINDTODEVICE), C(/proc)).
options:
  name:
    description: The set's name (1-12 characters from C(a-z 0-9 _)); the default pid file is named after it.
    type: str
    required: true
  state:
    description: V(absent) ends the relay and removes its config and program.
    type: str
    default: present
    choices: [present, absent]
  interface:
    description:
      - The interface the relay accepts connections and datagrams on (the public side), so it is not reachable
        through the host's other interfaces. Unset listens on every interface.
    type: str
  listen_family:
    description: The family the relay listens on; every target is of the other one.
    type: str
    default: ipv6
    choices: [ipv4, ipv6]
  sources:
    description: Source networks (of O(listen_family)) allowed to use the relay; empty allows every source.
    type: list
    elements: str
    default: []
  relays:
    description: The relayed ports. A port (and a protocol) may be listed once.
    type: list
    elements: dict
    default: []
    suboptions:
      proto:
        description: V(tcp), V(udp), or V(both) (V(all)).
        type: str
        default: tcp
        choices: [tcp, udp, both, all]
      port:
        description: The port listened on, or a range V(N-M).
        type: raw
        required: true
      to_address:
        description: The target address, of the other family than O(listen_family); unicast (loopback allowed), no scope id.
        type: str
        required: true
      to_port:
        description: The target port, or a range of the same length as O(relays[].port) (port by port). Defaults to O(relays[].port).
        type: raw
  path:
    description:
      - The relay's config file, ending in C(.json); the program is written beside it (C(.py)). Both 0644.
      - Safe on a wg-quick line (an absolute path without spaces, quotes or C(#)).
    type: str
    required: true
  pidfile:
    description: The relay's pid file. Defaults to C(/run/wgsp-relay-<name>.pid).
    type: str
notes:
  - The relay listens in the host's INPUT path (not FORWARD, as a DNAT publish does); a host firewall whose
    INPUT policy drops must let the relayed ports in on O(interface).
  - A UDP peer keeps its upstream socket while it is active (120 s idle), at most 4096 peers per port.
seealso:
  - module: wgsp.service_proxy.wg_dnat
  - module: wgsp.service_proxy.wg_rule_sets
"""

EXAMPLES = r"""
- name: Publish 80 and a UDP range on the public interface's IPv6 to a share's IPv4 tunnel address
  wgsp.service_proxy.wg_relay:
    name: relay
    interface: eth0
    sources: ["2001:db8::/32"]
    relays:
      - {port: 80, to_address: 10.7.0.2}
      - {proto: udp, port: 30000-30010, to_address: 10.7.0.2, to_port: 40000-40010}
    path: /etc/wg-service-proxy/wg0-relay.json

- name: Remove it
  wgsp.service_proxy.wg_relay:
    name: relay
    state: absent
    path: /etc/wg-service-proxy/wg0-relay.json
"""

RETURN = r"""
changes:
  description: What changed (or would change) - C(wrote config), C(wrote program), C(started), C(restarted), C(stopped), C(removed config), C(removed program).
  returned: always
  type: list
  elements: str
  sample: [wrote config, wrote program, started]
running:
  description: Whether the relay runs after the call (as it would, in check mode).
  returned: always
  type: bool
pid:
  description: The relay's process id; null when it does not run (or in check mode before it started).
  returned: always
  type: int
listening:
  description: One line per relay, C(proto listen -> target).
  returned: always
  type: list
  elements: str
  sample: ["tcp [::]:80 -> 10.7.0.2:80"]
boot_commands:
  description: The wg-quick lines that start (C(post_up)) and end (C(pre_down)) the relay with the tunnel.
  returned: always
  type: dict
  sample: {post_up: "python3 /etc/wg-service-proxy/wg0-relay.py --config ... --daemon", pre_down: "... --stop"}
path:
  description: The config file.
  returned: always
  type: str
program:
  description: The relay program.
  returned: always
  type: str
pidfile:
  description: The pid file.
  returned: always
  type: str
"""

import sys  # noqa: E402

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.module import WgspModule  # noqa: E402
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import WgspError, fail_from_error  # noqa: E402
from ansible_collections.wgsp.service_proxy.plugins.module_utils._relay.manage import (  # noqa: E402
    RELAY_ARGUMENT_SPEC,
    Plan,
    apply,
    boot_commands,
)


def main():
    module = WgspModule(argument_spec=RELAY_ARGUMENT_SPEC, supports_check_mode=True)
    try:
        plan = Plan(module.params)
        result = apply(plan, module.run_command, sys.executable,
                       check_mode=module.check_mode, want_diff=module._diff)
    except WgspError as exc:
        fail_from_error(module, exc)
    post_up, pre_down = boot_commands(plan)
    result["boot_commands"] = {"post_up": post_up, "pre_down": pre_down}
    module.exit_json(**result)


if __name__ == "__main__":
    main()
