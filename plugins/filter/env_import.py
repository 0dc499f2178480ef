# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filter ``wgsp_env_import``: an original ``.env`` file's text -> the collection's inventory files.

The conversion lives in ``plugin_utils/env_import/`` (no Ansible needed), shared with the
CLI ``bin/wgsp-import-env``.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

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
