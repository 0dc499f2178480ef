# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Reading an original ``.env`` file as the original's godotenv and ``getEnv*`` helpers do."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

GROUPS = {"share": "share_clients", "proxy": "proxy_clients"}
PREFIX = {"share": "share_client_", "proxy": "proxy_client_"}
SECRET_OPTIONS = ("WG_PRIVATE_KEY", "WG_PRESHARED_KEY")
HOST_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
KEY_RE = re.compile(r"^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw480]=$")


class EnvImportError(Exception):
    """The file cannot be converted; the message never contains a secret value."""


# ---------------------------------------------------------------------------------------------
# parsing (as the original's godotenv does)


def _unquote(value, number):
    """A value starting with a quote ends at its closing quote; a comment may follow it."""
    quote = value[0]
    close = 1
    while True:
        close = value.find(quote, close)
        if close < 0:
            raise EnvImportError("line %d: the value opens a %s quote that is never closed" % (number, quote))
        if quote == "'" or value[close - 1] != "\\":
            break
        close += 1
    rest = value[close + 1:].strip()
    if rest and not rest.startswith("#"):
        raise EnvImportError("line %d: text after the closing quote that is not a # comment" % number)
    inner = value[1:close]
    return inner.replace('\\"', '"') if quote == '"' else inner


def parse_env(text):
    """``KEY=value`` lines (``export`` prefix, quotes, comments, blank lines, indentation) -> list of
    ``(key, value, line_no)`` in file order. A repeated key keeps its last value (as a shell would)."""
    out = {}
    order = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if line.startswith("```"):  # a fenced block pasted from the README
            line = line[3:].strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("export "):
            line = line[len("export "):].strip()
        match = re.match(r"^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$", line)
        if not match:
            raise EnvImportError("line %d is not KEY=value" % number)
        key, value = match.group(1), match.group(2).strip()
        if value[:1] in ("'", '"'):
            value = _unquote(value, number)
        else:
            value = re.sub(r"(^|\s+)#.*$", "", value).strip()
        if key not in out:
            order.append(key)
        out[key] = (value, number)
    return [(key, out[key][0], out[key][1]) for key in order]


def _items(value):
    """A comma list as the original splits it, spaces around each part dropped (``80: 10.7.0.2:80``)."""
    return [re.sub(r"\s*:\s*", ":", item.strip()) for item in value.split(",") if item.strip()]


# The original's booleans and their defaults: only ``true``/``false`` (any case) are read, anything
# else (``1``, ``yes``, a typo, empty, absent) is the default.
BOOL_DEFAULTS = {"WG_ENABLE_PUBLIC_FORWARDING": False, "WG_LOG_PUBLIC_ACCESS": False, "WG_LOG_ACCESS": False,
                 "WG_ALLOW_ICMP": False, "WG_SHARE_HOST_SERVICES": False, "WG_DISABLE_INTERFACE_ROUTING": False}


def original_bool(key, value):
    """``(value, remark)``: the original's reading of ``value`` (None = absent), and why when it is the default."""
    text = (value or "").strip().lower()
    if text in ("true", "false"):
        return text == "true", None
    default = BOOL_DEFAULTS[key]
    why = "absent" if value is None else "%r is neither true nor false" % value
    return default, "%s: the original reads it as its default, %s" % (why, "true" if default else "false")


def _int(key, value, low=0, high=65535):
    if not re.match(r"^\s*[0-9]+\s*$", value):
        raise EnvImportError("%s must be a number (got %r)" % (key, value))
    number = int(value)
    if number < low or number > high:
        raise EnvImportError("%s must be between %d and %d (got %d)" % (key, low, high, number))
    return number


def _ports(key, value):
    return [_int(key, item, 1, 65535) for item in _items(value)]


def _check_items(key, items, pattern, form):
    for item in items:
        if not re.match(pattern, item, re.I):
            raise EnvImportError("%s: %r is not %s" % (key, item, form))
    return items


def _lower_proto(item, index):
    parts = item.split(":")
    parts[index] = parts[index].lower()
    return ":".join(parts)


_IPV4 = r"([0-9]{1,3}\.){3}[0-9]{1,3}"
