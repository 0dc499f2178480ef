#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: wg_interface
short_description: Idempotent WireGuard interfaces and peers (kernel or wireguard-go)
version_added: 0.1.0
description:
  - Creates, updates and removes one WireGuard interface with its keys, addresses and peers.
  - Works in one pipeline - read the current state, normalise it, compute the difference, stop there
    in check mode, apply only the difference, read the result back. C(changed) means the difference was
    not empty; an unchanged run sends no set request to the device at all, so established sessions
    are never disturbed.
  - Changes are minimal. Adding, changing or removing one peer touches only that peer, and an
    unchanged O(listen_port) is never sent again (wireguard-go would rebind its socket).
  - Two backends are chosen at run time. C(kernel) uses the Linux WireGuard module through netlink
    (pyroute2 C(IPRoute) for the link; WireGuard's generic netlink family, spoken by the collection
    itself on a plain netlink socket, for keys and peers).
    C(userspace) starts C(wireguard-go) for the interface when it is not running and speaks its UAPI
    control socket C(/var/run/wireguard/<name>.sock) directly.
  - Private and preshared keys never appear in results, diffs, warnings, errors or any process's
    command line (key generation and public key derivation are done in Python on the managed host).
options:
  name:
    description:
      - Interface name, 1-15 characters from C(a-z A-Z 0-9 _ = . -); not C(.) or C(..), not starting with
        C(-), no C(+). Checked before anything is created or written.
    type: str
    required: true
  state:
    description:
      - C(present) creates or updates the interface.
      - C(absent) deletes the interface, stops its C(wireguard-go) process (by PID) and removes the
        persisted C(/etc/wireguard/<name>.conf). The private key file is kept unless O(remove_key=true).
    type: str
    choices: [present, absent]
    default: present
  backend:
    description:
      - C(auto) keeps the backend of an existing interface (link kind C(wireguard) is the kernel,
        C(tun) is wireguard-go). For a new interface it uses the kernel when C(/sys/module/wireguard)
        exists or C(modprobe wireguard) succeeds (not tried in check mode), else C(userspace).
      - Asking for a backend other than the one an existing interface uses is an error; remove the
        interface first to switch.
    type: str
    choices: [auto, kernel, userspace]
    default: auto
  addresses:
    description:
      - Addresses of the interface as CIDRs, IPv4 and IPv6 (for example C(10.7.0.1/24), C(fd07::1/64)).
      - When given, the list is exclusive - other addresses are removed (kernel-made IPv6 link-local
        addresses are never touched). When omitted, addresses are not managed.
      - Unspecified, loopback, multicast and broadcast addresses and IPv6 scope ids (C(fe80::1%eth0)) are
        refused before anything changes.
    type: list
    elements: str
  listen_port:
    description:
      - UDP port to listen on (1-65535). When omitted, the port is not managed (a new interface gets a
        random one). Sent only when it differs from the current port.
    type: int
  mtu:
    description:
      - MTU of the interface. When omitted, it is not managed (WireGuard's default is 1420).
    type: int
  fwmark:
    description:
      - Firewall mark for the tunnel's own packets, C(0) for none. When omitted, it is not managed.
    type: int
  private_key:
    description:
      - The interface's private key (base64). Mutually exclusive with O(private_key_path).
      - Prefer O(private_key_path) and let the module generate the key on the host.
    type: str
  private_key_path:
    description:
      - File holding the private key, an absolute path. Defaults to C(/etc/wireguard/<name>.key).
      - When the file does not exist, a new key is generated on the managed host and written there
        0600 (a missing directory is created 0700) with an atomic rename. If the interface already
        has a private key, that key is written to the file instead, so a hand-made tunnel keeps its
        identity. Nothing is generated or written in check mode.
    type: path
  remove_key:
    description:
      - With O(state=absent), also delete the private key file.
    type: bool
    default: false
  peers:
    description:
      - The peers. Each listed peer is fully declared - fields left out mean no preshared key, no
        allowed IPs and no persistent keepalive. An endpoint cannot be unset on WireGuard; an omitted
        endpoint is left as the device has it (roaming peers keep working).
    type: list
    elements: dict
    default: []
    suboptions:
      public_key:
        description: The peer's public key (base64).
        type: str
        required: true
      preshared_key:
        description: Preshared key (base64). Mutually exclusive with O(peers[].preshared_key_path).
        type: str
      preshared_key_path:
        description: File holding the preshared key on the managed host.
        type: path
      endpoint:
        description:
          - C(host:port) or C([ipv6]:port). A host name is resolved on the managed host and compared
            with the device's endpoint after resolution.
          - The host is an IPv4 address, a bracketed IPv6 address without scope id, or a DNS name
            (letters, digits, C(-) and C(.) labels).
        type: str
      allowed_ips:
        description:
          - Networks routed to this peer, normalised (host bits cleared, sorted). An allowed IP can
            belong to one peer only. IPv6 scope ids are refused.
        type: list
        elements: str
        default: []
      persistent_keepalive:
        description: Keepalive interval in seconds, C(0) to disable.
        type: int
        default: 0
  exclusive_peers:
    description:
      - Remove peers that are on the interface but not in O(peers).
    type: bool
    default: true
  persist:
    description:
      - Also write C(/etc/wireguard/<name>.conf) (0600, atomic, rewritten only when its content
        changes), a wg-quick file that reproduces this state so that C(wg-quick up <name>) or the
        C(wg-quick@<name>) unit restores it after a reboot.
      - With O(exclusive_peers=false) the file also lists the peers that are kept unlisted.
      - With C(false) an existing file is left alone.
    type: bool
    default: true
  table:
    description:
      - C(Table) setting of the persisted file. The default C(off) stops wg-quick from adding routes
        for the allowed IPs (routes are managed with O(routes) or the C(wg_route) module).
    type: str
    default: "off"
  routes:
    description:
      - The routes through the interface, configured in the same run as the interface (one module call
        instead of C(wg_interface) followed by C(wg_route)). When omitted (the default), routes are not
        managed.
      - "When given with O(state=present), after the interface is configured the routes this collection
        installs on it (routing protocol number C(87); C(ip route) shows C(proto 87)) become exactly the
        listed ones: missing ones are added, changed ones replaced, unlisted ones removed (like C(wg_route)
        with C(exclusive=true)). An empty list removes them all."
      - A listed route that already exists with the same destination, table, metric, interface and gateway
        (whoever installed it) is left alone.
      - "A route someone else installed (another protocol number, e.g. C(proto boot) or C(proto kernel), or
        another route type such as C(blackhole)) is never replaced or removed: when it holds a listed
        route's destination, table and metric, the run fails naming the route and the O(routes) entry."
      - Every entry is validated before anything is touched; errors name the entry (C(routes[0].gateway)).
      - In check mode the routes are only planned; a new interface's routes are all reported as added.
      - Ignored with O(state=absent) - deleting the interface removes its routes.
      - The routes are not written to the persisted wg-quick file; to restore them at boot, add them as
        O(post_up) commands (the roles use the C(wgsp_route_commands) filter).
    type: list
    elements: dict
    version_added: 0.1.0
    suboptions:
      dest:
        description: Destination network (CIDR, host bits zero) or a single address; no IPv6 scope id.
        type: str
        required: true
      table:
        description:
          - Routing table number (1-4294967295) or V(main) (254), V(default) (253); V(main) when unset.
          - The kernel's V(local) table (C(255)) and C(0) are refused, by name and by number.
        type: raw
      metric:
        description:
          - Route metric (priority); the kernel's default when unset (0 for IPv4, 1024 for IPv6).
          - The kernel stores an IPv6 metric of 0 as 1024.
        type: int
      gateway:
        description: Next hop address (same family as O(routes[].dest)); unset for a device route.
        type: str
  post_up:
    description:
      - Commands written as C(PostUp) lines of the persisted file (for example to re-apply firewall
        rule sets at boot).
      - Each entry is a B(shell command line) that C(wg-quick) runs as root (with C(%i) replaced by the
        interface name); it is written verbatim, so build it from trusted, validated values and quote
        every value (the roles build theirs with the C(wgsp_route_commands) and C(wgsp_boot_commands)
        filters, which validate and quote). Never put an inventory value into it unquoted.
      - Refused - an empty entry, a newline or any control character, and C(#) (C(wg-quick) would
        cut the line there, so what ran would not be what was written).
    type: list
    elements: str
    default: []
  pre_down:
    description:
      - Commands written as C(PreDown) lines of the persisted file; the same rules as O(post_up).
    type: list
    elements: str
    default: []
  rule_sets:
    description:
      - Rule sets of this host, brought to their state in the same call after the interface and its
        O(routes) - exactly as M(wgsp.service_proxy.wg_rule_sets) does with the same list (each entry's
        C(module), C(name) and C(params) are that module's; every set is judged before the interface is
        touched, then each is applied in its own transaction). One round trip for the tunnel and the
        firewall that uses it.
      - When omitted (the default), no rule set is touched.
    type: list
    elements: dict
    version_added: 0.1.0
    suboptions:
      module:
        description: The module whose parameters O(rule_sets[].params) are.
        type: str
        required: true
        choices: [wg_carrier, wg_dnat, wg_filter, wg_relay]
      name:
        description: The set's name; when given it must equal the C(name) in O(rule_sets[].params).
        type: str
      params:
        description: The set's parameters, exactly the options of the module named in O(rule_sets[].module).
        type: dict
        required: true
  record_rule_sets:
    description:
      - Also write the entries of O(rule_sets) whose C(params.state) is C(present) (the default), as given, as the
        O(record)'s C(rule_sets) - the sets M(wgsp.service_proxy.wg_status) compares the host with - instead of the
        caller listing them twice. O(record) must not have a C(rule_sets) key then.
    type: bool
    default: false
    version_added: 0.1.0
