# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared plumbing for the wgsp.service_proxy modules.

Internal to the collection (leading underscore): no stability promise outside it.

What lives here:
- ``WgspError``: the one domain exception; modules turn it into a single ``fail_json``.
- validators for values that end up in line-based protocols (UAPI, iptables-restore, nft -f):
  each raises ``ValidationError`` naming the field and the problem, and never echoes a secret.
- ``CommandRunner``: runs a command with ``LC_ALL=C`` and turns a failure into a ``CommandError``
  carrying cmd/rc/stdout/stderr (never stdin, which may hold secrets or a restore file).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ipaddress
import math
import os
import re
import shlex
import socket
import subprocess
import tempfile


class WgspError(Exception):
    """A failure the module reports to the user with ``fail_json(msg=..., **details)``."""

    def __init__(self, msg, **details):
        super(WgspError, self).__init__(msg)
        self.msg = msg
        self.details = details


class ValidationError(WgspError):
    """Bad input, detected before anything was changed."""

    def __init__(self, field, problem, **details):
        msg = "%s: %s" % (field, problem)
        super(ValidationError, self).__init__(msg, field=field, **details)
        self.field = field


class CommandError(WgspError):
    """A command failed; carries what the user needs to debug it (but not stdin)."""

    def __init__(self, msg, cmd, rc, stdout, stderr):
        super(CommandError, self).__init__(msg, cmd=cmd, rc=rc, stdout=stdout, stderr=stderr)


# Linux IFNAMSIZ is 16 including the NUL. The kernel refuses "", ".", "..", "/", ":" and whitespace;
# this collection also refuses a leading "-" (it would read as an option of ip, wg or wireguard-go)
# and "+" (a wildcard to iptables, a literal name to nftables), and keeps to a character set that is
# inert in every place a name goes: argv, iptables-restore, nft -f, wg-quick files and shell lines.
IFNAME_RE = re.compile(r"^[a-zA-Z0-9_=.-]{1,15}$")
# Characters that must never reach a line-based protocol or a restore file.
_UNSAFE_RE = re.compile(r"[\s;'\"`$\\|&<>(){}#*?!]")


def describe(value):
    """A short, printable rendering of a user value for error messages (never use for secrets)."""
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return text


def check_no_control(field, value):
    """Reject newlines and other control characters (line-based protocols would be injected)."""
    if value is None:
        return value
    text = str(value)
    for ch in text:
        if ch in "\r\n" or ord(ch) < 32 or ord(ch) == 127:
            raise ValidationError(field, "must not contain a newline or control character (got %s)" % describe(value))
    return text


def check_token(field, value, max_len=64):
    """A single safe word: no whitespace, shell or restore-file metacharacters."""
    text = check_no_control(field, value)
    if text is None or text == "":
        raise ValidationError(field, "must not be empty")
    if _UNSAFE_RE.search(text):
        raise ValidationError(field, "must not contain spaces, quotes or shell metacharacters (got %s)" % describe(value))
    if len(text) > max_len:
        raise ValidationError(field, "must be at most %d characters (got %d)" % (max_len, len(text)))
    return text


def check_ifname(field, value):
    """A Linux interface name, the same rule for every module, role variable and filter.

    1-15 characters from ``a-z A-Z 0-9 _ = . -``; not ``.`` or ``..``; not starting with ``-``.
    ``+`` is refused: iptables reads ``eth+`` as a wildcard while nftables reads it as a literal
    name, so one value would mean two different things depending on the backend.
    """
    text = check_no_control(field, value)
    if text is None or text == "" or isinstance(value, bool):
        raise ValidationError(field, "must be an interface name (got %s)" % describe(value))
    if "+" in text:
        raise ValidationError(
            field, "must name one interface: '+' is an iptables wildcard (not the same on nftables) and is "
                   "not accepted (got %s)" % describe(value))
    if text in (".", "..") or text.startswith("-") or not IFNAME_RE.match(text):
        raise ValidationError(
            field,
            "invalid interface name %s: 1-15 characters from a-z A-Z 0-9 _ = . -, not '.' or '..', "
            "not starting with '-'" % describe(value),
        )
    return text


