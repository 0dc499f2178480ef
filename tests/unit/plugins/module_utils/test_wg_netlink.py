"""Kernel backend at the socket boundary: KernelWireGuard and KernelBackend (availability, backend
selection, whole wg_interface runs) against fake_genl's kernel model, which decodes the exact bytes the
collection's own genl client (_wireguard/genl) sends; and LinkOps against a fake pyroute2 IPRoute."""

import socket

import pytest

from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import genl
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import netlink
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import backends as wg_backends
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import interface as wgi
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import WgspError
from fake_genl import FakeKernel  # noqa: E402
from fake_links import FakeLinkOps  # noqa: E402

PRIV = "qElu6Ehs2YJ7kfyV3IQOKe+w5uedtHe42F3xSeauGVE="
PUB_SELF = "EtlJrivFec+aC+AaZqWvrvxbjHtkj6Y4ipbkhk+/YX0="  # public key of PRIV
PUB1 = "fyBlClwg+ZmIXXiIRkMNZATjrPtdgsZRF08bU0pzen4="
PUB2 = "a8ItnsOR9I+f5beIPlF/gocDndJu/6Lgi6wp5cHsnBI="
PSK = "KBLdSraeBLjbYUyk/aEu7xxmhQB29d8J1by+46zysmo="

# linux/wireguard.h
REMOVE_ME, REPLACE_IPS, UPDATE_ONLY = 1, 2, 4

PEER1 = {"public_key": PUB1, "endpoint": ("192.0.2.2", 51820), "allowed_ips": ["10.7.0.2/32"], "handshake": 1700000000,
         "rx": 5, "tx": 6}
PEER2 = {"public_key": PUB2, "preshared_key": PSK, "allowed_ips": ["10.7.0.3/32", "fd07::3/128"], "keepalive": 25}


def device_kernel(peers=(), **extra):
    settings = {"private_key": PRIV, "public_key": PUB_SELF, "listen_port": 51820}
    settings.update(extra)
    return FakeKernel(peers=peers, **settings)


def kernel_wg(kernel):
    return netlink.KernelWireGuard("wg0", socket_factory=kernel.socket)


def test_get_returns_the_uapi_style_device():
    device = kernel_wg(device_kernel([PEER1, PEER2])).get()
    assert device["private_key"] == PRIV and device["public_key"] == PUB_SELF and device["listen_port"] == 51820
    p1, p2 = device["peers"]
    assert p1 == {"public_key": PUB1, "preshared_key": None, "endpoint": "192.0.2.2:51820",
                  "allowed_ips": ["10.7.0.2/32"], "persistent_keepalive": 0, "latest_handshake": 1700000000,
                  "rx_bytes": 5, "tx_bytes": 6}
    assert p2["preshared_key"] == PSK and p2["allowed_ips"] == ["10.7.0.3/32", "fd07::3/128"]
    assert p2["persistent_keepalive"] == 25 and p2["endpoint"] is None


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
    kernel = device_kernel([dict(PEER1, allowed_ips=["10.7.0.2/32", "10.8.0.0/24"])] if op["op"] != "add" else [])
    wg = kernel_wg(kernel)
    wg.apply({}, [op])
    assert wg.set_requests == 1 and len(kernel.sets) == 1
    sent = kernel.sets[0]["peers"][0]
    assert sent["flags"] == flags
    if op["op"] == "update" and "allowed_ips" not in op:
        # an endpoint change carries no allowed IPs and the kernel keeps them
        assert sent["allowed_ips"] is None
        assert kernel.peers[PUB1]["allowed_ips"] == ["10.7.0.2/32", "10.8.0.0/24"]
        assert kernel.peers[PUB1]["endpoint"] == ("192.0.2.9", 1)


def test_update_endpoint_v6():
    kernel = device_kernel([PEER1])
    kernel_wg(kernel).apply({}, [{"op": "update", "public_key": PUB1, "endpoint": "[2001:db8::1]:51820"}])
    assert kernel.sets[0]["peers"][0]["endpoint"] == ("2001:db8::1", 51820)
    assert kernel.peers[PUB1]["allowed_ips"] == ["10.7.0.2/32"]


