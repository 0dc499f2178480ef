#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: wg_preshared_keys
short_description: The WireGuard preshared keys of a hub's peers, generated and kept on the hub
version_added: 0.1.0
description:
  - Makes sure a directory on the managed host (the hub) holds one preshared key per listed peer,
    C(<dir>/<name>.psk) (0600 in a 0700 directory, written with an atomic rename), generating a missing one
    there (32 random bytes, as C(wg genpsk) makes them) or writing the one given in O(peers[].key).
  - A preshared key adds a symmetric secret to the handshake of one peer pair (post-quantum margin). It must be
    the same on both ends, so unlike a private key it has to reach the other host. This module is the one
    place it is made and kept; the roles carry it to the client only in Ansible's memory, in tasks with
    C(no_log), and give it to M(wgsp.service_proxy.wg_interface), which never prints it.
  - The keys are returned only with O(return_keys=true); the task must then set C(no_log=true) (the roles do).
    Diffs, errors and the RV(peers) list never hold a key.
author:
  - wgsp.service_proxy contributors (@wgsp)
attributes:
  check_mode:
    support: full
    description: Reports the keys it would create, replace or remove, and writes nothing; RV(preshared_keys) holds only the keys already there.
  diff_mode:
    support: full
    description: One line per peer (created, replaced, removed) without any key.
  platform:
    support: full
    platforms: linux
    description: Linux hosts.
options:
  dir:
    description: The directory of the keys, an absolute path; created 0700 when missing.
    type: path
    required: true
  peers:
    description: The peers that have a preshared key.
    type: list
    elements: dict
    default: []
    suboptions:
      name:
        description:
          - The peer's name (the roles use its inventory name); the file is C(<dir>/<name>.psk).
          - 1-64 characters from C(A-Z a-z 0-9 _ . -), not starting with C(.) or C(-).
        type: str
        required: true
      key:
        description:
          - A given preshared key (base64, for example from a vaulted variable), written when the file differs.
            Without it a missing key is generated here.
        type: str
      regenerate:
        description: Replace the key with a new one (rotation). Both ends must then get the new key.
        type: bool
        default: false
  exclusive:
    description: Remove the C(*.psk) files in O(dir) of peers not listed (a client that no longer uses one).
    type: bool
    default: true
  generate:
    description:
      - V(false) only reads - nothing is written or removed, a missing key is returned as null. A client
        that reads its key on the hub (C(delegate_to)) can never create or remove one there.
      - Cannot be combined with O(peers[].key) or O(peers[].regenerate).
    type: bool
    default: true
  return_keys:
    description: Return the keys in RV(preshared_keys). Set C(no_log=true) on the task.
    type: bool
    default: false
notes:
  - An existing file that does not hold a WireGuard key fails the module; it is replaced only with
    O(peers[].regenerate=true) or a given O(peers[].key).
seealso:
  - module: wgsp.service_proxy.wg_interface
  - module: wgsp.service_proxy.wg_key
"""

EXAMPLES = r"""
- name: A preshared key for each client, made on the hub, carried in memory only
  wgsp.service_proxy.wg_preshared_keys:
    dir: /etc/wireguard/wg0-psk
    peers: [{name: share1}, {name: proxy1}]
    return_keys: true
  no_log: true
  register: psk

- name: The hub's peer for share1 with its preshared key (the key is never shown)
  wgsp.service_proxy.wg_interface:
    name: wg0
    private_key_path: /etc/wireguard/wg0.key
    peers:
      - public_key: "{{ share1_public_key }}"
        allowed_ips: [10.7.0.2/32]
        preshared_key: "{{ psk.preshared_keys.share1 }}"

- name: Rotate proxy1's preshared key
  wgsp.service_proxy.wg_preshared_keys:
    dir: /etc/wireguard/wg0-psk
    peers: [{name: share1}, {name: proxy1, regenerate: true}]
"""

RETURN = r"""
peers:
  description: Each listed peer's key file and what happened to it (C(created), C(replaced), C(unchanged), C(missing) when only reading).
  returned: always
  type: list
  elements: dict
  sample: [{name: share1, path: /etc/wireguard/wg0-psk/share1.psk, state: unchanged}]
removed:
  description: Peers whose key file was removed (O(exclusive)).
  returned: always
  type: list
  elements: str
preshared_keys:
  description:
    - The keys by peer name (null for a key that does not exist yet). A secret - only with O(return_keys=true).
    - A key given in O(peers[].key) comes back masked, as Ansible masks every value of a C(no_log) option;
      the caller has it already.
  returned: when O(return_keys=true)
  type: dict
