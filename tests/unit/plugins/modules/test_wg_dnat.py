"""wg_dnat module: argument handling, check mode, diff, failures; commands faked at CommandRunner.run."""


import pytest

from ansible_collections.wgsp.service_proxy.plugins.modules import wg_dnat
from modharness import FakeHost, is_write, run_module  # noqa: E402


def run(monkeypatch, args, check_mode=False, diff=False, nft=False):
    result, host = run_module(monkeypatch, wg_dnat, args, host=FakeHost(missing=() if nft else ("nft",)),
                              check_mode=check_mode, diff=diff)
    return result, host.calls


def writes(calls):
    return [c for c in calls if is_write(c)]


ARGS = {"name": "pub", "backend": "iptables", "in_interface": "eth0", "out_interface": "wg0", "masquerade": True,
        "compact_rules": ["80:10.7.0.2:80", "udp:5000-5001:10.7.0.2:5000-5001"]}


def test_check_mode_with_diff(monkeypatch):
    result, calls = run(monkeypatch, ARGS, check_mode=True, diff=True)
    assert result["changed"] and not result.get("failed")
    assert writes(calls) == []
    assert "WGSP-PUB-PRE" in result["diff"]["after"] and result["diff"]["before"] == ""
    assert result["rules"][1] == {"proto": "udp", "family": "ipv4", "in_interface": "eth0", "port": "5000-5001",
                                  "to_address": "10.7.0.2", "to_port": "5000-5001", "out_interface": "wg0",
                                  "masquerade": True, "sources": [], "log": False, "to_container": None}


def test_apply_validates_applies_and_verifies_read_back(monkeypatch):
    # The fake iptables-save never reflects the restore: the module must notice on read-back.
    result, calls = run(monkeypatch, ARGS)
    assert writes(calls) == [["iptables-restore", "-w", "--noflush", "--test"], ["iptables-restore", "-w", "--noflush"]]
    assert result["failed"] and "read back" in result["msg"] and result["drift"]["missing"]


@pytest.mark.parametrize("rule,field", [
    ({"port": 0, "to_address": "10.7.0.2"}, "rules[1].port"),
    ({"port": "90-80", "to_address": "10.7.0.2"}, "rules[1].port"),
    ({"port": 80, "to_address": "10.7.0.2", "in_interface": "x" * 16}, "rules[1].in_interface"),
    ({"port": 80, "to_address": "10.7.0.2", "sources": ["1.2.3.0/24; rm"]}, "rules[1].sources[0]"),
    ({"proto": "udp", "port": 51820, "to_address": "10.7.0.2"}, "rules[1].port"),
])
def test_one_bad_rule_fails_whole_batch_before_any_command(monkeypatch, rule, field):
    args = {"name": "pub", "backend": "iptables", "rules": [{"port": 81, "to_address": "10.7.0.2"}, rule]}
    result, calls = run(monkeypatch, args)
    assert result["failed"] and result["field"] == field and result["msg"].startswith(field)
    assert writes(calls) == [] and not any(c[0].endswith("-save") for c in calls)


def test_argspec_rejects_proto(monkeypatch):
    result, calls = run(monkeypatch, {"name": "pub", "rules": [{"proto": "icmpx", "port": 1, "to_address": "10.7.0.2"}]})
    assert result["failed"] and "proto" in result["msg"] and calls == []


def test_bad_name(monkeypatch):
    result, calls = run(monkeypatch, {"name": "Bad-Name"})
    assert result["failed"] and result["field"] == "name" and calls == []


def test_missing_docker_sdk_only_matters_for_containers(monkeypatch):
    monkeypatch.setattr(wg_dnat, "HAS_DOCKER", False)
    result, _calls = run(monkeypatch, {"name": "share", "backend": "iptables", "in_interface": "wg0",
                                              "compact_rules": ["dummy:tcp:80"]}, check_mode=True)
    assert result["failed"] and "docker" in result["msg"]
    result, _calls = run(monkeypatch, {"name": "share", "backend": "iptables", "in_interface": "wg0",
                                              "compact_rules": ["80:10.7.0.2:80"]}, check_mode=True)
    assert not result.get("failed") and result["changed"]


def test_absent_on_clean_host_is_unchanged(monkeypatch):
    result, calls = run(monkeypatch, {"name": "pub", "state": "absent"}, nft=True)
    assert result["changed"] is False and writes(calls) == []
