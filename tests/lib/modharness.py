"""The one harness that runs a module's ``main()`` for the tests.

Two ways to run, one set of arguments and one reading of the result:

- in-process (unit tests): ``call_main`` runs ``main()`` with only ``exit_json``/``fail_json``
  replaced; the host is faked at the command boundary by ``FakeHost`` (``CommandRunner.run`` and
  which tools exist), or by the test's own netlink/socket fake. Nothing above that boundary is mocked.
- forked, exactly as Ansible's wrapper runs a module (adversarial layer, on a real namespace host):
  ``serve`` is the loop of tests/adversarial/modrunner.py; ``module_args`` builds the argument file
  and ``last_result`` reads the module's JSON answer.
"""

import fnmatch
import json
import os
import runpy
import shutil
import sys
import tempfile
import traceback


def module_args(args, check_mode=False, diff=False, **internal):
    """The ``ANSIBLE_MODULE_ARGS`` document for ``args`` (``internal``: further ``_ansible_*`` keys)."""
    payload = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    payload.update(("_ansible_" + key, value) for key, value in internal.items())
    return {"ANSIBLE_MODULE_ARGS": payload}


def last_result(stdout):
    """The module's result: the last JSON object line it printed (None when it printed none)."""
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else None


# ------------------------------------------------------------------------------------ in-process


class Exit(Exception):
    """Raised instead of sys.exit by the patched exit_json/fail_json."""


def call_main(monkeypatch, main, args, check_mode=False, diff=False):
    """``main()`` with ``args``; returns the dict it passed to exit_json (``failed`` set by fail_json)."""
    import pytest
    from ansible.module_utils import basic

    results = {}

    def exit_json(self, **kw):
        results.update(kw)
        raise Exit()

    def fail_json(self, **kw):
        kw["failed"] = True
        results.update(kw)
        raise Exit()

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)
    document = module_args(args, check_mode=check_mode, diff=diff)
    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", json.dumps(document).encode())
    try:
        from ansible.module_utils import testing  # ansible-core >= 2.19
    except ImportError:  # older ansible-core reads _ANSIBLE_ARGS, patched above
        with pytest.raises(Exit):
            main()
    else:
        with testing.patch_module_args(document["ANSIBLE_MODULE_ARGS"]):
            with pytest.raises(Exit):
                main()
    return results


class FakeTools:
    """The tools of a faked host for ``patch_commands``: ``get_bin_path`` finds those in ``self.tools``
    (under /usr/bin) and fails, as AnsibleModule does, for a required one that is missing."""

    tools = ()

    def get_bin_path(self, module, name, required=False, opt_dirs=None):
        if name in self.tools:
            return "/usr/bin/" + name
        if required:
            module.fail_json(msg="Failed to find required executable %s" % name)
        return None


def patch_commands(monkeypatch, host):
    """Answer ``AnsibleModule.run_command`` and ``get_bin_path`` from ``host`` (its methods of the
    same names, which take the module first): the command boundary of a module that runs tools
    through AnsibleModule rather than ``CommandRunner``."""
    from ansible.module_utils import basic

    def run_command(module, argv, **kwargs):
        return host.run_command(module, argv, **kwargs)

    def get_bin_path(module, name, required=False, opt_dirs=None):
        return host.get_bin_path(module, name, required, opt_dirs)

    monkeypatch.setattr(basic.AnsibleModule, "run_command", run_command)
    monkeypatch.setattr(basic.AnsibleModule, "get_bin_path", get_bin_path)


def is_write(argv):
    """Whether a command changes (or test-loads) the firewall: a restore or an ``nft -f``/``-c`` batch."""
    return argv[0].endswith("-restore") or argv[:2] in (["nft", "-f"], ["nft", "-c"])


# A host whose firewall holds nothing yet: iptables-save prints the empty built-in chains, no nft
# table of ours exists, and one WireGuard interface listens on 51820.
EMPTY_SAVE = ("*nat\n:PREROUTING ACCEPT [0:0]\n:POSTROUTING ACCEPT [0:0]\nCOMMIT\n"
              "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n")
CLEAN_HOST = [
    (["*-save"], 0, EMPTY_SAVE, ""),
    (["wg", "show", "all", "listen-port"], 0, "wg0\t51820\n", ""),
    (["nft", "-a", "list"], 1, "", "Error: No such file or directory"),
    (["nft", "list"], 1, "", "Error: No such file or directory"),
]


