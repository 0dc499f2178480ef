"""tests/conftest.py's CI rule: with CI=true a run that skipped anything fails (exit status 1), whatever
made the test skip; without CI a skip stays a skip. Each case is a real pytest run in a subprocess
that loads tests/conftest.py as a plugin."""

import os
import subprocess
import sys

from conftest import REPO

CASES = {
    "test_skip_call.py": "import pytest\n\ndef test_ok():\n    pass\n\ndef test_skip():\n    pytest.skip('no tool')\n",
    "test_skip_module.py": "import pytest\n\npytest.importorskip('wgsp_no_such_module')\n\ndef test_never():\n    pass\n",
    "test_skip_marker.py": "import pytest\n\n@pytest.mark.skip(reason='later')\ndef test_marked():\n    pass\n",
    "test_require.py": "from conftest import require\n\ndef test_tool():\n    require(False, 'tool missing')\n",
    "test_passes.py": ("import pytest\n\ndef test_ok():\n    pass\n\n"
                       "@pytest.mark.xfail(reason='known', strict=True)\ndef test_known():\n    assert False\n"),
}


SKIPS = ["test_skip_call.py", "test_skip_module.py", "test_skip_marker.py"]


def _pytest(tmp_path, names, ci):
    for name in names:
        (tmp_path / name).write_text(CASES[name])
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "PYTEST_ADDOPTS")}
    env["PYTHONPATH"] = os.path.join(REPO, "tests")
    if ci:
        env["CI"] = "true"
    proc = subprocess.run([sys.executable, "-m", "pytest", "-p", "conftest", "-p", "no:cacheprovider", "-q",
                           "-c", str(tmp_path / "pytest.ini"), "--rootdir", str(tmp_path)]
                          + [str(tmp_path / name) for name in names],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, check=False, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


def test_any_skip_fails_the_run_in_ci_only(tmp_path):
    rc, out = _pytest(tmp_path, SKIPS, ci=False)
    assert rc == 0 and "1 passed, 3 skipped" in out and "which fails the run" not in out, out
    rc, out = _pytest(tmp_path, SKIPS, ci=True)
    assert rc == 1 and "1 passed, 3 skipped" in out, out
    assert ("CI=true: 3 skipped, which fails the run: test_skip_call.py::test_skip, "
            "test_skip_marker.py::test_marked, test_skip_module.py") in out, out


def test_a_run_that_only_skipped_fails_in_ci(tmp_path):
    rc, out = _pytest(tmp_path, ["test_skip_module.py"], ci=True)
    assert rc == 1 and "1 skipped" in out, out


def test_require_fails_the_test_in_ci(tmp_path):
    rc, out = _pytest(tmp_path, ["test_require.py"], ci=True)
    assert rc == 1 and "1 failed" in out and "prerequisite missing in CI: tool missing" in out, out


def test_passes_and_expected_failures_pass_in_ci(tmp_path):
    rc, out = _pytest(tmp_path, ["test_passes.py"], ci=True)
    assert rc == 0 and "1 passed, 1 xfailed" in out and "which fails the run" not in out, out