extends_documentation_fragment:
  - wgsp.service_proxy.record
attributes:
  check_mode:
    support: full
    description: Reports the planned changes and creates nothing (no interface, no key file, no process).
  diff_mode:
    support: full
    description:
      - Before/after of addresses, ports, MTU, peers and files. The private key is shown as its public
        key; preshared keys as C(<preshared key set>) or C(<preshared key changed>).
      - With O(routes) given and O(state=present), a list of two diffs - the interface's first, then the
        collection's routes on the interface (header C(routes on <name>)).
  platform:
    support: full
    description: Linux only (netlink, tun, wireguard-go).
    platforms: linux
requirements:
  - python >= 3.8 on the managed host
  - pyroute2 >= 0.7 for links and addresses (only its stable C(IPRoute) API; Debian 12's 0.7.2 and
    Debian 13's 0.7.7 packages work with both backends)
  - the WireGuard kernel module, or C(wireguard-go) for the userspace backend
notes:
  - Inputs are validated before anything is touched; errors name the option and the problem and never
    echo a key.
  - "The steps of one call, in order: the interface (keys, addresses, peers, the persisted file), its
    O(routes), the O(rule_sets), the O(boot_units), the O(record). A step that fails stops the call there:
    what was done before it stays done (the result says it changed) and the record is not written."
  - O(backend=auto) picks C(kernel) when the kernel's C(wireguard) generic netlink family resolves
    (after C(modprobe wireguard) if needed), else C(userspace) when C(wireguard-go) is installed, and
    fails naming both otherwise.
  - The kernel backend does not use pyroute2's C(WireGuard) class (releases before 0.9.3, including
    Debian's, send wrong peer flags that wipe a peer's allowed IPs).
  - The collection's integration tests run on hosts without the WireGuard kernel module, so they
    exercise the userspace backend (real C(wireguard-go) in network namespaces). The kernel backend is
    unit-tested at the socket boundary (the exact netlink bytes and flags) and run in a qemu VM that
    boots Debian's kernel with its WireGuard module, with Debian's own python3-pyroute2.
  - Routes for the allowed IPs are not added by themselves; list them in O(routes) (or use the
    C(wg_route) module).
