"""rule_set_status: the read-only report wg_status builds on. Commands are faked at the runner
(iptables-save/restore model from test_fw_iptables, nft from test_fw_nftables), Docker at the client."""

import os
import sys

import pytest

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import ValidationError
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.backend import RuleSet, rule_set_status
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.params import dnat_rules, module_params
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.containers import DockerResolver

sys.path.insert(0, os.path.dirname(__file__))
from test_fw_iptables import FakeRunner, which_all  # noqa: E402
from test_fw_nftables import FakeRunner as NftRunner  # noqa: E402
from test_fw_rules import FakeClient, FakeContainer, no_dns  # noqa: E402


class StatusRunner(FakeRunner):
    """The iptables model plus `wg show` (no WireGuard interface); records every call."""

    def run(self, argv, data=None, check=True, env=None):
        if argv[0] == "wg":
            return 1, "", "Unable to access interface"
        return super(StatusRunner, self).run(argv, data, check)


def factory(client):
    return lambda params: DockerResolver(client, network=params.get("docker_network"), not_found=(LookupError,),
                                         getaddrinfo=no_dns)


PUBLIC = {"name": "pub", "backend": "iptables", "in_interface": "eth0", "out_interface": "wg0", "masquerade": True,
          "compact_rules": ["80:10.7.0.2:80"]}
SHARE = {"name": "share", "backend": "iptables", "in_interface": "wg0", "docker_network": "svc",
         "rules": [{"port": 80, "to_container": "dummy"}, {"proto": "udp", "port": 53, "to_address": "172.30.0.9"}]}


def apply(runner, params, resolver_factory=None):
    """What the module does: the same params -> rules path, then the pipeline."""
    full = module_params("wg_dnat", params)
    rules = dnat_rules(full, runner, resolver_factory)
    RuleSet(runner, full["name"], full["backend"], which=which_all).run(rules, state=full["state"])


def mutating(runner):
    return [argv for argv, _d in runner.calls if argv[0].endswith("-restore") or argv[0] == "conntrack"]


def test_absent_set_is_reported_missing_and_nothing_is_run_that_writes():
    runner = StatusRunner()
    status = rule_set_status("wg_dnat", PUBLIC, runner, which=which_all)
    assert status["name"] == "pub" and status["module"] == "wg_dnat" and status["backend"] == "iptables"
    assert status["present"] is False and status["in_sync"] is False
    assert status["installed"] == [] and status["counters"] == [] and status["containers"] == []
    assert len(status["drift"]["missing"]) == len([x for x in status["expected"] if "(jump)" not in x])
    assert len(status["drift"]["missing_jumps"]) == 3 and sorted(status["drift"]) == [
        "chains", "extra", "extra_jumps", "missing", "missing_jumps", "order"]
    assert mutating(runner) == []


def test_in_sync_after_apply_then_drift_when_a_rule_is_deleted_by_hand():
    runner = StatusRunner()
    apply(runner, PUBLIC)
    runner.calls = []
    status = rule_set_status("wg_dnat", PUBLIC, runner, which=which_all)
    assert status["present"] and status["in_sync"], status["drift"]
    assert status["expected"] == status["installed"]
    assert status["counters"][0] == {"rule": status["installed"][0].replace("  (jump)", ""), "packets": 3, "bytes": 180}
    assert mutating(runner) == []
    deleted = runner.fam[4].tables["nat"]["WGSP-PUB-PRE"].pop()
    runner.fam[4].tables["filter"]["FORWARD"] = []
    status = rule_set_status("wg_dnat", PUBLIC, runner, which=which_all)
    assert status["in_sync"] is False
    assert status["drift"]["missing"] == ["ipv4 nat WGSP-PUB-PRE: %s" % deleted]
    assert status["drift"]["missing_jumps"] == [
        'ipv4 filter FORWARD: -A FORWARD -m comment --comment "wgsp:pub" -j WGSP-PUB-FWD']
    apply(runner, PUBLIC)
    assert rule_set_status("wg_dnat", PUBLIC, runner, which=which_all)["in_sync"]


def test_defaults_come_from_the_module_argspec():
    # masquerade defaults to false in the module: a set applied with the default is in sync
    runner = StatusRunner()
    params = dict(PUBLIC)
    del params["masquerade"]
    apply(runner, params)
    assert rule_set_status("wg_dnat", params, runner, which=which_all)["in_sync"]
    # ... and is not in sync with masquerade on
    assert not rule_set_status("wg_dnat", dict(params, masquerade=True), runner, which=which_all)["in_sync"]


