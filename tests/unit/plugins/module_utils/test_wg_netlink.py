"""Kernel backend at the pyroute2 boundary: genl requests and flags, reading dumps, version refusal,
and IPRoute link/address calls. pyroute2's own WireGuard message classes encode and decode the
requests, so the flags asserted are the bytes the kernel would get."""

import socket

import pytest

from ansible_collections.wgsp.service_proxy.plugins.module_utils import _wg_netlink as netlink
from ansible_collections.wgsp.service_proxy.plugins.module_utils import _wg_interface as wgi
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common import WgspError
from fake_links import FakeLinkOps  # noqa: E402

wireguard = pytest.importorskip("pyroute2.netlink.generic.wireguard")

PRIV = "qElu6Ehs2YJ7kfyV3IQOKe+w5uedtHe42F3xSeauGVE="
PUB_SELF = "EtlJrivFec+aC+AaZqWvrvxbjHtkj6Y4ipbkhk+/YX0="  # public key of PRIV
PUB1 = "fyBlClwg+ZmIXXiIRkMNZATjrPtdgsZRF08bU0pzen4="
PUB2 = "a8ItnsOR9I+f5beIPlF/gocDndJu/6Lgi6wp5cHsnBI="
PSK = "KBLdSraeBLjbYUyk/aEu7xxmhQB29d8J1by+46zysmo="

REMOVE_ME = wireguard.WGPEER_F_REMOVE_ME
REPLACE_IPS = wireguard.WGPEER_F_REPLACE_ALLOWEDIPS
UPDATE_ONLY = wireguard.WGPEER_F_UPDATE_ONLY


def encode_set(interface, listen_port=None, fwmark=None, private_key=None, peer=None):
    """What pyroute2's WireGuard.set would put on the wire, decoded back."""
    sock = object.__new__(wireguard.AsyncWireGuard)
    msg = wireguard.wgmsg()
    msg["cmd"] = wireguard.WG_CMD_SET_DEVICE
    msg["version"] = 1
    msg["attrs"].append(["WGDEVICE_A_IFNAME", interface])
    if private_key is not None:
        msg["attrs"].append(["WGDEVICE_A_PRIVATE_KEY", private_key])
    if listen_port is not None:
        msg["attrs"].append(["WGDEVICE_A_LISTEN_PORT", listen_port])
    if fwmark is not None:
        msg["attrs"].append(["WGDEVICE_A_FWMARK", fwmark])
    if peer is not None:
        sock._wg_set_peer(msg, peer)
    msg["header"]["type"] = 0x20
    msg.encode()
    out = wireguard.wgmsg(msg.data)
    out.decode()
    return out


def kernel_dump(private=PRIV, listen_port=51820, peers=()):
    """A decoded WG_CMD_GET_DEVICE reply as the kernel would send it."""
    msg = wireguard.wgmsg()
    msg["cmd"] = wireguard.WG_CMD_GET_DEVICE
    msg["version"] = 1
    msg["attrs"].append(["WGDEVICE_A_IFNAME", "wg0"])
    msg["attrs"].append(["WGDEVICE_A_PRIVATE_KEY", private])
    msg["attrs"].append(["WGDEVICE_A_PUBLIC_KEY", PUB_SELF])
    msg["attrs"].append(["WGDEVICE_A_LISTEN_PORT", listen_port])
    msg["attrs"].append(["WGDEVICE_A_FWMARK", 0])
    nested = []
    for p in peers:
        attrs = [["WGPEER_A_PUBLIC_KEY", p["public_key"]],
                 ["WGPEER_A_PRESHARED_KEY", p.get("preshared_key") or "A" * 43 + "="]]
        if p.get("endpoint"):
            addr, port = p["endpoint"]
            attrs.append(["WGPEER_A_ENDPOINT", {"addr": addr, "port": port}])
        attrs.append(["WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL", p.get("keepalive", 0)])
        attrs.append(["WGPEER_A_LAST_HANDSHAKE_TIME", {"tv_sec": p.get("handshake", 0), "tv_nsec": 0}])
        attrs.append(["WGPEER_A_RX_BYTES", 5])
        attrs.append(["WGPEER_A_TX_BYTES", 6])
        ips = []
        for cidr in p.get("allowed_ips", []):
            addr, mask = cidr.split("/")
            fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
            ips.append({"attrs": [["WGALLOWEDIP_A_FAMILY", fam],
                                  ["WGALLOWEDIP_A_IPADDR", socket.inet_pton(fam, addr)],
                                  ["WGALLOWEDIP_A_CIDR_MASK", int(mask)]]})
        attrs.append(["WGPEER_A_ALLOWEDIPS", ips])
        nested.append({"attrs": attrs})
    if nested:
        msg["attrs"].append(["WGDEVICE_A_PEERS", nested])
    msg["header"]["type"] = 0x20
    msg.encode()
    out = wireguard.wgmsg(msg.data)
    out.decode()
    return out


