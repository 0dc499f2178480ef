# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Convert an original wg-service-proxy ``.env`` / ``.env.share`` / ``.env.proxy`` file into the
collection's inventory variables.

Standard library only: the CLI ``bin/wgsp-import-env`` loads this file by path, and the filter
``wgsp.service_proxy.wgsp_env_import`` (playbook ``import_env.yml``) imports it; both produce the same
files.

``convert(text, host)`` returns ``{"group", "mode", "host_vars" (YAML text), "secrets" (YAML text or
None), "inventory" (YAML text of a minimal hosts.yml), "mapped" (dict), "unmapped" [(key, why)],
"secret_keys" [names]}``. Key material (``WG_PRIVATE_KEY``, ``WG_PRESHARED_KEY``) goes only into
``secrets``; no other output ever contains a key's value.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import re

GROUPS = {"share": "share_clients", "proxy": "proxy_clients"}
PREFIX = {"share": "share_client_", "proxy": "proxy_client_"}
SECRET_OPTIONS = ("WG_PRIVATE_KEY", "WG_PRESHARED_KEY")
_TRUE = ("true", "yes", "on", "1", "y")
_FALSE = ("false", "no", "off", "0", "n", "")
HOST_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
KEY_RE = re.compile(r"^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw480]=$")


class EnvImportError(Exception):
    """The file cannot be converted; the message never contains a secret value."""


# ---------------------------------------------------------------------------------------------
# parsing


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
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        else:
            value = re.sub(r"\s+#.*$", "", value).strip()
        if key not in out:
            order.append(key)
        out[key] = (value, number)
    return [(key, out[key][0], out[key][1]) for key in order]


def _items(value):
    return [item.strip() for item in re.split(r"[,\s]+", value) if item.strip()]


def _bool(key, value):
    text = value.strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise EnvImportError("%s must be true or false (got %r)" % (key, value))


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
        if not re.match(pattern, item):
            raise EnvImportError("%s: %r is not %s" % (key, item, form))
    return items


_PROTO = r"(tcp|udp|both|all)"
_ADDR = r"([0-9.]+|\[[0-9a-fA-F:.]+\])"


# ---------------------------------------------------------------------------------------------
# the mapping


def _why_common():
    """Options the collection handles another way, in every mode: key -> why (comment text)."""
    return {
        "CLIENT_MODE": None,  # handled: the group
        "WG_DNS": "not mapped: the collection does not change the host's resolver (wg-quick DNS= would rewrite "
                  "resolv.conf); configure DNS with your usual resolver role if the tunnel needs it",
        "WG_PUBLIC_KEY": "not needed: the public key is derived from the private key on the host; "
                         "`ansible <host> -m wgsp.service_proxy.wg_status` shows it",
        "WG_PEER_PUBLIC_KEY": "not needed: the hub's public key is read on the hub itself at every run "
                              "(the hub's key is generated there)",
        "WG_ENDPOINT": "belongs to the hub, not to this host: put `wg_server_endpoint: %s` in the hub's group_vars "
                       "(group_vars/wg_server.yml)",
        "WG_ALLOWED_IPS": "not mapped: the tunnel network is the hub's `wg_server_address` (e.g. 10.7.0.1/24 gives "
                          "10.7.0.0/24); add destinations beyond it with `%sextra_routes` (value was %s)",
        "WG_INTERFACE_ROUTING_MASK": "not mapped: the tunnel network's prefix is the prefix of the hub's "
                                     "`wg_server_address` (value was %s)",
        "WG_DISABLE_INTERFACE_ROUTING": "not mapped: the roles always route the tunnel network through the interface "
                                        "(the service proxy needs it); only routes marked proto 87 are managed",
        "WG_PRIVATE_KEY": "moved to the secrets file (see its header): copy it to the key path on the host before the "
                          "first run to keep the old key, or let the role generate a new one on the host",
        "WG_PRESHARED_KEY": "moved to the secrets file: the roles do not configure preshared keys; the hub and the "
                            "clients talk with their key pairs only",
    }


