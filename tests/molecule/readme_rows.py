"""The README's `manage-vpn.sh` table as data, so that a test runs its commands as a user types them.

``table()`` maps each row's name (its first cell without backticks, e.g. ``status`` or
``mode-share / mode-proxy``) to the row: the backticked commands of its "here" column (those that
start with a program a user runs) and every backticked fragment of the row (options a row names, such
as ``-e status_probe=true``). ``problems()`` says which rows or commands an expectation table leaves
uncovered; tests/unit/test_readme_rows.py applies it to the lab fault test's table.
"""

import os
import re
import shlex

README = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "README.md")
SECTION = "## From `manage-vpn.sh` to the collection"
PROGRAMS = ("ansible", "ansible-playbook", "ansible-inventory", "ansible-doc", "bin/wgsp-import-env", "make")
# Words of the README's commands that a user replaces with their own (a test: with the lab's).
PLACEHOLDERS = ("HOST", "NAME", "DIR", "<role>", "inventories/mine", ".env")


def _cells(line):
    """The cells of one table line; a `|` inside backticks does not split."""
    cells, cell, quoted = [], "", False
    for char in line.strip().strip("|"):
        if char == "`":
            quoted = not quoted
        if char == "|" and not quoted:
            cells.append(cell.strip())
            cell = ""
        else:
            cell += char
    return cells + [cell.strip()]


def table(path=README):
    """``{row name: {"here": text, "commands": [command, ...], "fragments": [backticked, ...]}}``."""
    with open(path, "r") as handle:
        lines = handle.read().split("\n")
    start = lines.index(SECTION)
    rows, in_table = {}, False
    for line in lines[start + 1:]:
        if line.startswith("## "):
            break
        if not line.startswith("|"):
            if in_table:
                break
            continue
        in_table = True
        cells = _cells(line)
        if cells[0] in ("`manage-vpn.sh`", "---"):
            continue  # header, separator
        name = cells[0].replace("`", "")
        assert name not in rows, "README row %r twice" % name
        fragments = [frag for cell in cells for frag in re.findall(r"`([^`]+)`", cell)]
        commands = [frag for frag in re.findall(r"`([^`]+)`", cells[1]) if frag.split()[0] in PROGRAMS]
        rows[name] = {"here": cells[1], "commands": commands, "fragments": fragments}
    return rows


def substitute(text, subs):
    """``text`` with each key of ``subs`` replaced where it stands as a word of its own (``HOST`` in
    ``HOST:wg_server``, ``<role>`` in ``wgsp.service_proxy.<role>``; never inside a longer name)."""
    for key, value in subs.items():
        text = re.sub(r"(?<![A-Za-z0-9_])%s(?![A-Za-z0-9_])" % re.escape(key), lambda _m, v=value: v, text)
    return text


def argv(command, subs=None, add=()):
    """A row's command as the argument vector a shell would make of it, placeholders substituted,
    ``add`` (words the row itself names, e.g. an ``-e`` option of its note) appended."""
    subs = subs or {}
    return shlex.split(substitute(command, subs)) + [substitute(word, subs) for word in add]


def problems(rows, expected):
    """What ``expected`` (row name -> {"runs": [...], "skip": {command: why}} or {"nothing": why})
    leaves uncovered or gets wrong, as a list of sentences (empty: every row and command covered)."""
    found = []
    for name in sorted(set(rows) - set(expected)):
        found.append("README row %r has no expectation (run its commands, or say why not)" % name)
    for name in sorted(set(expected) - set(rows)):
        found.append("expectation %r names no README row" % name)
    for name in sorted(set(rows) & set(expected)):
        row, entry = rows[name], expected[name]
        if "nothing" in entry:
            if row["commands"] or not entry["nothing"].strip():
                found.append("row %r: 'nothing to run' needs a reason and a row without commands (it has %s)"
                             % (name, row["commands"]))
            continue
        runs, skips = entry.get("runs", []), entry.get("skip", {})
        for command in row["commands"]:
            if not any(run["cmd"] == command for run in runs) and not str(skips.get(command, "")).strip():
                found.append("row %r: `%s` is neither run nor skipped with a reason" % (name, command))
        for command in list(skips) + [run["cmd"] for run in runs]:
            if command not in row["commands"]:
                found.append("row %r: `%s` is not (or no longer) a command of the row" % (name, command))
        for run in runs:
            found.extend("row %r: %s" % (name, problem) for problem in _run_problems(row, run))
    return found


def _run_problems(row, run):
    found = []
    if not isinstance(run.get("rc"), int) or not run.get("look"):
        found.append("`%s` needs an exit code (rc) and the text a user looks for (look)" % run["cmd"])
    for pattern in run.get("look", []) + run.get("absent", []):
        try:
            re.compile(pattern)
        except re.error as exc:
            found.append("bad regex %r: %s" % (pattern, exc))
    for key, value in run.get("sub", {}).items():
        if key not in PLACEHOLDERS and not any(value in frag for frag in row["fragments"]):
            found.append("`%s`: %r -> %r is neither a placeholder nor a variant the row names" % (run["cmd"], key, value))
    if run.get("add") and " ".join(run["add"]) not in row["fragments"]:
        found.append("`%s`: adds %r, which the row does not name" % (run["cmd"], " ".join(run["add"])))
    words = argv(run["cmd"], run.get("sub"), run.get("add", ()))
    left = [word for word in words for holder in PLACEHOLDERS if substitute(word, {holder: "\0"}) != word]
    if left:
        found.append("`%s`: placeholders left in %s" % (run["cmd"], left))
    return found
