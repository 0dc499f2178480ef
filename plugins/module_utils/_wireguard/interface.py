# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The logic of ``wgsp.service_proxy.wg_interface``: validate, read, plan, apply, read back.

Internal to the collection. The pipeline (``WgInterface.run``):

1. ``params.validate_params``: every option checked and normalised before anything is touched.
2. read: the link (``netlink.LinkOps``) and the WireGuard device through the backend that owns it
   (``backends.KernelBackend``: netlink genl; ``backends.UserspaceBackend``: wireguard-go's UAPI
   socket).
3. ``plan.compute_plan``: the difference, device / per-peer / link / files. ``changed`` = plan not
   empty.
4. check mode stops here; otherwise only the plan is applied (an empty plan sends nothing), the
   wg-quick file (``wgquick``) is written, and the state is read back for the result.

``read_interface(name)`` is the public read API (for ``wg_status``): a normalised dict with no
private or preshared key in it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.checks import check_ifname
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import WgspError
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.runner import CommandRunner
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import keys, netlink
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard.backends import (
    KernelBackend,
    UserspaceBackend,
    WIREGUARD_GO,
    _read_text,
    backend_for_link,
    find_wireguard_go,
    stop_processes,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard.params import CONF_DIR, validate_params
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard.plan import (
    EMPTY_DEVICE,
    KEY_UNKNOWN,
    PSK_CHANGED,
    Plan,
    _diff_view,
    compute_plan,
    normalize_device,
    normalize_link,
    public_view,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard.wgquick import render_wg_quick


def _unlink_quietly(path):
    try:
        os.unlink(path)
    except OSError:
        pass


def _named(field, func, *args):
    """Run one device/link change; a failure names the option it came from."""
    try:
        return func(*args)
    except WgspError as exc:
        if not field:
            raise
        details = dict(exc.details)
        details.setdefault("field", field)
        raise WgspError("%s: %s" % (field, exc.msg), **details)


class WgInterface:
    """One run of the module. Everything outside the host is injectable for unit tests."""

    def __init__(self, params, check_mode=False, want_diff=False, runner=None, link_ops=None,
                 backends=None, resolver=None, conf_dir=CONF_DIR, kernel_check=None, process_finder=None):
        self.params = params
        self.check_mode = check_mode
        self.want_diff = want_diff
        self.runner = runner or CommandRunner()
        self.link_ops = link_ops
        self.backends = backends or {}
        self.resolver = resolver
        self.conf_dir = conf_dir
        self.kernel_check = kernel_check  # None: ask the kernel backend (genl family, modprobe)
        self.process_finder = process_finder or find_wireguard_go

    def _backend(self, name, ifname):
        if name not in self.backends:
            if name == "kernel":
                self.backends[name] = KernelBackend(ifname, runner=self.runner, check_mode=self.check_mode)
            else:
                self.backends[name] = UserspaceBackend(ifname, self.runner)
        return self.backends[name]

    def _auto_backend(self, ifname):
        """``backend: auto`` for a new interface: kernel when its genl family resolves (after
        ``modprobe wireguard``), else userspace when wireguard-go is installed, else a clear error."""
        kernel = self._backend("kernel", ifname)
        if (self.kernel_check() if self.kernel_check is not None else kernel.available()):
            return "kernel"
        if self._backend("userspace", ifname).available():
            return "userspace"
        raise WgspError("backend auto found no WireGuard implementation to drive: kernel - %s; userspace - %s is "
                        "not installed (or not in PATH). Load the wireguard kernel module or install wireguard-go."
                        % (kernel.unavailable_reason(), WIREGUARD_GO))

    def run(self):
        want = validate_params(self.params, self.resolver)
        if want["private_key_path"] == os.path.join(CONF_DIR, "%s.key" % want["name"]) and self.conf_dir != CONF_DIR:
            want["private_key_path"] = os.path.join(self.conf_dir, "%s.key" % want["name"])
        if self.link_ops is None:
            self.link_ops = netlink.LinkOps(want["name"])
        if want["state"] == "absent":
            return self._absent(want)
        return self._present(want)

    # ---------------------------------------------------------------- absent
    def _absent(self, want):
        name = want["name"]
        conf_path = os.path.join(self.conf_dir, "%s.conf" % name)
        link = normalize_link(self.link_ops.read())
        plan = Plan()
        backend = None
        pids = self.process_finder(name)
        if link is not None:
            backend = self._backend(backend_for_link(name, link, want["backend"]), name)
            plan.delete = True
            plan.actions.append("delete interface %s (%s)" % (name, backend.name))
        if pids:
            plan.kill_pids = pids
            plan.actions.append("stop wireguard-go for %s (pid %s)" % (name, ", ".join(str(p) for p in pids)))
        if os.path.exists(conf_path):
            plan.remove_config = True
            plan.actions.append("remove %s" % conf_path)
        if want["remove_key"] and os.path.exists(want["private_key_path"]):
            plan.remove_key = True
            plan.actions.append("remove %s" % want["private_key_path"])
        result = {"changed": not plan.empty(), "interface": name, "backend": backend.name if backend else None,
                  "actions": plan.actions, "set_requests": 0, "public_key": None, "peers": []}
        if self.want_diff:
            result["diff"] = {
                "before": {"interface": name, "state": "present" if link else "absent",
                           "config_file": "present" if plan.remove_config else "absent",
                           "key_file": "present" if os.path.exists(want["private_key_path"]) else "absent"},
                "after": {"interface": name, "state": "absent", "config_file": "absent",
                          "key_file": "absent" if (plan.remove_key or not os.path.exists(want["private_key_path"]))
                          else "present"},
            }
        if self.check_mode or plan.empty():
            return result
        if plan.delete:
            backend.delete(self.link_ops, pids)
        elif plan.kill_pids:
            stop_processes(plan.kill_pids)
        if plan.remove_config:
            os.unlink(conf_path)
        if plan.remove_key:
            os.unlink(want["private_key_path"])
        return result

    # ---------------------------------------------------------------- present
    def _present(self, want):
        name = want["name"]
        conf_path = os.path.join(self.conf_dir, "%s.conf" % name)
        # read current state
        link = normalize_link(self.link_ops.read())
        if link is not None:
            backend_name = backend_for_link(name, link, want["backend"])
        elif want["backend"] != "auto":
            backend_name = want["backend"]
        else:
            backend_name = self._auto_backend(name)
        backend = self._backend(backend_name, name)
        backend.check_available()
        device = normalize_device(backend.read()) if link is not None else dict(EMPTY_DEVICE)

        # the private key: option, key file, the device's own (adopted), or a new one
        key_action = None
        private_key = want["private_key"]
        if private_key is None:
            private_key = keys.read_key_file("private_key_path", want["private_key_path"])
            if private_key is None:
                if device.get("private_key"):
                    private_key = device["private_key"]
                    key_action = "adopt"
                else:
                    key_action = "generate"
                    private_key = None if self.check_mode else keys.generate_private_key()
        want_public = keys.public_key(private_key) if private_key else None

        plan = compute_plan(want, link, device, private_key if private_key else None, key_action)

        # the planned state, for the diff and the wg-quick file
        after_link = {"addresses": want["addresses"] if want["addresses"] is not None else (link or {}).get("addresses", []),
                      "mtu": want["mtu"] if want["mtu"] is not None else (link or {}).get("mtu"), "up": True}
        after_peers = {}
        psk_marks = {}
        for pub, peer in (device.get("peers") or {}).items():
            if pub not in want["peers"] and not want["exclusive_peers"]:
                after_peers[pub] = dict(peer, endpoint_input=peer.get("endpoint"))
        for pub, peer in want["peers"].items():
            have = (device.get("peers") or {}).get(pub)
            item = dict(peer)
            if not item["endpoint"] and have:
                item["endpoint"] = have.get("endpoint")
            after_peers[pub] = item
            if have is not None and (have.get("preshared_key") or None) != (peer["preshared_key"] or None) and peer["preshared_key"]:
                psk_marks[pub] = PSK_CHANGED
        after_device = {"private_key": private_key, "public_key": want_public or KEY_UNKNOWN,
                        "listen_port": want["listen_port"] if want["listen_port"] is not None else device.get("listen_port"),
                        "fwmark": want["fwmark"] if want["fwmark"] is not None else device.get("fwmark"),
                        "peers": after_peers}

        config_before = _read_text(conf_path)
        config_state_before = "absent" if config_before is None else "present"
        config_state_after = config_state_before
        content = None
        if want["persist"]:
            if private_key is None:
                plan.write_config = True
            else:
                content = render_wg_quick(want, dict(after_link, fwmark=after_device["fwmark"], peers=after_peers), private_key)
                plan.write_config = content != config_before
            if plan.write_config:
                plan.actions.append("write %s" % conf_path)
                config_state_after = "present (rewritten)" if config_before is not None else "present (created)"

        result = {"changed": not plan.empty(), "interface": name, "backend": backend.name,
                  "public_key": want_public, "actions": plan.actions, "set_requests": 0,
                  "config_path": conf_path if want["persist"] else None,
                  "key_path": None if want["private_key"] else want["private_key_path"]}
        if self.want_diff:
            result["diff"] = {"before": _diff_view(name, link, device, config_state_before),
                              "after": _diff_view(name, after_link, after_device, config_state_after, psk_marks)}
        if self.check_mode:
            result.update(self._planned_result(after_link, after_device))
            return result
        if plan.empty():
            result.update(self._planned_result(link, device))
            return result

        # apply only the plan
        if plan.write_key:
            keys.write_key_file(want["private_key_path"], private_key)
        if plan.create:
            try:
                backend.create(self.link_ops)
            except WgspError:
                # a key generated for an interface that could not be created is not left behind
                if plan.write_key == "generate":
                    _unlink_quietly(want["private_key_path"])
                raise
            fresh = normalize_link(self.link_ops.read())
            if fresh is None:
                raise WgspError("interface %s was not created" % name)
            plan.add_addresses = [a for a in plan.add_addresses if a not in fresh["addresses"]]
            if plan.mtu is not None and fresh.get("mtu") == plan.mtu:
                plan.mtu = None
        device_changes = dict(plan.device)
        if "private_key" in device_changes and device_changes["private_key"] is None:
            device_changes["private_key"] = private_key
        try:
            _named(", ".join(sorted(device_changes) + (["peers"] if plan.peer_ops else [])),
                   backend.apply, device_changes, plan.peer_ops)
        finally:
            result["set_requests"] = backend.set_requests
        for cidr in plan.del_addresses:
            _named("addresses", self.link_ops.del_address, cidr)
        for cidr in plan.add_addresses:
            _named("addresses", self.link_ops.add_address, cidr)
        if plan.mtu is not None:
            _named("mtu", self.link_ops.set_mtu, plan.mtu)
        if plan.up:
            self.link_ops.set_up()
        # read back
        link = normalize_link(self.link_ops.read())
        if want["persist"]:
            if want["mtu"] is None and link is not None:
                # an unmanaged MTU is persisted as the device has it (known only once it exists)
                after_link["mtu"] = link.get("mtu")
            content = render_wg_quick(want, dict(after_link, fwmark=after_device["fwmark"], peers=after_peers),
                                      private_key)
            if content != config_before:
                keys.write_secret_file(conf_path, content)
                if "write %s" % conf_path not in result["actions"]:
                    result["actions"].append("write %s" % conf_path)
        device = normalize_device(backend.read())
        result["public_key"] = device.get("public_key")
        result.update(self._planned_result(link, device))
        return result

    @staticmethod
    def _planned_result(link, device):
        view = public_view(link or {}, device)
        return {"addresses": view["addresses"], "mtu": view["mtu"], "listen_port": view["listen_port"],
                "fwmark": view["fwmark"], "peers": view["peers"]}


def read_interface(name, link_ops=None, backends=None):
    """Read one WireGuard interface without changing anything.

    Returns ``{name, exists, backend, up, mtu, addresses, listen_port, fwmark, public_key,
    peers: [{public_key, endpoint, allowed_ips, persistent_keepalive, latest_handshake,
    rx_bytes, tx_bytes}]}``. ``latest_handshake`` is a unix timestamp (0 = never). Private and
    preshared keys are never part of it.
    """
    name = check_ifname("name", name)
    link_ops = link_ops or netlink.LinkOps(name)
    backends = backends or {}
    link = normalize_link(link_ops.read())
    if link is None:
        return {"name": name, "exists": False, "backend": None, "up": False, "mtu": None, "addresses": [],
                "listen_port": 0, "fwmark": 0, "public_key": None, "peers": []}
    backend_name = backend_for_link(name, link, "auto")
    backend = backends.get(backend_name) or (KernelBackend(name, check_mode=True) if backend_name == "kernel"
                                             else UserspaceBackend(name))
    if backend_name == "kernel":
        backend.check_available()
    device = normalize_device(backend.read())
    view = public_view(link, device, include_stats=True)
    view.update({"name": name, "exists": True, "backend": backend_name})
    return view
