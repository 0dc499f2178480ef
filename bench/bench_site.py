"""Control-plane benchmark of site.yml (issues 6 and 12) on the container lab, over Docker and SSH.

Builds the demo lab's topology from the test base image (like playbooks/lab_up.yml, on the lab's
internal networks 192.168.30.0/24, 192.168.40.0/24 and 198.18.30.0/24, every name prefixed
``wgsp-bench-``) with a generated inventory, then, for each size N of the --sizes curve (share
clients; N = 1 is the seed lab: hub, share1 exposing ``dummy``, proxy1 publishing 80 -> share1:80):

1. the new shares' containers are added and site.yml converges them (timed; for N = 1 the first run
   on brand-new containers); a request from the public user through the proxy must then reach the
   dummy service;
2. over each connection (``community.docker.docker``; ``ssh``, through an ``sshd -i`` that ``docker
   exec`` starts in the container, so no packet leaves the machine and the SSH master connection is
   kept as on a real fleet): the unchanged re-run of site.yml and ``ansible all -m ping`` (Ansible's
   own floor: one round trip per host), RUNS times each, interleaved; medians, their ratio, the
   remote tasks per host (a callback, bench/callback_plugins/wgsp_trace.py, records every task
   result) and the controller's CPU time.

Share k >= 2 has tunnel address 10.7.0.(10+k) (k <= 99), 10.7.1.k beyond, and is published by the
proxy on port 8000+k. Everything created is removed at the end, also on failure. Only one lab may
use those subnets on a machine: if another one (the demo, molecule, the fault test) holds them, the
script waits up to --wait seconds, then gives up with a message.

Results: bench/results/site.md, site.json and site_scaling.png (drawn here, no plotting library).

usage: .venv/bin/python bench/bench_site.py [--runs 3] [--sizes 1,10,50] [--connections docker,ssh] [--wait 1800]
"""

import argparse
import datetime
import ipaddress
import json
import os
import platform
import re
import resource
import shutil
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import zlib

from benchreport import write_markdown

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests", "lib"))
from hostnets import check as check_host_networks  # noqa: E402 pylint: disable=wrong-import-position

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BIN = os.path.join(REPO, ".venv", "bin")
PREFIX = "wgsp-bench"
NETWORKS = {"under": "192.168.30.0/24", "app": "192.168.40.0/24", "public": "198.18.30.0/24"}
HUB_IP, PROXY_UNDER, PROXY_PUBLIC, PUBLIC_USER, DUMMY_IP = (
    "192.168.30.224", "192.168.30.20", "198.18.30.20", "198.18.30.100", "192.168.40.80")
DUMMY_CMD = ["sh", "-c", "mkdir -p /srv && echo 'wgsp dummy service' > /srv/index.html && "
             "exec python3 -m http.server 80 --directory /srv"]
TUNNEL_FLAGS = ["--cap-add", "NET_ADMIN", "--device", "/dev/net/tun", "--sysctl", "net.ipv4.ip_forward=1"]


class BenchError(RuntimeError):
    pass


def sh(argv, check=True, timeout=300):
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise BenchError("%s failed (rc=%d): %s" % (" ".join(argv), proc.returncode, proc.stderr.strip()[-2000:]))
    return proc


def name(host):
    return "%s-%s" % (PREFIX, host)


# ---------------------------------------------------------------- the topology

def share_tunnel(k):
    return "10.7.0.2" if k == 1 else "10.7.0.%d" % (10 + k) if k <= 99 else "10.7.1.%d" % k


def share_port(k):
    return 80 if k == 1 else 8000 + k


