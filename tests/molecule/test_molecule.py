"""Run every molecule scenario (check, converge, idempotence, verify) as a pytest test, so its
result is counted in the summary line of `make test`."""

import os
import subprocess
import sys

import pytest

from conftest import REPO, require, require_root_tools
from hostnets import check, molecule_subnets

SCENARIOS = sorted(
    d for d in os.listdir(os.path.join(REPO, "molecule"))
    if os.path.isfile(os.path.join(REPO, "molecule", d, "molecule.yml"))
)
# The Debian releases of the container hosts (tests/image/build.sh --release). `default` (the seed
# topology) runs on every release; the other scenarios (mesh) run on bookworm only, to keep CI time
# down: default already puts every role through check, converge, idempotence and verify on each release.
RELEASES = ("bookworm", "trixie")
ALL_RELEASE_SCENARIOS = {"default"}
CASES = [
    pytest.param(scenario, release, id="%s-%s" % (scenario, release))
    for scenario in SCENARIOS
    for release in (RELEASES if scenario in ALL_RELEASE_SCENARIOS else RELEASES[:1])
]


def _image_tag(release):
    return subprocess.run(["bash", os.path.join(REPO, "tests", "image", "build.sh"), "--release", release,
                           "--print-tag"], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.molecule
@pytest.mark.parametrize(("scenario", "release"), CASES)
def test_molecule_scenario(scenario, release):
    require_root_tools("docker")
    tag = _image_tag(release)
    require(subprocess.run(["docker", "image", "inspect", tag], capture_output=True, check=False).returncode == 0,
            "test base image %s is missing (run make setup)" % tag)
    check(molecule_subnets(REPO, scenario).values())  # never a bridge over this machine's own networks
    env = dict(os.environ)
    env.update({
        "PATH": os.path.join(REPO, ".venv", "bin") + os.pathsep + env.get("PATH", ""),
        "WGSP_TEST_IMAGE": tag,
        "NO_COLOR": "1", "PY_COLORS": "0", "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1",
    })
    proc = subprocess.run(["molecule", "test", "-s", scenario], cwd=REPO, env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1800, check=False)
    log = proc.stdout
    if proc.returncode != 0:
        sys.stdout.write(log[-20000:])
    assert proc.returncode == 0, "molecule test -s %s on %s failed (rc=%d); log tail above" % (
        scenario, tag, proc.returncode)
    for line in log.splitlines():  # figures the scenario measures (pytest -s shows them; -rP in the summary)
        if "under traffic:" in line:
            print("%s-%s %s" % (scenario, release, line.split("under traffic:", 1)[1].strip().strip('"').replace('\\"', '"')))
    if scenario == "default":  # the UDP range went through, port by port (a skipped play would pass silently)
        task = log.find("TASK [Assert only the port mapped to the listening one answered")
        assert task >= 0 and "ok: [wgsp-mol-public]" in log[task:task + 400], "the UDP range was not verified"
        task = log.find("TASK [Assert proxy1's preshared key with the hub is the vaulted one")
        assert task >= 0 and all("ok: [%s]" % h in log[task:task + 800] for h in ("wgsp-mol-hub", "wgsp-mol-proxy1")), \
            "the vaulted preshared key was not verified on both ends"
        for name, host in (("Assert the share answered over IPv6 through the hub", "wgsp-mol-proxy1"),
                           ("Assert the page came back over the IPv6 publish", "wgsp-mol-public"),
                           ("Assert the IPv4 targets answered over IPv6 through the relay", "wgsp-mol-public"),
                           ("Assert the relay set is reported in sync", "wgsp-mol-proxy1"),
                           ("Assert nothing of the relay is left", "wgsp-mol-proxy1"),
                           ("Assert the hub dropped it over IPv6", "wgsp-mol-share1")):
            task = log.find("TASK [%s" % name)  # the dual-stack tunnel: access, publish and isolation over IPv6
            assert task >= 0 and "ok: [%s]" % host in log[task:task + 400], "not verified: %s" % name
    for step in ("check", "converge", "idempotence", "verify"):
        assert "➜ %s: Executed: Successful" % step in log or "%s: Executed: Successful" % step in log, \
            "step %s did not run successfully" % step