def check_int(field, value, low, high):
    if isinstance(value, bool):
        raise ValidationError(field, "must be an integer between %d and %d (got %s)" % (low, high, describe(value)))
    try:
        number = int(str(value).strip()) if not isinstance(value, int) else value
    except (TypeError, ValueError):
        raise ValidationError(field, "must be an integer between %d and %d (got %s)" % (low, high, describe(value)))
    if isinstance(value, str) and not re.match(r"^\s*[0-9]+\s*$", value):
        raise ValidationError(field, "must be an integer between %d and %d (got %s)" % (low, high, describe(value)))
    if number < low or number > high:
        raise ValidationError(field, "must be between %d and %d (got %s)" % (low, high, describe(value)))
    return number


def check_port(field, value):
    return check_int(field, value, 1, 65535)


def check_port_range(field, value):
    """``N`` or ``"N-M"`` with 1 <= N <= M <= 65535; returns ``(N, M)``."""
    check_no_control(field, value)
    if isinstance(value, int) and not isinstance(value, bool):
        port = check_port(field, value)
        return (port, port)
    text = str(value).strip()
    match = re.match(r"^([0-9]+)(?:[-:]([0-9]+))?$", text)
    if not match:
        raise ValidationError(field, "must be a port (1-65535) or a range 'N-M' (got %s)" % describe(value))
    low = check_port(field, match.group(1))
    high = check_port(field, match.group(2)) if match.group(2) else low
    if high < low:
        raise ValidationError(field, "range %s is reversed: the first port must not exceed the second" % describe(value))
    return (low, high)


def check_float(field, value, low, high):
    """A number (int or float, or its text) with ``low <= value <= high``."""
    if isinstance(value, bool):
        raise ValidationError(field, "must be a number between %s and %s (got %s)" % (low, high, describe(value)))
    try:
        number = float(str(value).strip()) if not isinstance(value, (int, float)) else float(value)
    except (TypeError, ValueError):
        raise ValidationError(field, "must be a number between %s and %s (got %s)" % (low, high, describe(value)))
    if math.isnan(number) or not low <= number <= high:
        raise ValidationError(field, "must be between %s and %s (got %s)" % (low, high, describe(value)))
    return number


def _address_text(field, value):
    text = check_no_control(field, value)
    if text is None or isinstance(value, bool):
        raise ValidationError(field, "is required (an IPv4 or IPv6 address)")
    text = str(text).strip()
    if "%" in text:
        # ipaddress keeps anything after "%" as an IPv6 scope id, verbatim: it would reach
        # shell lines, restore files and the UAPI unchanged.
        raise ValidationError(field, "must not carry an IPv6 scope id ('%%zone'); link-local zones are not "
                                     "supported (got %s)" % describe(value))
    return text


def check_address(field, value):
    """A single IPv4/IPv6 address (no prefix, no scope id); returns ``ipaddress`` object."""
    text = _address_text(field, value)
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValidationError(field, "is not a valid IPv4 or IPv6 address (got %s)" % describe(value))


def check_cidr(field, value, strict=False):
    """An address with an optional prefix, e.g. ``10.7.0.2/32``; returns ``ipaddress`` interface.

    With ``strict`` host bits must be zero (a network, as in allowed IPs and routes) and a
    network object is returned. IPv6 scope ids (``fe80::1%eth0``) are refused.
    """
    text = _address_text(field, value)
    try:
        if strict:
            return ipaddress.ip_network(text, strict=True)
        return ipaddress.ip_interface(text)
    except ValueError as exc:
        raise ValidationError(field, "is not a valid CIDR (got %s: %s)" % (describe(value), exc))


# IPv4-mapped IPv6 addresses (``::ffff:a.b.c.d``): a socket-API notation, never the address of an
# IPv6 packet on the wire, and printed by iptables and nft in their own way.
_MAPPED = ipaddress.ip_network("::ffff:0:0/96")
# The networks that match every address of their family.
ANY_NETWORKS = ("0.0.0.0/0", "::/0")