def inventory(n, connection="docker", key=None):
    """The lab's inventory (inventories/lab) for n share clients, as one YAML (JSON) document, reached
    over ``connection`` (``docker``, or ``ssh`` with the private key ``key``)."""
    service = {"name": "dummy", "container": name("dummy"), "proto": "tcp", "port": 80}
    shares = {"share%d" % k: {"ansible_host": name("share%d" % k), "share_client_address": share_tunnel(k) + "/32",
                              "share_client_services": [service], "share_client_docker_network": name("app")}
              for k in range(1, n + 1)}
    proxy = {"ansible_host": name("proxy1"), "proxy_client_address": "10.7.0.3/32",
             "proxy_client_access_services": ["%s:80" % share_tunnel(k) for k in range(1, n + 1)],
             "proxy_client_public_ports": ["%d:%s:80" % (share_port(k), share_tunnel(k)) for k in range(1, n + 1)],
             "proxy_client_public_interface": NETWORKS["public"]}
    conn = {"ansible_connection": "community.docker.docker"}
    if connection == "ssh":
        # UsePAM=no: the container has no systemd, and pam_systemd waits 40 s for logind per connection.
        conn = {"ansible_connection": "ssh", "ansible_user": "root", "ansible_ssh_private_key_file": key,
                "ansible_ssh_common_args": "-o ProxyCommand='docker exec -i %h /usr/sbin/sshd -i -o UsePAM=no' "
                                           "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR"}
    return {"all": {
        "vars": dict(conn, ansible_python_interpreter="/usr/bin/python3"),
        "children": {
            "wg_server": {"hosts": {"hub": {"ansible_host": name("hub")}},
                          "vars": {"wg_server_address": "10.7.0.1/24", "wg_server_endpoint": HUB_IP + ":51820"}},
            "share_clients": {"hosts": shares},
            "proxy_clients": {"hosts": {"proxy1": proxy}},
        }}}


def containers(n):
    """name -> (hostname, [(network, ip)], tunnel host?, docker socket?, command) for n shares."""
    specs = {
        "dummy": ("dummy", [("app", DUMMY_IP)], False, False, DUMMY_CMD),
        "hub": ("hub", [("under", HUB_IP)], True, False, None),
        "proxy1": ("proxy1", [("under", PROXY_UNDER), ("public", PROXY_PUBLIC)], True, False, None),
        "public": ("public", [("public", PUBLIC_USER)], False, False, None),
    }
    for k in range(1, n + 1):
        specs["share%d" % k] = ("share%d" % k, [("under", "192.168.30.%d" % (100 + k)), ("app", "192.168.40.%d" % (100 + k))],
                                True, True, None)
    assert n <= 120, "the lab's /24 networks hold 120 shares at most"
    return specs


class Topology:
    """The bench's containers and networks; ``close`` removes exactly what was created."""

    def __init__(self, image):
        self.image = image
        self.networks = []
        self.containers = []

    def subnets_in_use(self):
        ids = sh(["docker", "network", "ls", "-q"]).stdout.split()
        busy = []
        for net in json.loads(sh(["docker", "network", "inspect", *ids]).stdout) if ids else []:
            for conf in (net.get("IPAM") or {}).get("Config") or []:
                subnet = conf.get("Subnet")
                if not subnet or ":" in subnet:
                    continue
                if any(ipaddress.ip_network(subnet).overlaps(ipaddress.ip_network(mine)) for mine in NETWORKS.values()):
                    busy.append("%s (%s)" % (net["Name"], subnet))
        return busy

    def create_networks(self, wait):
        check_host_networks(NETWORKS.values())  # never a bridge over this machine's own networks
        deadline = time.time() + wait
        while True:
            busy = self.subnets_in_use()
            if not busy:
                try:
                    for short, subnet in NETWORKS.items():
                        sh(["docker", "network", "create", "--internal", "--subnet", subnet,
                            "--label", "wgsp.bench=1", name(short)])
                        self.networks.append(name(short))
                    return
                except BenchError as exc:  # another lab took a subnet between the check and now
                    self.remove_networks()
                    busy = [str(exc)]
            if time.time() > deadline:
                raise BenchError("the lab subnets are in use by other Docker networks: %s. Another lab (make demo, "
                                 "molecule, the fault test) is running; remove it (e.g. make demo-down) or run the "
                                 "benchmark later." % ", ".join(busy))
            print("lab subnets busy (%s); waiting..." % ", ".join(busy), flush=True)
            time.sleep(15)

    def add(self, specs):
        for short, (hostname, nets, tunnel, socket, command) in specs.items():
            if name(short) in self.containers:
                continue
            argv = ["docker", "create", "--name", name(short), "--hostname", hostname, "--label", "wgsp.bench=1",
                    "--network", name(nets[0][0]), "--ip", nets[0][1]]
            argv += TUNNEL_FLAGS if tunnel else []
            argv += ["-v", "/var/run/docker.sock:/var/run/docker.sock"] if socket else []
            argv += [self.image] + (command or ["sleep", "infinity"])
            sh(argv)
            self.containers.append(name(short))
            for net, ip in nets[1:]:
                sh(["docker", "network", "connect", "--ip", ip, name(net), name(short)])
            sh(["docker", "start", name(short)])

    def remove_networks(self):
        for net in reversed(self.networks):
            sh(["docker", "network", "rm", net], check=False)
        self.networks = []

    def close(self):
        for cont in reversed(self.containers):
            sh(["docker", "rm", "-f", cont], check=False, timeout=120)
        self.containers = []
        self.remove_networks()