def test_psk_removal_sends_zero_key():
    req = netlink.kernel_peer_request({"op": "update", "public_key": PUB1, "preshared_key": None})
    assert req["preshared_key"] == "A" * 43 + "="
    kernel = device_kernel([PEER2])
    kernel_wg(kernel).apply({}, [{"op": "update", "public_key": PUB2, "preshared_key": None}])
    assert kernel.sets[0]["peers"][0]["preshared_key"] == "A" * 43 + "=" and kernel.peers[PUB2]["preshared_key"] is None


def test_set_requests_count_messages_even_when_one_fails():
    kernel = device_kernel([PEER1])
    wg = kernel_wg(kernel)
    ops = [{"op": "add", "public_key": PUB2, "allowed_ips": ["10.7.0.3/32"]}]
    kernel.set_error = (22, None)
    with pytest.raises(genl.NetlinkError) as err:
        wg.apply({"listen_port": 1}, ops)
    assert wg.set_requests == 1 and err.value.errno == 22
    assert all(sock.closed for sock in kernel.sockets)


class FakeRunner:
    """modprobe: loads the fake kernel's module when ``loadable``; records every command."""

    def __init__(self, kernel, loadable=True):
        self.kernel = kernel
        self.loadable = loadable
        self.calls = []

    def run(self, argv, data=None, check=True, env=None):
        self.calls.append(list(argv))
        assert argv[0] == "modprobe" and argv[-1] == "wireguard"
        if "--dry-run" not in argv and self.loadable:
            self.kernel.family = True
        return (0 if self.loadable else 1), "", ""


@pytest.mark.parametrize("loaded,loadable,check_mode,available,calls", [
    (True, True, False, True, []),
    (False, True, False, True, [["modprobe", "wireguard"]]),
    (False, False, False, False, [["modprobe", "wireguard"]]),
    (False, True, True, True, [["modprobe", "--dry-run", "--quiet", "wireguard"]]),
    (False, False, True, False, [["modprobe", "--dry-run", "--quiet", "wireguard"]]),
], ids=["loaded", "modprobe loads it", "no module", "check mode, loadable", "check mode, no module"])
def test_kernel_backend_available_exactly_when_the_family_resolves(loaded, loadable, check_mode, available, calls):
    kernel = FakeKernel(family=loaded)
    runner = FakeRunner(kernel, loadable)
    backend = wg_backends.KernelBackend("wg0", wg=kernel_wg(kernel), runner=runner, check_mode=check_mode)
    assert backend.available() is available and backend.available() is available  # asked once
    assert runner.calls == calls
    assert kernel.family is (loaded or (loadable and not check_mode))
    if not available:
        with pytest.raises(WgspError) as err:
            backend.check_available()
        assert "no WireGuard module loaded" in err.value.msg and "modprobe" in err.value.msg


def auto_run(tmp_path, kernel, runner, wireguard_go, monkeypatch, check_mode=False):
    monkeypatch.setattr(wg_backends, "find_binary", lambda name: "/usr/bin/wireguard-go" if wireguard_go else None)
    link_ops = FakeLinkOps(None)
    kernel_backend = wg_backends.KernelBackend("wg0", wg=kernel_wg(kernel), runner=runner, check_mode=check_mode)
    run = wgi.WgInterface({"name": "wg0", "private_key": PRIV, "persist": False}, check_mode=True, link_ops=link_ops,
                          backends={"kernel": kernel_backend}, runner=runner, conf_dir=str(tmp_path))
    return run.run(), link_ops


def test_auto_picks_kernel_when_the_family_resolves(tmp_path, monkeypatch):
    kernel = FakeKernel()
    result, _links = auto_run(tmp_path, kernel, FakeRunner(kernel), wireguard_go=True, monkeypatch=monkeypatch)
    assert result["backend"] == "kernel"


