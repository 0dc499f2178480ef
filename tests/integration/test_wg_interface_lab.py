"""wg_interface against real wireguard-go in namespace test hosts (the userspace backend; this
machine's kernel has no WireGuard module, the kernel backend is unit-tested at the netlink boundary).

Everything runs inside hosts the `lab` fixture created; underlay 192.0.2.0/24, tunnel 10.7.0.0/24.
"""

import base64
import json
import os
import time

import pytest

from conftest import require_root_tools

OTHER_PUB = "fyBlClwg+ZmIXXiIRkMNZATjrPtdgsZRF08bU0pzen4="
OTHER_PUB2 = "a8ItnsOR9I+f5beIPlF/gocDndJu/6Lgi6wp5cHsnBI="
PSK = "KBLdSraeBLjbYUyk/aEu7xxmhQB29d8J1by+46zysmo="


def _tools():
    require_root_tools("wireguard-go", "wg", "wg-quick", "curl")


def wait_for(predicate, timeout=10.0, interval=0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return predicate()


def dump(host, name="wg0"):
    """`wg show dump` parsed: {public_key: (endpoint, allowed_ips, latest_handshake, rx, tx, keepalive)}."""
    lines = host.run(["wg", "show", name, "dump"]).stdout.strip().splitlines()
    peers = {}
    for line in lines[1:]:
        pub, _psk, endpoint, allowed, handshake, rx, tx, keepalive = line.split("\t")
        peers[pub] = {"endpoint": endpoint, "allowed_ips": allowed, "handshake": int(handshake),
                      "rx": int(rx), "tx": int(tx), "keepalive": keepalive}
    return lines[0].split("\t"), peers


def udp_sockets(host):
    return host.run(["ss", "-H", "-uanp"]).stdout


def wg_go_pids(host):
    out = host.run("for p in /proc/[0-9]*; do "
                   "[ \"$(readlink $p/ns/net)\" = \"$(readlink /proc/self/ns/net)\" ] && "
                   "tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -Eq '^(/[^ ]*/)?wireguard-go ' && echo ${p#/proc/}; "
                   "done; true").stdout
    return out.split()


def ok(result):
    assert result.get("failed") is not True and result["_rc"] == 0, result.get("msg", result.get("_stderr"))
    return result


def make_pair(lab):
    hub, client = lab.host("hub"), lab.host("client")
    lab.switch("under", [(hub, "eth0", ["192.0.2.1/24"]), (client, "eth0", ["192.0.2.2/24"])])
    return hub, client


def test_lifecycle_traffic_and_minimal_changes(lab):
    _tools()
    hub, client = make_pair(lab)

    # check mode on an empty host: changed, and nothing created
    hub_args = {"name": "wg0", "addresses": ["10.7.0.1/24"], "listen_port": 51820, "peers": []}
    result = ok(hub.module("wg_interface", hub_args, check_mode=True))
    assert result["changed"] is True and result["backend"] == "userspace"
    assert hub.run(["ip", "link", "show", "wg0"], check=False).returncode != 0
    assert hub.run("ls -A /etc/wireguard /run/wireguard").stdout.split() == ["/etc/wireguard:", "/run/wireguard:"]
    assert wg_go_pids(hub) == []

    # create both ends (keys generated on each host)
    hub_res = ok(hub.module("wg_interface", hub_args))
    assert hub_res["changed"] is True and hub_res["backend"] == "userspace"
    client_args = {"name": "wg0", "addresses": ["10.7.0.2/32"], "peers": [
        {"public_key": hub_res["public_key"], "endpoint": "192.0.2.1:51820", "allowed_ips": ["10.7.0.0/24"],
         "persistent_keepalive": 1}]}
    client_res = ok(client.module("wg_interface", client_args))
    hub_args["peers"] = [{"public_key": client_res["public_key"], "allowed_ips": ["10.7.0.2/32"]}]
    assert ok(hub.module("wg_interface", hub_args))["actions"] == [
        "add peer %s (allowed_ips)" % client_res["public_key"], "write /etc/wireguard/wg0.conf"]
    assert hub.run("stat -c %a /etc/wireguard/wg0.key /etc/wireguard/wg0.conf").stdout.split() == ["600", "600"]
    client.run(["ip", "route", "replace", "10.7.0.0/24", "dev", "wg0"])  # routes belong to wg_route

    # traffic through the tunnel
    hub.serve("tcp", "10.7.0.1", 8080)

    def fetch():
        reply = client.run(["curl", "-sS", "--max-time", "1", "http://10.7.0.1:8080/"], check=False)
        return reply if reply.returncode == 0 else None

    curl = wait_for(fetch, timeout=15)
    assert curl and curl.stdout.split() == ["hub", "10.7.0.2"]
    _device, peers = dump(hub)
    before = peers[client_res["public_key"]]
    assert before["handshake"] > 0
    time.sleep(1.1)  # a reset session would show a later handshake second

    # unchanged re-run: nothing sent, socket not rebound
    sockets = udp_sockets(hub)
    again = ok(hub.module("wg_interface", hub_args))
    assert again["changed"] is False and again["set_requests"] == 0 and again["actions"] == []
    assert udp_sockets(hub) == sockets

    def untouched():
        now = dump(hub)[1][client_res["public_key"]]
        assert now["handshake"] == before["handshake"]
        assert now["rx"] >= before["rx"] and now["tx"] >= before["tx"]  # counters survive: peer not re-created

    # add a peer
    extra = {"public_key": OTHER_PUB, "endpoint": "192.0.2.9:51820", "allowed_ips": ["10.7.0.9/32"]}
    hub_args["peers"].append(extra)
    res = ok(hub.module("wg_interface", hub_args))
    assert res["changed"] is True and res["set_requests"] == 1
    assert res["actions"][0] == "add peer %s (endpoint, allowed_ips)" % OTHER_PUB
    untouched()
    assert udp_sockets(hub) == sockets

    # change its endpoint
    extra["endpoint"] = "192.0.2.10:51821"
    res = ok(hub.module("wg_interface", hub_args))
    assert res["actions"][0] == "update peer %s (endpoint)" % OTHER_PUB and res["set_requests"] == 1
    assert dump(hub)[1][OTHER_PUB]["endpoint"] == "192.0.2.10:51821"
    untouched()

    # remove it
    hub_args["peers"].pop()
    res = ok(hub.module("wg_interface", hub_args))
    assert res["actions"][0] == "remove peer %s" % OTHER_PUB
    assert OTHER_PUB not in dump(hub)[1]
    untouched()
    assert client.run(["curl", "-sS", "--max-time", "2", "http://10.7.0.1:8080/"]).stdout.split() == ["hub", "10.7.0.2"]

    # absent: interface, daemon and wg-quick file go; the key stays
    res = ok(hub.module("wg_interface", {"name": "wg0", "state": "absent"}))
    assert res["changed"] is True
    assert hub.run(["ip", "link", "show", "wg0"], check=False).returncode != 0
    assert wait_for(lambda: wg_go_pids(hub) == [], timeout=3)
    assert hub.run("ls -A /etc/wireguard").stdout.split() == ["wg0.key"]
    assert ok(hub.module("wg_interface", {"name": "wg0", "state": "absent"}))["changed"] is False


BAD_INPUTS = [
    ("bad name", {"name": "wg0-much-too-long"}, "name: invalid interface name"),
    ("short key", {"private_key": base64.b64encode(b"k" * 31).decode()}, "private_key: is not a WireGuard key"),
    ("bad peer key", {"peers": [{"public_key": "bm90LWEta2V5"}]}, "peers[0].public_key: is not a WireGuard key"),
    ("bad cidr", {"addresses": ["10.7.0.1/40"]}, "addresses[0]: is not a valid CIDR"),
    ("port out of range", {"listen_port": 65536}, "listen_port: must be between 1 and 65535"),
    ("duplicate allowed ip", {"peers": [{"public_key": OTHER_PUB, "allowed_ips": ["10.7.0.9/32"]},
                                        {"public_key": OTHER_PUB2, "allowed_ips": ["10.7.0.9/32"]}]},
     "peers[1].allowed_ips[0]: 10.7.0.9/32 is already an allowed IP of peers[0]"),
    ("endpoint without port", {"peers": [{"public_key": OTHER_PUB, "endpoint": "192.0.2.9"}]},
     "peers[0].endpoint: must be host:port"),
    ("newline injection", {"peers": [{"public_key": OTHER_PUB, "allowed_ips": ["10.7.0.9/32\nallowed_ip=0.0.0.0/0"]}]},
     "peers[0].allowed_ips[0]: must not contain a newline"),
]


@pytest.mark.parametrize("title,override,message", BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_changes_nothing(lab, title, override, message):
    _tools()
    host = lab.host("h")
    good = {"name": "wg0", "addresses": ["10.7.0.1/24"], "listen_port": 51820,
            "peers": [{"public_key": OTHER_PUB, "preshared_key": PSK, "allowed_ips": ["10.7.0.9/32"]}]}
    ok(host.module("wg_interface", good))
    snapshot = host.run("wg show wg0 dump; ip addr; ls -l --time-style=full-iso /etc/wireguard; cat /etc/wireguard/*").stdout
    result = host.module("wg_interface", dict(good, **override))
    assert result.get("failed") is True and result["_rc"] != 0
    assert result["msg"].startswith(message), result["msg"]
    assert PSK not in result["_stdout"] + result["_stderr"]
    after = host.run("wg show wg0 dump; ip addr; ls -l --time-style=full-iso /etc/wireguard; cat /etc/wireguard/*").stdout
    assert after == snapshot


def test_wg_quick_file_restores_the_interface(lab):
    _tools()
    host = lab.host("h")
    args = {"name": "wg0", "addresses": ["10.7.0.1/24", "fd07::1/64"], "listen_port": 51820, "mtu": 1380,
            "fwmark": 51, "post_up": ["ip link set dev %i txqueuelen 600"],
            "peers": [{"public_key": OTHER_PUB, "preshared_key": PSK, "endpoint": "192.0.2.9:51820",
                       "allowed_ips": ["10.7.0.9/32", "fd07::9/128"], "persistent_keepalive": 0},
                      {"public_key": OTHER_PUB2, "allowed_ips": ["10.7.0.10/32"], "persistent_keepalive": 25}]}
    ok(host.module("wg_interface", args))
    # everything but the random parts (peer order, the kernel's link-local address)
    state = ("wg show wg0 dump | cut -f1-4,8 | sort; ip -o addr show dev wg0 scope global | awk '{print $4}'; "
             "ip -o link show wg0 | grep -o 'mtu [0-9]*'")
    before = host.run(state).stdout
    assert len(wg_go_pids(host)) == 1
    host.run(["ip", "link", "del", "wg0"])
    assert wait_for(lambda: wg_go_pids(host) == [], timeout=5)  # wireguard-go exits with its tun
    host.run(["rm", "-f", "/run/wireguard/wg0.sock"])
    up = host.run(["wg-quick", "up", "wg0"], check=False)
    assert up.returncode == 0, up.stderr
    assert host.run(state).stdout == before
    assert "qlen 600" in host.run(["ip", "link", "show", "wg0"]).stdout  # PostUp ran
    assert "10.7.0.9" not in host.run(["ip", "route"]).stdout  # Table = off: no routes added
    again = ok(host.module("wg_interface", args))
    assert again["changed"] is False and again["set_requests"] == 0


def test_ansible_short_and_fqcn_names_and_no_secret_leaks(lab):
    """Real `ansible` runs (-vvv --diff): secrets come from a vars file, as from a vault in real use.

    (Typed literally into an ad-hoc `-a`, ansible-core 2.19 itself prints the task's raw args under
    "Origin:" when a task fails - that is the controller echoing its command line, not module output.)
    """
    _tools()
    host = lab.host("h")
    private = host.run(["wg", "genkey"]).stdout.strip()
    psk2 = base64.b64encode(b"p" * 32).decode()
    secrets = [private, PSK, psk2] + [base64.b64decode(k).hex() for k in (private, PSK, psk2)]
    vars_file = os.path.join(lab.tmpdir, "secrets.json")
    with open(vars_file, "w") as handle:
        json.dump({"wg_private": private, "wg_psk": PSK, "wg_psk2": psk2}, handle)
    extra = ["-vvv", "--diff", "-e", "@" + vars_file]
    args = {"name": "wg0", "private_key": "{{ wg_private }}", "addresses": ["10.7.0.1/24"], "listen_port": 51820,
            "peers": [{"public_key": OTHER_PUB, "preshared_key": "{{ wg_psk }}", "allowed_ips": ["10.7.0.9/32"]}]}
    outputs = []

    def ansible(module, module_args, more=()):
        res = host.ansible(module, module_args, extra=extra + list(more))
        outputs.append(res.stdout + res.stderr)
        return res

    res = ansible("wgsp.service_proxy.wg_interface", args, ["--check"])
    assert res.returncode == 0 and "CHANGED" in res.stdout, res.stdout + res.stderr
    assert host.run(["ip", "link", "show", "wg0"], check=False).returncode != 0
    res = ansible("wg_interface", args)
    assert res.returncode == 0 and "CHANGED" in res.stdout
    assert "<preshared key set>" in res.stdout
    cmdlines = host.run("cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '; true").stdout
    changed_psk = dict(args, peers=[dict(args["peers"][0], preshared_key="{{ wg_psk2 }}")])
    before = host.run(["wg", "show", "wg0", "dump"], check=False).stdout.count("\n")
    res = ansible("wgsp.service_proxy.wg_interface", changed_psk)
    # (on failure: the device's line count before the run - 2 with the peer - and the module's diff and result)
    assert res.returncode == 0 and "<preshared key changed>" in res.stdout, (before, res.stdout[-3000:])
    res = ansible("wg_interface", dict(changed_psk, listen_port=0))
    assert res.returncode != 0 and "listen_port: must be between 1 and 65535" in res.stdout
    res = ansible("wg_interface", dict(changed_psk, peers=[dict(changed_psk["peers"][0], preshared_key="{{ wg_psk2 }}x")]))
    assert res.returncode != 0 and "peers[0].preshared_key: " in res.stdout
    res = ansible("wgsp.service_proxy.wg_interface", changed_psk)
    assert res.returncode == 0 and "SUCCESS" in res.stdout  # unchanged
    text = "\n".join(outputs) + cmdlines
    for secret in secrets:
        assert secret not in text
