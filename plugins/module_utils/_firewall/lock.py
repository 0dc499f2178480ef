# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""``set_lock``: the lock one run of ``wg_dnat``/``wg_filter`` holds on its rule set, so two runs of
the same set take turns.

Internal to the collection. Here rather than in ``_common``: a lock is named after a rule set
(``check_set_name``).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import contextlib
import errno
import os
import stat
import time

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import WgspError
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.files import make_dirs
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.rules import check_set_name


# One lock file per rule set: /run/wgsp/<kind>-<set>.lock (the directory root's own, 0700).
LOCK_DIR = "/run/wgsp"
LOCK_TIMEOUT = 300


def _lock_dir(directory):
    """Create ``directory`` 0700 (whatever the umask) or accept it only when it is a real directory
    of ours that no one else may write to (a planted symlink or open directory is refused)."""
    try:
        make_dirs(directory, 0o700)
    except OSError as exc:
        raise WgspError("cannot create the lock directory %s: %s" % (directory, exc.strerror))
    info = os.lstat(directory)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o022:
        raise WgspError("the lock directory %s is not a directory of uid %d writable only by it; remove it"
                        % (directory, os.geteuid()))


@contextlib.contextmanager
def set_lock(kind, set_name, directory=None, timeout=None):
    """Hold the lock of one rule set (``kind``: dnat or filter) while the block runs.

    Two runs of the same set take turns: the second reads what the first applied and finds nothing
    left to do. (``iptables -w`` only serialises single iptables-legacy commands, not a module's
    read-plan-apply; iptables-nft ignores it.) The lock file is kept; ``flock`` ends with the process.
    """
    import fcntl

    directory = directory or LOCK_DIR
    _lock_dir(directory)
    path = os.path.join(directory, "%s-%s.lock" % (kind, check_set_name(set_name)))
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise WgspError("cannot open the lock file %s: %s" % (path, exc.strerror))
    timeout = LOCK_TIMEOUT if timeout is None else timeout
    try:
        deadline = time.time() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as exc:
                if exc.errno not in (errno.EAGAIN, errno.EACCES) or time.time() >= deadline:
                    raise WgspError("set %s: another run holds its lock %s (waited %ds)" % (set_name, path, timeout))
            time.sleep(0.1)
        yield
    finally:
        os.close(fd)