def test_container_with_a_new_address_is_stale():
    runner = StatusRunner()
    client = FakeClient(FakeContainer("dummy", {"svc": {"IPAddress": "172.30.0.5"}}))
    apply(runner, SHARE, factory(client))
    runner.calls = []
    status = rule_set_status("wg_dnat", SHARE, runner, resolver_factory=factory(client), which=which_all)
    assert status["in_sync"] and status["containers"] == [
        {"container": "dummy", "rule": "rules[0]", "resolved": "172.30.0.5", "installed": ["172.30.0.5"], "stale": False}]
    # the container restarted and got another address
    client.containers.containers["dummy"] = FakeContainer("dummy", {"svc": {"IPAddress": "172.30.0.7"}})
    status = rule_set_status("wg_dnat", SHARE, runner, resolver_factory=factory(client), which=which_all)
    assert status["in_sync"] is False
    assert status["containers"][0]["stale"] is True and status["containers"][0]["resolved"] == "172.30.0.7"
    assert status["containers"][0]["installed"] == ["172.30.0.5"]
    assert any("172.30.0.7" in line for line in status["drift"]["missing"])
    assert mutating(runner) == []
    # a re-apply follows the container; the status agrees
    apply(runner, SHARE, factory(client))
    assert rule_set_status("wg_dnat", SHARE, runner, resolver_factory=factory(client), which=which_all)["in_sync"]


def test_missing_container_is_reported_not_raised():
    runner = StatusRunner()
    client = FakeClient(FakeContainer("dummy", {"svc": {"IPAddress": "172.30.0.5"}}))
    apply(runner, SHARE, factory(client))
    del client.containers.containers["dummy"]
    status = rule_set_status("wg_dnat", SHARE, runner, resolver_factory=factory(client), which=which_all)
    entry = status["containers"][0]
    assert entry["resolved"] is None and entry["stale"] and "no container named 'dummy'" in entry["error"]
    # the rest of the set is still compared (the rule is expected where it is installed)
    assert status["in_sync"] is False and status["drift"]["missing"] == [] and status["drift"]["extra"] == []


def test_nftables_status_and_counters():
    runner = NftRunner()
    params = dict(PUBLIC, backend="nftables", name="pub")
    full = module_params("wg_dnat", params)
    RuleSet(runner, "pub", "nftables", which=which_all).run(dnat_rules(full, _NoWg(runner)))
    status = rule_set_status("wg_dnat", params, _NoWg(runner), which=which_all)
    assert status["backend"] == "nftables" and status["in_sync"] and status["present"]
    assert status["counters"][0]["packets"] == 7
    runner.table = None
    status = rule_set_status("wg_dnat", params, _NoWg(runner), which=which_all)
    assert not status["present"] and not status["in_sync"] and status["drift"]["chains"]


class _NoWg:
    def __init__(self, runner):
        self.runner = runner

    def run(self, argv, data=None, check=True, env=None):
        if argv[0] == "wg":
            return 1, "", ""
        return self.runner.run(argv, data, check)


@pytest.mark.parametrize("module,params,field,text", [
    # judged by ansible-core's ArgumentSpecValidator, as the module itself would judge them
    ("wg_dnat", {"name": "pub", "bogus": 1}, "wg_dnat", "unsupported parameter bogus"),
    ("wg_dnat", {"backend": "iptables"}, "wg_dnat", "missing required arguments: name"),
    ("wg_dnat", {"name": "pub", "backend": "pf"}, "wg_dnat", "value of backend must be one of"),
    ("wg_dnat", {"name": "pub", "log": "maybe"}, "wg_dnat", "'log'"),
    # the mutual exclusion core reports in a suboption (the hand-written reader missed it)
    ("wg_dnat", {"name": "pub", "rules": [{"port": 80, "to_address": "10.7.0.2", "to_container": "web"}]},
     "wg_dnat", "mutually exclusive: to_address|to_container found in rules"),
    ("wg_filter", {"name": "iso", "allow": [{"port": 80, "bogus": 1}]}, "wg_filter", "bogus"),
    # then by the collection's own validators
    ("wg_dnat", {"name": "Bad-Name"}, "name", "name"),
    ("wg_dnat", {"name": "pub", "rules": [{"port": 0, "to_address": "10.7.0.2"}]}, "rules[0].port", "port"),
    ("wg_nat", {"name": "pub"}, "module", "wg_dnat, wg_filter"),
])
def test_bad_parameters_name_the_field(module, params, field, text):
    with pytest.raises(ValidationError) as info:
        rule_set_status(module, params, StatusRunner(), which=which_all)
    assert info.value.field == field and text in info.value.msg