def address_text(ip):
    """An address as iptables-save and nft print it: the C library's ``inet_ntop``.

    Python and ``inet_ntop`` differ on IPv6 addresses with an embedded IPv4 part (Python
    ``::1:2``, ``inet_ntop`` ``::0.1.0.2``); a rule rendered with Python's text would never read
    back the same.
    """
    if ip.version == 6:
        return socket.inet_ntop(socket.AF_INET6, ip.packed)
    return str(ip)


def _refuse_mapped(field, net, value):
    if net.version == 6 and net.subnet_of(_MAPPED):
        raise ValidationError(field, "%s is an IPv4-mapped IPv6 address: no IPv6 packet carries one; write the "
                                     "IPv4 form (e.g. %s) instead" % (describe(value), net.network_address.ipv4_mapped))


def check_match_networks(field, values):
    """The source/destination networks a firewall rule matches, in the one form both backends read back.

    ``values``: a list (or one string) of addresses/CIDRs. Returns a list of texts
    ``<address_text>/<prefix>`` in input order, without duplicates:

    - host bits are cleared (``10.0.0.5/24`` -> ``10.0.0.0/24``);
    - IPv4-mapped IPv6 networks (``::ffff:1.2.3.4``) are refused, naming the IPv4 form;
    - a ``/0`` (``0.0.0.0/0``, ``::/0``) means every address of its family: it replaces every other
      entry of that family, and the renderers leave the address match out (iptables-save omits it,
      so a rendered ``-s 0.0.0.0/0`` would never read back); the family restriction stays.
    """
    if values is None:
        return []
    if isinstance(values, str):
        values = [values]
    if not isinstance(values, (list, tuple)):
        raise ValidationError(field, "must be a list of CIDRs (got %s)" % describe(values))
    nets = []
    for i, value in enumerate(values):
        item = "%s[%d]" % (field, i)
        net = check_cidr(item, value).network
        _refuse_mapped(item, net, value)
        nets.append(net)
    wide = set(net.version for net in nets if net.prefixlen == 0)
    out = []
    for net in nets:
        if net.version in wide and net.prefixlen != 0:
            continue
        text = "%s/%d" % (address_text(net.network_address), net.prefixlen)
        if text not in out:
            out.append(text)
    return out


def _special(ip):
    """Why ``ip`` cannot be a unicast host address (``None`` when it can)."""
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return _special(ip.ipv4_mapped)
    if ip.is_unspecified:
        return "the unspecified address"
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.version == 4 and ip == ipaddress.IPv4Address("255.255.255.255"):
        return "the broadcast address"
    return None


def check_interface_address(field, value):
    """An interface address (``10.7.0.1/24``): a unicast host address with a prefix.

    Unspecified, loopback, multicast and broadcast addresses are refused before anything changes
    (the kernel refuses several of them only after the interface exists).
    """
    iface = check_cidr(field, value)
    why = _special(iface.ip)
    if why:
        raise ValidationError(field, "%s is %s, not an interface address" % (iface.ip, why))
    return iface


def check_dnat_target(field, value, networks=()):
    """A DNAT target address: unicast, not loopback, not a broadcast address.

    ``networks``: the host's connected networks (``ipaddress`` networks) when known; the broadcast
    address of any of them is refused too. Returns the ``ipaddress`` object.
    """
    ip = check_address(field, value)
    _refuse_mapped(field, ipaddress.ip_network(ip), value)
    why = _special(ip)
    if why is None and ip.version == 4:
        for net in networks or ():
            if net.version == 4 and net.prefixlen < 31 and ip == net.broadcast_address:
                why = "the broadcast address of %s" % net
                break
    if why:
        raise ValidationError(field, "%s is %s; a DNAT target must be a unicast address of another host "
                                     "or of this host's own interfaces" % (ip, why))
    return ip


# RFC 1123 host names (an endpoint's host when it is not an address).
_HOSTNAME_RE = re.compile(r"^(?=.{1,253}\.?$)[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                          r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")


