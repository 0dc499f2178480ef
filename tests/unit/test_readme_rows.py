"""The README's `manage-vpn.sh` table is the source of the lab fault test's README runs: every row has
an expectation there (its commands run, or a reason why not), so a new or changed row fails here
until the lab test covers it. No Docker needed."""

import importlib.util
import os
import sys

from conftest import REPO

MOLECULE = os.path.join(REPO, "tests", "molecule")
if MOLECULE not in sys.path:
    sys.path.insert(0, MOLECULE)

import readme_rows  # noqa: E402 pylint: disable=wrong-import-position


def expectations():
    spec = importlib.util.spec_from_file_location("lab_faults", os.path.join(MOLECULE, "test_lab_faults.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ROWS


def test_the_table_is_found():
    rows = readme_rows.table()
    assert len(rows) >= 25, sorted(rows)
    assert rows["status"]["commands"][0] == "ansible all -m wgsp.service_proxy.wg_status"
    assert rows["generate-keys"]["commands"] == []
    assert "-e test_connection_public_client=HOST" in rows["test-connection"]["fragments"]


def test_every_row_and_command_is_run_or_says_why_not():
    assert readme_rows.problems(readme_rows.table(), expectations()) == []


def test_a_new_or_changed_row_is_reported(tmp_path):
    with open(readme_rows.README) as handle:
        text = handle.read()
    text = text.replace("| `restart` | `ansible-playbook wgsp.service_proxy.restart -l HOST`",
                        "| `restart` | `ansible-playbook wgsp.service_proxy.restart -l HOST -e restart_reapply=true`")
    text = text.replace("| `help` |", "| `reload` | `ansible all -m ping` | |\n| `help` |")
    changed = tmp_path / "README.md"
    changed.write_text(text)
    found = readme_rows.problems(readme_rows.table(str(changed)), expectations())
    assert any("'reload' has no expectation" in line for line in found), found
    assert any("`ansible-playbook wgsp.service_proxy.restart -l HOST -e restart_reapply=true` is neither run" in line
               for line in found), found
    assert any("`ansible-playbook wgsp.service_proxy.restart -l HOST` is not (or no longer)" in line for line in found), found


def test_runs_substitute_every_placeholder():
    words = readme_rows.argv("ansible-playbook -i inventories/mine site.yml -l NAME:wg_server",
                             {"NAME": "proxy1", "inventories/mine": "/tmp/x/mine"})
    assert words == ["ansible-playbook", "-i", "/tmp/x/mine", "site.yml", "-l", "proxy1:wg_server"]
    assert readme_rows.argv("bin/wgsp-import-env .env --host NAME", {".env": "/t/a.env", "NAME": "n"}) == \
        ["bin/wgsp-import-env", "/t/a.env", "--host", "n"]
    assert readme_rows.argv('ansible HOST -m wg_status -a "probe=true fail_on=probe"', {"HOST": "proxy1"}) == \
        ["ansible", "proxy1", "-m", "wg_status", "-a", "probe=true fail_on=probe"]