def _map_common(prefix, key, value, mapped):
    if key == "WG_INTERFACE_NAME":
        mapped[prefix + "interface"] = value
    elif key == "WG_ADDRESS":
        items = _items(value)
        if not items:
            raise EnvImportError("WG_ADDRESS is empty")
        _check_items(key, items, r"^[0-9a-fA-F:.]+/[0-9]+$", "an address with prefix (10.7.0.2/32)")
        mapped[prefix + "address"] = items[0]
        if len(items) > 1:
            return "only the first address is mapped (%s); the roles take one tunnel address per client, " \
                   "the others were %s" % (items[0], ", ".join(items[1:]))
    elif key == "WG_MTU":
        mapped[prefix + "mtu"] = _int(key, value, 576, 65535)
    elif key == "WG_PERSISTENT_KEEPALIVE":
        mapped[prefix + "persistent_keepalive"] = _int(key, value, 0, 65535)
    else:
        return False
    return None


def _map_share(key, value, mapped):
    p = PREFIX["share"]
    if key == "WG_DOCKER_ALLOWED_HOSTS":
        items = _items(value)
        _check_items(key, items, r"^[A-Za-z0-9][A-Za-z0-9_.-]*(:%s)?:[0-9]+$" % _PROTO, "name[:proto]:port")
        mapped[p + "services"] = items
    elif key == "WG_DOCKER_NETWORK":
        mapped[p + "docker_network"] = value
    elif key in HOST_SWITCHES and value.strip().lower() in _TRUE + _FALSE:
        if _bool(key, value):
            return SKIP, "a switch in the original; here a host service is shared exactly when it is listed in " \
                         "`share_client_host_services`"
        mapped["__host_services_off"] = key
        return SKIP, "was false: the host services listed in the file are NOT carried over (they were not shared)"
    elif key in HOST_SWITCHES + ("WG_HOST_SERVICES",):
        items = _items(value)
        _check_items(key, items, r"^%s:[0-9]+(:[0-9]+)?$" % _PROTO, "proto:port or proto:port:target_port")
        mapped.setdefault(p + "host_services", [])
        mapped[p + "host_services"] += [i for i in items if i not in mapped[p + "host_services"]]
    elif key == "WG_EXTERNAL_FORWARDING":
        items = _items(value)
        _check_items(key, items, r"^%s:[0-9]+:%s:[0-9]+$" % (_PROTO, _ADDR), "proto:port:address:port")
        mapped[p + "external_forwards"] = items
    elif key == "WG_LOG_ACCESS":
        mapped[p + "log_access"] = _bool(key, value)
    elif key == "WG_ALLOWED_TCP_PORTS":
        mapped[p + "allowed_tcp_ports"] = _ports(key, value)
    elif key == "WG_ALLOWED_UDP_PORTS":
        mapped[p + "allowed_udp_ports"] = _ports(key, value)
    elif key == "WG_ALLOW_ICMP":
        mapped[p + "allow_icmp"] = _bool(key, value)
    elif key in PROXY_ONLY:
        return SKIP, "a proxy option in a share client's file: ignored (a share client does not publish or access services)"
    else:
        return False
    return None


def _map_proxy(key, value, mapped):
    p = PREFIX["proxy"]
    if key == "ACCESS_SERVICES":
        items = _items(value)
        _check_items(key, items, r"^(%s:)?%s:[0-9]+$" % (_PROTO, _ADDR), "address:port")
        mapped[p + "access_services"] = items
    elif key == "WG_ENABLE_PUBLIC_FORWARDING":
        mapped[p + "enable_public_forwarding"] = _bool(key, value)
    elif key == "WG_PUBLIC_PORTS":
        items = _items(value)
        _check_items(key, items, r"^(%s:)?[0-9]+:%s:[0-9]+$" % (_PROTO, _ADDR), "public_port:address:port")
        mapped[p + "public_ports"] = items
    elif key == "WG_PUBLIC_NETWORK":
        mapped[p + "public_interface"] = value or "auto"
    elif key == "WG_PUBLIC_ALLOWED_CIDR":
        items = _items(value)
        _check_items(key, items, r"^[0-9a-fA-F:.]+(/[0-9]+)?$", "a CIDR")
        mapped[p + "public_allowed_cidrs"] = items
    elif key == "WG_LOG_PUBLIC_ACCESS":
        mapped[p + "log_public_access"] = _bool(key, value)
    elif key in SHARE_ONLY:
        return SKIP, ("a share option in a proxy client's file: ignored (the proxy_client role shares nothing and "
                      "has no tunnel input filter)")
    else:
        return False
    return None


