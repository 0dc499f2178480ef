"""Preshared keys (issue 13) on namespace hosts: made on the hub by wg_preshared_keys, read by the
client entry point of the roles (delegate_to the hub: the role run alone, without site.yml's first
play), given to wg_interface, and never printed - not in -vvv output, not in a diff, not in argv.

The hub's side is set by hand from its own key file (``wg set ... preshared-key <file>``), so the
handshake proves both ends hold the same key; the client's side is the role's code, through
ansible-playbook with -vvv --diff."""

import base64
import binascii
import os
import subprocess
import time

from conftest import REPO, require_root_tools
from test_role_contracts import HUB_VARS, client_play, hub_and_client
from test_trust_validation import playbook

PSK_DIR = "/etc/wireguard/wg0-psk"


def _handshake(host, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        values = host.run(["wg", "show", "wg0", "latest-handshakes"], check=False).stdout.split()
        if values and all(int(v) > 0 for v in values[1::2]):
            return True
        time.sleep(0.2)
    return False


def test_the_client_gets_the_hubs_preshared_key_and_nobody_sees_it(lab, tmp_path):
    require_root_tools("wireguard-go", "wg", "ip")
    hub, client, inv = hub_and_client(lab, tmp_path, client_vars={"share_client_preshared_key": True})
    lab.link(hub, "eth0", ["192.0.2.1/24"], client, "eth0", ["192.0.2.2/24"])
    # the hub: its key, the client's preshared key made there, wg0 listening
    hub_pub = hub.module("wg_key", {"path": "/etc/wireguard/wg0.key"})["public_key"]
    made = hub.module("wg_preshared_keys", {"dir": PSK_DIR, "peers": [{"name": "client"}]})
    assert made["changed"] and "preshared_keys" not in made and made["peers"][0]["state"] == "created", made
    psk = hub.run(["cat", PSK_DIR + "/client.psk"]).stdout.strip()
    assert hub.run(["stat", "-c", "%a", PSK_DIR, PSK_DIR + "/client.psk"]).stdout.split() == ["700", "600"]
    hub.wg_go("wg0")
    hub.run("wg set wg0 private-key /etc/wireguard/wg0.key listen-port 51820 && ip addr add 10.7.0.1/24 dev wg0"
            " && ip link set wg0 up")

    # the client: the role's client entry point, -vvv --diff (check mode first: nothing changes)
    book = client_play(tmp_path)
    check = playbook(tmp_path, inv, book, "--check", "-vvv", "--diff")
    assert check.returncode == 0, check.stdout[-3000:]
    proc = playbook(tmp_path, inv, book, "-vvv", "--diff")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert "Read this client's preshared key on the hub" in proc.stdout
    client_pub = client.run(["wg", "show", "wg0", "public-key"]).stdout.strip()
    hub.run(["wg", "set", "wg0", "peer", client_pub, "preshared-key", PSK_DIR + "/client.psk",
             "allowed-ips", "10.7.0.2/32"])
    assert client.run(["wg", "show", "wg0", "preshared-keys"]).stdout.split() == [hub_pub, psk]
    assert _handshake(hub), "no handshake with the preshared key on both ends"

    # nowhere in what Ansible printed (any form of the key), nor in the client's argv
    forms = [psk, binascii.hexlify(base64.b64decode(psk)).decode()]
    for run in (check, proc):
        out = run.stdout + run.stderr
        assert not [f for f in forms if f in out], "the preshared key is in the output"
    assert "<preshared key set>" in proc.stdout  # what the diff shows instead
    cmdlines = client.run("cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '; true").stdout
    assert psk not in cmdlines
    assert client.run(["stat", "-c", "%a", "/etc/wireguard/wg0.conf"]).stdout.strip() == "600"

    # unchanged second run; the hub's key file untouched by the client's reads
    again = playbook(tmp_path, inv, book)
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout[-3000:]
    assert hub.run(["cat", PSK_DIR + "/client.psk"]).stdout.strip() == psk
    assert HUB_VARS  # (the hub's endpoint, from test_role_contracts)


def test_a_vaulted_preshared_key_goes_to_the_client_as_given_and_nobody_sees_it(lab, tmp_path):
    """share_client_preshared_key holding the key itself, vault-encrypted in host_vars: the client's run
    takes it as given (it reads nothing on the hub), wg has it, the handshake with the hub (set by hand
    with the same key) works, and no form of it is in -vvv --diff output or argv."""
    require_root_tools("wireguard-go", "wg", "ip")
    psk = base64.b64encode(os.urandom(32)).decode()
    password = tmp_path / "vault-pass"
    password.write_text("wgsp test vault\n")
    vaulted = subprocess.run([os.path.join(REPO, ".venv", "bin", "ansible-vault"), "encrypt_string",
                              "--vault-password-file", str(password), "--name", "share_client_preshared_key", psk],
                             capture_output=True, text=True, check=True).stdout
    hub, client, inv = hub_and_client(lab, tmp_path)
    (tmp_path / "host_vars" / "client.yml").write_text("---\n" + vaulted)
    lab.link(hub, "eth0", ["192.0.2.1/24"], client, "eth0", ["192.0.2.2/24"])
    hub_pub = hub.module("wg_key", {"path": "/etc/wireguard/wg0.key"})["public_key"]
    hub.wg_go("wg0")
    hub.run("wg set wg0 private-key /etc/wireguard/wg0.key listen-port 51820 && ip addr add 10.7.0.1/24 dev wg0"
            " && ip link set wg0 up")

    book = client_play(tmp_path)
    proc = playbook(tmp_path, inv, book, "-vvv", "--diff", "--vault-password-file", str(password))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert client.run(["wg", "show", "wg0", "preshared-keys"]).stdout.split() == [hub_pub, psk]
    assert hub.run(["ls", PSK_DIR], check=False).returncode != 0  # the client read (and made) nothing there
    client_pub = client.run(["wg", "show", "wg0", "public-key"]).stdout.strip()
    hub.run("umask 077 && printf '%%s\\n' '%s' > /tmp/psk && wg set wg0 peer %s preshared-key /tmp/psk "
            "allowed-ips 10.7.0.2/32 && rm /tmp/psk" % (psk, client_pub))
    assert _handshake(hub), "no handshake with the vaulted preshared key on both ends"
    forms = [psk, binascii.hexlify(base64.b64decode(psk)).decode()]
    assert not [f for f in forms if f in proc.stdout + proc.stderr], "the preshared key is in the output"
    assert psk not in client.run("cat /proc/[0-9]*/cmdline 2>/dev/null | tr '\\0' ' '; true").stdout
    again = playbook(tmp_path, inv, book, "--vault-password-file", str(password))
    assert again.returncode == 0 and "changed=0" in again.stdout, again.stdout[-3000:]
