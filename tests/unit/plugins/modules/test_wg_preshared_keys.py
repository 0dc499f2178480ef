"""wg_preshared_keys through main(): keys made and kept in a directory (written for real under tmp_path),
returned only when asked, never in diffs, errors or the peers list; reads that cannot write."""

import base64
import json
import os
import stat

import pytest

from ansible_collections.wgsp.service_proxy.plugins.modules import wg_preshared_keys
from modharness import call_main

GIVEN = base64.b64encode(b"g" * 32).decode()


def run(monkeypatch, args, check_mode=False, diff=False):
    return call_main(monkeypatch, wg_preshared_keys.main, args, check_mode=check_mode, diff=diff)


def keys_in(directory):
    out = {}
    for name in sorted(os.listdir(directory)):
        with open(os.path.join(directory, name)) as handle:
            out[name] = handle.read().strip()
    return out


def test_made_once_kept_after_and_returned_only_when_asked(monkeypatch, tmp_path):
    d = str(tmp_path / "wg0-psk")
    first = run(monkeypatch, {"dir": d, "peers": [{"name": "share1"}, {"name": "proxy1"}], "return_keys": True})
    assert first["changed"] is True and [p["state"] for p in first["peers"]] == ["created", "created"]
    files = keys_in(d)
    assert sorted(files) == ["proxy1.psk", "share1.psk"] and files["share1.psk"] != files["proxy1.psk"]
    assert first["preshared_keys"] == {"share1": files["share1.psk"], "proxy1": files["proxy1.psk"]}
    assert len(base64.b64decode(files["share1.psk"])) == 32
    assert stat.S_IMODE(os.stat(d).st_mode) == 0o700
    assert all(stat.S_IMODE(os.stat(os.path.join(d, f)).st_mode) == 0o600 for f in files)

    again = run(monkeypatch, {"dir": d, "peers": [{"name": "share1"}, {"name": "proxy1"}]})
    assert again["changed"] is False and "preshared_keys" not in again and keys_in(d) == files
    assert not any(k in json.dumps(again) for k in files.values())


def test_check_mode_writes_nothing_and_returns_no_new_key(monkeypatch, tmp_path):
    d = str(tmp_path / "psk")
    result = run(monkeypatch, {"dir": d, "peers": [{"name": "share1"}], "return_keys": True}, check_mode=True, diff=True)
    assert result["changed"] is True and not os.path.exists(d)
    assert result["preshared_keys"] == {"share1": None}
    assert result["diff"][0]["after"] == "<new preshared key>\n"


def test_exclusive_removes_the_keys_of_peers_no_longer_listed(monkeypatch, tmp_path):
    d = str(tmp_path / "psk")
    run(monkeypatch, {"dir": d, "peers": [{"name": "share1"}, {"name": "proxy1"}]})
    (tmp_path / "psk" / "notes.txt").write_text("not ours")
    result = run(monkeypatch, {"dir": d, "peers": [{"name": "proxy1"}]}, diff=True)
    assert result["changed"] and result["removed"] == ["share1"]
    assert sorted(os.listdir(d)) == ["notes.txt", "proxy1.psk"]
    assert "<preshared key>" in result["diff"][0]["before"]


def test_a_read_never_writes_or_removes(monkeypatch, tmp_path):
    d = str(tmp_path / "psk")
    made = run(monkeypatch, {"dir": d, "peers": [{"name": "share1"}], "return_keys": True})
    read = run(monkeypatch, {"dir": d, "peers": [{"name": "share1"}, {"name": "ghost"}], "generate": False,
                             "exclusive": True, "return_keys": True})
    assert read["changed"] is False and read["removed"] == []
    assert read["preshared_keys"] == {"share1": made["preshared_keys"]["share1"], "ghost": None}
    assert [p["state"] for p in read["peers"]] == ["unchanged", "missing"] and sorted(os.listdir(d)) == ["share1.psk"]
    failed = run(monkeypatch, {"dir": d, "peers": [{"name": "share1", "regenerate": True}], "generate": False})
    assert failed["failed"] and failed["msg"].startswith("peers[0]: a read (generate=false)")


def test_regenerate_and_a_given_key(monkeypatch, tmp_path):
    d = str(tmp_path / "psk")
    made = run(monkeypatch, {"dir": d, "peers": [{"name": "a"}, {"name": "b"}], "return_keys": True})["preshared_keys"]
    result = run(monkeypatch, {"dir": d, "peers": [{"name": "a", "regenerate": True}, {"name": "b", "key": GIVEN}],
                               "return_keys": True})
    assert [p["state"] for p in result["peers"]] == ["replaced", "replaced"]
    files = keys_in(d)
    assert files["a.psk"] not in (made["a"], made["b"]) and files["b.psk"] == GIVEN
    assert result["preshared_keys"]["a"] == files["a.psk"]
    assert run(monkeypatch, {"dir": d, "peers": [{"name": "a"}, {"name": "b", "key": GIVEN}]})["changed"] is False


@pytest.mark.parametrize("peers,field", [
    ([{"name": "../etc/x"}], "peers[0].name"),
    ([{"name": ".hidden"}], "peers[0].name"),
    ([{"name": "a b"}], "peers[0].name"),
    ([{"name": "x" * 65}], "peers[0].name"),
    ([{"name": "a"}, {"name": "a"}], "peers[1].name"),
    ([{"name": "a", "key": "bm90IGEga2V5"}], "peers[0].key"),
])
def test_bad_input_names_the_field_changes_nothing_and_shows_no_key(monkeypatch, tmp_path, peers, field):
    d = str(tmp_path / "psk")
    result = run(monkeypatch, {"dir": d, "peers": peers})
    assert result["failed"] and result["msg"].startswith(field + ":"), result["msg"]
    assert not os.path.exists(d) and "bm90IGEga2V5" not in result["msg"]


def test_a_file_that_is_not_a_key_is_not_overwritten(monkeypatch, tmp_path):
    d = tmp_path / "psk"
    d.mkdir()
    (d / "share1.psk").write_text("something else\n")
    result = run(monkeypatch, {"dir": str(d), "peers": [{"name": "share1"}]})
    assert result["failed"] and "does not hold a WireGuard key" in result["msg"]
    assert (d / "share1.psk").read_text() == "something else\n"