class FakeWireGuard:
    """Stands in for pyroute2.WireGuard: answers info() with a dump, records set() requests."""

    def __init__(self, dump):
        self.dump = dump
        self.sets = []

    def __call__(self):
        return self

    def info(self, name):
        return [self.dump]

    def set(self, interface, **kwargs):
        self.sets.append(encode_set(interface, **kwargs))

    def close(self):
        pass


def peer_flags(msg):
    peer = msg.get_attr("WGDEVICE_A_PEERS")[0]
    return dict(peer["attrs"]).get("WGPEER_A_FLAGS"), dict(peer["attrs"])


PEER1 = {"public_key": PUB1, "endpoint": ("192.0.2.2", 51820), "allowed_ips": ["10.7.0.2/32"], "handshake": 1700000000}
PEER2 = {"public_key": PUB2, "preshared_key": PSK, "allowed_ips": ["10.7.0.3/32", "fd07::3/128"], "keepalive": 25}


def test_parse_kernel_dump():
    device = netlink.parse_kernel_info([kernel_dump(peers=[PEER1, PEER2])])
    assert device["private_key"] == PRIV and device["public_key"] == PUB_SELF and device["listen_port"] == 51820
    p1, p2 = device["peers"]
    assert p1 == {"public_key": PUB1, "preshared_key": None, "endpoint": "192.0.2.2:51820",
                  "allowed_ips": ["10.7.0.2/32"], "persistent_keepalive": 0, "latest_handshake": 1700000000,
                  "rx_bytes": 5, "tx_bytes": 6}
    assert p2["preshared_key"] == PSK and p2["allowed_ips"] == ["10.7.0.3/32", "fd07::3/128"]
    assert p2["persistent_keepalive"] == 25 and p2["endpoint"] is None


def test_parse_kernel_split_dump_merges_peer():
    # a dump split across messages repeats the peer's public key with more allowed IPs
    first = kernel_dump(peers=[dict(PEER2, allowed_ips=["10.7.0.3/32"])])
    second = kernel_dump(peers=[dict(PEER2, allowed_ips=["fd07::3/128"])])
    device = netlink.parse_kernel_info([first, second])
    assert len(device["peers"]) == 1
    assert device["peers"][0]["allowed_ips"] == ["10.7.0.3/32", "fd07::3/128"]


# planned operation -> flags the kernel receives
FLAG_CASES = [
    ("add", {"op": "add", "public_key": PUB1, "allowed_ips": ["10.7.0.2/32"]}, REPLACE_IPS),
    ("update endpoint", {"op": "update", "public_key": PUB1, "endpoint": "192.0.2.9:1"}, UPDATE_ONLY),
    ("update allowed ips", {"op": "update", "public_key": PUB1, "allowed_ips": ["10.7.0.9/32"]},
     UPDATE_ONLY | REPLACE_IPS),
    ("remove", {"op": "remove", "public_key": PUB1}, REMOVE_ME),
]


@pytest.mark.parametrize("title,op,flags", FLAG_CASES, ids=[c[0] for c in FLAG_CASES])
def test_peer_flags_on_the_wire(title, op, flags):
    msg = encode_set("wg0", peer=netlink.kernel_peer_request(op))
    got, attrs = peer_flags(msg)
    assert got == flags
    if op["op"] == "update" and "allowed_ips" not in op:
        # an endpoint change must not carry allowed IPs (with REPLACE they would be wiped)
        assert "WGPEER_A_ALLOWEDIPS" not in attrs


