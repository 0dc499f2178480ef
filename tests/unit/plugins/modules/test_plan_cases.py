"""Table-driven plan cases of wg_dnat and wg_filter (cases/<module>.yml), in the style of
community.general's UTHelper: each case gives the module arguments, the check/diff flags, what the
faked host answers (``modharness.FakeHost``, the command boundary) and what must come out.

A case::

    - id: short-name                  # the pytest id
      args: {...}                     # module arguments ("{tmp}" in a string: the test's tmp_path)
      check_mode: false               # default false
      diff: false                     # default false
      host:
        nft: false                    # whether ``nft`` is installed (default false: iptables backend)
        answers:                      # before the clean-host defaults (modharness.CLEAN_HOST)
          - command: [iptables-save]  # argv prefix, glob words, first word matched by basename
            rc: 0
            stdout: "..."
            stdout_after_write: "..." # optional: what it prints once the firewall was written
            stderr: ""
      expect:
        failed: false                 # bool(result.failed); always checked (default false)
        result: {path: value}         # equality; a path is dotted keys/indexes ("diff.0.after")
        contains: {path: [text]}      # each text is in the value (substring or list member)
        startswith: {path: text}
        nonempty: [path]
        written: []                   # the restore / nft -f / nft -c commands, in order; [] = nothing
        read_firewall: false          # whether any *-save ran
        commands: []                  # every command run, in order ([] = none at all)
        files_absent: [path]
"""

import glob
import os

import pytest
import yaml

from ansible_collections.wgsp.service_proxy.plugins.modules import wg_dnat, wg_filter
from modharness import FakeHost, run_module  # noqa: E402

MODULES = {"wg_dnat": wg_dnat, "wg_filter": wg_filter}
CASES_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases")
EXPECT_KEYS = {"failed", "result", "contains", "startswith", "nonempty", "written", "read_firewall", "commands",
               "files_absent"}
MISSING = object()


def load_cases():
    params = []
    for path in sorted(glob.glob(os.path.join(CASES_DIR, "*.yml"))):
        module = os.path.splitext(os.path.basename(path))[0]
        with open(path, encoding="utf-8") as handle:
            cases = yaml.safe_load(handle)["test_cases"]
        for case in cases:
            params.append(pytest.param(module, case, id="%s-%s" % (module, case["id"])))
    return params


CASES = load_cases()


def with_tmp(value, tmp):
    if isinstance(value, str):
        return value.replace("{tmp}", tmp)
    if isinstance(value, list):
        return [with_tmp(item, tmp) for item in value]
    if isinstance(value, dict):
        return {key: with_tmp(item, tmp) for key, item in value.items()}
    return value


def lookup(result, path):
    node = result
    for step in str(path).split("."):
        if isinstance(node, list) and step.lstrip("-").isdigit() and -len(node) <= int(step) < len(node):
            node = node[int(step)]
        elif isinstance(node, dict) and step in node:
            node = node[step]
        else:
            return MISSING
    return node


def fake_host(spec):
    spec = spec or {}
    answers = [(a["command"], a.get("rc", 0), a.get("stdout", ""), a.get("stderr", ""),
                a.get("stdout_after_write", a.get("stdout", ""))) for a in spec.get("answers", [])]
    return FakeHost(answers, missing=() if spec.get("nft") else ("nft",))


def test_every_module_has_cases_with_known_keys():
    """The runner can only fail a case it understands: no unknown expectation is silently ignored."""
    assert {param.values[0] for param in CASES} == set(MODULES)
    ids = [param.id for param in CASES]
    assert len(ids) == len(set(ids))
    for param in CASES:
        case = param.values[1]
        assert set(case) <= {"id", "doc", "args", "check_mode", "diff", "host", "expect"}, param.id
        assert set(case["expect"]) <= EXPECT_KEYS, param.id


@pytest.mark.parametrize("module_name, case", CASES)
def test_plan_case(monkeypatch, tmp_path, module_name, case):
    case = with_tmp(case, str(tmp_path))
    expect = case["expect"]
    result, host = run_module(monkeypatch, MODULES[module_name], case["args"], host=fake_host(case.get("host")),
                              check_mode=case.get("check_mode", False), diff=case.get("diff", False))

    assert bool(result.get("failed")) is expect.get("failed", False), result.get("msg", result)
    assert "exception" not in result, result["exception"]
    for path, value in expect.get("result", {}).items():
        assert lookup(result, path) == value, path
    for path, texts in expect.get("contains", {}).items():
        found = lookup(result, path)
        assert found is not MISSING, path
        for text in texts if isinstance(texts, list) else [texts]:
            assert text in found, (path, text, found)
    for path, prefix in expect.get("startswith", {}).items():
        found = lookup(result, path)
        assert isinstance(found, str) and found.startswith(prefix), (path, found)
    for path in expect.get("nonempty", []):
        found = lookup(result, path)
        assert found is not MISSING and found, path
    if "written" in expect:
        assert host.writes() == expect["written"]
    if "read_firewall" in expect:
        assert host.read_firewall() is expect["read_firewall"]
    if "commands" in expect:
        assert host.calls == expect["commands"]
    for path in expect.get("files_absent", []):
        assert not os.path.exists(path), path
