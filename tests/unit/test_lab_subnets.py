"""`make demo` then `make test`: the suite's Docker networks never overlap the demo lab's (Docker
refuses overlapping networks, and the tests must never touch the demo)."""

import importlib.util
import ipaddress
import os
import re

import yaml

from conftest import REPO


def demo_subnets():
    with open(os.path.join(REPO, "inventories", "lab", "group_vars", "all.yml")) as handle:
        lab = yaml.safe_load(handle)
    defaults = [re.search(r"default\('([0-9.]+)'\)", lab[name]).group(1) for name in ("lab_under", "lab_app", "lab_public")]
    return [ipaddress.ip_network(prefix + ".0/24") for prefix in defaults]


def molecule_subnets():
    found = {}
    for scenario in sorted(os.listdir(os.path.join(REPO, "molecule"))):
        with open(os.path.join(REPO, "molecule", scenario, "molecule.yml")) as handle:
            text = handle.read()
        config = yaml.safe_load(re.sub(r"\$\{[^}]*\}", "image", text))
        for platform in config["platforms"]:
            for network in platform.get("docker_networks", []):
                for ipam in network.get("ipam_config", []):
                    found["%s %s" % (scenario, network["name"])] = ipaddress.ip_network(ipam["subnet"])
    return found


def fault_lab_subnets():
    spec = importlib.util.spec_from_file_location("lab_faults", os.path.join(REPO, "tests", "molecule", "test_lab_faults.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(("lab faults %s" % name, ipaddress.ip_network(prefix + ".0/24")) for name, prefix in module.NETS.items())


def test_the_suite_runs_beside_the_demo_lab():
    demo = demo_subnets()
    assert [str(n) for n in demo] == ["192.168.30.0/24", "198.51.100.0/24", "203.0.113.0/24"]
    ours = dict(molecule_subnets(), **fault_lab_subnets())
    assert len(ours) >= 10
    clashes = ["%s %s overlaps the demo's %s" % (name, net, d) for name, net in sorted(ours.items())
               for d in demo if net.overlaps(d)]
    assert clashes == []