def test_update_endpoint_v6_request():
    req = netlink.kernel_peer_request({"op": "update", "public_key": PUB1, "endpoint": "[2001:db8::1]:51820"})
    assert req == {"public_key": PUB1, "update_only": True, "endpoint_addr": "2001:db8::1", "endpoint_port": 51820}
    msg = encode_set("wg0", peer=req)
    assert dict(msg.get_attr("WGDEVICE_A_PEERS")[0]["attrs"])["WGPEER_A_ENDPOINT"]["addr"] == "2001:db8::1"


def test_psk_removal_sends_zero_key():
    req = netlink.kernel_peer_request({"op": "update", "public_key": PUB1, "preshared_key": None})
    assert req["preshared_key"] == "A" * 43 + "="


@pytest.mark.parametrize("version", ["0.7.2", "0.9.2", "0.6.13"])
def test_old_pyroute2_refused_with_version(version):
    with pytest.raises(netlink.NetlinkError) as err:
        netlink.check_kernel_pyroute2(version)
    assert version in err.value.msg and "0.9.3" in err.value.msg


@pytest.mark.parametrize("version", ["0.9.3", "0.9.7", "1.0.0"])
def test_new_pyroute2_accepted(version):
    netlink.check_kernel_pyroute2(version)


def test_kernel_backend_refuses_old_pyroute2_before_touching_anything():
    link = FakeLinkOps(None)
    backend = wgi.KernelBackend("wg0", wg=netlink.KernelWireGuard("wg0", version="0.7.2"))
    runner = wgi.WgInterface({"name": "wg0", "backend": "kernel", "private_key": PRIV}, link_ops=link,
                             backends={"kernel": backend}, conf_dir="/nonexistent-dir-for-test")
    with pytest.raises(WgspError) as err:
        runner.run()
    assert "0.7.2" in err.value.msg
    assert link.calls == []


def kernel_run(tmp_path, dump, peers, link=None, check_mode=False, **extra):
    fake = FakeWireGuard(dump)
    link_ops = FakeLinkOps(link or {"index": 5, "kind": "wireguard", "mtu": 1420, "up": True,
                                    "addresses": ["10.7.0.1/24"]})
    params = {"name": "wg0", "private_key": PRIV, "listen_port": 51820, "addresses": ["10.7.0.1/24"],
              "peers": peers, "persist": False}
    params.update(extra)
    backend = wgi.KernelBackend("wg0", wg=netlink.KernelWireGuard("wg0", wireguard_factory=fake))
    result = wgi.WgInterface(params, check_mode=check_mode, link_ops=link_ops, backends={"kernel": backend},
                             conf_dir=str(tmp_path)).run()
    return result, fake, link_ops


WANT1 = {"public_key": PUB1, "endpoint": "192.0.2.2:51820", "allowed_ips": ["10.7.0.2/32"]}
WANT2 = {"public_key": PUB2, "preshared_key": PSK, "allowed_ips": ["10.7.0.3/32", "fd07::3/128"],
         "persistent_keepalive": 25}


def test_kernel_unchanged_run_sends_nothing(tmp_path):
    result, fake, link_ops = kernel_run(tmp_path, kernel_dump(peers=[PEER1, PEER2]), [WANT1, WANT2])
    assert result["changed"] is False and result["set_requests"] == 0
    assert fake.sets == [] and link_ops.calls == []
    assert result["backend"] == "kernel" and result["public_key"] == PUB_SELF


def test_kernel_add_peer_touches_only_that_peer(tmp_path):
    result, fake, _calls = kernel_run(tmp_path, kernel_dump(peers=[PEER1]), [WANT1, WANT2])
    assert result["changed"] is True and len(fake.sets) == 1
    flags, attrs = peer_flags(fake.sets[0])
    assert flags == REPLACE_IPS and attrs["WGPEER_A_PUBLIC_KEY"] == PUB2.encode()
    assert fake.sets[0].get_attr("WGDEVICE_A_LISTEN_PORT") is None  # unchanged port never re-sent
    assert fake.sets[0].get_attr("WGDEVICE_A_PRIVATE_KEY") is None


def test_kernel_change_endpoint_is_update_only(tmp_path):
    want = dict(WANT1, endpoint="192.0.2.7:51820")
    result, fake, _calls = kernel_run(tmp_path, kernel_dump(peers=[PEER1, PEER2]), [want, WANT2])
    assert len(fake.sets) == 1
    flags, attrs = peer_flags(fake.sets[0])
    assert flags == UPDATE_ONLY and attrs["WGPEER_A_ENDPOINT"]["addr"] == "192.0.2.7"
    assert "WGPEER_A_ALLOWEDIPS" not in attrs


