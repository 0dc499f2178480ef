"""The proxy role's relay set as the role computes it (its vars file, rendered by ansible-playbook on
the controller, no host touched): a proxy that does not ask for the IPv6 relay keeps IPv4-only
allowed networks (``WG_PUBLIC_ALLOWED_CIDR=0.0.0.0/0``, as the importer writes it), a string
``"false"`` is false, and a proxy that asks for the relay without an IPv6 network is refused,
naming the variable."""

import json
import os
import subprocess

import pytest

from conftest import REPO

ROLE = os.path.join(REPO, "roles", "proxy_client")
PLAY = """
- hosts: proxy1
  gather_facts: false
  tasks:
    - ansible.builtin.include_vars: {defaults}
    - ansible.builtin.set_fact:
        __wgsp_host: {{network: {{interfaces: [eth1]}}}}
    - ansible.builtin.include_vars: {vars}
    - ansible.builtin.debug:
        msg: "RELAY={{{{ {{'state': __proxy_client_relay.state, 'sources': __proxy_client_relay.sources,
                        'relays': __proxy_client_relay.relays}} | to_json }}}}"
"""
INVENTORY = """
all:
  children:
    wg_server: {hosts: {hub: {ansible_connection: local}}}
    share_clients: {hosts: {share1: {ansible_connection: local, share_client_address: 10.7.0.2/32,
                                     share_client_services: ["web:80"]}}}
    proxy_clients: {hosts: {proxy1: {ansible_connection: local, proxy_client_address: 10.7.0.3/32}}}
"""


def relay(tmp_path, **extra):
    (tmp_path / "play.yml").write_text(PLAY.format(defaults=os.path.join(ROLE, "defaults", "main.yml"),
                                                   vars=os.path.join(ROLE, "vars", "main.yml")))
    (tmp_path / "hosts.yml").write_text(INVENTORY)
    extra = dict({"proxy_client_public_ports": ["80:share1:web"], "proxy_client_public_interface": "eth1"}, **extra)
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"), ANSIBLE_NOCOLOR="1")
    proc = subprocess.run([os.path.join(REPO, ".venv", "bin", "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"),
                           str(tmp_path / "play.yml"), "-e", json.dumps(extra)],
                          cwd=str(tmp_path), env=env, capture_output=True, text=True, check=False, timeout=120)
    for line in proc.stdout.splitlines():
        if '"msg": "RELAY=' in line:
            return json.loads(json.loads("{%s}" % line.strip())["msg"][len("RELAY="):])
    return proc.stdout + proc.stderr


@pytest.mark.parametrize("wanted", [False, "false", "no"])
def test_a_proxy_without_the_relay_keeps_ipv4_only_allowed_networks(tmp_path, wanted):
    got = relay(tmp_path, proxy_client_public_allowed_cidrs=["0.0.0.0/0"], proxy_client_public_ipv6=wanted)
    assert got == {"state": "absent", "sources": [], "relays": []}, got


def test_the_relay_takes_the_ipv6_networks_and_the_ipv4_targets(tmp_path):
    got = relay(tmp_path, proxy_client_public_allowed_cidrs=["0.0.0.0/0", "2001:db8::/32"], proxy_client_public_ipv6=True)
    assert got == {"state": "present", "sources": ["2001:db8::/32"],
                   "relays": [{"proto": "tcp", "port": 80, "to_address": "10.7.0.2", "to_port": 80}]}, got


def test_the_relay_without_an_ipv6_allowed_network_is_refused_naming_the_variable(tmp_path):
    got = relay(tmp_path, proxy_client_public_allowed_cidrs=["0.0.0.0/0"], proxy_client_public_ipv6="yes")
    assert isinstance(got, str) and "proxy_client_public_allowed_cidrs: has no IPv6 network" in got, got
