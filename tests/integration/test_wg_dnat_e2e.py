"""End to end through a real wireguard-go tunnel, for both backends.

public user --(proxy set: eth1 DNAT -> wg0, masquerade, sources)--> proxy --wg--> hub --wg--> share
--(share set: wg0 DNAT -> svc)--> svc (a host standing in for a container behind the share client).
"""

import pytest

from conftest import require_root_tools
from topology import OUTSIDER, PROXY_PUBLIC, PUBLIC_USER, SVC, TUNNEL, seed, tcp_get, udp_ask

SHARE_SET = {"name": "share", "in_interface": "wg0",
             "rules": [{"port": 80, "to_address": SVC, "to_port": 8080},
                       {"proto": "udp", "port": 53, "to_address": SVC, "to_port": 5353},
                       {"port": "7000-7002", "to_address": SVC},
                       {"proto": "udp", "port": "9100-9102", "to_address": SVC, "to_port": "5350-5352"}]}
PUBLIC_SET = {"name": "public", "in_interface": "eth1", "out_interface": "wg0", "masquerade": True,
              "sources": [PUBLIC_USER + "/32"],
              "compact_rules": ["80:%s:80" % TUNNEL["share"], "udp:53:%s:53" % TUNNEL["share"],
                                "7000-7002:%s:7000-7002" % TUNNEL["share"],
                                "udp:9200-9202:%s:9100-9102" % TUNNEL["share"]]}


def ruleset(host):
    return host.run("iptables-save | grep -v '^#'; ip6tables-save | grep -v '^#'; nft list ruleset").stdout


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_public_user_reaches_share_services_through_proxy(lab, backend):
    require_root_tools("wireguard-go", "wg", "iptables", "nft", "curl", "conntrack")
    topo = seed(lab, with_service=True)
    topo.svc.serve("tcp", SVC, 8080)
    topo.svc.serve("udp", SVC, 5353)
    topo.svc.serve("tcp", SVC, 7001)
    topo.svc.serve("udp", SVC, 5351)
    for host, args in ((topo.share, SHARE_SET), (topo.proxy, PUBLIC_SET)):
        result = host.module("wg_dnat", dict(args, backend=backend))
        assert result["_rc"] == 0 and result["changed"] and result["backend"] == backend, result
    topo.wait_tunnel()

    # share-side DNAT alone: the proxy reaches svc through share's wg0:80 (source kept).
    assert tcp_get(topo.proxy, TUNNEL["share"], 80) == (0, "svc %s" % TUNNEL["proxy"])
    # the whole path: public -> proxy DNAT -> tunnel -> share DNAT -> svc; TCP, UDP and a port range.
    assert tcp_get(topo.public, PROXY_PUBLIC, 80) == (0, "svc %s" % TUNNEL["proxy"])
    assert udp_ask(topo.public, PROXY_PUBLIC, 53) == (0, "svc %s ping" % TUNNEL["proxy"])
    assert tcp_get(topo.public, PROXY_PUBLIC, 7001) == (0, "svc %s" % TUNNEL["proxy"])
    # remapped UDP ranges at both ends, port by port: 9201 -> share 9101 -> svc 5351, and only there
    # (9200 and 9202 go to 5350 and 5352, where nothing listens)
    assert udp_ask(topo.public, PROXY_PUBLIC, 9201) == (0, "svc %s ping" % TUNNEL["proxy"])
    assert udp_ask(topo.public, PROXY_PUBLIC, 9200)[0] != 0 and udp_ask(topo.public, PROXY_PUBLIC, 9202)[0] != 0
    # a source outside `sources` is refused (forward path), the allowed one still works.
    rc, _body = tcp_get(topo.public, PROXY_PUBLIC, 80, source=OUTSIDER)
    assert rc != 0
    rc, answer = udp_ask(topo.public, PROXY_PUBLIC, 53, source=OUTSIDER)
    assert rc != 0, answer
    assert tcp_get(topo.public, PROXY_PUBLIC, 80, source=PUBLIC_USER)[0] == 0

    # unchanged re-run: changed=false, nothing applied, ruleset byte-identical (counters aside).
    before = topo.proxy.run("iptables-save | grep -v '^#' | sed 's/\\[[0-9:]*\\]//'; nft list ruleset | sed 's/packets [0-9]* bytes [0-9]*//'").stdout
    again = topo.proxy.module("wg_dnat", dict(PUBLIC_SET, backend=backend))
    assert again["changed"] is False and again["applied"] is False and again["plan"] == []
    after = topo.proxy.run("iptables-save | grep -v '^#' | sed 's/\\[[0-9:]*\\]//'; nft list ruleset | sed 's/packets [0-9]* bytes [0-9]*//'").stdout
    assert before == after

    # retarget the UDP port: stale conntrack flows of the old mapping are deleted.
    moved = dict(PUBLIC_SET, compact_rules=["80:%s:80" % TUNNEL["share"], "udp:53:%s:53" % TUNNEL["hub"]])
    result = topo.proxy.module("wg_dnat", dict(moved, backend=backend))
    assert result["changed"] and [4, "udp", "eth1", [53, 53], TUNNEL["share"], [53, 53]] in result["stale"]
    assert any("--orig-port-dst" in argv and "53" in argv for argv in result["conntrack"])
    assert topo.proxy.run(["conntrack", "-L", "-p", "udp", "--orig-port-dst", "53", "--dst-nat", TUNNEL["share"]],
                          check=False).stdout.strip() == ""
    # the removed range is gone.
    assert tcp_get(topo.public, PROXY_PUBLIC, 7001, timeout=2)[0] != 0

    # absent: no chain, jump or table of either set left behind.
    for host, name in ((topo.share, "share"), (topo.proxy, "public")):
        assert host.module("wg_dnat", {"name": name, "state": "absent", "backend": backend})["changed"]
        text = ruleset(host)
        assert "wgsp" not in text.lower(), text
