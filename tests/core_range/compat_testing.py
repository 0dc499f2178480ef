"""pytest plugin loaded by run.sh (``-p compat_testing``): ``ansible.module_utils.testing.patch_module_args``
on ansible-core releases that predate it (< 2.19).

Test helper only, never seen by the collection's plugins: tests/unit/plugins/modules/test_wg_interface.py
imports ``patch_module_args`` (new in ansible-core 2.19). Before 2.19 ``AnsibleModule`` read its arguments
from ``basic._ANSIBLE_ARGS``, which is exactly what this stand-in sets (the same fallback as
tests/lib/modharness.py). On 2.19 and later this plugin does nothing.
"""

import contextlib
import importlib.util
import json
import sys
import types

if importlib.util.find_spec("ansible.module_utils.testing") is None:  # ansible-core < 2.19
    import ansible.module_utils
    from ansible.module_utils import basic

    @contextlib.contextmanager
    def patch_module_args(args=None):
        saved = basic._ANSIBLE_ARGS
        basic._ANSIBLE_ARGS = json.dumps({"ANSIBLE_MODULE_ARGS": args or {}}).encode()
        try:
            yield
        finally:
            basic._ANSIBLE_ARGS = saved

    _module = types.ModuleType("ansible.module_utils.testing", __doc__)
    _module.patch_module_args = patch_module_args
    sys.modules["ansible.module_utils.testing"] = _module
    ansible.module_utils.testing = _module
