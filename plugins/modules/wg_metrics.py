#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: wg_metrics
short_description: Export a service proxy tunnel's status as Prometheus metrics, rewritten on a schedule
version_added: 0.1.0
description:
  - Installs a periodic writer that turns what M(wgsp.service_proxy.wg_status) reports for one interface
    into a file in the Prometheus text format in node_exporter's textfile collector directory
    (C(<textfile_dir>/wgsp_<interface>.prom)), replaced in one rename so a scrape never reads half a file.
  - The writer runs the same status code as M(wgsp.service_proxy.wg_status) (tunnel through netlink or the
    wireguard-go socket, each declared rule set compared with what its module would install, container
    addresses against Docker). It is one file, C(<writer_dir>/wgsp-metrics.pyz), built on the host from
    the very code this module runs. The host needs the Python and pyroute2 the modules already use, not
    Ansible, and nothing is downloaded. Its bytes depend only on the collection's and ansible-core's code,
    so a re-run changes nothing and an upgrade of either replaces it.
  - It is scheduled with a systemd timer (C(wgsp-metrics-<interface>.timer)) where systemd runs the host,
    else with a cron entry (C(/etc/cron.d/wgsp-metrics-<interface>)) where cron is installed; see O(scheduler).
  - When anything was installed or changed, the writer runs once at once (so the file exists and a
    writer that cannot read the host fails this task, naming why).
  - "Metrics (all with an C(interface) label): C(wgsp_collect_success), C(wgsp_collect_timestamp_seconds),
    C(wgsp_collect_duration_seconds), C(wgsp_info) (client_mode, backend, public_key), C(wgsp_status)
    (one series per status, 1 for the current one), C(wgsp_interface_up), C(wgsp_clients_connected) (hub),
    C(wgsp_peer_last_handshake_timestamp_seconds), C(wgsp_peer_receive_bytes_total) and
    C(wgsp_peer_transmit_bytes_total) (public_key, role), C(wgsp_rule_set_in_sync) (rule_set, module,
    backend; 0 is drift), C(wgsp_rule_packets_total) and C(wgsp_rule_bytes_total) (rule_set, chain, action,
    protocol, port: packets per published port), C(wgsp_container_address_stale) (rule_set, container), and
    C(wgsp_probe_success) with O(probe=true)."
  - When the writer cannot read the host (a broken state file, no pyroute2), it still replaces the file,
    with C(wgsp_collect_success 0) and the reason in a comment, and exits 1, so an alert fires instead of
    old numbers looking current.
  - Private and preshared keys are never read; only public keys appear in the metrics.
author:
  - wgsp.service_proxy contributors (@wgsp)
requirements:
  - pyroute2 (0.7.2 or later) on the host, for the writer as for M(wgsp.service_proxy.wg_status)
  - systemd or cron on the host, unless O(scheduler=none)
attributes:
  check_mode:
    support: full
    description: Reports what would be written, enabled or removed, and changes nothing.
  diff_mode:
    support: full
    description: The unit or cron files before and after; the writer as its SHA-256 and size.
  platform:
    support: full
    platforms: linux
    description: Linux only (netlink, netfilter).
