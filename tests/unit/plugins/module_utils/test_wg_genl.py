"""_wg_genl at the socket boundary: the exact bytes sent to the kernel and the parsing of the
kernel's replies (built byte by byte in fake_genl.py from the UAPI headers)."""

import base64
import binascii
import errno
import os
import socket
import struct

import pytest

from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import genl, genl_codec
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import WgspError

import fake_genl as k  # noqa: E402
from fake_genl import FakeKernel  # noqa: E402

PRIV = "qElu6Ehs2YJ7kfyV3IQOKe+w5uedtHe42F3xSeauGVE="
PUB_SELF = "EtlJrivFec+aC+AaZqWvrvxbjHtkj6Y4ipbkhk+/YX0="
PUB1 = "fyBlClwg+ZmIXXiIRkMNZATjrPtdgsZRF08bU0pzen4="
PUB2 = "a8ItnsOR9I+f5beIPlF/gocDndJu/6Lgi6wp5cHsnBI="
PSK = "KBLdSraeBLjbYUyk/aEu7xxmhQB29d8J1by+46zysmo="


def client(kernel, seq=100):
    return genl.WireGuardGenl(socket_factory=kernel.socket, seq=seq)


def key_forms(key_b64):
    data = base64.b64decode(key_b64)
    return [key_b64, key_b64.rstrip("="), binascii.hexlify(data).decode(), repr(data)[2:-1],
            base64.urlsafe_b64encode(data).decode()]


def test_family_resolution_bytes_and_socket_handling():
    kernel = FakeKernel()
    with client(kernel, seq=100) as wg:
        assert wg.resolve_family() == k.FAMILY_ID
        assert wg.resolve_family() == k.FAMILY_ID  # cached: asked once
    sock = kernel.sockets[0]
    name = b"wireguard\0"  # 10 bytes: attribute length 14, padded to 16
    expected = struct.pack("=IHHII", 16 + 4 + 16, 0x10, 0x1 | 0x4, 101, 0) + struct.pack("=BBH", 3, 1, 0) + \
        struct.pack("=HH", 14, 2) + name + b"\0\0"
    assert sock.sent == [expected]
    assert sock.bound == (0, 0) and sock.closed and sock.timeout == genl.DEFAULT_TIMEOUT
    assert sock.options[(270, 10)] == 1  # NETLINK_CAP_ACK: error replies never echo a request (keys)
    assert all(size <= 65536 for size in sock.recv_sizes)


def test_family_missing_is_a_clear_error():
    kernel = FakeKernel(family=False)
    with pytest.raises(genl.FamilyNotFound) as err:
        with client(kernel) as wg:
            wg.resolve_family()
    assert isinstance(err.value, WgspError) and isinstance(err.value, genl.NetlinkError)
    assert "no WireGuard module loaded" in err.value.msg and err.value.errno == errno.ENOENT
    assert kernel.sockets[0].closed
    assert genl.probe_family(kernel.socket) == (False, genl.FAMILY_MISSING)
    assert genl.probe_family(FakeKernel().socket) == (True, None)


def test_socket_that_cannot_open_is_unavailable():
    def no_netlink():
        raise OSError(errno.EAFNOSUPPORT, os.strerror(errno.EAFNOSUPPORT))
    ok, reason = genl.probe_family(no_netlink)
    assert not ok and "cannot open a generic netlink socket" in reason


PEER1 = {"public_key": PUB1, "endpoint": ("192.0.2.2", 51820), "allowed_ips": ["10.7.0.2/32"],
         "handshake": 1700000000, "rx": 5, "tx": 6}
PEER2 = {"public_key": PUB2, "preshared_key": PSK, "endpoint": ("2001:db8::7", 443), "keepalive": 25,
         "allowed_ips": ["10.7.0.3/32", "10.9.0.0/24", "fd07::3/128", "fd09::/64", "192.0.2.128/25"], "rx": 7, "tx": 8}


def test_dump_request_bytes():
    kernel = FakeKernel(private_key=PRIV, public_key=PUB_SELF)
    with client(kernel, seq=7) as wg:
        wg.get_device("wg0")
    sent = kernel.sockets[0].sent[1]
    ifname = struct.pack("=HH", 8, 2) + b"wg0\0"
    assert sent == struct.pack("=IHHII", 16 + 4 + 8, k.FAMILY_ID, 0x1 | 0x300, 9, 0) + struct.pack("=BBH", 0, 1, 0) + ifname


