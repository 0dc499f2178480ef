"""Throw-away test hosts built from Linux namespaces.

Each ``Host`` is a holder process with its own network, mount and UTS namespaces. The mount
namespace carries private tmpfs mounts on ``/run/wireguard`` (wireguard-go's control sockets),
``/etc/wireguard``, ``/etc/wg-service-proxy`` and ``/var/lib/wgsp-service-proxy``, so two hosts
can both run ``wg0`` (or a rule set of one name) without colliding. Hosts are wired with veth pairs, or through a ``switch``: a Linux bridge living in a
network namespace of its own (a bridge in the root namespace would be filtered by Docker's
FORWARD DROP once dockerd runs).

Everything a ``Lab`` creates is removed by ``Lab.close()``: every process found in one of its
network namespaces is ended by PID, then the holders. No traffic ever leaves these namespaces.
"""

import json
import os
import shlex
import signal
import subprocess
import tempfile
import time
import uuid

from module_io import read_result, write_args

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VENV_PYTHON = os.path.join(REPO, ".venv", "bin", "python")
PYTHON = VENV_PYTHON if os.path.exists(VENV_PYTHON) else "python3"
# /var/lib/wgsp-service-proxy: where wg_dnat/wg_filter record the boot scripts each set wrote
PRIVATE_DIRS = ("/run/wireguard", "/etc/wireguard", "/etc/wg-service-proxy", "/var/lib/wgsp-service-proxy")


class RigError(RuntimeError):
    pass


def _stdin(input):
    """A child's stdin: a pipe with ``input``, else /dev/null of its own (never the run's stdin)."""
    return {"input": input} if input is not None else {"stdin": subprocess.DEVNULL}


def _run_root(argv, check=True, input=None, timeout=30):
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False, **_stdin(input))
    if check and proc.returncode != 0:
        raise RigError("%s failed (rc=%d): %s" % (" ".join(argv), proc.returncode, proc.stderr.strip()))
    return proc


def _netns_inode(pid):
    try:
        return os.stat("/proc/%d/ns/net" % pid).st_ino
    except OSError:
        return None


def _pids_in_netns(inode):
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            if os.stat("/proc/%s/ns/net" % entry).st_ino == inode:
                pids.append(int(entry))
        except OSError:
            continue
    return pids


