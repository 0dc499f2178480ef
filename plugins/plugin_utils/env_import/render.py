# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The converted host's files: host_vars, the secrets file, a minimal inventory (YAML by hand)."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

from .mapping import EXPLICIT, _map_common, _map_proxy, _map_share, _why_common, detect_mode
from .parse import GROUPS, HOST_RE, KEY_RE, PREFIX, SECRET_OPTIONS, EnvImportError, original_bool, parse_env

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
    values = dict((key, value) for key, value, _n in entries)
    for key, value, _number in entries:
        if key == "CLIENT_MODE":
            continue
        if key in SECRET_OPTIONS:
            if KEY_RE.match(value.strip()):
                secrets[key] = value.strip()
                if key == "WG_PRESHARED_KEY":  # used: a new one is made on the hub (never copied from here)
                    mapped[prefix + "preshared_key"] = True
                    notes.append((key, why[key] % (prefix + "preshared_key")))
                else:
                    unmapped.append((key, why[key]))
            else:  # the original's examples ship placeholders; the value is never shown
                unmapped.append((key, "%s: not a WireGuard key (a placeholder?), not imported; the role generates "
                                      "a key on the host" % ("empty" if not value.strip() else "not shown")))
            continue
        note = _map_common(prefix, key, value, mapped)
        if note is False:
            note = (_map_share if mode == "share" else _map_proxy)(key, value, mapped, values)
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
                note = "unknown option: the original does not read it, not mapped"
            unmapped.append((key, note))
        elif isinstance(note, tuple):
            unmapped.append((key, note[1]))
        elif note:
            notes.append((key, note))
    for key, var in sorted(EXPLICIT[mode].items()):
        if key not in values:
            mapped[var], remark = original_bool(key, None)
            notes.append((key, remark))
    if mapped.get(prefix + "services") and prefix + "docker_network" not in mapped:
        mapped[prefix + "docker_network"] = "vpn-network"
        notes.append(("WG_DOCKER_NETWORK", "not set: the original's default, vpn-network"))
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
                          "%s is missing. To KEEP the old key (so the hub's peer entry stays valid), install it on "
                          "the host before the first run (the playbook never shows the key, not even with --diff "
                          "or -vvv): ansible-playbook -i INVENTORY wgsp.service_proxy.install_key -l %s -e @%s "
                          "--ask-vault-pass" % (key_path, host, secrets_name))
        lines += _comment("To let the role GENERATE a new key instead, delete this file; the hub learns the new "
                          "public key on its next run.")
        if "WG_PRESHARED_KEY" in secrets:
            lines += _comment("The preshared key is kept for reference only: with %spreshared_key: true the hub makes a "
                              "new one for this client and hands it over in memory (never printed)." % prefix)
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
