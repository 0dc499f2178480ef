# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The two ways a WireGuard device is driven: ``KernelBackend`` (netlink genl) and
``UserspaceBackend`` (wireguard-go and its UAPI socket), how one is chosen for a link, and the
wireguard-go processes of an interface.

Internal to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import errno
import os
import signal
import subprocess
import time

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import CommandError, WgspError
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.runner import CommandRunner
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import netlink, uapi


WIREGUARD_GO = "wireguard-go"
_BIN_DIRS = ("/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin")


def _read_text(path):
    try:
        with open(path, "r") as handle:
            return handle.read()
    except (IOError, OSError) as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise WgspError("cannot read %s: %s" % (path, exc.strerror))


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
            # A session of its own: wireguard-go's daemon child does not call setsid, so it would stay in
            # the caller's process group - an Ansible worker's, which Ansible kills as a group when it
            # terminates a worker still alive at the end of a run (seen on a loaded controller running
            # the module with connection local): the tunnel went down with the worker.
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=env, close_fds=True, start_new_session=True)
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
    """The kernel module: ``ip link add type wireguard`` (netlink) plus WireGuard genl (``genl``)."""

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
