"""wg_interface logic: validation (one case per problem), normalising, planning, the wg-quick file,
and whole runs of the userspace backend with the UAPI socket and IPRoute replaced by fakes."""

import json
import os
import socket
import stat

import pytest

from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import backends as wg_backends
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import interface as wgi
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import params as wg_params
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import plan as wg_plan
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import wgquick
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import keys
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import ValidationError
from fake_links import FakeLinkOps  # noqa: E402

PRIV = "qElu6Ehs2YJ7kfyV3IQOKe+w5uedtHe42F3xSeauGVE="
PUB_SELF = "EtlJrivFec+aC+AaZqWvrvxbjHtkj6Y4ipbkhk+/YX0="
PRIV2 = "YEqAkNDbYPbSfPdtjp/ffbx9EBDuCSO6sNYwp2r2ElE="
PUB1 = "fyBlClwg+ZmIXXiIRkMNZATjrPtdgsZRF08bU0pzen4="
PUB2 = "a8ItnsOR9I+f5beIPlF/gocDndJu/6Lgi6wp5cHsnBI="
PUB3 = "+tAglcZ0qB4PstCGUcvj7CfRbtX7Su8Lx7K77GOjhEg="
PSK = "KBLdSraeBLjbYUyk/aEu7xxmhQB29d8J1by+46zysmo="
PSK2 = "xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg="
SECRETS = [PRIV, PSK, PSK2, keys.hex_key(PRIV), keys.hex_key(PSK), keys.hex_key(PSK2)]


def base(**extra):
    params = {"name": "wg0", "private_key": PRIV, "addresses": ["10.7.0.1/24"], "listen_port": 51820,
              "peers": [{"public_key": PUB1, "endpoint": "192.0.2.2:51820", "allowed_ips": ["10.7.0.2/32"]}]}
    params.update(extra)
    return params


def no_resolver(*args):
    raise AssertionError("no resolution expected")


# ---------------------------------------------------------------- validation: one case per problem
BAD_INPUT = [
    ("name too long", {"name": "a" * 16}, "name", "invalid interface name"),
    ("name with slash", {"name": "wg/0"}, "name", "invalid interface name"),
    ("name with newline", {"name": "wg0\nx"}, "name", "newline"),
    ("private key not base64", {"private_key": "not-a-key"}, "private_key", "32 bytes"),
    ("private key 31 bytes", {"private_key": "qElu6Ehs2YJ7kfyV3IQOKe+w5uedtHe42F3xSeauGQ=="}, "private_key", "32 bytes"),
    ("peer public key short", {"peers": [{"public_key": "abcd"}]}, "peers[0].public_key", "32 bytes"),
    ("preshared key bad", {"peers": [{"public_key": PUB1, "preshared_key": "Zm9vYmFy"}]}, "peers[0].preshared_key",
     "32 bytes"),
    ("preshared key newline", {"peers": [{"public_key": PUB1, "preshared_key": PSK + "\nremove=true"}]},
     "peers[0].preshared_key", "newline"),
    ("address not a cidr", {"addresses": ["10.7.0.300/24"]}, "addresses[0]", "not a valid CIDR"),
    ("address prefix too long", {"addresses": ["10.7.0.1/33"]}, "addresses[0]", "not a valid CIDR"),
    ("allowed ip bad", {"peers": [{"public_key": PUB1, "allowed_ips": ["fd07::zz/64"]}]},
     "peers[0].allowed_ips[0]", "not a valid CIDR"),
    ("allowed ip newline", {"peers": [{"public_key": PUB1, "allowed_ips": ["10.7.0.2/32\nallowed_ip=0.0.0.0/0"]}]},
     "peers[0].allowed_ips[0]", "newline"),
    ("listen port 0", {"listen_port": 0}, "listen_port", "between 1 and 65535"),
    ("listen port 65536", {"listen_port": 65536}, "listen_port", "between 1 and 65535"),
    ("endpoint port 70000", {"peers": [{"public_key": PUB1, "endpoint": "192.0.2.2:70000"}]},
     "peers[0].endpoint", "between 1 and 65535"),
    ("endpoint without port", {"peers": [{"public_key": PUB1, "endpoint": "192.0.2.2"}]},
     "peers[0].endpoint", "with a port"),
    ("endpoint v6 without brackets", {"peers": [{"public_key": PUB1, "endpoint": "2001:db8::1:51820"}]},
     "peers[0].endpoint", "with a port"),
    ("endpoint newline", {"peers": [{"public_key": PUB1, "endpoint": "192.0.2.2:1\nremove=true"}]},
     "peers[0].endpoint", "newline"),
    ("same allowed ip on two peers", {"peers": [
        {"public_key": PUB1, "allowed_ips": ["10.7.0.2/32"]},
        {"public_key": PUB2, "allowed_ips": ["10.7.0.2/32"]}]}, "peers[1].allowed_ips[0]", "already an allowed IP of peers[0]"),
    ("same allowed ip after normalising", {"peers": [
        {"public_key": PUB1, "allowed_ips": ["10.7.0.0/24"]},
        {"public_key": PUB2, "allowed_ips": ["10.7.0.9/24"]}]}, "peers[1].allowed_ips[0]", "10.7.0.0/24"),
    ("same peer twice", {"peers": [{"public_key": PUB1}, {"public_key": PUB1}]}, "peers[1].public_key", "twice"),
    ("keepalive too big", {"peers": [{"public_key": PUB1, "persistent_keepalive": 70000}]},
     "peers[0].persistent_keepalive", "between 0 and 65535"),
    ("mtu too small", {"mtu": 10}, "mtu", "between 68 and 65535"),
    ("fwmark negative", {"fwmark": -1}, "fwmark", "between 0"),
    ("post_up newline", {"post_up": ["nft -f /x\nrm -rf /"]}, "post_up[0]", "newline"),
    ("pre_down control char", {"pre_down": ["echo \x1b"]}, "pre_down[0]", "control character"),
    ("table with space", {"table": "off now"}, "table", "spaces"),
    ("relative key path", {"private_key": None, "private_key_path": "wg0.key"}, "private_key_path", "absolute"),
]


