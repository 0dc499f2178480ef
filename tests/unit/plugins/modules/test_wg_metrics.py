"""wg_metrics through main(): the writer, its systemd timer or cron entry, check and diff mode, removal.

The host is faked at its boundaries only: ``systemctl`` and which tools exist (``run_command``,
``get_bin_path``), and the places systemd and cron read (/run/systemd/system, /etc/systemd/system,
/etc/cron.d moved under tmp_path). Files are written for real, and the writer the module installs is
run for real (with this Python) each time the module runs it: the metrics file it leaves is read
with Prometheus' own parser."""

import os
import subprocess

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common import systemd as systemd_
from ansible_collections.wgsp.service_proxy.plugins.modules import wg_metrics
from modharness import FakeTools, call_main, patch_commands


class Host(FakeTools):
    def __init__(self, tools=("systemctl",)):
        self.tools = set(tools)
        self.units = {}  # unit -> (is-enabled, is-active)
        self.calls = []
        self.writer_runs = 0

    def run_command(self, module, argv, **kwargs):
        argv = list(argv)
        if os.path.basename(argv[0]) == "systemctl":
            self.calls.append(argv[1:])
            verb, unit = argv[1], argv[-1]
            enabled, active = self.units.get(unit, ("disabled", "inactive"))
            if verb == "is-enabled":
                return (0 if enabled == "enabled" else 1), enabled + "\n", ""
            if verb == "is-active":
                return (0 if active == "active" else 3), active + "\n", ""
            if verb == "enable":
                self.units[unit] = ("enabled", active)
            elif verb in ("start", "restart"):
                self.units[unit] = (enabled, "active")
            elif verb == "disable":
                self.units.pop(unit, None)
            return 0, "", ""
        assert argv[1].endswith("wgsp-metrics.pyz"), argv  # the only other command: the writer itself
        self.writer_runs += 1
        proc = subprocess.run([argv[0], "-I"] + argv[1:], capture_output=True, text=True, timeout=60, check=False)
        return proc.returncode, proc.stdout, proc.stderr

    def writes(self):
        return [c for c in self.calls if c[0] not in ("is-enabled", "is-active")]


@pytest.fixture
def host(monkeypatch, tmp_path):
    fake = Host()
    patch_commands(monkeypatch, fake)
    for name in ("run_systemd", "units", "cron.d"):
        (tmp_path / name).mkdir()
    monkeypatch.setattr(systemd_, "RUNNING", str(tmp_path / "run_systemd"))
    monkeypatch.setattr(wg_metrics, "UNIT_DIR", str(tmp_path / "units"))
    monkeypatch.setattr(wg_metrics, "CRON_DIR", str(tmp_path / "cron.d"))
    fake.tmp = tmp_path
    return fake


def args(tmp_path, **extra):
    base = {"interface": "wgspunit0", "state_dir": str(tmp_path / "state"), "textfile_dir": str(tmp_path / "textfile"),
            "writer_dir": str(tmp_path / "lib")}
    base.update(extra)
    return base


def run(monkeypatch, module_args, check_mode=False, diff=False):
    return call_main(monkeypatch, wg_metrics.main, module_args, check_mode=check_mode, diff=diff)


def snapshot(root):
    out = {}
    for base, _dirs, files in os.walk(str(root)):
        for name in files:
            path = os.path.join(base, name)
            st = os.stat(path)
            out[path] = (st.st_mtime_ns, st.st_mode & 0o777)
    return out


def metric(path, name, **labels):
    with open(path) as handle:
        for family in text_string_to_metric_families(handle.read()):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    return sample.value
    return None


def test_systemd_timer_installed_started_and_a_rerun_changes_nothing(monkeypatch, host):
    result = run(monkeypatch, args(host.tmp))
    assert result["changed"] is True and not result.get("failed"), result
    assert result["scheduler"] == "systemd"
    units = host.tmp / "units"
    assert sorted(os.listdir(str(units))) == ["wgsp-metrics-wgspunit0.service", "wgsp-metrics-wgspunit0.timer"]
    service = (units / "wgsp-metrics-wgspunit0.service").read_text()
    assert "ExecStart=%s\n" % " ".join(result["command"]) in service
    # the run checks its timer still exists before it writes (a removal while it ran wins)
    assert result["command"][-2:] == ["--schedule", str(units / "wgsp-metrics-wgspunit0.timer")]
    timer = (units / "wgsp-metrics-wgspunit0.timer").read_text()
    assert "OnUnitInactiveSec=60s" in timer and "WantedBy=timers.target" in timer
    assert host.writes() == [["daemon-reload"], ["enable", "wgsp-metrics-wgspunit0.timer"],
                             ["start", "wgsp-metrics-wgspunit0.timer"]]
    # the writer ran once at once: the file exists, read by Prometheus' parser (no interface here: absent)
    prom = result["metrics_file"]
    assert prom == str(host.tmp / "textfile" / "wgsp_wgspunit0.prom") and host.writer_runs == 1
    assert metric(prom, "wgsp_collect_success") == 1
    assert metric(prom, "wgsp_status", status="absent") == 1
    assert oct(os.stat(result["writer"]).st_mode & 0o777) == "0o644"

    before = snapshot(host.tmp)
    host.calls.clear()
    monkeypatch.setattr(wg_metrics.bundle, "build", no_build)  # the installed writer's digest says it is current
    again = run(monkeypatch, args(host.tmp))
    assert again["changed"] is False and again["changes"] == [], again
    assert snapshot(host.tmp) == before and host.writes() == [] and host.writer_runs == 1


