# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's one domain exception and its two kinds; how a module reports one.

Internal to the collection. ``WgspError`` becomes a single ``fail_json``; ``ValidationError`` names
the field; ``CommandError`` carries cmd/rc/stdout/stderr (never stdin, which may hold secrets or a
restore file).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class WgspError(Exception):
    """A failure the module reports to the user with ``fail_json(msg=..., **details)``."""

    def __init__(self, msg, **details):
        super(WgspError, self).__init__(msg)
        self.msg = msg
        self.details = details


class ValidationError(WgspError):
    """Bad input, detected before anything was changed."""

    def __init__(self, field, problem, **details):
        msg = "%s: %s" % (field, problem)
        super(ValidationError, self).__init__(msg, field=field, **details)
        self.field = field


class CommandError(WgspError):
    """A command failed; carries what the user needs to debug it (but not stdin)."""

    def __init__(self, msg, cmd, rc, stdout, stderr):
        super(CommandError, self).__init__(msg, cmd=cmd, rc=rc, stdout=stdout, stderr=stderr)


def describe(value):
    """A short, printable rendering of a user value for error messages (never use for secrets)."""
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return text


def fail_from_error(module, exc, **extra):
    """Turn a ``WgspError`` into the module's one ``fail_json``."""
    details = dict(exc.details)
    details.update(extra)
    module.fail_json(msg=exc.msg, **details)
