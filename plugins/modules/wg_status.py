#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: wg_status
short_description: Report what a WireGuard service proxy host really does - tunnel, rules, routes, probes
version_added: 0.1.0
description:
  - Read-only status of one WireGuard interface of the service proxy. It replaces the original
    project's C(manage-vpn.sh status), C(mode-status), C(shared-services), C(access-services),
    C(public-exposure) and C(test-connection), which only echoed the configuration.
  - The declared side (client mode, services, published ports, rule sets) comes from the state file
    the roles write for each interface (C(<state_dir>/<interface>.json), no secrets). Without a state
    file the interface and its peers are still reported, with RV(client_mode=unmanaged).
  - The live side comes from the interface (kernel netlink or the wireguard-go UAPI socket), the
    firewall (each declared rule set compared with what its module would install, with packet
    counters) and the routing table.
  - RV(status) is V(connected) when the interface is up and the hub peer's latest handshake is younger
    than O(fresh_seconds) (on the hub itself, at least one client's); otherwise V(handshake-stale),
    V(no-handshake), V(down) or V(absent).
  - With O(probe=true) it runs the test-connection checks from the host itself, each with a short
    timeout (see RV(probes)).
  - Private and preshared keys are never read into the result; only public keys are reported.
author:
  - wgsp.service_proxy contributors (@wgsp)
requirements:
  - pyroute2 (0.7.2 or later)
attributes:
  check_mode:
    support: full
    description: The module never changes anything; check mode reports the same as a normal run.
  diff_mode:
    support: none
    description: Nothing changes, so there is no diff.
  platform:
    support: full
    platforms: linux
    description: Linux only (netlink, netfilter).
options:
  interface:
    description: The WireGuard interface to report on (one interface name, the same rule as C(name) of C(wg_interface)).
    type: str
    default: wg0
  state_dir:
    description: Directory of the roles' state files; the file read is C(<state_dir>/<interface>.json).
    type: path
    default: /etc/wg-service-proxy
  state_file:
    description: Read this state file instead of the one under O(state_dir).
    type: path
  fresh_seconds:
    description:
      - A handshake younger than this many seconds counts as fresh (connected). WireGuard re-keys every
        2 minutes while traffic flows, so the default 180 s is one re-key plus margin.
      - At least 1.
    type: int
    default: 180
  probe:
    description:
      - Run the test-connection checks from this host (see RV(probes)). Probes only connect to the
        addresses declared in the state file (the hub's tunnel address, access services, published
        ports' targets, shared services' targets).
    type: bool
    default: false
  probe_timeout:
    description: Timeout of each TCP probe, in seconds; more than 0 and at most 600.
    type: float
    default: 2.0
  hub_probe_port:
    description:
      - TCP port tried on the hub's tunnel address. An accepted connection and a refusal (RST) both
        prove the hub answers through the tunnel; only silence fails. No ICMP tool is needed.
      - A port 1-65535.
    type: int
    default: 22
  fail_on:
    description:
      - Fail the task (with a one-line summary) when one of these holds, so monitoring and CI can use
        the module as an assertion. V(drift) - a declared rule set differs from what is installed (or a
        container address is stale); V(probe) - a probe failed (implies O(probe=true));
        V(disconnected) - RV(status) is not V(connected), on a host with the roles' state file or the
        interface; a host with neither has no tunnel configured (RV(client_mode=unmanaged),
        RV(status=absent), a non-tunnel host of a mixed inventory), which is not a failure, so
        C(ansible all -m wgsp.service_proxy.wg_status -a fail_on=disconnected) checks a whole inventory.
    type: list
    elements: str
    choices: [drift, probe, disconnected]
    default: []
seealso:
  - module: wgsp.service_proxy.wg_interface
  - module: wgsp.service_proxy.wg_dnat
  - module: wgsp.service_proxy.wg_filter
  - module: wgsp.service_proxy.wg_route
notes:
  - The playbooks C(wgsp.service_proxy.status) and C(wgsp.service_proxy.test_connection) run this
    module on every host and print one line per host.
  - Locally generated probe traffic does not pass the PREROUTING DNAT of published ports; the probe
    checks the DNAT target through the tunnel, and the C(test_connection) playbook checks the public
    side from another host.
"""

EXAMPLES = r"""
- name: What the original's "manage-vpn.sh status" showed, checked against reality
  wgsp.service_proxy.wg_status:
  register: wg

- name: Print the one-line summary
  ansible.builtin.debug:
    msg: "{{ wg.summary }}"

- name: Test the connection (the original's test-connection) and fail on any problem
  wgsp.service_proxy.wg_status:
    interface: wg0
    probe: true
    probe_timeout: 1.5
    fail_on: [drift, probe, disconnected]

- name: Monitoring - only the tunnel must be up
  wgsp.service_proxy.wg_status:
    fail_on: [disconnected]
"""

RETURN = r"""
status:
  description: V(connected), V(handshake-stale), V(no-handshake), V(down) or V(absent).
  returned: always
  type: str
  sample: connected
interface:
  description: The interface reported on.
  returned: always
  type: str
  sample: wg0
client_mode:
  description: V(server), V(share), V(proxy) from the state file, or V(unmanaged) without one.
  returned: always
  type: str
  sample: proxy
public_exposure:
  description: Whether this host publishes ports to its public side (declared).
  returned: always
  type: bool
  sample: true
access_services:
  description: Remote services this proxy reaches (declared), each with C(target) (C(address:port), the original's form).
  returned: always
  type: list
  elements: dict
  sample: [{"address": "10.7.0.2", "port": 80, "proto": "tcp", "host": null, "target": "10.7.0.2:80"}]
shared_services:
  description: Containers this share client shares (declared) - C(name), C(container), C(proto), C(port), C(to_port).
  returned: always
  type: list
  elements: dict
  sample: [{"name": "dummy", "container": "dummy", "proto": "tcp", "port": 80, "to_port": 80}]
public_ports:
  description: Published ports (declared) - C(proto), C(port), C(to_address), C(to_port).
  returned: always
  type: list
  elements: dict
  sample: [{"proto": "tcp", "port": 80, "to_address": "10.7.0.2", "to_port": 80}]
address:
  description: The interface's live addresses.
  returned: always
  type: list
  elements: str
  sample: ["10.7.0.3/32"]
public_key:
  description: The interface's public key (never the private key).
  returned: always
  type: str
backend:
  description: V(kernel) or V(userspace) (wireguard-go); null when the interface is absent.
  returned: always
  type: str
  sample: userspace
up:
  description: Whether the link is administratively up.
  returned: always
  type: bool
mtu:
  description: The link MTU.
  returned: always
  type: int
listen_port:
  description: UDP listen port (0 = none or random).
  returned: always
  type: int
handshake_age:
  description: Seconds since the hub peer's latest handshake (on the hub, the freshest client's); null if never.
  returned: always
  type: int
  sample: 12
hub_public_key:
  description: Public key of the peer identified as the hub (clients only).
  returned: always
  type: str
clients_connected:
  description: On the hub, how many clients have a fresh handshake.
  returned: when client_mode is server
  type: int
peers:
  description: The interface's peers - no secrets.
  returned: always
  type: list
  elements: dict
  contains:
    public_key:
      description: The peer's public key.
      type: str
    role:
      description: V(hub), V(client) (peers of the hub) or V(peer).
      type: str
    endpoint:
      description: The peer's current endpoint.
      type: str
    allowed_ips:
      description: The peer's allowed IPs.
      type: list
      elements: str
    persistent_keepalive:
      description: Keepalive interval in seconds (0 = off).
      type: int
    latest_handshake:
      description: Unix time of the latest handshake (0 = never).
      type: int
    handshake_age:
      description: Seconds since the latest handshake; null if never.
      type: int
    fresh:
      description: Handshake younger than O(fresh_seconds).
      type: bool
    rx_bytes:
      description: Bytes received from the peer.
      type: int
    tx_bytes:
      description: Bytes sent to the peer.
      type: int
routes:
  description: Routes through the interface; C(managed) marks the ones C(wg_route) installed (proto 87).
  returned: always
  type: list
  elements: dict
  sample: [{"dest": "10.7.0.0/24", "interface": "wg0", "table": 254, "metric": 0, "gateway": null,
            "family": "ipv4", "proto": 87, "managed": true}]
rules:
  description:
    - One entry per rule set the roles declared, with C(name), C(module), C(backend), C(present),
      C(in_sync), C(drift) (C(missing), C(extra), C(order), C(missing_jumps), C(extra_jumps), C(chains)),
      C(expected) and C(installed) rule lines, C(counters) (packets/bytes per rule) and C(containers)
      (resolved vs installed container addresses, C(stale)). C(error) when the set could not be read.
  returned: always
  type: list
  elements: dict
drift:
  description: True when any rule set is not in sync.
  returned: always
  type: bool
probes:
  description:
    - The test-connection checks (empty without O(probe)). Each has C(name), C(target), C(ok)
      (true, false, or null when not probed - UDP services), C(detail) and C(elapsed_ms).
    - C(handshake) (clients) or one C(client handshake) per peer (hub); C(hub tunnel address) (a TCP
      connect answered or refused counts as reachable); C(access service); C(public port ... target)
      (the DNAT target, reached through the tunnel); C(container resolution) (the container's address
      against the one the rules point at); C(shared service), C(host service), C(external forward).
  returned: always
  type: list
  elements: dict
  sample: [{"name": "access service", "target": "10.7.0.2:80", "ok": true,
            "detail": "TCP connection to 10.7.0.2:80 accepted", "elapsed_ms": 3}]
summary:
  description: One line - mode, status, handshake age, drift and probe results.
  returned: always
  type: str
  sample: proxy connected handshake=12s drift=no probes=4/4
state_file:
  description: The state file read; null when there is none.
  returned: always
  type: str
declared:
  description: Other declared facts of the state file (hub, hub endpoint and address, clients, flows, ...).
  returned: always
  type: dict
"""

import traceback  # noqa: E402

from ansible.module_utils.basic import missing_required_lib  # noqa: E402

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.module import WgspModule  # noqa: E402
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.runner import CommandRunner  # noqa: E402
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import WgspError, fail_from_error  # noqa: E402
from ansible_collections.wgsp.service_proxy.plugins.module_utils._status import report as status_report  # noqa: E402

try:
    from pyroute2 import IPRoute  # noqa: E402
    HAS_PYROUTE2 = True
    PYROUTE2_ERROR = None
except ImportError:
    IPRoute = None
    HAS_PYROUTE2 = False
    PYROUTE2_ERROR = traceback.format_exc()

ARGUMENT_SPEC = dict(
    interface=dict(type="str", default="wg0"),
    state_dir=dict(type="path", default="/etc/wg-service-proxy"),
    state_file=dict(type="path"),
    fresh_seconds=dict(type="int", default=180),
    probe=dict(type="bool", default=False),
    probe_timeout=dict(type="float", default=2.0),
    hub_probe_port=dict(type="int", default=22),
    fail_on=dict(type="list", elements="str", choices=list(status_report.FAIL_ON), default=[]),
)


def main():
    module = WgspModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if not HAS_PYROUTE2:
        module.fail_json(msg=missing_required_lib("pyroute2"), exception=PYROUTE2_ERROR)
    from ansible_collections.wgsp.service_proxy.plugins.module_utils._status.host import status_of

    params = module.params
    fail_on = params["fail_on"] or []
    runner = CommandRunner(module)
    iproute = IPRoute()
    result = None
    try:
        result = status_of(iproute, runner, params["interface"], state_dir=params["state_dir"],
                           state_file=params["state_file"], fresh=params["fresh_seconds"],
                           probe=params["probe"] or "probe" in fail_on, probe_timeout=params["probe_timeout"],
                           hub_probe_port=params["hub_probe_port"])
    except WgspError as exc:
        fail_from_error(module, exc, changed=False)
    except Exception as exc:  # noqa: BLE001 - netlink/UAPI errors carry errno and message
        module.fail_json(msg="wg_status: %s" % (exc,), exception=traceback.format_exc(), changed=False)
    finally:
        iproute.close()
    reasons = status_report.failures(result, fail_on)
    if reasons:
        module.fail_json(msg="%s: %s (%s)" % (params["interface"], "; ".join(reasons), result["summary"]),
                         changed=False, **result)
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