seealso:
  - module: wgsp.service_proxy.wg_route
  - module: wgsp.service_proxy.wg_rule_sets
  - module: wgsp.service_proxy.wg_host
  - name: WireGuard cross-platform userspace API
    description: The UAPI protocol the userspace backend speaks.
    link: https://www.wireguard.com/xplatform/
author:
  - wgsp.service_proxy maintainers (@wgsp)
"""

EXAMPLES = r"""
- name: Hub interface, key generated on the hub, two clients
  wgsp.service_proxy.wg_interface:
    name: wg0
    addresses: [10.7.0.1/24]
    listen_port: 51820
    peers:
      - public_key: "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
        allowed_ips: [10.7.0.2/32]
      - public_key: "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0="
        preshared_key_path: /etc/wireguard/wg0-share1.psk
        allowed_ips: [10.7.0.3/32]

- name: Client interface pointing at the hub, re-applying a firewall set at boot
  wgsp.service_proxy.wg_interface:
    name: wg0
    addresses: [10.7.0.2/32]
    post_up:
      - nft -f /etc/wg-service-proxy/ruleset.nft
    peers:
      - public_key: "{{ hostvars['hub'].wg_public_key }}"
        endpoint: hub.example.net:51820
        allowed_ips: [10.7.0.0/24]
        persistent_keepalive: 25
  register: wg

