"""Run a module's ``main()`` in-process with given arguments and capture its result.

Only ``exit_json``/``fail_json`` are replaced; everything the module does before is real (the
tests patch their own command/netlink/socket boundary).
"""

import json

import pytest

from ansible.module_utils import basic


class Exit(Exception):
    """Raised instead of sys.exit by the patched exit_json/fail_json."""


def call_main(monkeypatch, main, args, check_mode=False, diff=False):
    """``main()`` with ``args``; returns the dict it passed to exit_json (``failed`` set by fail_json)."""
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
    payload = dict(args, _ansible_check_mode=check_mode, _ansible_diff=diff)
    monkeypatch.setattr(basic, "_ANSIBLE_ARGS", json.dumps({"ANSIBLE_MODULE_ARGS": payload}).encode())
    try:
        from ansible.module_utils import testing  # ansible-core >= 2.19
    except ImportError:  # older ansible-core reads _ANSIBLE_ARGS, patched above
        with pytest.raises(Exit):
            main()
    else:
        with testing.patch_module_args(payload):
            with pytest.raises(Exit):
                main()
    return results
