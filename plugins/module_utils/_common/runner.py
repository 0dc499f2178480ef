# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``CommandRunner``: runs a command with ``LC_ALL=C`` and turns a failure into a ``CommandError``.

Internal to the collection; the seam unit tests replace.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import subprocess

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import CommandError


class CommandRunner:
    """Run commands with ``LC_ALL=C``; a thin seam that unit tests replace."""

    def __init__(self, module=None):
        self.module = module

    def run(self, argv, data=None, check=True, env=None):
        """Run ``argv`` (a list, never a shell string); ``data`` goes to stdin only.

        Returns ``(rc, stdout, stderr)``. With ``check`` a non-zero rc raises ``CommandError``.
        """
        full_env = dict(os.environ)
        full_env.update({"LC_ALL": "C", "LANG": "C"})
        if env:
            full_env.update(env)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=full_env,
                close_fds=True,
            )
        except OSError as exc:
            raise CommandError("cannot run %s: %s" % (argv[0], exc), cmd=argv, rc=None, stdout="", stderr=str(exc))
        payload = data.encode("utf-8") if isinstance(data, str) else data
        out, err = proc.communicate(payload)
        out = out.decode("utf-8", "replace")
        err = err.decode("utf-8", "replace")
        if check and proc.returncode != 0:
            raise CommandError(
                "%s failed with rc=%d: %s" % (argv[0], proc.returncode, err.strip() or out.strip()),
                cmd=argv,
                rc=proc.returncode,
                stdout=out,
                stderr=err,
            )
        return proc.returncode, out, err
