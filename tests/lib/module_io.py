"""How a test runs one of the collection's modules directly, the way Ansible runs it on a managed host:
the arguments file in, the JSON result out.

Standard library only: the namespace rig (``rig.py``) and the VM scenarios (``tests/vm/qemu_vm.py``
puts this file next to them in the VM) both use it.
"""

import json
import os
import tempfile


def write_args(args, tmpdir, check_mode=False, diff=False):
    """Write ``{"ANSIBLE_MODULE_ARGS": ...}`` (with the ``_ansible_*`` keys Ansible adds) to a new file
    in ``tmpdir``; returns its path (the caller removes it)."""
    payload = dict(args)
    payload.update({"_ansible_check_mode": check_mode, "_ansible_diff": diff, "_ansible_tmpdir": tmpdir,
                    "_ansible_remote_tmp": tmpdir, "_ansible_keep_remote_files": False})
    fd, path = tempfile.mkstemp(prefix="args-", suffix=".json", dir=tmpdir)
    with os.fdopen(fd, "w") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": payload}, handle)
    return path


def read_result(stdout):
    """The module's result: the last line of ``stdout`` that is a JSON object; ``None`` when none is."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None
