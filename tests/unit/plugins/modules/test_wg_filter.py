"""wg_filter module: argument handling, check mode, diff, failures; commands faked at CommandRunner.run."""


import pytest

from ansible_collections.wgsp.service_proxy.plugins.modules import wg_filter
from modharness import FakeHost, is_write, run_module  # noqa: E402


def run(monkeypatch, args, check_mode=False, diff=False, nft=False):
    result, host = run_module(monkeypatch, wg_filter, args, host=FakeHost(missing=() if nft else ("nft",)),
                              check_mode=check_mode, diff=diff)
    return result, host.calls


def writes(calls):
    return [c for c in calls if is_write(c)]


ARGS = {"name": "isolate", "backend": "iptables", "hook": "forward", "in_interface": "wg0", "out_interface": "wg0",
        "allow": [{"proto": "tcp", "port": 80, "sources": ["10.7.0.3"], "destinations": ["10.7.0.2"]}]}


def test_check_mode_with_diff_and_persist(monkeypatch, tmp_path):
    path = str(tmp_path / "isolate.rules")
    result, calls = run(monkeypatch, dict(ARGS, persist_path=path), check_mode=True, diff=True)
    assert result["changed"] and not result.get("failed") and writes(calls) == []
    assert not (tmp_path / "isolate.rules").exists()
    rules_diff, file_diff = result["diff"]
    assert "WGSP-ISOLATE-FLT" in rules_diff["after"] and rules_diff["before"] == ""
    assert file_diff["after"].startswith("#!/bin/sh\n") and file_diff["before"] == ""
    assert result["persist_path"] == {"path": path, "changed": True, "removed": []}
    assert result["filter"]["allow"] == [{"proto": "tcp", "port": 80, "sources": ["10.7.0.3/32"],
                                          "destinations": ["10.7.0.2/32"]}]


@pytest.mark.parametrize("change,field", [
    ({"allow": [{"proto": "icmp", "port": 1}]}, "allow[0].port"),
    ({"in_interface": "wg0;x"}, "in_interface"),
    ({"hook": "input"}, "out_interface"),
    ({"allow": [{"sources": ["10.7.0.0/33"]}]}, "allow[0].sources[0]"),
])
def test_bad_input_fails_before_any_command(monkeypatch, change, field):
    result, calls = run(monkeypatch, dict(ARGS, **change))
    assert result["failed"] and result["field"] == field and calls == []


def test_argspec_rejects_policy(monkeypatch):
    result, calls = run(monkeypatch, dict(ARGS, policy="maybe"))
    assert result["failed"] and "policy" in result["msg"] and calls == []


def test_absent_on_clean_host_is_unchanged(monkeypatch):
    result, calls = run(monkeypatch, {"name": "isolate", "state": "absent"}, nft=True)
    assert result["changed"] is False and writes(calls) == [] and result["filter"] is None
