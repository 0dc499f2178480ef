"""Data-plane benchmark of the cross-family relay (wg_relay, issue 13).

On loopback only: an IPv4 target (a TCP and a UDP echo server on 127.0.0.1) reached over IPv6
([::1]) through the collection's relay, side by side, in one run, with

- the target reached directly over IPv4 (no relay: what a same-family DNAT publish costs, a
  kernel path) - the floor;
- socat (``TCP6-LISTEN,fork`` / ``UDP6-RECVFROM,fork`` to the IPv4 target): the user-space relay
  an operator would otherwise set up by hand.

Measured: TCP connections per second (connect, 64-byte request, echo, close), TCP bulk
throughput (one connection, 256 MiB echoed back), and UDP request/response round trips per second
(one peer, 64-byte datagrams). Medians of RUNS runs; results in bench/results/relay.md and
relay.json.

usage: .venv/bin/python bench/bench_relay.py [--runs 3] [--quick]
"""

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "collections"))
sys.path.insert(0, HERE)

from benchreport import data_plane_results, write_markdown  # noqa: E402

DAEMON = os.path.join(REPO, "plugins", "module_utils", "_relay", "daemon.py")
MESSAGE = b"x" * 64


def free_port(family=socket.AF_INET6, host="::1"):
    with socket.socket(family, socket.SOCK_STREAM) as tcp, socket.socket(family, socket.SOCK_DGRAM) as udp:
        for _attempt in range(50):
            tcp.bind((host, 0))
            port = tcp.getsockname()[1]
            try:
                udp.bind((host, port))
                return port
            except OSError:
                tcp.close()
                tcp = socket.socket(family, socket.SOCK_STREAM)
    raise RuntimeError("no free port")


