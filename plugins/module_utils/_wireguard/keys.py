# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""WireGuard keys without a subprocess: validation, generation, public-key derivation, key files.

Internal to the collection. Keys are handled as base64 text (the form ``wg`` uses). Nothing here
puts a key in an error message, and nothing runs a command: a private key never reaches a
process's argv or stdin, and check mode can derive a public key without touching the host.

The public key is derived with X25519 (RFC 7748, section 5) written out in pure Python. The
scalar multiplication uses Python integers and is not constant time; it runs once per module
run on the host that owns the key, which is the same exposure ``wg pubkey`` has to local timing.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import base64
import binascii
import os
import re

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import ValidationError, WgspError
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.files import atomic_write, check_abs_path

KEY_LEN = 32
ZERO_KEY = base64.b64encode(b"\0" * KEY_LEN).decode("ascii")

_P = 2 ** 255 - 19
_A24 = 121665


def _clamp(scalar):
    data = bytearray(scalar)
    data[0] &= 248
    data[31] &= 127
    data[31] |= 64
    return bytes(data)


def x25519(scalar, u_coordinate):
    """RFC 7748 X25519(k, u) on 32-byte strings; returns 32 bytes."""
    if len(scalar) != KEY_LEN or len(u_coordinate) != KEY_LEN:
        raise ValueError("x25519 needs 32-byte inputs")
    k = int.from_bytes(_clamp(scalar), "little")
    x1 = int.from_bytes(u_coordinate, "little") & ((1 << 255) - 1)
    x2, z2, x3, z3 = 1, 0, x1, 1
    swap = 0
    for t in range(254, -1, -1):
        k_t = (k >> t) & 1
        swap ^= k_t
        if swap:
            x2, x3 = x3, x2
            z2, z3 = z3, z2
        swap = k_t
        a = (x2 + z2) % _P
        aa = (a * a) % _P
        b = (x2 - z2) % _P
        bb = (b * b) % _P
        e = (aa - bb) % _P
        c = (x3 + z3) % _P
        d = (x3 - z3) % _P
        da = (d * a) % _P
        cb = (c * b) % _P
        x3 = ((da + cb) * (da + cb)) % _P
        z3 = (x1 * (da - cb) * (da - cb)) % _P
        x2 = (aa * bb) % _P
        z2 = (e * (aa + _A24 * e)) % _P
    if swap:
        x2, x3 = x3, x2
        z2, z3 = z3, z2
    result = (x2 * pow(z2, _P - 2, _P)) % _P
    return result.to_bytes(KEY_LEN, "little")


_BASE_POINT = (9).to_bytes(KEY_LEN, "little")


def key_bytes(key_b64):
    """The 32 raw bytes of a base64 key that ``check_key`` accepted."""
    return base64.b64decode(key_b64)


def public_key(private_b64):
    """The base64 public key of a base64 private key (what ``wg pubkey`` prints)."""
    return base64.b64encode(x25519(key_bytes(private_b64), _BASE_POINT)).decode("ascii")


def generate_private_key():
    """A new base64 private key, clamped like ``wg genkey``."""
    return base64.b64encode(_clamp(os.urandom(KEY_LEN))).decode("ascii")


def check_key(field, value, secret=True):
    """Validate a base64 WireGuard key (32 bytes); returns its canonical base64 text.

    The message names the field and the problem, never the value (``secret`` is kept for the
    reader: public keys are not echoed either, a half-pasted private key may be in that field).
    """
    if value is None:
        raise ValidationError(field, "is required")
    text = str(value)
    for ch in text:
        if ch in "\r\n" or ord(ch) < 32 or ord(ch) == 127:
            raise ValidationError(field, "must not contain a newline or control character")
    text = text.strip()
    if not text:
        raise ValidationError(field, "must not be empty")
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise ValidationError(field, "is not a WireGuard key: not valid base64 (expected 44 characters of base64 encoding 32 bytes)")
    if len(raw) != KEY_LEN:
        raise ValidationError(field, "is not a WireGuard key: decodes to %d bytes, expected 32 bytes of base64" % len(raw))
    return base64.b64encode(raw).decode("ascii")


# A peer's name where it names a preshared key file (``<dir>/<name>.psk``): the roles use inventory names.
PEER_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$")


def check_peer_name(field, value):
    """A peer name usable as a file name: 1-64 characters from ``A-Z a-z 0-9 _ . -``, not starting with ``.`` or ``-``."""
    if not isinstance(value, str) or not PEER_NAME_RE.match(value):
        raise ValidationError(field, "must be 1-64 characters from A-Z a-z 0-9 _ . -, not starting with . or - "
                              "(it names the preshared key file <dir>/<name>.psk; got %r)" % (value,))
    return value


def hex_key(key_b64):
    """The hex form the UAPI protocol uses. Treat the result as a secret when the key is one."""
    return binascii.hexlify(key_bytes(key_b64)).decode("ascii")


def b64_from_hex(hex_text):
    raw = binascii.unhexlify(hex_text)
    if len(raw) != KEY_LEN:
        raise ValueError("key is not 32 bytes")
    return base64.b64encode(raw).decode("ascii")


def read_key_file(field, path):
    """Read a base64 key from ``path``; ``None`` when the file does not exist."""
    try:
        with open(path, "rb") as handle:
            data = handle.read(4096)
    except (IOError, OSError) as exc:
        if getattr(exc, "errno", None) == 2:
            return None
        raise WgspError("%s: cannot read key file %s: %s" % (field, path, exc.strerror or exc), field=field)
    try:
        text = data.decode("ascii").strip()
    except UnicodeDecodeError:
        raise ValidationError(field, "file %s does not hold a WireGuard key (32 bytes of base64)" % path)
    try:
        return check_key(field, text)
    except ValidationError:
        raise ValidationError(field, "file %s does not hold a WireGuard key (32 bytes of base64)" % path)


def write_secret_file(path, content):
    """Write ``content`` to ``path`` as 0600 with an atomic rename in the same directory; missing
    directories are created 0700 (every one of them, whatever the umask)."""
    atomic_write(path, content, 0o600, dir_mode=0o700)


def write_key_file(path, key_b64):
    write_secret_file(path, key_b64 + "\n")


def ensure_key(path, regenerate=False, check_mode=False, generate=True, field="path"):
    """Make sure of the private key file ``path`` (an absolute path; errors name ``field``): return
    ``(generated, public_key)``; the private key stays in this function's scope. A missing key is
    generated here, on the host that owns it (not in check mode: ``(True, None)``).

    ``generate=False`` only reads: a missing key is ``(False, None)`` and nothing is written."""
    path = check_abs_path(field, path)
    if regenerate and not generate:
        raise ValidationError("regenerate", "cannot be combined with generate=false (a read never writes a key)")
    current = read_key_file(field, path)
    if current is not None and not regenerate:
        return False, public_key(current)
    if not generate:
        return False, None
    if check_mode:
        return True, None
    private = generate_private_key()
    write_key_file(path, private)
    return True, public_key(private)
