"""Shared pytest set-up: the test-host rig and the CI rule that nothing is skipped for a missing tool."""

import os
import shutil
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "lib"))
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(REPO, "collections")
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require(condition, reason):
    """Skip on a developer laptop, fail in CI: a missing prerequisite must never pass silently there."""
    if condition:
        return
    if IN_CI:
        pytest.fail("prerequisite missing in CI: %s" % reason)
    pytest.skip(reason)


def require_root_tools(*tools):
    require(os.geteuid() == 0, "integration tests need root (network namespaces)")
    for tool in tools:
        require(shutil.which(tool) is not None, "%s is not installed (run make setup)" % tool)


@pytest.fixture
def lab():
    """A fresh set of namespace test hosts, removed afterwards even when the test fails."""
    require_root_tools("unshare", "nsenter", "ip")
    from rig import Lab

    the_lab = Lab()
    try:
        yield the_lab
    finally:
        the_lab.close()


# CI fails on any skip: `require()` already fails a missing prerequisite there, and this catches every
# other way a test can end up skipped (pytest.skip, importorskip, a skip marker, a module-level skip).
# Expected failures (xfail) are not skips; deselected tests (-k, -m) are not run at all.
_SKIPPED = []


def pytest_sessionstart(session):
    del _SKIPPED[:]


def pytest_collectreport(report):
    if report.skipped:
        _SKIPPED.append(report.nodeid)


def pytest_runtest_logreport(report):
    if report.skipped and not hasattr(report, "wasxfail"):
        _SKIPPED.append(report.nodeid)


def pytest_sessionfinish(session, exitstatus):
    # (NO_TESTS_COLLECTED: every module was skipped)
    if IN_CI and _SKIPPED and exitstatus in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter):
    if IN_CI and _SKIPPED:
        terminalreporter.write_line("CI=true: %d skipped, which fails the run: %s" % (len(_SKIPPED), ", ".join(sorted(_SKIPPED))),
                                    red=True, bold=True)


@pytest.fixture(autouse=True)
def _stdin_stays_blocking():
    """Fail the test that leaves the run's standard input non-blocking. pytest gives every test the
    same /dev/null as fd 0; a child that inherits it and is killed before it restores the flag (ssh
    on a timeout) leaves O_NONBLOCK on it, and every later ansible in the run then refuses to start
    ("Ansible requires blocking IO"), failing tests far from the cause. Restored here either way."""
    yield
    try:
        blocking = os.get_blocking(0)
    except OSError:  # no fd 0 at all
        return
    if not blocking:
        os.set_blocking(0, True)
        pytest.fail("this test left standard input non-blocking (a child that inherited it was killed "
                    "mid-session): give the child stdin=subprocess.DEVNULL or input=", pytrace=False)


@pytest.fixture(autouse=True)
def _boot_script_records(request, tmp_path_factory, monkeypatch):
    """Unit tests run module code in this process: its boot-script records go to a temporary
    directory, never to the machine's /var/lib/wgsp-service-proxy. (Here, not in tests/unit/conftest.py:
    tests import this file as ``conftest``, and a second one would shadow it.)"""
    if "unit" not in request.node.path.parts:
        yield None
        return
    from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall import persist as _fw_persist

    path = str(tmp_path_factory.mktemp("records") / "boot-scripts")
    monkeypatch.setattr(_fw_persist, "RECORD_DIR", path)
    yield path
