"""A fake kernel behind a fake netlink socket, for the WireGuard genl unit tests.

Everything here is written from the kernel's UAPI (linux/netlink.h, linux/genetlink.h,
linux/wireguard.h) independently of plugins/module_utils/_wg_genl.py, so the tests compare the
collection's bytes with the protocol, not with itself. ``FakeKernel`` keeps a WireGuard device,
answers CTRL_CMD_GETFAMILY, dumps WG_CMD_GET_DEVICE in several messages (repeating a peer whose
allowed IPs continue, like the kernel) and applies WG_CMD_SET_DEVICE with the kernel's flag rules.
"""

import base64
import socket
import struct

NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_DUMP_INTR = 0x1, 0x2, 0x4, 0x10
NLM_F_DUMP = 0x300
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200
NLA_F_NESTED = 0x8000
GENL_ID_CTRL, CTRL_CMD_NEWFAMILY, CTRL_CMD_GETFAMILY = 0x10, 1, 3
CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME = 1, 2
WG_CMD_GET_DEVICE, WG_CMD_SET_DEVICE = 0, 1
# linux/wireguard.h: the flags are bit values
WGDEVICE_F_REPLACE_PEERS = 1
WGPEER_F_REMOVE_ME, WGPEER_F_REPLACE_ALLOWEDIPS, WGPEER_F_UPDATE_ONLY = 1, 2, 4
(WGDEVICE_A_IFINDEX, WGDEVICE_A_IFNAME, WGDEVICE_A_PRIVATE_KEY, WGDEVICE_A_PUBLIC_KEY, WGDEVICE_A_FLAGS,
 WGDEVICE_A_LISTEN_PORT, WGDEVICE_A_FWMARK, WGDEVICE_A_PEERS) = range(1, 9)
(WGPEER_A_PUBLIC_KEY, WGPEER_A_PRESHARED_KEY, WGPEER_A_FLAGS, WGPEER_A_ENDPOINT,
 WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, WGPEER_A_LAST_HANDSHAKE_TIME, WGPEER_A_RX_BYTES, WGPEER_A_TX_BYTES,
 WGPEER_A_ALLOWEDIPS, WGPEER_A_PROTOCOL_VERSION) = range(1, 11)
WGALLOWEDIP_A_FAMILY, WGALLOWEDIP_A_IPADDR, WGALLOWEDIP_A_CIDR_MASK = 1, 2, 3
FAMILY_ID = 0x1B
PORT_ID = 4242
ENOENT, EINVAL, ENODEV = 2, 22, 19


# ---------------------------------------------------------------- encoding (the kernel's side)

def attr(attr_type, payload):
    length = 4 + len(payload)
    return struct.pack("=HH", length, attr_type) + payload + b"\0" * (-length % 4)


def nest(attr_type, *children):
    return attr(attr_type | NLA_F_NESTED, b"".join(children))


def u8(t, v):
    return attr(t, struct.pack("=B", v))


def u16(t, v):
    return attr(t, struct.pack("=H", v))


def u32(t, v):
    return attr(t, struct.pack("=I", v))


def u64(t, v):
    return attr(t, struct.pack("=Q", v))


def strz(t, text):
    return attr(t, text.encode() + b"\0")


def nlmsg(msg_type, flags, seq, payload, port=PORT_ID):
    return struct.pack("=IHHII", 16 + len(payload), msg_type, flags, seq, port) + payload


def genl(cmd, *attrs, version=1):
    return struct.pack("=BBH", cmd, version, 0) + b"".join(attrs)


def sockaddr(endpoint):
    host, port = endpoint
    if ":" in host:
        return struct.pack("=H", socket.AF_INET6) + struct.pack("!H", port) + b"\0" * 4 + \
            socket.inet_pton(socket.AF_INET6, host) + struct.pack("=I", 0)
    return struct.pack("=H", socket.AF_INET) + struct.pack("!H", port) + socket.inet_pton(socket.AF_INET, host) + b"\0" * 8


def allowed_ip(cidr):
    addr, mask = cidr.split("/")
    family = socket.AF_INET6 if ":" in addr else socket.AF_INET
    return nest(0, u16(WGALLOWEDIP_A_FAMILY, family), attr(WGALLOWEDIP_A_IPADDR, socket.inet_pton(family, addr)),
                u8(WGALLOWEDIP_A_CIDR_MASK, int(mask)))


def error_msg(seq, code, request_header, message=None):
    """NLMSG_ERROR, capped (NETLINK_CAP_ACK): errno, the request's header, extack text if any."""
    flags = NLM_F_CAPPED
    payload = struct.pack("=i", -code) + request_header
    if message:
        flags |= NLM_F_ACK_TLVS
        payload += strz(1, message)
    return nlmsg(NLMSG_ERROR, flags, seq, payload)