def test_kernel_remove_peer(tmp_path):
    result, fake, _calls = kernel_run(tmp_path, kernel_dump(peers=[PEER1, PEER2]), [WANT1])
    assert len(fake.sets) == 1
    flags, attrs = peer_flags(fake.sets[0])
    assert flags == REMOVE_ME and attrs["WGPEER_A_PUBLIC_KEY"] == PUB2.encode()


def test_kernel_create_sends_device_then_peers(tmp_path):
    fake = FakeWireGuard(kernel_dump(private="A" * 43 + "=", listen_port=0))
    link_ops = FakeLinkOps(None)
    backend = wgi.KernelBackend("wg0", wg=netlink.KernelWireGuard("wg0", wireguard_factory=fake))
    result = wgi.WgInterface({"name": "wg0", "private_key": PRIV, "listen_port": 51820, "mtu": 1380,
                              "addresses": ["10.7.0.1/24"], "peers": [WANT1], "persist": False},
                             link_ops=link_ops, backends={"kernel": backend}, conf_dir=str(tmp_path),
                             kernel_check=lambda: True).run()
    assert result["changed"] is True and result["set_requests"] == 2
    assert link_ops.calls == [("add_wireguard",), ("add_address", "10.7.0.1/24"), ("set_mtu", 1380), ("set_up",)]
    device = fake.sets[0]
    assert device.get_attr("WGDEVICE_A_LISTEN_PORT") == 51820
    assert device.get_attr("WGDEVICE_A_PRIVATE_KEY") == PRIV.encode()
    assert peer_flags(fake.sets[1])[0] == REPLACE_IPS


def test_kernel_check_mode_calls_nothing_mutating(tmp_path):
    result, fake, link_ops = kernel_run(tmp_path, kernel_dump(peers=[PEER1]), [dict(WANT1, endpoint="192.0.2.9:1")],
                                        check_mode=True, mtu=1300)
    assert result["changed"] is True
    assert fake.sets == [] and link_ops.calls == []


class FakeIPRoute:
    """Just enough of pyroute2.IPRoute for LinkOps."""

    class Msg(dict):
        def __init__(self, attrs, **fields):
            super().__init__(**fields)
            self.attrs = attrs

        def get_attr(self, name):
            return self.attrs.get(name)

    def __init__(self):
        self.calls = []

    def __call__(self):
        return self

    def link_lookup(self, ifname):
        return [7] if ifname == "wg0" else []

    def get_links(self, index):
        info = self.Msg({"IFLA_INFO_KIND": "tun"})
        return [self.Msg({"IFLA_MTU": 1420, "IFLA_LINKINFO": info}, flags=0x1 | 0x10, index=7)]

    def get_addr(self, index):
        return [
            self.Msg({"IFA_LOCAL": "10.7.0.1", "IFA_ADDRESS": "10.7.0.1"}, family=socket.AF_INET, prefixlen=24, index=7, scope=0),
            self.Msg({"IFA_ADDRESS": "fd07::1"}, family=socket.AF_INET6, prefixlen=64, index=7, scope=0),
            self.Msg({"IFA_ADDRESS": "fe80::1"}, family=socket.AF_INET6, prefixlen=64, index=7, scope=253),
        ]

    def addr(self, command, **kwargs):
        self.calls.append(("addr", command, kwargs))

    def link(self, command, **kwargs):
        self.calls.append(("link", command, kwargs))

    def close(self):
        pass


def test_linkops_read_and_mutate():
    ipr = FakeIPRoute()
    ops = netlink.LinkOps("wg0", iproute_factory=ipr)
    assert ops.read() == {"index": 7, "kind": "tun", "mtu": 1420, "up": True,
                          "addresses": ["10.7.0.1/24", "fd07::1/64"]}
    ops.add_address("10.7.0.5/24")
    ops.set_mtu(1400)
    ops.set_up()
    assert ipr.calls == [("addr", "add", {"index": 7, "address": "10.7.0.5", "prefixlen": 24}),
                         ("link", "set", {"index": 7, "mtu": 1400}),
                         ("link", "set", {"index": 7, "state": "up"})]
    assert netlink.LinkOps("nope", iproute_factory=ipr).read() is None
