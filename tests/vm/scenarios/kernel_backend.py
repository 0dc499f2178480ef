"""Kernel-backend scenarios, run in order inside the VM by runner.py (they share one tunnel).

Topology: network namespaces ``a`` and ``b`` joined by a veth pair (underlay 192.0.2.1/.2), kernel
WireGuard interfaces ``wga`` (10.7.0.1, port 51820) and ``wgb`` (10.7.0.2, port 51821) made by
``wg_interface`` with ``backend: auto``. Interface names differ, so the default key and wg-quick paths
(/etc/wireguard/<name>.key|.conf) never collide between the namespaces.

Every module runs with Debian's own python3-pyroute2 (0.7.2 in bookworm): the kernel backend speaks
WireGuard genl itself (plugins/module_utils/_wg_genl.py) and uses pyroute2 only for links/addresses.
"""

PYROUTE2_INFO = r"""
import json
from importlib.metadata import version
import pyroute2
print(json.dumps({"version": version("pyroute2"), "file": pyroute2.__file__}))
"""

import base64
import binascii
import json
import os
import shutil
import subprocess
import time

from harness import (COLLECTION, PYTHON, Skip, ansible_adhoc, check, module_env, module_ok, run_module, scenario,
                     sh)

UNDERLAY = {"a": "192.0.2.1", "b": "192.0.2.2"}
UNDERLAY6 = {"a": "2001:db8::1", "b": "2001:db8::2"}
TUNNEL = {"a": "10.7.0.1", "b": "10.7.0.2"}
PORT = {"a": 51820, "b": 51821}
IFNAME = {"a": "wga", "b": "wgb"}
PSK_PATH = "/etc/wireguard/ab.psk"
STATE = {}  # shared between the scenarios: public keys, the last arguments per interface

ECHO_SERVER = r"""
import socket, sys
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((sys.argv[1], int(sys.argv[2])))
srv.listen(1)
print("listening", flush=True)
conn, _peer = srv.accept()
data = b""
while len(data) < int(sys.argv[3]):
    chunk = conn.recv(65536)
    if not chunk:
        break
    data += chunk
conn.sendall(data)
conn.close()
"""

ECHO_CLIENT = r"""
import os, socket, sys
payload = os.urandom(int(sys.argv[3]))
conn = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=20)
conn.sendall(payload)
data = b""
while len(data) < len(payload):
    chunk = conn.recv(65536)
    if not chunk:
        break
    data += chunk
print("echo ok" if data == payload else "echo MISMATCH %d/%d" % (len(data), len(payload)))
"""


def genkey():
    private = sh(["wg", "genkey"]).stdout.strip()
    public = sh(["wg", "pubkey"], input_text=private + "\n").stdout.strip()
    return private, public


def wg_dump(ns, ifname):
    """``wg show dump`` parsed: {"port", "fwmark", "peers": {pub: {...}}} (private and preshared keys dropped)."""
    lines = sh(["wg", "show", ifname, "dump"], ns=ns).stdout.strip().splitlines()
    head = lines[0].split("\t")
    peers = {}
    for line in lines[1:]:
        fields = line.split("\t")
        peers[fields[0]] = {"psk_set": fields[1] != "(none)", "endpoint": fields[2],
                            "allowed_ips": sorted(fields[3].split(",")) if fields[3] != "(none)" else [],
                            "handshake": int(fields[4]), "rx": int(fields[5]), "tx": int(fields[6]),
                            "keepalive": fields[7]}
    return {"public_key": head[1], "port": head[2], "fwmark": head[3], "peers": peers}


def link_exists(ns, ifname):
    return sh(["ip", "link", "show", ifname], ns=ns, check_rc=False).returncode == 0


def iface_args(side, peers=True, **extra):
    other = "b" if side == "a" else "a"
    args = {"name": IFNAME[side], "addresses": ["%s/24" % TUNNEL[side]], "listen_port": PORT[side]}
    if peers:
        args["peers"] = [{"public_key": STATE["pub"][other], "endpoint": "%s:%d" % (UNDERLAY[other], PORT[other]),
                          "allowed_ips": ["%s/32" % TUNNEL[other]], "preshared_key_path": PSK_PATH}]
    args.update(extra)
    return args


def apply(side, args, **kwargs):
    result = module_ok("wg_interface", args, ns=side, **kwargs)
    check(result.get("backend") == "kernel", "backend auto did not resolve to kernel", result=result)
    STATE.setdefault("args", {})[side] = args
    return result


