"""Fault test on the lab (containers from the test base image, internal networks only).

After each fault, wg_status reports the problem, and re-running site.yml restores service with
changed > 0. Finally a simulated reboot (containers restarted: interfaces, processes and rules
gone) is recovered by the boot path alone (`wg-quick up`), with no Ansible run.
"""

import json
import os
import re
import subprocess
import time

import pytest

from conftest import REPO, require, require_root_tools

# Its own prefix and subnets (the molecule scenarios use the same ones, one after the other): the test
# runs beside a running `make demo`, whose networks Docker would refuse to overlap. Both can be moved
# (WGSP_FAULT_PREFIX=wgsp-rows WGSP_FAULT_NETS=under=192.168.33,app=192.168.43,public=198.18.0) to run
# it beside a molecule scenario; tests/unit/test_lab_subnets.py checks the defaults.
PREFIX = os.environ.get("WGSP_FAULT_PREFIX") or "wgsp-fault"
NETS = dict({"under": "192.168.31", "app": "192.168.41", "public": "192.0.2"},
            **dict(item.strip().split("=", 1) for item in os.environ.get("WGSP_FAULT_NETS", "").split(",") if item.strip()))
LAB_VARS = ["-e", "wgsp_lab_prefix=" + PREFIX] + [
    arg for name, prefix in sorted(NETS.items()) for arg in ("-e", "wgsp_lab_%s=%s" % (name, prefix))]
INVENTORY = os.path.join(REPO, "inventories", "lab", "hosts.yml")
BIN = os.path.join(REPO, ".venv", "bin")
TUNNEL_HOSTS = ("hub", "share1", "proxy1")


def _env():
    env = dict(os.environ)
    env.update({"PATH": BIN + os.pathsep + env.get("PATH", ""), "ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"),
                "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0", "WGSP_TEST_IMAGE": _image()})
    return env


def _image():
    return subprocess.run(["bash", os.path.join(REPO, "tests", "image", "build.sh"), "--print-tag"],
                          capture_output=True, text=True, check=True).stdout.strip()


def playbook(*args, check=True):
    proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), *LAB_VARS, *args],
                          cwd=REPO, env=_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=900, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("ansible-playbook %s failed (rc=%d)\n%s\n%s" % (
            " ".join(args), proc.returncode, proc.stdout[-15000:], proc.stderr[-5000:]))
    return proc


def site():
    """Run site.yml on the lab; returns the summed `changed` of the recap (and prints what changed)."""
    out = playbook("-i", INVENTORY, os.path.join(REPO, "site.yml")).stdout
    task, changed = None, []
    for line in out.splitlines():
        if line.startswith("TASK ["):
            task = line[6:].split("]")[0]
        elif line.startswith("changed:"):
            changed.append("%s %s" % (task, line.split()[1]))
    print("site.yml changed:", changed)
    return sum(int(n) for n in re.findall(r"changed=(\d+)", out))


def container(host):
    return "%s-%s" % (PREFIX, host)


