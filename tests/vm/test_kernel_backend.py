"""wg_interface's kernel backend on a real WireGuard kernel module: Debian's stock kernel in qemu (TCG).

One VM boot runs every scenario of ``scenarios/kernel_backend.py`` (in order, they share one tunnel);
each scenario is then reported as its own test. A failure message carries the scenario's detail and
the VM's whole serial console. Run on its own with ``pytest -m vm tests/vm``.
"""

import ast
import os
import shutil
import time

import pytest

from conftest import require, require_root_tools

import qemu_vm as vm  # tests/vm/qemu_vm.py (pytest's rootdir-relative import puts tests/vm on sys.path)

pytestmark = pytest.mark.vm
TIMEOUT = int(os.environ.get("WGSP_VM_TIMEOUT", "900"))


def scenario_names():
    """The scenarios in the order the runner runs them (functions decorated with @scenario)."""
    with open(os.path.join(vm.HERE, "scenarios", "kernel_backend.py"), encoding="utf-8") as handle:
        tree = ast.parse(handle.read())
    return [node.name for node in tree.body if isinstance(node, ast.FunctionDef)
            and any(isinstance(d, ast.Name) and d.id == "scenario" for d in node.decorator_list)]


@pytest.fixture(scope="module")
def vm_run(tmp_path_factory):
    require_root_tools("debootstrap", "cpio", "depmod", "apt-get")
    require(shutil.which(vm.QEMU) is not None, "%s is not installed (apt-get install qemu-system-x86)" % vm.QEMU)
    image, build_seconds, built = vm.build_image()
    print("\nVM image %s: %s in %.1fs" % (image, "built" if built else "cached", build_seconds))
    start = time.monotonic()
    console, boot_seconds, timed_out = vm.boot(image, timeout=TIMEOUT, workdir=str(tmp_path_factory.mktemp("vm")))
    results, finished = vm.parse_results(console)
    print("VM boot + scenarios: %.1fs (total with image %.1fs)" % (boot_seconds, time.monotonic() - start + build_seconds))
    return {"console": console, "results": results, "finished": finished, "timed_out": timed_out,
            "seconds": boot_seconds}


def _console(run):
    return "\n---- VM console ----\n%s\n---- end of console ----" % run["console"]


def test_vm_ran_to_completion(vm_run):
    assert not vm_run["timed_out"], "VM killed after %ds%s" % (TIMEOUT, _console(vm_run))
    assert vm_run["finished"], "the scenario runner did not finish%s" % _console(vm_run)
    assert sorted(vm_run["results"]) == sorted(scenario_names()), "scenarios missing from the VM's report%s" % _console(vm_run)


@pytest.mark.parametrize("name", scenario_names())
def test_scenario(vm_run, name):
    result = vm_run["results"].get(name)
    assert result is not None, "scenario %s reported nothing%s" % (name, _console(vm_run))
    # A scenario skipped in the VM did not run (an earlier one it needs failed): that is a failure too,
    # never a pass or a pytest skip (the VM image brings every tool, so nothing is legitimately missing).
    assert not result.get("skipped"), "scenario %s did not run: %s%s" % (name, result["detail"], _console(vm_run))
    assert result["ok"], "scenario %s failed after %.1fs:\n%s%s" % (name, result["seconds"], result["detail"], _console(vm_run))
    print("%s (%.1fs): %s" % (name, result["seconds"], result["detail"]))
