"""Helpers for the scenarios inside the test VM: commands in namespaces, modules run directly or
through ``ansible``, the scenario registry (see ``runner.py``).

The runner runs the scenarios of ``kernel_backend.py`` in order (they build on each other: one tunnel between two
network namespaces), each wrapped so that a failure is reported and the next one still runs, and prints
one ``WGSP-RESULT {json}`` line per scenario between ``WGSP-RESULTS-BEGIN`` and ``WGSP-RESULTS-END``.
``wgsp.scenarios=a,b`` on the kernel command line runs only those scenarios.
"""

import json
import os
import subprocess

from module_io import read_result, write_args  # tests/lib/module_io.py, put next to the scenarios

COLLECTIONS = "/opt/wgsp/collections"
COLLECTION = COLLECTIONS + "/ansible_collections/wgsp/service_proxy"
ANSIBLE_LIB = "/opt/wgsp-ansible"  # ansible-core only: pyroute2 is Debian's own python3-pyroute2
PYTHON = "/usr/bin/python3"
SCENARIOS = []


class ScenarioFailed(Exception):
    pass


class Skip(Exception):
    pass


def scenario(func):
    SCENARIOS.append(func)
    return func


def check(condition, message, **details):
    if not condition:
        raise ScenarioFailed(message + ("\n" + json.dumps(details, indent=1, default=str) if details else ""))


def log(*parts):
    print("  " + " ".join(str(p) for p in parts), flush=True)


def sh(argv, ns=None, check_rc=True, env=None, timeout=120, input_text=None):
    """Run a command (inside network namespace ``ns`` when given); returns CompletedProcess."""
    if ns:
        argv = ["ip", "netns", "exec", ns] + list(argv)
    run_env = dict(os.environ)
    run_env.update(env or {})
    proc = subprocess.run(argv, check=False, capture_output=True, text=True, env=run_env, timeout=timeout,
                          input=input_text)
    if check_rc and proc.returncode != 0:
        raise ScenarioFailed("command failed (rc=%d): %s\nstdout: %s\nstderr: %s" % (
            proc.returncode, " ".join(argv), proc.stdout[-3000:], proc.stderr[-3000:]))
    return proc


def module_env(extra=None):
    """The modules' environment: the collection and ansible-core; pyroute2 comes from Debian."""
    env = {"PYTHONPATH": ":".join([COLLECTIONS, ANSIBLE_LIB]), "LC_ALL": "C.UTF-8"}
    env.update(extra or {})
    return env


def run_module(name, args, ns=None, check_mode=False, diff=False, env=None):
    """Execute a module of the collection directly (as Ansible runs it on a managed host).

    ``env``: extra environment variables (e.g. a ``PATH`` with a failing ``modprobe``)."""
    path = write_args(args, "/tmp", check_mode=check_mode, diff=diff)
    try:
        proc = sh([PYTHON, "%s/plugins/modules/%s.py" % (COLLECTION, name), path], ns=ns, check_rc=False,
                  env=module_env(env))
    finally:
        os.unlink(path)
    result = read_result(proc.stdout)
    if result is None:
        raise ScenarioFailed("module %s printed no JSON (rc=%d)\nstdout: %s\nstderr: %s" % (
            name, proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
    result["_rc"] = proc.returncode
    result["_stderr"] = proc.stderr[-3000:]
    return result


def module_ok(name, args, ns=None, **kwargs):
    result = run_module(name, args, ns=ns, **kwargs)
    check(not result.get("failed") and result["_rc"] == 0, "module %s failed in %s" % (name, ns), result=result)
    return result


def ansible_adhoc(module, args, ns=None, extra=(), timeout=300):
    """``ansible localhost -c local -m <module>`` with ansible-core from /opt/wgsp-ansible."""
    argv = [PYTHON, "-m", "ansible.cli.adhoc", "localhost", "-c", "local", "-i", "localhost,",
            "-e", "ansible_python_interpreter=%s" % PYTHON, "-m", module, "-a", json.dumps(args)] + list(extra)
    env = module_env()
    env.update({"ANSIBLE_COLLECTIONS_PATH": COLLECTIONS, "ANSIBLE_NOCOLOR": "1", "ANSIBLE_FORCE_COLOR": "0",
                "ANSIBLE_LOCAL_TEMP": "/tmp/ansible-local", "ANSIBLE_REMOTE_TMP": "/tmp/ansible-remote",
                "ANSIBLE_HOME": "/tmp/ansible-home", "ANSIBLE_CONFIG": "/tmp/ansible-vm.cfg"})
    if not os.path.exists(env["ANSIBLE_CONFIG"]):
        with open(env["ANSIBLE_CONFIG"], "w", encoding="ascii") as handle:
            handle.write("[defaults]\ninterpreter_python = %s\n" % PYTHON)
    return sh(argv, ns=ns, check_rc=False, env=env, timeout=timeout)