def no_build(*args, **kwargs):
    raise AssertionError("the writer zip was built again")


def test_a_writer_built_from_other_sources_is_replaced(monkeypatch, host):
    first = run(monkeypatch, args(host.tmp))
    with open(first["writer"], "wb") as handle:  # an older collection's writer: another digest
        handle.write(wg_metrics.bundle.build(files=dict(wg_metrics.bundle.sources(), **{"old.py": b""})))
    again = run(monkeypatch, args(host.tmp), diff=True)
    assert again["changed"] and again["changes"][0] == "write %s" % first["writer"], again
    assert wg_metrics.bundle.installed_digest(first["writer"]) == wg_metrics.bundle.digest(wg_metrics.bundle.sources())


def test_check_mode_changes_nothing_and_diff_shows_the_files(monkeypatch, host):
    result = run(monkeypatch, args(host.tmp), check_mode=True, diff=True)
    assert result["changed"] is True and host.writes() == [] and host.writer_runs == 0
    assert not os.path.exists(str(host.tmp / "lib")) and os.listdir(str(host.tmp / "units")) == []
    headers = [d["after_header"] for d in result["diff"]]
    assert headers == sorted(result["files"])
    writer = [d for d in result["diff"] if d["after_header"].endswith(".pyz")][0]
    assert writer["before"] == "" and writer["after"].startswith("sha256 ")
    assert "systemctl enable wgsp-metrics-wgspunit0.timer" in result["changes"]


def test_a_changed_interval_rewrites_the_timer_and_restarts_it(monkeypatch, host):
    run(monkeypatch, args(host.tmp))
    host.calls.clear()
    result = run(monkeypatch, args(host.tmp, interval=30))
    assert result["changed"] is True
    assert "OnUnitInactiveSec=30s" in (host.tmp / "units" / "wgsp-metrics-wgspunit0.timer").read_text()
    assert host.writes() == [["daemon-reload"], ["restart", "wgsp-metrics-wgspunit0.timer"]]


def test_cron_where_systemd_does_not_run(monkeypatch, host):
    os.rmdir(str(host.tmp / "run_systemd"))
    host.tools.add("cron")
    result = run(monkeypatch, args(host.tmp, interval=300, probe=True))
    assert result["changed"] is True and result["scheduler"] == "cron", result
    entry = (host.tmp / "cron.d" / "wgsp-metrics-wgspunit0").read_text()
    assert "*/5 * * * * root %s >/dev/null\n" % " ".join(result["command"]) in entry
    assert "--probe" in result["command"] and host.calls == []
    assert metric(result["metrics_file"], "wgsp_collect_success") == 1


def test_cron_needs_whole_minutes_that_divide_an_hour(monkeypatch, host):
    os.rmdir(str(host.tmp / "run_systemd"))
    host.tools.add("cron")
    result = run(monkeypatch, args(host.tmp, interval=90))
    assert result["failed"] and result["msg"].startswith("interval: cron runs whole minutes"), result
    assert not os.path.exists(str(host.tmp / "lib")) and os.listdir(str(host.tmp / "cron.d")) == []


def test_neither_systemd_nor_cron_is_a_clear_error(monkeypatch, host):
    os.rmdir(str(host.tmp / "run_systemd"))
    result = run(monkeypatch, args(host.tmp))
    assert result["failed"] and result["msg"].startswith("scheduler: this host runs neither systemd"), result
    assert "scheduler=none" in result["msg"] and not os.path.exists(str(host.tmp / "lib"))


def test_scheduler_none_installs_the_writer_only(monkeypatch, host):
    result = run(monkeypatch, args(host.tmp, scheduler="none"))
    assert result["changed"] and result["files"] == [result["writer"]] and host.writes() == []
    assert metric(result["metrics_file"], "wgsp_collect_success") == 1


