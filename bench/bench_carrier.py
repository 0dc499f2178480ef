"""Data-plane benchmark of the carrier (wg_carrier, issue 14): what keeping the public client's
address costs beside the masqueraded publish a user gets otherwise.

On namespace hosts only (the rig of the integration tests: hub, share, proxy, a public host and a
service host behind the share, real wireguard-go tunnels), both paths set up by the collection's
modules at once, to one echo service on the service host, and measured from the public host in
the same run, interleaved:

- masqueraded publish (proxy port 80): the proxy DNATs to the share's tunnel address and
  masquerades, the share DNATs to the service and masquerades - the service sees the share;
- carrier (proxy port 81, ``preserve_source``): DNAT without masquerade on both, through the
  VXLAN carrier inside the tunnel - the service sees the public client.

Measured: TCP connections per second (connect, 64-byte request, echo, close), TCP bulk throughput
(one connection, echoed back) and UDP request/response round trips per second. Medians of RUNS
runs; results in bench/results/carrier.md and carrier.json.

usage: .venv/bin/python bench/bench_carrier.py [--runs 3] [--quick]
"""

import argparse
import json
import os
import socket
import sys
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "lib"))

from bench_relay import tcp_bulk, tcp_connections, udp_round_trips, wait_port  # noqa: E402
from benchreport import data_plane_results, write_markdown  # noqa: E402

TUNNEL = {"hub": "10.7.0.1", "share": "10.7.0.2", "proxy": "10.7.0.3"}
UNDERLAY = {"hub": "192.0.2.1", "share": "192.0.2.2", "proxy": "192.0.2.3"}
PUBLIC, CLIENT, SVC_LAN, SVC = "203.0.113.1", "203.0.113.2", "198.51.100.1", "198.51.100.2"
PATHS = (("masqueraded publish (the service sees the share)", 80, 7000),
         ("carrier, preserve_source (the service sees the client)", 81, 7001))


def serve(ports):
    """TCP and UDP echo on 0.0.0.0 at each port, a thread per TCP connection (inside the service host)."""
    def echo(conn):
        with conn:
            while True:
                data = conn.recv(262144)
                if not data:
                    return
                conn.sendall(data)

    def accept(sock):
        while True:
            conn, _peer = sock.accept()
            threading.Thread(target=echo, args=(conn,), daemon=True).start()

    def udp(sock):
        while True:
            data, peer = sock.recvfrom(2048)
            sock.sendto(data, peer)

    for port in ports:
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind(("0.0.0.0", port))
        tcp.listen(512)
        dgram = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        dgram.bind(("0.0.0.0", port))
        threading.Thread(target=accept, args=(tcp,), daemon=True).start()
        threading.Thread(target=udp, args=(dgram,), daemon=True).start()
    print("ready", flush=True)
    threading.Event().wait()


def client(host, port, seconds, bulk):
    """One measurement of every figure through ``host:port`` (inside the public host), as JSON."""
    wait_port(host, port)
    print(json.dumps({"tcp_conn_per_s": tcp_connections(host, port, seconds),
                      "tcp_bulk_mbit_s": tcp_bulk(host, port, bulk),
                      "udp_rtt_per_s": udp_round_trips(socket.AF_INET, host, port, seconds)[0]}))


def _ok(result):
    if result.get("failed"):
        raise SystemExit("setting the lab up failed: %s" % result.get("msg"))
    return result