def remove_leftovers():
    """Containers and networks of an interrupted earlier run of this benchmark (name prefix + label)."""
    for kind in ("container", "network"):
        extra = ["-a"] if kind == "container" else []
        listed = sh(["docker", kind, "ls", *extra, "--filter", "label=wgsp.bench=1", "--format", "{{.Names}}"
                     if kind == "container" else "{{.Name}}"]).stdout.split()
        for item in listed:
            if item.startswith(PREFIX + "-"):
                print("removing leftover %s %s" % (kind, item), flush=True)
                sh(["docker", kind, "rm", *(["-f"] if kind == "container" else []), item], check=False, timeout=120)


# ---------------------------------------------------------------- the timed runs

def ansible_env(trace=None):
    env = dict(os.environ)
    env.update({"PATH": BIN + os.pathsep + env.get("PATH", ""), "ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"),
                "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"})
    if trace:
        env.update({"ANSIBLE_CALLBACK_PLUGINS": os.path.join(HERE, "callback_plugins"),
                    "ANSIBLE_CALLBACKS_ENABLED": "wgsp_trace", "WGSP_TRACE_FILE": trace})
    return env


def timed(argv, trace=None):
    """Run ``argv`` from the repository; returns (wall seconds, CPU seconds of it and its children, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=REPO, env=ansible_env(trace), capture_output=True, text=True, timeout=3600,
                          check=False, stdin=subprocess.DEVNULL)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise BenchError("%s failed (rc=%d)\n%s\n%s" % (
            " ".join(argv[:2]), proc.returncode, proc.stdout[-6000:], proc.stderr[-3000:]))
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu, proc.stdout


# Actions that run on the controller only (no round trip to the host).
LOCAL_ACTIONS = {"set_fact", "assert", "include_role", "import_role", "include_tasks", "import_tasks",
                 "validate_argument_spec", "debug", "meta", "fail"}


def remote_tasks(trace):
    """Task results that went to a host (not skipped, not a controller-only action), per host."""
    with open(trace) as handle:
        records = json.load(handle)
    counts = {}
    for rec in records:
        if rec["status"] == "skipped" or rec["action"].rsplit(".", 1)[-1] in LOCAL_ACTIONS:
            continue
        counts[rec["host"]] = counts.get(rec["host"], 0) + max(1, rec["items"])
    return counts


def site(inventory_path, trace=None):
    """One timed run of site.yml; returns (seconds, controller CPU seconds, changed per host)."""
    elapsed, cpu, out = timed([os.path.join(BIN, "ansible-playbook"), "-i", inventory_path, "site.yml"], trace)
    changed = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", out, re.M)}
    return elapsed, cpu, changed


def ping(inventory_path):
    elapsed, cpu, _out = timed([os.path.join(BIN, "ansible"), "all", "-i", inventory_path, "-m", "ping"])
    return elapsed, cpu


def floor_playbook(tmpdir, calls):
    """A playbook shaped like site.yml that makes ``calls`` remote calls per host and does nothing else:
    one ping in a first ``strategy: free`` play (site.yml's host-side and key play), the rest as pings in
    a second one (its role play). What ``calls`` round trips per host cost on this lab, with Ansible's own
    per-task work."""
    path = os.path.join(tmpdir, "floor-%d.yml" % calls)
    plays = [{"name": "Floor, first play", "hosts": "all", "gather_facts": False, "strategy": "free",
              "tasks": [{"name": "Call 1", "ansible.builtin.ping": {}}]},
             {"name": "Floor, second play", "hosts": "all", "gather_facts": False, "strategy": "free",
              "tasks": [{"name": "Call %d" % (i + 2), "ansible.builtin.ping": {}} for i in range(calls - 1)]}]
    with open(path, "w") as handle:
        json.dump(plays, handle)  # JSON is YAML
    return path


def floor(inventory_path, playbook):
    elapsed, cpu, _out = timed([os.path.join(BIN, "ansible-playbook"), "-i", inventory_path, playbook])
    return elapsed, cpu


def check_service(port):
    proc = sh(["docker", "exec", name("public"), "curl", "-sS", "--max-time", "5", "--retry", "10", "--retry-delay", "1",
               "--retry-all-errors", "http://%s:%d/" % (PROXY_PUBLIC, port)], check=False, timeout=120)
    if proc.returncode != 0 or "wgsp dummy service" not in proc.stdout:
        raise BenchError("public user -> proxy :%d did not reach the dummy service: %s %s" % (
            port, proc.stdout.strip(), proc.stderr.strip()))


def enable_ssh(containers_, key):
    """Let ``ssh root@<container>`` in with ``key``: its public half in root's authorized_keys, host keys
    and sshd's run directory (sshd itself is started per connection by the inventory's ProxyCommand)."""
    with open(key + ".pub") as handle:
        public = handle.read()
    for cont in containers_:
        proc = subprocess.run(["docker", "exec", "-i", cont, "sh", "-c",
                               "mkdir -p /root/.ssh /run/sshd && chmod 700 /root/.ssh && ssh-keygen -A >/dev/null && "
                               "cat > /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys"],
                              input=public, capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise BenchError("cannot prepare sshd in %s: %s" % (cont, proc.stderr.strip()))


def machine(image):
    def out(argv):
        return sh(argv, check=False).stdout.strip().splitlines()[0]
    with open("/proc/cpuinfo") as handle:
        cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), "?")
    return {"nproc": os.cpu_count(), "cpu": cpu, "kernel": platform.release(),
            "ansible_core": out([os.path.join(BIN, "python"), "-c", "import ansible; print(ansible.__version__)"]),
            "docker": out(["docker", "--version"]), "image": image,
            "forks": out(["sh", "-c", "cd %s && ANSIBLE_CONFIG=ansible.cfg %s/ansible-config dump | grep '^DEFAULT_FORKS'" % (REPO, BIN)]),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}


def med(values):
    return round(statistics.median(values), 2)


def measure(opts, n, path, tmpdir, connection):
    """The unchanged re-runs, pings and floors of one connection, interleaved; a dict of the figures.
    The floor makes as many remote calls per host as the busiest host's re-run made (its first run, traced)."""
    reruns, cpus, rechanged, pings, ping_cpus, floors = [], [], [], [], [], []
    trace = os.path.join(tmpdir, "trace-%s-%d.json" % (connection, n))
    tasks, floor_path = None, None
    for i in range(opts.runs):
        elapsed, cpu, again = site(path, trace if i == 0 else None)
        if tasks is None:
            tasks = remote_tasks(trace)
            floor_path = floor_playbook(tmpdir, max(tasks.values()))
        reruns.append(elapsed)
        cpus.append(cpu)
        rechanged.append(sum(again.values()))
        p_elapsed, p_cpu = ping(path)
        pings.append(p_elapsed)
        ping_cpus.append(p_cpu)
        floors.append(floor(path, floor_path)[0])
        print("N=%-2d %-6s unchanged re-run %.1f s (changed %d, controller CPU %.1f s); ping %.1f s; floor %.1f s" % (
            n, connection, elapsed, rechanged[-1], cpu, p_elapsed, floors[-1]), flush=True)
    shares = [tasks.get("share%d" % k, 0) for k in range(1, n + 1)]
    return {"rerun_s": med(reruns), "rerun_all": [round(x, 2) for x in reruns], "rerun_changed": rechanged,
            "rerun_cpu_s": med(cpus), "ping_s": med(pings), "ping_all": [round(x, 2) for x in pings],
            "ping_cpu_s": med(ping_cpus), "ratio": round(med(reruns) / med(pings), 2),
            "floor_calls": max(tasks.values()), "floor_s": med(floors), "floor_all": [round(x, 2) for x in floors],
            "floor_ratio": round(med(reruns) / med(floors), 2),
            "remote_tasks": {"hub": tasks.get("hub", 0), "share": max(shares), "proxy1": tasks.get("proxy1", 0)}}


