"""Issue 16 (roles with real contracts) on real namespace hosts, through ansible-playbook.

- Each wg_common entry point the roles include (``tasks_from``) has its own argument spec, and a
  required variable left unset fails that spec before anything changes (no ``""`` default stands in).
- The client entry point takes the hub's settings as an explicit input (``wg_common_hub_info``).
- Reading the hub's key from a client (``delegate_to`` the hub) never generates a key on the hub:
  ``wg_key generate=false``; a hub without its key fails the client outside check mode.
"""

import pytest

from conftest import require_root_tools
from hoststate import settled, snapshot
from test_trust_validation import ROLE_PLAY, inventory, playbook

HUB_VARS = {"wg_server_endpoint": "192.0.2.1:51820"}

CLIENT_PLAY = """
- name: The client entry point of wg_common
  hosts: share_clients
  gather_facts: false
  tasks:
    - name: Connect to the hub
      ansible.builtin.include_role:
        name: wgsp.service_proxy.wg_common
        tasks_from: client
      vars:
        wg_common_interface: wg0
        wg_common_hub: hub
        wg_common_hub_info: "{{{{ 'hub' | wgsp.service_proxy.wgsp_hub_info(hostvars) }}}}"
        wg_common_backend: userspace
        wg_common_private_key_path: /etc/wireguard/wg0.key
        wg_common_state_dir: /etc/wg-service-proxy
        wg_common_state: {{client_mode: share}}
{address}
"""


def _tools():
    require_root_tools("wireguard-go", "wg", "ip")


def hub_and_client(lab, tmp_path, client_vars=None):
    hub, client = lab.host("hub"), lab.host("client")
    inv = inventory(tmp_path, {"wg_server": [hub], "share_clients": [client]},
                    {"hub": HUB_VARS, "client": client_vars or {}})
    return hub, client, inv


def client_play(tmp_path, address="10.7.0.2/32"):
    book = tmp_path / "client.yml"
    book.write_text(CLIENT_PLAY.format(address="        wg_common_address: %s" % address if address else ""))
    return str(book)


def test_wg_key_generate_false_only_reads(lab):
    _tools()
    host = lab.host("h")
    before = settled(host)
    result = host.module("wg_key", {"path": "/etc/wireguard/wg0.key", "generate": False})
    assert result["_rc"] == 0 and not result.get("failed"), result
    assert result["public_key"] is None and result["generated"] is False and result["changed"] is False
    assert snapshot(host) == before  # no key, no directory
    made = host.module("wg_key", {"path": "/etc/wireguard/wg0.key"})
    assert made["generated"] is True and made["public_key"]
    again = host.module("wg_key", {"path": "/etc/wireguard/wg0.key", "generate": False})
    assert again["public_key"] == made["public_key"] and again["changed"] is False


def test_client_never_generates_the_hubs_key(lab, tmp_path):
    """A client whose hub has no key yet: check mode passes (a plan without the peer), a real run
    fails naming the hub and the path - and no key appears on the hub either way."""
    _tools()
    hub, client, inv = hub_and_client(lab, tmp_path)
    book = client_play(tmp_path)
    before = {h.name: settled(h) for h in (hub, client)}
    proc = playbook(tmp_path, inv, book, "--check")
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert {h.name: snapshot(h) for h in (hub, client)} == before
    proc = playbook(tmp_path, inv, book)
    assert proc.returncode != 0
    assert "the hub hub has no key at /etc/wireguard/wg0.key" in proc.stdout, proc.stdout[-3000:]
    assert hub.run("test -e /etc/wireguard/wg0.key", check=False).returncode != 0
    assert {h.name: snapshot(h) for h in (hub, client)} == before


def test_client_reads_the_existing_hub_key(lab, tmp_path):
    _tools()
    hub, client, inv = hub_and_client(lab, tmp_path)
    public = hub.module("wg_key", {"path": "/etc/wireguard/wg0.key"})["public_key"]
    hub_before = settled(hub)
    proc = playbook(tmp_path, inv, client_play(tmp_path))
    assert proc.returncode == 0, proc.stdout[-3000:]
    assert client.run(["wg", "show", "wg0", "peers"]).stdout.split() == [public]
    assert client.run(["wg", "show", "wg0", "endpoints"]).stdout.split() == [public, "192.0.2.1:51820"]
    assert snapshot(hub) == hub_before  # read only: the hub's key file is untouched


@pytest.mark.parametrize("case", ["wg_common client", "share_client", "proxy_client"])
def test_required_variables_fail_the_entry_points_spec(lab, tmp_path, case):
    """``required: true`` fires: the spec of the entry point names the missing variable, before any change."""
    _tools()
    hub, client, inv = hub_and_client(lab, tmp_path)
    if case == "wg_common client":
        book, var = client_play(tmp_path, address=None), "wg_common_address"
    else:
        group = "share_clients" if case == "share_client" else "proxy_clients"
        inv = inventory(tmp_path, {"wg_server": [hub], group: [client]}, {"hub": HUB_VARS, "client": {}})
        book = tmp_path / "role.yml"
        book.write_text(ROLE_PLAY.format(group=group, role=case))
        book, var = str(book), "%s_address" % case
    before = {h.name: settled(h) for h in (hub, client)}
    proc = playbook(tmp_path, inv, book)
    assert proc.returncode != 0
    assert "missing required arguments: %s" % var in proc.stdout, proc.stdout[-3000:]
    assert "Install WireGuard" not in proc.stdout and "Read the hub" not in proc.stdout
    assert {h.name: snapshot(h) for h in (hub, client)} == before
