#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: wg_route
short_description: Routes to remote tunnel addresses or subnets through a WireGuard interface
version_added: 0.1.0
description:
  - Adds routes (destination, optional table, metric and gateway) through one interface with
    pyroute2 (netlink), idempotently, for IPv4 and IPv6.
  - "Routes the module installs carry its own routing protocol number O(proto) (default C(87);
    C(ip route) shows C(proto 87)). With O(exclusive=true) the module removes routes on O(interface)
    that carry that number and are no longer listed; it never removes a route it did not install."
  - A listed route that already exists with the same destination, table, metric, interface and gateway
    (whoever installed it) is left alone. One of the module's own (carrying O(proto)) with the same
    destination, table and metric but another interface or gateway is replaced.
  - "A route someone else installed (another protocol number, e.g. C(proto boot) or C(proto kernel), or
    another route type such as C(blackhole)) with the same destination, table and metric is never
    replaced or removed: the run fails before any change, naming the route and the O(routes) entry."
  - Replaces the original project's C(WG_INTERFACE_ROUTING_MASK) / C(WG_DISABLE_INTERFACE_ROUTING).
author:
  - wgsp.service_proxy contributors (@wgsp)
requirements:
  - pyroute2 (0.7.2 or later)
attributes:
  check_mode:
    support: full
    description: Reports the routes that would be added and removed, changes nothing.
  diff_mode:
    support: full
    description: Before/after lists of the module's routes on O(interface).
  platform:
    support: full
    platforms: linux
    description: Linux only (netfilter, netlink).
options:
  interface:
    description:
      - The interface the routes go through (e.g. C(wg0)). It must exist for O(state=present).
      - One interface name (1-15 characters from C(a-z A-Z 0-9 _ = . -), not C(.)/C(..), not starting with C(-),
        no C(+)).
    type: str
    required: true
  routes:
    description: The routes through O(interface).
    type: list
    elements: dict
    default: []
    suboptions:
      dest:
        description: Destination network (CIDR, host bits zero) or a single address; no IPv6 scope id.
        type: str
        required: true
      table:
        description:
          - Routing table number (1-4294967295) or V(main) (254), V(default) (253); default O(table).
          - The kernel's V(local) table (C(255)) and C(0) are refused, by name and by number.
        type: raw
      metric:
        description:
          - Route metric (priority); default O(metric), else the kernel's (0 for IPv4, 1024 for IPv6).
          - The kernel stores an IPv6 metric of 0 as 1024.
        type: int
      gateway:
        description: Next hop address (same family as O(routes[].dest)); unset for a device route.
        type: str
  table:
    description: Default table for O(routes); V(main) when unset. Same values as O(routes[].table).
    type: raw
  metric:
    description: Default metric for O(routes).
    type: int
  state:
    description:
      - V(present) adds the listed routes. V(absent) removes the listed routes the module installed;
        with an empty O(routes), every route it installed on O(interface).
    type: str
    choices: [present, absent]
    default: present
  exclusive:
    description: With O(state=present), also remove the module's routes on O(interface) that are not listed.
    type: bool
    default: false
  proto:
    description: Routing protocol number marking the module's routes.
    type: int
    default: 87
notes:
  - Works with pyroute2 0.7.2 (Debian 12) and 0.9.x; only the stable C(IPRoute) API is used.
seealso:
  - module: wgsp.service_proxy.wg_dnat
"""

EXAMPLES = r"""
- name: Route the tunnel subnet and a remote LAN through wg0
  wgsp.service_proxy.wg_route:
    interface: wg0
    exclusive: true
    routes:
      - dest: 10.7.0.0/24
      - dest: 192.168.50.0/24
        metric: 100
      - dest: fd00:7::/64

- name: A route in a separate table
  wgsp.service_proxy.wg_route:
    interface: wg0
    routes:
      - {dest: 0.0.0.0/0, table: 51820}

- name: Remove every route this module installed on wg0
  wgsp.service_proxy.wg_route:
    interface: wg0
    state: absent
"""

RETURN = r"""
routes:
  description: The normalised routes that were requested.
  returned: always
  type: list
  elements: dict
  sample: [{dest: 10.7.0.0/24, interface: wg0, table: 254, metric: 0, gateway: null, family: ipv4}]
added:
  description: Routes added or replaced (rendered like C(ip route)).
  returned: always
  type: list
  elements: str
  sample: ["10.7.0.0/24 dev wg0 table 254 metric 0 proto 87"]
removed:
  description: Routes removed.
  returned: always
  type: list
  elements: str
"""

import traceback  # noqa: E402

from ansible.module_utils.basic import missing_required_lib  # noqa: E402

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.module import WgspModule  # noqa: E402
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import WgspError, fail_from_error  # noqa: E402
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.checks import check_int  # noqa: E402
from ansible_collections.wgsp.service_proxy.plugins.module_utils._routes import (  # noqa: E402
    ROUTE_PROTO,
    RouteManager,
    check_table,
    normalise_routes,
    sync_routes,
)

try:
    from pyroute2 import IPRoute  # noqa: E402
    HAS_PYROUTE2 = True
    PYROUTE2_ERROR = None
except ImportError:  # pragma: no cover - depends on the host
    HAS_PYROUTE2 = False
    PYROUTE2_ERROR = traceback.format_exc()

ARGUMENT_SPEC = dict(
    interface=dict(type="str", required=True),
    routes=dict(type="list", elements="dict", default=[], options=dict(
        dest=dict(type="str", required=True),
        table=dict(type="raw"),
        metric=dict(type="int"),
        gateway=dict(type="str"),
    )),
    table=dict(type="raw"),
    metric=dict(type="int"),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    exclusive=dict(type="bool", default=False),
    proto=dict(type="int", default=ROUTE_PROTO),
)


def run(module, iproute):
    params = module.params
    proto = check_int("proto", params["proto"], 5, 254)
    if params["table"] is not None:
        check_table("table", params["table"])
    if params["metric"] is not None:
        check_int("metric", params["metric"], 0, 4294967295)
    routes_in = [dict((k, v) for k, v in r.items() if v is not None) for r in params["routes"]]
    desired = normalise_routes(routes_in, params["interface"], params["table"], params["metric"])
    added, removed, diff = sync_routes(RouteManager(iproute, proto=proto), desired, params["interface"],
                                       params["state"], params["exclusive"], check_mode=module.check_mode)
    result = dict(changed=bool(added or removed), routes=[r.to_dict() for r in desired], added=added, removed=removed)
    if module._diff:
        result["diff"] = diff
    return result


def main():
    module = WgspModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    if not HAS_PYROUTE2:
        module.fail_json(msg=missing_required_lib("pyroute2"), exception=PYROUTE2_ERROR)
    iproute = IPRoute()
    try:
        result = run(module, iproute)
    except WgspError as exc:  # ValidationError included
        fail_from_error(module, exc)
    except Exception as exc:  # noqa: BLE001 - netlink errors carry errno and message
        module.fail_json(msg="netlink: %s" % (exc,), exception=traceback.format_exc())
    finally:
        iproute.close()
    module.exit_json(**result)


if __name__ == "__main__":
    main()