@pytest.mark.parametrize("field,value,word", [
    ("textfile_dir", "relative/dir", "textfile_dir: must be an absolute path"),
    ("textfile_dir", "/var/lib/node exporter", "textfile_dir: must be an absolute path from"),
    ("writer_dir", "/usr/local/lib/wgsp;rm", "writer_dir: must be an absolute path from"),
    ("state_dir", "/etc/%h", "state_dir: must be an absolute path from"),
    ("interface", "wg0\nx", "interface: must not contain a newline"),
    ("interval", 5, "interval: must be"),
    ("fresh_seconds", 0, "fresh_seconds: must be"),
])
def test_bad_input_names_the_field_and_changes_nothing(monkeypatch, host, field, value, word):
    result = run(monkeypatch, args(host.tmp, **{field: value}))
    assert result["failed"] and result["msg"].startswith(word), result["msg"]
    assert snapshot(host.tmp) == {} and host.writes() == []


def test_interface_names_become_unit_and_cron_names_one_to_one():
    assert wg_metrics.token("wg0") == "wg0"
    assert wg_metrics.token("wg.0") == "wg_2e0"
    assert wg_metrics.token("wg_0") == "wg_5f0"
    assert wg_metrics.token("a=b-c") == "a_3db-c"


def test_absent_removes_the_schedule_the_file_and_the_last_writer(monkeypatch, host):
    first = run(monkeypatch, args(host.tmp))
    other = run(monkeypatch, args(host.tmp, interface="wg1"))
    assert first["writer"] == other["writer"]
    host.calls.clear()
    result = run(monkeypatch, args(host.tmp, state="absent"))
    assert result["changed"] and os.path.exists(first["writer"])  # wg1 still uses it
    assert not os.path.exists(first["metrics_file"])
    assert sorted(os.listdir(str(host.tmp / "units"))) == ["wgsp-metrics-wg1.service", "wgsp-metrics-wg1.timer"]
    assert host.writes() == [["disable", "--now", "wgsp-metrics-wgspunit0.timer"],
                             ["stop", "wgsp-metrics-wgspunit0.service"], ["daemon-reload"]]
    result = run(monkeypatch, args(host.tmp, interface="wg1", state="absent"))
    assert result["changed"] and not os.path.exists(first["writer"])
    again = run(monkeypatch, args(host.tmp, interface="wg1", state="absent"))
    assert again["changed"] is False


def test_moving_from_systemd_to_cron_stops_the_timer_and_a_run_under_way(monkeypatch, host):
    host.tools.add("cron")
    run(monkeypatch, args(host.tmp))
    host.calls.clear()
    result = run(monkeypatch, args(host.tmp, scheduler="cron"))
    assert result["scheduler"] == "cron" and os.listdir(str(host.tmp / "units")) == []
    assert host.writes() == [["disable", "--now", "wgsp-metrics-wgspunit0.timer"],
                             ["stop", "wgsp-metrics-wgspunit0.service"], ["daemon-reload"]]


def test_moving_from_cron_to_systemd_removes_the_cron_entry(monkeypatch, host):
    host.tools.add("cron")
    run(monkeypatch, args(host.tmp, scheduler="cron"))
    assert os.listdir(str(host.tmp / "cron.d")) == ["wgsp-metrics-wgspunit0"]
    result = run(monkeypatch, args(host.tmp))
    assert result["scheduler"] == "systemd" and os.listdir(str(host.tmp / "cron.d")) == []
    assert "remove %s" % (host.tmp / "cron.d" / "wgsp-metrics-wgspunit0") in result["changes"]


def test_absent_finds_the_files_where_the_schedule_says(monkeypatch, host):
    """Removed without the textfile_dir and writer_dir it was installed with (the disconnect playbook)."""
    custom = run(monkeypatch, args(host.tmp, textfile_dir=str(host.tmp / "custom"), writer_dir=str(host.tmp / "w")))
    result = run(monkeypatch, {"interface": "wgspunit0", "state": "absent"})
    assert result["changed"] and result["metrics_file"] == custom["metrics_file"], result
    assert not os.path.exists(custom["metrics_file"]) and not os.path.exists(custom["writer"])


def test_a_hand_edited_schedule_cannot_point_the_removal_elsewhere(tmp_path):
    victim = tmp_path / "precious"
    line = "ExecStart=/usr/bin/python3 %s --interface wg0 --output %s --x\\n" % (victim, victim)
    assert wg_metrics.installed_paths("wg0", [line.encode()]) == (None, None)