def run(opts, topo, tmpdir):
    data = {"machine": machine(topo.image), "runs": opts.runs, "connections": opts.connections, "sizes": []}
    key = os.path.join(tmpdir, "id_bench")
    sh(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key])
    topo.create_networks(opts.wait)
    previous = 0
    for n in opts.sizes:
        added = [c for c in containers(n) if name(c) not in topo.containers]
        topo.add(containers(n))
        enable_ssh([name(c) for c in added if containers(n)[c][2]], key)
        paths = {}
        for connection in opts.connections:
            paths[connection] = os.path.join(tmpdir, "hosts-%s-%d.yml" % (connection, n))
            with open(paths[connection], "w") as handle:
                json.dump(inventory(n, connection, key), handle, indent=1)
        first, first_cpu, changed = site(paths[opts.connections[0]])
        check_service(share_port(n))
        print("N=%-2d %s run %.1f s (changed %d)" % (
            n, "first" if previous == 0 else "converging (+%d shares)" % (n - previous), first, sum(changed.values())),
            flush=True)
        row = {"shares": n, "hosts": n + 2, "added": n - previous, "converge_s": round(first, 2),
               "converge_cpu_s": round(first_cpu, 2), "converge_changed": sum(changed.values()),
               "converge_connection": opts.connections[0]}
        for connection in opts.connections:
            row[connection] = measure(opts, n, paths[connection], tmpdir, connection)
        check_service(share_port(1))
        data["sizes"].append(row)
        previous = n
    first, last = data["sizes"][0], data["sizes"][-1]
    conn0 = opts.connections[0]
    targets = []
    for connection in opts.connections:
        targets.append({"target": "seed lab re-run <= 3x `ansible all -m ping`", "connection": connection,
                        "figures": "%.1f s / %.1f s" % (first[connection]["rerun_s"], first[connection]["ping_s"]),
                        "ratio": first[connection]["ratio"], "met": first[connection]["ratio"] <= 3})
    for connection in opts.connections:
        if last is not first:
            ratio = round(last[connection]["rerun_s"] / first[connection]["rerun_s"], 2)
            targets.append({"target": "%d shares: re-run <= 2x the 1-share re-run" % last["shares"],
                            "connection": connection, "figures": "%.1f s / %.1f s" % (
                                last[connection]["rerun_s"], first[connection]["rerun_s"]),
                            "ratio": ratio, "met": ratio <= 2})
    ratio = round(first["converge_s"] / first[conn0]["rerun_s"], 2)
    targets.append({"target": "first converge of the seed lab <= 2x its re-run", "connection": conn0,
                    "figures": "%.1f s / %.1f s" % (first["converge_s"], first[conn0]["rerun_s"]),
                    "ratio": ratio, "met": ratio <= 2})
    data["targets"] = targets
    return data


