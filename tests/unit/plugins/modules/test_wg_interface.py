"""The module file: documentation matches the argument spec, main() wires errors and missing libraries
into one fail_json, check mode goes through main() without touching anything, no secret is printed."""

import json

import pytest
import yaml

from ansible.module_utils.testing import patch_module_args

from ansible_collections.wgsp.service_proxy.plugins.doc_fragments import record as record_fragment
from ansible_collections.wgsp.service_proxy.plugins.modules import wg_interface as mod
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import backends as wg_backends
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import netlink

PRIV = "qElu6Ehs2YJ7kfyV3IQOKe+w5uedtHe42F3xSeauGVE="
PSK = "KBLdSraeBLjbYUyk/aEu7xxmhQB29d8J1by+46zysmo="
PUB1 = "fyBlClwg+ZmIXXiIRkMNZATjrPtdgsZRF08bU0pzen4="


def _compare(doc_options, spec, path=""):
    assert sorted(doc_options) == sorted(spec), path
    for name, opt in spec.items():
        doc = doc_options[name]
        where = path + name
        assert doc.get("type", "str") == opt.get("type", "str"), where
        assert doc.get("default") == opt.get("default"), where
        assert bool(doc.get("required", False)) == bool(opt.get("required", False)), where
        assert doc.get("choices") == opt.get("choices"), where
        assert doc.get("elements") == opt.get("elements"), where
        if "key" in name and name != "public_key" and not name.endswith("_path") and name != "remove_key":
            assert opt.get("no_log") is True, where
        if "options" in opt:
            _compare(doc["suboptions"], opt["options"], where + ".")


def test_documentation_matches_argument_spec():
    doc = yaml.safe_load(mod.DOCUMENTATION)
    assert doc["extends_documentation_fragment"] == ["wgsp.service_proxy.record"]
    options = dict(doc["options"], **yaml.safe_load(record_fragment.ModuleDocFragment.DOCUMENTATION)["options"])
    _compare(options, mod.argument_spec())
    assert str(doc["version_added"]) == "0.1.0"
    assert doc["attributes"]["check_mode"]["support"] == "full"
    assert doc["attributes"]["diff_mode"]["support"] == "full"
    assert doc["attributes"]["platform"]["platforms"] == "linux"
    assert any("userspace" in note and "kernel" in note for note in doc["notes"])
    yaml.safe_load(mod.EXAMPLES)
    yaml.safe_load(mod.RETURN)


def test_every_key_option_declares_no_log():
    spec = mod.argument_spec()
    assert spec["private_key"]["no_log"] is True
    assert spec["peers"]["options"]["preshared_key"]["no_log"] is True
    for name in ("private_key_path", "remove_key"):
        assert spec[name]["no_log"] is False
    assert spec["peers"]["options"]["public_key"]["no_log"] is False


def run_main(args, capsys, check_mode=False):
    payload = dict(args, _ansible_check_mode=check_mode)
    with patch_module_args(payload):
        with pytest.raises(SystemExit):
            mod.main()
    out = capsys.readouterr().out
    return json.loads(out.strip().splitlines()[-1]), out


def test_missing_pyroute2_reported(capsys, monkeypatch):
    monkeypatch.setattr(netlink, "HAS_PYROUTE2", False)
    monkeypatch.setattr(netlink, "PYROUTE2_IMPORT_ERROR", ImportError("No module named 'pyroute2'"))
    result, _out = run_main({"name": "wg0"}, capsys)
    assert result["failed"] is True and "pyroute2" in result["msg"]


def test_validation_error_is_one_fail_json_without_secrets(capsys, monkeypatch):
    def no_netlink(*a, **k):
        raise AssertionError("nothing may be read or touched before validation")
    monkeypatch.setattr(netlink, "LinkOps", no_netlink)
    result, out = run_main({"name": "wg0", "private_key": PRIV, "listen_port": 70000,
                            "peers": [{"public_key": PUB1, "preshared_key": PSK}]}, capsys)
    assert result["failed"] is True
    assert result["msg"].startswith("listen_port: ") and result["field"] == "listen_port"
    for secret in (PRIV, PSK):
        assert secret not in out


def test_check_mode_through_main_touches_nothing(capsys, monkeypatch, tmp_path):
    class ReadOnlyLinks:
        def __init__(self, name):
            pass

        def read(self):
            return None

        def __getattr__(self, name):
            raise AssertionError("mutating call %s in check mode" % name)

    monkeypatch.setattr(netlink, "LinkOps", ReadOnlyLinks)
    monkeypatch.setattr(wg_backends, "find_binary", lambda name: "/usr/bin/wireguard-go")

    def no_daemon(self, argv):
        raise AssertionError("started a daemon")

    monkeypatch.setattr(wg_backends.UserspaceBackend, "start_daemon", no_daemon)
    result, out = run_main({"name": "wg0", "backend": "userspace", "private_key_path": str(tmp_path / "k" / "wg0.key"),
                            "peers": [{"public_key": PUB1, "preshared_key": PSK}]}, capsys, check_mode=True)
    assert result["changed"] is True and result["backend"] == "userspace"
    assert not (tmp_path / "k").exists()
    assert PSK not in out
