"""wg_status through main(): read-only (changed false, check mode identical), fail_on, errors.

The commands (rule sets read with iptables-save), IPRoute and the interface reader are faked; _status
has its own tests."""

import json

import pytest

from ansible_collections.wgsp.service_proxy.plugins.module_utils._status import host as status_host
from ansible_collections.wgsp.service_proxy.plugins.modules import wg_status
from modharness import FakeHost  # noqa: E402
from modharness import run_module as run  # noqa: E402

NOW_KEY = "K" * 43 + "="
HUB_KEY = "H" * 43 + "="
STATE = {"version": 1, "interface": "wg0", "client_mode": "proxy", "address": ["10.7.0.3/32"],
         "hub_endpoint": "192.0.2.1:51820", "hub_address": "127.0.0.1",
         "access_services": [], "public_ports": [], "public_exposure": False,
         "rule_sets": [{"module": "wg_dnat", "name": "public", "params": {"name": "public"}}]}


class FakeIPRoute:
    closed = False

    def close(self):
        self.closed = True


def live(handshake_age=5, exists=True):
    import time

    ts = int(time.time()) - handshake_age if handshake_age is not None else 0
    return {"name": "wg0", "exists": exists, "backend": "userspace", "up": True, "mtu": 1420,
            "addresses": ["10.7.0.3/32"], "listen_port": 0, "fwmark": 0, "public_key": NOW_KEY,
            "peers": [{"public_key": HUB_KEY, "endpoint": "192.0.2.1:51820", "allowed_ips": ["10.7.0.0/24"],
                       "persistent_keepalive": 25, "latest_handshake": ts, "rx_bytes": 1, "tx_bytes": 2}]}


# The rule set of STATE (wg_dnat "public", no rules) with a rule left over on the host: drift.
DRIFTED_SAVE = """*nat
:PREROUTING ACCEPT [0:0]
:POSTROUTING ACCEPT [0:0]
:WGSP-PUBLIC-PRE - [0:0]
[0:0] -A PREROUTING -m comment --comment "wgsp:public" -j WGSP-PUBLIC-PRE
[3:180] -A WGSP-PUBLIC-PRE -i eth0 -p tcp -m tcp --dport 80 -m comment --comment "wgsp:public" -j DNAT --to-destination 10.7.0.2
COMMIT
*filter
:FORWARD ACCEPT [0:0]
COMMIT
"""


def run_module(monkeypatch, args, iface, sync=True, check_mode=False):
    """wg_status.main() on a host faked at its boundaries: the commands (FakeHost: the rule sets are read
    with iptables-save), IPRoute, and the interface reader (``iface``, what netlink/UAPI would return)."""
    ipr = FakeIPRoute()
    host = FakeHost([] if sync else [(["iptables-save"], 0, DRIFTED_SAVE, "")])
    monkeypatch.setattr(status_host, "host_readers",
                        lambda ipr: (lambda name: iface, lambda name: [], lambda address: "wg0"))
    results, host = run(monkeypatch, wg_status, args, host=host, ipr=ipr, check_mode=check_mode)
    results["_calls"] = {"host": host, "ipr": ipr}
    return results


@pytest.fixture
def state_dir(tmp_path):
    (tmp_path / "wg0.json").write_text(json.dumps(STATE))
    return str(tmp_path)


def strip(result):
    result = dict(result)
    result.pop("_calls")
    for peer in result.get("peers", []):
        peer.pop("handshake_age")
        peer.pop("latest_handshake")
    result.pop("handshake_age", None)
    result.pop("summary", None)
    return result


def test_read_only_and_check_mode_reports_the_same(monkeypatch, state_dir):
    normal = run_module(monkeypatch, {"state_dir": state_dir}, live())
    checked = run_module(monkeypatch, {"state_dir": state_dir}, live(), check_mode=True)
    assert normal["changed"] is False and "failed" not in normal
    assert strip(normal) == strip(checked)
    assert normal["status"] == "connected" and normal["client_mode"] == "proxy" and normal["drift"] is False
    host = normal["_calls"]["host"]
    assert host.read_firewall() and host.writes() == [] and normal["_calls"]["ipr"].closed
    assert normal["probes"] == []


def test_missing_state_file_is_unmanaged(monkeypatch, tmp_path):
    result = run_module(monkeypatch, {"state_dir": str(tmp_path)}, live())
    assert result["client_mode"] == "unmanaged" and result["rules"] == [] and result["status"] == "connected"


def test_fail_on_disconnected(monkeypatch, state_dir):
    result = run_module(monkeypatch, {"state_dir": state_dir, "fail_on": ["disconnected"]}, live(handshake_age=None))
    assert result["failed"] and result["changed"] is False
    assert result["msg"] == "wg0: status is no-handshake (proxy no-handshake handshake=never drift=no)"
    assert result["status"] == "no-handshake"  # the full report comes with the failure


def test_fail_on_drift(monkeypatch, state_dir):
    assert "failed" not in run_module(monkeypatch, {"state_dir": state_dir, "fail_on": ["drift"]}, live())
    result = run_module(monkeypatch, {"state_dir": state_dir, "fail_on": ["drift"]}, live(), sync=False)
    assert result["failed"] and "drift in wg_dnat public" in result["msg"]


def test_fail_on_probe_turns_probes_on(monkeypatch, state_dir):
    # the hub address is loopback here: port 1 answers with RST, which counts as reachable
    result = run_module(monkeypatch, {"state_dir": state_dir, "fail_on": ["probe"], "hub_probe_port": 1,
                                      "probe_timeout": 0.5}, live())
    assert "failed" not in result, result.get("msg")
    assert [(p["name"], p["ok"]) for p in result["probes"]] == [("handshake", True), ("hub tunnel address", True)]
    result = run_module(monkeypatch, {"state_dir": state_dir, "fail_on": ["probe"]}, live(handshake_age=900))
    assert result["failed"] and "probes failed: handshake wg0" in result["msg"]


def test_bad_state_file_fails_with_one_message(monkeypatch, tmp_path):
    (tmp_path / "wg0.json").write_text(json.dumps(dict(STATE, version=7)))
    result = run_module(monkeypatch, {"state_dir": str(tmp_path)}, live())
    assert result["failed"] and "has version 7" in result["msg"] and result["changed"] is False


@pytest.mark.parametrize("args, message", [
    ({"fail_on": ["everything"]}, "fail_on"),
    ({"interface": "wg0;x"}, "invalid interface name"),
])
def test_bad_arguments(monkeypatch, tmp_path, args, message):
    result = run_module(monkeypatch, dict(args, state_dir=str(tmp_path)), live())
    assert result["failed"] and message in result["msg"]


def test_only_whitelisted_fields_reach_the_output(monkeypatch, state_dir):
    """Even if a reader leaked a secret field, the report copies only the fields it knows."""
    iface = live()
    iface["private_key"] = "SECRETPRIVATE" + "A" * 31
    iface["peers"][0]["preshared_key"] = "SECRETPSK" + "B" * 35
    result = run_module(monkeypatch, {"state_dir": state_dir, "probe": True, "hub_probe_port": 1}, iface)
    text = json.dumps(strip(result))
    assert "SECRET" not in text and "private_key" not in text and "preshared" not in text
    assert result["public_key"] == NOW_KEY and result["peers"][0]["public_key"] == HUB_KEY
