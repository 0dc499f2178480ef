"""`make demo` then `make test`: the suite's Docker networks never overlap the demo lab's (Docker
refuses overlapping networks, and the tests must never touch the demo), and no lab's network
overlaps a network this machine itself uses (tests/lib/hostnets.py)."""

import importlib.util
import ipaddress
import os
import re

import yaml

from conftest import REPO
from hostnets import clashes, molecule_subnets


def demo_subnets():
    with open(os.path.join(REPO, "inventories", "lab", "group_vars", "all.yml")) as handle:
        lab = yaml.safe_load(handle)
    defaults = [re.search(r"default\('([0-9.]+)'\)", lab[name]).group(1) for name in ("lab_under", "lab_app", "lab_public")]
    return [ipaddress.ip_network(prefix + ".0/24") for prefix in defaults]


def fault_lab_subnets():
    spec = importlib.util.spec_from_file_location("lab_faults", os.path.join(REPO, "tests", "molecule", "test_lab_faults.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return dict(("lab faults %s" % name, ipaddress.ip_network(prefix + ".0/24")) for name, prefix in module.NETS.items())


def test_the_suite_runs_beside_the_demo_lab():
    demo = demo_subnets()
    assert [str(n) for n in demo] == ["192.168.30.0/24", "192.168.40.0/24", "198.18.30.0/24"]
    ours = dict(molecule_subnets(REPO), **fault_lab_subnets())
    assert len(ours) >= 10
    clashes = ["%s %s overlaps the demo's %s" % (name, net, d) for name, net in sorted(ours.items())
               for d in demo if net.overlaps(d)]
    assert clashes == []


def bench_subnets():
    spec = importlib.util.spec_from_file_location("bench_site", os.path.join(REPO, "bench", "bench_site.py"))
    module = importlib.util.module_from_spec(spec)
    import sys

    sys.path.insert(0, os.path.join(REPO, "bench"))
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(os.path.join(REPO, "bench"))
    return dict(("bench %s" % name, ipaddress.ip_network(net)) for name, net in module.NETWORKS.items())


def test_no_lab_network_overlaps_this_machines_own():
    """A lab's bridge would take the machine's route, gateway or name server away while it is up."""
    labs = dict(molecule_subnets(REPO), **fault_lab_subnets())
    labs.update(("demo %s" % net, net) for net in demo_subnets())
    labs.update(bench_subnets())
    assert len(labs) >= 13
    problems = ["%s: %s" % (name, problem) for name, net in sorted(labs.items()) for problem in clashes([net])]
    assert problems == []


def test_the_clash_check_sees_gateway_route_address_and_name_server():
    used = [(ipaddress.ip_network("192.0.2.0/24"), "route via eth0"),
            (ipaddress.ip_network("192.0.2.1/32"), "default gateway (dev eth0)"),
            (ipaddress.ip_network("10.255.255.53/32"), "name server")]
    assert clashes(["198.18.31.0/24", "192.168.31.0/24"], used) == []
    assert len(clashes(["192.0.2.0/24"], used)) == 2
    assert clashes(["10.255.0.0/16"], used) == ["the lab network 10.255.0.0/16 overlaps this machine's "
                                                "10.255.255.53/32 (name server)"]