def test_dump_split_over_messages_merges_repeated_peer():
    # ips_per_message=2: PEER2's five allowed IPs come in three parts, the kernel repeating its key
    kernel = FakeKernel(private_key=PRIV, public_key=PUB_SELF, listen_port=51820, fwmark=0x51,
                        peers=[PEER1, PEER2], ips_per_message=2)
    with client(kernel) as wg:
        device = wg.get_device("wg0")
    assert kernel.dumps == 1
    assert device == {
        "private_key": PRIV, "public_key": PUB_SELF, "listen_port": 51820, "fwmark": 0x51,
        "peers": [
            {"public_key": PUB1, "preshared_key": None, "endpoint": "192.0.2.2:51820", "allowed_ips": ["10.7.0.2/32"],
             "persistent_keepalive": 0, "latest_handshake": 1700000000, "rx_bytes": 5, "tx_bytes": 6},
            {"public_key": PUB2, "preshared_key": PSK, "endpoint": "[2001:db8::7]:443",
             "allowed_ips": ["10.7.0.3/32", "10.9.0.0/24", "fd07::3/128", "fd09::/64", "192.0.2.128/25"],
             "persistent_keepalive": 25, "latest_handshake": 0, "rx_bytes": 7, "tx_bytes": 8},
        ]}


def test_dump_in_two_datagrams_with_peer_repeated_and_stale_reply_ignored():
    """Hand-built: message 1 has the device and the first allowed IP, message 2 repeats the peer
    (public key only) with the second; NLMSG_DONE comes alone; a reply to an older sequence is skipped."""
    p1 = k.nest(0, k.attr(k.WGPEER_A_PUBLIC_KEY, k.raw(PUB1)), k.attr(k.WGPEER_A_PRESHARED_KEY, b"\0" * 32),
                k.attr(k.WGPEER_A_ENDPOINT, k.sockaddr(("198.51.100.4", 1))),
                k.nest(k.WGPEER_A_ALLOWEDIPS, k.allowed_ip("10.1.0.0/16")))
    p1_more = k.nest(0, k.attr(k.WGPEER_A_PUBLIC_KEY, k.raw(PUB1)),
                     k.nest(k.WGPEER_A_ALLOWEDIPS, k.allowed_ip("fd01::/48")))
    first = k.genl(0, k.u16(k.WGDEVICE_A_LISTEN_PORT, 1000), k.strz(k.WGDEVICE_A_IFNAME, "wg0"), k.nest(k.WGDEVICE_A_PEERS, p1))
    second = k.genl(0, k.nest(k.WGDEVICE_A_PEERS, p1_more))

    class Canned(FakeKernel):
        def _dump(self, req):
            seq = req["seq"]
            return [k.nlmsg(k.FAMILY_ID, k.NLM_F_MULTI, seq - 1, second) + k.nlmsg(k.FAMILY_ID, k.NLM_F_MULTI, seq, first),
                    k.nlmsg(k.FAMILY_ID, k.NLM_F_MULTI, seq, second),
                    k.nlmsg(k.NLMSG_DONE, k.NLM_F_MULTI, seq, struct.pack("=i", 0))]

    kernel = Canned()
    with client(kernel) as wg:
        device = wg.get_device("wg0")
    assert device["listen_port"] == 1000 and device["private_key"] is None
    assert device["peers"] == [{"public_key": PUB1, "preshared_key": None, "endpoint": "198.51.100.4:1",
                                "allowed_ips": ["10.1.0.0/16", "fd01::/48"], "persistent_keepalive": 0,
                                "latest_handshake": 0, "rx_bytes": 0, "tx_bytes": 0}]


def test_dump_interrupted_is_restarted():
    kernel = FakeKernel(peers=[PEER1])
    kernel.interrupt_dumps = 1
    with client(kernel) as wg:
        device = wg.get_device("wg0")
    assert kernel.dumps == 2 and device["peers"][0]["allowed_ips"] == ["10.7.0.2/32"]


def test_dump_of_missing_device_reports_errno():
    with pytest.raises(genl.NetlinkError) as err:
        with client(FakeKernel()) as wg:
            wg.get_device("wg9")
    assert err.value.errno == errno.ENODEV and "WG_CMD_GET_DEVICE on wg9" in err.value.msg
    assert "No such device" in err.value.msg


def test_truncated_reply_is_an_error():
    class Truncated(FakeKernel):
        def _dump(self, req):
            return [k.nlmsg(k.FAMILY_ID, k.NLM_F_MULTI, req["seq"], k.genl(0))[:-2]]

    with pytest.raises(genl.NetlinkError) as err:
        with client(Truncated()) as wg:
            wg.get_device("wg0")
    assert "truncated" in err.value.msg


def test_no_answer_times_out_cleanly():
    class Silent(FakeKernel):
        def _dump(self, req):
            return []

    kernel = Silent()
    with pytest.raises(genl.NetlinkError) as err:
        with client(kernel) as wg:
            wg.get_device("wg0")
    assert err.value.errno == errno.ETIMEDOUT and kernel.sockets[0].closed


