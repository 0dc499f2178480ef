"""A module runner living inside one namespace host: it imports Ansible's module_utils, pyroute2 and
the collection's module_utils once, then runs each module in a forked child exactly as Ansible's
wrapper does (the loop is ``modharness.serve``, the one module-run harness of the tests). A module
start costs a fork instead of a new interpreter, which is what lets the adversarial layer try enough
values on this machine.
"""

import os
import sys

import ansible.module_utils.basic  # noqa: F401 (imported once, before the forks)  pylint: disable=unused-import
import pyroute2  # noqa: F401  pylint: disable=unused-import
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common import checks as _common  # noqa: F401  pylint: disable=unused-import

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "lib"))
from modharness import serve  # noqa: E402

if __name__ == "__main__":
    serve()
