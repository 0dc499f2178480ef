"""The collection as it is published: `ansible-galaxy collection build`, then `install` of the tarball
into an empty collections path, then everything a user runs resolves from that path alone (the site
playbook's syntax check, ansible-doc of every module, filter and role); the tarball carries only what
users need; and an execution environment built from it (`ansible-builder create`) gets the
collection's Python and system requirements.

Galaxy is not reachable here, so the one dependency (community.docker) comes from the `ansible`
package installed in the venv: `install --offline` resolves the declared dependency against the
collections already installed (it fails when the declared one is missing, which the test checks too),
and ansible-core finds the venv's bundled collections on its Python path. The checkout itself is kept
out of sight: no repository ansible.cfg (its collections path links back to the checkout), a working
directory outside it, and every resolved file is checked to come from the install path.
"""

import ast
import glob
import json
import os
import re
import subprocess
import sys
import tarfile

import pytest
import yaml

from conftest import REPO, require

BIN = os.path.join(REPO, ".venv", "bin")
TOOL = {name: os.path.join(BIN, name) for name in
        ("ansible-galaxy", "ansible-playbook", "ansible-doc", "ansible-builder")}
MODULES = sorted(os.path.basename(f)[:-3] for f in glob.glob(os.path.join(REPO, "plugins", "modules", "*.py")))
ROLES = sorted(os.path.basename(os.path.dirname(os.path.dirname(f)))
               for f in glob.glob(os.path.join(REPO, "roles", "*", "meta", "argument_specs.yml")))

# Top-level entries of the tarball: what users need, nothing else.
SHIPPED = {"MANIFEST.json", "FILES.json", "README.md", "meta", "plugins", "roles", "playbooks",
           "inventories", "docs", "bin", "changelogs"}
# Paths that must never be in it (development, tests, the demo lab that needs containers).
NOT_SHIPPED = ("tests", "bench", "molecule", "scripts", ".venv", "collections", "Makefile", "ansible.cfg",
               "pytest.ini", "requirements.txt", "requirements-system.txt", "site.yml", ".git",
               "playbooks/lab_up.yml", "playbooks/lab_down.yml", "inventories/lab", "changelogs/fragments")


def _run(argv, cwd, env):
    return subprocess.run(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, check=False,
                          timeout=600)


def _isolated_env(work, collections_path, scan_sys_path=True):
    """Ansible as a user with only `collections_path` (plus the venv's bundled collections) sees it."""
    cfg = os.path.join(work, "ansible.cfg")
    if not os.path.exists(cfg):
        with open(cfg, "w") as f:
            f.write("[defaults]\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_") and k != "PYTHONPATH"}
    env.update(ANSIBLE_CONFIG=cfg, ANSIBLE_COLLECTIONS_PATH=collections_path, ANSIBLE_NOCOLOR="1",
               ANSIBLE_COLLECTIONS_SCAN_SYS_PATH="true" if scan_sys_path else "false",
               ANSIBLE_LOCAL_TEMP=os.path.join(work, "tmp"), HOME=work)
    env["PATH"] = BIN + os.pathsep + env.get("PATH", "")
    return env


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    proc = _run([TOOL["ansible-galaxy"], "collection", "build", "--output-path", str(out)], REPO,
                dict(os.environ, ANSIBLE_NOCOLOR="1"))
    assert proc.returncode == 0, proc.stderr
    tarballs = list(out.glob("wgsp-service_proxy-*.tar.gz"))
    assert len(tarballs) == 1, tarballs
    return str(tarballs[0])