class FakeHost:
    """The host behind ``CommandRunner.run``: answers each command from a table, records every argv.

    ``answers``: ``[(argv_prefix, rc, stdout, stderr), ...]`` tried before ``CLEAN_HOST``; the first
    matching prefix wins (each prefix word is a glob matched against the argv word; the first word
    is matched against the command's basename); anything else answers ``(0, "", "")``. An answer
    may carry a fifth item, the stdout once the firewall was written (the state the write made, so
    an apply's read-back sees it).
    ``missing``: the commands ``shutil.which`` does not find (default ``nft``: the iptables backend
    is chosen; ``()`` for a host with nftables). A non-zero answer to a
    ``check=True`` call raises ``CommandError``, as the real runner does.
    """

    def __init__(self, answers=(), missing=("nft",)):
        self.answers = [(list(answer[0]),) + tuple(answer[1:4]) + (answer[4] if len(answer) > 4 else answer[2],)
                        for answer in list(answers) + CLEAN_HOST]
        self.missing = tuple(missing)
        self.calls = []
        self.inputs = []

    def answer(self, argv):
        written = any(is_write(call) and "--test" not in call and "-c" not in call[1:2] for call in self.calls[:-1])
        for prefix, rc, out, err, out_written in self.answers:
            words = [os.path.basename(argv[0])] + list(argv[1:len(prefix)]) if argv else []
            if len(words) == len(prefix) and all(fnmatch.fnmatchcase(w, p) for w, p in zip(words, prefix)):
                return rc, out_written if written else out, err
        return 0, "", ""

    def install(self, monkeypatch, runner_class):
        """Patch ``runner_class.run`` (the module's ``CommandRunner``) and ``shutil.which``."""
        from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import CommandError

        host = self

        def run(self, argv, data=None, check=True, env=None):
            host.calls.append(list(argv))
            host.inputs.append(data)
            rc, out, err = host.answer(argv)
            if check and rc != 0:
                raise CommandError("%s failed (rc=%d): %s" % (argv[0], rc, err.strip()), cmd=argv, rc=rc,
                                   stdout=out, stderr=err)
            return rc, out, err

        monkeypatch.setattr(runner_class, "run", run)
        monkeypatch.setattr(shutil, "which",
                            lambda tool: None if tool in self.missing else "/usr/sbin/" + tool)
        return self

    def writes(self):
        """The commands that changed (or test-loaded) the firewall."""
        return [call for call in self.calls if is_write(call)]

    def read_firewall(self):
        """Whether the firewall was read at all (an ``*-save``)."""
        return any(call[0].endswith("-save") for call in self.calls)


def run_module(monkeypatch, module, args, host=None, ipr=None, check_mode=False, diff=False):
    """``module.main()`` with ``args`` on a faked host: ``host`` (a ``FakeHost``, default a clean host
    without nftables) answers ``module.CommandRunner``; ``ipr``, when given, is what
    ``module.IPRoute()`` returns (the netlink boundary). Returns ``(result, host)``."""
    if host is None:
        host = FakeHost()
    if hasattr(module, "CommandRunner"):
        host.install(monkeypatch, module.CommandRunner)
    if ipr is not None:
        monkeypatch.setattr(module, "IPRoute", lambda: ipr)
    return call_main(monkeypatch, module.main, args, check_mode=check_mode, diff=diff), host


# ------------------------------------------------------------------------------- forked (serve)


def _run_child(request, out_path, err_path):
    os.chdir(request["cwd"])
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(os.open(out_path, os.O_WRONLY), 1)
    os.dup2(os.open(err_path, os.O_WRONLY), 2)
    sys.argv = [request["module"], request["args"]]
    code = 0
    try:
        runpy.run_path(request["module"], run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - a traceback is what the test must see
        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def serve(requests=sys.stdin, answers=sys.stdout):
    """Run each requested module in a forked child as Ansible's wrapper does (``__main__``, arguments
    file in ``sys.argv[1]``), its stdout/stderr captured.

    Protocol: one JSON request per line (``{"module", "args", "cwd", "tmp"}``), one JSON answer per
    line (``{"rc", "stdout", "stderr"}``).
    """
    for line in requests:
        request = json.loads(line)
        fd_out, out_path = tempfile.mkstemp(dir=request["tmp"])
        fd_err, err_path = tempfile.mkstemp(dir=request["tmp"])
        os.close(fd_out)
        os.close(fd_err)
        pid = os.fork()
        if pid == 0:
            _run_child(request, out_path, err_path)
        _pid, status = os.waitpid(pid, 0)
        answer = {"rc": os.waitstatus_to_exitcode(status)}
        for key, path in (("stdout", out_path), ("stderr", err_path)):
            with open(path, encoding="utf-8", errors="replace") as handle:
                answer[key] = handle.read()
            os.unlink(path)
        answers.write(json.dumps(answer) + "\n")
        answers.flush()
