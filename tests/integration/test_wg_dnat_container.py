"""to_container: a real container (the test base image) on an internal Docker network, resolved
through the Docker API; re-connecting it with another address makes a re-run update the rule."""

import json
import os
import shutil
import subprocess
import uuid

from conftest import REPO, require, require_root_tools


def docker(*argv, check=True):
    proc = subprocess.run(["docker", *argv], capture_output=True, text=True, timeout=60, check=False)
    if check and proc.returncode != 0:
        raise AssertionError("docker %s: %s" % (" ".join(argv), proc.stderr))
    return proc


def image_tag():
    script = os.path.join(REPO, "tests", "image", "build.sh")
    if not os.path.exists(script):
        return None
    return subprocess.run(["bash", script, "--print-tag"], capture_output=True, text=True,
                          check=False).stdout.strip() or None


def test_to_container_follows_the_container_address(lab):
    require_root_tools("iptables")
    require(shutil.which("docker") is not None and docker("info", check=False).returncode == 0,
            "a running Docker engine (make setup starts one)")
    tag = image_tag()
    require(tag is not None and docker("image", "inspect", tag, check=False).returncode == 0,
            "the test base image (bash tests/image/build.sh)")
    suffix = uuid.uuid4().hex[:6]
    network, container = "wgsp-dnat-%s" % suffix, "wgsp-dummy-%s" % suffix
    try:
        docker("network", "create", "--internal", "--subnet", "172.29.%d.0/24" % (int(suffix[:2], 16) % 250),
               network)
        subnet = json.loads(docker("network", "inspect", network).stdout)[0]["IPAM"]["Config"][0]["Subnet"]
        base = subnet.rsplit(".", 1)[0]
        docker("run", "-d", "--name", container, "--network", network, "--ip", base + ".10", tag)
        host = lab.host("share")
        args = {"name": "share", "backend": "iptables", "in_interface": "wg0", "docker_network": network,
                "compact_rules": ["%s:tcp:80" % container], "rules": [{"proto": "udp", "port": 53, "to_container": container}]}
        first = host.module("wg_dnat", args)
        assert first["changed"], first
        assert first["rules"][1]["to_address"] == base + ".10" and first["rules"][1]["to_container"] == container
        assert first["rules"][1]["docker_network"] == network
        assert "--to-destination %s.10" % base in host.run("iptables -t nat -S WGSP-SHARE-PRE").stdout
        assert host.module("wg_dnat", args)["changed"] is False

        docker("network", "disconnect", network, container)
        docker("network", "connect", "--ip", base + ".11", network, container)
        moved = host.module("wg_dnat", args)
        assert moved["changed"] and moved["rules"][0]["to_address"] == base + ".11"
        rules = host.run("iptables -t nat -S WGSP-SHARE-PRE").stdout
        assert "%s.11" % base in rules and "%s.10" % base not in rules
        assert any(m[4] == base + ".10" for m in moved["stale"])

        unknown = host.module("wg_dnat", dict(args, compact_rules=["nosuch-%s:80" % suffix], rules=[]))
        assert unknown["failed"] and container in unknown["msg"] and "existing containers" in unknown["msg"]
    finally:
        docker("rm", "-f", container, check=False)
        docker("network", "rm", network, check=False)
