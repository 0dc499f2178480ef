"""wg_filter on the seed topology with real wireguard-go tunnels, for both backends.

hub: ``isolate`` (forward wg0 -> wg0): proxy may reach share:80, nothing else between the spokes.
share: ``input`` (input on wg0): ssh and ICMP only. Check mode, idempotence, atomic failure,
others' rules and absent are checked on the real ruleset (counters stripped, byte comparison).
"""

import pytest

from conftest import require_root_tools
from topology import TUNNEL, seed, tcp_get

PING = (
    "import os,socket,struct,sys,time\n"
    "def csum(b):\n"
    "    t=sum(struct.unpack('!%dH'%(len(b)//2),b)); t=(t>>16)+(t&0xffff); t+=t>>16; return ~t&0xffff\n"
    "s=socket.socket(socket.AF_INET,socket.SOCK_RAW,socket.IPPROTO_ICMP); s.settimeout(0.2)\n"
    "ident=os.getpid()&0xffff; body=struct.pack('!BBHHH',8,0,0,ident,1)+b'wgsp'\n"
    "s.sendto(struct.pack('!BBHHH',8,0,csum(body),ident,1)+b'wgsp',(sys.argv[1],0))\n"
    "end=time.time()+float(sys.argv[2])\n"
    "while time.time()<end:\n"
    "    try: data,addr=s.recvfrom(2048)\n"
    "    except socket.timeout: continue\n"
    "    if addr[0]==sys.argv[1] and data[20]==0: print('pong'); sys.exit(0)\n"
    "sys.exit(1)\n"
)
HUB = {"name": "isolate", "hook": "forward", "in_interface": "wg0", "out_interface": "wg0",
       "allow": [{"proto": "tcp", "port": 80, "sources": [TUNNEL["proxy"]], "destinations": [TUNNEL["share"]]}],
       "policy": "drop", "log": True}
SHARE = {"name": "input", "hook": "input", "in_interface": "wg0",
         "allow": [{"proto": "tcp", "port": 22}, {"proto": "icmp"}], "policy": "drop"}
FOREIGN = {
    "iptables": "iptables -A FORWARD -i eth9 -j ACCEPT; iptables -A INPUT -p tcp --dport 9 -j ACCEPT; "
                "ip6tables -A FORWARD -s 2001:db8:1::/48 -j ACCEPT",
    "nftables": "nft add table inet other; nft add chain inet other fw '{ type filter hook forward priority 0; }'; "
                "nft add rule inet other fw tcp dport 9 accept",
}


def ping(host, address, timeout=1.0):
    from rig import PYTHON

    return host.run([PYTHON, "-c", PING, address, str(timeout)], check=False, timeout=10).returncode == 0


def snapshot(host, backend):
    if backend == "iptables":
        return host.run("iptables-save | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//'; "
                        "ip6tables-save | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//'").stdout
    return host.run("nft list ruleset | sed 's/packets [0-9]* bytes [0-9]*//'").stdout


def blocked(host, address, port):
    return tcp_get(host, address, port, timeout=1)[0] != 0


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_hub_isolation_and_share_input(lab, backend):
    require_root_tools("wireguard-go", "wg", "iptables", "ip6tables", "nft", "curl")
    topo = seed(lab)
    hub, share, proxy = topo.hub, topo.share, topo.proxy
    share.serve("tcp", TUNNEL["share"], 80)
    share.serve("tcp", TUNNEL["share"], 81)
    proxy.serve("tcp", TUNNEL["proxy"], 80)
    topo.wait_tunnel()
    hub.run(FOREIGN[backend])
    clean = snapshot(hub, backend)
    hub_args = dict(HUB, backend=backend)

    # check mode: plan, nothing changed, traffic still flows both ways
    check = hub.module("wg_filter", hub_args, check_mode=True, diff=True)
    assert check["changed"] and check["plan"] and not check["applied"] and check["backend"] == backend
    assert snapshot(hub, backend) == clean
    assert tcp_get(share, TUNNEL["proxy"], 80)[0] == 0

    first = hub.module("wg_filter", hub_args)
    assert first["changed"] and first["applied"], first
    # the allowed flow passes (its replies through ct established), the rest is dropped
    assert tcp_get(proxy, TUNNEL["share"], 80) == (0, "share %s" % TUNNEL["proxy"])
    assert blocked(proxy, TUNNEL["share"], 81)
    assert blocked(share, TUNNEL["proxy"], 80)  # reverse direction
    assert not ping(proxy, TUNNEL["share"], 0.5)
    applied = snapshot(hub, backend)
    assert ("-A FORWARD -i eth9 -j ACCEPT" in applied) if backend == "iptables" else ("tcp dport 9 accept" in applied)

    # idempotent: nothing written
    again = hub.module("wg_filter", hub_args)
    assert again["changed"] is False and again["plan"] == [] and again["applied"] is False
    assert snapshot(hub, backend) == applied

    # a bad batch fails naming the field and leaves the ruleset byte-identical
    bad = hub.module("wg_filter", dict(hub_args, allow=HUB["allow"] + [{"proto": "icmp", "port": 8}]))
    assert bad.get("failed") and "allow[1].port" in bad["msg"]
    assert snapshot(hub, backend) == applied

    if backend == "iptables":
        # without the established accept the replies of the allowed flow are dropped
        assert hub.module("wg_filter", dict(hub_args, established=False))["changed"]
        assert blocked(proxy, TUNNEL["share"], 80)

    gone = hub.module("wg_filter", {"name": "isolate", "state": "absent", "backend": backend})
    assert gone["changed"] and snapshot(hub, backend) == clean
    assert tcp_get(share, TUNNEL["proxy"], 80)[0] == 0

    # share: only ssh and ICMP arrive on the tunnel
    share_args = dict(SHARE, backend=backend)
    assert share.module("wg_filter", share_args)["changed"]
    assert ping(proxy, TUNNEL["share"])
    assert blocked(proxy, TUNNEL["share"], 80)
    assert tcp_get(share, TUNNEL["proxy"], 80)[0] == 0  # the share's own connection: replies are established
    no_icmp = dict(share_args, allow=SHARE["allow"][:1])
    assert share.module("wg_filter", no_icmp)["changed"]
    assert not ping(proxy, TUNNEL["share"], 0.5)
    assert share.module("wg_filter", no_icmp)["changed"] is False
    assert share.module("wg_filter", {"name": "input", "state": "absent", "backend": backend})["changed"]
    # (iptables-nft keeps the empty built-in filter table it created on first use: not ours to delete)
    assert "wgsp" not in (snapshot(share, "iptables") + snapshot(share, "nftables")).lower()
    assert ping(proxy, TUNNEL["share"]) and tcp_get(proxy, TUNNEL["share"], 80)[0] == 0


