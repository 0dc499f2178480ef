"""The seed topology on real hosts: three qemu VMs (hub, share, proxy) booting stock Debian with systemd.

Each VM boots the cached disk image of ``build.sh`` (Debian 12 or 13, its own kernel with
WireGuard, only Debian packages) with ``snapshot=on``, so the cache is never written and a guest
reboot keeps the run's changes. Ansible reaches the VMs over SSH as the non-root user ``wgsp``
(sudo, ``become``) through qemu's user-mode NIC, forwarded from 127.0.0.1; that NIC is created
with ``restrict=on``, so nothing inside a VM can reach the host or anything beyond it. The VMs
reach each other over point-to-point qemu socket links on 127.0.0.1:

    hub  eth1 192.0.2.1/28  <->  share eth1 192.0.2.2/28
    hub  eth2 192.0.2.17/28 <->  proxy eth1 192.0.2.18/28 (routes 192.0.2.0/28 via the hub)

The proxy's user-mode NIC (10.0.2.15) is its public side: the published port is forwarded from
127.0.0.1, so a request from the test host is a public request that takes the whole path
(proxy DNAT -> tunnel -> hub -> tunnel -> share DNAT -> container).

By hand: ``python3 tests/vmlab/vmlab.py bookworm`` boots the lab, prints the inventory path and
waits for Enter before powering it off.
"""

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
QEMU = "qemu-system-x86_64"
HOSTS = ("hub", "share", "proxy")
# the MAC addresses build.sh's networkd files match: 52:54:00:77:0<vm>:<nic>
VM_NUMBER = {"hub": 1, "share": 2, "proxy": 3}
PUBLIC_PORT = 8080  # the proxy's published port inside the VM
MEMORY = {"hub": 512, "share": 1024, "proxy": 512}


class VmLabError(Exception):
    pass


