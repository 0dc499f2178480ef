"""Control-plane benchmark of site.yml (issue 6) on the container lab.

Builds the demo lab's topology from the test base image (like playbooks/lab_up.yml, on the lab's
internal networks 192.168.30.0/24, 198.51.100.0/24 and 203.0.113.0/24, every name prefixed
``wgsp-bench-``) with a generated inventory, then times ``ansible-playbook site.yml``:

1. N = 1 share client (exactly the lab: hub, share1 exposing the ``dummy`` container, proxy1
   publishing 80 -> share1:80, a public user): the first run on brand-new containers, then the
   unchanged re-run (median of RUNS);
2. N = 5, then N = 10 share clients: the new shares' containers are added, one converging run
   (timed, reported), then the unchanged re-run (median of RUNS). Share k >= 2 has tunnel address
   10.7.0.(10+k) and is published by the proxy on port 8000+k.

After each converging run a request from the public user through the proxy must reach the dummy
service. Everything created is removed at the end, also on failure. Only one lab may use those
subnets on a machine: if another one (the demo, molecule, the fault test) holds them, the script
waits up to --wait seconds, then gives up with a message.

Results: bench/results/site.md, site.json and site_scaling.png (drawn here, no plotting library).

usage: .venv/bin/python bench/bench_site.py [--runs 3] [--sizes 1,5,10] [--wait 1800]
"""

import argparse
import datetime
import ipaddress
import json
import os
import platform
import re
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

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
BIN = os.path.join(REPO, ".venv", "bin")
PREFIX = "wgsp-bench"
NETWORKS = {"under": "192.168.30.0/24", "app": "198.51.100.0/24", "public": "203.0.113.0/24"}
HUB_IP, PROXY_UNDER, PROXY_PUBLIC, PUBLIC_USER, DUMMY_IP = (
    "192.168.30.224", "192.168.30.20", "203.0.113.20", "203.0.113.100", "198.51.100.80")
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
    return "10.7.0.2" if k == 1 else "10.7.0.%d" % (10 + k)


def share_port(k):
    return 80 if k == 1 else 8000 + k


def inventory(n):
    """The lab's inventory (inventories/lab) for n share clients, as one YAML (JSON) document."""
    service = {"name": "dummy", "container": name("dummy"), "proto": "tcp", "port": 80}
    shares = {"share%d" % k: {"ansible_host": name("share%d" % k), "share_client_address": share_tunnel(k) + "/32",
                              "share_client_services": [service], "share_client_docker_network": name("app")}
              for k in range(1, n + 1)}
    proxy = {"ansible_host": name("proxy1"), "proxy_client_address": "10.7.0.3/32",
             "proxy_client_access_services": ["%s:80" % share_tunnel(k) for k in range(1, n + 1)],
             "proxy_client_public_ports": ["%d:%s:80" % (share_port(k), share_tunnel(k)) for k in range(1, n + 1)],
             "proxy_client_public_interface": NETWORKS["public"]}
    return {"all": {
        "vars": {"ansible_connection": "community.docker.docker", "ansible_python_interpreter": "/usr/bin/python3"},
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
        specs["share%d" % k] = ("share%d" % k, [("under", "192.168.30.%d" % (100 + k)), ("app", "198.51.100.%d" % (100 + k))],
                                True, True, None)
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
        listed = sh(["docker", kind, "ls", *extra, "-q", "--filter", "label=wgsp.bench=1", "--format", "{{.Names}}"
                     if kind == "container" else "{{.Name}}"]).stdout.split()
        for item in listed:
            if item.startswith(PREFIX + "-"):
                print("removing leftover %s %s" % (kind, item), flush=True)
                sh(["docker", kind, "rm", *(["-f"] if kind == "container" else []), item], check=False, timeout=120)


# ---------------------------------------------------------------- the timed runs

def ansible_env():
    env = dict(os.environ)
    env.update({"PATH": BIN + os.pathsep + env.get("PATH", ""), "ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"),
                "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0"})
    return env


def site(inventory_path):
    """One timed run of site.yml; returns (seconds, changed per host)."""
    start = time.perf_counter()
    proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", inventory_path, "site.yml"],
                          cwd=REPO, env=ansible_env(), capture_output=True, text=True, timeout=1800, check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise BenchError("site.yml failed (rc=%d)\n%s\n%s" % (proc.returncode, proc.stdout[-6000:], proc.stderr[-3000:]))
    changed = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\S+)\s+:\s+ok=\d+\s+changed=(\d+)", proc.stdout, re.M)}
    return elapsed, changed


