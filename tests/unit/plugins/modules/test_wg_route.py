"""wg_route module: check mode, diff and validation through main(), with a fake IPRoute."""

import os
import sys

from ansible_collections.wgsp.service_proxy.plugins.modules import wg_route
from modharness import run_module as run  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "module_utils"))
from test_routes import FakeIPRoute  # noqa: E402


def run_module(monkeypatch, args, ipr, check_mode=False, diff=False):
    """``wg_route.main()`` on ``ipr`` (the netlink boundary: what ``IPRoute()`` returns)."""
    ipr.close = lambda: None
    return run(monkeypatch, wg_route, args, ipr=ipr, check_mode=check_mode, diff=diff)[0]


ARGS = {"interface": "wg0", "routes": [{"dest": "10.7.0.0/24"}, {"dest": "fd00:7::/64", "metric": 5}], "table": 1000}


def test_check_mode_diff_then_apply_then_idempotent(monkeypatch):
    ipr = FakeIPRoute()
    result = run_module(monkeypatch, ARGS, ipr, check_mode=True, diff=True)
    assert result["changed"] and ipr.writes == []
    assert result["diff"]["after"] == ("10.7.0.0/24 dev wg0 table 1000 metric 0 proto 87\n"
                                       "fd00:7::/64 dev wg0 table 1000 metric 5 proto 87\n")
    result = run_module(monkeypatch, ARGS, ipr)
    assert result["changed"] and len(ipr.writes) == 2
    ipr.writes = []
    result = run_module(monkeypatch, ARGS, ipr)
    assert not result["changed"] and ipr.writes == []


def test_validation_names_field(monkeypatch):
    ipr = FakeIPRoute()
    result = run_module(monkeypatch, {"interface": "wg0", "routes": [{"dest": "10.7.0.0/24", "gateway": "x;y"}]}, ipr)
    assert result["failed"] and result["field"] == "routes[0].gateway" and ipr.writes == []
    result = run_module(monkeypatch, {"interface": "wg0", "proto": 300}, ipr)
    assert result["failed"] and result["field"] == "proto"


def test_check_mode_without_the_interface_reports_the_routes(monkeypatch):
    """A role's --check on a brand-new host: wg0 does not exist yet, the plan is every route."""
    ipr = FakeIPRoute()
    ipr.links.pop("wg0", None)
    result = run_module(monkeypatch, ARGS, ipr, check_mode=True, diff=True)
    assert not result.get("failed") and result["changed"] and ipr.writes == []
    assert result["added"] == ["10.7.0.0/24 dev wg0 table 1000 metric 0 proto 87",
                               "fd00:7::/64 dev wg0 table 1000 metric 5 proto 87"]
    assert result["diff"]["before"] == "" and "10.7.0.0/24 dev wg0" in result["diff"]["after"]
    # absent in check mode: nothing to remove; a real run still fails clearly
    assert run_module(monkeypatch, {"interface": "wg0", "state": "absent"}, ipr, check_mode=True)["changed"] is False
    failed = run_module(monkeypatch, ARGS, ipr)
    assert failed["failed"] and "no such interface" in failed["msg"] and ipr.writes == []
