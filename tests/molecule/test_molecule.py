"""Run every molecule scenario (check, converge, idempotence, verify) as a pytest test, so its
result is counted in the summary line of `make test`."""

import os
import subprocess
import sys

import pytest

from conftest import REPO, require, require_root_tools

SCENARIOS = sorted(
    d for d in os.listdir(os.path.join(REPO, "molecule"))
    if os.path.isfile(os.path.join(REPO, "molecule", d, "molecule.yml"))
)


def _image_tag():
    return subprocess.run(["bash", os.path.join(REPO, "tests", "image", "build.sh"), "--print-tag"],
                          capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.molecule
@pytest.mark.parametrize("scenario", SCENARIOS)
def test_molecule_scenario(scenario):
    require_root_tools("docker")
    tag = _image_tag()
    require(subprocess.run(["docker", "image", "inspect", tag], capture_output=True, check=False).returncode == 0,
            "test base image %s is missing (run make setup)" % tag)
    env = dict(os.environ)
    env.update({
        "PATH": os.path.join(REPO, ".venv", "bin") + os.pathsep + env.get("PATH", ""),
        "WGSP_TEST_IMAGE": tag,
        "NO_COLOR": "1", "PY_COLORS": "0", "ANSIBLE_FORCE_COLOR": "0", "ANSIBLE_NOCOLOR": "1",
    })
    proc = subprocess.run(["molecule", "test", "-s", scenario], cwd=REPO, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=1800, check=False)
    log = proc.stdout
    if proc.returncode != 0:
        sys.stdout.write(log[-20000:])
    assert proc.returncode == 0, "molecule test -s %s failed (rc=%d); log tail above" % (scenario, proc.returncode)
    for step in ("check", "converge", "idempotence", "verify"):
        assert "➜ %s: Executed: Successful" % step in log or "%s: Executed: Successful" % step in log, \
            "step %s did not run successfully" % step
