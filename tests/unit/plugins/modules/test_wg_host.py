"""wg_host through main(): forwarding now and at boot, the status record, packages, kernel, systemd, interfaces.

The host is faked at its boundaries only: the commands (``AnsibleModule.run_command`` and
``get_bin_path``: modinfo, dpkg-query, ip) and the kernel's files (/proc/sys/net/ipv4/ip_forward,
/sys/module/wireguard, /run/systemd/system moved under tmp_path). Files are written for real.
"""

import json
import os
import stat

import pytest

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common import systemd as systemd_
from ansible_collections.wgsp.service_proxy.plugins.modules import wg_host
from modharness import FakeTools, call_main, patch_commands

IP_JSON = json.dumps([
    {"ifname": "lo", "addr_info": [{"family": "inet", "local": "127.0.0.1"}]},
    {"ifname": "eth0", "addr_info": [{"family": "inet", "local": "203.0.113.20"},
                                     {"family": "inet", "local": "203.0.113.21"},
                                     {"family": "inet6", "local": "2001:db8::20"}]},
    {"ifname": "br-ab12", "addr_info": []},
])


class Host(FakeTools):
    """The commands of the faked host, each recorded."""

    def __init__(self, installed=("wireguard-tools", "iproute2"), modinfo_rc=1,
                 tools=("modinfo", "dpkg-query", "ip", "systemctl"), units=None, enable_rc=0):
        self.installed = set(installed)
        self.units = dict(units or {})  # unit -> what `systemctl is-enabled` prints
        self.enable_rc = enable_rc
        self.modinfo_rc = modinfo_rc
        self.tools = tools
        self.calls = []

    def run_command(self, module, argv, **kwargs):
        self.calls.append(list(argv))
        name = os.path.basename(argv[0])
        if name == "modinfo":
            return self.modinfo_rc, "wireguard\n" if self.modinfo_rc == 0 else "", ""
        if name == "dpkg-query":
            assert argv[1:3] == ["-W", "-f"] and argv[3] == "${Package} ${db:Status-Abbrev}\\n"
            lines = ["%s %s" % (pkg, "ii " if pkg in self.installed else "un ") for pkg in argv[4:]]
            return (0 if all(p in self.installed for p in argv[4:]) else 1), "\n".join(lines) + "\n", ""
        if name == "systemctl":
            assert argv[2] == "--" and len(argv) == 4
            state = self.units.get(argv[3], "")
            if argv[1] == "is-enabled":
                return (0 if state in ("enabled", "static", "enabled-runtime") else 1), state + "\n", ""
            assert argv[1] == "enable"
            if self.enable_rc == 0:
                self.units[argv[3]] = "enabled"
                return 0, "", "Created symlink ...\n"
            return self.enable_rc, "", "Failed to enable unit: Unit file %s is masked.\n" % argv[3]
        if argv[1:3] == ["-j", "address"]:
            return 0, IP_JSON, ""
        if argv[1:4] == ["-j", "-4", "route"]:
            return 0, json.dumps([{"dst": "default", "dev": "eth0"}]), ""
        raise AssertionError("unexpected command %r" % (argv,))


@pytest.fixture
def kernel(tmp_path, monkeypatch):
    """The kernel's files under tmp_path: forwarding off, no WireGuard module loaded, no systemd."""
    proc = tmp_path / "ip_forward"
    proc.write_text("0\n")
    monkeypatch.setattr(wg_host, "IP_FORWARD", str(proc))
    proc6 = tmp_path / "ipv6_forwarding"
    proc6.write_text("0\n")
    monkeypatch.setattr(wg_host, "IP6_FORWARD", str(proc6))
    monkeypatch.setattr(wg_host, "SYS_WIREGUARD", str(tmp_path / "sys-module-wireguard"))
    monkeypatch.setattr(systemd_, "RUNNING", str(tmp_path / "run-systemd-system"))
    return tmp_path


def run(monkeypatch, args, host=None, check_mode=False, diff=False):
    host = host or Host()
    patch_commands(monkeypatch, host)
    result = call_main(monkeypatch, wg_host.main, args, check_mode=check_mode, diff=diff)
    result["_host"] = host
    return result


