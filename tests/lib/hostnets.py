"""The networks this machine itself uses, which a lab's Docker networks must never overlap.

A Docker bridge network is created in the machine's own network namespace: its subnet becomes a
route there, and its gateway one of the machine's addresses. A lab subnet that overlaps a network
the machine uses takes that network away from it while the lab is up (its default gateway, its
name server, the package registries), and a request meant for a lab container could leave on the
real interface instead. Seen on a machine whose own underlay was 192.0.2.0/24 (the lab's "public"
documentation range then) and whose registries answered at a 203.0.113.0/24 address (the demo's).

Every lab that creates Docker networks (the molecule scenarios, the lab fault test, ``make demo``,
the site benchmark) checks its subnets here before creating anything; tests/unit/test_lab_subnets.py
checks them all in the first layer of ``make test``.

usage: python3 tests/lib/hostnets.py SUBNET [SUBNET ...]   (exit 1 naming each clash)
"""

import ipaddress
import json
import os
import re
import subprocess
import sys


def _docker_link(dev):
    return dev == "docker0" or dev.startswith("br-") or dev.startswith("veth")


def host_networks():
    """``[(network, what)]`` the machine uses outside Docker, IPv4 and IPv6: its routes (main table,
    not the default route itself), its addresses, its default gateways and its name servers
    (link-local IPv6 is every link's own, never a lab's)."""
    found = []

    def ip_json(*args):
        out = []
        for family in ("-4", "-6"):
            proc = subprocess.run(["ip", "-j", family] + list(args), capture_output=True, text=True, check=False)
            out += json.loads(proc.stdout or "[]") if proc.returncode == 0 else []
        return out

    def link_local(text):
        try:
            return ipaddress.ip_network(text, strict=False).is_link_local
        except ValueError:
            return True

    for route in ip_json("route", "show", "table", "main"):
        dev = route.get("dev", "")
        if _docker_link(dev):
            continue
        if route.get("dst") == "default":
            if route.get("gateway") and not link_local(route["gateway"]):
                found.append((ipaddress.ip_network(route["gateway"]), "default gateway (dev %s)" % dev))
            continue
        dst = route.get("dst", "")
        if link_local(dst):
            continue
        found.append((ipaddress.ip_network(dst, strict=False), "route via %s" % dev))
    for link in ip_json("address", "show"):
        if _docker_link(link.get("ifname", "")) or link.get("ifname") == "lo":
            continue
        for addr in link.get("addr_info") or []:
            if addr.get("family") in ("inet", "inet6") and addr.get("local") and not link_local(addr["local"]):
                found.append((ipaddress.ip_network("%s/%s" % (addr["local"], addr.get("prefixlen", 32)), strict=False),
                              "address of %s" % link["ifname"]))
    try:
        with open("/etc/resolv.conf") as handle:
            for line in handle:
                words = line.split()
                if len(words) >= 2 and words[0] == "nameserver":
                    try:
                        found.append((ipaddress.ip_network(words[1].split("%")[0]), "name server"))
                    except ValueError:
                        continue
    except OSError:
        pass
    return found


def clashes(subnets, used=None):
    """Each lab subnet that overlaps a network of the machine, as a sentence (empty: all free)."""
    used = host_networks() if used is None else used
    out = []
    for subnet in subnets:
        net = ipaddress.ip_network(subnet, strict=False)
        for other, what in used:
            if net.version == other.version and net.overlaps(other):
                out.append("the lab network %s overlaps this machine's %s (%s)" % (net, other, what))
    return out


def molecule_subnets(repo, scenario=None):
    """``{"<scenario> <network>": subnet}`` of the molecule scenarios' Docker networks (or one scenario's)."""
    import yaml

    found = {}
    for name in sorted(os.listdir(os.path.join(repo, "molecule"))) if scenario is None else [scenario]:
        with open(os.path.join(repo, "molecule", name, "molecule.yml")) as handle:
            text = handle.read()
        config = yaml.safe_load(re.sub(r"\$\{[^}]*\}", "image", text))
        for platform in config["platforms"]:
            for network in platform.get("docker_networks", []):
                for ipam in network.get("ipam_config", []):
                    subnet = ipaddress.ip_network(ipam["subnet"])
                    found["%s %s%s" % (name, network["name"], " (IPv6)" if subnet.version == 6 else "")] = subnet
    return found


def check(subnets):
    """Raise RuntimeError naming every clash; call before creating the lab's networks."""
    found = clashes(subnets)
    if found:
        raise RuntimeError("refusing to create the lab: %s. Move the lab to other subnets." % "; ".join(found))


if __name__ == "__main__":
    problems = clashes(sys.argv[1:])
    for problem in problems:
        print(problem, file=sys.stderr)
    sys.exit(1 if problems else 0)
