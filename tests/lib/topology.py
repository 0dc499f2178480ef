"""The seed topology of the service proxy, configured by hand with `wg` (no module involved).

    public (203.0.113.2, .3) --eth0/eth1-- proxy (10.7.0.3) --wg0--\
                                                                    hub (10.7.0.1) on "under" 192.0.2.0/24
    svc (198.51.100.2) --eth0/eth1-- share (10.7.0.2)      --wg0--/

- hub 192.0.2.1, share 192.0.2.2, proxy 192.0.2.3 on an underlay switch; wireguard-go on each,
  hub listens on 51820 and routes 10.7.0.0/24 between the spokes.
- proxy's eth1 203.0.113.1/24 links to the "public user" host (203.0.113.2 and a second address
  203.0.113.3 used as a source that is *not* allowed).
- ``with_service=True`` adds a "svc" host behind share (198.51.100.0/24, default route via share),
  standing in for a Docker container on a bridge.

``seed(lab)`` returns a ``Seed`` with the hosts and helpers; nothing is forwarded or NATed yet.
"""

import time

TUNNEL = {"hub": "10.7.0.1", "share": "10.7.0.2", "proxy": "10.7.0.3"}
UNDERLAY = {"hub": "192.0.2.1", "share": "192.0.2.2", "proxy": "192.0.2.3"}
PROXY_PUBLIC = "203.0.113.1"
PUBLIC_USER = "203.0.113.2"
OUTSIDER = "203.0.113.3"
SVC = "198.51.100.2"
SHARE_LAN = "198.51.100.1"
LISTEN_PORT = 51820


class Seed:
    def __init__(self, hub, share, proxy, public, svc=None):
        self.hub, self.share, self.proxy, self.public, self.svc = hub, share, proxy, public, svc
        self.hosts = [h for h in (hub, share, proxy, public, svc) if h is not None]

    def wait_tunnel(self, timeout=20):
        """Wait until the hub completed a handshake with both spokes (keepalive starts them)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            values = self.hub.run(["wg", "show", "wg0", "latest-handshakes"], check=False).stdout.split()
            if len(values) == 4 and all(int(v) > 0 for v in values[1::2]):
                return
            time.sleep(0.1)
        raise AssertionError("tunnel proxy -> hub -> share did not come up")


def _key(host):
    private = host.run(["wg", "genkey"]).stdout.strip()
    public = host.run(["wg", "pubkey"], input=private + "\n").stdout.strip()
    host.run("umask 077 && cat > /etc/wireguard/wg0.key", input=private + "\n")
    return public


def tcp_get(host, address, port, source=None, timeout=3):
    """curl from ``host``; returns (rc, body)."""
    argv = ["curl", "-sS", "--max-time", str(timeout)]
    if source:
        argv += ["--interface", source]
    proc = host.run(argv + ["http://%s:%d/" % (address, port)], check=False, timeout=timeout + 5)
    return proc.returncode, proc.stdout.strip()


UDP_CLIENT = (
    "import socket,sys\n"
    "s=socket.socket(socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET, socket.SOCK_DGRAM)\n"
    "s.settimeout(float(sys.argv[4]))\n"
    "if sys.argv[3] != '-': s.bind((sys.argv[3], 0))\n"
    "s.connect((sys.argv[1], int(sys.argv[2])))\n"
    "s.send(b'ping')\n"
    "try:\n print(s.recv(2048).decode())\n"
    "except OSError as e:\n print('ERROR', e); sys.exit(1)\n"
)


def udp_ask(host, address, port, source=None, timeout=2):
    """Send one UDP datagram from ``host`` and return (rc, answer)."""
    from rig import PYTHON

    proc = host.run([PYTHON, "-c", UDP_CLIENT, address, str(port), source or "-", str(timeout)],
                    check=False, timeout=timeout + 5)
    return proc.returncode, proc.stdout.strip()


def seed(lab, with_service=False):
    hub, share, proxy, public = (lab.host(n) for n in ("hub", "share", "proxy", "public"))
    lab.switch("under", [(hub, "eth0", [UNDERLAY["hub"] + "/24"]), (share, "eth0", [UNDERLAY["share"] + "/24"]),
                         (proxy, "eth0", [UNDERLAY["proxy"] + "/24"])])
    lab.link(proxy, "eth1", [PROXY_PUBLIC + "/24"], public, "eth0", [PUBLIC_USER + "/24", OUTSIDER + "/24"])
    svc = None
    if with_service:
        svc = lab.host("svc")
        lab.link(share, "eth1", [SHARE_LAN + "/24"], svc, "eth0", [SVC + "/24"])
        svc.run(["ip", "route", "add", "default", "via", SHARE_LAN])
    keys = {}
    for host in (hub, share, proxy):
        host.wg_go("wg0")
        keys[host.name] = _key(host)
        host.run(["wg", "set", "wg0", "private-key", "/etc/wireguard/wg0.key"])
        prefix = "/24" if host is hub else "/32"
        host.run(["ip", "addr", "add", TUNNEL[host.name] + prefix, "dev", "wg0"])
        host.run(["ip", "link", "set", "wg0", "up"])
    hub.run(["wg", "set", "wg0", "listen-port", str(LISTEN_PORT),
             "peer", keys["share"], "allowed-ips", TUNNEL["share"] + "/32",
             "peer", keys["proxy"], "allowed-ips", TUNNEL["proxy"] + "/32"])
    for spoke in (share, proxy):
        spoke.run(["wg", "set", "wg0", "peer", keys["hub"], "endpoint", "%s:%d" % (UNDERLAY["hub"], LISTEN_PORT),
                   "allowed-ips", "10.7.0.0/24", "persistent-keepalive", "1"])
        spoke.run(["ip", "route", "add", "10.7.0.0/24", "dev", "wg0"])
    return Seed(hub, share, proxy, public, svc)