def test_forwarding_on_now_and_at_boot_then_nothing_to_do(kernel, monkeypatch):
    conf = kernel / "sysctl.d" / "60-wgsp-forwarding.conf"
    args = {"forwarding": True, "sysctl_path": str(conf)}
    first = run(monkeypatch, args, diff=True)
    assert first["changed"] and first["changes"] == ["forwarding", "sysctl_path"] and first["forwarding"] is True
    assert (kernel / "ip_forward").read_text() == "1\n"
    assert conf.read_text().endswith("net.ipv4.ip_forward = 1\n") and stat.S_IMODE(conf.stat().st_mode) == 0o644
    assert [d["after_header"] for d in first["diff"]] == [str(kernel / "ip_forward"), str(conf)]
    again = run(monkeypatch, args, diff=True)
    assert not again["changed"] and again["changes"] == [] and "diff" not in again


def test_ipv6_forwarding_beside_ipv4_in_the_same_file_then_nothing_to_do(kernel, monkeypatch):
    conf = kernel / "sysctl.d" / "60-wgsp-forwarding.conf"
    args = {"forwarding": True, "forwarding_ipv6": True, "sysctl_path": str(conf)}
    check = run(monkeypatch, args, check_mode=True)
    assert check["changes"] == ["forwarding", "forwarding_ipv6", "sysctl_path"] and check["forwarding_ipv6"] is True
    assert (kernel / "ipv6_forwarding").read_text() == "0\n" and not conf.exists()
    first = run(monkeypatch, args)
    assert first["changes"] == ["forwarding", "forwarding_ipv6", "sysctl_path"]
    assert (kernel / "ipv6_forwarding").read_text() == "1\n" and (kernel / "ip_forward").read_text() == "1\n"
    assert conf.read_text().endswith("net.ipv4.ip_forward = 1\nnet.ipv6.conf.all.forwarding = 1\n")
    assert run(monkeypatch, args)["changes"] == []
    # IPv4 only again: the file loses the IPv6 line, the live IPv6 switch is left as it is
    only4 = run(monkeypatch, {"forwarding": True, "sysctl_path": str(conf)})
    assert only4["changes"] == ["sysctl_path"] and only4["forwarding_ipv6"] is True
    assert "ipv6" not in conf.read_text()


def test_ipv6_forwarding_is_not_asked_unless_wanted(kernel, monkeypatch):
    result = run(monkeypatch, {"forwarding": True, "sysctl_path": str(kernel / "60.conf")})
    assert result["forwarding_ipv6"] is False and (kernel / "ipv6_forwarding").read_text() == "0\n"


def test_check_mode_reports_and_writes_nothing(kernel, monkeypatch):
    conf = kernel / "sysctl.d" / "60-wgsp-forwarding.conf"
    record = kernel / "state" / "wg0.json"
    result = run(monkeypatch, {"forwarding": True, "sysctl_path": str(conf), "record_path": str(record),
                               "record": {"version": 1}}, check_mode=True, diff=True)
    assert result["changed"] and result["changes"] == ["forwarding", "sysctl_path", "record_path"]
    assert result["forwarding"] is True  # as it would be
    assert (kernel / "ip_forward").read_text() == "0\n" and not conf.exists() and not record.parent.exists()


def test_forwarding_already_on_is_not_written(kernel, monkeypatch):
    """A container's /proc/sys is read-only: a value already 1 must not be written."""
    (kernel / "ip_forward").write_text("1\n")
    os.chmod(str(kernel / "ip_forward"), 0o444)
    conf = kernel / "60.conf"
    result = run(monkeypatch, {"forwarding": True, "sysctl_path": str(conf)})
    assert result["changes"] == ["sysctl_path"] and not result.get("failed")