# spec -> the exact WGPEER_A_FLAGS uint32 (linux/wireguard.h: REMOVE_ME=1, REPLACE_ALLOWEDIPS=2, UPDATE_ONLY=4)
FLAG_CASES = [
    ("add", {"public_key": PUB1, "replace_allowed_ips": True, "allowed_ips": ["10.7.0.2/32"]}, 2),
    ("update", {"public_key": PUB1, "update_only": True, "persistent_keepalive": 5}, 4),
    ("update allowed ips", {"public_key": PUB1, "update_only": True, "replace_allowed_ips": True,
                            "allowed_ips": ["10.7.0.9/32"]}, 6),
    ("remove", {"public_key": PUB1, "remove": True}, 1),
]


@pytest.mark.parametrize("title,spec,flags", FLAG_CASES, ids=[c[0] for c in FLAG_CASES])
def test_peer_flags_exact_bytes(title, spec, flags):
    kernel = FakeKernel(peers=[dict(PEER1, allowed_ips=["10.7.0.2/32", "10.8.0.0/16"])])
    with client(kernel) as wg:
        assert wg.set_device("wg0", peers=[spec]) == 1
    data = kernel.sockets[0].sent[-1]
    assert struct.pack("=HH", 8, 3) + struct.pack("=I", flags) in data  # WGPEER_A_FLAGS, uint32
    sent = kernel.sets[0]["peers"][0]
    assert sent["flags"] == flags and sent["nested"] and kernel.sets[0]["peers_nested"]
    peer = kernel.peers.get(PUB1)
    if title == "remove":
        assert peer is None
    elif title == "update":
        assert peer["keepalive"] == 5 and peer["allowed_ips"] == ["10.7.0.2/32", "10.8.0.0/16"]  # untouched
        assert sent["allowed_ips"] is None
    else:
        assert peer["allowed_ips"] == spec["allowed_ips"]


def test_set_message_bytes_exactly():
    kernel = FakeKernel()
    spec = {"public_key": PUB2, "replace_allowed_ips": True, "preshared_key": PSK, "endpoint": "[2001:db8::1]:51820",
            "persistent_keepalive": 25, "allowed_ips": ["10.7.0.3/32", "fd07::3/128"]}
    with client(kernel, seq=41) as wg:
        wg.set_device("wg0", device={"private_key": PRIV, "listen_port": 51820, "fwmark": 7}, peers=[spec])
    peer = k.nest(0, k.attr(1, k.raw(PUB2)), k.u32(3, 2), k.attr(2, k.raw(PSK)),
                  k.attr(4, k.sockaddr(("2001:db8::1", 51820))), k.u16(5, 25),
                  k.nest(9, k.allowed_ip("10.7.0.3/32"), k.allowed_ip("fd07::3/128")))
    payload = k.genl(1, k.strz(2, "wg0"), k.attr(3, k.raw(PRIV)), k.u16(6, 51820), k.u32(7, 7), k.nest(8, peer))
    assert kernel.sockets[0].sent[1] == struct.pack("=IHHII", 16 + len(payload), k.FAMILY_ID, 0x5, 43, 0) + payload
    assert kernel.peers[PUB2]["endpoint"] == ("2001:db8::1", 51820)
    assert kernel.private_key == PRIV and kernel.listen_port == 51820 and kernel.fwmark == 7


def test_endpoint_v4_sockaddr_and_replace_peers_flag():
    kernel = FakeKernel(peers=[PEER2])
    with client(kernel) as wg:
        wg.set_device("wg0", device={"replace_peers": True},
                      peers=[{"public_key": PUB1, "endpoint": "203.0.113.5:51820", "allowed_ips": []}])
    data = kernel.sockets[0].sent[-1]
    assert struct.pack("=HH", 8, 5) + struct.pack("=I", 1) in data  # WGDEVICE_A_FLAGS = REPLACE_PEERS
    sockaddr_in = struct.pack("=H", socket.AF_INET) + b"\xca\x6c" + bytes([203, 0, 113, 5]) + b"\0" * 8
    assert struct.pack("=HH", 20, 4) + sockaddr_in in data
    assert list(kernel.peers) == [PUB1] and kernel.peers[PUB1]["endpoint"] == ("203.0.113.5", 51820)