- name: Client interface and its routes in one call (the tunnel subnet and a LAN behind the hub)
  wgsp.service_proxy.wg_interface:
    name: wg0
    addresses: [10.7.0.2/32]
    peers:
      - public_key: "{{ hostvars['hub'].wg_public_key }}"
        endpoint: hub.example.net:51820
        allowed_ips: [10.7.0.0/24, 192.168.50.0/24]
        persistent_keepalive: 25
    routes:
      - dest: 10.7.0.0/24
      - dest: 192.168.50.0/24
        metric: 100
    post_up:
      - ip route replace 10.7.0.0/24 dev %i proto 87
      - ip route replace 192.168.50.0/24 dev %i metric 100 proto 87

- name: Publish this host's public key
  ansible.builtin.set_fact:
    wg_public_key: "{{ wg.public_key }}"

- name: Remove the interface, its daemon, its wg-quick file and its key
  wgsp.service_proxy.wg_interface:
    name: wg0
    state: absent
    remove_key: true
"""

RETURN = r"""
rule_sets:
  description:
    - With O(rule_sets), one result per set in the order applied (on failure, the sets done before it), as
      M(wgsp.service_proxy.wg_rule_sets) returns them.
  returned: when O(rule_sets) is given
  type: list
  elements: dict
  sample: [{module: wg_filter, name: input, changed: false, backend: iptables, plan: [], applied: false}]
changed_sets:
  description: The names of the sets of O(rule_sets) that changed (or would change, in check mode).
  returned: when O(rule_sets) is given
  type: list
  elements: str
  sample: []
record_changes:
  description: What O(boot_units) and O(record) changed (or would change) - C(boot_units:<unit>), C(record_path).
  returned: always
  type: list
  elements: str
  sample: [record_path]
interface:
  description: The interface name.
  returned: always
  type: str
  sample: wg0
backend:
  description: The backend that manages the interface (C(kernel) or C(userspace)); null when absent.
  returned: always
  type: str
  sample: userspace
public_key:
  description: The interface's public key. Null in check mode when the key is still to be generated.
  returned: always
  type: str
  sample: "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
listen_port:
  description: The UDP port the interface listens on (planned value in check mode).
  returned: when O(state=present)
  type: int
  sample: 51820
addresses:
  description: The interface's addresses (kernel IPv6 link-local addresses left out).
  returned: when O(state=present)
  type: list
  elements: str
  sample: [10.7.0.1/24]
mtu:
  description: The interface's MTU.
  returned: when O(state=present)
  type: int
  sample: 1420
fwmark:
  description: The firewall mark, 0 for none.
  returned: when O(state=present)
  type: int
  sample: 0
peers:
  description: The peers as the device reports them after the run - no keys but the public ones.
  returned: always
  type: list
  elements: dict
  contains:
    public_key:
      description: The peer's public key.
      type: str
    endpoint:
      description: The endpoint as C(ip:port), null when none is known.
      type: str
    allowed_ips:
      description: Allowed IPs, sorted.
      type: list
      elements: str
    persistent_keepalive:
      description: Keepalive interval, 0 when off.
      type: int
  sample:
    - public_key: "TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0="
      endpoint: "192.0.2.1:51820"
      allowed_ips: [10.7.0.0/24]
      persistent_keepalive: 25
actions:
  description: The planned changes in words (empty when nothing changed). Never holds a secret.
  returned: always
  type: list
  elements: str
  sample: ["add peer TrMvSoP4jYQlY6RIzBgbssQqY3vxI2Pi+y71lOWWXX0= (allowed_ips)"]
set_requests:
  description:
    - How many set requests were sent to the device (UAPI C(set=1) transactions or netlink
      C(WG_CMD_SET_DEVICE) messages). 0 when nothing changed.
  returned: always
  type: int
  sample: 1
