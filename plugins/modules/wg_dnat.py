#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: wg_dnat
short_description: Owned, atomic DNAT/forwarding rule sets for the WireGuard service proxy
version_added: 0.1.0
description:
  - Manages one named set of port-forwarding rules as a whole. After the call the set holds exactly
    the listed rules and nothing outside the set was touched.
  - Each rule DNATs a port (or port range) arriving on an interface to an address (or a Docker
    container resolved through the Docker API), accepts exactly that forwarded traffic (and its
    replies) in the forward path, optionally restricted to O(sources), optionally MASQUERADEs it and
    logs new connections.
  - "On a share client: C(wg0:80 -> container). On a proxy client: C(eth0:80 -> 10.7.0.2:80 via wg0)
    with O(masquerade=true) so replies return through the tunnel."
  - "iptables backend: chains C(WGSP-<NAME>-PRE) (nat), C(WGSP-<NAME>-POST) (nat) and
    C(WGSP-<NAME>-FWD) (filter), each reached by one jump from PREROUTING, POSTROUTING and FORWARD
    (from DOCKER-USER when that chain exists, so Docker's FORWARD DROP policy does not drop the
    traffic), inserted only when missing. Every rule carries the comment C(wgsp:<name>).
    The complete chains are rendered, compared with C(iptables-save) and changed in one
    C(iptables-restore --noflush) transaction per address family (IPv4 and IPv6 are two
    transactions: C(iptables-restore) and C(ip6tables-restore)), after C(--test) validated both."
  - "nftables backend: one table C(inet wgsp-dnat-<name>) (comment C(wgsp:<name>), its owner mark),
    replaced in one C(nft -f) transaction after C(nft -c) validated it. An accept in this table cannot
    override a drop in another table. A table named C(inet wgsp_<name>) (its earlier name, which
    collided with M(wgsp.service_proxy.wg_filter)'s tables) that carries this set's owner mark is
    deleted in the same transaction."
  - A chain or table of the set's name that does not carry the set's owner mark (iptables - a chain
    with rules none of which has the comment C(wgsp:<name>); nftables - a table whose comment differs)
    is never replaced or deleted; the run fails before any change, naming it.
  - After a rule's target changed or a rule was removed, the conntrack entries of the old mapping are
    deleted (C(conntrack -D)), so existing UDP flows do not keep the old target. Only this set's
    flows are deleted - for a rule with an O(in_interface), those whose original destination is an
    address of that interface (another set may forward the same port to the same target from
    another interface)."
  - "Migration from the original project's C(.env) files: C(WG_DOCKER_ALLOWED_HOSTS) entries
    (C(name[:proto]:port)) go to O(compact_rules) with O(in_interface=wg0); C(WG_PUBLIC_PORTS)
    entries (C(public_port:wg_ip:port)) go to O(compact_rules) with O(in_interface) set to the public
    interface, O(out_interface=wg0) and O(masquerade=true); C(WG_PUBLIC_ALLOWED_CIDR) becomes
    O(sources) (it now filters the forwarded traffic, not INPUT); C(WG_LOG_PUBLIC_ACCESS) becomes
    O(log); C(WG_DOCKER_NETWORK) becomes O(docker_network)."
author:
  - wgsp.service_proxy contributors (@wgsp)
requirements:
  - iptables (C(iptables-save), C(iptables-restore); C(ip6tables-*) for IPv6 rules) or nftables (C(nft))
  - conntrack (optional, to delete stale flows)
  - the C(docker) Python SDK, only when a rule uses O(rules[].to_container) or a compact share entry
attributes:
  diff_mode:
    support: full
    description: Before/after lines of the set's rules and jumps, and of its own O(persist_path) scripts (never another file's content).
  platform:
    support: full
    platforms: linux
    description: Linux only (netfilter, netlink).