def check_service(port):
    proc = sh(["docker", "exec", name("public"), "curl", "-sS", "--max-time", "5", "--retry", "10", "--retry-delay", "1",
               "--retry-all-errors", "http://%s:%d/" % (PROXY_PUBLIC, port)], check=False, timeout=120)
    if proc.returncode != 0 or "wgsp dummy service" not in proc.stdout:
        raise BenchError("public user -> proxy :%d did not reach the dummy service: %s %s" % (
            port, proc.stdout.strip(), proc.stderr.strip()))


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


def run(opts, topo, tmpdir):
    data = {"machine": machine(topo.image), "runs": opts.runs, "sizes": []}
    topo.create_networks(opts.wait)
    previous = 0
    for n in opts.sizes:
        topo.add(containers(n))
        path = os.path.join(tmpdir, "hosts-%d.yml" % n)
        with open(path, "w") as handle:
            json.dump(inventory(n), handle, indent=1)
        first, changed = site(path)
        check_service(share_port(n))
        print("N=%-2d %s run %.1f s (changed %d)" % (
            n, "first" if previous == 0 else "converging (+%d shares)" % (n - previous), first, sum(changed.values())),
            flush=True)
        reruns, rechanged = [], []
        for _i in range(opts.runs):
            elapsed, again = site(path)
            reruns.append(elapsed)
            rechanged.append(sum(again.values()))
            print("N=%-2d unchanged re-run %.1f s (changed %d)" % (n, elapsed, rechanged[-1]), flush=True)
        check_service(share_port(1))
        data["sizes"].append({"shares": n, "added": n - previous, "converge_s": round(first, 2),
                              "converge_changed": changed, "rerun_s": med(reruns),
                              "rerun_all": [round(x, 2) for x in reruns], "rerun_changed": rechanged})
        previous = n
    first = data["sizes"][0]
    data["first_run_s"] = first["converge_s"]
    data["rerun_ratio"] = round(first["rerun_s"] / first["converge_s"], 3)
    data["target_met"] = data["rerun_ratio"] < 0.40
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
    "H": "#...##...##...#######...##...##...#", "I": ".###...#....#....#....#....#...###.",
    "L": "#....#....#....#....#....#....#####", "M": "#...###.###.#.##.#.##...##...##...#",
    "N": "#...##...###..##.#.##..###...##...#", "O": ".###.#...##...##...##...##...#.###.",
    "P": "####.#...##...#####.#....#....#....", "R": "####.#...##...#####.#.#..#..#.#...#",
    "S": ".#####....#.....###.....#....#####.", "T": "#####..#....#....#....#....#....#..",
    "U": "#...##...##...##...##...##...#.###.", "V": "#...##...##...##...##...#.#.#...#..",
    "W": "#...##...##...##.#.##.#.###.###...#", "X": "#...##...#.#.#...#...#.#.#...##...#",
    "Y": "#...##...#.#.#...#....#....#....#..",
}
WHITE, BLACK, GREY, BLUE, ORANGE = (255, 255, 255), (0, 0, 0), (210, 210, 210), (31, 119, 180), (230, 120, 20)


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