config_path:
  description: The persisted wg-quick file, null with O(persist=false).
  returned: when O(state=present)
  type: str
  sample: /etc/wireguard/wg0.conf
key_path:
  description: The private key file in use, null when O(private_key) was given.
  returned: when O(state=present)
  type: str
  sample: /etc/wireguard/wg0.key
routes:
  description: The normalised routes that were requested (as C(wg_route) returns them).
  returned: when O(routes) is given and O(state=present)
  type: list
  elements: dict
  version_added: 0.1.0
  sample: [{dest: 10.7.0.0/24, interface: wg0, table: 254, metric: 0, gateway: null, family: ipv4}]
routes_added:
  description: Routes added or replaced (rendered like C(ip route)); planned ones in check mode.
  returned: when O(routes) is given and O(state=present)
  type: list
  elements: str
  version_added: 0.1.0
  sample: ["10.7.0.0/24 dev wg0 table 254 metric 0 proto 87"]
routes_removed:
  description: The collection's routes on the interface that were removed because they are no longer listed.
  returned: when O(routes) is given and O(state=present)
  type: list
  elements: str
  version_added: 0.1.0
  sample: ["10.9.0.0/24 dev wg0 table 254 metric 0 proto 87"]
"""

import traceback

from ansible.module_utils.basic import missing_required_lib

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.module import WgspModule
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.runner import CommandRunner
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.checks import check_ifname
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import (
    ValidationError,
    WgspError,
    fail_from_error,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common import systemd as systemd_
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.sets import (
    RULE_SETS_OPTION,
    SetsFailed,
    apply_sets,
    prepare as prepare_sets,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._status.record import RECORD_OPTIONS, Record
from ansible_collections.wgsp.service_proxy.plugins.module_utils._routes import (
    ROUTE_PROTO,
    RouteManager,
    normalise_routes,
    sync_routes,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import netlink
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard.interface import WgInterface

# pyroute2's IPRoute as netlink imported it (None without pyroute2: main() fails on HAS_PYROUTE2 first)
IPRoute = netlink.IPRoute


def argument_spec():
    peer_options = dict(
        public_key=dict(type="str", required=True, no_log=False),
        preshared_key=dict(type="str", no_log=True),
        preshared_key_path=dict(type="path", no_log=False),
        endpoint=dict(type="str"),
        allowed_ips=dict(type="list", elements="str", default=[]),
        persistent_keepalive=dict(type="int", default=0),
    )
    return dict(
        name=dict(type="str", required=True),
        state=dict(type="str", choices=["present", "absent"], default="present"),
        backend=dict(type="str", choices=["auto", "kernel", "userspace"], default="auto"),
        addresses=dict(type="list", elements="str"),
        listen_port=dict(type="int"),
        mtu=dict(type="int"),
        fwmark=dict(type="int"),
        private_key=dict(type="str", no_log=True),
        private_key_path=dict(type="path", no_log=False),
        remove_key=dict(type="bool", default=False, no_log=False),
        peers=dict(type="list", elements="dict", default=[], options=peer_options,
                   mutually_exclusive=[["preshared_key", "preshared_key_path"]]),
        exclusive_peers=dict(type="bool", default=True),
        persist=dict(type="bool", default=True),
        table=dict(type="str", default="off"),
        post_up=dict(type="list", elements="str", default=[]),
        pre_down=dict(type="list", elements="str", default=[]),
        routes=dict(type="list", elements="dict", options=dict(
            dest=dict(type="str", required=True),
            table=dict(type="raw"),
            metric=dict(type="int"),
            gateway=dict(type="str"),
        )),
        rule_sets=RULE_SETS_OPTION,
        record_rule_sets=dict(type="bool", default=False),
        **RECORD_OPTIONS
    )


def desired_routes(params):
    """The validated O(routes) as ``Route`` objects; None when routes are not managed (not given, or
    O(state=absent): deleting the link removes its routes). Raises ``ValidationError`` naming the entry
    (``routes[N].x``) before anything is read or touched."""
    if params["routes"] is None or params["state"] != "present":
        return None
    name = check_ifname("name", params["name"])
    routes = [dict((k, v) for k, v in route.items() if v is not None) for route in params["routes"]]
    return normalise_routes(routes, name)


def add_diff(result, diffs):
    """Append ``diffs`` to the result's diff (one dict, or a list of them)."""
    if diffs:
        current = result.get("diff")
        result["diff"] = ([current] if isinstance(current, dict) else list(current or [])) + list(diffs)


