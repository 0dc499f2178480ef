# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The validators of scalar values the modules and the filter plugin share.

Internal to the collection (leading underscore): no stability promise outside it. Each validator
raises ``ValidationError`` naming the field and the problem, and never echoes a secret. Addresses,
networks and endpoints are in ``net``, paths and the files the modules write in ``files``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math
import re
import shlex

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import ValidationError, describe


# Linux IFNAMSIZ is 16 including the NUL. The kernel refuses "", ".", "..", "/", ":" and whitespace;
# this collection also refuses a leading "-" (it would read as an option of ip, wg or wireguard-go)
# and "+" (a wildcard to iptables, a literal name to nftables), and keeps to a character set that is
# inert in every place a name goes: argv, iptables-restore, nft -f, wg-quick files and shell lines.
IFNAME_RE = re.compile(r"^[a-zA-Z0-9_=.-]{1,15}$")
# Characters that must never reach a line-based protocol or a restore file.
_UNSAFE_RE = re.compile(r"[\s;'\"`$\\|&<>(){}#*?!]")


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
    """A Linux interface name, the same rule for every module, role variable and filter.

    1-15 characters from ``a-z A-Z 0-9 _ = . -``; not ``.`` or ``..``; not starting with ``-``.
    ``+`` is refused: iptables reads ``eth+`` as a wildcard while nftables reads it as a literal
    name, so one value would mean two different things depending on the backend.
    """
    text = check_no_control(field, value)
    if text is None or text == "" or isinstance(value, bool):
        raise ValidationError(field, "must be an interface name (got %s)" % describe(value))
    if "+" in text:
        raise ValidationError(
            field, "must name one interface: '+' is an iptables wildcard (not the same on nftables) and is "
                   "not accepted (got %s)" % describe(value))
    if text in (".", "..") or text.startswith("-") or not IFNAME_RE.match(text):
        raise ValidationError(
            field,
            "invalid interface name %s: 1-15 characters from a-z A-Z 0-9 _ = . -, not '.' or '..', "
            "not starting with '-'" % describe(value),
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


def check_to_ports(field, port, to_port):
    """Where the ports ``port`` (a checked ``(low, high)``) are forwarded: ``to_port`` is a port or a
    range of the same length (None: the same ports); returns it as ``(low, high)``. A range goes
    port by port (``30000-30010`` to ``40000-40010`` sends 30005 to 40005)."""
    if to_port is None:
        return port
    to_port = check_port_range(field, to_port)
    if to_port[1] - to_port[0] != port[1] - port[0]:
        raise ValidationError(field, "%s is %d port(s) but the ports it receives from, %s, are %d: a range is "
                              "forwarded port by port, to a range of the same length"
                              % (ports_value(to_port), to_port[1] - to_port[0] + 1, ports_value(port),
                                 port[1] - port[0] + 1))
    return to_port


def ports_value(ports):
    """A ``(low, high)`` pair as users write it: the port (an int) or ``"low-high"``."""
    low, high = ports
    return low if low == high else "%d-%d" % (low, high)


def check_float(field, value, low, high):
    """A number (int or float, or its text) with ``low <= value <= high``."""
    if isinstance(value, bool):
        raise ValidationError(field, "must be a number between %s and %s (got %s)" % (low, high, describe(value)))
    try:
        number = float(str(value).strip()) if not isinstance(value, (int, float)) else float(value)
    except (TypeError, ValueError):
        raise ValidationError(field, "must be a number between %s and %s (got %s)" % (low, high, describe(value)))
    if math.isnan(number) or not low <= number <= high:
        raise ValidationError(field, "must be between %s and %s (got %s)" % (low, high, describe(value)))
    return number


# Docker's own rule for container and network names.
DOCKER_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")


def check_docker_name(field, value, what="container"):
    """A Docker container (or network) name: 1-128 characters from ``a-z A-Z 0-9 _ . -``, first alphanumeric."""
    text = check_no_control(field, value)
    if not isinstance(value, str) or not DOCKER_NAME_RE.match(text):
        raise ValidationError(field, "is not a valid %s name: 1-128 characters from a-z A-Z 0-9 _ . -, "
                                     "starting with a letter or digit (got %s)" % (what, describe(value)))
    return text


def check_shell_line(field, value):
    """A command line wg-quick runs as a hook (``PostUp``/``PreDown``).

    It is a shell line by nature and is written verbatim; it must not be empty nor contain a
    newline, a control character or ``#`` (wg-quick cuts a line at ``#``, so what ran would not be
    what was written).
    """
    text = check_no_control(field, value)
    if text is None or not str(text).strip():
        raise ValidationError(field, "must not be empty")
    if "#" in text:
        raise ValidationError(field, "must not contain '#': wg-quick treats the rest of the line as a comment")
    return str(text)


def shell_quote(value):
    """One shell word, quoted for ``sh`` (``shlex.quote``)."""
    return shlex.quote(str(value))
