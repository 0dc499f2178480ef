"""A migrating user keeps the host's WireGuard identity: the importer puts the .env file's private key
in a secrets file, and the playbook wgsp.service_proxy.install_key installs it on the host (a namespace
test host, through ansible-playbook) - 0600, the public key the original derived, idempotent, an
existing different key kept unless force, and the key never in the output, even with --diff -vvv."""

import os
import stat
import subprocess

from conftest import REPO, require_root_tools

CLI = os.path.join(REPO, "bin", "wgsp-import-env")
PRIVATE = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="  # the share fixture's test key
OTHER = "UFFSU1RVVldYWVpbXF1eX2BhYmNkZWZnaGlqa2xtbm8="
ENV = os.path.join(REPO, "tests", "unit", "fixtures", "env", "original", ".env.share.example")


def _install(tmp_path, inv, *extra):
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0", ANSIBLE_LOCAL_TEMP=str(tmp_path / "tmp"))
    return subprocess.run([os.path.join(REPO, ".venv", "bin", "ansible-playbook"), "-i", inv,
                           "wgsp.service_proxy.install_key", "-l", "share1", "--diff", "-vvv",
                           "-e", "@%s" % (tmp_path / "secrets" / "share1.keys.yml"), *extra],
                          cwd=REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          check=False, timeout=300)


def _changed(proc):
    return int(proc.stdout.split("PLAY RECAP", 1)[1].split("changed=", 1)[1].split()[0])


def test_imported_key_is_installed_without_ever_being_shown(lab, tmp_path):
    require_root_tools("wg")
    from rig import namespace_inventory

    host = lab.host("share1")
    inv = namespace_inventory(tmp_path, {"share_clients": [host]})
    proc = subprocess.run([CLI, ENV, "--host", "share1", "--out-dir", "inv"], cwd=str(tmp_path),
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr

    first = _install(tmp_path, inv)
    assert first.returncode == 0, first.stdout[-4000:] + first.stderr[-2000:]
    assert _changed(first) >= 1
    mode = host.run(["stat", "-c", "%a", "/etc/wireguard/wg0.key", "/etc/wireguard"]).stdout.split()
    assert mode == ["600", "700"]
    installed = host.run(["cat", "/etc/wireguard/wg0.key"]).stdout.strip()
    assert installed == PRIVATE
    public = subprocess.run(["wg", "pubkey"], input=PRIVATE + "\n", capture_output=True, text=True,
                            check=True).stdout.strip()
    assert host.module("wg_key", {"path": "/etc/wireguard/wg0.key"})["public_key"] == public

    again = _install(tmp_path, inv)
    assert again.returncode == 0 and _changed(again) == 0

    host.run("umask 077; echo %s > /etc/wireguard/wg0.key" % OTHER)
    kept = _install(tmp_path, inv)
    assert kept.returncode == 2 and "force=true" in kept.stdout
    assert host.run(["cat", "/etc/wireguard/wg0.key"]).stdout.strip() == OTHER
    forced = _install(tmp_path, inv, "-e", "force=true")
    assert forced.returncode == 0 and host.run(["cat", "/etc/wireguard/wg0.key"]).stdout.strip() == PRIVATE

    for proc in (first, again, kept, forced):
        for secret in (PRIVATE, OTHER):
            assert secret not in proc.stdout + proc.stderr
    assert stat.S_IMODE((tmp_path / "secrets" / "share1.keys.yml").stat().st_mode) == 0o600