options:
  interface:
    description: The WireGuard interface whose status is exported (the same rule as C(name) of C(wg_interface)).
    type: str
    default: wg0
  state:
    description:
      - V(present) installs the writer and its schedule; V(absent) stops and removes this interface's
        schedule and metrics file, and the writer itself when no other interface's schedule is left.
      - V(absent) waits for a run under way (each run holds a lock on O(textfile_dir) until it has written,
        and does not write once its schedule is gone), so the removed file is not written again.
    type: str
    choices: [present, absent]
    default: present
  textfile_dir:
    description:
      - node_exporter's C(--collector.textfile.directory); the file written is C(<textfile_dir>/wgsp_<interface>.prom).
      - The default is the one of Debian's C(prometheus-node-exporter) package. Created (0755) when missing.
      - An absolute path from C(A-Z a-z 0-9 _ . , + @ = / -) (it goes on a unit's or cron's command line).
    type: path
    default: /var/lib/prometheus/node-exporter
  state_dir:
    description: Directory of the roles' state files (what M(wgsp.service_proxy.wg_status) reads), same characters as O(textfile_dir).
    type: path
    default: /etc/wg-service-proxy
  writer_dir:
    description: Where the writer C(wgsp-metrics.pyz) is installed (shared by every interface), same characters as O(textfile_dir).
    type: path
    default: /usr/local/lib/wgsp
  interval:
    description:
      - Seconds between two runs of the writer, 10 to 86400 with systemd, counted from the end of one run (so
        runs never pile up on a busy host). With cron a whole number of
        minutes that divides an hour (60, 120, 180, 240, 300, 360, 600, 720, 900, 1200, 1800 or 3600),
        since cron counts minutes of the hour.
      - Keep it below node_exporter's scrape interval times a few, and well below O(fresh_seconds).
    type: int
    default: 60
  scheduler:
    description:
      - V(auto) uses systemd where it runs the host (C(/run/systemd/system) exists), else cron where a cron
        daemon is installed, and fails naming both otherwise.
      - V(none) installs the writer only and returns RV(command), for a host that runs it from its own
        scheduler.
    type: str
    choices: [auto, systemd, cron, none]
    default: auto
  fresh_seconds:
    description: As in M(wgsp.service_proxy.wg_status); it decides the C(wgsp_status) series (connected or handshake-stale).
    type: int
    default: 180
  probe:
    description: Also run M(wgsp.service_proxy.wg_status)'s test-connection probes on each run (C(wgsp_probe_success)).
    type: bool
    default: false
notes:
  - Example alert rules for these metrics are in the collection's C(docs/metrics.md).
  - The roles call this module when their C(*_metrics) variable is true. Turning that variable off later
    does not remove the writer; run this module with O(state=absent) (the disconnect playbook does).
seealso:
  - module: wgsp.service_proxy.wg_status
  - name: node_exporter's textfile collector
    description: How node_exporter exports files like this one.
    link: https://github.com/prometheus/node_exporter#textfile-collector
"""

EXAMPLES = r"""
- name: Export wg0's status for node_exporter every minute
  wgsp.service_proxy.wg_metrics:
    interface: wg0

- name: Write it where a node_exporter container reads it, every 30 s, probes included
  wgsp.service_proxy.wg_metrics:
    interface: wg0
    textfile_dir: /srv/node-exporter/textfile
    interval: 30
    probe: true

- name: Install the writer only; the host's own scheduler runs it
  wgsp.service_proxy.wg_metrics:
    scheduler: none
  register: metrics

- name: Remove wg0's metrics
  wgsp.service_proxy.wg_metrics:
    interface: wg0
    state: absent
"""

RETURN = r"""
metrics_file:
  description: The file the writer replaces on each run.
  returned: always
  type: str
  sample: /var/lib/prometheus/node-exporter/wgsp_wg0.prom
writer:
  description: The writer's path.
  returned: always
  type: str
  sample: /usr/local/lib/wgsp/wgsp-metrics.pyz
command:
  description: The command the schedule runs (the interpreter this module ran with, the writer, its arguments).
  returned: when O(state=present)
  type: list
  elements: str
  sample: [/usr/bin/python3, /usr/local/lib/wgsp/wgsp-metrics.pyz, --interface, wg0, --state-dir,
           /etc/wg-service-proxy, --output, /var/lib/prometheus/node-exporter/wgsp_wg0.prom, --fresh-seconds, "180"]
scheduler:
  description: The scheduler used (V(systemd), V(cron) or V(none)); for O(state=absent), the one whose files were found.
  returned: always
  type: str
  sample: systemd
files:
  description: The files this module manages for the interface (writer, units or cron entry).
  returned: always
  type: list
  elements: str
changes:
  description: What was (or in check mode, would be) changed.
  returned: always
  type: list
  elements: str
  sample: ["write /usr/local/lib/wgsp/wgsp-metrics.pyz", "systemctl enable --now wgsp-metrics-wg0.timer"]