def test_record_is_the_json_the_roles_always_wrote(kernel, monkeypatch):
    """Sorted keys, indent 4, a final newline (Ansible's to_nice_json): a host converged by the earlier
    copy task keeps its file, and a second run writes nothing."""
    record = {"version": 1, "interface": "wg0", "rule_sets": [{"name": "share", "params": {"b": 1, "a": [80]}}],
              "address": ["10.7.0.2/32"], "public_exposure": False}
    path = kernel / "state" / "wg0.json"
    path.parent.mkdir()
    path.write_text(json.dumps(record, indent=4, sort_keys=True, separators=(",", ": ")) + "\n")
    os.chmod(str(path), 0o644)
    assert not run(monkeypatch, {"record_path": str(path), "record": record})["changed"]
    record["public_exposure"] = True
    changed = run(monkeypatch, {"record_path": str(path), "record": record}, diff=True)
    assert changed["changes"] == ["record_path"] and json.loads(path.read_text())["public_exposure"] is True
    assert '"public_exposure": false' in changed["diff"][0]["before"]
    os.chmod(str(path), 0o600)
    assert run(monkeypatch, {"record_path": str(path), "record": record})["changes"] == ["record_path"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644


@pytest.mark.parametrize("args, field", [
    ({"record": {"a": 1}}, "record_path: is required with record"),
    ({"record_path": "/tmp/x.json"}, "record: is required with record_path"),
    ({"record": {"a": 1}, "record_path": "state/wg0.json"}, "record_path: must be an absolute path"),
    ({"forwarding": True, "sysctl_path": "/etc/sysctl.d/"}, "sysctl_path: must name a file"),
    ({"packages": ["wireguard-tools", "x; rm -rf /"]}, "packages: 'x; rm -rf /' is not a Debian package name"),
    ({"userspace_packages": ["-o"]}, "userspace_packages: '-o' is not a Debian package name"),
])
def test_bad_input_fails_naming_the_field_before_any_change(kernel, monkeypatch, args, field):
    result = run(monkeypatch, dict(args, forwarding=args.get("forwarding", False)))
    assert result["failed"] and result["msg"].startswith(field)
    assert (kernel / "ip_forward").read_text() == "0\n"
    assert result["_host"].calls == []


def test_a_directory_at_the_record_path_is_refused(kernel, monkeypatch):
    (kernel / "wg0.json").mkdir()
    result = run(monkeypatch, {"record_path": str(kernel / "wg0.json"), "record": {"a": 1}})
    assert result["failed"] and result["msg"] == "record_path: %s is a directory" % (kernel / "wg0.json")


def test_packages_missing_and_wireguard_go_only_without_the_kernel_module(kernel, monkeypatch):
    args = {"packages": ["wireguard-tools", "iproute2", "nftables"], "userspace_packages": ["wireguard-go"]}
    result = run(monkeypatch, args)
    assert result["kernel_wireguard"] is False and result["packages_missing"] == ["nftables", "wireguard-go"]
    assert not result["changed"]
    # modinfo finds the module: no wireguard-go
    result = run(monkeypatch, args, host=Host(modinfo_rc=0))
    assert result["kernel_wireguard"] is True and result["packages_missing"] == ["nftables"]
    # loaded: modinfo is not even asked
    (kernel / "sys-module-wireguard").mkdir()
    result = run(monkeypatch, args, host=Host(installed=("wireguard-tools", "iproute2", "nftables")))
    assert result["packages_missing"] == [] and not any("modinfo" in c[0] for c in result["_host"].calls)


def test_no_modinfo_means_no_kernel_module(kernel, monkeypatch):
    result = run(monkeypatch, {}, host=Host(tools=("dpkg-query",)))
    assert result["kernel_wireguard"] is False and result["packages_missing"] == []


def test_systemd_is_what_sd_booted_checks(kernel, monkeypatch):
    assert run(monkeypatch, {})["systemd"] is False
    (kernel / "run-systemd-system").mkdir()
    assert run(monkeypatch, {})["systemd"] is True


def test_network_in_the_shape_of_ansible_facts(kernel, monkeypatch):
    result = run(monkeypatch, {"network": True})
    net = result["network"]
    assert net["interfaces"] == ["lo", "eth0", "br-ab12"] and net["default_ipv4"] == {"interface": "eth0"}
    assert net["eth0"] == {"ipv4": {"address": "203.0.113.20"}, "ipv4_secondaries": [{"address": "203.0.113.21"}],
                           "ipv6": [{"address": "2001:db8::20"}]}
    assert net["br_ab12"] == {"ipv4_secondaries": [], "ipv6": []}
    assert "network" not in run(monkeypatch, {})


def test_the_public_interface_filter_reads_the_network_report(kernel, monkeypatch):
    """proxy_client picks its public interface from this report (no fact gathering)."""
    from ansible_collections.wgsp.service_proxy.plugins.filter.service_proxy import public_interface

    net = run(monkeypatch, {"network": True})["network"]
    assert public_interface("auto", net) == "eth0"
    assert public_interface("203.0.113.0/24", net) == "eth0"
    assert public_interface("2001:db8::/64", net) == "eth0"
    assert public_interface("br-ab12", net) == "br-ab12"
    assert public_interface("wgsp-public", net) is None  # a Docker network name: the role looks it up


def test_boot_units_enabled_once_where_systemd_runs(kernel, monkeypatch):
    (kernel / "run-systemd-system").mkdir()
    record = kernel / "state" / "wg0.json"
    args = {"boot_units": ["wg-quick@wg0"], "record_path": str(record), "record": {"version": 1}}
    host = Host(units={"wg-quick@wg0": "disabled"})
    check = run(monkeypatch, args, host=host, check_mode=True, diff=True)
    assert check["changed"] and check["changes"] == ["boot_units:wg-quick@wg0", "record_path"]
    assert host.units["wg-quick@wg0"] == "disabled" and not record.exists()
    header = "systemctl is-enabled wg-quick@wg0"
    assert check["diff"][0] == {"before_header": header, "after_header": header, "before": "disabled\n",
                                "after": "enabled\n"}
    first = run(monkeypatch, args, host=host)
    assert first["changes"] == ["boot_units:wg-quick@wg0", "record_path"] and host.units["wg-quick@wg0"] == "enabled"
    host.calls = []
    again = run(monkeypatch, args, host=host)
    assert not again["changed"] and [c[1] for c in host.calls if c[0].endswith("systemctl")] == ["is-enabled"]


def test_enabled_runtime_is_made_persistent_and_static_is_left_alone(kernel, monkeypatch):
    (kernel / "run-systemd-system").mkdir()
    host = Host(units={"wg-quick@wg0": "enabled-runtime", "other.service": "static"})
    result = run(monkeypatch, {"boot_units": ["wg-quick@wg0", "other.service"]}, host=host)
    assert result["changes"] == ["boot_units:wg-quick@wg0"]
    assert [c[1:] for c in host.calls if c[0].endswith("systemctl") and c[1] == "enable"] == [
        ["enable", "--", "wg-quick@wg0"]]


def test_boot_units_without_systemd_are_left_alone(kernel, monkeypatch):
    host = Host(units={"wg-quick@wg0": "disabled"})
    result = run(monkeypatch, {"boot_units": ["wg-quick@wg0"]}, host=host)
    assert not result["changed"] and result["systemd"] is False
    assert not any(c[0].endswith("systemctl") for c in host.calls)


def test_a_unit_that_cannot_be_enabled_fails_before_the_record(kernel, monkeypatch):
    (kernel / "run-systemd-system").mkdir()
    record = kernel / "wg0.json"
    host = Host(units={"wg-quick@wg0": "masked"}, enable_rc=1)
    result = run(monkeypatch, {"boot_units": ["wg-quick@wg0"], "record_path": str(record), "record": {"a": 1}},
                 host=host)
    assert result["failed"] and result["field"] == "boot_units" and "masked" in result["msg"]
    assert not record.exists()


@pytest.mark.parametrize("unit", ["-x", "wg quick", "wg-quick@wg0;reboot", "a\nb", "", "x" * 256])
def test_bad_unit_names_are_refused_before_any_command(kernel, monkeypatch, unit):
    (kernel / "run-systemd-system").mkdir()
    host = Host()
    result = run(monkeypatch, {"boot_units": ["wg-quick@wg0", unit], "forwarding": True,
                               "sysctl_path": str(kernel / "60.conf")}, host=host)
    assert result["failed"] and result["field"] == "boot_units[1]" and host.calls == []
    assert (kernel / "ip_forward").read_text() == "0\n"
