"""Every filter the collection exports has its own documentation: a sidecar
``plugins/filter/<filter name>.yml`` (ansible-core's own layout for files holding several filters)
with a short description, the options matching the function's parameters, examples using the filter
and a return value, and ``ansible-doc`` renders exactly that file for the filter."""

import inspect
import json
import os
import subprocess

import pytest
import yaml

from ansible_collections.wgsp.service_proxy.plugins.filter import env_import, service_proxy, status_views
from conftest import REPO

FILTER_DIR = os.path.join(REPO, "plugins", "filter")
FILTERS = {}
for _plugin in (service_proxy, status_views, env_import):
    FILTERS.update(_plugin.FilterModule().filters())
NAMES = sorted(FILTERS)
NO_DEFAULT = inspect.Parameter.empty


def sidecar(name):
    with open(os.path.join(FILTER_DIR, name + ".yml"), encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def test_the_plugins_export_the_filters_the_roles_use():
    assert len(NAMES) == 41 and all(name.startswith("wgsp_") for name in NAMES)


def test_no_documentation_without_a_filter():
    docs = sorted(f[:-4] for f in os.listdir(FILTER_DIR) if f.endswith(".yml"))
    assert docs == NAMES


def test_the_plugin_files_carry_no_shared_documentation():
    """ansible-doc reads a sidecar only when the plugin file has no DOCUMENTATION of its own."""
    for plugin in (service_proxy, status_views, env_import):
        assert not hasattr(plugin, "DOCUMENTATION"), plugin.__name__


@pytest.mark.parametrize("name", NAMES)
def test_filter_has_its_own_documentation(name):
    data = sidecar(name)
    assert set(data) == {"DOCUMENTATION", "EXAMPLES", "RETURN"}
    doc = data["DOCUMENTATION"]
    assert doc["name"] == name
    assert doc["short_description"].strip() and doc["description"]
    assert doc["options"] and "_input" in doc["options"]
    for option, spec in doc["options"].items():
        assert spec["description"] and spec["type"], (name, option)
    assert "wgsp.service_proxy." + name in data["EXAMPLES"]
    assert data["RETURN"]["_value"]["description"] and data["RETURN"]["_value"]["type"]


@pytest.mark.parametrize("name", NAMES)
def test_documented_options_are_the_parameters(name):
    """The options after ``_input`` are the function's own parameters: required exactly when they have
    no default, and a documented default is the function's."""
    doc = sidecar(name)["DOCUMENTATION"]
    params = list(inspect.signature(FILTERS[name]).parameters.values())[1:]
    options = {key: value for key, value in doc["options"].items() if key != "_input"}
    assert sorted(options) == sorted(p.name for p in params)
    for param in params:
        spec = options[param.name]
        assert bool(spec.get("required")) is (param.default is NO_DEFAULT), (name, param.name)
        if param.default not in (NO_DEFAULT, None):
            assert spec.get("default") == param.default, (name, param.name)
    positional = [p.strip() for p in doc.get("positional", "_input").split(",")]
    assert positional[0] == "_input" and positional[1:] == [p.name for p in params][:len(positional) - 1]


def test_ansible_doc_renders_each_filters_own_file():
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([os.path.join(REPO, ".venv", "bin", "ansible-doc"), "-t", "filter", "--json"]
                          + ["wgsp.service_proxy." + name for name in NAMES],
                          cwd=REPO, env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
    rendered = json.loads(proc.stdout)
    assert sorted(rendered) == ["wgsp.service_proxy." + name for name in NAMES]
    for fqcn, entry in rendered.items():
        name = fqcn.split(".")[-1]
        assert entry["doc"]["filename"].endswith("/plugins/filter/%s.yml" % name), entry["doc"]["filename"]
        assert entry["doc"]["short_description"] == sidecar(name)["DOCUMENTATION"]["short_description"]
        assert entry["examples"].strip() and entry["return"]["_value"]
