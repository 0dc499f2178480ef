"""persist_path: the boot script's content per backend, its safety checks, and the atomic write."""

import os
import stat
import sys

import pytest

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import ValidationError, WgspError
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.files import check_path_limits, make_dirs
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.backend import RuleSet, persist_rule_set
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.params import check_persist_path
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.persist import HEREDOC, iptables_script
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.rules import normalise
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.state import Desired

sys.path.insert(0, os.path.dirname(__file__))
from test_fw_iptables import FakeRunner, which_all  # noqa: E402
from test_fw_nftables import FakeRunner as NftRunner  # noqa: E402

RULES = [{"port": 80, "to_address": "10.7.0.2"}, {"proto": "udp", "port": 53, "to_address": "fd00:7::2", "log": True}]


def planned(runner, backend):
    rs = RuleSet(runner, "pub", backend, which=which_all)
    rs.run(normalise(RULES, defaults={"in_interface": "eth0"}), check_mode=True)
    return rs


def test_iptables_script_restores_own_chains_and_checks_each_jump(tmp_path):
    rs = planned(FakeRunner(), "iptables")
    path = str(tmp_path / "pub.rules")
    result = persist_rule_set("wg_dnat", rs, path, "present")
    text = open(path).read()
    assert result["changed"] and result["diff"][0]["after"] == text and text.startswith("#!/bin/sh\n")
    assert "set -e\n" in text
    assert text.count("iptables-restore -w --noflush <<'%s'\n" % HEREDOC) == 1
    assert text.count("ip6tables-restore -w --noflush <<'%s'\n" % HEREDOC) == 1
    assert ":WGSP-PUB-PRE - [0:0]\n" in text and "\n-A WGSP-PUB-PRE -i eth0 -p tcp" in text
    # every word of a shell command line is quoted by shlex.quote (a word of safe characters stays bare)
    assert ('iptables -w -t nat -C PREROUTING -m comment --comment wgsp:pub -j WGSP-PUB-PRE 2>/dev/null || '
            'iptables -w -t nat -I PREROUTING 1 -m comment --comment wgsp:pub -j WGSP-PUB-PRE\n') in text
    assert 'if ip6tables -w -t filter -S DOCKER-USER >/dev/null 2>&1; then fwd=DOCKER-USER; fi\n' in text
    assert '-I "$fwd" 1 -m comment --comment wgsp:pub -j WGSP-PUB-FWD' in text
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    # the same desired state -> no write at all
    mtime = os.stat(path).st_mtime_ns
    assert persist_rule_set("wg_dnat", rs, path, "present")["changed"] is False
    assert os.stat(path).st_mtime_ns == mtime
    # a wrong mode is a change too
    os.chmod(path, 0o600)
    assert persist_rule_set("wg_dnat", rs, path, "present")["changed"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_docker_user_at_apply_time_is_where_the_boot_script_jumps_from(tmp_path):
    plain = iptables_script("wg_dnat", "pub", planned(FakeRunner(), "iptables").desired)
    docker = FakeRunner()
    docker.fam[4].tables["filter"]["DOCKER-USER"] = []
    with_docker = iptables_script("wg_dnat", "pub", planned(docker, "iptables").desired)
    # without Docker: FORWARD, or DOCKER-USER if Docker has appeared by boot time
    assert "if iptables -w -t filter -S DOCKER-USER >/dev/null 2>&1; then fwd=DOCKER-USER; fi\n" in plain
    assert "-N DOCKER-USER" not in plain
    # applied under Docker: the tunnel may come up first at boot, so the script makes DOCKER-USER
    # (as Docker would) and the set is back exactly where it was applied once Docker starts
    assert ("iptables -w -t filter -S DOCKER-USER >/dev/null 2>&1 || { iptables -w -t filter -N DOCKER-USER && "
            "iptables -w -t filter -I FORWARD 1 -j DOCKER-USER; }\nfwd=DOCKER-USER\n") in with_docker
    assert '-I "$fwd" 1 -m comment --comment wgsp:pub -j WGSP-PUB-FWD' in with_docker


def test_nft_script_loads_the_table_replace_file(tmp_path):
    rs = planned(NftRunner(), "nftables")
    path = str(tmp_path / "pub.rules")
    persist_rule_set("wg_dnat", rs, path, "present")
    text = open(path).read()
    body = text.split("nft -f - <<'%s'\n" % HEREDOC, 1)[1].rsplit(HEREDOC + "\n", 1)[0]
    assert body == rs.backend.render_file("pub", rs.desired)
    assert body.startswith("table inet wgsp-dnat-pub {\n}\ndelete table inet wgsp-dnat-pub\n")


def test_check_mode_and_absent(tmp_path):
    rs = planned(FakeRunner(), "iptables")
    path = str(tmp_path / "sub" / "pub.rules")
    result = persist_rule_set("wg_dnat", rs, path, "present", check_mode=True)
    assert result["changed"] and not os.path.exists(path) and result["diff"][0]["before"] == ""
    persist_rule_set("wg_dnat", rs, path, "present")
    assert os.path.exists(path)
    assert persist_rule_set("wg_dnat", rs, path, "absent", check_mode=True)["changed"] and os.path.exists(path)
    assert persist_rule_set("wg_dnat", rs, path, "absent")["changed"] and not os.path.exists(path)
    assert persist_rule_set("wg_dnat", rs, path, "absent")["changed"] is False
    assert persist_rule_set("wg_dnat", rs, None, "present") is None
    assert os.listdir(str(tmp_path / "sub")) == []  # no temporary file left behind


@pytest.mark.parametrize("entry", [
    ("ipv4 nat", "WGSP-PUB-PRE", "-A WGSP-PUB-PRE -j ACCEPT; reboot"),
    ("ipv4 nat", "WGSP-PUB-PRE", "-A WGSP-PUB-PRE $(reboot)"),
    ("ipv4 nat", "WGSP-PUB-PRE", "-A WGSP-PUB-PRE -m comment --comment \"x"),
    ("ipv4 nat", "WGSP-PUB-PRE", HEREDOC),
])
def test_unexpected_text_never_reaches_the_script(entry):
    desired = Desired("iptables", "pub")
    desired.chains[(entry[0], entry[1])] = ""
    desired.entries.append(entry)
    with pytest.raises(WgspError):
        iptables_script("wg_dnat", "pub", desired)


@pytest.mark.parametrize("bad", ["rel/path", "/etc/a b", "/etc/x;y", "/etc/$(x)", "/etc/../x", "/etc/x\n",
                                 "/etc/`x`", "/" + "a" * 1100, "/etc/"])
def test_bad_persist_path(bad):
    with pytest.raises(ValidationError) as info:
        check_persist_path("persist_path", bad)
    assert info.value.field == "persist_path"


def test_persist_reports_write_errors(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    rs = planned(FakeRunner(), "iptables")
    with pytest.raises(ValidationError) as info:
        persist_rule_set("wg_dnat", rs, str(blocker / "sub" / "x.rules"), "present")
    assert info.value.field == "persist_path" and "is not a directory" in info.value.msg


@pytest.mark.parametrize("content", ["yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n",
                                     "#!/bin/sh\n# Generated by wgsp.service_proxy.wg_filter: rule set pub (x).\n"])
@pytest.mark.parametrize("state", ["present", "absent"])
def test_a_file_that_is_not_this_sets_script_is_refused(tmp_path, content, state):
    rs = planned(FakeRunner(), "iptables")
    path = tmp_path / "wg0.key"
    path.write_text(content)
    with pytest.raises(ValidationError) as info:
        persist_rule_set("wg_dnat", rs, str(path), state, check_mode=True)
    assert info.value.field == "persist_path" and "refusing" in info.value.msg
    assert content.split("\n")[0] not in info.value.msg and path.read_text() == content


def test_absent_without_a_path_removes_what_the_set_recorded(tmp_path, _boot_script_records):
    rs = planned(FakeRunner(), "iptables")
    path = str(tmp_path / "pub.rules")
    persist_rule_set("wg_dnat", rs, path, "present")
    assert os.listdir(_boot_script_records) == ["wg_dnat.pub"]
    assert persist_rule_set("wg_dnat", rs, None, "present") is None and os.path.exists(path)
    result = persist_rule_set("wg_dnat", rs, None, "absent")
    assert result["changed"] and result["removed"] == [path] and not os.path.exists(path)
    assert os.listdir(_boot_script_records) == []
    assert persist_rule_set("wg_dnat", rs, None, "absent") is None


def test_make_dirs_sets_every_mode_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        created = make_dirs(str(tmp_path / "a" / "b" / "c"), 0o750)
    finally:
        os.umask(old)
    assert created == [str(tmp_path / "a"), str(tmp_path / "a" / "b"), str(tmp_path / "a" / "b" / "c")]
    assert [stat.S_IMODE(os.stat(p).st_mode) for p in created] == [0o750] * 3
    assert make_dirs(str(tmp_path / "a" / "b"), 0o700) == []


@pytest.mark.parametrize("path, ok", [("/etc/" + "a" * 255, True), ("/etc/" + "a" * 256, False),
                                      ("/" + "/".join(["a" * 200] * 25), False)])
def test_path_limits(path, ok):
    if ok:
        assert check_path_limits("p", path) == path
    else:
        with pytest.raises(ValidationError):
            check_path_limits("p", path)