def dexec(host, *argv, check=True, timeout=60):
    proc = subprocess.run(["docker", "exec", container(host), *argv], capture_output=True, text=True,
                          timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("docker exec %s %s failed (rc=%d): %s %s" % (host, argv, proc.returncode, proc.stdout, proc.stderr))
    return proc


def status(host):
    """wg_status on one lab host, as JSON."""
    proc = subprocess.run([os.path.join(BIN, "ansible"), "-i", INVENTORY, *LAB_VARS, host,
                           "-m", "wgsp.service_proxy.wg_status", "-o"],
                          cwd=REPO, env=_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False)
    match = re.search(r"=> (\{.*\})\s*$", proc.stdout.strip(), re.S)
    assert match, "wg_status printed no result: %s %s" % (proc.stdout, proc.stderr)
    return json.loads(match.group(1))


def health():
    """The README's `health` row as typed, on the whole lab inventory (tunnel hosts and the public
    user, which has no tunnel): ``(rc, output)``."""
    proc = subprocess.run([os.path.join(BIN, "ansible"), "-i", INVENTORY, *LAB_VARS, "all", "-m", "wg_status", "-a",
                           "fail_on=disconnected,drift"],
                          cwd=REPO, env=_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180, check=False)
    return proc.returncode, proc.stdout + proc.stderr


def adhoc(host, *args):
    """``ansible HOST ARGS -o`` on the lab: ``(rc, result dict)``."""
    proc = subprocess.run([os.path.join(BIN, "ansible"), "-i", INVENTORY, *LAB_VARS, host, *args, "-o"],
                          cwd=REPO, env=_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, check=False)
    match = re.search(r"=> (\{.*\})\s*$", proc.stdout.strip(), re.S)
    assert match, "ansible %s %s printed no result: %s %s" % (host, args, proc.stdout, proc.stderr)
    return proc.returncode, json.loads(match.group(1))


def readme_rows_as_typed(tmp_path):
    """README rows run as a user types them (here with the lab inventory): access-services with its
    probes, debug-all into a directory relative to where the command was started, and the key rows
    (a read returns the public key and never makes one)."""
    key_read = ("-m", "wgsp.service_proxy.wg_key", "-a", "path=/etc/wireguard/wg0.key generate=false")
    rc, result = adhoc("proxy1", *key_read)
    assert rc == 0 and result["public_key"] == status("proxy1")["public_key"] and not result["changed"], result
    keys = re.findall(r"[A-Za-z0-9+/]{42}[AEIMQUYcgkosw480]=", json.dumps(result))
    assert set(keys) == {result["public_key"]}, result  # the only key in the result is the public one
    rc, result = adhoc("public", *key_read)  # the public user has no tunnel and no key
    assert rc == 0 and result["public_key"] is None and not result["changed"], result
    assert dexec("public", "sh", "-c", "ls /etc/wireguard/wg0.key 2>/dev/null || echo none").stdout.strip() == "none"
    out = playbook("-i", INVENTORY, os.path.join(REPO, "playbooks", "status.yml"), "--tags", "access-services",
                   "-e", "status_probe=true").stdout
    assert re.search(r"ok +access service 10\.7\.0\.2:80: TCP connection", out), out
    proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), *LAB_VARS, "-i", INVENTORY, "-l", "proxy1",
                           os.path.join(REPO, "playbooks", "debug.yml"), "-e", "debug_dir=./wgsp-debug"],
                          cwd=str(tmp_path), env=_env(), stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-3000:]
    report = (tmp_path / "wgsp-debug" / "proxy1.txt").read_text()
    assert oct((tmp_path / "wgsp-debug" / "proxy1.txt").stat().st_mode & 0o777) == "0o600"
    # no systemd and no docker CLI in the lab's containers: said, not an error
    assert "## logs (rc=0)" in report and "no systemd journal on this host" in report, report
    assert "## docker networks (rc=0)" in report and "no docker CLI on this host" in report, report
    assert re.search(r"table inet wgsp-(dnat|filter)-|WGSP-", report), report  # the proxy's own rule sets


def public_request(attempts=20):
    """What the public user gets from the proxy's public port."""
    last = None
    for _attempt in range(attempts):
        last = dexec("public", "curl", "-sS", "--max-time", "3", "http://%s.20/" % NETS["public"], check=False)
        if last.returncode == 0:
            return last.stdout.strip()
        time.sleep(0.5)
    return "FAILED: %s" % (last.stderr.strip() if last else "")


@pytest.fixture(scope="module")
def lab():
    require_root_tools("docker")
    require(subprocess.run(["docker", "image", "inspect", _image()], capture_output=True, check=False).returncode == 0,
            "test base image missing (run make setup)")
    try:
        playbook(os.path.join(REPO, "playbooks", "lab_up.yml"))
        site()
        yield
    finally:
        playbook(os.path.join(REPO, "playbooks", "lab_down.yml"), check=False)