def build_image(release, timeout=1800):
    """Run build.sh (a no-op when cached). Returns (image directory, seconds, whether it was built)."""
    script = os.path.join(HERE, "build.sh")
    cached = subprocess.run([script, release, "--print-dir"], check=True, capture_output=True, text=True).stdout.strip()
    was_cached = os.path.isfile(os.path.join(cached, "manifest.txt"))
    start = time.monotonic()
    proc = subprocess.run([script, release], check=False, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise VmLabError("tests/vmlab/build.sh %s failed (rc=%d):\n%s%s" % (release, proc.returncode, proc.stdout, proc.stderr))
    return proc.stdout.strip().splitlines()[-1], time.monotonic() - start, not was_cached


def free_ports(count):
    """Ports free on 127.0.0.1 right now (held open together so they are distinct)."""
    socks = []
    try:
        for _index in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [sock.getsockname()[1] for sock in socks]
    finally:
        for sock in socks:
            sock.close()


class VmLab:
    def __init__(self, release, image, workdir=None):
        self.release = release
        self.image = image
        self.workdir = workdir or tempfile.mkdtemp(prefix="wgsp-vmlab-%s-" % release, dir="/var/tmp")
        os.makedirs(self.workdir, exist_ok=True)
        self.key = os.path.join(self.workdir, "id_ed25519")
        self.procs = {}
        ports = free_ports(6)
        self.ssh_ports = dict(zip(HOSTS, ports[:3]))
        self.link_ports = {"share": ports[3], "proxy": ports[4]}
        self.public_port = ports[5]

    # ---------------------------------------------------------------------------------------
    # life cycle

    def start(self, timeout=600):
        if shutil.which(QEMU) is None:
            raise VmLabError("%s is not installed (apt-get install qemu-system-x86)" % QEMU)
        if not os.path.exists(self.key):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "wgsp-vmlab", "-f", self.key], check=True)
        for name in HOSTS:  # the hub listens on the socket links, so it starts first
            self._launch(name)
            if name == "hub":
                time.sleep(0.5)
        self.wait_ssh(timeout)
        self.wait_booted(timeout=timeout)

    def _launch(self, name):
        number = VM_NUMBER[name]
        with open(self.key + ".pub", "rb") as handle:
            pubkey = base64.b64encode(handle.read().strip()).decode()
        append = ("root=/dev/vda rw console=ttyS0 net.ifnames=0 systemd.hostname=%s wgsp.ssh_key=%s "
                  "quiet mitigations=off systemd.show_status=false" % (name, pubkey))
        forwards = "hostfwd=tcp:127.0.0.1:%d-:22" % self.ssh_ports[name]
        if name == "proxy":
            forwards += ",hostfwd=tcp:127.0.0.1:%d-:%d" % (self.public_port, PUBLIC_PORT)
        # -nodefaults -vga none: no emulated VGA/framebuffer console, floppy, CD-ROM or parallel
        # port, whose probing costs a minute of emulated boot
        argv = [QEMU, "-accel", "tcg", "-cpu", "max", "-smp", "1", "-m", str(MEMORY[name]),
                "-nodefaults", "-vga", "none", "-display", "none", "-monitor", "none",
                "-serial", "file:%s" % self.console_path(name),
                "-kernel", os.path.join(self.image, "vmlinuz"), "-initrd", os.path.join(self.image, "initrd.img"),
                "-append", append,
                "-drive", "file=%s,format=raw,if=virtio,snapshot=on" % os.path.join(self.image, "disk.raw"),
                # user-mode NIC: SSH (and the proxy's public port) forwarded from 127.0.0.1 only;
                # restrict=on: the guest can reach neither the host nor anything beyond it
                "-netdev", "user,id=u,restrict=on,%s" % forwards,
                "-device", "virtio-net-pci,netdev=u,mac=52:54:00:77:0%d:00" % number]
        if name == "hub":
            for nic, client in ((1, "share"), (2, "proxy")):
                argv += ["-netdev", "socket,id=l%d,listen=127.0.0.1:%d" % (nic, self.link_ports[client]),
                         "-device", "virtio-net-pci,netdev=l%d,mac=52:54:00:77:01:0%d" % (nic, nic)]
        else:
            argv += ["-netdev", "socket,id=l1,connect=127.0.0.1:%d" % self.link_ports[name],
                     "-device", "virtio-net-pci,netdev=l1,mac=52:54:00:77:0%d:01" % number]
        env = dict(os.environ, TMPDIR=self.workdir)  # snapshot=on keeps its overlay here
        log = open(os.path.join(self.workdir, "%s.qemu.log" % name), "wb")
        self.procs[name] = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()

    def console_path(self, name):
        return os.path.join(self.workdir, "%s.console.log" % name)

    def console(self, name, tail=80):
        try:
            with open(self.console_path(name), "rb") as handle:
                lines = handle.read().decode("utf-8", "replace").replace("\r", "").splitlines()
        except OSError:
            return ""
        return "\n".join(lines[-tail:])

    def consoles(self, tail=40):
        return "\n".join("---- %s console (last %d lines) ----\n%s" % (name, tail, self.console(name, tail))
                         for name in HOSTS)

    def _check_alive(self):
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                raise VmLabError("qemu of %s exited with %s\n%s" % (name, proc.returncode, self.consoles()))

    def wait_ssh(self, timeout=600, hosts=HOSTS):
        deadline = time.monotonic() + timeout
        pending = list(hosts)
        while pending:
            self._check_alive()
            name = pending[0]
            if self.ssh(name, "true", timeout=30, check=False).returncode == 0:
                pending.pop(0)
                continue
            if time.monotonic() > deadline:
                raise VmLabError("no SSH from %s after %ds\n%s" % (", ".join(pending), timeout, self.consoles()))
            time.sleep(2)

    def boot_id(self, name):
        return self.ssh(name, "cat /proc/sys/kernel/random/boot_id").stdout.strip()

    def reboot(self, hosts=HOSTS, timeout=600):
        """A real reboot of each VM (systemd shuts down, the firmware restarts, the kernel boots)."""
        before = {name: self.boot_id(name) for name in hosts}
        for name in hosts:
            self.ssh(name, "sudo systemctl --no-block reboot", check=False, timeout=30)
        time.sleep(5)
        deadline = time.monotonic() + timeout
        for name in hosts:
            while True:
                self._check_alive()
                proc = self.ssh(name, "cat /proc/sys/kernel/random/boot_id", check=False, timeout=30)
                if proc.returncode == 0 and proc.stdout.strip() not in ("", before[name]):
                    break
                if time.monotonic() > deadline:
                    raise VmLabError("%s did not come back from its reboot in %ds\n%s" % (name, timeout, self.consoles()))
                time.sleep(2)
        self.wait_booted(hosts, timeout=max(60, deadline - time.monotonic()))

    def wait_booted(self, hosts=HOSTS, timeout=600):
        """Wait until systemd has finished starting every unit (SSH comes up long before Docker)."""
        for name in hosts:
            proc = self.ssh(name, "systemctl is-system-running --wait", check=False, timeout=timeout)
            state = proc.stdout.strip()
            if state not in ("running", "degraded"):
                raise VmLabError("%s: systemd did not finish booting (%r)\n%s" % (name, state or proc.stderr, self.consoles()))

    def stop(self):
        """End the VMs (their disks are throw-away snapshots: no clean shutdown is owed)."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()  # this qemu only, by its PID
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def remove(self):
        shutil.rmtree(self.workdir, ignore_errors=True)

    # ---------------------------------------------------------------------------------------
    # access

    def ssh_argv(self, name):
        return ["ssh", "-q", "-i", self.key, "-p", str(self.ssh_ports[name]),
                "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
                "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", "wgsp@127.0.0.1"]

    def ssh(self, name, command, check=True, timeout=120, input_text=None):
        try:
            # stdin is always ssh's own (a pipe, or /dev/null): ssh makes its stdin non-blocking and,
            # killed on a timeout (a VM going down mid-session), cannot undo it; on an inherited
            # stdin that breaks every later ansible in the run ("requires blocking IO").
            stdin = {"input": input_text} if input_text is not None else {"stdin": subprocess.DEVNULL}
            proc = subprocess.run(self.ssh_argv(name) + [command], capture_output=True, text=True,
                                  timeout=timeout, check=False, **stdin)
        except subprocess.TimeoutExpired as exc:
            proc = subprocess.CompletedProcess(exc.cmd, 255, "", "timed out after %ss" % timeout)
        if check and proc.returncode != 0:
            raise VmLabError("ssh %s %r failed (rc=%d):\n%s%s" % (name, command, proc.returncode, proc.stdout, proc.stderr))
        return proc

    def write_inventory(self, group_vars, host_vars):
        """An inventory of the three VMs (SSH, become, the per-run key); returns its directory."""
        inv = os.path.join(self.workdir, "inventory")
        os.makedirs(os.path.join(inv, "host_vars"), exist_ok=True)
        groups = {"hub": "wg_server", "share": "share_clients", "proxy": "proxy_clients"}
        lines = ["---", "all:", "  vars:",
                 "    ansible_host: 127.0.0.1",
                 "    ansible_user: wgsp",
                 "    ansible_become: true",
                 "    ansible_python_interpreter: /usr/bin/python3",
                 "    ansible_ssh_private_key_file: %s" % self.key,
                 "    ansible_ssh_common_args: -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
                 "  children:"]
        for name in HOSTS:
            lines += ["    %s:" % groups[name], "      hosts:", "        %s:" % name,
                      "          ansible_port: %d" % self.ssh_ports[name]]
        lines += ["    %s:" % group for group in group_vars if group not in groups.values()]
        with open(os.path.join(inv, "hosts.yml"), "w") as handle:
            handle.write("\n".join(lines) + "\n")
        os.makedirs(os.path.join(inv, "group_vars"), exist_ok=True)
        for group, values in group_vars.items():
            with open(os.path.join(inv, "group_vars", "%s.yml" % group), "w") as handle:
                handle.write("---\n" + json.dumps(values, indent=2) + "\n")
        for host, values in host_vars.items():
            with open(os.path.join(inv, "host_vars", "%s.yml" % host), "w") as handle:
                handle.write("---\n" + json.dumps(values, indent=2) + "\n")
        return inv


def main(argv):
    release = argv[1] if len(argv) > 1 else "bookworm"
    image, seconds, built = build_image(release)
    print("image %s (%s in %.1fs)" % (image, "built" if built else "cached", seconds))
    lab = VmLab(release, image)
    start = time.monotonic()
    try:
        lab.start()
        print("booted in %.1fs; workdir %s; ssh ports %s; public port %d" % (
            time.monotonic() - start, lab.workdir, lab.ssh_ports, lab.public_port))
        for name in HOSTS:
            print(name, lab.ssh(name, "uname -r; systemctl is-system-running || true").stdout.strip().replace("\n", " "))
        if sys.stdin.isatty():
            input("Enter powers the lab off ")
    finally:
        lab.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