# ---------------------------------------------------------------- PNG plot, drawn by hand

GLYPHS = {
    "0": ".###.#...##..###.#.###..##...#.###.", "1": "..#...##....#....#....#....#...###.",
    "2": ".###.#...#....#...#...#...#...#####", "3": "#####...#...#.....#.....##...#.###.",
    "4": "...#...##..#.#.#..#.#####...#....#.", "5": "######....####.....#....##...#.###.",
    "6": "..##..#...#....####.#...##...#.###.", "7": "#####....#...#...#...#....#....#...",
    "8": ".###.#...##...#.###.#...##...#.###.", "9": ".###.#...##...#.####....#...#..##..",
    ".": "..........................##...##..", "-": "...............###.................",
    "(": "...#...#...#....#....#.....#.....#.", ")": ".#.....#.....#....#....#...#...#...",
    "/": "....#...#....#...#...#....#...#....", ",": ".....................##...##...#...",
    "=": "..........#####.....#####..........", ":": "......##...##.......##...##........",
    "A": ".###.#...##...#######...##...##...#", "C": ".###.#...##....#....#....#...#.###.",
    "D": "####.#...##...##...##...##...#####.", "E": "######....#....####.#....#....#####",
    "F": "######....#....####.#....#....#....", "G": ".###.#...##....#.####...##...#.####",
    "H": "#...##...##...#######...##...##...#", "I": ".###...#....#....#....#....#...###.", "K": "#...##..#.#.#..##...#.#..#..#.#...#",
    "L": "#....#....#....#....#....#....#####", "M": "#...###.###.#.##.#.##...##...##...#",
    "N": "#...##...###..##.#.##..###...##...#", "O": ".###.#...##...##...##...##...#.###.",
    "P": "####.#...##...#####.#....#....#....", "R": "####.#...##...#####.#.#..#..#.#...#",
    "S": ".#####....#.....###.....#....#####.", "T": "#####..#....#....#....#....#....#..",
    "U": "#...##...##...##...##...##...#.###.", "V": "#...##...##...##...##...#.#.#...#..",
    "W": "#...##...##...##.#.##.#.###.###...#", "X": "#...##...#.#.#...#...#.#.#...##...#",
    "Y": "#...##...#.#.#...#....#....#....#..",
}
WHITE, BLACK, GREY, BLUE, ORANGE = (255, 255, 255), (0, 0, 0), (210, 210, 210), (31, 119, 180), (230, 120, 20)
GREEN, PURPLE = (44, 160, 44), (148, 103, 189)


