"""A module runner living inside one namespace host: it imports Ansible's module_utils, pyroute2 and
the collection's module_utils once, then runs each module in a forked child exactly as Ansible's
wrapper does (``python <module> <args.json>``: ``__main__``, arguments from ``sys.argv[1]``), with
the child's stdout/stderr captured. A module start costs a fork instead of a new interpreter, which
is what lets the adversarial layer try enough values on this machine.

Protocol: one JSON request per line on stdin (``{"module", "args", "cwd"}``), one JSON answer per
line on stdout (``{"rc", "stdout", "stderr"}``).
"""

import json
import os
import runpy
import sys
import tempfile
import traceback

import ansible.module_utils.basic  # noqa: F401 (imported once, before the forks)  pylint: disable=unused-import
import pyroute2  # noqa: F401  pylint: disable=unused-import
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common import checks as _common  # noqa: F401  pylint: disable=unused-import


def run_child(request, out_path, err_path):
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


def main():
    for line in sys.stdin:
        request = json.loads(line)
        fd_out, out_path = tempfile.mkstemp(dir=request["tmp"])
        fd_err, err_path = tempfile.mkstemp(dir=request["tmp"])
        os.close(fd_out)
        os.close(fd_err)
        pid = os.fork()
        if pid == 0:
            run_child(request, out_path, err_path)
        _pid, status = os.waitpid(pid, 0)
        answer = {"rc": os.waitstatus_to_exitcode(status)}
        for key, path in (("stdout", out_path), ("stderr", err_path)):
            with open(path, encoding="utf-8", errors="replace") as handle:
                answer[key] = handle.read()
            os.unlink(path)
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
