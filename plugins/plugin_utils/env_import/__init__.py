# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Convert an original wg-service-proxy ``.env`` / ``.env.share`` / ``.env.proxy`` file into the
collection's inventory variables.

Controller-side code (``plugin_utils``); it needs only the standard library and the collection's own
``module_utils/_common`` (the compact entries are read by ``_common/forms.py`` and judged by the
validators the roles and modules use). The CLI ``bin/wgsp-import-env`` imports it from its own copy of
the collection (no Ansible needed), and the filter ``wgsp.service_proxy.wgsp_env_import`` (playbook
``import_env.yml``) imports it; both produce the same files. ``parse``: the file as the original's
godotenv reads it; ``mapping``: each option with the original's meaning (its main.go); ``render``: the
files written.

``convert(text, host)`` returns ``{"group", "mode", "host_vars" (YAML text), "secrets" (YAML text or
None), "inventory" (YAML text of a minimal hosts.yml), "mapped" (dict), "unmapped" [(key, why)],
"secret_keys" [names]}``. Key material (``WG_PRIVATE_KEY``, ``WG_PRESHARED_KEY``) goes only into
``secrets``; no other output ever contains a key's value.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

from .parse import EnvImportError, original_bool, parse_env  # noqa: F401
from .render import convert  # noqa: F401
