# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build the metrics writer as one runnable zip (``python3 wgsp-metrics.pyz ...``) from the code
the running module was itself loaded from.

``wg_metrics`` runs on the host from Ansible's module payload, which holds exactly the collection's
and ansible-core's module_utils it imports. The writer needs a subset of them; this module follows
the writer's imports (read from the sources, the way Ansible finds a module's dependencies) and
writes each source into a zip. The zip also holds each module compiled for the interpreter that
builds it (the one the writer runs with), as checked hash-based ``.pyc`` (PEP 552), so a run of the
writer does not compile its ~90 sources again: half its CPU time. Its comment is a digest of the
sources and the interpreter's bytecode version (``digest``): ``wg_metrics`` compares that with the
installed writer's and builds the zip only when they differ (the same collection, ansible-core and
Python change nothing; an upgrade of any replaces it). The host needs no Ansible and nothing is
downloaded.

Internal to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import hashlib
import importlib.util
import io
import marshal
import zipfile

ENTRY = "ansible_collections.wgsp.service_proxy.plugins.module_utils._status.writer"
ROOTS = ("ansible_collections.wgsp.service_proxy.", "ansible.module_utils.")
MAIN = ("# wgsp.service_proxy metrics writer (built by wg_metrics; do not edit)\n"
        "import sys\n"
        "from %s import main\n"
        "sys.exit(main())\n" % ENTRY)
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the zip format's earliest date: no build time in the bytes
COMMENT = b"wgsp-metrics sha256="


def _ours(name):
    return any(name.startswith(root) for root in ROOTS)


def _source(name):
    """``(source bytes, is_package)`` of an importable module, or None (an optional import that is
    absent here, or a module made at run time such as six.moves)."""
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, AttributeError, ValueError):
        return None
    if spec is None or spec.loader is None or not spec.has_location:
        return None
    try:
        text = spec.loader.get_source(name)
    except (ImportError, OSError, AttributeError):
        return None
    if text is None:
        return None
    return text.encode("utf-8"), spec.submodule_search_locations is not None


def _imports(name, source, is_package):
    """Absolute names each import statement of ``source`` may load (a ``from X import y`` may load X.y)."""
    package = name if is_package else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[:len(parts) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            found.append(base)
            found.extend("%s.%s" % (base, alias.name) for alias in node.names if alias.name != "*")
    return found


def closure(entry=ENTRY):
    """``{module name: (source, is_package)}`` of ``entry`` and everything of ours it imports."""
    modules = {}
    pending = [entry]
    while pending:
        name = pending.pop()
        if name in modules or not _ours(name):
            continue
        found = _source(name)
        if found is None:
            if name == entry:
                raise ImportError("cannot read the source of %s" % name)
            continue
        modules[name] = found
        pending.extend(_imports(name, found[0], found[1]))
    return modules


def _path(name, is_package):
    parts = name.split(".")
    return "/".join(parts + ["__init__.py"]) if is_package else "/".join(parts) + ".py"


def sources(entry=ENTRY):
    """``{path in the zip: source bytes}``: every module of the closure, an empty ``__init__.py`` for
    each package on their paths that is not itself in it, and ``__main__.py``."""
    files = {"__main__.py": MAIN.encode("utf-8")}
    for name, (source, is_package) in closure(entry).items():
        files[_path(name, is_package)] = source
    for path in list(files):
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            files.setdefault("/".join(parts[:depth] + ["__init__.py"]), b"")
    return files


def digest(files):
    """What the writer is made of: its sources and the bytecode version of this interpreter."""
    hashed = hashlib.sha256(importlib.util.MAGIC_NUMBER)
    for path in sorted(files):
        hashed.update(b"%d:%s\0%d:" % (len(path), path.encode("utf-8"), len(files[path])))
        hashed.update(files[path])
    return hashed.hexdigest()


def installed_digest(path):
    """The digest in the comment of the writer at ``path``; None when it is missing, not a zip, or
    a zip of anything else."""
    try:
        with zipfile.ZipFile(path) as archive:
            comment = archive.comment
    except (IOError, OSError, zipfile.BadZipfile):
        return None
    if not comment.startswith(COMMENT):
        return None
    return comment[len(COMMENT):].decode("ascii", "replace")


def _pyc(path, source):
    """A checked hash-based ``.pyc`` of ``source`` (PEP 552): no time stamp in it, and zipimport
    checks it against the source beside it before it uses it."""
    code = compile(source, path, "exec", dont_inherit=True)
    return (importlib.util.MAGIC_NUMBER + (0b11).to_bytes(4, "little") + importlib.util.source_hash(source) +
            marshal.dumps(code))


def build(entry=ENTRY, files=None):
    """The zip's bytes: the ``sources`` (or ``files``), each ``.py`` with its ``.pyc``, sorted, with
    fixed dates and modes, and the ``digest`` as its comment."""
    files = sources(entry) if files is None else files
    members = dict(files)
    for path, source in files.items():
        if path.endswith(".py") and path != "__main__.py":  # __main__ is run, not imported
            members[path + "c"] = _pyc(path, source)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(members):
            info = zipfile.ZipInfo(path, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, members[path])
        archive.comment = COMMENT + digest(files).encode("ascii")
    return out.getvalue()
