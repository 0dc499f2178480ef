"""UAPI: parsing `get=1`, rendering `set=1`, and the socket client (a fake daemon on a real unix socket)."""

import os
import socket
import threading

import pytest

from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import keys
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import uapi

PRIV = "qElu6Ehs2YJ7kfyV3IQOKe+w5uedtHe42F3xSeauGVE="
PUB1 = "EtlJrivFec+aC+AaZqWvrvxbjHtkj6Y4ipbkhk+/YX0="
PUB2 = "fyBlClwg+ZmIXXiIRkMNZATjrPtdgsZRF08bU0pzen4="
PSK = "KBLdSraeBLjbYUyk/aEu7xxmhQB29d8J1by+46zysmo="
H = keys.hex_key

GET_REPLY = (
    "private_key=%s\nlisten_port=51820\nfwmark=7\n"
    "public_key=%s\npreshared_key=%s\nprotocol_version=1\nendpoint=192.0.2.2:51820\n"
    "last_handshake_time_sec=1700000000\nlast_handshake_time_nsec=5\ntx_bytes=10\nrx_bytes=20\n"
    "persistent_keepalive_interval=25\nallowed_ip=10.7.0.2/32\nallowed_ip=fd07::2/128\n"
    "public_key=%s\npreshared_key=%s\nprotocol_version=1\nendpoint=[2001:db8::1]:51820\n"
    "last_handshake_time_sec=0\nlast_handshake_time_nsec=0\ntx_bytes=0\nrx_bytes=0\n"
    "persistent_keepalive_interval=0\n"
    "errno=0\n\n"
) % (H(PRIV), H(PUB1), H(PSK), H(PUB2), "0" * 64)


def test_parse_get_full_device():
    device = uapi.parse_get(GET_REPLY)
    assert device["private_key"] == PRIV
    assert device["listen_port"] == 51820 and device["fwmark"] == 7
    first, second = device["peers"]
    assert first == {"public_key": PUB1, "preshared_key": PSK, "endpoint": "192.0.2.2:51820",
                     "allowed_ips": ["10.7.0.2/32", "fd07::2/128"], "persistent_keepalive": 25,
                     "latest_handshake": 1700000000, "rx_bytes": 20, "tx_bytes": 10}
    assert second["preshared_key"] is None  # all-zero key means none
    assert second["endpoint"] == "[2001:db8::1]:51820" and second["allowed_ips"] == []


@pytest.mark.parametrize("reply,expected", [
    ("listen_port=0\nerrno=0\n\n", {"private_key": None, "listen_port": 0, "fwmark": 0, "peers": []}),
    ("errno=0\n\n", {"private_key": None, "listen_port": 0, "fwmark": 0, "peers": []}),
])
def test_parse_get_empty_device(reply, expected):
    assert uapi.parse_get(reply) == expected


@pytest.mark.parametrize("reply,problem", [
    ("errno=19\n\n", "errno=19"),
    ("listen_port=1\n\n", "without errno"),
    ("garbage\nerrno=0\n\n", "malformed"),
])
def test_parse_get_errors(reply, problem):
    with pytest.raises(uapi.UapiError) as err:
        uapi.parse_get(reply)
    assert problem in err.value.msg


# plan -> payload, as data: (device, peer_ops, expected lines)
RENDER_CASES = [
    ("nothing", {}, [], []),
    ("listen port only", {"listen_port": 51820}, [], ["listen_port=51820"]),
    ("private key + fwmark", {"private_key": PRIV, "fwmark": 0}, [],
     ["private_key=" + H(PRIV), "fwmark=0"]),
    ("add peer", {}, [{"op": "add", "public_key": PUB1, "preshared_key": PSK, "endpoint": "192.0.2.2:51820",
                       "persistent_keepalive": 25, "allowed_ips": ["10.7.0.2/32"]}],
     ["public_key=" + H(PUB1), "preshared_key=" + H(PSK), "endpoint=192.0.2.2:51820",
      "persistent_keepalive_interval=25", "replace_allowed_ips=true", "allowed_ip=10.7.0.2/32"]),
    ("update endpoint only", {}, [{"op": "update", "public_key": PUB1, "endpoint": "[2001:db8::1]:1"}],
     ["public_key=" + H(PUB1), "update_only=true", "endpoint=[2001:db8::1]:1"]),
    ("update drops psk", {}, [{"op": "update", "public_key": PUB1, "preshared_key": None}],
     ["public_key=" + H(PUB1), "update_only=true", "preshared_key=" + "0" * 64]),
    ("update allowed ips to none", {}, [{"op": "update", "public_key": PUB1, "allowed_ips": []}],
     ["public_key=" + H(PUB1), "update_only=true", "replace_allowed_ips=true"]),
    ("remove", {}, [{"op": "remove", "public_key": PUB2}], ["public_key=" + H(PUB2), "remove=true"]),
]


@pytest.mark.parametrize("title,device,ops,lines", RENDER_CASES, ids=[c[0] for c in RENDER_CASES])
def test_render_set(title, device, ops, lines):
    assert uapi.render_set(device, ops) == "".join(line + "\n" for line in lines)


class FakeDaemon:
    """A unix socket answering like wireguard-go; records every request."""

    def __init__(self, path, replies):
        self.path = path
        self.replies = list(replies)
        self.requests = []
        self.server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.server.bind(path)
        self.server.listen(5)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while self.replies:
            conn, _addr = self.server.accept()
            data = b""
            while not data.endswith(b"\n\n"):
                chunk = conn.recv(65536)
                if not chunk:
                    break
                data += chunk
            self.requests.append(data.decode())
            conn.sendall(self.replies.pop(0).encode())
            conn.close()

    def close(self):
        self.server.close()


def test_client_get_and_set(tmp_path):
    path = str(tmp_path / "wg0.sock")
    daemon = FakeDaemon(path, [GET_REPLY, "errno=0\n\n"])
    try:
        client = uapi.UapiClient(path, timeout=2)
        assert client.get()["listen_port"] == 51820
        client.set("listen_port=1\n")
        assert client.set_requests == 1
        assert daemon.requests == ["get=1\n\n", "set=1\nlisten_port=1\n\n"]
    finally:
        daemon.close()


def test_client_empty_set_sends_nothing(tmp_path):
    client = uapi.UapiClient(str(tmp_path / "none.sock"))
    client.set("")
    assert client.set_requests == 0


def test_client_set_error_does_not_echo_payload(tmp_path):
    path = str(tmp_path / "wg0.sock")
    daemon = FakeDaemon(path, ["errno=22\n\n"])
    try:
        body = uapi.render_set({"private_key": PRIV},
                               [{"op": "add", "public_key": PUB1, "preshared_key": PSK, "allowed_ips": []}])
        with pytest.raises(uapi.UapiError) as err:
            uapi.UapiClient(path, timeout=2).set(body)
        text = err.value.msg + repr(err.value.details)
        assert "errno=22" in text
        for secret in (PRIV, H(PRIV), PSK, H(PSK)):
            assert secret not in text
    finally:
        daemon.close()


def test_client_missing_socket(tmp_path):
    with pytest.raises(uapi.UapiError) as err:
        uapi.UapiClient(str(tmp_path / "gone.sock")).get()
    assert "gone.sock" in err.value.msg


def test_wait_for_socket(tmp_path):
    path = str(tmp_path / "s.sock")
    assert uapi.wait_for_socket(path, timeout=0.05) is False
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(path)
    try:
        assert uapi.wait_for_socket(path, timeout=0.05) is True
    finally:
        sock.close()
        os.unlink(path)