SKIP = "skip"
HOST_SWITCHES = ("WG_DOCKER_FORWARD_TO_HOST", "WG_SHARE_HOST_SERVICES")
SHARE_ONLY = ("WG_DOCKER_ALLOWED_HOSTS", "WG_DOCKER_NETWORK", "WG_DOCKER_FORWARD_TO_HOST", "WG_SHARE_HOST_SERVICES",
              "WG_HOST_SERVICES", "WG_EXTERNAL_FORWARDING", "WG_LOG_ACCESS", "WG_ALLOWED_TCP_PORTS",
              "WG_ALLOWED_UDP_PORTS", "WG_ALLOW_ICMP")
PROXY_ONLY = ("ACCESS_SERVICES", "WG_ENABLE_PUBLIC_FORWARDING", "WG_PUBLIC_PORTS", "WG_PUBLIC_NETWORK",
              "WG_PUBLIC_ALLOWED_CIDR", "WG_LOG_PUBLIC_ACCESS")


def detect_mode(entries, mode=None):
    values = dict((k, v) for k, v, _n in entries)
    if mode:
        chosen = mode
    else:
        chosen = values.get("CLIENT_MODE", "").strip().lower()
    if chosen in ("share", "proxy"):
        return chosen
    if chosen == "disabled":
        raise EnvImportError("CLIENT_MODE=disabled: this host neither shares nor proxies; leave it out of the "
                             "share_clients and proxy_clients groups (pass mode=share or mode=proxy to convert anyway)")
    if chosen:
        raise EnvImportError("CLIENT_MODE must be share, proxy or disabled (got %r)" % chosen)
    if any(k in values for k in SHARE_ONLY[:6]):
        return "share"
    if any(k in values for k in PROXY_ONLY):
        return "proxy"
    raise EnvImportError("CLIENT_MODE is not set and the file has neither share nor proxy options; pass mode=share "
                         "or mode=proxy")


# ---------------------------------------------------------------------------------------------
# rendering (YAML by hand: JSON scalars are valid YAML)


def _scalar(value):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return json.dumps(value)


def render_vars(mapped):
    lines = []
    for key in sorted(mapped):
        value = mapped[key]
        if isinstance(value, list):
            if not value:
                lines.append("%s: []" % key)
                continue
            lines.append("%s:" % key)
            lines.extend("  - %s" % _scalar(item) for item in value)
        else:
            lines.append("%s: %s" % (key, _scalar(value)))
    return lines


def _comment(text, width=100):
    words = text.split()
    lines, line = [], "#"
    for word in words:
        if len(line) + len(word) + 1 > width and line != "#":
            lines.append(line)
            line = "#  "
        line += " " + word
    lines.append(line)
    return lines