def test_auto_picks_kernel_after_modprobe(tmp_path, monkeypatch):
    kernel = FakeKernel(family=False)
    runner = FakeRunner(kernel)
    result, _links = auto_run(tmp_path, kernel, runner, wireguard_go=True, monkeypatch=monkeypatch)
    assert result["backend"] == "kernel" and runner.calls == [["modprobe", "wireguard"]]


def test_auto_falls_back_to_userspace(tmp_path, monkeypatch):
    kernel = FakeKernel(family=False)
    result, _links = auto_run(tmp_path, kernel, FakeRunner(kernel, loadable=False), wireguard_go=True,
                              monkeypatch=monkeypatch)
    assert result["backend"] == "userspace"


def test_auto_without_either_fails_naming_both(tmp_path, monkeypatch):
    kernel = FakeKernel(family=False)
    with pytest.raises(WgspError) as err:
        auto_run(tmp_path, kernel, FakeRunner(kernel, loadable=False), wireguard_go=False, monkeypatch=monkeypatch)
    msg = err.value.msg
    assert "backend auto" in msg and "no WireGuard module loaded" in msg and "wireguard-go is not installed" in msg


def test_explicit_kernel_backend_without_module_touches_nothing(tmp_path):
    kernel = FakeKernel(family=False)
    link = FakeLinkOps(None)
    backend = wg_backends.KernelBackend("wg0", wg=kernel_wg(kernel), runner=FakeRunner(kernel, loadable=False))
    run = wgi.WgInterface({"name": "wg0", "backend": "kernel", "private_key": PRIV}, link_ops=link,
                          backends={"kernel": backend}, conf_dir=str(tmp_path))
    with pytest.raises(WgspError) as err:
        run.run()
    assert "backend kernel cannot be used" in err.value.msg and "no WireGuard module loaded" in err.value.msg
    assert link.calls == [] and list(tmp_path.iterdir()) == []


def kernel_run(tmp_path, kernel, peers, link=None, check_mode=False, **extra):
    link_ops = FakeLinkOps(link or {"index": 5, "kind": "wireguard", "mtu": 1420, "up": True,
                                    "addresses": ["10.7.0.1/24"]})
    params = {"name": "wg0", "private_key": PRIV, "listen_port": 51820, "addresses": ["10.7.0.1/24"],
              "peers": peers, "persist": False}
    params.update(extra)
    backend = wg_backends.KernelBackend("wg0", wg=kernel_wg(kernel), runner=FakeRunner(kernel), check_mode=check_mode)
    result = wgi.WgInterface(params, check_mode=check_mode, link_ops=link_ops, backends={"kernel": backend},
                             conf_dir=str(tmp_path)).run()
    return result, link_ops


WANT1 = {"public_key": PUB1, "endpoint": "192.0.2.2:51820", "allowed_ips": ["10.7.0.2/32"]}
WANT2 = {"public_key": PUB2, "preshared_key": PSK, "allowed_ips": ["10.7.0.3/32", "fd07::3/128"],
         "persistent_keepalive": 25}


def test_kernel_unchanged_run_sends_nothing(tmp_path):
    kernel = device_kernel([PEER1, PEER2])
    result, link_ops = kernel_run(tmp_path, kernel, [WANT1, WANT2])
    assert result["changed"] is False and result["set_requests"] == 0
    assert kernel.sets == [] and link_ops.calls == []
    assert result["backend"] == "kernel" and result["public_key"] == PUB_SELF


def test_kernel_add_peer_touches_only_that_peer(tmp_path):
    kernel = device_kernel([PEER1])
    result, _links = kernel_run(tmp_path, kernel, [WANT1, WANT2])
    assert result["changed"] is True and result["set_requests"] == 1 and len(kernel.sets) == 1
    sent = kernel.sets[0]
    assert [p["public_key"] for p in sent["peers"]] == [PUB2] and sent["peers"][0]["flags"] == REPLACE_IPS
    assert sent["listen_port"] is None and sent["private_key"] is None  # unchanged device never re-sent
    assert kernel.peers[PUB1]["allowed_ips"] == ["10.7.0.2/32"]
    assert dict((p["public_key"], p["allowed_ips"]) for p in result["peers"]) == {
        PUB1: ["10.7.0.2/32"], PUB2: ["10.7.0.3/32", "fd07::3/128"]}


