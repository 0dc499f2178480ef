# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The logic of ``wgsp.service_proxy.wg_interface``: validate, read, plan, apply, read back.

Internal to the collection. The pipeline (``WgInterface.run``):

1. ``validate_params``: every option checked and normalised before anything is touched.
2. read: the link (``LinkOps``) and the WireGuard device through the backend that owns it
   (``KernelBackend``: netlink genl; ``UserspaceBackend``: wireguard-go's UAPI socket).
3. ``compute_plan``: the difference, device / per-peer / link / files. ``changed`` = plan not empty.
4. check mode stops here; otherwise only the plan is applied (an empty plan sends nothing), and
   the state is read back for the result.

``read_interface(name)`` is the public read API (for ``wg_status``): a normalised dict with no
private or preshared key in it.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import ipaddress
import os
import signal
import socket
import subprocess
import time

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import (
    CommandError,
    ValidationError,
    WgspError,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.runner import CommandRunner
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.files import check_abs_path
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.net import (
    check_cidr,
    check_endpoint,
    check_interface_address,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.checks import (
    check_ifname,
    check_int,
    check_port,
    check_shell_line,
    check_token,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import keys
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import netlink
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import uapi

CONF_DIR = "/etc/wireguard"
PSK_SET = "<preshared key set>"
PSK_CHANGED = "<preshared key changed>"
KEY_UNKNOWN = "<generated on apply>"
WIREGUARD_GO = "wireguard-go"
_BIN_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


# --------------------------------------------------------------------------------------------
# normalisation


def _ip_sort_key(text):
    net = ipaddress.ip_interface(text)
    return (net.version, int(net.ip), net.network.prefixlen)


def sort_cidrs(values):
    return sorted(set(values), key=_ip_sort_key)


def normalize_address(field, value):
    """An interface address ``10.7.0.1/24`` in canonical form (a bare address gets /32 or /128)."""
    iface = check_cidr(field, value)
    return iface.with_prefixlen if iface.version == 4 else "%s/%d" % (iface.ip.compressed, iface.network.prefixlen)


def normalize_allowed_ip(field, value):
    """An allowed IP as the device stores it: the network, host bits cleared (``10.7.0.9/24`` -> ``10.7.0.0/24``)."""
    iface = check_cidr(field, value)
    return iface.network.with_prefixlen if iface.version == 4 else iface.network.compressed


def format_endpoint(ip_text, port):
    ip = ipaddress.ip_address(ip_text.split("%")[0])
    if ip.version == 6:
        return "[%s]:%d" % (ip.compressed, port)
    return "%s:%d" % (ip, port)


def normalize_device_endpoint(text):
    """An endpoint as a device reports it, in the same canonical form as resolved input."""
    if not text:
        return None
    host, _sep, port = text.rpartition(":")
    try:
        return format_endpoint(host.strip("[]"), int(port))
    except ValueError:
        return text


def resolve_endpoint(field, value, resolver=None):
    """``host:port`` -> canonical ``ip:port`` (``[v6]:port``); a hostname is resolved like ``wg`` does."""
    host, port = check_endpoint(field, value)
    try:
        return format_endpoint(host, port)
    except ValueError:
        pass
    resolver = resolver or socket.getaddrinfo
    try:
        infos = resolver(host, port, 0, socket.SOCK_DGRAM)
    except (socket.gaierror, socket.herror, UnicodeError, OSError) as exc:
        raise ValidationError(field, "cannot resolve host %r: %s" % (host, getattr(exc, "strerror", None) or exc))
    for info in infos:
        if info[0] in (socket.AF_INET, socket.AF_INET6):
            return format_endpoint(info[4][0], port)
    raise ValidationError(field, "host %r has no IPv4 or IPv6 address" % host)


def _no_secret_control(field, value):
    """Like ``check_no_control`` but never echoes the value (for key material)."""
    text = str(value)
    for ch in text:
        if ch in "\r\n" or ord(ch) < 32 or ord(ch) == 127:
            raise ValidationError(field, "must not contain a newline or control character")
    return text


def validate_params(params, resolver=None):
    """Check and normalise the module options; raise ``ValidationError`` on the first problem.

    Returns the desired state: ``{name, state, backend, addresses|None, listen_port|None,
    mtu|None, fwmark|None, private_key|None, private_key_path, peers: {public_key: {...}},
    exclusive_peers, persist, table, post_up, pre_down, remove_key}``.
    """
    name = check_ifname("name", params.get("name"))
    want = {
        "name": name,
        "state": params.get("state") or "present",
        "backend": params.get("backend") or "auto",
        "exclusive_peers": params.get("exclusive_peers", True) is not False,
        "persist": params.get("persist", True) is not False,
        "remove_key": bool(params.get("remove_key")),
    }
    if want["state"] not in ("present", "absent"):
        raise ValidationError("state", "must be present or absent")
    if want["backend"] not in ("auto", "kernel", "userspace"):
        raise ValidationError("backend", "must be auto, kernel or userspace")

    if params.get("private_key") is not None and params.get("private_key_path") is not None:
        raise ValidationError("private_key", "is mutually exclusive with private_key_path")
    want["private_key"] = None
    if params.get("private_key") is not None:
        want["private_key"] = keys.check_key("private_key", params["private_key"])
    path = params.get("private_key_path")
    if path is not None:
        path = check_abs_path("private_key_path", path)
    want["private_key_path"] = path or os.path.join(CONF_DIR, "%s.key" % name)

    addresses = params.get("addresses")
    if addresses is not None:
        if not isinstance(addresses, (list, tuple)):
            raise ValidationError("addresses", "must be a list of CIDRs")
        for i, address in enumerate(addresses):
            check_interface_address("addresses[%d]" % i, address)
        addresses = [normalize_address("addresses[%d]" % i, a) for i, a in enumerate(addresses)]
        addresses = sort_cidrs(addresses)
    want["addresses"] = addresses
    want["listen_port"] = None if params.get("listen_port") is None else check_port("listen_port", params["listen_port"])
    want["mtu"] = None if params.get("mtu") is None else check_int("mtu", params["mtu"], 68, 65535)
    want["fwmark"] = None if params.get("fwmark") is None else check_int("fwmark", params["fwmark"], 0, 0xFFFFFFFF)
    table = params.get("table")
    want["table"] = check_token("table", "off" if table is None else table, max_len=32)
    for hook in ("post_up", "pre_down"):
        commands = params.get(hook) or []
        if not isinstance(commands, (list, tuple)):
            raise ValidationError(hook, "must be a list of command strings")
        want[hook] = [check_shell_line("%s[%d]" % (hook, i), c) for i, c in enumerate(commands)]

    peers = {}
    owner = {}
    raw_peers = params.get("peers") or []
    if not isinstance(raw_peers, (list, tuple)):
        raise ValidationError("peers", "must be a list")
    for i, raw in enumerate(raw_peers):
        field = "peers[%d]" % i
        if not isinstance(raw, dict):
            raise ValidationError(field, "must be a dictionary")
        public_key = keys.check_key(field + ".public_key", raw.get("public_key"), secret=False)
        if public_key in peers:
            raise ValidationError(field + ".public_key", "the same public key is listed twice (also %s)" % peers[public_key]["field"])
        if raw.get("preshared_key") is not None and raw.get("preshared_key_path") is not None:
            raise ValidationError(field + ".preshared_key", "is mutually exclusive with preshared_key_path")
        psk = None
        if raw.get("preshared_key") is not None:
            _no_secret_control(field + ".preshared_key", raw["preshared_key"])
            psk = keys.check_key(field + ".preshared_key", raw["preshared_key"])
        elif raw.get("preshared_key_path") is not None:
            psk_path = check_abs_path(field + ".preshared_key_path", raw["preshared_key_path"])
            psk = keys.read_key_file(field + ".preshared_key_path", psk_path)
            if psk is None:
                raise ValidationError(field + ".preshared_key_path", "file %s does not exist" % psk_path)
        if psk == keys.ZERO_KEY:
            psk = None
        endpoint = None
        endpoint_input = None
        if raw.get("endpoint") is not None:
            host, port = check_endpoint(field + ".endpoint", raw["endpoint"])
            endpoint_input = ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)
            endpoint = resolve_endpoint(field + ".endpoint", endpoint_input, resolver)
        keepalive = raw.get("persistent_keepalive")
        keepalive = 0 if keepalive is None else check_int(field + ".persistent_keepalive", keepalive, 0, 65535)
        allowed = raw.get("allowed_ips") or []
        if not isinstance(allowed, (list, tuple)):
            raise ValidationError(field + ".allowed_ips", "must be a list of CIDRs")
        allowed_ips = []
        for j, cidr in enumerate(allowed):
            sub = "%s.allowed_ips[%d]" % (field, j)
            net = normalize_allowed_ip(sub, cidr)
            if net in owner and owner[net] != i:
                raise ValidationError(sub, "%s is already an allowed IP of peers[%d]; an allowed IP can "
                                           "belong to one peer only" % (net, owner[net]))
            owner[net] = i
            allowed_ips.append(net)
        peers[public_key] = {"field": field, "public_key": public_key, "preshared_key": psk,
                             "endpoint": endpoint, "endpoint_input": endpoint_input,
                             "persistent_keepalive": keepalive, "allowed_ips": sort_cidrs(allowed_ips)}
    want["peers"] = peers
    return want


def normalize_device(device):
    """Canonical form of a device dict read from a backend (sorted IPs, canonical endpoints)."""
    peers = {}
    for peer in device.get("peers") or []:
        item = dict(peer)
        item["allowed_ips"] = sort_cidrs(normalize_allowed_ip("allowed_ips", c) for c in peer.get("allowed_ips") or [])
        item["endpoint"] = normalize_device_endpoint(peer.get("endpoint"))
        item["persistent_keepalive"] = peer.get("persistent_keepalive") or 0
        peers[item["public_key"]] = item
    private = device.get("private_key")
    public = device.get("public_key") or (keys.public_key(private) if private else None)
    return {"private_key": private, "public_key": public, "listen_port": device.get("listen_port") or 0,
            "fwmark": device.get("fwmark") or 0, "peers": peers}


def normalize_link(link):
    if link is None:
        return None
    out = dict(link)
    out["addresses"] = sort_cidrs(normalize_address("addresses", a) for a in link.get("addresses") or [])
    return out


EMPTY_DEVICE = {"private_key": None, "public_key": None, "listen_port": 0, "fwmark": 0, "peers": {}}


# --------------------------------------------------------------------------------------------
# planning


class Plan:
    """What has to change; empty means ``changed=false`` and nothing is sent."""

    def __init__(self):
        self.create = False
        self.delete = False
        self.kill_pids = []
        self.device = {}
        self.peer_ops = []
        self.add_addresses = []
        self.del_addresses = []
        self.mtu = None
        self.up = False
        self.write_key = None  # "generate" | "adopt" | None
        self.write_config = False
        self.remove_config = False
        self.remove_key = False
        self.actions = []

    def empty(self):
        return not (self.create or self.delete or self.kill_pids or self.device or self.peer_ops
                    or self.add_addresses or self.del_addresses or self.mtu is not None or self.up
                    or self.write_key or self.write_config or self.remove_config or self.remove_key)


def plan_peers(current_peers, want_peers, exclusive):
    """Per-peer operations: remove / add / update with only the changed fields."""
    ops = []
    if exclusive:
        for pub in sorted(current_peers):
            if pub not in want_peers:
                ops.append({"op": "remove", "public_key": pub})
    for pub in sorted(want_peers):
        want = want_peers[pub]
        have = current_peers.get(pub)
        if have is None:
            op = {"op": "add", "public_key": pub, "allowed_ips": list(want["allowed_ips"])}
            if want["preshared_key"]:
                op["preshared_key"] = want["preshared_key"]
            if want["endpoint"]:
                op["endpoint"] = want["endpoint"]
            if want["persistent_keepalive"]:
                op["persistent_keepalive"] = want["persistent_keepalive"]
            ops.append(op)
            continue
        op = {"op": "update", "public_key": pub}
        if (want["preshared_key"] or None) != (have.get("preshared_key") or None):
            op["preshared_key"] = want["preshared_key"]
        if want["endpoint"] and want["endpoint"] != have.get("endpoint"):
            op["endpoint"] = want["endpoint"]
        if want["persistent_keepalive"] != (have.get("persistent_keepalive") or 0):
            op["persistent_keepalive"] = want["persistent_keepalive"]
        if want["allowed_ips"] != have.get("allowed_ips"):
            op["allowed_ips"] = list(want["allowed_ips"])
        if len(op) > 2:
            ops.append(op)
    return ops


def describe_peer_op(op):
    if op["op"] == "remove":
        return "remove peer %s" % op["public_key"]
    fields = [k for k in ("endpoint", "allowed_ips", "persistent_keepalive", "preshared_key") if k in op]
    return "%s peer %s%s" % (op["op"], op["public_key"], (" (" + ", ".join(fields) + ")") if fields else "")


def compute_plan(want, link, device, private_key, key_action):
    """The plan for ``state=present``.

    ``link``/``device``: normalised current state (``None`` / ``EMPTY_DEVICE`` when absent);
    ``private_key``: the key the device must have (``None`` when it is generated on apply);
    ``key_action``: ``"generate"``/``"adopt"``/``None`` for the key file.
    """
    plan = Plan()
    if link is None:
        plan.create = True
        plan.actions.append("create interface %s" % want["name"])
        link = {"addresses": [], "mtu": None, "up": False}
    if key_action:
        plan.write_key = key_action
        verb = "generate" if key_action == "generate" else "write the device's"
        plan.actions.append("%s private key file %s" % (verb, want["private_key_path"]))
    if private_key is None or private_key != device.get("private_key"):
        plan.device["private_key"] = private_key
        plan.actions.append("set private key")
    if want["listen_port"] is not None and want["listen_port"] != device.get("listen_port"):
        plan.device["listen_port"] = want["listen_port"]
        plan.actions.append("set listen_port %d" % want["listen_port"])
    if want["fwmark"] is not None and want["fwmark"] != device.get("fwmark"):
        plan.device["fwmark"] = want["fwmark"]
        plan.actions.append("set fwmark %d" % want["fwmark"])
    plan.peer_ops = plan_peers(device.get("peers") or {}, want["peers"], want["exclusive_peers"])
    plan.actions.extend(describe_peer_op(op) for op in plan.peer_ops)
    if want["addresses"] is not None:
        plan.add_addresses = [a for a in want["addresses"] if a not in link["addresses"]]
        plan.del_addresses = [a for a in link["addresses"] if a not in want["addresses"]]
        plan.actions.extend("add address %s" % a for a in plan.add_addresses)
        plan.actions.extend("remove address %s" % a for a in plan.del_addresses)
    if want["mtu"] is not None and want["mtu"] != link.get("mtu"):
        plan.mtu = want["mtu"]
        plan.actions.append("set mtu %d" % want["mtu"])
    if not link.get("up"):
        plan.up = True
        plan.actions.append("set link up")
    return plan


# --------------------------------------------------------------------------------------------
# the persisted wg-quick file


def render_wg_quick(want, after, private_key):
    """The wg-quick file reproducing ``after`` (the planned state); holds keys: write it 0600."""
    lines = ["# Managed by wgsp.service_proxy.wg_interface: edits are overwritten.",
             "# Restores this interface with: wg-quick up %s" % want["name"],
             "[Interface]",
             "PrivateKey = %s" % private_key]
    if want["listen_port"] is not None:
        lines.append("ListenPort = %d" % want["listen_port"])
    if after["fwmark"]:
        lines.append("FwMark = 0x%x" % after["fwmark"])
    if after["addresses"]:
        lines.append("Address = %s" % ", ".join(after["addresses"]))
    if after["mtu"]:
        lines.append("MTU = %d" % after["mtu"])
    lines.append("Table = %s" % want["table"])
    for command in want["post_up"]:
        lines.append("PostUp = %s" % command)
    for command in want["pre_down"]:
        lines.append("PreDown = %s" % command)
    for pub in sorted(after["peers"]):
        peer = after["peers"][pub]
        lines.extend(["", "[Peer]", "PublicKey = %s" % pub])
        if peer.get("preshared_key"):
            lines.append("PresharedKey = %s" % peer["preshared_key"])
        if peer.get("allowed_ips"):
            lines.append("AllowedIPs = %s" % ", ".join(peer["allowed_ips"]))
        # only an endpoint the user declared: a learned (roaming) one would rewrite the file on every move
        endpoint = peer.get("endpoint_input")
        if endpoint:
            lines.append("Endpoint = %s" % endpoint)
        if peer.get("persistent_keepalive"):
            lines.append("PersistentKeepalive = %d" % peer["persistent_keepalive"])
    return "\n".join(lines) + "\n"


def _read_text(path):
    try:
        with open(path, "r") as handle:
            return handle.read()
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise WgspError("cannot read %s: %s" % (path, exc.strerror))


# --------------------------------------------------------------------------------------------
# backends


def find_binary(name):
    for directory in os.environ.get("PATH", "").split(os.pathsep) + list(_BIN_DIRS):
        candidate = os.path.join(directory, name)
        if directory and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _ns_id(pid, kind):
    try:
        st = os.stat("/proc/%s/ns/%s" % (pid, kind))
        return (st.st_dev, st.st_ino)
    except OSError:
        return None


def find_wireguard_go(name, proc="/proc"):
    """PIDs of ``wireguard-go <name>`` processes in this network and mount namespace."""
    own = (_ns_id("self", "net"), _ns_id("self", "mnt"))
    pids = []
    for entry in os.listdir(proc):
        if not entry.isdigit():
            continue
        try:
            with open(os.path.join(proc, entry, "cmdline"), "rb") as handle:
                argv = handle.read().split(b"\0")
        except (IOError, OSError):
            continue
        argv = [a.decode("utf-8", "replace") for a in argv if a]
        if len(argv) < 2 or os.path.basename(argv[0]) != WIREGUARD_GO or argv[-1] != name:
            continue
        if (_ns_id(entry, "net"), _ns_id(entry, "mnt")) != own:
            continue
        pids.append(int(entry))
    return sorted(pids)


class UserspaceBackend:
    """wireguard-go: started by us when missing, configured over its UAPI socket."""

    name = "userspace"

    def __init__(self, ifname, runner=None, socket_dir=uapi.SOCKET_DIR, client=None, start_timeout=5.0):
        self.ifname = ifname
        self.runner = runner or CommandRunner()
        self.socket = uapi.socket_path(ifname, socket_dir)
        self.client = client or uapi.UapiClient(self.socket)
        self.start_timeout = start_timeout

    @property
    def set_requests(self):
        return self.client.set_requests

    def check_available(self):
        if find_binary(WIREGUARD_GO) is None:
            raise WgspError("backend userspace needs %s, which is not installed (or not in PATH)" % WIREGUARD_GO)

    def available(self):
        try:
            self.check_available()
        except WgspError:
            return False
        return True

    def read(self):
        if not os.path.exists(self.socket):
            raise WgspError("interface %s is a tun device without a wireguard-go control socket (%s): "
                            "it is not a userspace WireGuard interface this module can manage" % (self.ifname, self.socket))
        return self.client.get()

    def create(self, link_ops):
        binary = find_binary(WIREGUARD_GO)
        if binary is None:
            raise WgspError("backend userspace needs %s, which is not installed (or not in PATH)" % WIREGUARD_GO)
        # wireguard-go daemonizes itself; argv carries the interface name only, never a key.
        self.start_daemon([binary, self.ifname])
        if not uapi.wait_for_socket(self.socket, timeout=self.start_timeout):
            raise WgspError("wireguard-go started but %s did not appear within %.0fs" % (self.socket, self.start_timeout))

    def start_daemon(self, argv):
        """Run wireguard-go in its daemonizing mode and wait for the parent to return.

        Its child re-execs itself with ``WG_PROCESS_FOREGROUND=1`` appended to the environment; an
        inherited value would shadow that (the first one wins in Go), so it is removed here.
        """
        env = dict((k, v) for k, v in os.environ.items()
                   if k not in ("WG_PROCESS_FOREGROUND", "WG_TUN_FD", "WG_UAPI_FD"))
        env.update({"LC_ALL": "C", "LANG": "C"})
        env.pop("LOG_LEVEL", None)
        try:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=env, close_fds=True)
            out, err = proc.communicate(timeout=self.start_timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise CommandError("cannot start %s: %s" % (argv[0], exc), cmd=argv, rc=None, stdout="", stderr=str(exc))
        if proc.returncode != 0:
            out = out.decode("utf-8", "replace")
            err = err.decode("utf-8", "replace")
            raise CommandError("%s failed with rc=%d: %s" % (argv[0], proc.returncode, wireguard_go_error(out, err)),
                               cmd=argv, rc=proc.returncode, stdout=out, stderr=err)

    def apply(self, device, peer_ops):
        self.client.set(uapi.render_set(device, peer_ops))

    def delete(self, link_ops, pids=None):
        pids = find_wireguard_go(self.ifname) if pids is None else pids
        stop_processes(pids)
        if link_ops.read() is not None:
            link_ops.delete()
        try:
            os.unlink(self.socket)
        except OSError:
            pass


_BOX_CHARS = u"\u2500\u2502\u250c\u2510\u2514\u2518"


def wireguard_go_error(out, err):
    """The real error of a failed ``wireguard-go`` start, without its boxed banner.

    wireguard-go prints a framed notice ("Running wireguard-go is not required ...") on stderr and
    its actual error (``ERROR: (wg0) ... Failed to create TUN device: ...``) on stdout.
    """
    lines = []
    for line in (err + "\n" + out).splitlines():
        text = line.strip()
        if not text or any(ch in text for ch in _BOX_CHARS):
            continue
        lines.append(text)
    errors = [line for line in lines if line.startswith("ERROR")]
    return "; ".join(errors or lines) or "no error output"


def stop_processes(pids, timeout=3.0):
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.time() + timeout
    alive = list(pids)
    while alive and time.time() < deadline:
        alive = [p for p in alive if os.path.exists("/proc/%d" % p) and not _is_zombie(p)]
        if alive:
            time.sleep(0.02)
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def _is_zombie(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (IOError, OSError, IndexError):
        return True


class KernelBackend:
    """The kernel module: ``ip link add type wireguard`` (netlink) plus WireGuard genl (``_wg_genl``)."""

    name = "kernel"

    def __init__(self, ifname, wg=None, runner=None, check_mode=False):
        self.ifname = ifname
        self.wg = wg or netlink.KernelWireGuard(ifname)
        self.runner = runner or CommandRunner()
        self.check_mode = check_mode
        self._available = None

    @property
    def set_requests(self):
        return self.wg.set_requests

    def available(self):
        """The genl family resolves (after ``modprobe wireguard`` if needed); asked once per run."""
        if self._available is None:
            self._available = kernel_available(self.runner, self.check_mode, self.wg.family_available)
        return self._available

    def unavailable_reason(self):
        reason = getattr(self.wg, "unavailable_reason", None) or netlink.genl.FAMILY_MISSING
        if reason == netlink.genl.FAMILY_MISSING:
            reason += (" and 'modprobe --dry-run wireguard' finds no module to load" if self.check_mode
                       else " and 'modprobe wireguard' did not load it")
        return reason

    def check_available(self):
        if not self.available():
            raise WgspError("backend kernel cannot be used: %s" % self.unavailable_reason())

    def read(self):
        return self.wg.get()

    def create(self, link_ops):
        link_ops.add_wireguard()

    def apply(self, device, peer_ops):
        self.wg.apply(device, peer_ops)

    def delete(self, link_ops, pids=None):
        link_ops.delete()


def kernel_available(runner, check_mode, probe):
    """Whether the kernel backend can be driven: the ``wireguard`` genl family resolves.

    ``probe()`` asks the kernel; when the family is missing, ``modprobe wireguard`` is run and the
    kernel asked again. Check mode loads nothing: ``modprobe --dry-run`` tells whether the real
    run would find the module.
    """
    if probe():
        return True
    argv = ["modprobe", "--dry-run", "--quiet", "wireguard"] if check_mode else ["modprobe", "wireguard"]
    try:
        rc, _out, _err = runner.run(argv, check=False)
    except WgspError:
        return False
    if check_mode:
        return rc == 0
    return probe()


def backend_for_link(name, link, requested):
    """The backend an existing link belongs to, or a clear error when it cannot be ours."""
    kind = link.get("kind")
    if kind == "wireguard":
        found = "kernel"
    elif kind == "tun":
        found = "userspace"
    else:
        raise WgspError("interface %s exists but is a %s link, not WireGuard; remove it or choose another name"
                        % (name, kind or "unknown"))
    if requested not in ("auto", found):
        raise WgspError("interface %s already exists with the %s backend but backend=%s was requested; "
                        "remove it first (state=absent) to switch backends" % (name, found, requested))
    return found


# --------------------------------------------------------------------------------------------
# views for diff / results (never a private or preshared key)


def public_view(link, device, include_stats=False):
    peers = []
    for pub in sorted(device["peers"]):
        peer = device["peers"][pub]
        item = {"public_key": pub, "endpoint": peer.get("endpoint"), "allowed_ips": list(peer.get("allowed_ips") or []),
                "persistent_keepalive": peer.get("persistent_keepalive") or 0}
        if include_stats:
            item.update({"latest_handshake": peer.get("latest_handshake") or 0,
                         "rx_bytes": peer.get("rx_bytes") or 0, "tx_bytes": peer.get("tx_bytes") or 0})
        peers.append(item)
    return {"up": bool(link and link.get("up")), "mtu": link.get("mtu") if link else None,
            "addresses": list(link.get("addresses") or []) if link else [],
            "listen_port": device.get("listen_port") or 0, "fwmark": device.get("fwmark") or 0,
            "public_key": device.get("public_key"), "peers": peers}


def _diff_view(name, link, device, config_state, psk_marks=None):
    if link is None:
        return {"interface": name, "state": "absent", "config_file": config_state}
    view = public_view(link, device)
    view.pop("up")
    peers = {}
    for item in view.pop("peers"):
        pub = item.pop("public_key")
        psk = device["peers"][pub].get("preshared_key")
        mark = (psk_marks or {}).get(pub)
        item["preshared_key"] = mark or (PSK_SET if psk else None)
        peers[pub] = item
    view.update({"interface": name, "state": "present", "up": bool(link.get("up")), "peers": peers,
                 "config_file": config_state})
    return view


# --------------------------------------------------------------------------------------------
# the module's run


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


# --------------------------------------------------------------------------------------------
# public read API (for wg_status)


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
