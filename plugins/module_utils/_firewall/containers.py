# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``DockerResolver``: a ``to_container`` name resolved to an address through the Docker API (the
``docker`` SDK), or through DNS when Docker does not know the name.

Internal to the collection. The client is injected, so unit tests replace it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import socket

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import WgspError


class DockerResolver:
    """Resolve container names to addresses through the Docker API (``docker`` SDK).

    ``client``: a ``docker.DockerClient`` (or a fake in tests). ``network``: the Docker network to
    take the address from; without it the container must have exactly one network. When the
    container is not known to Docker the name is tried in DNS (``socket.getaddrinfo``) before
    failing with the list of existing containers.
    """

    def __init__(self, client, network=None, not_found=(), getaddrinfo=None):
        self.client = client
        self.network = network
        self.not_found = tuple(not_found) or (KeyError,)
        self.getaddrinfo = getaddrinfo or socket.getaddrinfo
        self.cache = {}

    def _names(self):
        try:
            return sorted(c.name for c in self.client.containers.list(all=True))
        except Exception:  # noqa: BLE001 - only used to enrich an error message
            return []

    def _dns(self, name):
        try:
            infos = self.getaddrinfo(name, None, 0, socket.SOCK_STREAM)
        except (socket.gaierror, OSError, UnicodeError):
            return None
        addrs = [info[4][0] for info in infos]
        v4 = [a for a in addrs if ":" not in a]
        return (v4 or addrs or [None])[0]

    def __call__(self, name):
        if name in self.cache:
            return self.cache[name]
        try:
            container = self.client.containers.get(name)
        except self.not_found:
            address = self._dns(name)
            if address:
                self.cache[name] = (address, None)
                return self.cache[name]
            names = self._names()
            raise WgspError(
                "to_container: no container named %r (not in Docker, not in DNS); existing containers: %s"
                % (name, ", ".join(names) if names else "(none)"),
                containers=names)
        networks = ((container.attrs or {}).get("NetworkSettings") or {}).get("Networks") or {}
        if self.network:
            if self.network not in networks:
                raise WgspError(
                    "to_container: container %r is not on docker_network %r (it is on: %s)"
                    % (name, self.network, ", ".join(sorted(networks)) or "no network"))
            net_name = self.network
        elif len(networks) == 1:
            net_name = list(networks)[0]
        elif not networks:
            net_name = None
        else:
            raise WgspError(
                "to_container: container %r is on several networks (%s); set docker_network"
                % (name, ", ".join(sorted(networks))))
        address = None
        if net_name is not None:
            info = networks[net_name] or {}
            address = info.get("IPAddress") or info.get("GlobalIPv6Address")
        if not address:
            address = self._dns(name)
        if not address:
            raise WgspError("to_container: container %r has no address on %s (is it running?)"
                            % (name, net_name or "any network"))
        self.cache[name] = (address, net_name)
        return self.cache[name]