def test_persisted_filter_script_restores_the_set(lab):
    require_root_tools("iptables", "ip6tables", "nft")
    host = lab.host("hub")
    path = "/etc/wg-service-proxy/wg0-isolate.rules"
    for backend, wipe in (("iptables", "iptables -D FORWARD -i wg0 -o wg0 -m comment --comment wgsp-f:isolate "
                                       "-j WGSP-ISOLATE-FLT; iptables -F WGSP-ISOLATE-FLT; iptables -X WGSP-ISOLATE-FLT"),
                          ("nftables", "nft delete table inet wgsp-filter-isolate")):
        args = dict(HUB, backend=backend, persist_path=path)
        assert host.module("wg_filter", args)["changed"]
        applied = snapshot(host, backend)
        host.run(wipe)
        assert snapshot(host, backend) != applied
        host.run(["sh", path])
        host.run(["sh", path])
        assert snapshot(host, backend) == applied
        assert host.module("wg_filter", args)["changed"] is False
        assert host.module("wg_filter", {"name": "isolate", "state": "absent", "backend": backend,
                                         "persist_path": path})["changed"]
        assert host.run(["test", "-e", path], check=False).returncode != 0


def _log_counter(host, backend):
    """Packets counted by the access set's log rule (the one with prefix wgsp-access-new)."""
    import re

    if backend == "iptables":
        out = host.run("iptables -t filter -L WGSP-ACCESS-FLT -v -n -x").stdout
        return sum(int(line.split()[0]) for line in out.splitlines() if "wgsp-access-new" in line)
    out = host.run("nft list table inet wgsp-filter-access").stdout
    return sum(int(m) for m in re.findall(r"ct state new counter packets (\d+) bytes \d+ log", out))


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_access_log_counts_new_connections_and_decides_nothing_else(lab, backend):
    """The proxy client's access log (WG_LOG_ACCESS) as a set: forwarded to wg0 from any interface
    (no in_interface), each new connection to an allowed service logged, policy continue: what the
    set does not list still passes (the host's other rules decide), and the run is idempotent."""
    require_root_tools("wireguard-go", "wg", "iptables", "ip6tables", "nft", "curl")
    topo = seed(lab)
    hub, share, proxy = topo.hub, topo.share, topo.proxy
    share.serve("tcp", TUNNEL["share"], 80)
    share.serve("tcp", TUNNEL["share"], 81)
    topo.wait_tunnel()
    clean = snapshot(hub, backend)
    args = {"name": "access", "backend": backend, "hook": "forward", "out_interface": "wg0", "established": False,
            "allow": [{"proto": "tcp", "port": 80, "destinations": [TUNNEL["share"]]}], "policy": "continue",
            "log_accepted": True}
    check = hub.module("wg_filter", args, check_mode=True)
    assert check["changed"] and snapshot(hub, backend) == clean
    first = hub.module("wg_filter", args)
    assert first["changed"] and first["filter"]["in_interface"] is None and first["filter"]["log_accepted"], first
    for _attempt in range(2):
        assert tcp_get(proxy, TUNNEL["share"], 80) == (0, "share %s" % TUNNEL["proxy"])
    assert _log_counter(hub, backend) == 2  # one per connection (its first packet), not per packet
    assert tcp_get(proxy, TUNNEL["share"], 81)[0] == 0  # not listed: passes, not logged
    assert _log_counter(hub, backend) == 2
    applied = snapshot(hub, backend)
    again = hub.module("wg_filter", args)
    assert again["changed"] is False and again["plan"] == [] and snapshot(hub, backend) == applied
    assert hub.module("wg_filter", {"name": "access", "state": "absent", "backend": backend})["changed"]
    # (iptables-nft keeps the empty built-in filter table it created on first use: not ours to delete)
    assert "wgsp" not in snapshot(hub, backend).lower()