class Canvas:
    def __init__(self, width, height):
        self.width, self.height = width, height
        self.pixels = [bytearray(WHITE * width) for _row in range(height)]

    def dot(self, x, y, color):
        if 0 <= x < self.width and 0 <= y < self.height:
            self.pixels[y][3 * x:3 * x + 3] = bytes(color)

    def rect(self, x0, y0, x1, y1, color):
        for y in range(min(y0, y1), max(y0, y1) + 1):
            for x in range(min(x0, x1), max(x0, x1) + 1):
                self.dot(x, y, color)

    def line(self, x0, y0, x1, y1, color, width=1, dash=0):
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for i in range(steps + 1):
            if dash and (i // dash) % 2:
                continue
            x, y = x0 + (x1 - x0) * i // steps, y0 + (y1 - y0) * i // steps
            self.rect(x - width // 2, y - width // 2, x + (width - 1) // 2, y + (width - 1) // 2, color)

    def text(self, x, y, string, color=BLACK, scale=2, anchor="left"):
        string = string.upper()
        span = len(string) * 6 * scale
        x -= span if anchor == "right" else span // 2 if anchor == "center" else 0
        for index, char in enumerate(string):
            glyph = GLYPHS.get(char, "")
            for bit, on in enumerate(glyph):
                if on == "#":
                    gx, gy = x + index * 6 * scale + (bit % 5) * scale, y + (bit // 5) * scale
                    self.rect(gx, gy, gx + scale - 1, gy + scale - 1, color)

    def png(self, path):
        raw = b"".join(b"\x00" + bytes(row) for row in self.pixels)

        def chunk(kind, payload):
            return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload) & 0xFFFFFFFF)
        with open(path, "wb") as handle:
            handle.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", self.width, self.height, 8, 2, 0, 0, 0))
                         + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def series(data):
    """(label, color, dash, width, key function) of each line of the plot."""
    lines = [("FIRST RUN / RUN ADDING SHARES", ORANGE, 6, 3, lambda r: r["converge_s"])]
    colors = {"docker": BLUE, "ssh": GREEN}
    for conn in data["connections"]:
        lines.append(("RE-RUN, %s" % conn.upper(), colors.get(conn, PURPLE), 0, 3, lambda r, c=conn: r[c]["rerun_s"]))
        lines.append(("PING, %s" % conn.upper(), colors.get(conn, PURPLE), 3, 1, lambda r, c=conn: r[c]["ping_s"]))
    return lines


def plot(data, path):
    canvas = Canvas(760, 500)
    left, right, top, bottom = 90, 730, 170, 430
    rows = data["sizes"]
    lines = series(data)
    top_value = max(max(key(r) for _l, _c, _d, _w, key in lines for r in rows), 1.0)
    step = next(s for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 500, 1000) if top_value / s <= 8)
    y_max = step * (int(top_value * 1.1 // step) + 1)
    x_max = max(r["shares"] for r in rows) + 1

    def px(shares):
        return left + (right - left) * shares // x_max

    def py(seconds):
        return bottom - int((bottom - top) * seconds / y_max)

    canvas.text(380, 12, "SITE.YML WALL TIME VS SHARE CLIENTS", scale=2, anchor="center")
    for tick in range(0, int(y_max) + 1, step):
        canvas.line(left, py(tick), right, py(tick), GREY)
        canvas.text(left - 10, py(tick) - 7, str(tick), anchor="right")
    canvas.line(left, top, left, bottom, BLACK, width=2)
    canvas.line(left, bottom, right, bottom, BLACK, width=2)
    for row in rows:
        canvas.line(px(row["shares"]), bottom, px(row["shares"]), bottom + 6, BLACK, width=2)
        canvas.text(px(row["shares"]), bottom + 12, str(row["shares"]), anchor="center")
    canvas.text((left + right) // 2, bottom + 40, "SHARE CLIENTS", anchor="center")
    canvas.text(12, top - 20, "SECONDS", anchor="left")
    for index, (label, color, dash, width, key) in enumerate(lines):
        points = [(px(r["shares"]), py(key(r))) for r in rows]
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            canvas.line(x0, y0, x1, y1, color, width=width, dash=dash)
        for (x, y), row in zip(points, rows):
            canvas.rect(x - 3, y - 3, x + 3, y + 3, color)
            if width > 1:
                canvas.text(x + 8, y - 16, "%.1f" % key(row), color=color, scale=1)
        lx, ly = left + 20, 36 + index * 20
        canvas.line(lx, ly + 5, lx + 24, ly + 5, color, width=width + 2, dash=dash)
        canvas.text(lx + 32, ly, label, color=color)
    canvas.png(path)


def write(data, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "site.json"), "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    plot(data, os.path.join(out_dir, "site_scaling.png"))
    m = data["machine"]
    lines = [
        "# site.yml control-plane benchmark (container lab, over Docker and SSH)",
        "",
        "Command: `.venv/bin/python bench/bench_site.py --runs %d --sizes %s --connections %s`" % (
            data["runs"], ",".join(str(r["shares"]) for r in data["sizes"]), ",".join(data["connections"])),
        "",
        "Machine: %s CPUs (%s), kernel %s, %s, ansible-core %s, image %s, %s; %s. The controller, every "
        "managed host (a container) and the Docker engine share these CPUs." % (
            m["nproc"], m["cpu"], m["kernel"], m["docker"], m["ansible_core"], m["image"], m["forks"] or "forks default",
            m["date"]),
        "",
        "Wall time of `ansible-playbook -i <generated inventory> site.yml` and of `ansible all -i <same> -m ping`",
        "(the repository's ansible.cfg), both over the same connection on the same lab in the same run, each",
        "%d times, interleaved; medians. N = 1 is the seed lab (hub, share1 exposing `dummy`, proxy1 publishing"
        % data["runs"],
        "80 -> share1:80); each step adds share containers (share k >= 2 published on port 8000+k), converges",
        "them with one run (over %s), then measures. SSH: `ssh` to each container through an `sshd -i` that"
        % data["connections"][0],
        "`docker exec` starts (ProxyCommand), with Ansible's usual ControlMaster/ControlPersist connection reuse.",
        "Floor: a playbook shaped like site.yml (two `strategy: free` plays over every host) that makes as",
        "many remote calls per host as the busiest host's re-run (`ansible.builtin.ping` each) and nothing else:",
        "what that many round trips cost on this lab, timed in the same run.",
        "",
        "| target (issue 12) | connection | measured | ratio | met |",
        "| --- | --- | --- | ---: | --- |",
    ]
    for target in data["targets"]:
        lines.append("| %s | %s | %s | %.2fx | %s |" % (
            target["target"], target["connection"], target["figures"], target["ratio"],
            "yes" if target["met"] else "**no**"))
    lines += [
        "",
        "| shares (hosts) | connection | converging run (s), changed | unchanged re-run (s), median | all re-runs (changed) "
        "| ping (s), median | re-run / ping | floor: calls, s | re-run / floor "
        "| remote tasks per host: hub, a share, proxy1 | controller CPU (s): re-run, ping |",
        "| ---: | --- | --- | ---: | --- | ---: | ---: | --- | ---: | --- | --- |",
    ]
    for row in data["sizes"]:
        for conn in data["connections"]:
            fig = row[conn]
            converged = ("%.1f (%s), %d" % (row["converge_s"], "first run" if row["added"] == row["shares"]
                                            else "+%d shares" % row["added"], row["converge_changed"])
                         if conn == row["converge_connection"] else "")
            floor_cells = ("%d, %.1f" % (fig["floor_calls"], fig["floor_s"]), "%.1fx" % fig["floor_ratio"]) \
                if "floor_s" in fig else ("", "")
            lines.append("| %d (%d) | %s | %s | **%.1f** | %s | %.1f | %.1fx | %s | %s | %d, %d, %d | %.1f, %.1f |" % (
                row["shares"], row["hosts"], conn, converged, fig["rerun_s"],
                ", ".join("%.1f (%d)" % (x, c) for x, c in zip(fig["rerun_all"], fig["rerun_changed"])),
                fig["ping_s"], fig["ratio"], floor_cells[0], floor_cells[1], fig["remote_tasks"]["hub"], fig["remote_tasks"]["share"],
                fig["remote_tasks"]["proxy1"], fig["rerun_cpu_s"], fig["ping_cpu_s"]))
    lines += ["", "![scaling](site_scaling.png)", ""]
    write_markdown(out_dir, "site.md", lines, data.get("notes"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="1,10,50")
    parser.add_argument("--connections", default="docker,ssh", help="docker, ssh or both (the first converges)")
    parser.add_argument("--wait", type=int, default=1800, help="seconds to wait for another lab to free the subnets")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--replot", action="store_true", help="only rewrite site.md and the PNG from site.json")
    opts = parser.parse_args()
    if opts.replot:
        with open(os.path.join(opts.out, "site.json")) as handle:
            write(json.load(handle), opts.out)
        return
    opts.sizes = sorted(int(x) for x in opts.sizes.split(","))
    opts.connections = [c for c in opts.connections.split(",") if c]
    if not opts.connections or set(opts.connections) - {"docker", "ssh"}:
        sys.exit("bench_site: --connections takes docker, ssh or both")
    if not shutil.which("docker") or sh(["docker", "info"], check=False).returncode != 0:
        sys.exit("bench_site: the Docker engine is not running (make setup starts it)")
    sh(["bash", os.path.join(REPO, "tests", "image", "build.sh")], timeout=900)
    image = sh(["bash", os.path.join(REPO, "tests", "image", "build.sh"), "--print-tag"]).stdout.strip()
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit("bench_site: terminated"))
    remove_leftovers()
    topo = Topology(image)
    tmpdir = tempfile.mkdtemp(prefix="wgsp-bench-site-")
    try:
        data = run(opts, topo, tmpdir)
    finally:
        topo.close()
        shutil.rmtree(tmpdir, ignore_errors=True)
    write(data, opts.out)
    print(open(os.path.join(opts.out, "site.md")).read())


if __name__ == "__main__":
    main()