def raw(key_b64):
    return base64.b64decode(key_b64)


# ---------------------------------------------------------------- decoding (what the kernel receives)

def parse_attrs(data):
    """[(type, nested flag, payload)], checking lengths and 4-byte alignment."""
    out = []
    offset = 0
    while offset < len(data):
        length, attr_type = struct.unpack_from("=HH", data, offset)
        assert length >= 4 and offset + length <= len(data), "bad attribute length"
        out.append((attr_type & 0x3FFF, bool(attr_type & NLA_F_NESTED), data[offset + 4:offset + length]))
        offset += (length + 3) & ~3
    assert offset == len(data), "attributes not 4-byte aligned"
    return out


def attr_dict(data):
    return dict((t, payload) for t, _nested, payload in parse_attrs(data))


def parse_request(data):
    length, msg_type, flags, seq, port = struct.unpack_from("=IHHII", data)
    assert length == len(data), "one message per send, length %d != %d" % (length, len(data))
    cmd, version, _reserved = struct.unpack_from("=BBH", data, 16)
    return {"type": msg_type, "flags": flags, "seq": seq, "port": port, "cmd": cmd, "version": version,
            "attrs": data[20:], "header": data[:16]}


def decode_set(data):
    """A WG_CMD_SET_DEVICE request as {ifname, private_key, listen_port, fwmark, flags, peers}.

    Every peer: {public_key, flags, preshared_key, endpoint, keepalive, allowed_ips, nested} where
    ``flags`` is the exact uint32 sent (None when absent) and ``nested`` tells NLA_F_NESTED was set
    on the peer and allowed-IP nests.
    """
    req = parse_request(data)
    assert req["cmd"] == WG_CMD_SET_DEVICE and req["version"] == 1
    out = {"ifname": None, "private_key": None, "listen_port": None, "fwmark": None, "flags": None, "peers": [],
           "peers_nested": None, "size": len(data)}
    for t, nested, payload in parse_attrs(req["attrs"]):
        if t == WGDEVICE_A_IFNAME:
            out["ifname"] = payload.rstrip(b"\0").decode()
        elif t == WGDEVICE_A_PRIVATE_KEY:
            out["private_key"] = base64.b64encode(payload).decode()
        elif t == WGDEVICE_A_LISTEN_PORT:
            out["listen_port"] = struct.unpack("=H", payload)[0]
        elif t == WGDEVICE_A_FWMARK:
            out["fwmark"] = struct.unpack("=I", payload)[0]
        elif t == WGDEVICE_A_FLAGS:
            out["flags"] = struct.unpack("=I", payload)[0]
        elif t == WGDEVICE_A_PEERS:
            out["peers_nested"] = nested
            for _index, peer_nested, peer_raw in parse_attrs(payload):
                out["peers"].append(decode_peer(peer_raw, peer_nested))
    return out


def decode_peer(data, nested):
    peer = {"public_key": None, "flags": None, "preshared_key": None, "endpoint": None, "keepalive": None,
            "allowed_ips": None, "nested": nested, "attr_types": []}
    for t, is_nested, payload in parse_attrs(data):
        peer["attr_types"].append(t)
        if t == WGPEER_A_PUBLIC_KEY:
            peer["public_key"] = base64.b64encode(payload).decode()
        elif t == WGPEER_A_FLAGS:
            assert len(payload) == 4
            peer["flags"] = struct.unpack("=I", payload)[0]
        elif t == WGPEER_A_PRESHARED_KEY:
            peer["preshared_key"] = base64.b64encode(payload).decode()
        elif t == WGPEER_A_ENDPOINT:
            peer["endpoint"] = decode_sockaddr(payload)
        elif t == WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL:
            peer["keepalive"] = struct.unpack("=H", payload)[0]
        elif t == WGPEER_A_ALLOWEDIPS:
            peer["nested"] = peer["nested"] and is_nested
            peer["allowed_ips"] = []
            for _i, ip_nested, ip_raw in parse_attrs(payload):
                peer["nested"] = peer["nested"] and ip_nested
                ip = attr_dict(ip_raw)
                family = struct.unpack("=H", ip[WGALLOWEDIP_A_FAMILY])[0]
                peer["allowed_ips"].append("%s/%d" % (socket.inet_ntop(family, ip[WGALLOWEDIP_A_IPADDR]),
                                                      struct.unpack("=B", ip[WGALLOWEDIP_A_CIDR_MASK])[0]))
    return peer