@pytest.fixture(scope="module")
def installed(built, tmp_path_factory):
    """(work dir, env, install root of wgsp.service_proxy) after `install --offline` into an empty path."""
    work = str(tmp_path_factory.mktemp("user"))
    path = os.path.join(work, "collections")
    env = _isolated_env(work, path)
    proc = _run([TOOL["ansible-galaxy"], "collection", "install", "--offline", "-p", path, built], work, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    root = os.path.join(path, "ansible_collections", "wgsp", "service_proxy")
    assert os.path.isfile(os.path.join(root, "MANIFEST.json")), proc.stdout
    return work, env, root


def _names(tarball):
    with tarfile.open(tarball) as tar:
        return tar.getnames()


def test_tarball_ships_only_what_users_need(built):
    names = _names(built)
    assert {n.split("/")[0] for n in names} <= SHIPPED
    for bad in NOT_SHIPPED:
        assert not any(n == bad or n.startswith(bad + "/") for n in names), bad
    assert not any("__pycache__" in n or n.endswith(".pyc") for n in names)
    for need in (["meta/runtime.yml", "meta/execution-environment.yml", "meta/ee-requirements.txt",
                  "meta/ee-bindep.txt", "playbooks/site.yml", "README.md", "changelogs/changelog.yaml"]
                 + ["plugins/modules/%s.py" % m for m in MODULES]
                 + ["roles/%s/meta/argument_specs.yml" % r for r in ROLES]):
        assert need in names, need


def _fqcns_used(root):
    """Collection names of every `namespace.collection.name` task keyword or role in the YAML shipped."""
    used = set()
    for path in glob.glob(os.path.join(root, "**", "*.yml"), recursive=True):
        with open(path) as f:
            text = f.read()
        used.update(re.findall(r"^\s*-?\s*(?:role:\s*)?([a-z_]+\.[a-z_]+)\.[a-z_0-9]+:?\s*$", text, re.M))
        used.update(re.findall(r"^\s*-?\s*([a-z_]+\.[a-z_]+)\.[a-z_0-9]+:", text, re.M))
    return used - {"ansible.builtin", "wgsp.service_proxy"}


def test_manifest_declares_every_collection_the_content_uses(built, installed):
    _work, _env, root = installed
    with open(os.path.join(root, "MANIFEST.json")) as f:
        declared = set(json.load(f)["collection_info"]["dependencies"])
    used = _fqcns_used(root)
    assert "community.docker" in used  # proxy_client's docker_network_info: the scan sees it
    assert used == declared


def test_install_needs_the_declared_dependency(built, tmp_path):
    """Without community.docker anywhere, the offline install refuses: the dependency is declared."""
    path = str(tmp_path / "collections")
    env = _isolated_env(str(tmp_path), path, scan_sys_path=False)
    proc = _run([TOOL["ansible-galaxy"], "collection", "install", "--offline", "-p", path, built],
                str(tmp_path), env)
    assert proc.returncode != 0
    assert "community.docker" in proc.stdout + proc.stderr


def test_site_playbook_syntax_from_the_installed_collection(installed):
    work, env, root = installed
    proc = _run([TOOL["ansible-playbook"], "wgsp.service_proxy.site", "--syntax-check"], work, env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "playbook: %s/playbooks/site.yml" % root in proc.stdout


def _doc(installed, plugin_type, names):
    work, env, root = installed
    proc = _run([TOOL["ansible-doc"], "--json", "-t", plugin_type]
                + ["wgsp.service_proxy." + n for n in names], work, env)
    assert proc.returncode == 0, proc.stderr
    assert "[WARNING]" not in proc.stderr and "[ERROR]" not in proc.stderr, proc.stderr
    return root, json.loads(proc.stdout)


def test_ansible_doc_of_every_module(installed):
    root, docs = _doc(installed, "module", MODULES)
    assert sorted(docs) == ["wgsp.service_proxy." + m for m in MODULES]
    for name, entry in docs.items():
        assert entry["doc"]["filename"].startswith(root + "/"), name
        assert entry["doc"]["short_description"] and entry["examples"].strip() and entry["return"], name


def _filter_names():
    names = []
    for path in sorted(glob.glob(os.path.join(REPO, "plugins", "filter", "*.py"))):
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef) and node.name == "filters":
                ret = [n for n in ast.walk(node) if isinstance(n, ast.Return)][0].value
                names += [k.value for k in ret.keys]
    return sorted(names)


def test_ansible_doc_of_every_filter(installed):
    names = _filter_names()
    assert "wgsp_redact_keys" in names and len(names) > 10
    root, docs = _doc(installed, "filter", names)
    assert sorted(docs) == ["wgsp.service_proxy." + n for n in names]
    for name, entry in docs.items():
        assert entry["doc"]["filename"].startswith(root + "/"), name
        assert entry["doc"]["short_description"], name


def test_ansible_doc_of_every_role(installed):
    root, docs = _doc(installed, "role", ROLES)
    assert sorted(docs) == ["wgsp.service_proxy." + r for r in ROLES]
    for name, entry in docs.items():
        assert entry["path"] == root, name  # the collection the role came from
        assert entry["entry_points"], name
        for point, spec in entry["entry_points"].items():  # main, or wg_common's own entry points
            assert spec["short_description"], (name, point)


def _third_party_imports():
    """Top-level names of the non-stdlib, non-ansible modules that the collection's Python imports."""
    found = set()
    for path in glob.glob(os.path.join(REPO, "plugins", "**", "*.py"), recursive=True):
        with open(path) as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return {n for n in found if n not in sys.stdlib_module_names
            and n not in ("ansible", "ansible_collections", "__future__")}


def _requirement_names(lines):
    return {re.split(r"[<>=!~\[;\s]", line.strip(), maxsplit=1)[0].lower()
            for line in lines if line.strip() and not line.strip().startswith("#")}


def test_ee_requirements_cover_every_third_party_import():
    with open(os.path.join(REPO, "meta", "ee-requirements.txt")) as f:
        declared = _requirement_names(f)
    assert _third_party_imports() == {"pyroute2", "docker"}
    assert declared == {"pyroute2", "docker"}


def test_ee_bindep_matches_what_the_roles_install():
    with open(os.path.join(REPO, "roles", "wg_common", "tasks", "host.yml")) as f:
        tasks = yaml.safe_load(f)
    host = next(t["wgsp.service_proxy.wg_host"] for t in tasks if "wgsp.service_proxy.wg_host" in t)
    role_pkgs = set(re.findall(r"'([a-z0-9-]+)'", host["packages"].split("]")[0]))
    assert host["userspace_packages"] == ["wireguard-go"]  # only where the kernel lacks WireGuard
    with open(os.path.join(REPO, "meta", "ee-bindep.txt")) as f:
        dpkg = {line.split()[0] for line in f if "platform:dpkg" in line}
    # python3-pyroute2 is meta/ee-requirements.txt's pyroute2 (pip, in an EE)
    assert dpkg == role_pkgs - {"python3-pyroute2"}


def test_ansible_builder_context_lists_the_requirements(built, tmp_path):
    """`ansible-builder create` on a definition that installs the built tarball; then the two steps of the
    generated Containerfile that gather requirements (galaxy stage: `ansible-galaxy collection install -r
    requirements.yml` in /build; builder stage: `introspect.py introspect`) run on that context as the
    image build would run them, without building an image."""
    require(os.path.exists(TOOL["ansible-builder"]), "ansible-builder is not installed (pip install -r requirements.txt)")
    tarball = os.path.basename(built)
    definition = {
        "version": 3,
        "images": {"base_image": {"name": "registry.example/ee-base:latest"}},  # never pulled
        "dependencies": {
            "ansible_core": {"package_pip": "ansible-core"},
            "ansible_runner": {"package_pip": "ansible-runner"},
            "galaxy": {"collections": [{"name": "collections/" + tarball, "type": "file"}]},
        },
        "additional_build_files": [{"src": built, "dest": "collections"}],
    }
    (tmp_path / "execution-environment.yml").write_text(yaml.safe_dump(definition))
    env = _isolated_env(str(tmp_path), str(tmp_path / "share" / "collections"))
    proc = _run([TOOL["ansible-builder"], "create", "-f", "execution-environment.yml", "-c", "context"],
                str(tmp_path), env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    build = tmp_path / "context" / "_build"
    assert (build / "collections" / tarball).is_file()
    containerfile = next((tmp_path / "context").glob("*file")).read_text()
    galaxy_step = re.search(r"^RUN .*ansible-galaxy collection install \$ANSIBLE_GALAXY_CLI_COLLECTION_OPTS "
                            r"-r requirements.yml --collections-path \"(\S+)\"$", containerfile, re.M)
    assert galaxy_step, containerfile
    assert re.search(r"^RUN \$PYCMD /output/scripts/introspect.py introspect ", containerfile, re.M), containerfile

    share = str(tmp_path / "share" / "collections")
    proc = _run([TOOL["ansible-galaxy"], "collection", "install", "--offline", "-r", "requirements.yml",
                 "--collections-path", share], str(build), env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = _run([sys.executable, str(build / "scripts" / "introspect.py"), "introspect", share,
                 "--write-pip", str(tmp_path / "requirements.txt"), "--write-bindep", str(tmp_path / "bindep.txt")],
                str(build), env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pip = (tmp_path / "requirements.txt").read_text().splitlines()
    bindep = (tmp_path / "bindep.txt").read_text().splitlines()
    ours = "# from collection wgsp.service_proxy"
    assert sorted(line for line in pip if line.endswith(ours)) == sorted(
        "%s  %s" % (r, ours) for r in ("pyroute2>=0.7", "docker>=5.0"))
    for pkg in ("wireguard-tools [platform:dpkg platform:rpm]", "iptables [platform:dpkg]",
                "iptables-nft [platform:rpm]", "nftables [platform:dpkg platform:rpm]",
                "conntrack [platform:dpkg]", "conntrack-tools [platform:rpm]", "iproute2 [platform:dpkg]"):
        assert "%s  %s" % (pkg, ours) in bindep, bindep
    # nothing of the repository's development requirements (pytest, molecule, ...) reaches the image
    assert all(line.endswith(ours) for line in pip + bindep if line.strip()), pip + bindep
