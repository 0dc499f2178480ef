"""IPv6 through wg_dnat with real traffic, for both backends (ip6tables / the inet table).

public (2001:db8:20::2) --eth0/eth1-- proxy (2001:db8:20::1 | 2001:db8:30::1) --eth1/eth0-- svc (2001:db8:30::2)

The proxy publishes [2001:db8:20::1]:80 (TCP) and :53 (UDP) to svc:8080 / svc:5353, masqueraded
(svc has no route back to the public network), and only for the public user's address: a second
address of the public host is refused in the forward path. Documentation prefixes only.
"""

import time

import pytest

from conftest import require_root_tools
from topology import udp_ask

PUBLIC, OUTSIDER, PROXY_PUB = "2001:db8:20::2", "2001:db8:20::3", "2001:db8:20::1"
PROXY_SVC, SVC = "2001:db8:30::1", "2001:db8:30::2"


def get(host, source=None):
    argv = ["curl", "-g", "-sS", "--max-time", "3"] + (["--interface", source] if source else [])
    proc = host.run(argv + ["http://[%s]:80/" % PROXY_PUB], check=False, timeout=10)
    return proc.returncode, proc.stdout.strip()


@pytest.mark.parametrize("backend", ["iptables", "nftables"])
def test_ipv6_published_tcp_and_udp(lab, backend):
    require_root_tools("iptables", "ip6tables", "nft", "curl")
    public, proxy, svc = lab.host("public"), lab.host("proxy"), lab.host("svc")
    lab.link(public, "eth0", [PUBLIC + "/64", OUTSIDER + "/64"], proxy, "eth1", [PROXY_PUB + "/64"])
    lab.link(proxy, "eth2", [PROXY_SVC + "/64"], svc, "eth0", [SVC + "/64"])
    for host in (public, proxy, svc):  # no duplicate address detection delays in a throw-away lab
        host.run("for f in /proc/sys/net/ipv6/conf/*/accept_dad; do echo 0 > $f; done; "
                 "ip -6 addr show | grep -q tentative && sleep 1; true")
    svc.serve("tcp", SVC, 8080)
    svc.serve("udp", SVC, 5353)

    args = {"name": "public6", "backend": backend, "in_interface": "eth1", "out_interface": "eth2",
            "masquerade": True, "sources": [PUBLIC + "/128"],
            "rules": [{"port": 80, "to_address": SVC, "to_port": 8080},
                      {"proto": "udp", "port": 53, "to_address": SVC, "to_port": 5353}]}
    result = proxy.module("wg_dnat", args)
    assert result["_rc"] == 0 and result["changed"] and result["backend"] == backend, result
    assert [rule["family"] for rule in result["rules"]] == ["ipv6", "ipv6"]

    deadline, answer = time.time() + 10, (1, "")
    while time.time() < deadline and answer[0] != 0:
        answer = get(public, source=PUBLIC)
    # svc answered, and saw the proxy's address (masquerade), over IPv6 end to end.
    assert answer == (0, "svc %s" % PROXY_SVC)
    assert udp_ask(public, PROXY_PUB, 53, source=PUBLIC) == (0, "svc %s ping" % PROXY_SVC)
    # a source outside `sources` is refused in the forward path
    assert get(public, source=OUTSIDER)[0] != 0
    assert udp_ask(public, PROXY_PUB, 53, source=OUTSIDER)[0] != 0

    # the IPv6 rules live where IPv6 rules belong, and an unchanged re-run changes nothing
    where = proxy.run("ip6tables-save" if backend == "iptables" else "nft list ruleset").stdout
    assert "wgsp" in where and SVC in where
    again = proxy.module("wg_dnat", args)
    assert again["changed"] is False and again["plan"] == []
    gone = proxy.module("wg_dnat", dict(args, state="absent"))
    assert gone["changed"] is True
    assert "wgsp" not in proxy.run("ip6tables-save; nft list ruleset").stdout