def check_endpoint(field, value):
    """``host:port`` or ``[v6]:port``; returns ``(host, port)`` with host unbracketed."""
    text = check_no_control(field, value)
    text = str(text).strip() if text is not None else ""
    match = re.match(r"^\[([^\]]+)\]:([0-9]+)$", text)
    if match:
        host, port = match.group(1), match.group(2)
        if check_address(field, host).version != 6:
            raise ValidationError(field, "brackets are for IPv6 addresses only (got %s)" % describe(value))
    else:
        match = re.match(r"^([^:\[\]]+):([0-9]+)$", text)
        if not match or not _HOSTNAME_RE.match(match.group(1)):
            raise ValidationError(
                field,
                "must be host:port or [ipv6]:port with a port (got %s)" % describe(value),
            )
        host, port = match.group(1), match.group(2)
    return host, check_port(field, port)


# Docker's own rule for container and network names.
DOCKER_NAME_RE = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$")


def check_docker_name(field, value, what="container"):
    """A Docker container (or network) name: 1-128 characters from ``a-z A-Z 0-9 _ . -``, first alphanumeric."""
    text = check_no_control(field, value)
    if not isinstance(value, str) or not DOCKER_NAME_RE.match(text):
        raise ValidationError(field, "is not a valid %s name: 1-128 characters from a-z A-Z 0-9 _ . -, "
                                     "starting with a letter or digit (got %s)" % (what, describe(value)))
    return text


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


def check_shell_line(field, value):
    """A command line wg-quick runs as a hook (``PostUp``/``PreDown``).

    It is a shell line by nature and is written verbatim; it must not be empty nor contain a
    newline, a control character or ``#`` (wg-quick cuts a line at ``#``, so what ran would not be
    what was written).
    """
    text = check_no_control(field, value)
    if text is None or not str(text).strip():
        raise ValidationError(field, "must not be empty")
    if "#" in text:
        raise ValidationError(field, "must not contain '#': wg-quick treats the rest of the line as a comment")
    return str(text)


# ---------------------------------------------------------------------------------------------
# files and directories the modules write (host side)


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
    """Write ``content`` to ``path`` with ``mode`` through a temporary file in the same directory
    (created with ``dir_mode`` when missing) and one rename: readers see the old or the new file."""
    directory = os.path.dirname(path)
    make_dirs(directory, dir_mode)
    # a short fixed prefix: the temporary name fits wherever a NAME_MAX-long target name does
    fd, tmp = tempfile.mkstemp(prefix=".wgsp-", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "w") as handle:
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


def shell_quote(value):
    """One shell word, quoted for ``sh`` (``shlex.quote``)."""
    return shlex.quote(str(value))


class CommandRunner:
    """Run commands with ``LC_ALL=C``; a thin seam that unit tests replace."""

    def __init__(self, module=None):
        self.module = module

    def run(self, argv, data=None, check=True, env=None):
        """Run ``argv`` (a list, never a shell string); ``data`` goes to stdin only.

        Returns ``(rc, stdout, stderr)``. With ``check`` a non-zero rc raises ``CommandError``.
        """
        full_env = dict(os.environ)
        full_env.update({"LC_ALL": "C", "LANG": "C"})
        if env:
            full_env.update(env)
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if data is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=full_env,
                close_fds=True,
            )
        except OSError as exc:
            raise CommandError("cannot run %s: %s" % (argv[0], exc), cmd=argv, rc=None, stdout="", stderr=str(exc))
        payload = data.encode("utf-8") if isinstance(data, str) else data
        out, err = proc.communicate(payload)
        out = out.decode("utf-8", "replace")
        err = err.decode("utf-8", "replace")
        if check and proc.returncode != 0:
            raise CommandError(
                "%s failed with rc=%d: %s" % (argv[0], proc.returncode, err.strip() or out.strip()),
                cmd=argv,
                rc=proc.returncode,
                stdout=out,
                stderr=err,
            )
        return proc.returncode, out, err


def fail_from_error(module, exc, **extra):
    """Turn a ``WgspError`` into the module's one ``fail_json``."""
    details = dict(exc.details)
    details.update(extra)
    module.fail_json(msg=exc.msg, **details)