def decode_sockaddr(data):
    family = struct.unpack_from("=H", data)[0]
    port = struct.unpack_from("!H", data, 2)[0]
    if family == socket.AF_INET:
        assert len(data) == 16
        return (socket.inet_ntop(socket.AF_INET, data[4:8]), port)
    assert family == socket.AF_INET6 and len(data) == 28
    return (socket.inet_ntop(socket.AF_INET6, data[8:24]), port)


# ---------------------------------------------------------------- the fake socket and kernel

class FakeSocket:
    """Records what is sent; answers from the kernel model; recv() hands out one datagram."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.sent = []
        self.queue = []
        self.options = {}
        self.bound = None
        self.timeout = None
        self.closed = False
        self.recv_sizes = []

    def settimeout(self, timeout):
        self.timeout = timeout

    def setsockopt(self, level, option, value):
        self.options[(level, option)] = value

    def bind(self, address):
        self.bound = address

    def sendto(self, data, address):
        assert address == (0, 0) and self.bound == (0, 0) and not self.closed
        self.sent.append(bytes(data))
        self.queue.extend(self.kernel.handle(bytes(data)))

    def recv(self, size):
        self.recv_sizes.append(size)
        if not self.queue:
            raise socket.timeout("timed out")
        return self.queue.pop(0)

    def close(self):
        self.closed = True


class FakeKernel:
    """A WireGuard device ``ifname`` and the genl answers a kernel gives about it."""

    def __init__(self, ifname="wg0", family=True, private_key=None, public_key=None, listen_port=0, fwmark=0,
                 peers=(), ips_per_message=4, peers_per_message=3):
        self.ifname = ifname
        self.family = family
        self.private_key = private_key
        self.public_key = public_key
        self.listen_port = listen_port
        self.fwmark = fwmark
        self.peers = {}
        for peer in peers:
            self.add_peer(**peer)
        self.ips_per_message = ips_per_message
        self.peers_per_message = peers_per_message
        self.sockets = []
        self.requests = []
        self.sets = []
        self.set_error = None  # (errno, extack text) answered to the next SET
        self.interrupt_dumps = 0  # this many dumps carry NLM_F_DUMP_INTR
        self.dumps = 0

    def add_peer(self, public_key, preshared_key=None, endpoint=None, keepalive=0, handshake=0, rx=0, tx=0,
                 allowed_ips=()):
        self.peers[public_key] = {"preshared_key": preshared_key, "endpoint": endpoint, "keepalive": keepalive,
                                  "handshake": handshake, "rx": rx, "tx": tx, "allowed_ips": list(allowed_ips)}

    def socket(self):
        sock = FakeSocket(self)
        self.sockets.append(sock)
        return sock

    # what the kernel does with one request
    def handle(self, data):
        req = parse_request(data)
        self.requests.append(req)
        assert req["flags"] & NLM_F_REQUEST
        if req["type"] == GENL_ID_CTRL:
            return self._getfamily(req)
        assert req["type"] == FAMILY_ID and self.family, "WireGuard request before the family resolved"
        if req["cmd"] == WG_CMD_GET_DEVICE:
            return self._dump(req)
        return self._set(req, data)

    def _getfamily(self, req):
        assert req["cmd"] == CTRL_CMD_GETFAMILY and req["flags"] & NLM_F_ACK
        name = attr_dict(req["attrs"])[CTRL_ATTR_FAMILY_NAME]
        if not self.family or name != b"wireguard\0":
            return [error_msg(req["seq"], ENOENT, req["header"])]
        family = genl(CTRL_CMD_NEWFAMILY, u16(CTRL_ATTR_FAMILY_ID, FAMILY_ID), strz(CTRL_ATTR_FAMILY_NAME, "wireguard"),
                      version=2)
        reply = nlmsg(GENL_ID_CTRL, 0, req["seq"], family)
        return [reply, error_msg(req["seq"], 0, req["header"])]

    def _device_attrs(self):
        attrs = [u16(WGDEVICE_A_LISTEN_PORT, self.listen_port), u32(WGDEVICE_A_FWMARK, self.fwmark),
                 u32(WGDEVICE_A_IFINDEX, 5), strz(WGDEVICE_A_IFNAME, self.ifname)]
        if self.private_key:
            attrs += [attr(WGDEVICE_A_PRIVATE_KEY, raw(self.private_key)),
                      attr(WGDEVICE_A_PUBLIC_KEY, raw(self.public_key))]
        return attrs

    def _peer_fragments(self):
        """Per peer: the full first part, then public key + allowed IPs for each continuation."""
        for pub, p in self.peers.items():
            ips = p["allowed_ips"]
            chunks = [ips[i:i + self.ips_per_message] for i in range(0, len(ips), self.ips_per_message)] or [[]]
            for index, chunk in enumerate(chunks):
                attrs = [attr(WGPEER_A_PUBLIC_KEY, raw(pub))]
                if index == 0:
                    attrs.append(attr(WGPEER_A_PRESHARED_KEY, raw(p["preshared_key"]) if p["preshared_key"] else b"\0" * 32))
                    attrs.append(u16(WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, p["keepalive"]))
                    attrs.append(attr(WGPEER_A_LAST_HANDSHAKE_TIME, struct.pack("=qq", p["handshake"], 123)))
                    attrs.append(u64(WGPEER_A_RX_BYTES, p["rx"]))
                    attrs.append(u64(WGPEER_A_TX_BYTES, p["tx"]))
                    attrs.append(u32(WGPEER_A_PROTOCOL_VERSION, 1))
                    if p["endpoint"]:
                        attrs.append(attr(WGPEER_A_ENDPOINT, sockaddr(p["endpoint"])))
                if chunk:
                    attrs.append(nest(WGPEER_A_ALLOWEDIPS, *[allowed_ip(c) for c in chunk]))
                yield nest(0, *attrs), index < len(chunks) - 1

    def _dump(self, req):
        assert req["flags"] & NLM_F_DUMP == NLM_F_DUMP
        ifname = attr_dict(req["attrs"]).get(WGDEVICE_A_IFNAME)
        if ifname != self.ifname.encode() + b"\0":
            return [error_msg(req["seq"], ENODEV, req["header"])]
        self.dumps += 1
        flags = NLM_F_MULTI | (NLM_F_DUMP_INTR if self.dumps <= self.interrupt_dumps else 0)
        messages = []
        attrs = self._device_attrs()
        peers = []
        for fragment, continues in self._peer_fragments():
            peers.append(fragment)
            if continues or len(peers) >= self.peers_per_message:
                messages.append(genl(WG_CMD_GET_DEVICE, *(attrs + [nest(WGDEVICE_A_PEERS, *peers)])))
                attrs, peers = [], []
        if peers or attrs:
            messages.append(genl(WG_CMD_GET_DEVICE, *(attrs + ([nest(WGDEVICE_A_PEERS, *peers)] if peers else []))))
        datagrams = [nlmsg(FAMILY_ID, flags, req["seq"], m) for m in messages]
        datagrams[-1] += nlmsg(NLMSG_DONE, NLM_F_MULTI, req["seq"], struct.pack("=i", 0))
        return datagrams

    def _set(self, req, data):
        assert req["cmd"] == WG_CMD_SET_DEVICE and req["flags"] == NLM_F_REQUEST | NLM_F_ACK
        decoded = decode_set(data)
        self.sets.append(decoded)
        if self.set_error:
            code, text = self.set_error
            self.set_error = None
            return [error_msg(req["seq"], code, req["header"], text)]
        if decoded["ifname"] != self.ifname:
            return [error_msg(req["seq"], ENODEV, req["header"])]
        if decoded["peers"] and not (decoded["peers_nested"] and all(p["nested"] for p in decoded["peers"])):
            return [error_msg(req["seq"], EINVAL, req["header"], "NLA_F_NESTED is missing")]
        if decoded["private_key"] is not None:
            self.private_key = decoded["private_key"]
            self.public_key = base64.b64encode(b"P" * 32).decode()
        if decoded["listen_port"] is not None:
            self.listen_port = decoded["listen_port"]
        if decoded["fwmark"] is not None:
            self.fwmark = decoded["fwmark"]
        if (decoded["flags"] or 0) & WGDEVICE_F_REPLACE_PEERS:
            self.peers = {}
        for p in decoded["peers"]:
            flags = p["flags"] or 0
            if flags & ~7:
                return [error_msg(req["seq"], EINVAL, req["header"], "bad peer flags")]
            if flags & WGPEER_F_REMOVE_ME:
                self.peers.pop(p["public_key"], None)
                continue
            if p["public_key"] not in self.peers:
                if flags & WGPEER_F_UPDATE_ONLY:
                    continue
                self.add_peer(p["public_key"])
            peer = self.peers[p["public_key"]]
            if p["preshared_key"] is not None:
                peer["preshared_key"] = None if p["preshared_key"] == "A" * 43 + "=" else p["preshared_key"]
            if p["endpoint"] is not None:
                peer["endpoint"] = p["endpoint"]
            if p["keepalive"] is not None:
                peer["keepalive"] = p["keepalive"]
            if flags & WGPEER_F_REPLACE_ALLOWEDIPS:
                peer["allowed_ips"] = []
            peer["allowed_ips"].extend(p["allowed_ips"] or [])
        return [error_msg(req["seq"], 0, req["header"])]
