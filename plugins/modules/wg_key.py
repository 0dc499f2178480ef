#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: wg_key
short_description: A WireGuard private key generated on the host that owns it; returns only the public key
version_added: 0.1.0
description:
  - Makes sure a WireGuard private key file exists on the managed host, generating it there when it is
    missing (0600 file in a 0700 directory, written with an atomic rename), and returns its public key.
  - The private key never leaves the host. Roles use the returned public key to configure the peers on
    other hosts, so keys travel through Ansible as public keys only.
  - This replaces the original project's C(generate-keys), C(current-keys) and C(debug-keys) commands,
    which printed private keys.
author:
  - wgsp.service_proxy contributors (@wgsp)
attributes:
  check_mode:
    support: full
    description: A missing key is reported as a change (none with O(generate=false)) and not generated; RV(public_key) is then null.
  diff_mode:
    support: none
    description: The key is a secret; there is nothing to show.
  platform:
    support: full
    platforms: linux
    description: Linux hosts (the key is used by WireGuard there).
options:
  path:
    description:
      - The private key file, an absolute path. Its directory is created 0700 when missing.
      - A relative path, an empty string, a path ending in C(/) and a NUL or control character are refused
        before anything is read or written.
    type: path
    required: true
  regenerate:
    description:
      - Replace an existing key with a new one (key rotation). Every peer of this host must then be
        given the new public key.
      - Cannot be combined with O(generate=false).
    type: bool
    default: false
  generate:
    description:
      - Generate the key when it is missing. V(false) only reads it - a missing key changes nothing and
        returns RV(public_key) null (RV(generated) false), so a play that reads another host's key
        (C(delegate_to)) can never create one on that host.
    type: bool
    default: true
notes:
  - An existing file that does not hold a WireGuard key fails the module; it is never overwritten
    unless O(regenerate=true).
seealso:
  - module: wgsp.service_proxy.wg_interface
"""

EXAMPLES = r"""
- name: Make sure the host has its key, and learn the public key
  wgsp.service_proxy.wg_key:
    path: /etc/wireguard/wg0.key
  register: wg0_key

- name: Read the hub's public key without ever creating one there
  wgsp.service_proxy.wg_key:
    path: /etc/wireguard/wg0.key
    generate: false
  delegate_to: hub
  register: hub_key

- name: Show the public key (the private key is never returned)
  ansible.builtin.debug:
    msg: "{{ wg0_key.public_key }}"
"""

RETURN = r"""
public_key:
  description:
    - The public key (base64) of the key file; null in check mode when the key does not exist yet, and
      null when it does not exist and O(generate=false).
  returned: always
  type: str
  sample: xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=
path:
  description: The key file.
  returned: always
  type: str
  sample: /etc/wireguard/wg0.key
generated:
  description: Whether a new key was generated (or would be, in check mode).
  returned: always
  type: bool
  sample: false
"""


from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.module import WgspModule
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import WgspError, fail_from_error
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard.keys import ensure_key


def main():
    module = WgspModule(
        argument_spec=dict(
            path=dict(type="path", required=True),
            regenerate=dict(type="bool", default=False),
            generate=dict(type="bool", default=True),
        ),
        supports_check_mode=True,
    )
    path = module.params["path"]
    try:
        generated, public = ensure_key(path, module.params["regenerate"], module.check_mode,
                                       generate=module.params["generate"])
    except WgspError as exc:
        fail_from_error(module, exc)
    module.exit_json(changed=generated, generated=generated, public_key=public, path=path)


if __name__ == "__main__":
    main()