@pytest.mark.parametrize("title,override,field,problem", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_names_field_and_problem(title, override, field, problem):
    params = base(**override)
    with pytest.raises(ValidationError) as err:
        wg_params.validate_params(params, resolver=no_resolver)
    assert err.value.field == field
    assert err.value.msg.startswith(field + ": ")
    assert problem in err.value.msg
    for secret in SECRETS:
        assert secret not in err.value.msg


def test_bad_input_touches_nothing(tmp_path):
    link_ops = FakeLinkOps(None)
    uapi_fake = FakeUapi()
    with pytest.raises(ValidationError):
        make(base(listen_port=0), tmp_path, link_ops, uapi_fake).run()
    assert link_ops.calls == [] and link_ops.reads == 0 and uapi_fake.gets == 0 and uapi_fake.sets == []
    assert not (tmp_path / "etc").exists()


def test_unresolvable_endpoint_fails_validation():
    def resolver(*args):
        import socket
        raise socket.gaierror(-2, "Name or service not known")
    with pytest.raises(ValidationError) as err:
        wg_params.validate_params(base(peers=[{"public_key": PUB1, "endpoint": "hub.invalid:51820"}]), resolver=resolver)
    assert err.value.field == "peers[0].endpoint" and "cannot resolve" in err.value.msg


# ---------------------------------------------------------------- normalising
def test_normalising():
    want = wg_params.validate_params(base(
        addresses=["fd07::0001/64", "10.7.0.1/24", "10.7.0.1/24"],
        peers=[{"public_key": PUB1, "endpoint": "[2001:0db8::0001]:51820",
                "allowed_ips": ["fd07::9/64", "10.7.0.9/24", "10.7.0.2/32"]}]), resolver=no_resolver)
    assert want["addresses"] == ["10.7.0.1/24", "fd07::1/64"]
    peer = want["peers"][PUB1]
    assert peer["allowed_ips"] == ["10.7.0.0/24", "10.7.0.2/32", "fd07::/64"]
    assert peer["endpoint"] == "[2001:db8::1]:51820"
    assert want["private_key_path"] == "/etc/wireguard/wg0.key" and want["table"] == "off"


def test_hostname_endpoint_compared_after_resolution():
    calls = []

    def resolver(host, port, family, socktype):
        calls.append(host)
        return [(2, socktype, 17, "", ("192.0.2.44", port))]
    want = wg_params.validate_params(base(peers=[{"public_key": PUB1, "endpoint": "hub.example:51820"}]), resolver=resolver)
    assert want["peers"][PUB1]["endpoint"] == "192.0.2.44:51820"
    assert want["peers"][PUB1]["endpoint_input"] == "hub.example:51820"
    assert calls == ["hub.example"]


def test_normalize_device_endpoints_and_ips():
    device = wg_plan.normalize_device({"private_key": PRIV, "listen_port": 1, "peers": [
        {"public_key": PUB1, "endpoint": "[2001:0db8:0:0::1]:5", "allowed_ips": ["10.7.0.2/32", "10.7.0.0/24"]}]})
    assert device["public_key"] == PUB_SELF
    assert device["peers"][PUB1]["endpoint"] == "[2001:db8::1]:5"
    assert device["peers"][PUB1]["allowed_ips"] == ["10.7.0.0/24", "10.7.0.2/32"]


# ---------------------------------------------------------------- planning, as data
CURRENT = {"private_key": PRIV, "public_key": PUB_SELF, "listen_port": 51820, "fwmark": 0, "peers": {
    PUB1: {"public_key": PUB1, "preshared_key": None, "endpoint": "192.0.2.2:51820", "allowed_ips": ["10.7.0.2/32"],
           "persistent_keepalive": 0},
    PUB2: {"public_key": PUB2, "preshared_key": PSK, "endpoint": None, "allowed_ips": ["10.7.0.3/32"],
           "persistent_keepalive": 25},
}}
P1 = {"public_key": PUB1, "endpoint": "192.0.2.2:51820", "allowed_ips": ["10.7.0.2/32"]}
P2 = {"public_key": PUB2, "preshared_key": PSK, "allowed_ips": ["10.7.0.3/32"], "persistent_keepalive": 25}
PLAN_CASES = [
    ("unchanged", {"peers": [P1, P2]}, {}, []),
    ("peer order does not matter", {"peers": [P2, P1]}, {}, []),
    ("add peer", {"peers": [P1, P2, {"public_key": PUB3, "allowed_ips": ["10.7.0.4/32"]}]}, {},
     [{"op": "add", "public_key": PUB3, "allowed_ips": ["10.7.0.4/32"]}]),
    ("change endpoint", {"peers": [dict(P1, endpoint="192.0.2.9:1"), P2]}, {},
     [{"op": "update", "public_key": PUB1, "endpoint": "192.0.2.9:1"}]),
    ("omitted endpoint keeps the roaming one", {"peers": [dict(P1, endpoint=None), P2]}, {}, []),
    ("change allowed ips", {"peers": [P1, dict(P2, allowed_ips=["10.7.0.3/32", "10.8.0.0/16"])]}, {},
     [{"op": "update", "public_key": PUB2, "allowed_ips": ["10.7.0.3/32", "10.8.0.0/16"]}]),
    ("drop psk and keepalive", {"peers": [P1, {"public_key": PUB2, "allowed_ips": ["10.7.0.3/32"]}]}, {},
     [{"op": "update", "public_key": PUB2, "preshared_key": None, "persistent_keepalive": 0}]),
    ("change psk", {"peers": [P1, dict(P2, preshared_key=PSK2)]}, {},
     [{"op": "update", "public_key": PUB2, "preshared_key": PSK2}]),
    ("remove peer", {"peers": [P1]}, {}, [{"op": "remove", "public_key": PUB2}]),
    ("non-exclusive keeps others", {"peers": [P1], "exclusive_peers": False}, {}, []),
    ("listen port change", {"peers": [P1, P2], "listen_port": 51821}, {"listen_port": 51821}, []),
    ("listen port unmanaged", {"peers": [P1, P2], "listen_port": None}, {}, []),
    ("new private key", {"peers": [P1, P2], "private_key": PRIV2}, {"private_key": PRIV2}, []),
    ("fwmark", {"peers": [P1, P2], "fwmark": 51}, {"fwmark": 51}, []),
]


@pytest.mark.parametrize("title,override,device,ops", PLAN_CASES, ids=[c[0] for c in PLAN_CASES])
def test_plan(title, override, device, ops):
    want = wg_params.validate_params(base(**override), resolver=no_resolver)
    link = {"addresses": ["10.7.0.1/24"], "mtu": 1420, "up": True}
    plan = wg_plan.compute_plan(want, link, CURRENT, want["private_key"], None)
    assert plan.device == device
    assert plan.peer_ops == ops
    assert plan.empty() == (not device and not ops)
    for secret in SECRETS:
        assert secret not in json.dumps(plan.actions)


def test_plan_link():
    want = wg_params.validate_params(base(addresses=["10.7.0.1/24", "fd07::1/64"], mtu=1380), resolver=no_resolver)
    link = {"addresses": ["10.7.0.1/24", "10.9.0.1/24"], "mtu": 1420, "up": False}
    plan = wg_plan.compute_plan(want, link, dict(CURRENT, peers={}), PRIV, None)
    assert plan.add_addresses == ["fd07::1/64"] and plan.del_addresses == ["10.9.0.1/24"]
    assert plan.mtu == 1380 and plan.up is True


def test_plan_addresses_unmanaged():
    want = wg_params.validate_params(base(addresses=None), resolver=no_resolver)
    plan = wg_plan.compute_plan(want, {"addresses": ["10.9.0.1/24"], "mtu": 1420, "up": True},
                                dict(CURRENT, peers={}), PRIV, None)
    assert plan.add_addresses == [] and plan.del_addresses == []


# ---------------------------------------------------------------- the wg-quick file
def test_render_wg_quick():
    want = wg_params.validate_params(base(
        fwmark=51, post_up=["nft -f /etc/wg-service-proxy/ruleset.nft"], pre_down=["true"],
        peers=[{"public_key": PUB2, "preshared_key": PSK, "allowed_ips": ["10.7.0.3/32"], "persistent_keepalive": 25},
               {"public_key": PUB1, "endpoint": "192.0.2.2:51820", "allowed_ips": ["10.7.0.2/32"]}]),
        resolver=no_resolver)
    after = {"addresses": want["addresses"], "mtu": 1420, "fwmark": 51, "peers": want["peers"]}
    assert wgquick.render_wg_quick(want, after, PRIV) == (
        "# Managed by wgsp.service_proxy.wg_interface: edits are overwritten.\n"
        "# Restores this interface with: wg-quick up wg0\n"
        "[Interface]\n"
        "PrivateKey = %s\n"
        "ListenPort = 51820\n"
        "FwMark = 0x33\n"
        "Address = 10.7.0.1/24\n"
        "MTU = 1420\n"
        "Table = off\n"
        "PostUp = nft -f /etc/wg-service-proxy/ruleset.nft\n"
        "PreDown = true\n"
        "\n[Peer]\n"
        "PublicKey = %s\n"
        "PresharedKey = %s\n"
        "AllowedIPs = 10.7.0.3/32\n"
        "PersistentKeepalive = 25\n"
        "\n[Peer]\n"
        "PublicKey = %s\n"
        "AllowedIPs = 10.7.0.2/32\n"
        "Endpoint = 192.0.2.2:51820\n"
    ) % (PRIV, PUB2, PSK, PUB1)


# ---------------------------------------------------------------- whole runs with fakes

class FakeUapi:
    """The UAPI client: a device dict that `set` payloads really modify (parsed like wireguard-go)."""

    def __init__(self, device=None):
        self.device = device or {"private_key": None, "listen_port": 40000, "fwmark": 0, "peers": []}
        self.gets = 0
        self.sets = []
        self.set_requests = 0

    def get(self):
        self.gets += 1
        return json.loads(json.dumps(self.device))

    def set(self, body):
        if not body:
            return
        self.set_requests += 1
        self.sets.append(body)
        peer = None
        for line in body.strip().split("\n"):
            key, _sep, value = line.partition("=")
            if key == "private_key":
                self.device["private_key"] = keys.b64_from_hex(value)
            elif key in ("listen_port", "fwmark"):
                self.device[key] = int(value)
            elif key == "public_key":
                pub = keys.b64_from_hex(value)
                peer = next((p for p in self.device["peers"] if p["public_key"] == pub), None)
                if peer is None:
                    peer = {"public_key": pub, "preshared_key": None, "endpoint": None, "allowed_ips": [],
                            "persistent_keepalive": 0, "latest_handshake": 0, "rx_bytes": 0, "tx_bytes": 0}
                    self.device["peers"].append(peer)
            elif key == "remove":
                self.device["peers"].remove(peer)
            elif key == "preshared_key":
                psk = keys.b64_from_hex(value)
                peer["preshared_key"] = None if psk == keys.ZERO_KEY else psk
            elif key == "endpoint":
                peer["endpoint"] = value
            elif key == "persistent_keepalive_interval":
                peer["persistent_keepalive"] = int(value)
            elif key == "replace_allowed_ips":
                peer["allowed_ips"] = []
            elif key == "allowed_ip":
                peer["allowed_ips"].append(value)


class FakeUserspace(wg_backends.UserspaceBackend):
    def __init__(self, client, link_ops, socket_dir):
        super().__init__("wg0", socket_dir=socket_dir, client=client)
        self.link_ops = link_ops
        self.started = 0
        self.deleted = []

    def check_available(self):
        pass

    def read(self):
        return self.client.get()

    def start_daemon(self, argv):
        self.started += 1
        self.argv = argv
        self.link_ops.link = {"index": 3, "kind": "tun", "mtu": 1420, "up": False, "addresses": []}
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._sock.bind(self.socket)  # a real socket file, as wireguard-go leaves it

    def delete(self, link_ops, pids=None):
        self.deleted.append(pids)
        link_ops.link = None


def make(params, tmp_path, link_ops, client, check_mode=False, diff=False, pids=()):
    sockdir = tmp_path / "run"
    sockdir.mkdir(exist_ok=True)
    backend = FakeUserspace(client, link_ops, str(sockdir))
    run = wgi.WgInterface(params, check_mode=check_mode, want_diff=diff, link_ops=link_ops,
                          backends={"userspace": backend}, resolver=no_resolver, conf_dir=str(tmp_path / "etc"),
                          kernel_check=lambda: False, process_finder=lambda name: list(pids))
    run.backend = backend
    return run


def tun_link():
    return {"index": 3, "kind": "tun", "mtu": 1420, "up": True, "addresses": ["10.7.0.1/24"]}


def test_check_mode_on_empty_host_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(wg_backends, "find_binary", lambda name: "/usr/bin/wireguard-go")
    link_ops, client = FakeLinkOps(None), FakeUapi()
    params = base(private_key=None)
    run = make(params, tmp_path, link_ops, client, check_mode=True, diff=True)
    result = run.run()
    assert result["changed"] is True and result["public_key"] is None
    assert link_ops.calls == [] and client.sets == [] and client.gets == 0 and run.backend.started == 0
    assert not (tmp_path / "etc").exists()  # no key file, no config
    assert result["diff"]["before"]["state"] == "absent" and result["diff"]["after"]["state"] == "present"


def test_create_then_unchanged_then_check(tmp_path, monkeypatch):
    monkeypatch.setattr(wg_backends, "find_binary", lambda name: "/usr/bin/wireguard-go")
    link_ops, client = FakeLinkOps(None), FakeUapi()
    params = base(private_key=None, mtu=1400)
    first = make(params, tmp_path, link_ops, client).run()
    assert first["changed"] is True and first["set_requests"] == 1
    key_path = str(tmp_path / "etc" / "wg0.key")
    assert stat.S_IMODE(os.stat(key_path).st_mode) == 0o600
    private = keys.read_key_file("k", key_path)
    assert first["public_key"] == keys.public_key(private)
    conf = tmp_path / "etc" / "wg0.conf"
    assert stat.S_IMODE(os.stat(str(conf)).st_mode) == 0o600 and "MTU = 1400" in conf.read_text()
    assert link_ops.calls == [("add_address", "10.7.0.1/24"), ("set_mtu", 1400), ("set_up",)]
    mtime = os.stat(str(conf)).st_mtime_ns

    link_ops.calls = []
    second = make(params, tmp_path, link_ops, client).run()
    assert second["changed"] is False and second["set_requests"] == 0 and second["actions"] == []
    assert link_ops.calls == [] and len(client.sets) == 1
    assert os.stat(str(conf)).st_mtime_ns == mtime
    assert second["public_key"] == first["public_key"]


def test_listen_port_not_resent_when_peer_changes(tmp_path):
    client = FakeUapi({"private_key": PRIV, "listen_port": 51820, "fwmark": 0, "peers": []})
    result = make(base(persist=False), tmp_path, FakeLinkOps(tun_link()), client).run()
    assert result["set_requests"] == 1
    assert "listen_port" not in client.sets[0] and "private_key" not in client.sets[0]
    assert client.sets[0].startswith("public_key=%s\n" % keys.hex_key(PUB1))


def test_diff_hides_keys_and_marks_psk_change(tmp_path):
    client = FakeUapi({"private_key": PRIV, "listen_port": 51820, "fwmark": 0, "peers": [
        {"public_key": PUB1, "preshared_key": PSK, "endpoint": "192.0.2.2:51820", "allowed_ips": ["10.7.0.2/32"],
         "persistent_keepalive": 0}]})
    params = base(persist=False, peers=[{"public_key": PUB1, "preshared_key": PSK2, "endpoint": "192.0.2.2:51820",
                                        "allowed_ips": ["10.7.0.2/32"]}])
    result = make(params, tmp_path, FakeLinkOps(tun_link()), client, diff=True).run()
    assert result["changed"] is True
    assert result["diff"]["before"]["peers"][PUB1]["preshared_key"] == wg_plan.PSK_SET
    assert result["diff"]["after"]["peers"][PUB1]["preshared_key"] == wg_plan.PSK_CHANGED
    assert result["diff"]["after"]["public_key"] == PUB_SELF
    text = json.dumps(result)
    for secret in SECRETS:
        assert secret not in text


def test_adopts_device_key_when_key_file_missing(tmp_path):
    client = FakeUapi({"private_key": PRIV, "listen_port": 51820, "fwmark": 0, "peers": []})
    params = base(private_key=None, peers=[], persist=False)
    result = make(params, tmp_path, FakeLinkOps(tun_link()), client).run()
    assert keys.read_key_file("k", str(tmp_path / "etc" / "wg0.key")) == PRIV
    assert result["public_key"] == PUB_SELF and result["set_requests"] == 0


def test_key_file_wins_over_device_key(tmp_path):
    keys.write_key_file(str(tmp_path / "etc" / "wg0.key"), PRIV2)
    client = FakeUapi({"private_key": PRIV, "listen_port": 51820, "fwmark": 0, "peers": []})
    result = make(base(private_key=None, peers=[], persist=False), tmp_path, FakeLinkOps(tun_link()), client).run()
    assert result["set_requests"] == 1 and client.sets[0].startswith("private_key=")
    assert result["public_key"] == keys.public_key(PRIV2)


def test_absent_missing_is_unchanged(tmp_path):
    run = make({"name": "wg0", "state": "absent"}, tmp_path, FakeLinkOps(None), FakeUapi())
    result = run.run()
    assert result["changed"] is False and run.backend.deleted == []


def test_absent_check_mode_deletes_nothing(tmp_path):
    link_ops = FakeLinkOps(tun_link())
    run = make({"name": "wg0", "state": "absent"}, tmp_path, link_ops, FakeUapi(), check_mode=True, pids=[4242])
    result = run.run()
    assert result["changed"] is True and run.backend.deleted == [] and link_ops.link is not None


def test_absent_removes_interface_conf_and_optionally_key(tmp_path):
    etc = tmp_path / "etc"
    keys.write_key_file(str(etc / "wg0.key"), PRIV)
    keys.write_secret_file(str(etc / "wg0.conf"), "x\n")
    link_ops = FakeLinkOps(tun_link())
    run = make({"name": "wg0", "state": "absent"}, tmp_path, link_ops, FakeUapi(), pids=[4242])
    result = run.run()
    assert result["changed"] is True and run.backend.deleted == [[4242]]
    assert sorted(os.listdir(str(etc))) == ["wg0.key"]
    run = make({"name": "wg0", "state": "absent", "remove_key": True}, tmp_path, link_ops, FakeUapi())
    assert run.run()["changed"] is True and os.listdir(str(etc)) == []


def test_existing_link_of_other_kind_is_refused(tmp_path):
    link = dict(tun_link(), kind="veth")
    with pytest.raises(wgi.WgspError) as err:
        make(base(), tmp_path, FakeLinkOps(link), FakeUapi()).run()
    assert "veth" in err.value.msg


def test_backend_mismatch_is_refused(tmp_path):
    with pytest.raises(wgi.WgspError) as err:
        make(base(backend="kernel"), tmp_path, FakeLinkOps(tun_link()), FakeUapi()).run()
    assert "userspace backend" in err.value.msg


def test_read_interface_has_no_secrets(tmp_path):
    client = FakeUapi({"private_key": PRIV, "listen_port": 51820, "fwmark": 0, "peers": [
        {"public_key": PUB1, "preshared_key": PSK, "endpoint": "192.0.2.2:51820", "allowed_ips": ["10.7.0.2/32"],
         "persistent_keepalive": 5, "latest_handshake": 1700000000, "rx_bytes": 1, "tx_bytes": 2}]})
    backend = FakeUserspace(client, FakeLinkOps(tun_link()), str(tmp_path))
    state = wgi.read_interface("wg0", link_ops=FakeLinkOps(tun_link()), backends={"userspace": backend})
    assert state == {"name": "wg0", "exists": True, "backend": "userspace", "up": True, "mtu": 1420,
                     "addresses": ["10.7.0.1/24"], "listen_port": 51820, "fwmark": 0, "public_key": PUB_SELF,
                     "peers": [{"public_key": PUB1, "endpoint": "192.0.2.2:51820", "allowed_ips": ["10.7.0.2/32"],
                                "persistent_keepalive": 5, "latest_handshake": 1700000000, "rx_bytes": 1,
                                "tx_bytes": 2}]}
    assert wgi.read_interface("wg0", link_ops=FakeLinkOps(None))["exists"] is False


def test_wireguard_go_argv_has_no_secret(tmp_path, monkeypatch):
    monkeypatch.setattr(wg_backends, "find_binary", lambda name: "/usr/bin/wireguard-go")
    run = make(base(), tmp_path, FakeLinkOps(None), FakeUapi())
    run.run()
    assert run.backend.argv == ["/usr/bin/wireguard-go", "wg0"]


def test_find_wireguard_go_matches_name_and_namespace(tmp_path):
    proc = tmp_path / "proc"
    for pid, argv in (("10", b"wireguard-go\0wg0\0"), ("11", b"/usr/bin/wireguard-go\0-f\0wg1\0"),
                      ("12", b"sleep\0wg0\0"), ("self", b"")):
        (proc / pid).mkdir(parents=True)
        (proc / pid / "cmdline").write_bytes(argv)
    # the fake /proc has no ns links: namespace ids compare equal only for same-namespace processes,
    # here all are None like our own, so the name and argv decide
    monkey_own = wg_backends._ns_id
    try:
        wg_backends._ns_id = lambda pid, kind: "same"
        assert wg_backends.find_wireguard_go("wg0", proc=str(proc)) == [10]
        assert wg_backends.find_wireguard_go("wg1", proc=str(proc)) == [11]
        wg_backends._ns_id = lambda pid, kind: "other" if pid == "10" else "same"
        assert wg_backends.find_wireguard_go("wg0", proc=str(proc)) == []
    finally:
        wg_backends._ns_id = monkey_own