class EchoServers(object):
    """TCP and UDP echo on 127.0.0.1:port, a thread per TCP connection."""

    def __init__(self):
        self.port = free_port(socket.AF_INET, "127.0.0.1")
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("127.0.0.1", self.port))
        self.tcp.listen(512)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.port))
        threading.Thread(target=self._accept, daemon=True).start()
        threading.Thread(target=self._udp, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _peer = self.tcp.accept()
            except OSError:
                return
            threading.Thread(target=self._echo, args=(conn,), daemon=True).start()

    @staticmethod
    def _echo(conn):
        with conn:
            while True:
                try:
                    data = conn.recv(262144)
                except OSError:
                    return
                if not data:
                    return
                conn.sendall(data)

    def _udp(self):
        while True:
            try:
                data, peer = self.udp.recvfrom(2048)
            except OSError:
                return
            self.udp.sendto(data, peer)

    def close(self):
        self.tcp.close()
        self.udp.close()


def wait_port(host, port, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("nothing listens on %s:%d" % (host, port))


def tcp_connections(host, port, seconds):
    count, deadline = 0, time.perf_counter() + seconds
    start = time.perf_counter()
    while time.perf_counter() < deadline:
        with socket.create_connection((host, port), timeout=5) as sock:
            sock.sendall(MESSAGE)
            got = b""
            while len(got) < len(MESSAGE):
                got += sock.recv(len(MESSAGE) - len(got))
        count += 1
    return count / (time.perf_counter() - start)


def tcp_bulk(host, port, total):
    chunk = b"\0" * 262144
    with socket.create_connection((host, port), timeout=10) as sock:
        received = [0]

        def reader():
            while received[0] < total:
                data = sock.recv(262144)
                if not data:
                    return
                received[0] += len(data)
        thread = threading.Thread(target=reader)
        start = time.perf_counter()
        thread.start()
        sent = 0
        while sent < total:
            sock.sendall(chunk)
            sent += len(chunk)
        thread.join(60)
        elapsed = time.perf_counter() - start
    if received[0] < total:
        raise RuntimeError("bulk transfer through %s:%d stopped at %d bytes" % (host, port, received[0]))
    return total * 8 / elapsed / 1e6  # Mbit/s


def udp_round_trips(family, host, port, seconds):
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.connect((host, port))
        count, lost = 0, 0
        start = time.perf_counter()
        deadline = start + seconds
        while time.perf_counter() < deadline:
            sock.send(MESSAGE)
            try:
                sock.recv(2048)
                count += 1
            except socket.timeout:
                lost += 1
        return count / (time.perf_counter() - start), lost


def start_relay(workdir, target_port):
    port = free_port()
    config = os.path.join(workdir, "bench-relay.json")
    with open(config, "w") as handle:
        json.dump({"listen_family": "ipv6", "interface": "lo", "sources": [],
                   "relays": [{"proto": "both", "port": port, "to_address": "127.0.0.1", "to_port": target_port}]}, handle)
    program = os.path.join(workdir, "bench-relay.py")
    shutil.copy(DAEMON, program)
    pidfile = os.path.join(workdir, "bench-relay.pid")
    subprocess.run([sys.executable, program, "--config", config, "--pidfile", pidfile, "--daemon"], check=True)

    def stop():
        subprocess.run([sys.executable, program, "--config", config, "--pidfile", pidfile, "--stop"], check=False)
    return port, stop


def start_socat(target_port):
    port = free_port()
    procs = [subprocess.Popen(["socat", "TCP6-LISTEN:%d,bind=[::1],ipv6only=1,reuseaddr,fork" % port,
                               "TCP4:127.0.0.1:%d" % target_port], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL),
             subprocess.Popen(["socat", "-T", "30", "UDP6-RECVFROM:%d,bind=[::1],ipv6only=1,reuseaddr,fork" % port,
                               "UDP4-SENDTO:127.0.0.1:%d" % target_port], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]

    def stop():
        for proc in procs:  # only the processes started here, by their PID
            proc.terminate()
            proc.wait(10)
    return port, stop


def measure(family, host, port, seconds, bulk):
    wait_port(host, port)
    return {"tcp_conn_per_s": tcp_connections(host, port, seconds),
            "tcp_bulk_mbit_s": tcp_bulk(host, port, bulk),
            "udp_rtt_per_s": udp_round_trips(family, host, port, seconds)[0]}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test of the benchmark)")
    args = parser.parse_args()
    seconds, bulk = (0.5, 16 << 20) if args.quick else (3.0, 256 << 20)
    if shutil.which("socat") is None:
        raise SystemExit("socat is needed for the baseline (apt-get install socat)")
    echo = EchoServers()
    workdir = tempfile.mkdtemp(prefix="wgsp-bench-relay-")
    relay_port, stop_relay = start_relay(workdir, echo.port)
    socat_port, stop_socat = start_socat(echo.port)
    paths = (("direct IPv4 (no relay, the floor)", socket.AF_INET, "127.0.0.1", echo.port),
             ("wgsp relay, IPv6 -> IPv4", socket.AF_INET6, "::1", relay_port),
             ("socat, IPv6 -> IPv4", socket.AF_INET6, "::1", socat_port))
    samples = dict((name, []) for name, _f, _h, _p in paths)
    try:
        for _run in range(args.runs):  # interleaved: each run measures every path once
            for name, family, host, port in paths:
                samples[name].append(measure(family, host, port, seconds, bulk))
    finally:
        stop_relay()
        stop_socat()
        echo.close()
        shutil.rmtree(workdir, ignore_errors=True)
    out_dir = os.path.join(HERE, "results")
    results = data_plane_results(out_dir, "relay.json", samples, runs=args.runs, seconds=seconds, bulk_bytes=bulk)
    medians = results["medians"]
    relay, socat_, direct = (medians[paths[1][0]], medians[paths[2][0]], medians[paths[0][0]])
    lines = ["# wg_relay data-plane benchmark (IPv6 published to an IPv4 target)", "",
             "Command: `.venv/bin/python bench/bench_relay.py%s` (medians of %d interleaved runs; loopback only)."
             % (" --quick" if args.quick else "", args.runs), "",
             "Machine: %s; %s." % (results["machine"], results["date"]), "",
             "| path | TCP connections/s | TCP bulk (Mbit/s) | UDP round trips/s |", "| --- | ---: | ---: | ---: |"]
    for name, _f, _h, _p in paths:
        m = medians[name]
        lines.append("| %s | %.0f | %.0f | %.0f |" % (name, m["tcp_conn_per_s"], m["tcp_bulk_mbit_s"], m["udp_rtt_per_s"]))
    lines += ["", "| ratio | TCP connections/s | TCP bulk | UDP round trips/s |", "| --- | ---: | ---: | ---: |"]
    for label, other in (("wgsp relay / direct", direct), ("wgsp relay / socat", socat_)):
        ratios = tuple(relay[key] / other[key] for key in ("tcp_conn_per_s", "tcp_bulk_mbit_s", "udp_rtt_per_s"))
        lines.append("| %s | %.2fx | %.2fx | %.2fx |" % ((label,) + ratios))
    lines.append("")
    notes = ["One client at a time, on the same 2 CPUs as the relay and the echo servers: the figures compare the "
             "paths with each other, not with a network.",
             "socat forks a process per TCP connection and per UDP peer datagram stream (`fork`); the wgsp relay is "
             "one asyncio process per relay set that keeps an upstream socket per UDP peer."]
    write_markdown(out_dir, "relay.md", lines, notes)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