def plot(data, path):
    canvas = Canvas(720, 440)
    left, right, top, bottom = 90, 690, 70, 370
    rows = data["sizes"]
    top_value = max(max(r["converge_s"] for r in rows), 1.0)
    step = next(s for s in (1, 2, 5, 10, 20, 25, 50, 100, 200, 500, 1000) if top_value / s <= 8)
    y_max = step * (int(top_value * 1.1 // step) + 1)
    x_max = max(r["shares"] for r in rows) + 1

    def px(shares):
        return left + (right - left) * shares // x_max

    def py(seconds):
        return bottom - int((bottom - top) * seconds / y_max)

    canvas.text(360, 18, "SITE.YML WALL TIME VS SHARE CLIENTS", scale=2, anchor="center")
    for tick in range(0, int(y_max) + 1, step):
        canvas.line(left, py(tick), right, py(tick), GREY)
        canvas.text(left - 10, py(tick) - 7, str(tick), anchor="right")
    canvas.line(left, top, left, bottom, BLACK, width=2)
    canvas.line(left, bottom, right, bottom, BLACK, width=2)
    for row in rows:
        canvas.line(px(row["shares"]), bottom, px(row["shares"]), bottom + 6, BLACK, width=2)
        canvas.text(px(row["shares"]), bottom + 12, str(row["shares"]), anchor="center")
    canvas.text((left + right) // 2, bottom + 40, "SHARE CLIENTS", anchor="center")
    canvas.text(12, top - 26, "SECONDS", anchor="left")
    for key, color, dash in (("converge_s", ORANGE, 6), ("rerun_s", BLUE, 0)):
        points = [(px(r["shares"]), py(r[key])) for r in rows]
        for (x0, y0), (x1, y1) in zip(points, points[1:]):
            canvas.line(x0, y0, x1, y1, color, width=3, dash=dash)
        for (x, y), row in zip(points, rows):
            canvas.rect(x - 4, y - 4, x + 4, y + 4, color)
            other = row["rerun_s" if key == "converge_s" else "converge_s"]
            canvas.text(x, y - 26 if row[key] >= other else y + 10, "%.1f" % row[key], color=color, anchor="center")
    canvas.rect(left + 20, top + 12, left + 40, top + 20, BLUE)
    canvas.text(left + 48, top + 9, "UNCHANGED RE-RUN (MEDIAN)", color=BLUE)
    canvas.rect(left + 20, top + 32, left + 40, top + 40, ORANGE)
    canvas.text(left + 48, top + 29, "FIRST RUN / RUN ADDING SHARES", color=ORANGE)
    canvas.png(path)


def write(data, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "site.json"), "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    plot(data, os.path.join(out_dir, "site_scaling.png"))
    m, first = data["machine"], data["sizes"][0]
    lines = [
        "# site.yml control-plane benchmark (container lab)",
        "",
        "Command: `.venv/bin/python bench/bench_site.py --runs %d --sizes %s`" % (
            data["runs"], ",".join(str(r["shares"]) for r in data["sizes"])),
        "",
        "Machine: %s CPUs (%s), kernel %s, %s, ansible-core %s, image %s, %s; %s." % (
            m["nproc"], m["cpu"], m["kernel"], m["docker"], m["ansible_core"], m["image"], m["forks"] or "forks default",
            m["date"]),
        "",
        "Wall time of `ansible-playbook -i <generated inventory> site.yml` (connection community.docker.docker,",
        "the repository's ansible.cfg). N = 1 is the demo lab (hub, share1 exposing `dummy`, proxy1 publishing",
        "80 -> share1:80); each step up adds share containers, runs site.yml once to converge, then times the",
        "unchanged re-run (median of %d). Share k >= 2 is published by the proxy on port 8000+k." % data["runs"],
        "",
        "| target (issue 6) | first run (s) | unchanged re-run (s) | ratio | met |",
        "| --- | ---: | ---: | ---: | --- |",
        "| re-run < 40%% of the first run | %.1f | %.1f | %.0f%% | %s |" % (
            first["converge_s"], first["rerun_s"], 100 * data["rerun_ratio"], "yes" if data["target_met"] else "**no**"),
        "",
        "| share clients | run that converged (s) | changed | unchanged re-run (s), median | all re-runs | changed in re-runs |",
        "| ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for row in data["sizes"]:
        what = "first run" if row["added"] == row["shares"] else "+%d shares" % row["added"]
        lines.append("| %d | %.1f (%s) | %d | **%.1f** | %s | %s |" % (
            row["shares"], row["converge_s"], what, sum(row["converge_changed"].values()), row["rerun_s"],
            ", ".join("%.1f" % x for x in row["rerun_all"]), ", ".join(str(x) for x in row["rerun_changed"])))
    lines += ["", "![scaling](site_scaling.png)", ""]
    write_markdown(out_dir, "site.md", lines, data.get("notes"))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sizes", default="1,5,10")
    parser.add_argument("--wait", type=int, default=1800, help="seconds to wait for another lab to free the subnets")
    parser.add_argument("--out", default=os.path.join(HERE, "results"))
    parser.add_argument("--replot", action="store_true", help="only rewrite site.md and the PNG from site.json")
    opts = parser.parse_args()
    if opts.replot:
        with open(os.path.join(opts.out, "site.json")) as handle:
            write(json.load(handle), opts.out)
        return
    opts.sizes = sorted(int(x) for x in opts.sizes.split(","))
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
