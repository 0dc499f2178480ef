# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``wgsp-metrics``: the periodic metrics writer that ``wg_metrics`` installs on a host.

It runs the same status code as ``wg_status`` (``_status.host.status_of``) and writes the result
for node_exporter's textfile collector, replacing the file in one rename so a scrape never reads
half of it. It runs from a zip that ``wg_metrics`` builds from the collection's own code
(``_status.bundle``): the host needs python3 and pyroute2 (which the modules need anyway), not
Ansible. Exit status 0 when the collection succeeded, 1 when it failed (the file then says so in
``wgsp_collect_success 0``), 2 on bad arguments.

Internal to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import contextlib
import fcntl
import os
import sys
import time

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.checks import check_ifname, check_int
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import WgspError
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.files import atomic_write, check_script_path, make_dirs
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.runner import CommandRunner
from ansible_collections.wgsp.service_proxy.plugins.module_utils._status.metrics import render

PROG = "wgsp-metrics"


def parse_args(argv):
    parser = argparse.ArgumentParser(prog=PROG, description="Write one WireGuard interface's wgsp status as "
                                     "Prometheus metrics for node_exporter's textfile collector.")
    parser.add_argument("--interface", default="wg0")
    parser.add_argument("--state-dir", default="/etc/wg-service-proxy")
    parser.add_argument("--output", required=True, help="the .prom file to replace")
    parser.add_argument("--fresh-seconds", type=int, default=180)
    parser.add_argument("--probe", action="store_true", help="also run wg_status's test-connection probes")
    parser.add_argument("--schedule", help="the timer or cron entry that runs this writer: once it is gone, "
                        "a run that was already under way writes nothing")
    args = parser.parse_args(argv)
    try:
        check_ifname("--interface", args.interface)
        check_script_path("--state-dir", args.state_dir)
        check_script_path("--output", args.output)
        if args.schedule is not None:
            check_script_path("--schedule", args.schedule)
        check_int("--fresh-seconds", args.fresh_seconds, 1, 86400 * 365)
    except WgspError as exc:
        parser.error(exc.msg)
    return args


def collect(args, iproute_factory=None, runner=None):
    """``(result, error)``: the ``wg_status`` result, or None and why it could not be read."""
    try:
        if iproute_factory is None:
            from pyroute2 import IPRoute as iproute_factory
        from ansible_collections.wgsp.service_proxy.plugins.module_utils._status.host import status_of
        iproute = iproute_factory()
        try:
            return status_of(iproute, runner or CommandRunner(), args.interface, state_dir=args.state_dir,
                             fresh=args.fresh_seconds, probe=args.probe), None
        finally:
            iproute.close()
    except WgspError as exc:
        return None, exc.msg
    except Exception as exc:  # noqa: BLE001 - whatever stopped the collection is reported in the file
        return None, "%s: %s" % (type(exc).__name__, exc)


@contextlib.contextmanager
def output_lock(directory):
    """Hold the exclusive lock of the metrics directory (a flock on the directory itself, so no lock
    file is left): a writer holds it for its whole run and ``wg_metrics state=absent`` takes it before it
    removes the file, so a run that was under way when the schedule went cannot write the file again
    after its removal."""
    make_dirs(directory, 0o755)
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def main(argv=None, clock=time.time, iproute_factory=None, runner=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        with output_lock(os.path.dirname(args.output)):
            if args.schedule is not None and not os.path.lexists(args.schedule):
                # removed (wg_metrics state=absent) while this run waited for the lock
                sys.stderr.write("%s: %s: %s is gone: not writing\n" % (PROG, args.interface, args.schedule))
                return 0
            return write(args, clock, iproute_factory, runner)
    except (IOError, OSError) as exc:
        sys.stderr.write("%s: %s: cannot write %s: %s\n" % (PROG, args.interface, args.output, exc))
        return 1


def write(args, clock, iproute_factory, runner):
    started, tick = clock(), time.monotonic()
    result, error = collect(args, iproute_factory, runner)
    text = render(args.interface, result, started, time.monotonic() - tick, error)
    atomic_write(args.output, text, 0o644)
    if error is not None:
        sys.stderr.write("%s: %s: %s\n" % (PROG, args.interface, error))
        return 1
    return 0
