# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Whether systemd runs the host: the check ``sd_booted()`` makes, for the modules that enable units
(``wg_host``) or install timers (``wg_metrics``). In a container, a chroot or a host with another
init, unit files may be present while nothing runs them.

Internal to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

RUNNING = "/run/systemd/system"


def runs():
    """Whether systemd is the running init (``RUNNING`` is a directory)."""
    return os.path.isdir(RUNNING)
