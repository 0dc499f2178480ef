"""The collection from a checkout: it resolves by FQCN and by short name, and every module's
documentation renders. The built and installed collection: tests/integration/test_packaging.py."""

import json
import os
import subprocess

import pytest

from conftest import REPO

BIN = os.path.join(REPO, ".venv", "bin")
MODULE_DIR = os.path.join(REPO, "plugins", "modules")
MODULES = sorted(f[:-3] for f in (os.listdir(MODULE_DIR) if os.path.isdir(MODULE_DIR) else [])
                 if f.endswith(".py") and not f.startswith("_"))
ENV = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1")


def _run(argv, **kw):
    return subprocess.run(argv, cwd=REPO, env=ENV, capture_output=True, text=True, check=False, **kw)


def test_ansible_doc_lists_the_collection():
    proc = _run([os.path.join(BIN, "ansible-doc"), "-l", "wgsp.service_proxy", "--json"])
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout) if proc.stdout.strip() else {}
    assert sorted(k.split(".")[-1] for k in listed) == MODULES


@pytest.mark.parametrize("module", MODULES)
def test_module_doc_renders_by_fqcn_and_short_name(module):
    for name in ("wgsp.service_proxy." + module, module):
        proc = _run([os.path.join(BIN, "ansible-doc", ), "--json", name])
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(proc.stdout)
        entry = next(iter(doc.values()))
        assert entry["doc"]["short_description"]
        assert entry["examples"].strip() and entry["return"]