def test_ack_error_carries_errno_and_no_key_material():
    kernel = FakeKernel()
    kernel.set_error = (errno.EINVAL, "NLA_F_NESTED is missing")
    wg = client(kernel)
    with pytest.raises(genl.NetlinkError) as err:
        with wg:
            wg.set_device("wg0", device={"private_key": PRIV},
                          peers=[{"public_key": PUB1, "preshared_key": PSK, "allowed_ips": ["10.7.0.2/32"]}])
    exc = err.value
    assert exc.errno == errno.EINVAL and exc.strerror == "Invalid argument" and exc.details["errno"] == errno.EINVAL
    assert "WG_CMD_SET_DEVICE on wg0 failed: Invalid argument (errno 22)" in exc.msg
    assert "NLA_F_NESTED is missing" in exc.msg
    assert wg.set_messages == 1 and kernel.sockets[0].closed
    text = " ".join([str(exc), repr(exc), repr(exc.args), repr(exc.details), repr(wg)])
    for secret in (PRIV, PSK):
        for form in key_forms(secret):
            assert form not in text


def test_bad_key_error_never_shows_the_key():
    bad = PRIV[:-4] + "!!!="
    with pytest.raises(genl.NetlinkError) as err:
        genl_codec.build_set_messages("wg0", device={"private_key": bad})
    assert "private_key" in err.value.msg and bad not in str(err.value) and PRIV[:20] not in str(err.value)


def ips(count):
    return ["10.%d.%d.0/24" % (i // 256, i % 256) for i in range(count)]


@pytest.mark.parametrize("update", [False, True], ids=["add", "update"])
def test_many_allowed_ips_split_like_wg(update):
    wanted = ips(3000)  # 28 bytes each: about 84 kB, three messages under the 32 KiB bound
    spec = {"public_key": PUB1, "replace_allowed_ips": True, "allowed_ips": wanted, "endpoint": "192.0.2.9:1"}
    if update:
        spec["update_only"] = True
    kernel = FakeKernel(peers=[dict(PEER1, allowed_ips=["10.250.0.0/16"])] if update else [])
    with client(kernel) as wg:
        count = wg.set_device("wg0", peers=[spec])
    assert count == 3 and len(kernel.sets) == 3 and wg.set_messages == 3
    first, *rest = kernel.sets
    assert first["peers"][0]["flags"] == (6 if update else 2) and first["peers"][0]["endpoint"] == ("192.0.2.9", 1)
    for later in rest:
        peer = later["peers"][0]
        assert peer["flags"] == 4 and peer["public_key"] == PUB1  # UPDATE_ONLY, appending
        assert peer["endpoint"] is None and peer["preshared_key"] is None and peer["keepalive"] is None
    assert all(s["size"] <= genl_codec.MAX_SET_MESSAGE for s in kernel.sets)
    assert sum(len(s["peers"][0]["allowed_ips"]) for s in kernel.sets) == 3000
    assert kernel.peers[PUB1]["allowed_ips"] == wanted  # in order, the old one replaced


def test_split_keeps_device_attrs_first_and_packs_peers():
    small = 400
    specs = [{"public_key": PUB1, "replace_allowed_ips": True, "allowed_ips": ips(20)},
             {"public_key": PUB2, "replace_allowed_ips": True, "allowed_ips": ["10.99.0.0/16"]}]
    messages = genl_codec.build_set_messages("wg0", device={"listen_port": 1}, peers=specs, limit=small)
    decoded = [k.decode_set(struct.pack("=IHHII", 16 + len(m), k.FAMILY_ID, 5, 1, 0) + m) for m in messages]
    assert all(d["size"] <= small for d in decoded) and len(decoded) >= 2
    assert decoded[0]["listen_port"] == 1 and all(d["listen_port"] is None for d in decoded[1:])
    got = [(p["public_key"], p["flags"], p["allowed_ips"]) for d in decoded for p in d["peers"]]
    assert [ip for pub, _f, a in got if pub == PUB1 for ip in a] == ips(20)
    assert [f for pub, f, _a in got if pub == PUB1] == [2] + [4] * (len([g for g in got if g[0] == PUB1]) - 1)
    assert got[-1] == (PUB2, 2, ["10.99.0.0/16"])


def test_one_peer_larger_than_a_message_is_refused():
    with pytest.raises(genl.NetlinkError):
        genl_codec.build_set_messages("wg0", peers=[{"public_key": PUB1, "allowed_ips": ["10.0.0.0/8"]}], limit=60)


def test_malformed_input_is_refused_without_sending():
    kernel = FakeKernel()
    with pytest.raises(genl.NetlinkError):
        with client(kernel) as wg:
            wg.set_device("wg0", peers=[{"public_key": PUB1, "endpoint": "no-port"}])
    with pytest.raises(genl.NetlinkError):
        genl_codec.build_set_messages("wg0", peers=[{"public_key": PUB1, "allowed_ips": ["10.0.0.0/33"]}])
    assert kernel.sets == []