"""

import glob  # noqa: E402
import hashlib  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common import systemd as systemd_  # noqa: E402
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.checks import check_ifname, check_int  # noqa: E402
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import (  # noqa: E402
    ValidationError,
    WgspError,
    fail_from_error,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.files import (  # noqa: E402
    atomic_write,
    check_script_path,
    check_writable_dir,
    file_mode,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.module import WgspModule  # noqa: E402
from ansible_collections.wgsp.service_proxy.plugins.module_utils._status import bundle  # noqa: E402
from ansible_collections.wgsp.service_proxy.plugins.module_utils._status.metrics import MAX_INTERVAL, MIN_INTERVAL  # noqa: E402
# Imported also for Ansible's payload builder, which packs only the module_utils a module imports: the
# writer (and all it imports) must travel with this module for bundle.build to find its sources.
from ansible_collections.wgsp.service_proxy.plugins.module_utils._status import writer as _writer  # noqa: E402

ARGUMENT_SPEC = dict(
    interface=dict(type="str", default="wg0"),
    state=dict(type="str", choices=["present", "absent"], default="present"),
    textfile_dir=dict(type="path", default="/var/lib/prometheus/node-exporter"),
    state_dir=dict(type="path", default="/etc/wg-service-proxy"),
    writer_dir=dict(type="path", default="/usr/local/lib/wgsp"),
    interval=dict(type="int", default=60),
    scheduler=dict(type="str", choices=["auto", "systemd", "cron", "none"], default="auto"),
    fresh_seconds=dict(type="int", default=180),
    probe=dict(type="bool", default=False),
)

UNIT_DIR = "/etc/systemd/system"
CRON_DIR = "/etc/cron.d"
WRITER_NAME = "wgsp-metrics.pyz"
PREFIX = "wgsp-metrics-"
CRON_MINUTES = (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60)
HEADER = "# Managed by wgsp.service_proxy (wg_metrics): the status of %s as Prometheus metrics.\n"


def token(interface):
    """The interface in file and unit names: cron.d takes ``A-Z a-z 0-9 _ -`` only, so every other
    character (and ``_`` itself, to stay one-to-one) becomes ``_`` and two hex digits."""
    return "".join(ch if (ch.isalnum() and ch.isascii()) or ch == "-" else "_%02x" % ord(ch) for ch in interface)


def validate(params):
    interface = check_ifname("interface", params["interface"])
    for field in ("textfile_dir", "state_dir", "writer_dir"):
        check_script_path(field, params[field])
    fresh = check_int("fresh_seconds", params["fresh_seconds"], 1, 86400 * 365)
    interval = check_int("interval", params["interval"], MIN_INTERVAL, MAX_INTERVAL)
    python = sys.executable or ""
    if not re.match(r"^/[A-Za-z0-9_.,+@=/-]*$", python):
        raise ValidationError("ansible_python_interpreter", "the writer runs with the interpreter this module ran "
                              "with, which must be an absolute path from A-Z a-z 0-9 _ . , + @ = / - (got %r)" % python)
    return interface, interval, fresh, python


def pick_scheduler(module, wanted):
    systemd = systemd_.runs()
    cron = bool(module.get_bin_path("cron") or module.get_bin_path("crond")) and os.path.isdir(CRON_DIR)
    if wanted == "auto":
        if systemd:
            return "systemd"
        if cron:
            return "cron"
        raise ValidationError("scheduler", "this host runs neither systemd (%s is missing) nor has a cron daemon "
                              "with %s: install cron, or set scheduler=none and run the returned command from "
                              "your own scheduler" % (systemd_.RUNNING, CRON_DIR))
    if wanted == "systemd" and not systemd:
        raise ValidationError("scheduler", "systemd does not run this host (%s is missing)" % systemd_.RUNNING)
    if wanted == "cron" and not cron:
        raise ValidationError("scheduler", "no cron daemon (cron or crond) with %s on this host" % CRON_DIR)
    return wanted


def service_unit(interface, command):
    return (HEADER % interface + "[Unit]\n"
            "Description=wgsp.service_proxy metrics of %s for node_exporter's textfile collector\n"
            "After=network.target\n\n"
            "[Service]\nType=oneshot\nNice=10\nExecStart=%s\n" % (interface, " ".join(command)))


def timer_unit(interface, interval):
    return (HEADER % interface + "[Unit]\n"
            "Description=Write the wgsp.service_proxy metrics of %s every %d s\n\n"
            "[Timer]\nOnActiveSec=1s\nOnUnitInactiveSec=%ds\nAccuracySec=1s\n\n"
            "[Install]\nWantedBy=timers.target\n" % (interface, interval, interval))


def cron_entry(interface, command, interval):
    minutes = interval // 60
    if interval % 60 or minutes not in CRON_MINUTES:
        raise ValidationError("interval", "cron runs whole minutes that divide an hour: %s seconds (got %d); or use "
                              "systemd" % (", ".join(str(m * 60) for m in CRON_MINUTES), interval))
    when = "0 * * * *" if minutes == 60 else "*/%d * * * *" % minutes
    return (HEADER % interface + "SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
            "%s root %s >/dev/null\n" % (when, " ".join(command)))


def read_bytes(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def _shown(path, content):
    if content is None:
        return ""
    if path.endswith(".pyz"):
        return "sha256 %s (%d bytes)\n" % (hashlib.sha256(content).hexdigest(), len(content))
    return content.decode("utf-8", "replace")


class Metrics:
    def __init__(self, module):
        self.module = module
        self.check = module.check_mode
        self.changes = []
        self.diff = []

    def _note(self, change, path=None, before=None, after=None):
        self.changes.append(change)
        if path is not None:
            self.diff.append({"before_header": path, "after_header": path,
                              "before": _shown(path, before), "after": _shown(path, after)})

    def put(self, path, content, mode):
        data = content if isinstance(content, bytes) else content.encode("utf-8")
        current = read_bytes(path)
        if current == data and file_mode(path) == mode:
            return False
        self._note("write %s" % path, path, current, data)
        if not self.check:
            atomic_write(path, data, mode)
        return True

    def put_writer(self, path, sources, mode):
        """The writer zip: built only when the installed one was built from other sources (or for
        another Python), so a run that changes nothing compiles and compresses nothing."""
        if bundle.installed_digest(path) == bundle.digest(sources) and file_mode(path) == mode:
            return False
        return self.put(path, bundle.build(files=sources), mode)

    def remove(self, path):
        current = read_bytes(path)
        if current is None and not os.path.lexists(path):
            return False
        self._note("remove %s" % path, path, current, None)
        if not self.check:
            os.unlink(path)
        return True

    def systemctl(self, *args):
        systemctl = self.module.get_bin_path("systemctl", required=True)
        return self.module.run_command([systemctl] + list(args))

    def must(self, *args):
        self.changes.append("systemctl %s" % " ".join(args))
        if self.check:
            return
        rc, out, err = self.systemctl(*args)
        if rc != 0:
            raise WgspError("systemctl %s failed (rc=%d): %s" % (" ".join(args), rc, (err or out).strip()), rc=rc)


def present(module, params, result, run):
    interface, interval, fresh, python = validate(params)
    scheduler = pick_scheduler(module, params["scheduler"])
    name = token(interface)
    writer = os.path.join(params["writer_dir"], WRITER_NAME)
    output = os.path.join(params["textfile_dir"], "wgsp_%s.prom" % name)
    service = os.path.join(UNIT_DIR, "%s%s.service" % (PREFIX, name))
    timer = os.path.join(UNIT_DIR, "%s%s.timer" % (PREFIX, name))
    cron = os.path.join(CRON_DIR, PREFIX + name)
    schedule = {"systemd": timer, "cron": cron}.get(scheduler)
    command = ([python, writer, "--interface", interface, "--state-dir", params["state_dir"],
                "--output", output, "--fresh-seconds", str(fresh)] + (["--probe"] if params["probe"] else []) +
               (["--schedule", schedule] if schedule else []))
    files = {writer: (bundle.sources(), 0o644)}
    if scheduler == "systemd":
        files[service] = (service_unit(interface, command), 0o644)
        files[timer] = (timer_unit(interface, interval), 0o644)
    elif scheduler == "cron":
        files[cron] = (cron_entry(interface, command, interval), 0o644)
    for path in list(files) + [output]:
        check_writable_dir("textfile_dir" if path == output else "writer_dir", path)
    result.update(metrics_file=output, writer=writer, command=command, scheduler=scheduler, files=sorted(files))

    units_changed = False
    for path in sorted(files):
        wrote = (run.put_writer if path == writer else run.put)(path, *files[path])
        units_changed = units_changed or (wrote and path in (service, timer))
    # A schedule left from another scheduler (systemd came, cron went) would run the writer twice.
    remove_schedule(run, service, timer, [p for p in (service, timer, cron) if p not in files and os.path.lexists(p)])
    if scheduler == "systemd":
        if units_changed:
            run.must("daemon-reload")
        unit = os.path.basename(timer)
        enabled = run.systemctl("is-enabled", unit)[1].strip()
        active = run.systemctl("is-active", unit)[1].strip()
        if enabled != "enabled":
            run.must("enable", unit)
        if active != "active":
            run.must("start", unit)
        elif units_changed:
            run.must("restart", unit)
    if (run.changes or not os.path.exists(output)) and not module.check_mode:
        rc, _out, err = module.run_command(command)
        if rc != 0:
            raise WgspError("the metrics writer failed (rc=%d): %s" % (rc, err.strip()), rc=rc, command=command)
        if not run.changes:
            run.changes.append("write %s" % output)
    elif not os.path.exists(output):
        run.changes.append("write %s" % output)


def remove_schedule(run, service, timer, paths):
    """Remove the schedule files ``paths`` (existing ones, of ``service``, ``timer`` and the cron entry):
    where systemd runs, the timer is disabled and stopped and a run under way is stopped first (it
    outlives its timer; stop waits for it to end), and systemd reloads once its units are gone."""
    systemd = systemd_.runs()
    if timer in paths and systemd:
        run.must("disable", "--now", os.path.basename(timer))
    if service in paths and systemd:
        run.must("stop", os.path.basename(service))
    for path in paths:
        run.remove(path)
    if (service in paths or timer in paths) and systemd:
        run.must("daemon-reload")


def installed_paths(name, contents):
    """``(writer, output)`` named on the command line of an installed service or cron entry, each only
    when it is one of this module's file names (a hand-edited line cannot point removal elsewhere)."""
    writer = output = None
    for content in contents:
        text = (content or b"").decode("utf-8", "replace")
        match = re.search(r"\s(/\S+/%s)\s" % re.escape(WRITER_NAME), text)
        if match and writer is None:
            writer = _safe_path(match.group(1))
        match = re.search(r"\s--output\s+(/\S+/wgsp_%s\.prom)\s" % re.escape(name), text)
        if match and output is None:
            output = _safe_path(match.group(1))
    return writer, output


