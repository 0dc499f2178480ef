"""The collection as users get it: it builds into a clean tarball, resolves by FQCN and by short
name from a checkout, and every module's documentation renders."""

import json
import os
import subprocess
import tarfile

import pytest

from conftest import REPO

BIN = os.path.join(REPO, ".venv", "bin")
MODULE_DIR = os.path.join(REPO, "plugins", "modules")
MODULES = sorted(f[:-3] for f in (os.listdir(MODULE_DIR) if os.path.isdir(MODULE_DIR) else [])
                 if f.endswith(".py") and not f.startswith("_"))
ENV = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1")


def _run(argv, **kw):
    return subprocess.run(argv, cwd=REPO, env=ENV, capture_output=True, text=True, check=False, **kw)


def test_build_excludes_scratch(tmp_path):
    proc = _run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--force",
                 "--output-path", str(tmp_path)])
    assert proc.returncode == 0, proc.stderr
    tarballs = list(tmp_path.glob("wgsp-service_proxy-*.tar.gz"))
    assert len(tarballs) == 1
    with tarfile.open(tarballs[0]) as tar:
        names = tar.getnames()
    assert "galaxy.yml" not in names  # replaced by MANIFEST.json
    assert "MANIFEST.json" in names and "meta/runtime.yml" in names
    for bad in (".venv", ".git", "collections", ".pytest_cache"):
        assert not any(n == bad or n.startswith(bad + "/") for n in names), bad
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    for module in MODULES:
        assert "plugins/modules/%s.py" % module in names


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
