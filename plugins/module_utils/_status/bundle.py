# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Build the metrics writer as one runnable zip (``python3 wgsp-metrics.pyz ...``) from the code
the running module was itself loaded from.

``wg_metrics`` runs on the host from Ansible's module payload, which holds exactly the collection's
and ansible-core's module_utils it imports. The writer needs a subset of them; this module follows
the writer's imports (read from the sources, the way Ansible finds a module's dependencies) and
writes each source into a zip whose bytes depend only on those sources: the same collection and
ansible-core give the same file, so reinstalling it changes nothing, and an upgrade of either
replaces it. The host needs no Ansible and nothing is downloaded.

Internal to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import ast
import importlib.util
import io
import zipfile

ENTRY = "ansible_collections.wgsp.service_proxy.plugins.module_utils._status.writer"
ROOTS = ("ansible_collections.wgsp.service_proxy.", "ansible.module_utils.")
MAIN = ("# wgsp.service_proxy metrics writer (built by wg_metrics; do not edit)\n"
        "import sys\n"
        "from %s import main\n"
        "sys.exit(main())\n" % ENTRY)
_EPOCH = (1980, 1, 1, 0, 0, 0)  # the zip format's earliest date: no build time in the bytes


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


def build(entry=ENTRY):
    """The zip's bytes: every module of the closure, an empty ``__init__.py`` for each package on
    their paths that is not itself in it, and ``__main__.py``; sorted, with fixed dates and modes."""
    files = {"__main__.py": MAIN.encode("utf-8")}
    for name, (source, is_package) in closure(entry).items():
        files[_path(name, is_package)] = source
    for path in list(files):
        parts = path.split("/")[:-1]
        for depth in range(1, len(parts) + 1):
            files.setdefault("/".join(parts[:depth] + ["__init__.py"]), b"")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(files):
            info = zipfile.ZipInfo(path, date_time=_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, files[path])
    return out.getvalue()
