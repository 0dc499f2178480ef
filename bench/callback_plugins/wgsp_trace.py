# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The benchmark's trace of a playbook run: every task result with its host, action, start and end.

Enabled by bench_site.py through ANSIBLE_CALLBACKS_ENABLED=wgsp_trace (with this directory on
ANSIBLE_CALLBACK_PLUGINS); writes a JSON list to the file named by WGSP_TRACE_FILE.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: wgsp_trace
type: aggregate
short_description: Task results with their timing, for bench_site.py
description: Writes one record per task result (host, action, changed, skipped, start, end) to WGSP_TRACE_FILE.
requirements: [enable in configuration]
"""

import json
import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "wgsp_trace"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super(CallbackModule, self).__init__(*args, **kwargs)
        self.records = []
        self.started = {}
        self.origin = time.time()

    def v2_runner_on_start(self, host, task):
        self.started[(host.get_name(), task._uuid)] = time.time()

    def _record(self, result, status):
        host = result._host.get_name()
        task = result._task
        start = self.started.pop((host, task._uuid), None)
        delegated = (result._result.get("_ansible_delegated_vars") or {}).get("ansible_host")
        self.records.append({"host": host, "task": task.get_name(), "action": task.action, "status": status,
                             "changed": bool(result._result.get("changed")), "delegated": bool(delegated),
                             "items": len(result._result.get("results") or []),
                             "start": None if start is None else round(start - self.origin, 3),
                             "end": round(time.time() - self.origin, 3)})

    def v2_runner_on_ok(self, result):
        self._record(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, "failed")

    def v2_runner_on_skipped(self, result):
        self._record(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._record(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        path = os.environ.get("WGSP_TRACE_FILE")
        if path:
            with open(path, "w") as handle:
                json.dump(self.records, handle, indent=0)