def apply_routes(iproute, desired, ifname, result, check_mode=False, want_diff=False):
    """Make the collection's routes (proto ROUTE_PROTO) on ``ifname`` exactly ``desired`` (foreign routes
    are never touched; a conflict with one fails before any route change); update ``result``."""
    added, removed, routes_diff = sync_routes(RouteManager(iproute, proto=ROUTE_PROTO), desired, ifname,
                                              exclusive=True, check_mode=check_mode)
    result["routes"] = [route.to_dict() for route in desired]
    result["routes_added"] = added
    result["routes_removed"] = removed
    result["actions"] = (list(result.get("actions") or []) + ["remove route %s" % r for r in removed]
                         + ["add route %s" % r for r in added])
    result["changed"] = bool(result.get("changed") or added or removed)
    if want_diff:
        add_diff(result, [routes_diff])
    return result


def recorded_sets(params):
    """With O(record_rule_sets), the record's ``rule_sets``: the entries of O(rule_sets) whose state is
    present, as given (``module``, ``name``, ``params``; what wg_status compares the host with)."""
    if not params["record_rule_sets"]:
        return None
    if params["record"] is None:
        raise ValidationError("record_rule_sets", "needs record")
    if "rule_sets" in params["record"]:
        raise ValidationError("record", "has rule_sets of its own; with record_rule_sets the module records them")
    sets = [{"module": entry["module"], "name": entry["name"] or entry["params"].get("name"), "params": entry["params"]}
            for entry in params["rule_sets"] or [] if entry["params"].get("state", "present") == "present"]
    return {"rule_sets": sets}


def main():
    module = WgspModule(
        argument_spec=argument_spec(),
        mutually_exclusive=[["private_key", "private_key_path"]],
        supports_check_mode=True,
    )
    if not netlink.HAS_PYROUTE2:
        module.fail_json(msg=missing_required_lib("pyroute2"), exception=str(netlink.PYROUTE2_IMPORT_ERROR))
    runner = CommandRunner(module)
    try:
        # every step judged before the first one changes anything
        routes = desired_routes(module.params)
        sets = prepare_sets(module.params["rule_sets"], runner) if module.params["rule_sets"] is not None else None
        record = Record(module.params, recorded_sets(module.params))
        result = WgInterface(module.params, check_mode=module.check_mode, want_diff=module._diff,
                             runner=runner).run()
    except WgspError as exc:
        fail_from_error(module, exc)
    if routes is not None:
        # the interface is configured: a failure from here on says so (changed)
        iproute = None
        try:
            iproute = IPRoute()
            apply_routes(iproute, routes, result["interface"], result, check_mode=module.check_mode,
                         want_diff=module._diff)
        except WgspError as exc:  # ValidationError included
            fail_from_error(module, exc, changed=result["changed"])
        except Exception as exc:  # noqa: BLE001 - netlink errors carry errno and message
            module.fail_json(msg="routes: netlink: %s" % (exc,), field="routes", changed=result["changed"],
                             exception=traceback.format_exc())
        finally:
            if iproute is not None:
                iproute.close()
    if sets is not None:
        try:
            done, diffs = apply_sets(sets, module, runner)
        except SetsFailed as exc:
            fail_from_error(module, exc, rule_sets=exc.done,
                            changed=result["changed"] or any(item["changed"] for item in exc.done))
        result["rule_sets"] = done
        result["changed_sets"] = [item["name"] for item in done if item["changed"]]
        result["changed"] = result["changed"] or bool(result["changed_sets"])
        if module._diff:
            add_diff(result, diffs)
    try:
        result["record_changes"] = record.apply(module, systemd_.runs(), module.check_mode)
    except WgspError as exc:
        fail_from_error(module, exc, changed=result["changed"])
    except (IOError, OSError) as exc:
        module.fail_json(msg="record_path: cannot write %s: %s" % (module.params["record_path"], exc.strerror or exc),
                         field="record_path", changed=result["changed"])
    result["changed"] = result["changed"] or bool(record.changes)
    if module._diff:
        add_diff(result, record.diff)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