"""

import base64  # noqa: E402
import os  # noqa: E402

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import (  # noqa: E402
    ValidationError,
    WgspError,
    fail_from_error,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.files import check_abs_path  # noqa: E402
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.module import WgspModule  # noqa: E402
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard.keys import (  # noqa: E402
    KEY_LEN,
    PEER_NAME_RE,
    check_key,
    check_peer_name,
    read_key_file,
    write_key_file,
)

SUFFIX = ".psk"


def check_peers(peers, generate):
    checked, seen = [], set()
    for index, peer in enumerate(peers or []):
        field = "peers[%d]" % index
        name = check_peer_name(field + ".name", peer.get("name"))
        if name in seen:
            raise ValidationError(field + ".name", "%s is listed twice" % name)
        seen.add(name)
        key = peer.get("key")
        if key not in (None, ""):
            key = check_key(field + ".key", key)
        else:
            key = None
        if not generate and (key or peer.get("regenerate")):
            raise ValidationError(field, "a read (generate=false) takes no key and no regenerate")
        checked.append({"name": name, "key": key, "regenerate": bool(peer.get("regenerate"))})
    return checked


def new_key():
    return base64.b64encode(os.urandom(KEY_LEN)).decode("ascii")


def plan(directory, peers, exclusive, generate):
    """``(entries, removed)``; each entry ``{name, path, state, key, write}`` - ``write`` the key to write."""
    entries = []
    for peer in peers:
        path = os.path.join(directory, peer["name"] + SUFFIX)
        current = read_key_file("peers[%s]" % peer["name"], path) if not peer["regenerate"] and not peer["key"] \
            else _read_quietly(path)
        entry = {"name": peer["name"], "path": path, "key": current, "write": None}
        if not generate:
            entry["state"] = "unchanged" if current else "missing"
        elif peer["key"]:
            entry["state"] = "unchanged" if current == peer["key"] else ("replaced" if current else "created")
            entry["write"] = None if current == peer["key"] else peer["key"]
        elif peer["regenerate"] or current is None:
            entry["state"] = "replaced" if current else "created"
            entry["write"] = new_key()
        else:
            entry["state"] = "unchanged"
        entries.append(entry)
    removed = []
    if exclusive and generate and os.path.isdir(directory):
        listed = set(p["name"] for p in peers)
        for fname in sorted(os.listdir(directory)):
            name = fname[:-len(SUFFIX)]
            if fname.endswith(SUFFIX) and PEER_NAME_RE.match(name) and name not in listed:
                removed.append(name)
    return entries, removed


def _read_quietly(path):
    """The current key for a comparison, or None when the file is missing or holds no key (it is replaced)."""
    try:
        return read_key_file("path", path)
    except ValidationError:
        return None


def main():
    module = WgspModule(
        argument_spec=dict(
            dir=dict(type="path", required=True),
            peers=dict(type="list", elements="dict", default=[], options=dict(
                name=dict(type="str", required=True),
                key=dict(type="str", no_log=True),
                regenerate=dict(type="bool", default=False),
            )),
            exclusive=dict(type="bool", default=True),
            generate=dict(type="bool", default=True),
            return_keys=dict(type="bool", default=False),
        ),
        supports_check_mode=True,
    )
    params = module.params
    try:
        directory = check_abs_path("dir", params["dir"])
        peers = check_peers(params["peers"], params["generate"])
        entries, removed = plan(directory, peers, params["exclusive"], params["generate"])
        if not module.check_mode:
            for entry in entries:
                if entry["write"]:
                    write_key_file(entry["path"], entry["write"])
                    entry["key"] = entry["write"]
            for name in removed:
                os.unlink(os.path.join(directory, name + SUFFIX))
    except WgspError as exc:
        fail_from_error(module, exc, changed=False)
    except (IOError, OSError) as exc:
        module.fail_json(msg="wg_preshared_keys: %s: %s" % (getattr(exc, "filename", None) or directory,
                                                            exc.strerror or exc), changed=False)
    changed = any(e["state"] in ("created", "replaced") for e in entries) or bool(removed)
    result = {"changed": changed, "removed": removed,
              "peers": [{"name": e["name"], "path": e["path"], "state": e["state"]} for e in entries]}
    if module._diff:
        result["diff"] = [{"before_header": e["path"], "after_header": e["path"],
                           "before": "<preshared key>\n" if e["state"] == "replaced" else "",
                           "after": "<new preshared key>\n"} for e in entries if e["state"] in ("created", "replaced")]
        result["diff"] += [{"before_header": os.path.join(directory, n + SUFFIX), "after_header": "(removed)",
                            "before": "<preshared key>\n", "after": ""} for n in removed]
    if params["return_keys"]:
        # in check mode a key to be created or replaced does not exist yet: null
        result["preshared_keys"] = dict((e["name"], e["key"] if (e["state"] == "unchanged" or not module.check_mode)
                                         else None) for e in entries)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