def convert(text, host, source="the .env file", mode=None, secrets_path=None):
    """See the module docstring. ``mode`` overrides ``CLIENT_MODE``."""
    if not HOST_RE.match(host or ""):
        raise EnvImportError("host must be an inventory host name (letters, digits, _ . -), got %r" % (host,))
    entries = parse_env(text)
    mode = detect_mode(entries, mode)
    prefix = PREFIX[mode]
    group = GROUPS[mode]
    why = _why_common()
    mapped, unmapped, secrets, notes = {}, [], {}, []
    for key, value, _number in entries:
        if key == "CLIENT_MODE":
            continue
        if key in SECRET_OPTIONS:
            if value:
                if not KEY_RE.match(value.strip()):
                    raise EnvImportError("%s is not a WireGuard key (44 characters of base64); its value is not shown"
                                         % key)
                secrets[key] = value.strip()
                unmapped.append((key, why[key]))
            continue
        note = _map_common(prefix, key, value, mapped)
        if note is False:
            note = (_map_share if mode == "share" else _map_proxy)(key, value, mapped)
        if note is False:
            if key == "WG_ENDPOINT":
                note = why[key] % value
            elif key == "WG_ALLOWED_IPS":
                note = why[key] % (prefix, value)
            elif key == "WG_INTERFACE_ROUTING_MASK":
                note = why[key] % value
            elif key in why:
                note = why[key]
            else:
                note = "unknown option: not part of the original's env-template, not mapped"
            unmapped.append((key, note))
        elif isinstance(note, tuple):
            unmapped.append((key, note[1]))
        elif note:
            notes.append((key, note))
    off = mapped.pop("__host_services_off", None)
    if off and mapped.get(prefix + "host_services"):
        unmapped.append(("WG_HOST_SERVICES", "not carried over because %s=false: %s would have shared %s"
                         % (off, prefix + "host_services", ", ".join(mapped.pop(prefix + "host_services")))))
    if prefix + "address" not in mapped:
        raise EnvImportError("WG_ADDRESS is missing: %saddress is required" % prefix)
    interface = mapped.get(prefix + "interface", "wg0")
    key_path = "/etc/wireguard/%s.key" % interface
    secrets_name = secrets_path or "secrets/%s.keys.yml" % host

    out = ["---", "# %s: imported from %s by wgsp-import-env." % (host, source)]
    out += _comment("CLIENT_MODE=%s: put %s in the group `%s` of your inventory (role %s)." % (
        mode, host, group, prefix.rstrip("_")))
    out += _comment("Every variable: roles/%s/meta/argument_specs.yml." % prefix.rstrip("_"))
    out += render_vars(mapped)
    if notes:
        out += ["", "# Mapped with a remark:"]
        for key, note in notes:
            out += _comment("%s: %s" % (key, note))
    if unmapped:
        out += ["", "# Options of the original not carried over, and why:"]
        for key, note in unmapped:
            out += _comment("%s: %s" % (key, note))
    if secrets:
        out += ["", "# Key material from the file is in %s (0600), not here." % secrets_name]
    host_vars = "\n".join(out) + "\n"

    secret_text = None
    if secrets:
        lines = ["---"]
        lines += _comment("Key material of %s imported from %s. Keep it out of version control or encrypt it now: "
                          "ansible-vault encrypt %s" % (host, source, secrets_name))
        lines += _comment("The roles never copy private keys: each host's key is generated on the host when "
                          "%s is missing. To KEEP the old key (so the hub's peer entry stays valid), copy it to the "
                          "host before the first run, e.g.: ansible %s -b -m ansible.builtin.copy -a "
                          "'content=\"{{ wgsp_import_private_key }}\\n\" dest=%s mode=0600' -e @%s --ask-vault-pass "
                          "(add -e to set the key path if you changed %sprivate_key_path)." % (
                              key_path, host, key_path, secrets_name, prefix))
        lines += _comment("To let the role GENERATE a new key instead, delete this file; the hub learns the new "
                          "public key on its next run.")
        if "WG_PRESHARED_KEY" in secrets:
            lines += _comment("The preshared key is kept for reference only: the roles do not use preshared keys.")
        names = {"WG_PRIVATE_KEY": "wgsp_import_private_key", "WG_PRESHARED_KEY": "wgsp_import_preshared_key"}
        for key in SECRET_OPTIONS:
            if key in secrets:
                lines.append("%s: %s" % (names[key], json.dumps(secrets[key])))
        secret_text = "\n".join(lines) + "\n"

    inventory = "\n".join([
        "---",
        "# A minimal inventory written by wgsp-import-env; add the hub (group wg_server) and the other clients.",
        "all:",
        "  children:",
        "    wg_server:",
        "      hosts: {}",
        "    %s:" % group,
        "      hosts:",
        "        %s: {}" % host,
    ]) + "\n"
    return {"group": group, "mode": mode, "host_vars": host_vars, "secrets": secret_text, "inventory": inventory,
            "mapped": mapped, "unmapped": unmapped, "notes": notes, "secret_keys": sorted(secrets)}