def build(lab):
    from topology import _key
    from rig import PYTHON

    hub, share, proxy, pub, svc = (lab.host(n) for n in ("hub", "share", "proxy", "public", "svc"))
    hosts = {"hub": hub, "share": share, "proxy": proxy}
    lab.switch("under", [(hosts[n], "eth0", [UNDERLAY[n] + "/24"]) for n in hosts])
    lab.link(proxy, "eth1", [PUBLIC + "/24"], pub, "eth0", [CLIENT + "/24"])
    lab.link(share, "eth1", [SVC_LAN + "/24"], svc, "eth0", [SVC + "/24"])
    svc.run(["ip", "route", "add", "default", "via", SVC_LAN])
    keys = {}
    for name, host in hosts.items():
        host.wg_go("wg0")
        keys[name] = _key(host)
        host.run(["wg", "set", "wg0", "private-key", "/etc/wireguard/wg0.key"])
        host.run(["ip", "addr", "add", TUNNEL[name] + ("/24" if name == "hub" else "/32"), "dev", "wg0"])
        host.run(["ip", "link", "set", "wg0", "up"])
    hub.run(["wg", "set", "wg0", "listen-port", "51820", "peer", keys["share"], "allowed-ips", TUNNEL["share"] + "/32",
             "peer", keys["proxy"], "allowed-ips", TUNNEL["proxy"] + "/32"])
    for name in ("share", "proxy"):
        hosts[name].run(["wg", "set", "wg0", "peer", keys["hub"], "endpoint", UNDERLAY["hub"] + ":51820",
                         "allowed-ips", "10.7.0.0/24", "persistent-keepalive", "1"])
        hosts[name].run(["ip", "route", "add", "10.7.0.0/24", "dev", "wg0"])
    (masq_port, masq_to), (kept_port, kept_to) = [(p, t) for _n, p, t in PATHS]
    _ok(proxy.module("wg_carrier", {"name": "wg0-c", "interface": "wg0", "side": "proxy", "local": TUNNEL["proxy"],
                                    "peers": [TUNNEL["share"]],
                                    "flows": [{"in_interface": "eth1", "proto": "both", "port": kept_port,
                                               "to_address": TUNNEL["share"]}]}))
    _ok(proxy.module("wg_dnat", {"name": "public", "in_interface": "eth1", "out_interface": "wg0", "masquerade": True,
                                 "rules": [{"proto": "both", "port": masq_port, "to_address": TUNNEL["share"]},
                                           {"proto": "both", "port": kept_port, "to_address": TUNNEL["share"],
                                            "out_interface": "wg0-c", "masquerade": False}]}))
    _ok(share.module("wg_carrier", {"name": "wg0-c", "interface": "wg0", "side": "share", "local": TUNNEL["share"],
                                    "peers": [TUNNEL["proxy"]]}))
    _ok(share.module("wg_dnat", {"name": "share", "in_interface": "wg0", "rules": [
        {"proto": "both", "port": masq_port, "to_address": SVC, "to_port": masq_to, "masquerade": True},
        {"proto": "both", "port": kept_port, "to_address": SVC, "to_port": kept_to, "in_interface": "wg0-c",
         "masquerade": False}]}))
    server = svc.popen([PYTHON, os.path.abspath(__file__), "--serve", str(masq_to), str(kept_to)],
                       stdout=__import__("subprocess").PIPE, text=True)
    if server.stdout.readline().strip() != "ready":
        raise SystemExit("the echo service did not start")
    return pub


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test of the benchmark)")
    parser.add_argument("--serve", nargs="+", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--client", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        return serve(args.serve)
    if args.client:
        host, port, seconds, bulk = args.client
        return client(host, int(port), float(seconds), int(bulk))
    if os.geteuid() != 0:
        raise SystemExit("the benchmark builds namespace hosts: run it as root")
    from rig import PYTHON, Lab

    seconds, bulk = (0.5, 8 << 20) if args.quick else (3.0, 128 << 20)
    samples = dict((name, []) for name, _p, _t in PATHS)
    lab = Lab()
    try:
        pub = build(lab)
        for _run in range(args.runs):  # interleaved: each run measures every path once
            for name, port, _to in PATHS:
                out = pub.run([PYTHON, os.path.abspath(__file__), "--client", PUBLIC, str(port), str(seconds), str(bulk)],
                              timeout=300).stdout
                samples[name].append(json.loads(out.strip().splitlines()[-1]))
    finally:
        lab.close()
    out_dir = os.path.join(HERE, "results")
    results = data_plane_results(out_dir, "carrier.json", samples, runs=args.runs, seconds=seconds, bulk_bytes=bulk)
    medians = results["medians"]
    masq, kept = medians[PATHS[0][0]], medians[PATHS[1][0]]
    lines = ["# wg_carrier data-plane benchmark (the public client's address at the service)", "",
             "Command: `.venv/bin/python bench/bench_carrier.py%s` (medians of %d interleaved runs; namespace hosts "
             "with wireguard-go tunnels)." % (" --quick" if args.quick else "", args.runs), "",
             "Machine: %s; %s." % (results["machine"], results["date"]), "",
             "| path (public host -> proxy -> hub -> share -> service) | TCP connections/s | TCP bulk (Mbit/s) | "
             "UDP round trips/s |", "| --- | ---: | ---: | ---: |"]
    for name, _p, _t in PATHS:
        m = medians[name]
        lines.append("| %s | %.0f | %.0f | %.0f |" % (name, m["tcp_conn_per_s"], m["tcp_bulk_mbit_s"], m["udp_rtt_per_s"]))
    ratios = tuple(kept[key] / masq[key] for key in ("tcp_conn_per_s", "tcp_bulk_mbit_s", "udp_rtt_per_s"))
    lines += ["", "| ratio | TCP connections/s | TCP bulk | UDP round trips/s |", "| --- | ---: | ---: | ---: |",
              "| carrier / masqueraded publish | %.2fx | %.2fx | %.2fx |" % ratios, ""]
    notes = ["One client at a time; every host, the three wireguard-go processes and the client share the same "
             "2 CPUs: the figures compare the two paths with each other, not with a network.",
             "The carrier adds a VXLAN header (50 bytes) inside the tunnel - its MTU is the tunnel's less 50 - and "
             "a policy-routing lookup on the proxy and a connection-mark restore on the share; there is no user-space "
             "step on either path."]
    write_markdown(out_dir, "carrier.md", lines, notes)
    print("\n".join(lines))
    return None


if __name__ == "__main__":
    main()
