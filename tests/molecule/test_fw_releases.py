"""wg_dnat and wg_filter on each Debian release's own iptables and nft, in a container of its test
base image (Debian 12: iptables 1.8.9, nft 1.0.6; Debian 13: iptables 1.8.11, nft 1.1.3).

The namespace tests (tests/integration) use this machine's tools, and molecule/default reaches only
the iptables backend (``auto`` picks it on a Docker host). Both parse what the tools print, and
that output changes between releases (nft 1.1 lists a packet limit's default burst, which broke
wg_filter's read-back on Debian 13). So here every set goes, on each release and backend, through
check mode, apply, re-run, the boot script after a wipe, a smaller set and absent, beside rules of
others. The container has no network (``--network none``); the modules run in it as Ansible runs
them (the controller's ``ansible.module_utils`` and this checkout, mounted read-only).
"""

import json
import os
import subprocess
import uuid

import pytest

from conftest import REPO, require, require_root_tools

RELEASES = ("bookworm", "trixie")
PUBLIC = {"name": "public", "in_interface": "eth1", "out_interface": "wg0", "masquerade": True,
          "sources": ["203.0.113.0/24"],
          "rules": [{"port": 80, "to_address": "10.7.0.2"},
                    {"proto": "udp", "port": "5000-5010", "to_address": "10.7.0.2", "log": True},
                    {"proto": "both", "port": 8443, "to_address": "fd00:7::2", "to_port": 443,
                     "sources": ["2001:db8::/32"]},
                    {"port": 6000, "to_address": "10.7.0.9", "to_port": 7000},
                    # remapped ranges, port by port: iptables' /base shift, an nft map (each listed back as rendered)
                    {"proto": "udp", "port": "30000-30003", "to_address": "10.7.0.2", "to_port": "40000-40003"},
                    {"proto": "tcp", "port": "31000-31001", "to_address": "fd00:7::2", "to_port": "41000-41001",
                     "sources": ["2001:db8::/32"]}]}
ISOLATE = {"name": "isolate", "hook": "forward", "in_interface": "wg0", "out_interface": "wg0", "policy": "drop",
           "log": True, "allow": [{"proto": "tcp", "port": 80, "sources": ["10.7.0.3"], "destinations": ["10.7.0.2"]},
                                  {"proto": "udp", "port": "53-54", "destinations": ["fd00:7::2"]}]}
INPUT = {"name": "input", "hook": "input", "in_interface": "wg0", "policy": "reject", "log": True,
         "allow": [{"proto": "tcp", "port": 22}, {"proto": "icmp"}]}
# a proxy's access log: forward to wg0 from any interface, logged new connections, no verdict
ACCESS = {"name": "access", "hook": "forward", "out_interface": "wg0", "established": False, "policy": "continue",
          "log_accepted": True, "allow": [{"proto": "tcp", "port": 80, "destinations": ["10.7.0.2"]},
                                          {"proto": "udp", "port": "5000-5010", "destinations": ["fd00:7::2"]}]}
SETS = (("wg_dnat", PUBLIC, "rules"), ("wg_filter", ISOLATE, "allow"), ("wg_filter", INPUT, "allow"),
        ("wg_filter", ACCESS, "allow"))
# Rules of others in every table the sets touch (iptables-nft creates a table or base chain on
# first use, so they also make "absent" comparable byte for byte), Docker's DOCKER-USER included.
FOREIGN = ("iptables -N DOCKER-USER; iptables -A DOCKER-USER -j RETURN; iptables -A FORWARD -j DOCKER-USER; "
           "iptables -A FORWARD -i br-x -j ACCEPT; iptables -A INPUT -p tcp --dport 9 -j ACCEPT; "
           "iptables -t nat -A PREROUTING -p tcp --dport 22 -j DNAT --to-destination 10.0.0.9; "
           "iptables -t nat -A POSTROUTING -s 172.17.0.0/16 -j MASQUERADE; "
           "ip6tables -A FORWARD -s 2001:db8:1::/48 -j ACCEPT; ip6tables -A INPUT -p tcp --dport 9 -j ACCEPT; "
           "ip6tables -t nat -A POSTROUTING -s fd00:9::/64 -j MASQUERADE; "
           "nft add table inet other; nft add chain inet other fw '{ type filter hook forward priority 0; }'; "
           "nft add rule inet other fw tcp dport 9 limit rate 3/second accept")


def _image_tag(release):
    return subprocess.run(["bash", os.path.join(REPO, "tests", "image", "build.sh"), "--release", release,
                           "--print-tag"], capture_output=True, text=True, check=True).stdout.strip()


def _ansible_package():
    """The controller's ``ansible`` package (this pytest's, from .venv): its module_utils go to the host."""
    try:
        import ansible.module_utils.basic  # noqa: F401  pylint: disable=unused-import
    except ImportError:
        return None
    return os.path.dirname(os.path.abspath(ansible.__file__))


