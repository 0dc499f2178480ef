# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``wg_relay``'s plan and apply, shared by the module, ``wg_rule_sets`` (a relay set beside the
firewall sets of one host) and ``wg_status`` (is it running, exactly as declared).

A relay set is two files and one process: the config (JSON, ``path``), the program beside it
(``<path without .json>.py``: ``_relay/daemon.py``'s own source, standard library only) and the
relay process, found by its pid file and checked by its command line (program and config).

Internal to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import importlib.util
import json
import os

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.checks import (
    check_ifname,
    check_port_range,
    check_to_ports,
    ports_value,
    shell_quote,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import ValidationError, WgspError
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.files import (
    atomic_write,
    check_script_path,
    check_writable_dir,
    file_mode,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.net import (
    check_cidr,
    check_relay_target,
    join_host_port,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._relay import daemon
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.rules import check_set_name

RELAY_ARGUMENT_SPEC = dict(
    name=dict(type="str", required=True),
    state=dict(type="str", default="present", choices=["present", "absent"]),
    interface=dict(type="str"),
    listen_family=dict(type="str", default="ipv6", choices=["ipv4", "ipv6"]),
    sources=dict(type="list", elements="str", default=[]),
    relays=dict(type="list", elements="dict", default=[], options=dict(
        proto=dict(type="str", default="tcp", choices=["tcp", "udp", "both", "all"]),
        port=dict(type="raw", required=True),
        to_address=dict(type="str", required=True),
        to_port=dict(type="raw"),
    )),
    path=dict(type="str", required=True),
    pidfile=dict(type="str"),
)
MAX_PORTS = 4096  # listening sockets of one relay set
FILE_MODE = 0o644


def _config_path(value):
    """The relay's config file: a path safe on a wg-quick line, ending in ``.json`` (its program is
    the same path ending in ``.py``)."""
    path = check_script_path("path", value)
    if not path.endswith(".json") or len(os.path.basename(path)) <= len(".json"):
        raise ValidationError("path", "must name the relay's config file, ending in .json (got %s)" % path)
    return path


class Plan(object):
    """One relay set's files and process, judged before anything changes."""

    def __init__(self, params):
        self.name = check_set_name(params["name"])
        self.state = params["state"]
        path = _config_path(params["path"])
        if os.path.isdir(path):
            raise ValidationError("path", "%s is a directory" % path)
        self.path = path
        self.program = path[:-len(".json")] + ".py"
        self.pidfile = check_script_path("pidfile", params.get("pidfile") or "/run/wgsp-relay-%s.pid" % self.name)
        self.family = params["listen_family"]
        version = 6 if self.family == "ipv6" else 4
        interface = params.get("interface")
        self.interface = None if interface in (None, "") else check_ifname("interface", interface)
        sources = []
        for i, value in enumerate(params.get("sources") or []):
            net = check_cidr("sources[%d]" % i, value).network
            if net.version != version:
                raise ValidationError("sources[%d]" % i, "%s is IPv%d, but the relay listens on IPv%d" % (net, net.version, version))
            sources.append(str(net))
        relays, seen, count = [], {}, 0
        for i, raw in enumerate(params.get("relays") or []):
            field = "relays[%d]" % i
            proto = "both" if raw.get("proto") in ("both", "all") else (raw.get("proto") or "tcp")
            port = check_port_range(field + ".port", raw.get("port"))
            to_port = check_to_ports(field + ".to_port", port, raw.get("to_port"))
            target = check_relay_target(field + ".to_address", raw.get("to_address"))
            if target.version == version:
                raise ValidationError(field + ".to_address", "%s is IPv%d like the relay's listening side: forward it "
                                      "with wg_dnat (netfilter keeps the address family; a relay is for the other one)"
                                      % (target, version))
            for p in ("tcp", "udp") if proto == "both" else (proto,):
                for number in range(port[0], port[1] + 1):
                    if (p, number) in seen:
                        raise ValidationError(field + ".port", "%s/%d is already relayed by relays[%d]" % (p, number, seen[(p, number)]))
                    seen[(p, number)] = i
                    count += 1
            relays.append({"proto": proto, "port": ports_value(port), "to_address": str(target),
                           "to_port": ports_value(to_port)})
        if count > MAX_PORTS:
            raise ValidationError("relays", "listen on %d ports; a relay set takes at most %d" % (count, MAX_PORTS))
        if self.state == "present":
            for field, file_path in (("path", self.path), ("path", self.program), ("pidfile", self.pidfile)):
                check_writable_dir(field, file_path)
        self.relays = relays
        self.config = {"listen_family": self.family, "interface": self.interface, "sources": sources, "relays": relays}
        self.config_text = json.dumps(self.config, indent=2, sort_keys=True) + "\n"

    def listening(self):
        """``proto listen -> target`` lines of the set, one per relay entry."""
        any_address = "::" if self.family == "ipv6" else "0.0.0.0"
        return ["%s %s -> %s" % (r["proto"], join_host_port(any_address, r["port"]), join_host_port(r["to_address"], r["to_port"]))
                for r in self.relays]


def program_text():
    """The relay program: ``_relay/daemon.py``'s own source, as the running module loaded it."""
    spec = importlib.util.find_spec(daemon.__name__)
    text = spec.loader.get_source(daemon.__name__) if spec is not None and spec.loader is not None else None
    if not text:
        raise WgspError("cannot read the relay program's source (%s)" % daemon.__name__)
    return text


def _read(path):
    try:
        with open(path) as handle:
            return handle.read()
    except (IOError, OSError):
        return None


def inspect(plan):
    """What is on the host: ``{config, program, pid}`` (the files' texts, None when missing)."""
    return {"config": _read(plan.path), "program": _read(plan.program),
            "pid": daemon.pid_of(plan.pidfile, plan.program, plan.path)}


def apply(plan, run_command, python, check_mode=False, want_diff=False):
    """Bring the set to its state. ``run_command(argv) -> (rc, out, err)`` starts the relay (its
    ``--daemon`` returns once every port is bound). Returns the result dict; a failure (the relay did
    not start, a file could not be written or removed) raises WgspError."""
    try:
        return _apply(plan, run_command, python, check_mode, want_diff)
    except (IOError, OSError) as exc:
        raise WgspError("relay set %s: %s%s" % (plan.name, exc.strerror or exc,
                                                " (%s)" % exc.filename if getattr(exc, "filename", None) else ""))


def _apply(plan, run_command, python, check_mode, want_diff):
    found = inspect(plan)
    changes, diff = [], []
    if plan.state == "absent":
        if found["pid"] is not None:
            changes.append("stopped")
        for what, path, text in (("config", plan.path, found["config"]), ("program", plan.program, found["program"])):
            if text is not None:
                changes.append("removed %s" % what)
                diff.append({"before_header": path, "after_header": path, "before": text if what == "config" else "(relay program)\n",
                             "after": ""})
        if changes and not check_mode:
            daemon.stop(plan.pidfile, plan.program, plan.path)
            for path in (plan.path, plan.program):
                if os.path.exists(path):
                    os.unlink(path)
        result = dict(changed=bool(changes), changes=changes, running=False, pid=None, listening=[])
    else:
        program = program_text()
        files = []
        if found["config"] != plan.config_text or file_mode(plan.path) != FILE_MODE:
            files.append(("config", plan.path, plan.config_text))
            diff.append({"before_header": plan.path, "after_header": plan.path,
                         "before": found["config"] or "", "after": plan.config_text})
        if found["program"] != program or file_mode(plan.program) != FILE_MODE:
            files.append(("program", plan.program, program))
            diff.append({"before_header": plan.program, "after_header": plan.program,
                         "before": "(relay program)\n" if found["program"] is not None else "",
                         "after": "(relay program, this collection's version)\n"})
        changes = ["wrote %s" % what for what, _path, _text in files]
        restart = bool(files) or found["pid"] is None
        if restart:
            changes.append("restarted" if found["pid"] is not None else "started")
        pid = found["pid"]
        if restart and not check_mode:
            for _what, path, text in files:
                atomic_write(path, text, FILE_MODE)
            daemon.stop(plan.pidfile, plan.program, plan.path)
            argv = [python, plan.program, "--config", plan.path, "--pidfile", plan.pidfile, "--daemon"]
            rc, _out, err = run_command(argv)
            if rc != 0:
                raise WgspError("relay set %s did not start: %s" % (plan.name, (err or "").strip() or "exit %d" % rc),
                                rc=rc)
            pid = daemon.pid_of(plan.pidfile, plan.program, plan.path)
        result = dict(changed=bool(changes), changes=changes, running=True if restart else pid is not None,
                      pid=pid, listening=plan.listening())
    result.update(name=plan.name, path=plan.path, program=plan.program, pidfile=plan.pidfile)
    if want_diff and diff:
        result["diff"] = diff
    return result


def command_lines(path, pidfile, python="python3"):
    """The wg-quick lines that start the relay of config ``path`` when the tunnel comes up (``PostUp``)
    and end it when it goes down (``PreDown``): ``(post_up, pre_down)``, each path validated and quoted.

    A relay that cannot start at boot (its public interface not up yet, a port taken) must not take
    the tunnel down with it - wg-quick aborts and removes the interface when a PostUp line fails - so
    the start line never fails; wg_status then reports the set not running, and the next run of the
    role starts it."""
    path = _config_path(path)
    pidfile = check_script_path("pidfile", pidfile)
    line = " ".join(shell_quote(part) for part in [python, path[:-len(".json")] + ".py", "--config", path, "--pidfile", pidfile])
    return line + " --daemon || true", line + " --stop"


def boot_commands(plan, python="python3"):
    """``command_lines`` of a planned set."""
    return command_lines(plan.path, plan.pidfile, python)


def status(params):
    """``wg_status``'s report of one relay set (changing nothing): running exactly as declared."""
    plan = Plan(dict(params, state="absent"))  # absent: no writable-directory checks for a read
    found = inspect(plan)
    expected = plan.listening()
    program = program_text()
    drift = {}
    if found["config"] != plan.config_text:
        drift["config"] = "missing" if found["config"] is None else "differs from the declared relays"
    if found["program"] != program:
        drift["program"] = "missing" if found["program"] is None else "not this collection's version"
    if found["pid"] is None:
        drift["process"] = "not running"
    installed = expected if found["config"] == plan.config_text else []
    return {
        "name": plan.name,
        "module": "wg_relay",
        "backend": "relay",
        "present": found["config"] is not None or found["pid"] is not None,
        "in_sync": not drift,
        "drift": drift,
        "expected": expected,
        "installed": installed if found["pid"] is not None else [],
        "counters": [],
        "containers": [],
        "pid": found["pid"],
    }