def test_kernel_change_endpoint_is_update_only(tmp_path):
    kernel = device_kernel([PEER1, PEER2])
    result, _links = kernel_run(tmp_path, kernel, [dict(WANT1, endpoint="192.0.2.7:51820"), WANT2])
    assert len(kernel.sets) == 1
    sent = kernel.sets[0]["peers"][0]
    assert sent["flags"] == UPDATE_ONLY and sent["endpoint"] == ("192.0.2.7", 51820) and sent["allowed_ips"] is None
    assert kernel.peers[PUB1]["allowed_ips"] == ["10.7.0.2/32"]


def test_kernel_remove_peer(tmp_path):
    kernel = device_kernel([PEER1, PEER2])
    result, _links = kernel_run(tmp_path, kernel, [WANT1])
    assert len(kernel.sets) == 1
    sent = kernel.sets[0]["peers"][0]
    assert sent["flags"] == REMOVE_ME and sent["public_key"] == PUB2 and list(kernel.peers) == [PUB1]


def test_kernel_create_sends_device_then_peers(tmp_path):
    kernel = FakeKernel()
    link_ops = FakeLinkOps(None)
    backend = wg_backends.KernelBackend("wg0", wg=kernel_wg(kernel), runner=FakeRunner(kernel))
    result = wgi.WgInterface({"name": "wg0", "private_key": PRIV, "listen_port": 51820, "mtu": 1380,
                              "addresses": ["10.7.0.1/24"], "peers": [WANT1], "persist": False},
                             link_ops=link_ops, backends={"kernel": backend}, conf_dir=str(tmp_path)).run()
    assert result["changed"] is True and result["set_requests"] == 2 and result["backend"] == "kernel"
    assert link_ops.calls == [("add_wireguard",), ("add_address", "10.7.0.1/24"), ("set_mtu", 1380), ("set_up",)]
    assert kernel.sets[0]["listen_port"] == 51820 and kernel.sets[0]["private_key"] == PRIV
    assert kernel.sets[0]["peers"] == []
    assert kernel.sets[1]["peers"][0]["flags"] == REPLACE_IPS and kernel.sets[1]["listen_port"] is None


def test_kernel_many_allowed_ips_counted_per_message(tmp_path):
    many = ["10.%d.%d.0/24" % (i // 256, i % 256) for i in range(1500)]
    kernel = device_kernel([PEER1], ips_per_message=200)
    result, _links = kernel_run(tmp_path, kernel, [WANT1, {"public_key": PUB2, "allowed_ips": many}])
    assert result["set_requests"] == len(kernel.sets) == 2  # 1500 * 28 bytes: two messages
    assert sorted(kernel.peers[PUB2]["allowed_ips"]) == sorted(many)
    again, _links = kernel_run(tmp_path, kernel, [WANT1, {"public_key": PUB2, "allowed_ips": many}])
    assert again["changed"] is False and again["set_requests"] == 0 and kernel.dumps >= 3


def test_kernel_check_mode_calls_nothing_mutating(tmp_path):
    kernel = device_kernel([PEER1])
    result, link_ops = kernel_run(tmp_path, kernel, [dict(WANT1, endpoint="192.0.2.9:1")], check_mode=True, mtu=1300)
    assert result["changed"] is True
    assert kernel.sets == [] and link_ops.calls == []


def test_read_interface_kernel(tmp_path):
    kernel = device_kernel([PEER1])
    link = FakeLinkOps({"index": 5, "kind": "wireguard", "mtu": 1420, "up": True, "addresses": ["10.7.0.1/24"]})
    backend = wg_backends.KernelBackend("wg0", wg=kernel_wg(kernel), runner=FakeRunner(kernel), check_mode=True)
    state = wgi.read_interface("wg0", link_ops=link, backends={"kernel": backend})
    assert state["backend"] == "kernel" and state["public_key"] == PUB_SELF
    assert state["peers"][0]["latest_handshake"] == 1700000000 and "private_key" not in str(state)


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
