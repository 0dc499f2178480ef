# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""One status report of this host, read live: what ``wg_status`` returns and the metrics writer
exports. Both call ``status_of`` so the numbers a monitoring stack scrapes are the ones a person sees.

Internal to the collection. pyroute2 is imported by the caller (the module reports it missing as
Ansible does; the writer prints it).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.backend import rule_set_status
from ansible_collections.wgsp.service_proxy.plugins.module_utils._routes import RouteManager
from ansible_collections.wgsp.service_proxy.plugins.module_utils._status import report as status_report
from ansible_collections.wgsp.service_proxy.plugins.module_utils._status import views as status_views
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard.interface import read_interface


def host_readers(iproute):
    """The live readers of this host: interface, routes through it, the route to an address."""
    manager = RouteManager(iproute)

    def routes(ifname):
        oif = manager.oif(ifname)
        return status_views.routes_view(manager.installed(oif, ifname), oif)

    def route_of(address):
        try:
            msgs = iproute.route("get", dst=str(address))
        except Exception:  # noqa: BLE001 - unreachable destinations raise NetlinkError
            return None
        for msg in msgs:
            oif = msg.get_attr("RTA_OIF")
            if oif is None:
                continue
            links = iproute.get_links(oif)
            return links[0].get_attr("IFLA_IFNAME") if links else str(oif)
        return None

    return read_interface, routes, route_of


def status_of(iproute, runner, interface="wg0", state_dir="/etc/wg-service-proxy", state_file=None,
              fresh=status_views.FRESH_SECONDS, probe=False, probe_timeout=2.0, hub_probe_port=22):
    """The ``wg_status`` result of ``interface`` (raises ``WgspError`` on bad input or a broken state file)."""
    read, routes, route_of = host_readers(iproute)
    report = status_report.StatusReport(
        interface, read, lambda name, args: rule_set_status(name, args, runner),
        routes=routes, route_of=route_of, state_dir=state_dir, state_file=state_file,
        fresh=fresh, probe=probe, probe_timeout=probe_timeout, hub_probe_port=hub_probe_port)
    return report.run()
