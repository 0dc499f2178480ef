# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared plumbing for the wgsp.service_proxy modules.

Internal to the collection (leading underscore): no stability promise outside it.

What lives here:
- ``WgspError``: the one domain exception; modules turn it into a single ``fail_json``.
- validators for values that end up in line-based protocols (UAPI, iptables-restore, nft -f):
  each raises ``ValidationError`` naming the field and the problem, and never echoes a secret.
- ``CommandRunner``: runs a command with ``LC_ALL=C`` and turns a failure into a ``CommandError``
  carrying cmd/rc/stdout/stderr (never stdin, which may hold secrets or a restore file).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import os
import re
import subprocess


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


# Linux IFNAMSIZ is 16 including the NUL; WireGuard's own tools accept this character set.
IFNAME_RE = re.compile(r"^[a-zA-Z0-9_=+.-]{1,15}$")
# Characters that must never reach a line-based protocol or a restore file.
_UNSAFE_RE = re.compile(r"[\s;'\"`$\\|&<>(){}#*?!]")


def describe(value):
    """A short, printable rendering of a user value for error messages (never use for secrets)."""
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return text


def check_no_control(field, value):
    """Reject newlines and other control characters (line-based protocols would be injected)."""
    if value is None:
        return value
    text = str(value)
    for ch in text:
        if ch in "\r\n" or ord(ch) < 32 or ord(ch) == 127:
            raise ValidationError(field, "must not contain a newline or control character (got %s)" % describe(value))
    return text


def check_token(field, value, max_len=64):
    """A single safe word: no whitespace, shell or restore-file metacharacters."""
    text = check_no_control(field, value)
    if text is None or text == "":
        raise ValidationError(field, "must not be empty")
    if _UNSAFE_RE.search(text):
        raise ValidationError(field, "must not contain spaces, quotes or shell metacharacters (got %s)" % describe(value))
    if len(text) > max_len:
        raise ValidationError(field, "must be at most %d characters (got %d)" % (max_len, len(text)))
    return text


def check_ifname(field, value):
    text = check_no_control(field, value)
    if text is None or not IFNAME_RE.match(text):
        raise ValidationError(
            field,
            "invalid interface name %s: 1-15 characters from a-z A-Z 0-9 _ = + . -" % describe(value),
        )
    return text


def check_int(field, value, low, high):
    if isinstance(value, bool):
        raise ValidationError(field, "must be an integer between %d and %d (got %s)" % (low, high, describe(value)))
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except (TypeError, ValueError):
        raise ValidationError(field, "must be an integer between %d and %d (got %s)" % (low, high, describe(value)))
    if isinstance(value, str) and not re.match(r"^\s*[0-9]+\s*$", value):
        raise ValidationError(field, "must be an integer between %d and %d (got %s)" % (low, high, describe(value)))
    if number < low or number > high:
        raise ValidationError(field, "must be between %d and %d (got %s)" % (low, high, describe(value)))
    return number


def check_port(field, value):
    return check_int(field, value, 1, 65535)


def check_port_range(field, value):
    """``N`` or ``"N-M"`` with 1 <= N <= M <= 65535; returns ``(N, M)``."""
    check_no_control(field, value)
    if isinstance(value, int) and not isinstance(value, bool):
        port = check_port(field, value)
        return (port, port)
    text = str(value).strip()
    match = re.match(r"^([0-9]+)(?:[-:]([0-9]+))?$", text)
    if not match:
        raise ValidationError(field, "must be a port (1-65535) or a range 'N-M' (got %s)" % describe(value))
    low = check_port(field, match.group(1))
    high = check_port(field, match.group(2)) if match.group(2) else low
    if high < low:
        raise ValidationError(field, "range %s is reversed: the first port must not exceed the second" % describe(value))
    return (low, high)


def check_address(field, value):
    """A single IPv4/IPv6 address (no prefix); returns ``ipaddress`` object."""
    text = check_no_control(field, value)
    try:
        return ipaddress.ip_address(str(text).strip())
    except ValueError:
        raise ValidationError(field, "is not a valid IPv4 or IPv6 address (got %s)" % describe(value))


def check_cidr(field, value, strict=False):
    """An address with an optional prefix, e.g. ``10.7.0.2/32``; returns ``ipaddress`` interface.

    With ``strict`` host bits must be zero (a network, as in allowed IPs and routes) and a
    network object is returned.
    """
    text = check_no_control(field, value)
    text = str(text).strip() if text is not None else ""
    try:
        if strict:
            return ipaddress.ip_network(text, strict=True)
        return ipaddress.ip_interface(text)
    except ValueError as exc:
        raise ValidationError(field, "is not a valid CIDR (got %s: %s)" % (describe(value), exc))


def check_endpoint(field, value):
    """``host:port`` or ``[v6]:port``; returns ``(host, port)`` with host unbracketed."""
    text = check_no_control(field, value)
    text = str(text).strip() if text is not None else ""
    match = re.match(r"^\[([0-9A-Fa-f:.%a-zA-Z]+)\]:([0-9]+)$", text)
    if match:
        host, port = match.group(1), match.group(2)
        check_address(field, host)
    else:
        match = re.match(r"^([A-Za-z0-9.-]+):([0-9]+)$", text)
        if not match:
            raise ValidationError(
                field,
                "must be host:port or [ipv6]:port with a port (got %s)" % describe(value),
            )
        host, port = match.group(1), match.group(2)
    return host, check_port(field, port)


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


def fail_from_error(module, exc, **extra):
    """Turn a ``WgspError`` into the module's one ``fail_json``."""
    details = dict(exc.details)
    details.update(extra)
    module.fail_json(msg=exc.msg, **details)
