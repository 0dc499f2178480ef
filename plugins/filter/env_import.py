# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter ``wgsp_env_import``: an original ``.env`` file's text -> the collection's inventory files.

The conversion lives in ``plugin_utils/env_import/`` (standard library only), shared with the
CLI ``bin/wgsp-import-env``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
name: wgsp_env_import
short_description: Convert an original wg-service-proxy .env file into host_vars
version_added: 0.1.0
author:
  - wgsp.service_proxy contributors (@wgsp)
description:
  - Reads the text of a C(.env), C(.env.share) or C(.env.proxy) file of the original project and
    returns the C(host_vars) YAML (every option the roles support, the others as comments saying
    why), a separate secrets YAML with the key material (or null), and a minimal inventory.
  - Used by the playbook C(wgsp.service_proxy.import_env); the CLI C(bin/wgsp-import-env) does the same.
options:
  _input:
    description: The file's text.
    type: str
    required: true
  host:
    description: The inventory host name the file belongs to.
    type: str
    required: true
  source:
    description: The file's name, for the header comment.
    type: str
    default: the .env file
  mode:
    description: Override C(CLIENT_MODE) (V(share) or V(proxy)).
    type: str
  secrets_path:
    description: Path of the secrets file named in the comments.
    type: str
"""

EXAMPLES = r"""
- name: Convert
  ansible.builtin.set_fact:
    converted: "{{ lookup('ansible.builtin.file', '.env.proxy') | wgsp.service_proxy.wgsp_env_import('proxy1') }}"
  no_log: true
"""

RETURN = r"""
_value:
  description:
    - C(group), C(mode), C(host_vars), C(secrets), C(inventory), C(mapped), C(unmapped), C(notes), C(secret_keys).
    - Only C(error) (a message without any key) when the file cannot be converted.
  type: dict
"""

from ansible_collections.wgsp.service_proxy.plugins.plugin_utils.env_import import (  # noqa: E402
    EnvImportError,
    convert,
)


def env_import(text, host, source="the .env file", mode=None, secrets_path=None):
    try:
        return convert(text, host, source=source, mode=mode or None, secrets_path=secrets_path or None)
    except EnvImportError as exc:
        # Returned, not raised: the caller logs nothing of this task (the input holds keys) and
        # shows the message (which never holds a key) in a task of its own.
        return {"error": "wgsp_env_import: %s" % exc}


class FilterModule(object):
    def filters(self):
        return {"wgsp_env_import": env_import}