def echo(ns_from, ns_to, size=200000, port=7000):
    """A TCP echo of ``size`` random bytes through the tunnel (python sockets, both ends in the VM)."""
    server = subprocess.Popen(["ip", "netns", "exec", ns_to, PYTHON, "-c", ECHO_SERVER, TUNNEL[ns_to], str(port), str(size)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        check(server.stdout.readline().strip() == "listening", "echo server did not start")
        out = sh([PYTHON, "-c", ECHO_CLIENT, TUNNEL[ns_to], str(port), str(size)], ns=ns_from, check_rc=False, timeout=60)
        check(out.stdout.strip() == "echo ok", "TCP echo through the tunnel failed", stdout=out.stdout, stderr=out.stderr)
    finally:
        if server.poll() is None:
            server.kill()  # our own child, by PID
        server.wait()


def ping(ns_from, ns_to):
    out = sh(["ping", "-c", "2", "-W", "3", TUNNEL[ns_to]], ns=ns_from, check_rc=False, timeout=30)
    check(out.returncode == 0, "ping %s -> %s through the tunnel failed" % (ns_from, ns_to), stdout=out.stdout)


def need(*keys):
    for key in keys:
        if key not in STATE:
            raise Skip("needs the tunnel of an earlier scenario, which did not come up")


def peer_of(ns, other):
    return wg_dump(ns, IFNAME[ns])["peers"].get(STATE["pub"][other])


@scenario
def smoke():
    """The VM itself: Debian's kernel with a working WireGuard module; the modules see Debian's pyroute2."""
    check(os.path.isdir("/sys/module/wireguard"), "wireguard module not loaded")
    sh(["ip", "link", "add", "wgsmoke", "type", "wireguard"])
    shown = sh(["wg", "show", "wgsmoke"]).stdout
    sh(["ip", "link", "del", "wgsmoke"])
    check("interface: wgsmoke" in shown, "wg show did not show the kernel interface", shown=shown)
    start = time.monotonic()
    info = json.loads(sh([PYTHON, "-c", "import ansible.module_utils.basic\n" + PYROUTE2_INFO], env=module_env()).stdout)
    import_seconds = time.monotonic() - start
    check(info["version"].startswith("0.7.") and info["file"].startswith("/usr/lib/python3/dist-packages/"),
          "the modules do not import Debian's pyroute2", info=info)
    check(os.path.isfile(COLLECTION + "/plugins/modules/wg_interface.py"), "wg_interface is not in the collection")
    STATE["pyroute2"] = info["version"]
    return "kernel %s, pyroute2 %s (Debian, %s), python+imports %.1fs" % (
        os.uname().release, info["version"], os.path.dirname(info["file"]), import_seconds)


@scenario
def tunnel_handshake_and_traffic():
    """Create wga/wgb with backend auto (kernel), keys generated on the host, then peer them and talk."""
    for ns in ("a", "b"):
        sh(["ip", "netns", "add", ns])
        sh(["ip", "link", "set", "lo", "up"], ns=ns)
    sh(["ip", "link", "add", "va", "netns", "a", "type", "veth", "peer", "vb", "netns", "b"])
    for ns, dev in (("a", "va"), ("b", "vb")):
        sh(["ip", "addr", "add", UNDERLAY[ns] + "/24", "dev", dev], ns=ns)
        sh(["ip", "link", "set", dev, "up"], ns=ns)
    psk = sh(["wg", "genpsk"]).stdout
    with open(os.open(PSK_PATH, os.O_WRONLY | os.O_CREAT, 0o600), "w", encoding="ascii") as handle:
        handle.write(psk)

    planned = run_module("wg_interface", iface_args("a", peers=False), ns="a", check_mode=True)
    check(planned.get("changed") is True and not planned.get("failed"), "check mode did not plan a change", result=planned)
    check(not link_exists("a", "wga") and not os.path.exists("/etc/wireguard/wga.key"),
          "check mode created the interface or its key")

    STATE["pub"] = {}
    for ns in ("a", "b"):
        result = apply(ns, iface_args(ns, peers=False))
        check(result["changed"] and result["public_key"], "interface not created", result=result)
        check(oct(os.stat("/etc/wireguard/%s.key" % IFNAME[ns]).st_mode & 0o777) == "0o600", "key file is not 0600")
        STATE["pub"][ns] = result["public_key"]
        kind = sh(["ip", "-d", "link", "show", IFNAME[ns]], ns=ns).stdout
        check(" wireguard " in kind, "link is not a kernel wireguard link", link=kind)
    for ns in ("a", "b"):
        result = apply(ns, iface_args(ns))
        check(result["changed"] and result["set_requests"] == 1, "adding the peer took other than one set request",
              result=result)
    ping("a", "b")
    echo("a", "b")
    peer = peer_of("a", "b")
    check(peer and peer["handshake"] > 0 and peer["psk_set"], "no handshake (or no preshared key) on wga", peer=peer)
    check(peer["allowed_ips"] == ["10.7.0.2/32"], "wrong allowed IPs on wga", peer=peer)
    STATE["handshake"] = peer["handshake"]
    STATE["handshake_at"] = time.time()
    return "handshake at %d, ping and a 200 kB TCP echo through the kernel tunnel" % peer["handshake"]


@scenario
def unchanged_rerun_sends_nothing():
    """Same arguments again: changed=false, zero set requests, no link/address event, session untouched."""
    need("pub", "handshake")
    before = {ns: wg_dump(ns, IFNAME[ns]) for ns in ("a", "b")}
    monitor = subprocess.Popen(["ip", "-n", "a", "monitor", "link", "address", "route"], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        time.sleep(0.5)
        results = {ns: apply(ns, STATE["args"][ns]) for ns in ("a", "b")}
        checked = run_module("wg_interface", STATE["args"]["a"], ns="a", check_mode=True, diff=True)
        time.sleep(0.5)
    finally:
        monitor.kill()  # our own child, by PID
    events = monitor.communicate()[0]
    for ns, result in results.items():
        check(result["changed"] is False and result["set_requests"] == 0 and result["actions"] == [],
              "re-run in %s was not a no-op" % ns, result=result)
    check(checked["changed"] is False and checked["diff"]["before"] == checked["diff"]["after"],
          "check mode with diff reported a change", result=checked)
    check(events.strip() == "", "the re-run changed links/addresses/routes in namespace a", events=events)
    for ns in ("a", "b"):
        after = wg_dump(ns, IFNAME[ns])
        for pub, peer in before[ns]["peers"].items():
            now = after["peers"][pub]
            same = {k: v for k, v in peer.items() if k not in ("rx", "tx")} == {k: v for k, v in now.items() if k not in ("rx", "tx")}
            check(same and now["rx"] >= peer["rx"], "the re-run touched peer %s in %s" % (pub, ns), before=peer, after=now)
    return "changed=false, set_requests=0 on both ends, no netlink event, handshake %d kept" % STATE["handshake"]


@scenario
def add_remove_peer_keeps_session():
    """Adding and then removing a second peer on wga leaves the wga<->wgb session as it was."""
    need("pub", "handshake")
    _private, third = genkey()
    STATE["third"] = third
    before = peer_of("a", "b")
    args = dict(STATE["args"]["a"])
    args["peers"] = args["peers"] + [{"public_key": third, "allowed_ips": ["10.7.0.3/32", "10.9.0.0/24"]}]
    added = apply("a", args)
    check(added["changed"] and added["set_requests"] == 1, "adding a peer was not exactly one set request", result=added)
    mid = peer_of("a", "b")
    check(mid["handshake"] == before["handshake"] and mid["rx"] >= before["rx"] and mid["tx"] >= before["tx"],
          "adding a peer reset the existing peer's session", before=before, after=mid)
    third_peer = wg_dump("a", "wga")["peers"].get(third)
    check(third_peer and third_peer["allowed_ips"] == ["10.7.0.3/32", "10.9.0.0/24"], "new peer not as declared", peer=third_peer)
    echo("a", "b", port=7001)

    removed = apply("a", dict(args, peers=args["peers"][:1]))
    check(removed["changed"] and removed["set_requests"] == 1, "removing a peer was not exactly one set request", result=removed)
    dump = wg_dump("a", "wga")
    after = dump["peers"][STATE["pub"]["b"]]
    check(third not in dump["peers"], "the removed peer is still there", peers=list(dump["peers"]))
    check(after["handshake"] == before["handshake"] and after["rx"] >= mid["rx"], "removing a peer reset the other session",
          before=before, after=after)
    STATE["args"]["a"] = dict(args, peers=args["peers"][:1])
    echo("a", "b", port=7002)
    return "handshake %d unchanged across add and remove; traffic kept flowing" % before["handshake"]


@scenario
def untouched_allowed_ips_survive_update():
    """Updates of one peer (keepalive, endpoint, allowed IPs) leave every other peer's allowed IPs alone."""
    need("pub", "third")
    args = dict(STATE["args"]["a"])
    base_b = dict(args["peers"][0])
    third = {"public_key": STATE["third"], "allowed_ips": ["10.7.0.3/32", "10.9.0.0/24"]}
    apply("a", dict(args, peers=[base_b, third]))
    steps = [
        ("keepalive of the third peer", [base_b, dict(third, persistent_keepalive=25)]),
        ("keepalive of the wgb peer", [dict(base_b, persistent_keepalive=15), dict(third, persistent_keepalive=25)]),
        ("endpoint of the third peer", [dict(base_b, persistent_keepalive=15),
                                        dict(third, persistent_keepalive=25, endpoint="192.0.2.3:51999")]),
        ("allowed IPs of the third peer", [dict(base_b, persistent_keepalive=15),
                                           dict(third, persistent_keepalive=25, endpoint="192.0.2.3:51999",
                                                allowed_ips=["10.7.0.3/32", "10.9.1.0/24"])]),
    ]
    for label, peers in steps:
        result = apply("a", dict(args, peers=peers))
        check(result["changed"] and result["set_requests"] == 1, "%s: not exactly one set request" % label, result=result)
        dump = wg_dump("a", "wga")["peers"]
        for want in peers:
            got = dump.get(want["public_key"])
            check(got is not None and got["allowed_ips"] == sorted(want["allowed_ips"]),
                  "%s: allowed IPs of %s changed" % (label, want["public_key"]), want=want["allowed_ips"], got=got)
    again = apply("a", dict(args, peers=steps[-1][1]))
    check(again["changed"] is False and again["set_requests"] == 0, "re-run after the updates not a no-op", result=again)
    STATE["args"]["a"] = dict(args, peers=[dict(base_b, persistent_keepalive=15)])
    apply("a", STATE["args"]["a"])
    ping("a", "b")
    return "%d single-peer updates, allowed IPs of the other peer intact each time" % len(steps)


def _forms(key_b64):
    raw = base64.b64decode(key_b64)
    return [key_b64, binascii.hexlify(raw).decode(), binascii.hexlify(raw).decode().upper(),
            base64.urlsafe_b64encode(raw).decode()]


@scenario
def secrets_hidden_vvv_diff():
    """``ansible -vvv --diff`` (create, then a preshared key change) never prints a private or preshared key."""
    private, _public = genkey()
    psks = [sh(["wg", "genpsk"]).stdout.strip() for _i in range(2)]
    _other_private, other_public = genkey()
    outputs = []
    for psk in psks:
        args = {"name": "wgs", "private_key": private, "addresses": ["10.8.0.1/24"], "listen_port": 51830,
                "peers": [{"public_key": other_public, "preshared_key": psk, "allowed_ips": ["10.8.0.2/32"],
                           "endpoint": "192.0.2.9:51830"}]}
        out = ansible_adhoc("wgsp.service_proxy.wg_interface", args, ns="a", extra=["-vvv", "--diff"])
        check(out.returncode == 0 and "CHANGED" in out.stdout, "ansible run failed", rc=out.returncode,
              stdout=out.stdout[-3000:], stderr=out.stderr[-3000:])
        outputs.append(out.stdout + out.stderr)
    gone = module_ok("wg_interface", {"name": "wgs", "state": "absent"}, ns="a")
    check(gone["changed"], "wgs was not removed", result=gone)
    text = "\n".join(outputs)
    check('"backend": "kernel"' in text and '"before":' in text and other_public in text,
          "output does not look like a -vvv --diff run of the module", output=text[-6000:])
    leaked = [label for label, key in (("private key", private), ("first psk", psks[0]), ("second psk", psks[1]))
              for form in _forms(key) if form in text]
    check(not leaked, "secrets in the ansible -vvv --diff output: %s" % ", ".join(sorted(set(leaked))))
    check(not link_exists("a", "wgs"), "wgs still exists after state=absent")
    return "%d kB of -vvv --diff output, no key in base64/hex form" % (len(text) // 1024)


@scenario
def device_attributes_and_ipv6():
    """MTU, fwmark, a new listen port, IPv6 addresses/allowed IPs and an IPv6 endpoint; then a no-op re-run."""
    need("pub", "args")
    for ns, dev in (("a", "va"), ("b", "vb")):
        sh(["ip", "-6", "addr", "add", UNDERLAY6[ns] + "/64", "dev", dev, "nodad"], ns=ns)
    a_args = dict(STATE["args"]["a"], mtu=1380, fwmark=0x51, listen_port=51822,
                  addresses=["%s/24" % TUNNEL["a"], "fd07::1/64"])
    # both ends declare IPv6 endpoints: a peer reached over IPv4 would roam wgb's endpoint back to IPv4
    a_args["peers"] = [dict(a_args["peers"][0], endpoint="[%s]:51821" % UNDERLAY6["b"],
                            allowed_ips=["10.7.0.2/32", "fd07::2/128"])]
    b_args = dict(STATE["args"]["b"], addresses=["%s/24" % TUNNEL["b"], "fd07::2/64"])
    b_args["peers"] = [dict(b_args["peers"][0], endpoint="[%s]:51822" % UNDERLAY6["a"],
                            allowed_ips=["10.7.0.1/32", "fd07::1/128"])]
    first = {"a": apply("a", a_args), "b": apply("b", b_args)}
    for ns, result in first.items():
        check(result["changed"], "no change applied in %s" % ns, result=result)
    link = sh(["ip", "-d", "link", "show", "wga"], ns="a").stdout
    dump = wg_dump("a", "wga")
    check(" mtu 1380 " in link and dump["port"] == "51822" and dump["fwmark"] == "0x51",
          "device attributes not applied", link=link, dump=dump)
    check(first["a"]["listen_port"] == 51822 and first["a"]["fwmark"] == 0x51 and first["a"]["mtu"] == 1380,
          "module result does not show the applied attributes", result=first["a"])
    b_peer = wg_dump("b", "wgb")["peers"][STATE["pub"]["a"]]
    check(b_peer["endpoint"] == "[%s]:51822" % UNDERLAY6["a"], "IPv6 endpoint not set", peer=b_peer)
    out = None
    for _attempt in range(5):
        out = sh(["ping", "-6", "-c", "1", "-W", "2", "fd07::2"], ns="a", check_rc=False, timeout=30)
        if out.returncode == 0:
            break
        time.sleep(1)
    check(out.returncode == 0, "IPv6 ping through the tunnel failed", stdout=out.stdout, stderr=out.stderr)
    echo("a", "b", size=50000, port=7003)
    again = {"a": apply("a", a_args), "b": apply("b", b_args)}
    for ns, result in again.items():
        check(result["changed"] is False and result["set_requests"] == 0, "re-run in %s not a no-op" % ns, result=result)
    for ns, args in (("a", a_args), ("b", b_args)):
        plain = dict(args, peers=[{k: v for k, v in args["peers"][0].items() if k != "preshared_key_path"}])
        dropped = apply(ns, plain)
        check(dropped["changed"] and dropped["set_requests"] == 1, "removing the psk in %s: not one set request" % ns,
              result=dropped)
        peer = wg_dump(ns, IFNAME[ns])["peers"][STATE["pub"]["b" if ns == "a" else "a"]]
        check(not peer["psk_set"] and len(peer["allowed_ips"]) == 2, "psk not removed (or allowed IPs lost) in %s" % ns,
              peer=peer)
    echo("a", "b", size=50000, port=7004)
    return "mtu/fwmark/port/IPv6 applied, IPv6 endpoint and ping6 work, re-run unchanged, psk removed on both ends"


@scenario
def many_peers_and_allowed_ips():
    """300 peers and one peer with 1500 allowed IPs: netlink dumps and sets that span several messages."""
    need("pub")
    peers = [{"public_key": base64.b64encode(os.urandom(32)).decode(),
              "allowed_ips": ["10.100.%d.%d/32" % (i // 250, i % 250), "fd10::%x/128" % i]} for i in range(300)]
    peers[0]["allowed_ips"] = ["10.%d.%d.0/24" % (200 + i // 250, i % 250) for i in range(1500)]
    args = {"name": "wgm", "listen_port": 51900, "peers": peers, "persist": False}
    start = time.monotonic()
    created = run_module("wg_interface", args, ns="a")
    create_seconds = time.monotonic() - start
    check(not created.get("failed") and created.get("changed"), "creating wgm with many peers failed",
          result={k: v for k, v in created.items() if k != "peers"})
    dump = wg_dump("a", "wgm")["peers"]
    check(len(dump) == 300, "wgm has %d peers, not 300" % len(dump))
    wrong = [p["public_key"] for p in peers if dump.get(p["public_key"], {}).get("allowed_ips") != sorted(p["allowed_ips"])]
    check(not wrong, "%d peers with wrong allowed IPs (first: %s, has %d)" % (
        len(wrong), wrong[:1], len(dump.get(wrong[0], {}).get("allowed_ips", [])) if wrong else 0))
    start = time.monotonic()
    again = run_module("wg_interface", args, ns="a")
    rerun_seconds = time.monotonic() - start
    check(not again.get("failed") and again.get("changed") is False and again.get("set_requests") == 0,
          "re-run with many peers not a no-op", result={k: v for k, v in again.items() if k != "peers"})
    module_ok("wg_interface", {"name": "wgm", "state": "absent", "remove_key": True}, ns="a")
    return "300 peers + 1500 allowed IPs: create %.1fs (%s set requests), re-run %.1fs unchanged" % (
        create_seconds, created.get("set_requests"), rerun_seconds)


@scenario
def adopt_hand_made_interface():
    """A tunnel made by hand with ``wg`` (no key file): the module adopts its key and changes no session."""
    _private, peer = genkey()
    sh(["ip", "link", "add", "wgh", "type", "wireguard"], ns="a")
    sh(["wg", "set", "wgh", "private-key", "/dev/stdin", "listen-port", "51950", "peer", peer, "allowed-ips",
        "10.50.0.0/24,fd50::/64", "persistent-keepalive", "0"], ns="a", input_text=sh(["wg", "genkey"]).stdout)
    sh(["ip", "link", "set", "wgh", "up"], ns="a")
    public = sh(["wg", "show", "wgh", "public-key"], ns="a").stdout.strip()
    args = {"name": "wgh", "listen_port": 51950, "persist": False,
            "peers": [{"public_key": peer, "allowed_ips": ["fd50::/64", "10.50.0.0/24"]}]}
    adopted = module_ok("wg_interface", args, ns="a")
    check(adopted["changed"] and adopted["set_requests"] == 0 and adopted["public_key"] == public
          and adopted["backend"] == "kernel",
          "adopting the hand-made interface was not a key-file-only change", result=adopted)
    with open("/etc/wireguard/wgh.key", encoding="ascii") as handle:
        key = handle.read().strip()
    derived = sh(["wg", "pubkey"], input_text=key + "\n").stdout.strip()
    check(derived == public, "the written key file is not the interface's key")
    again = module_ok("wg_interface", args, ns="a")
    check(again["changed"] is False and again["set_requests"] == 0, "re-run after adopting not a no-op", result=again)
    module_ok("wg_interface", {"name": "wgh", "state": "absent", "remove_key": True}, ns="a")
    return "key of a wg-made interface adopted into /etc/wireguard/wgh.key with 0 set requests; re-run unchanged"


@scenario
def wg_quick_restores_interface():
    """Delete wga by hand (a reboot), ``wg-quick up wga`` from the persisted file, and the module sees no drift."""
    need("pub", "args")
    conf = "/etc/wireguard/wga.conf"
    check(os.path.isfile(conf) and oct(os.stat(conf).st_mode & 0o777) == "0o600", "no 0600 wg-quick file for wga")
    before = wg_dump("a", "wga")
    sh(["ip", "link", "del", "wga"], ns="a")
    up = sh(["wg-quick", "up", "wga"], ns="a", check_rc=False)
    check(up.returncode == 0, "wg-quick up wga failed", stdout=up.stdout, stderr=up.stderr)
    after = wg_dump("a", "wga")
    check(after["public_key"] == before["public_key"] and after["port"] == before["port"],
          "wg-quick restored another identity/port", before=before, after=after)
    result = apply("a", STATE["args"]["a"])
    check(result["changed"] is False and result["set_requests"] == 0,
          "the module found drift after wg-quick restored the interface", result=result)
    ping("a", "b")
    peer = peer_of("a", "b")
    check(peer["handshake"] > 0, "no new handshake after the restore", peer=peer)
    return "wg-quick restored wga (same key, port, peers, address); module re-run unchanged; tunnel up again"


@scenario
def wg_status_reports_kernel():
    """wg_status on the kernel interfaces: unmanaged wga and wgb as a proxy client of hub wga, with probes."""
    need("pub", "args")
    ping("b", "a")
    hub = module_ok("wg_status", {"interface": "wga", "state_dir": "/tmp/wgsp-status-a", "fail_on": ["disconnected"]}, ns="a")
    check((hub["status"], hub["backend"], hub["client_mode"]) == ("connected", "kernel", "unmanaged"),
          "wg_status on wga is not connected/kernel/unmanaged", result=hub)
    os.makedirs("/tmp/wgsp-status-b", exist_ok=True)
    state = {"version": 1, "interface": "wgb", "client_mode": "proxy", "address": ["%s/24" % TUNNEL["b"]],
             "hub": "a", "hub_endpoint": "[%s]:51822" % UNDERLAY6["a"], "hub_address": TUNNEL["a"],
             "access_services": [], "public_ports": [], "public_interface": "vb", "public_exposure": False,
             "shared_services": [], "rule_sets": []}
    with open("/tmp/wgsp-status-b/wgb.json", "w", encoding="utf-8") as handle:
        json.dump(state, handle)
    client = module_ok("wg_status", {"interface": "wgb", "state_dir": "/tmp/wgsp-status-b", "probe": True,
                                     "fail_on": ["disconnected", "probe", "drift"]}, ns="b")
    check((client["status"], client["backend"], client["client_mode"]) == ("connected", "kernel", "proxy")
          and client["hub_public_key"] == STATE["pub"]["a"] and client["handshake_age"] is not None,
          "wg_status on wgb does not report a connected kernel proxy client of wga", result=client)
    text = json.dumps([hub, client])
    check(not any(word in text for word in ("private_key", "preshared_key")), "wg_status result mentions key material")
    return "wga: %s | wgb: %s" % (hub.get("summary"), client.get("summary"))


@scenario
def state_absent():
    """state=absent removes the kernel link and the wg-quick file, keeps the key unless remove_key."""
    need("pub")
    result = module_ok("wg_interface", {"name": "wgb", "state": "absent"}, ns="b")
    check(result["changed"] and result["backend"] == "kernel", "absent did not remove a kernel interface", result=result)
    check(not link_exists("b", "wgb"), "wgb still exists")
    check(not os.path.exists("/etc/wireguard/wgb.conf") and os.path.exists("/etc/wireguard/wgb.key"),
          "absent should remove the wg-quick file and keep the key")
    again = module_ok("wg_interface", {"name": "wgb", "state": "absent"}, ns="b")
    check(again["changed"] is False, "second absent was not a no-op", result=again)
    last = module_ok("wg_interface", {"name": "wgb", "state": "absent", "remove_key": True}, ns="b")
    check(last["changed"] and not os.path.exists("/etc/wireguard/wgb.key"), "remove_key did not remove the key", result=last)
    return "link, wg-quick file and (with remove_key) key removed; re-run unchanged"


@scenario
def debian_pyroute2_drives_kernel():
    """With Debian's pyroute2 the kernel backend makes the update 0.7.2's own WireGuard class gets wrong
    (keepalive only, see the next scenario) and the peer keeps its allowed IPs."""
    info = json.loads(sh([PYTHON, "-c", PYROUTE2_INFO], env=module_env()).stdout)
    check(info["version"].startswith("0.7.") and info["file"].startswith("/usr/lib/python3/dist-packages/"),
          "the modules do not run with Debian's pyroute2", info=info)
    _private, peer = genkey()
    args = {"name": "wgd", "listen_port": 51960, "persist": False,
            "peers": [{"public_key": peer, "allowed_ips": ["10.60.0.0/24", "10.61.0.1/32"]}]}
    created = module_ok("wg_interface", args)
    check(created["changed"] and created["backend"] == "kernel", "wgd not created with the kernel backend", result=created)
    try:
        updated = module_ok("wg_interface", dict(args, peers=[dict(args["peers"][0], persistent_keepalive=20)]))
        after = wg_dump(None, "wgd")["peers"][peer]
        check(updated["changed"] and updated["set_requests"] == 1, "keepalive update not one set request", result=updated)
        check(after["allowed_ips"] == ["10.60.0.0/24", "10.61.0.1/32"] and after["keepalive"] == "20",
              "the keepalive-only update lost the peer's allowed IPs", peer=after)
        again = module_ok("wg_interface", dict(args, peers=[dict(args["peers"][0], persistent_keepalive=20)]))
        check(again["changed"] is False and again["set_requests"] == 0, "re-run not a no-op", result=again)
    finally:
        module_ok("wg_interface", {"name": "wgd", "state": "absent", "remove_key": True})
    return "pyroute2 %s from %s: keepalive-only update kept allowed IPs %s (1 set request, re-run unchanged)" % (
        info["version"], os.path.dirname(info["file"]), after["allowed_ips"])


FLAG_BUG = r"""
import sys
from pyroute2 import WireGuard
WireGuard().set(sys.argv[1], peer={"public_key": sys.argv[2], "persistent_keepalive": 20})
"""


@scenario
def pyroute2_072_flag_bug_is_real():
    """Why the kernel backend does not use pyroute2's WireGuard class: with Debian's 0.7.2 a keepalive-only
    peer update wipes that peer's allowed IPs on the real kernel."""
    _private, peer = genkey()
    sh(["ip", "link", "add", "wgx", "type", "wireguard"])
    try:
        sh(["wg", "set", "wgx", "private-key", "/dev/stdin", "peer", peer, "allowed-ips", "10.60.0.0/24,10.61.0.1/32"],
           input_text=sh(["wg", "genkey"]).stdout)
        before = wg_dump(None, "wgx")["peers"][peer]["allowed_ips"]
        sh([PYTHON, "-c", FLAG_BUG, "wgx", peer], env={"PYTHONPATH": ""})
        after = wg_dump(None, "wgx")["peers"][peer]
    finally:
        sh(["ip", "link", "del", "wgx"])
    check(before == ["10.60.0.0/24", "10.61.0.1/32"] and after["keepalive"] == "20", "set-up failed", before=before, after=after)
    check(after["allowed_ips"] == [], "pyroute2 0.7.2's WireGuard class no longer wipes allowed IPs", before=before,
          after=after)
    return "pyroute2 0.7.2 keepalive-only update: allowed IPs %s -> none (flags sent as enum values, 2 = REPLACE_ALLOWEDIPS)" % before


def _wireguard_links():
    """(namespace or None, name) of every kernel WireGuard link in the VM."""
    found = []
    namespaces = [None] + [line.split()[0] for line in sh(["ip", "netns", "list"]).stdout.splitlines() if line.strip()]
    for ns in namespaces:
        out = sh(["ip", "-o", "link", "show", "type", "wireguard"], ns=ns).stdout
        found.extend((ns, line.split(":")[1].strip().split("@")[0]) for line in out.splitlines() if ":" in line)
    return found


def _unload_wireguard():
    for ns, name in _wireguard_links():
        sh(["ip", "link", "del", name], ns=ns)
    for _attempt in range(50):
        if sh(["rmmod", "wireguard"], check_rc=False).returncode == 0:
            break
        time.sleep(0.2)
    check(not os.path.isdir("/sys/module/wireguard"), "rmmod wireguard failed", modules=sh(["lsmod"]).stdout)


@scenario
def auto_loads_module_or_fails_clearly():
    """backend auto with the module unloaded (and the kernel's own autoload off): with modprobe failing and
    no wireguard-go it fails naming both and creates nothing; check mode plans kernel and loads nothing;
    a real run runs modprobe and picks kernel. Last scenario: it removes every WireGuard link."""
    check(shutil.which("wireguard-go") is None, "the VM has wireguard-go; this scenario expects none")
    _unload_wireguard()
    with open("/proc/sys/kernel/modprobe", encoding="ascii") as handle:
        kernel_modprobe = handle.read().strip()
    fake_bin = "/tmp/no-modprobe"
    os.makedirs(fake_bin, exist_ok=True)
    with open(os.open(fake_bin + "/modprobe", os.O_WRONLY | os.O_CREAT, 0o755), "w", encoding="ascii") as handle:
        handle.write("#!/bin/sh\necho 'modprobe: FATAL: Module wireguard not found' >&2\nexit 1\n")
    args = {"name": "wgz", "listen_port": 51970, "persist": False}
    try:
        with open("/proc/sys/kernel/modprobe", "w", encoding="ascii") as handle:
            handle.write("/bin/false\n")  # the kernel's genl family autoload fails too
        failed = run_module("wg_interface", args, env={"PATH": fake_bin + ":" + os.environ.get("PATH", "")})
        msg = failed.get("msg", "")
        check(failed.get("failed") and "no WireGuard module loaded" in msg and "wireguard-go" in msg,
              "no clear error naming both backends", result=failed)
        check(not link_exists(None, "wgz") and not os.path.exists("/etc/wireguard/wgz.key"),
              "the failed run created the interface or its key")
        planned = run_module("wg_interface", args, check_mode=True)
        check(not planned.get("failed") and planned.get("backend") == "kernel" and planned.get("changed"),
              "check mode did not plan the kernel backend", result=planned)
        check(not os.path.isdir("/sys/module/wireguard"), "check mode loaded the module")
        created = module_ok("wg_interface", args)
        check(created["changed"] and created["backend"] == "kernel" and os.path.isdir("/sys/module/wireguard"),
              "the real run did not load the module and pick kernel", result=created)
        module_ok("wg_interface", {"name": "wgz", "state": "absent", "remove_key": True})
    finally:
        with open("/proc/sys/kernel/modprobe", "w", encoding="ascii") as handle:
            handle.write(kernel_modprobe + "\n")
    return "unloaded: clear error naming kernel and wireguard-go (%s...); check mode planned kernel without " \
           "loading; real run: modprobe, kernel" % msg[:90]
