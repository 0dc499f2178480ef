"""wg_rule_sets through main(): every set judged before the first command that changes anything, the
fields named under rule_sets[i], the sets applied in order, each set's result the one its own module
returns. Commands faked at CommandRunner.run by modharness.FakeHost (a clean iptables host)."""

import pytest

from ansible_collections.wgsp.service_proxy.plugins.modules import wg_dnat, wg_filter, wg_rule_sets
from modharness import run_module  # noqa: E402

DNAT = {"name": "public", "backend": "iptables", "in_interface": "eth0", "out_interface": "wg0",
        "masquerade": True, "rules": [{"port": 80, "to_address": "10.7.0.2"}]}
INPUT = {"name": "input", "backend": "iptables", "hook": "input", "in_interface": "wg0",
         "allow": [{"proto": "tcp", "port": 22}, {"proto": "icmp"}]}
SETS = [{"module": "wg_dnat", "name": "public", "params": DNAT}, {"module": "wg_filter", "params": INPUT}]


def failed_on(result, field):
    assert result.get("failed") is True, result
    assert result["field"] == field and result["msg"].startswith(field + ": "), result["msg"]
    assert "exception" not in result


def test_check_mode_plans_every_set_and_writes_nothing(monkeypatch):
    result, host = run_module(monkeypatch, wg_rule_sets, {"rule_sets": SETS}, check_mode=True, diff=True)
    assert not result.get("failed"), result
    assert result["changed"] and result["changed_sets"] == ["public", "input"]
    assert [(s["module"], s["name"], s["applied"]) for s in result["rule_sets"]] == [
        ("wg_dnat", "public", False), ("wg_filter", "input", False)]
    assert host.writes() == []
    # one diff per set, in order, each naming its set
    headers = [d["after_header"] for d in result["diff"]]
    assert headers == ["iptables set public (desired)", "iptables filter set input (desired)"]


def test_each_set_gives_what_its_own_module_gives(monkeypatch):
    """Same plan, rules and diff as wg_dnat and wg_filter called one after the other (applying is
    tested on real iptables and nftables: tests/integration/test_wg_rule_sets_lab.py)."""
    together = run_module(monkeypatch, wg_rule_sets, {"rule_sets": SETS}, check_mode=True, diff=True)[0]
    dnat = run_module(monkeypatch, wg_dnat, DNAT, check_mode=True, diff=True)[0]
    filt = run_module(monkeypatch, wg_filter, INPUT, check_mode=True, diff=True)[0]
    first, second = together["rule_sets"]
    for key in ("plan", "backend", "rules", "stale", "conntrack", "persist_path"):
        assert first[key] == dnat[key], key
    for key in ("plan", "backend", "filter", "persist_path"):
        assert second[key] == filt[key], key
    assert together["diff"] == [dnat["diff"], filt["diff"]]


@pytest.mark.parametrize("second, field, words", [
    (dict(INPUT, allow=[{"proto": "tcp", "port": 70000}]), "rule_sets[1].params.allow[0].port", "70000"),
    (dict(INPUT, in_interface="wg+"), "rule_sets[1].params.in_interface", "+"),
    (dict(INPUT, bogus=1), "rule_sets[1].params", "bogus"),
    (dict(INPUT, policy="maybe"), "rule_sets[1].params", "policy"),
    (dict(INPUT, persist_path="relative/x.rules"), "rule_sets[1].params.persist_path", "absolute"),
    (dict(INPUT, name="Bad-Name"), "rule_sets[1].params.name", "Bad-Name"),
])
def test_a_bad_later_set_stops_the_run_before_the_first_change(monkeypatch, second, field, words):
    sets = [SETS[0], {"module": "wg_filter", "params": second}]
    result, host = run_module(monkeypatch, wg_rule_sets, {"rule_sets": sets})
    failed_on(result, field)
    assert words in result["msg"] and host.writes() == []


def test_a_set_appears_once_and_its_name_matches(monkeypatch):
    result, host = run_module(monkeypatch, wg_rule_sets, {"rule_sets": [SETS[1], SETS[1]]})
    failed_on(result, "rule_sets[1].params.name")
    assert "already rule_sets[0]" in result["msg"] and host.writes() == []
    result, host = run_module(monkeypatch, wg_rule_sets,
                              {"rule_sets": [{"module": "wg_filter", "name": "other", "params": INPUT}]})
    failed_on(result, "rule_sets[0].name")
    # a dnat set and a filter set may share a name: their chains and tables never collide
    result, host = run_module(monkeypatch, wg_rule_sets, {"rule_sets": [
        SETS[0], {"module": "wg_filter", "params": dict(INPUT, name="public")}]}, check_mode=True)
    assert not result.get("failed") and result["changed_sets"] == ["public", "public"]


def test_unknown_module_is_refused(monkeypatch):
    result, host = run_module(monkeypatch, wg_rule_sets, {"rule_sets": [{"module": "wg_route", "params": {}}]})
    assert result["failed"] and "wg_route" in result["msg"] and host.calls == []


def test_a_failing_set_keeps_the_ones_before_and_names_itself(monkeypatch):
    """The second set asks for nftables on a host without nft: the first set's result is returned."""
    sets = [SETS[0], {"module": "wg_filter", "params": dict(INPUT, backend="nftables")}]
    result, host = run_module(monkeypatch, wg_rule_sets, {"rule_sets": sets}, check_mode=True)
    assert result["failed"] and result["msg"].startswith("rule set input (wg_filter): "), result["msg"]
    assert "nft" in result["msg"] and "exception" not in result
    assert [(s["name"], s["changed"]) for s in result["rule_sets"]] == [("public", True)]
    assert result["changed"] is True and host.writes() == []


def test_absent_set_of_a_role_with_empty_values(monkeypatch):
    """A role passes a set it does not want as state=absent with its other values empty."""
    absent = {"name": "public", "state": "absent", "backend": "auto", "in_interface": "", "out_interface": "wg0",
              "masquerade": True, "sources": [], "log": False, "rules": [],
              "persist_path": "/etc/wg-service-proxy/wg0-public.rules"}
    result, host = run_module(monkeypatch, wg_rule_sets, {"rule_sets": [{"module": "wg_dnat", "params": absent}]},
                              check_mode=True)
    assert not result.get("failed"), result
    assert result["changed"] is False and host.writes() == []
