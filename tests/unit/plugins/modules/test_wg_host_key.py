"""wg_host's ``key_path`` through main(): the host's WireGuard key made sure of in the same call as
forwarding and the record, its public key returned, the private key never.

The host is faked at its boundaries only, as in test_wg_host.py (commands through ``patch_commands``,
the kernel's files under tmp_path); key files are written for real under tmp_path.
"""

import base64
import json
import os
import stat

import pytest

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common import systemd as systemd_
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard.keys import (
    check_key,
    generate_private_key,
    public_key,
)
from ansible_collections.wgsp.service_proxy.plugins.modules import wg_host
from test_wg_host import run

# the private key of wg(8)'s example configuration, and what `wg pubkey` prints for it
KNOWN_PRIVATE = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk="
KNOWN_PUBLIC = "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    """The kernel's files under tmp_path, as test_wg_host's fixture of the same name: forwarding off,
    no WireGuard module loaded, no systemd."""
    for name, attribute in (("ip_forward", "IP_FORWARD"), ("ipv6_forwarding", "IP6_FORWARD")):
        (tmp_path / name).write_text("0\n")
        monkeypatch.setattr(wg_host, attribute, str(tmp_path / name))
    monkeypatch.setattr(wg_host, "SYS_WIREGUARD", str(tmp_path / "sys-module-wireguard"))
    monkeypatch.setattr(systemd_, "RUNNING", str(tmp_path / "run-systemd-system"))
    return tmp_path


def mode(path):
    return stat.S_IMODE(os.stat(str(path)).st_mode)


def private_of(path):
    text = path.read_text()
    assert text.endswith("\n") and text.count("\n") == 1
    return check_key("key", text.strip())


def public(result):
    """The result as Ansible would print it (the harness's own host object left out)."""
    return json.dumps(dict((k, v) for k, v in result.items() if k != "_host"), sort_keys=True)


def test_the_published_test_vector_is_what_public_key_derives():
    """The reference the other tests compare with (checked once against `wg pubkey`)."""
    assert public_key(KNOWN_PRIVATE) == KNOWN_PUBLIC


def test_a_missing_key_is_generated_0600_in_a_new_0700_directory(kernel, monkeypatch):
    key = kernel / "etc-wireguard" / "sub" / "wg0.key"
    result = run(monkeypatch, {"key_path": str(key)})
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is True and result["changes"] == ["key_path"]
    assert result["generated"] is True and result["key_path"] == str(key)
    assert mode(key) == 0o600
    assert mode(key.parent) == 0o700 and mode(key.parent.parent) == 0o700  # every directory created
    private = private_of(key)
    assert result["public_key"] == public_key(private) and check_key("public_key", result["public_key"])
    assert private not in public(result)
    assert os.listdir(str(key.parent)) == ["wg0.key"]  # no temporary file left


def test_a_second_run_keeps_the_key_and_changes_nothing(kernel, monkeypatch):
    key = kernel / "keys" / "wg0.key"
    first = run(monkeypatch, {"key_path": str(key)})
    private, stamp = key.read_text(), os.stat(str(key))
    again = run(monkeypatch, {"key_path": str(key)}, diff=True)
    assert again["changed"] is False and again["changes"] == [] and again["generated"] is False
    assert again["public_key"] == first["public_key"] and "diff" not in again
    assert key.read_text() == private
    now = os.stat(str(key))
    assert (now.st_ino, now.st_mtime_ns, stat.S_IMODE(now.st_mode)) == (stamp.st_ino, stamp.st_mtime_ns, 0o600)


def test_check_mode_writes_nothing_and_says_a_key_would_be_generated(kernel, monkeypatch):
    key = kernel / "keys" / "wg0.key"
    result = run(monkeypatch, {"key_path": str(key)}, check_mode=True, diff=True)
    assert result["changed"] is True and result["changes"] == ["key_path"]
    assert result["generated"] is True and result["public_key"] is None and result["key_path"] == str(key)
    assert not key.exists() and not key.parent.exists()
    assert result["diff"] == [{"before_header": str(key), "after_header": str(key), "before": "",
                               "after": "(a new private key, not shown)\n"}]


def test_check_mode_with_an_existing_key_reports_its_public_key(kernel, monkeypatch):
    key = kernel / "wg0.key"
    key.write_text(KNOWN_PRIVATE + "\n")
    os.chmod(str(key), 0o600)
    result = run(monkeypatch, {"key_path": str(key)}, check_mode=True)
    assert result["changed"] is False and result["generated"] is False and result["public_key"] == KNOWN_PUBLIC


def test_an_existing_key_file_is_kept(kernel, monkeypatch):
    key = kernel / "wg0.key"
    key.write_text(KNOWN_PRIVATE + "\n")
    os.chmod(str(key), 0o600)
    before = os.stat(str(key))
    result = run(monkeypatch, {"key_path": str(key)}, diff=True)
    assert result["changed"] is False and result["changes"] == [] and result["generated"] is False
    assert result["public_key"] == KNOWN_PUBLIC
    assert key.read_text() == KNOWN_PRIVATE + "\n"
    after = os.stat(str(key))
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert KNOWN_PRIVATE not in public(result)


def test_a_key_written_by_wg_genkey_without_a_newline_is_kept(kernel, monkeypatch):
    private = generate_private_key()
    key = kernel / "wg0.key"
    key.write_text(private)
    result = run(monkeypatch, {"key_path": str(key)})
    assert result["generated"] is False and result["public_key"] == public_key(private)
    assert key.read_text() == private


@pytest.mark.parametrize("value, message", [
    ("keys/wg0.key", "key_path: must be an absolute path"),
    ("wg0.key", "key_path: must be an absolute path"),
])
def test_a_relative_key_path_fails_before_anything_is_written(kernel, monkeypatch, value, message):
    conf = kernel / "sysctl.d" / "60-wgsp-forwarding.conf"
    record = kernel / "state" / "wg0.json"
    cwd = kernel / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(str(cwd))
    result = run(monkeypatch, {"key_path": value, "forwarding": True, "sysctl_path": str(conf),
                               "record_path": str(record), "record": {"version": 1}})
    assert result["failed"] and result["msg"].startswith(message), result["msg"]
    assert result.get("field", "key_path") == "key_path"
    assert (kernel / "ip_forward").read_text() == "0\n"  # forwarding untouched
    assert not conf.exists() and not conf.parent.exists() and not record.parent.exists()
    assert os.listdir(str(cwd)) == []  # no key written relative to where the module ran
    assert result["_host"].calls == []


def test_forwarding_the_key_and_the_record_in_one_call_in_that_order(kernel, monkeypatch):
    conf = kernel / "sysctl.d" / "60-wgsp-forwarding.conf"
    record = kernel / "state" / "wg0.json"
    key = kernel / "keys" / "wg0.key"
    args = {"forwarding": True, "sysctl_path": str(conf), "key_path": str(key),
            "record_path": str(record), "record": {"version": 1, "interface": "wg0"}}
    first = run(monkeypatch, args, diff=True)
    assert first["changes"] == ["forwarding", "sysctl_path", "key_path", "record_path"]
    assert [d["after_header"] for d in first["diff"]] == [str(kernel / "ip_forward"), str(conf), str(key), str(record)]
    assert first["public_key"] == public_key(private_of(key))
    again = run(monkeypatch, args, diff=True)
    assert again["changes"] == [] and again["public_key"] == first["public_key"]


@pytest.mark.parametrize("check_mode", [False, True])
@pytest.mark.parametrize("diff", [False, True])
def test_the_private_key_never_appears_in_the_result(kernel, monkeypatch, check_mode, diff):
    """Neither a generated key nor an existing one, in any mode: not as base64, not as hex."""
    record = kernel / "state" / "wg0.json"
    fresh, existing = kernel / "keys" / "fresh.key", kernel / "keys" / "existing.key"
    run(monkeypatch, {"key_path": str(existing)})
    for key in (fresh, existing):
        result = run(monkeypatch, {"key_path": str(key), "forwarding": True, "sysctl_path": str(kernel / "60.conf"),
                                   "record_path": str(record), "record": {"version": 1}},
                     check_mode=check_mode, diff=diff)
        assert not result.get("failed"), result.get("msg")
        assert ("diff" in result) is (diff and result["changed"])
        text = public(result)
        if key.exists():
            private = private_of(key)
            assert private not in text and private.rstrip("=") not in text
            assert base64.b64decode(private).hex() not in text  # the form the UAPI socket takes
            assert result["public_key"] == public_key(private)
        else:
            assert check_mode and result["public_key"] is None


@pytest.mark.parametrize("case", ["a directory", "not a key", "under a regular file"])
def test_an_unusable_key_path_fails_before_forwarding_changes(kernel, monkeypatch, case):
    """wg_host's documentation: the parts change in order "after every value was judged"."""
    conf = kernel / "60.conf"
    key = kernel / "wg0.key"
    if case == "a directory":
        key.mkdir()
    elif case == "not a key":
        key.write_text("not a key\n")
    else:
        (kernel / "afile").write_text("x")
        key = kernel / "afile" / "wg0.key"
    result = run(monkeypatch, {"key_path": str(key), "forwarding": True, "sysctl_path": str(conf)})
    assert result["failed"] and result["msg"].startswith("key_path: "), result["msg"]
    assert (kernel / "ip_forward").read_text() == "0\n" and not conf.exists()
