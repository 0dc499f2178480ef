# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Paths and the files the modules write on the host: path validators, directory creation with an
exact mode, and the one atomic write.

Internal to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os
import re
import tempfile

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.checks import check_no_control
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import ValidationError, describe


def check_abs_path(field, value):
    """An absolute file path (no control character or NUL, not ending in ``/``)."""
    if value is None or isinstance(value, bool):
        raise ValidationError(field, "is required (an absolute file path)")
    text = str(value)
    if "\0" in text:
        raise ValidationError(field, "must not contain a NUL byte")
    check_no_control(field, text)
    if not text.strip():
        raise ValidationError(field, "must not be empty (an absolute file path)")
    if not os.path.isabs(text):
        raise ValidationError(field, "must be an absolute path (got %s)" % describe(value))
    if text.endswith("/") or os.path.basename(text) in (".", ".."):
        raise ValidationError(field, "must name a file, not a directory (got %s)" % describe(value))
    return check_path_limits(field, text)


# Linux limits: one path component (NAME_MAX) and a whole path including its NUL (PATH_MAX).
NAME_MAX = 255
PATH_MAX = 4096


def check_path_limits(field, text):
    """``text`` within the kernel's name limits, so writing it cannot fail with ENAMETOOLONG."""
    size = len(text.encode("utf-8", "surrogateescape"))
    if size >= PATH_MAX:
        raise ValidationError(field, "must be shorter than %d bytes (PATH_MAX; got %d)" % (PATH_MAX, size))
    for part in text.split("/"):
        size = len(part.encode("utf-8", "surrogateescape"))
        if size > NAME_MAX:
            raise ValidationError(field, "each name in the path must be at most %d bytes (NAME_MAX); %s has %d"
                                         % (NAME_MAX, describe(part), size))
    return text


# A path that goes on a shell line (``PostUp = sh <path>``, ``cat <dir>/<file>``): besides being
# quoted, it keeps to characters that are inert in sh and in wg-quick's hook lines ("%" is
# wg-quick's own expansion, so it is refused).
SCRIPT_PATH_RE = re.compile(r"^/[A-Za-z0-9_.,+@=/-]*$")


def check_script_path(field, value, max_len=1024):
    """An absolute path from ``A-Z a-z 0-9 _ . , + @ = / -`` without ``..``, safe on a shell line."""
    text = check_abs_path(field, value)
    if len(text) > max_len:
        raise ValidationError(field, "must be at most %d characters (got %d)" % (max_len, len(text)))
    if not SCRIPT_PATH_RE.match(text) or "/../" in text + "/":
        raise ValidationError(
            field, "must be an absolute path from A-Z a-z 0-9 _ . , + @ = / - without '..' (got %s)"
            % describe(value))
    return text


def nearest_dir(path):
    """The closest existing ancestor of ``path`` (``path``'s own directory when it exists)."""
    current = os.path.dirname(os.path.abspath(path))
    while not os.path.lexists(current):
        current = os.path.dirname(current)
    return current


def check_writable_dir(field, path):
    """The directory of ``path`` exists and is writable, or can be created: its closest existing
    ancestor is a directory on a writable file system. Checked before anything is changed."""
    parent = nearest_dir(path)
    if not os.path.isdir(parent):
        raise ValidationError(field, "cannot create %s: %s is not a directory" % (os.path.dirname(path), parent))
    read_only = bool(os.statvfs(parent).f_flag & getattr(os, "ST_RDONLY", 1))
    if read_only or not os.access(parent, os.W_OK | os.X_OK):
        raise ValidationError(field, "cannot write %s: directory %s is not writable%s"
                                     % (path, parent, " (read-only file system)" if read_only else ""))
    return parent


def file_mode(path):
    """The permission bits of ``path`` (``None`` when it does not exist)."""
    try:
        return os.stat(path).st_mode & 0o7777
    except OSError:
        return None


def make_dirs(directory, mode):
    """Create ``directory`` and each missing parent with exactly ``mode``, whatever the umask
    (``os.makedirs`` applies its mode to the last one only, and through the umask). Existing
    directories are left as they are. Returns the directories created."""
    missing = []
    current = os.path.abspath(directory)
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    created = []
    for item in reversed(missing):
        try:
            os.mkdir(item, mode)
        except OSError:
            if not os.path.isdir(item):
                raise
            continue
        os.chmod(item, mode)
        created.append(item)
    return created


def atomic_write(path, content, mode, dir_mode=0o755):
    """Write ``content`` (text, or bytes) to ``path`` with ``mode`` through a temporary file in the same directory
    (created with ``dir_mode`` when missing) and one rename: readers see the old or the new file."""
    directory = os.path.dirname(path)
    make_dirs(directory, dir_mode)
    # a short fixed prefix: the temporary name fits wherever a NAME_MAX-long target name does
    fd, tmp = tempfile.mkstemp(prefix=".wgsp-", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb" if isinstance(content, bytes) else "w") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