@pytest.mark.molecule
def test_faults_are_reported_then_repaired(lab, tmp_path):
    assert public_request() == "wgsp dummy service"
    for host in TUNNEL_HOSTS:
        st = status(host)
        assert st["status"] == "connected" and st["drift"] is False, st["summary"]
    rc, out = health()
    assert rc == 0 and "not configured: no wg0 interface" in out, out
    readme_rows_as_typed(tmp_path)

    # 1. The dummy container comes back with another address: the share's DNAT is stale.
    subprocess.run(["docker", "network", "disconnect", PREFIX + "-app", container("dummy")], check=True)
    subprocess.run(["docker", "network", "connect", "--ip", NETS["app"] + ".81", PREFIX + "-app", container("dummy")], check=True)
    st = status("share1")
    assert st["drift"] is True, st["summary"]
    share_rules = next(r for r in st["rules"] if r["name"] == "share")
    assert share_rules["containers"][0]["stale"] is True
    assert share_rules["containers"][0]["resolved"] == NETS["app"] + ".81"
    rc, out = health()
    assert rc == 2 and "share1 | FAILED" in out and "drift in wg_dnat share" in out, out
    assert site() > 0
    assert public_request() == "wgsp dummy service"
    assert status("share1")["drift"] is False

    # 2. A reboot of every tunnel host, recovered by the boot path alone: wg-quick up.
    for host in TUNNEL_HOSTS:
        subprocess.run(["docker", "restart", "-t", "1", container(host)], check=True, capture_output=True)
    assert public_request(attempts=2).startswith("FAILED")
    for host in TUNNEL_HOSTS:
        dexec(host, "wg-quick", "up", "wg0")
    assert public_request(attempts=40) == "wgsp dummy service"
    # ...and Ansible agrees nothing needs changing afterwards.
    assert site() == 0

    # 3. The share host's Docker engine (re)starts and builds its filter chains: FORWARD policy
    #    DROP, DOCKER and DOCKER-USER. An accept in our nftables table cannot override that drop.
    #    (Restarting this machine's dockerd would stop the rig itself, so what it does to the share's
    #    namespace is reproduced here.) The re-run must move the rule sets to iptables, reached
    #    from DOCKER-USER, and remove the nftables table.
    dexec("share1", "sh", "-c", "iptables -N DOCKER && iptables -N DOCKER-USER && iptables -A FORWARD -j DOCKER-USER && "
          "iptables -A DOCKER-USER -j RETURN && iptables -A FORWARD -j DOCKER && iptables -P FORWARD DROP")
    assert public_request(attempts=2).startswith("FAILED")
    st = status("share1")
    assert st["drift"] is True, st["summary"]
    assert any(r["backend"] == "iptables" and not r["present"] for r in st["rules"]), st["rules"]
    assert site() > 0
    assert public_request() == "wgsp dummy service"
    assert status("share1")["drift"] is False
    assert "wgsp" not in dexec("share1", "nft", "list", "tables").stdout

    # 4. Someone deletes the proxy's interface by hand.
    dexec("proxy1", "ip", "link", "del", "wg0")
    assert status("proxy1")["status"] == "absent"
    assert site() > 0
    assert public_request() == "wgsp dummy service"

    # 5. The hub restarts (its container: processes, interface and rules are gone).
    subprocess.run(["docker", "restart", "-t", "1", container("hub")], check=True, capture_output=True)
    assert status("hub")["status"] == "absent"
    assert site() > 0
    assert public_request() == "wgsp dummy service"

    # 6. The README's disconnect row as typed: the proxy is disconnected by one playbook. Check mode
    #    first changes nothing; then every trace of the tunnel goes (rule sets, boot scripts, config,
    #    state file; the key is kept), wg_status says "not configured", and a second run changes nothing.
    disconnect = os.path.join(REPO, "playbooks", "disconnect.yml")
    old_key = status("proxy1")["public_key"]
    out = playbook("-i", INVENTORY, "-l", "proxy1", disconnect, "--check").stdout
    assert status("proxy1")["status"] == "connected", out
    out = playbook("-i", INVENTORY, "-l", "proxy1", disconnect).stdout
    assert "proxy1: not configured: no wg0 interface" in out and re.search(r"proxy1\s*:.*failed=0", out), out
    left = dexec("proxy1", "sh", "-c", "iptables-save; nft list ruleset; ls /etc/wireguard /etc/wg-service-proxy").stdout
    assert "wgsp" not in left.lower() and ".rules" not in left, left  # rule sets and their boot scripts
    assert "wg0.conf" not in left and "wg0.json" not in left and "wg0.key" in left, left
    st = status("proxy1")
    assert st["client_mode"] == "unmanaged" and st["status"] == "absent" and st["drift"] is False, st["summary"]
    assert public_request(attempts=2).startswith("FAILED")
    rc, out = health()
    assert rc == 0, out
    out = playbook("-i", INVENTORY, "-l", "proxy1", disconnect).stdout
    assert re.search(r"proxy1\s*:.*changed=0.*failed=0", out), out
    # 7. The key goes too; the README's reconnect flow (site.yml limited to the host and the hub) gives
    #    the proxy a new key and the hub learns it: the published port answers again.
    playbook("-i", INVENTORY, "-l", "proxy1", disconnect, "-e", "disconnect_remove_key=true")
    assert "wg0.key" not in dexec("proxy1", "ls", "/etc/wireguard").stdout
    playbook("-i", INVENTORY, "-l", "proxy1:wg_server", os.path.join(REPO, "site.yml"))
    assert public_request(attempts=40) == "wgsp dummy service"
    new_key = status("proxy1")["public_key"]
    assert new_key and new_key != old_key
    assert new_key in [p["public_key"] for p in status("hub")["peers"]]