class Box:
    """One container of the test base image: no network, NET_ADMIN for its own rulesets."""

    def __init__(self, tag):
        self.name = "wgsp-fwrel-%s" % uuid.uuid4().hex[:6]
        package = _ansible_package()
        require(package is not None, "ansible-core in the Python running pytest (make setup)")
        subprocess.run(["docker", "run", "-d", "--name", self.name, "--network", "none", "--cap-add", "NET_ADMIN",
                        "-e", "PYTHONDONTWRITEBYTECODE=1",
                        "-e", "PYTHONPATH=/opt/wgsp-ansible:%s" % os.path.join(REPO, "collections"),
                        "-v", "%s:/opt/wgsp-ansible/ansible:ro" % package,
                        "-v", "%s:%s:ro" % (REPO, REPO), tag, "sleep", "infinity"],
                       check=True, capture_output=True, text=True, timeout=60)

    def close(self):
        subprocess.run(["docker", "rm", "-f", self.name], capture_output=True, timeout=60, check=False)

    def sh(self, script, check=True, data=None):
        proc = subprocess.run(["docker", "exec", "-i", self.name, "sh", "-c", script], input=data,
                              capture_output=True, text=True, timeout=120, check=False)
        if check and proc.returncode != 0:
            raise AssertionError("[%s] %s: rc=%d\n%s%s" % (self.name, script, proc.returncode, proc.stdout, proc.stderr))
        return proc.stdout

    def module(self, module, args, check_mode=False):
        payload = dict(args, _ansible_check_mode=check_mode, _ansible_diff=True, _ansible_tmpdir="/tmp",
                       _ansible_remote_tmp="/tmp", _ansible_keep_remote_files=False)
        self.sh("cat > /tmp/args.json", data=json.dumps({"ANSIBLE_MODULE_ARGS": payload}))
        out = self.sh("python3 %s /tmp/args.json" % os.path.join(REPO, "plugins", "modules", module + ".py"),
                      check=False)
        result = json.loads(out.strip().splitlines()[-1])
        assert not result.get("failed"), (module, args, result.get("msg"), result.get("drift"))
        return result

    def snapshot(self):
        """Every ruleset the tools print, counters stripped."""
        return self.sh("iptables-save | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//'; "
                       "ip6tables-save | grep -v '^#' | sed 's/\\[[0-9]*:[0-9]*\\]//'; "
                       "nft list table inet other | sed 's/packets [0-9]* bytes [0-9]*//'")

    def state(self):
        """``snapshot`` plus our nft tables. (All of ``nft list ruleset`` would not do: it lists
        iptables-nft's chains in creation order, which a restore by the boot script changes.)"""
        return self.snapshot() + self.sh(
            "for t in $(nft list tables | sed -n 's/^table inet \\(wgsp-[a-z]*-[a-z0-9_]*\\)$/\\1/p'); do "
            "nft list table inet $t | sed 's/packets [0-9]* bytes [0-9]*//'; done")


WIPE = {"iptables": ("for t in nat filter; do for f in iptables ip6tables; do "
                     "$f-save -t $t | grep -E '^-A [A-Z-]+ ' | grep -v '^-A WGSP-' | grep wgsp | sed 's/^-A/-D/' | while read -r l; do eval $f -t $t $l; done; "
                     "for c in $($f-save -t $t | sed -n 's/^:\\(WGSP-[A-Z0-9-]*\\) .*/\\1/p'); do $f -t $t -F $c; $f -t $t -X $c; done; "
                     "done; done"),
        "nftables": "for t in $(nft list tables | sed -n 's/^table inet \\(wgsp-[a-z]*-[a-z0-9_]*\\)$/\\1/p'); do nft delete table inet $t; done"}


@pytest.mark.molecule
@pytest.mark.parametrize("backend", ["iptables", "nftables"])
@pytest.mark.parametrize("release", RELEASES)
def test_firewall_sets_on_the_release_tools(release, backend):
    require_root_tools("docker")
    tag = _image_tag(release)
    require(subprocess.run(["docker", "image", "inspect", tag], capture_output=True, check=False).returncode == 0,
            "test base image %s is missing (run make setup)" % tag)
    box = Box(tag)
    try:
        box.sh(FOREIGN)
        others = box.snapshot()
        for module, base, items in SETS:
            path = "/etc/wg-service-proxy/%s.rules" % base["name"]
            params = dict(base, backend=backend, persist_path=path)
            where = "%s %s %s/%s" % (release, backend, module, base["name"])

            check = box.module(module, params, check_mode=True)
            assert check["changed"] and box.snapshot() == others, where
            first = box.module(module, params)
            assert first["changed"] and first["applied"] and first["persist_path"]["changed"], where
            applied = box.state()
            again = box.module(module, params)
            assert again["changed"] is False and again["plan"] == [], (where, again["plan"])
            assert box.module(module, params, check_mode=True)["changed"] is False, where

            # reboot path: the set wiped, the boot script alone restores it; the module agrees
            box.sh(WIPE[backend])
            assert "wgsp" not in box.sh("iptables-save; ip6tables-save; nft list ruleset").lower(), where
            box.sh("sh %s && sh %s" % (path, path))
            assert box.state() == applied, where
            assert box.module(module, params)["changed"] is False, where

            fewer = dict(params, **{items: params[items][:1]})
            assert box.module(module, fewer)["changed"], where
            assert box.module(module, fewer)["changed"] is False, where
            gone = box.module(module, {"name": base["name"], "backend": backend, "state": "absent",
                                       "persist_path": path})
            assert gone["changed"] and gone["persist_path"]["changed"], where
            box.sh("test ! -e %s" % path)
            assert box.snapshot() == others, where
            assert "wgsp" not in box.sh("nft list ruleset").lower(), where
            assert box.module(module, {"name": base["name"], "backend": backend, "state": "absent"})["changed"] is False
    finally:
        box.close()
