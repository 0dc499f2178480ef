"""The rig itself, proven with a real tunnel configured by hand with `wg` (no module involved).

Three hosts (hub, two spokes) run wireguard-go; a TCP request from spoke1 reaches an HTTP
server on spoke2 through the hub. Everything stays inside namespaces this test created.
"""

import time

from conftest import require_root_tools


def _key(host):
    private = host.run(["wg", "genkey"]).stdout.strip()
    public = host.run(["wg", "pubkey"], input=private + "\n").stdout.strip()
    host.run("umask 077 && cat > /etc/wireguard/wg0.key", input=private + "\n")
    return public


def test_spoke_reaches_spoke_through_hub(lab):
    require_root_tools("wireguard-go", "wg", "python3")
    hub, s1, s2 = lab.host("hub"), lab.host("spoke1"), lab.host("spoke2")
    lab.switch("under", [(hub, "eth0", ["192.0.2.1/24"]), (s1, "eth0", ["192.0.2.2/24"]),
                         (s2, "eth0", ["192.0.2.3/24"])])
    keys = {}
    for host, addr in ((hub, "10.7.0.1/24"), (s1, "10.7.0.2/32"), (s2, "10.7.0.3/32")):
        host.wg_go("wg0")
        keys[host.name] = _key(host)
        host.run(["wg", "set", "wg0", "private-key", "/etc/wireguard/wg0.key"])
        host.run(["ip", "addr", "add", addr, "dev", "wg0"])
        host.run(["ip", "link", "set", "wg0", "up"])
    hub.run(["wg", "set", "wg0", "listen-port", "51820",
             "peer", keys["spoke1"], "allowed-ips", "10.7.0.2/32",
             "peer", keys["spoke2"], "allowed-ips", "10.7.0.3/32"])
    for spoke in (s1, s2):
        spoke.run(["wg", "set", "wg0", "peer", keys["hub"], "endpoint", "192.0.2.1:51820",
                   "allowed-ips", "10.7.0.0/24", "persistent-keepalive", "1"])
        spoke.run(["ip", "route", "add", "10.7.0.0/24", "dev", "wg0"])

    s2.serve("tcp", "10.7.0.3", 8080)
    deadline = time.time() + 20
    result = None
    while time.time() < deadline:
        result = s1.run(["curl", "-sS", "--max-time", "2", "http://10.7.0.3:8080/"], check=False)
        if result.returncode == 0:
            break
        time.sleep(0.3)
    assert result is not None and result.returncode == 0, result.stderr
    # spoke2 answered, and saw spoke1's tunnel address: nothing rewrote the source on the way.
    assert result.stdout.split() == ["spoke2", "10.7.0.2"]

    # The hub really routed it: both spokes completed a handshake with the hub.
    handshakes = hub.run(["wg", "show", "wg0", "latest-handshakes"]).stdout.split()
    assert len(handshakes) == 4 and all(int(v) > 0 for v in handshakes[1::2])
