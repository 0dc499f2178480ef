"""wg_dnat module through main() for what the table (cases/wg_dnat.yml) cannot express: a missing
Python library. Commands faked at CommandRunner.run by modharness.FakeHost."""

from ansible_collections.wgsp.service_proxy.plugins.modules import wg_dnat
from modharness import run_module  # noqa: E402


def test_missing_docker_sdk_only_matters_for_containers(monkeypatch):
    monkeypatch.setattr(wg_dnat, "HAS_DOCKER", False)
    result, host = run_module(monkeypatch, wg_dnat, {"name": "share", "backend": "iptables", "in_interface": "wg0",
                                                     "compact_rules": ["dummy:tcp:80"]}, check_mode=True)
    assert result["failed"] and "docker" in result["msg"] and host.writes() == []
    result, host = run_module(monkeypatch, wg_dnat, {"name": "share", "backend": "iptables", "in_interface": "wg0",
                                                     "compact_rules": ["80:10.7.0.2:80"]}, check_mode=True)
    assert not result.get("failed") and result["changed"] and host.writes() == []