options:
  name:
    description:
      - Name of the rule set, 1-12 characters from C(a-z 0-9 _). It names the chains and the table.
    type: str
    required: true
  state:
    description:
      - V(present) makes the set contain exactly the given rules; V(absent) removes every chain, jump
        and table of the set, and the boot scripts it wrote (O(persist_path)).
    type: str
    choices: [present, absent]
    default: present
  rules:
    description:
      - The rules of the set (structured form). Unset keys take the module-level defaults
        O(in_interface), O(out_interface), O(masquerade), O(sources), O(log).
    type: list
    elements: dict
    default: []
    suboptions:
      proto:
        description: Protocol; V(both) and V(all) mean TCP and UDP.
        type: str
        choices: [tcp, udp, both, all]
        default: tcp
      in_interface:
        description:
          - Interface the traffic arrives on (e.g. C(wg0) on a share client, C(eth0) on a proxy).
          - One interface name (1-15 characters from C(a-z A-Z 0-9 _ = . -), not C(.)/C(..), not starting
            with C(-)). Wildcards such as C(eth+) are refused (iptables and nftables read them differently).
        type: str
      port:
        description: Port matched on arrival, V(N) or a range V(N-M).
        type: raw
        required: true
      to_address:
        description:
          - IPv4 or IPv6 address to forward to. Mutually exclusive with O(rules[].to_container).
          - A unicast address; unspecified (C(0.0.0.0), C(::)), loopback (C(127.0.0.0/8), C(::1)), multicast,
            C(255.255.255.255), the broadcast address of a network of this host and IPv6 scope ids
            (C(fe80::1%eth0)) are refused.
        type: str
      to_container:
        description:
          - Docker container name, resolved to its address through the Docker API on O(docker_network)
            (or on the container's only network), falling back to DNS.
        type: str
      to_port:
        description:
          - Port to forward to; defaults to O(rules[].port).
          - For a range, a range of the same length, forwarded port by port (V(30000-30010) to V(40000-40010) sends
            30005 to 40005), by iptables' C(--to-destination address:40000-40010/30000) or an nftables map of each port.
        type: raw
      out_interface:
        description: Interface the forwarded traffic leaves on (e.g. C(wg0) on a proxy); one name, no wildcard.
        type: str
      masquerade:
        description: Rewrite the source of the forwarded traffic (replies then return through this host).
        type: bool
      sources:
        description:
          - Source CIDRs allowed to use the rule; others are rejected in the forward path. Empty = anyone.
          - V(0.0.0.0/0) or V(::/0) also means anyone (no source match is installed). Host bits are
            cleared. IPv4-mapped IPv6 addresses (V(::ffff:192.0.2.1)) are refused; write the IPv4 form.
        type: list
        elements: str
      log:
        description: Log new connections (kernel log, prefix C(wgsp-<name>)).
        type: bool
  compact_rules:
    description:
      - Rules in the original project's compact forms, for copy-paste migration.
      - "Share form C(name[:proto]:port) (C(WG_DOCKER_ALLOWED_HOSTS)): forward O(in_interface)'s port to the
        same port of container C(name); proto C(tcp) (default), C(udp), C(both) or C(all)."
      - "Publish form C([proto:]public_port:address:port) (C(WG_PUBLIC_PORTS)), address may be C([ipv6]); either
        port may be a range C(N-M), the two of the same length (C(udp:30000-30010:10.7.0.2:40000-40010))."
      - Interfaces, masquerade, sources and log come from the module-level defaults.
    type: list
    elements: str
    default: []
  in_interface:
    description: Default O(rules[].in_interface). Unset = any interface.
    type: str
  out_interface:
    description: Default O(rules[].out_interface). Unset = any interface.
    type: str
  masquerade:
    description: Default O(rules[].masquerade).
    type: bool
    default: false
  sources:
    description: Default O(rules[].sources) (C(WG_PUBLIC_ALLOWED_CIDR)).
    type: list
    elements: str
    default: []
  log:
    description: Default O(rules[].log).
    type: bool
    default: false
  protect_ports:
    description:
      - UDP ports no rule may forward. The listen ports of all local WireGuard interfaces (C(wg show all
        listen-port), kernel or wireguard-go) are always protected, so a rule cannot steal the tunnel's
        own packets.
      - Each a port 1-65535.
    type: list
    elements: int
    default: []
  docker_network:
    description: Docker network to take a container's address from (C(WG_DOCKER_NETWORK)).
    type: str
  docker_host:
    description: Docker daemon URL; default from C(DOCKER_HOST) or the local socket.
    type: str
  flush_conntrack:
    description: Delete conntrack entries of mappings whose target changed or that were removed.
    type: bool
    default: true
  persist_path:
    description:
      - With O(state=present), also write a POSIX C(sh) script to this absolute path that re-creates
        exactly this rule set without Ansible and can run any number of times (e.g. from the wg-quick
        config's C(PostUp = sh <persist_path>), so a reboot restores the rules).
      - "iptables: one C(iptables-restore --noflush) per address family of the set's own chains, then
        each jump inserted only when C(iptables -C) says it is missing (the forward jump into
        C(DOCKER-USER) when that chain exists when the script runs). nftables: one C(nft -f) of the
        table-replace file the module itself loads."
      - Written atomically with mode C(0644), only when its content changes (that counts as a change
        and shows in diff mode). Missing directories are created C(0755), whatever the umask. With
        O(state=absent) the file is removed.
      - "Only this set's own boot script is ever replaced or removed: every file the module writes
        carries the header line C(# Generated by wgsp.service_proxy.wg_dnat: rule set <name> ...).
        A file without it (a key, an admin's script), another set's script, a symbolic link, a
        directory or a device at this path is refused, and so is a directory that is not writable
        (read-only file system) or a name over the kernel's limit (255 bytes per name, NAME_MAX):
        all checked before the firewall changes, with an error naming
        O(persist_path). Diff mode shows only this set's own script, never another file's content."
      - The paths written are recorded in C(/var/lib/wgsp-service-proxy/boot-scripts/wg_dnat.<name>);
        O(state=absent) removes every recorded script that still carries this set's header, also
        without O(persist_path), so a later C(wg-quick up) or boot does not bring the set back.
      - At most 1024 characters from C(A-Z a-z 0-9 _ . , + @ = / -); C(..) is refused.
    type: path
notes:
  - The module never touches rules outside its own chains/table, and only inserts or deletes its own jumps.
  - Two rules matching the same port, protocol and interface are refused as a conflict.
extends_documentation_fragment:
  - wgsp.service_proxy.rule_set
seealso:
  - module: wgsp.service_proxy.wg_route
"""

EXAMPLES = r"""
- name: Share client, expose containers on the tunnel address (WG_DOCKER_ALLOWED_HOSTS=dummy:tcp:80,dns:udp:53)
  wgsp.service_proxy.wg_dnat:
    name: share
    in_interface: wg0
    docker_network: services
    compact_rules:
      - dummy:tcp:80
      - dns:udp:53

- name: Proxy client, publish ports through the tunnel to the share client (WG_PUBLIC_PORTS=80:10.7.0.2:80)
  wgsp.service_proxy.wg_dnat:
    name: public
    in_interface: eth0
    out_interface: wg0
    masquerade: true
    sources: [203.0.113.0/24]
    rules:
      - {port: 80, to_address: 10.7.0.2}
      - {proto: udp, port: 5000-5010, to_address: 10.7.0.2}
      - {proto: udp, port: 30000-30010, to_address: 10.7.0.2, to_port: 40000-40010}  # port by port
      - {proto: both, port: 8443, to_address: "fd00:7::2", to_port: 443, sources: ["2001:db8::/32"]}

- name: Also write a boot script that wg-quick runs (PostUp = sh /etc/wg-service-proxy/wg0-public.rules)
  wgsp.service_proxy.wg_dnat:
    name: public
    in_interface: eth0
    out_interface: wg0
    masquerade: true
    compact_rules: ["80:10.7.0.2:80"]
    persist_path: /etc/wg-service-proxy/wg0-public.rules

- name: Remove the set (chains, jumps, table)
  wgsp.service_proxy.wg_dnat:
    name: public
    state: absent
"""

RETURN = r"""
backend:
  description: The backend used.
  returned: always
  type: str
  sample: iptables
rules:
  description: The normalised rules, with containers resolved to the address they resolved to.
  returned: always
  type: list
  elements: dict
  sample:
    - {proto: tcp, family: ipv4, in_interface: wg0, port: 80, to_address: 172.18.0.2, to_port: 80,
       out_interface: null, masquerade: false, sources: [], log: false, to_container: dummy,
       docker_network: services}
plan:
  description: The changes made (or, in check mode, that would be made).
  returned: always
  type: list
  elements: str
  sample: ["ipv4 nat: create chain WGSP-PUBLIC-PRE (1 rules, was 0)"]
stale:
  description: DNAT mappings that were removed or retargeted (their conntrack entries were deleted).
  returned: always
  type: list
  elements: raw
conntrack:
  description: The C(conntrack -D) commands run.
  returned: always
  type: list
  elements: list
applied:
  description: Whether a transaction was applied (false when nothing changed and in check mode).
  returned: always
  type: bool
persist_path:
  description:
    - The boot scripts written or removed; null when none is involved (no O(persist_path), and no
      recorded script for O(state=absent) to remove).
  returned: always
  type: dict
  contains:
    path:
      description: O(persist_path) (null when O(state=absent) removes recorded scripts without it).
      type: str
      returned: success
    changed:
      description: Whether a script or the record was (or, in check mode, would be) written or removed.
      type: bool
      returned: success
    removed:
      description: The boot scripts of this set removed (or, in check mode, that would be removed).
      type: list
      elements: str
      returned: success
  sample: {path: /etc/wg-service-proxy/wg0-public.rules, changed: true, removed: []}
"""

from ansible.module_utils.basic import missing_required_lib  # noqa: E402

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.module import WgspModule  # noqa: E402
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.runner import CommandRunner  # noqa: E402
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import WgspError  # noqa: E402
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.backend import run_module, set_result  # noqa: E402
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.params import (  # noqa: E402
    DNAT_ARGUMENT_SPEC,
    dnat_rules,
    local_networks,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.containers import DockerResolver  # noqa: E402

# The docker SDK is imported only when a rule names a container (importing it costs ~0.1 s).
HAS_DOCKER = None


def _import_docker():
    """Return ``(docker module, NotFound, error)``; the module is None when the SDK is missing."""
    if HAS_DOCKER is False:
        return None, None, "docker SDK disabled"
    try:
        import docker
        from docker.errors import NotFound
    except ImportError as exc:
        return None, None, str(exc)
    return docker, NotFound, None


# One argument spec, shared with rule_set_status (module_utils/_firewall/params.py).
ARGUMENT_SPEC = DNAT_ARGUMENT_SPEC


def _resolver(module, params):
    docker, not_found, error = _import_docker()
    if docker is None:
        module.fail_json(msg=missing_required_lib("docker (Python SDK)"), exception=error)
    try:
        client = (docker.DockerClient(base_url=params["docker_host"]) if params["docker_host"]
                  else docker.from_env())
    except Exception as exc:  # noqa: BLE001 - the SDK raises several types
        raise WgspError("to_container: cannot reach the Docker API: %s" % exc)
    return DockerResolver(client, network=params["docker_network"] or None, not_found=(not_found,))


def main():
    module = WgspModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    runner = CommandRunner(module)
    output, rules, result = run_module(
        module, runner, "wg_dnat",
        lambda params: dnat_rules(params, runner, lambda p: _resolver(module, p), networks=local_networks()),
        conntrack=module.params["flush_conntrack"])
    module.exit_json(**set_result("wg_dnat", output, rules, result))


if __name__ == "__main__":
    main()