class Namespace:
    """A holder process owning a set of namespaces; commands run in them with nsenter."""

    ns_flags = ("--net", "--uts")
    enter_flags = ("-n", "-u")

    def __init__(self, lab, name, setup_script=""):
        self.lab = lab
        self.name = name
        script = "set -e; hostname %s; ip link set lo up; %s echo ready; exec sleep 100000" % (
            shlex.quote(name), setup_script)
        self.holder = subprocess.Popen(
            ["unshare", *self.ns_flags, "--propagation", "private", "sh", "-c", script]
            if "--mount" in self.ns_flags else ["unshare", *self.ns_flags, "sh", "-c", script],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.holder.stdout.readline().strip()
        if line != "ready":
            err = self.holder.stderr.read() if self.holder.poll() is not None else ""
            raise RigError("namespace %s did not start: %r %s" % (name, line, err))
        self.pid = self.holder.pid
        self.inode = _netns_inode(self.pid)

    def nsenter(self):
        return ["nsenter", "-t", str(self.pid), *self.enter_flags, "--"]

    def run(self, cmd, check=True, input=None, timeout=30, env=None):
        """Run ``cmd`` (argv list, or a string for ``bash -c``) inside the namespace."""
        argv = ["bash", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        full_env = dict(os.environ)
        if env:
            full_env.update(env)
        proc = subprocess.run(self.nsenter() + argv, capture_output=True, text=True,
                              timeout=timeout, env=full_env, check=False, **_stdin(input))
        if check and proc.returncode != 0:
            raise RigError("[%s] %s failed (rc=%d)\nstdout: %s\nstderr: %s" % (
                self.name, cmd, proc.returncode, proc.stdout, proc.stderr))
        return proc

    def popen(self, cmd, **kwargs):
        """Start a long-running process inside the namespace; it is ended by PID in ``close``."""
        argv = ["bash", "-c", cmd] if isinstance(cmd, str) else list(cmd)
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        kwargs.setdefault("stdout", subprocess.DEVNULL)
        kwargs.setdefault("stderr", subprocess.DEVNULL)
        proc = subprocess.Popen(self.nsenter() + argv, **kwargs)
        self.lab.processes.append(proc)
        return proc

    def add_link(self, tmp_name, ifname, cidrs=(), up=True):
        _run_root(["ip", "link", "set", tmp_name, "netns", str(self.pid)])
        self.run(["ip", "link", "set", tmp_name, "name", ifname])
        for cidr in cidrs:
            self.run(["ip", "addr", "add", cidr, "dev", ifname])
        if up:
            self.run(["ip", "link", "set", ifname, "up"])

    def close(self):
        # Only while the holder lives is the namespace (and so its inode number) surely ours: a
        # dead holder's inode may already belong to another namespace, whose processes we must
        # not touch. Processes of ours left in a namespace whose holder died are in no one's way.
        if self.inode is not None and self.holder.poll() is None and _netns_inode(self.pid) == self.inode:
            for pid in _pids_in_netns(self.inode):
                if pid == self.pid:
                    continue
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        if self.holder.poll() is None:
            self.holder.kill()
        self.holder.wait(timeout=10)
        self.holder.stdout.close()
        self.holder.stderr.close()


class Host(Namespace):
    """A test host: network, mount and UTS namespaces, private WireGuard directories."""

    ns_flags = ("--net", "--mount", "--uts")
    enter_flags = ("-n", "-m", "-u")

    def __init__(self, lab, name):
        mounts = " ".join("mount -t tmpfs -o mode=0755 tmpfs %s;" % d for d in PRIVATE_DIRS)
        for d in PRIVATE_DIRS:
            os.makedirs(d, exist_ok=True)
        super().__init__(lab, name, setup_script=mounts)
        self.run(["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        self.run(["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])

    def module(self, module, args, check_mode=False, diff=False, python=None, env=None):
        """Run one of our modules directly, the way Ansible would run it on this host.

        Returns the parsed result dict (``failed`` is set on failure) plus ``_rc``/``_stderr``.
        """
        path = write_args(args, self.lab.tmpdir, check_mode=check_mode, diff=diff)
        module_path = os.path.join(REPO, "plugins", "modules", module + ".py")
        run_env = {"PYTHONPATH": os.path.join(REPO, "collections")}
        if env:
            run_env.update(env)
        proc = self.run([python or PYTHON, module_path, path], check=False, timeout=120, env=run_env)
        os.unlink(path)
        result = read_result(proc.stdout)
        if result is None:
            raise RigError("[%s] module %s printed no JSON (rc=%d)\nstdout: %s\nstderr: %s" % (
                self.name, module, proc.returncode, proc.stdout, proc.stderr))
        result["_rc"] = proc.returncode
        result["_stderr"] = proc.stderr
        result["_stdout"] = proc.stdout
        return result

    def ansible(self, module, args, extra=(), check=False, timeout=180):
        """Run ``ansible localhost -m <module>`` inside the host with the repository's ansible.cfg."""
        argv = [os.path.join(REPO, ".venv", "bin", "ansible"), "localhost", "-c", "local",
                "-i", "localhost,", "-e", "ansible_python_interpreter=%s" % PYTHON,
                "-m", module, "-a", json.dumps(args), *extra]
        env = {"ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"), "ANSIBLE_LOCAL_TEMP": self.lab.tmpdir,
               "ANSIBLE_REMOTE_TEMP": self.lab.tmpdir, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"}
        return self.run(["env", "-C", REPO, *argv], check=check, timeout=timeout, env=env)

    def serve(self, proto, bind, port):
        """Start the echo test service (tcp: HTTP, udp: echo) and wait until it is bound."""
        proc = self.popen([PYTHON, os.path.join(REPO, "tests", "lib", "echo_server.py"), proto, bind, str(port)])
        flag = "-tln" if proto == "tcp" else "-uln"
        for _attempt in range(100):
            if (":%d " % port) in self.run(["ss", "-H", flag], check=False).stdout:
                return proc
            time.sleep(0.05)
        raise RigError("[%s] %s service on %s:%s did not start" % (self.name, proto, bind, port))

    def wg_go(self, ifname="wg0"):
        """Start wireguard-go for ``ifname`` in the foreground (tracked), wait for its socket."""
        proc = self.popen(["env", "WG_PROCESS_FOREGROUND=1", "wireguard-go", ifname])
        sock = "/run/wireguard/%s.sock" % ifname
        for _attempt in range(100):
            if self.run(["test", "-S", sock], check=False).returncode == 0:
                return proc
            time.sleep(0.05)
        raise RigError("[%s] wireguard-go did not create %s" % (self.name, sock))


class Lab:
    """A set of hosts and the links between them; ``close`` removes all of it."""

    def __init__(self):
        self.hosts = {}
        self.switches = {}
        self.processes = []
        self.tag = uuid.uuid4().hex[:6]
        self._n = 0
        self.tmpdir = tempfile.mkdtemp(prefix="wgsp-lab-")
        os.chmod(self.tmpdir, 0o755)

    def _tmp_ifname(self):
        self._n += 1
        return "w%s%d" % (self.tag, self._n)

    def host(self, name):
        host = Host(self, name)
        self.hosts[name] = host
        return host

    def link(self, a, if_a, cidrs_a, b, if_b, cidrs_b):
        """A veth pair between host ``a`` (``if_a``) and host ``b`` (``if_b``)."""
        ta, tb = self._tmp_ifname(), self._tmp_ifname()
        _run_root(["ip", "link", "add", ta, "type", "veth", "peer", "name", tb])
        try:
            a.add_link(ta, if_a, cidrs_a)
            b.add_link(tb, if_b, cidrs_b)
        finally:
            for name in (ta, tb):
                _run_root(["ip", "link", "del", name], check=False)

    def switch(self, name, members):
        """A bridge in its own namespace; ``members`` is a list of ``(host, ifname, [cidrs])``."""
        sw = self.switches.get(name)
        if sw is None:
            sw = Namespace(self, "sw-" + name)
            sw.run(["ip", "link", "add", "br0", "type", "bridge"])
            sw.run(["ip", "link", "set", "br0", "up"])
            self.switches[name] = sw
        for host, ifname, cidrs in members:
            ta, tb = self._tmp_ifname(), self._tmp_ifname()
            _run_root(["ip", "link", "add", ta, "type", "veth", "peer", "name", tb])
            try:
                sw.add_link(ta, "p%d" % self._n, up=False)
                sw.run(["ip", "link", "set", "p%d" % self._n, "master", "br0", "up"])
                host.add_link(tb, ifname, cidrs)
            finally:
                for tmp in (ta, tb):
                    _run_root(["ip", "link", "del", tmp], check=False)
        return sw

    def close(self):
        for proc in self.processes:
            if proc.poll() is None:
                proc.kill()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for ns in list(self.hosts.values()) + list(self.switches.values()):
            try:
                ns.close()
            except Exception:  # noqa: BLE001 - keep cleaning the others
                pass
        subprocess.run(["rm", "-rf", self.tmpdir], check=False)


def namespace_inventory(tmp_path, groups):
    """``groups``: {group: [Host, ...]} -> an INI inventory whose hosts run their modules inside their
    own namespaces (connection local; a small interpreter wrapper enters the namespaces)."""
    lines = []
    for group, members in groups.items():
        lines.append("[%s]" % group)
        for host in members:
            wrapper = tmp_path / ("py-" + host.name)
            wrapper.write_text("#!/bin/sh\nexec nsenter -t %d -n -m -u -- %s \"$@\"\n" % (host.pid, PYTHON))
            wrapper.chmod(0o755)
            lines.append("%s ansible_connection=local ansible_python_interpreter=%s" % (host.name, wrapper))
    path = tmp_path / "hosts.ini"
    path.write_text("\n".join(lines) + "\n")
    return str(path)