def _safe_path(path):
    try:
        return check_script_path("path", path)
    except WgspError:
        return None


def absent(module, params, result, run):
    interface = check_ifname("interface", params["interface"])
    for field in ("textfile_dir", "writer_dir"):
        check_script_path(field, params[field])
    name = token(interface)
    service = os.path.join(UNIT_DIR, "%s%s.service" % (PREFIX, name))
    timer = os.path.join(UNIT_DIR, "%s%s.timer" % (PREFIX, name))
    cron = os.path.join(CRON_DIR, PREFIX + name)
    found = [p for p in (service, timer, cron) if os.path.lexists(p)]
    # The paths the installed schedule names win over the parameters, so a removal without the
    # textfile_dir or writer_dir it was installed with still finds them (only our own file names).
    writer, output = installed_paths(name, [read_bytes(p) for p in (service, cron)])
    writer = writer or os.path.join(params["writer_dir"], WRITER_NAME)
    output = output or os.path.join(params["textfile_dir"], "wgsp_%s.prom" % name)
    scheduler = "cron" if cron in found else ("systemd" if found else "none")
    remove_schedule(run, service, timer, found)
    directory = os.path.dirname(output)
    if module.check_mode or not os.path.isdir(directory):
        run.remove(output)
    else:
        # a writer started by cron (or by hand) before its entry went may still be collecting: it
        # holds this lock until it has written, and once it is released the file stays removed
        with _writer.output_lock(directory):
            run.remove(output)
    others = [p for p in glob.glob(os.path.join(UNIT_DIR, PREFIX + "*.timer")) + glob.glob(os.path.join(CRON_DIR, PREFIX + "*"))
              if p not in (timer, cron)]
    if not others:
        run.remove(writer)
    result.update(metrics_file=output, writer=writer, scheduler=scheduler, files=found)


def main():
    module = WgspModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    result = {}
    run = Metrics(module)
    try:
        (present if params["state"] == "present" else absent)(module, params, result, run)
    except WgspError as exc:
        fail_from_error(module, exc, changed=bool(run.changes), changes=run.changes, **result)
    except (IOError, OSError) as exc:
        module.fail_json(msg="wg_metrics: %s" % exc, changed=bool(run.changes), changes=run.changes, **result)
    result.update(changed=bool(run.changes), changes=run.changes)
    if module._diff:
        result["diff"] = run.diff
    module.exit_json(**result)


if __name__ == "__main__":
    main()
