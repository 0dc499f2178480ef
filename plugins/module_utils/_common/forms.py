# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The original project's compact ``:``-separated forms: their one parser.

Internal to the collection. The roles' filters (inventory variables), ``wg_dnat``'s
``compact_rules`` and the ``.env`` importer all read a compact entry here, so an entry means the
same everywhere. These functions split an entry into its named parts (strings; a protocol
lower-cased) and raise ``ValidationError`` naming the field when the entry has no such shape; the
values themselves are judged by the ``check_*`` validators of ``checks`` and ``net``, as every other
value is.

Forms:
- share ``name[:proto]:port`` (``WG_DOCKER_ALLOWED_HOSTS``, ``share_client_services``);
- publish ``[proto:]public_port:target`` (``WG_PUBLIC_PORTS``, ``proxy_client_public_ports``);
- access ``[proto:]target`` (``ACCESS_SERVICES``, ``proxy_client_access_services``);
- host service ``proto:port[:to_port]`` (``WG_HOST_SERVICES``, ``share_client_host_services``);
- external forward ``proto:port:address:port`` (``WG_EXTERNAL_FORWARDING``,
  ``share_client_external_forwards``).

A target is ``address:port``, ``[ipv6]:port`` or ``inventory_host:service`` (``net.split_host_port``).
Every port may be a range ``N-M``; a range forwarded to another range of the same length goes port by
port (``checks.check_to_ports``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import ValidationError

# The protocol words of the compact forms (``all`` is the original's name for both).
PROTO_WORDS = ("tcp", "udp", "both", "all")
_PORTS_RE = re.compile(r"^[0-9]+(-[0-9]+)?$")

SHARE = "name[:proto]:port"
PUBLISH = "[proto:]public_port:address:port"
HOST_SERVICE = "proto:port or proto:port:target_port"
EXTERNAL = "proto:port:address:port"


def split_compact(field, text):
    """Split on ``:`` but keep a bracketed IPv6 address (``[fd00::2]``) in one piece, unbracketed."""
    parts = []
    rest = str(text)
    while rest:
        if rest.startswith("["):
            end = rest.find("]")
            if end < 0:
                raise ValidationError(field, "unbalanced '[' in %r" % (text,))
            parts.append(rest[1:end])
            rest = rest[end + 1:]
            if rest and not rest.startswith(":"):
                raise ValidationError(field, "expected ':' after ']' in %r" % (text,))
            rest = rest[1:]
            continue
        head, sep, rest = rest.partition(":")
        parts.append(head)
        if not sep:
            break
    return parts


def _text(field, entry, form):
    text = str(entry if entry is not None else "").strip()
    if not text:
        raise ValidationError(field, "is empty (expected %s)" % form)
    return text


def proto_prefix(text):
    """``proto:rest`` -> ``("proto", "rest")`` when the first part is a protocol word; else ``(None, text)``."""
    head, sep, rest = text.partition(":")
    if sep and head.strip().lower() in PROTO_WORDS:
        return head.strip().lower(), rest
    return None, text


def share_form(field, entry):
    """``name[:proto]:port`` -> ``{name, proto, port}`` (proto ``tcp`` when absent)."""
    parts = split_compact(field, _text(field, entry, SHARE))
    if len(parts) == 2:
        parts.insert(1, "tcp")
    if len(parts) != 3:
        raise ValidationError(field, "is not %s" % SHARE)
    return {"name": parts[0], "proto": parts[1].lower(), "port": parts[2]}


def publish_form(field, entry):
    """``[proto:]public_port:target`` -> ``{proto (None when absent), port, target}``."""
    proto, rest = proto_prefix(_text(field, entry, PUBLISH))
    public, sep, target = rest.partition(":")
    if not sep or not target:
        raise ValidationError(field, "is not %s" % PUBLISH)
    return {"proto": proto, "port": public, "target": target}


def access_form(field, entry):
    """``[proto:]target`` -> ``{proto (None when absent), target}``."""
    proto, target = proto_prefix(_text(field, entry, "[proto:]address:port"))
    return {"proto": proto, "target": target}


def host_service_form(field, entry):
    """``proto:port[:to_port]`` -> ``{proto, port, to_port}`` (to_port = port when absent)."""
    parts = split_compact(field, _text(field, entry, HOST_SERVICE))
    if len(parts) not in (2, 3):
        raise ValidationError(field, "is not %s" % HOST_SERVICE)
    return {"proto": parts[0].lower(), "port": parts[1], "to_port": parts[-1]}


def external_form(field, entry):
    """``proto:port:address:port`` (address may be ``[ipv6]``) -> ``{proto, port, to_address, to_port}``."""
    parts = split_compact(field, _text(field, entry, EXTERNAL))
    if len(parts) != 4:
        raise ValidationError(field, "is not %s" % EXTERNAL)
    return {"proto": parts[0].lower(), "port": parts[1], "to_address": parts[2], "to_port": parts[3]}


def compact_rule(field, entry):
    """A ``wg_dnat`` compact rule, either form, told apart by shape -> a rule dict.

    Share ``name[:proto]:port`` -> ``{proto, to_container, port}``; publish
    ``[proto:]public_port:address:port`` -> ``{proto, port, to_address, to_port}``.
    """
    text = _text(field, entry, "'dummy:tcp:80' or '80:10.7.0.2:80'")
    if re.search(r"\s", text):
        raise ValidationError(field, "must not contain spaces (got %r)" % (text,))
    parts = split_compact(field, text)
    words = [p.lower() in PROTO_WORDS for p in parts]
    if (len(parts) == 4 and words[0]) or (len(parts) == 3 and not words[1] and _PORTS_RE.match(parts[0])):
        return {"proto": parts[0].lower() if len(parts) == 4 else "tcp", "port": parts[-3],
                "to_address": parts[-2], "to_port": parts[-1]}
    if (len(parts) == 3 and words[1]) or (len(parts) == 2 and _PORTS_RE.match(parts[1])):
        form = share_form(field, text)
        return {"proto": form["proto"], "to_container": form["name"], "port": form["port"]}
    raise ValidationError(
        field, "cannot parse %r: expected 'name[:proto]:port' (share) or '[proto:]public_port:address:port' (publish)"
        % (text,))
