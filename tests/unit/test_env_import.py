"""The .env importer: each original example file converts to host_vars that pass the roles' argument
specs and the roles' own parsing filters; every option is either mapped or commented with a reason;
key material only ever lands in the 0600 secrets file. The CLI and the playbook share one converter."""

import os
import stat
import subprocess

import pytest
import yaml

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible_collections.wgsp.service_proxy.plugins.filter import service_proxy
from ansible_collections.wgsp.service_proxy.plugins.plugin_utils.env_import import EnvImportError, convert, parse_env

from conftest import REPO

FIXTURES = os.path.join(REPO, "tests", "unit", "fixtures", "env")
CLI = os.path.join(REPO, "bin", "wgsp-import-env")
SECRETS = {
    "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=",  # private keys of the fixtures
    "UFFSU1RVVldYWVpbXF1eX2BhYmNkZWZnaGlqa2xtbm8=",
    "ISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0A=",  # preshared key
}
# Every option of the original's env-template (../shared/seed/original-project.md).
ORIGINAL_OPTIONS = [
    "CLIENT_MODE", "WG_INTERFACE_NAME", "WG_ADDRESS", "WG_MTU", "WG_DNS", "WG_PRIVATE_KEY", "WG_PUBLIC_KEY",
    "WG_PRESHARED_KEY", "WG_ENDPOINT", "WG_PEER_PUBLIC_KEY", "WG_ALLOWED_IPS", "WG_PERSISTENT_KEEPALIVE",
    "WG_DOCKER_ALLOWED_HOSTS", "WG_DOCKER_NETWORK", "WG_DOCKER_FORWARD_TO_HOST", "WG_SHARE_HOST_SERVICES",
    "WG_HOST_SERVICES", "ACCESS_SERVICES", "WG_ENABLE_PUBLIC_FORWARDING", "WG_PUBLIC_PORTS", "WG_PUBLIC_NETWORK",
    "WG_PUBLIC_ALLOWED_CIDR", "WG_LOG_PUBLIC_ACCESS", "WG_LOG_ACCESS", "WG_ALLOWED_TCP_PORTS",
    "WG_ALLOWED_UDP_PORTS", "WG_ALLOW_ICMP", "WG_INTERFACE_ROUTING_MASK", "WG_DISABLE_INTERFACE_ROUTING",
    "WG_EXTERNAL_FORWARDING",
]

EXPECTED = {
    ".env": ("share_clients", {
        "share_client_interface": "wg0", "share_client_address": "10.7.0.2/32", "share_client_mtu": 1420,
        "share_client_persistent_keepalive": 25, "share_client_services": ["dummy:tcp:80", "api:both:8080"],
        "share_client_docker_network": "services", "share_client_host_services": ["tcp:22", "tcp:8443:443"],
        "share_client_external_forwards": ["tcp:8081:192.168.1.50:80"],
        "share_client_allowed_tcp_ports": [22, 9100], "share_client_allowed_udp_ports": [],
        "share_client_allow_icmp": True, "share_client_preshared_key": True}),
    ".env.share": ("share_clients", {
        "share_client_interface": "wg0", "share_client_address": "10.7.0.2/32",
        "share_client_services": ["dummy:tcp:80"], "share_client_docker_network": "vpn-network",
        "share_client_persistent_keepalive": 25, "share_client_allow_icmp": False}),
    ".env.proxy": ("proxy_clients", {
        "proxy_client_interface": "wg0", "proxy_client_address": "10.7.0.3/32",
        "proxy_client_access_services": ["10.7.0.2:80"], "proxy_client_enable_public_forwarding": True,
        "proxy_client_public_ports": ["80:10.7.0.2:80"], "proxy_client_public_allowed_cidrs": ["203.0.113.0/24"],
        "proxy_client_log_public_access": True, "proxy_client_allow_icmp": False}),
    # shaped like the original's own examples (fixtures/env/original/README.md)
    "original/.env.example": ("share_clients", {
        "share_client_interface": "wg0", "share_client_address": "10.7.0.2/32", "share_client_mtu": 1420,
        "share_client_persistent_keepalive": 25, "share_client_services": ["dummy:tcp:80"],
        "share_client_docker_network": "app-network", "share_client_allowed_tcp_ports": [22, 80, 443],
        "share_client_allowed_udp_ports": [1194, 51820], "share_client_allow_icmp": True,
        # the original's examples ship a preshared key: its tunnel uses one, so the roles make one on the hub
        "share_client_preshared_key": True}),
    "original/.env.proxy.example": ("proxy_clients", {
        "proxy_client_interface": "wg0", "proxy_client_address": "10.7.0.3/32", "proxy_client_mtu": 1420,
        "proxy_client_persistent_keepalive": 25, "proxy_client_access_services": ["10.7.0.2:80", "10.7.0.2:443"],
        "proxy_client_public_ports": ["80:10.7.0.2:80", "443:10.7.0.2:443"],
        "proxy_client_enable_public_forwarding": True, "proxy_client_public_allowed_cidrs": [],
        "proxy_client_log_public_access": True, "proxy_client_allowed_tcp_ports": [80, 443, 8080, 8081, 22],
        "proxy_client_allowed_udp_ports": [51820], "proxy_client_allow_icmp": True, "proxy_client_preshared_key": True}),
}
EXPECTED["original/.env.share.example"] = EXPECTED["original/.env.example"]


def read(name):
    with open(os.path.join(FIXTURES, name)) as handle:
        return handle.read()


def role_spec(role):
    """The role's argument spec as ArgumentSpecValidator takes it (types, elements, choices, required)."""
    with open(os.path.join(REPO, "roles", role, "meta", "argument_specs.yml")) as handle:
        options = yaml.safe_load(handle)["argument_specs"]["main"]["options"]
    keep = ("type", "elements", "choices", "required")
    return dict((name, dict((k, v) for k, v in opt.items() if k in keep)) for name, opt in options.items())


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_example_converts_to_vars_that_pass_the_role_specs(name):
    group, expected = EXPECTED[name]
    result = convert(read(name), "host1", source=name)
    assert result["group"] == group and result["mapped"] == expected
    host_vars = yaml.safe_load(result["host_vars"])
    assert host_vars == expected  # the YAML text says exactly what was mapped

    role = {"share_clients": "share_client", "proxy_clients": "proxy_client"}[group]
    validation = ArgumentSpecValidator(role_spec(role)).validate(host_vars)
    assert not validation.error_messages, validation.error_messages
    assert validation.validated_parameters["%s_address" % role] == expected["%s_address" % role]
    # the roles' own parsers accept the values (what the role does with them first)
    if role == "share_client":
        assert service_proxy.share_services(host_vars["share_client_services"])[0]["container"] == "dummy"
        service_proxy.host_services(host_vars.get("share_client_host_services"))
        service_proxy.external_forwards(host_vars.get("share_client_external_forwards"))
    else:
        assert service_proxy.access_services(host_vars["proxy_client_access_services"], {})[0] == {
            "address": "10.7.0.2", "port": 80, "proto": "tcp", "host": None}
        assert service_proxy.public_ports(host_vars["proxy_client_public_ports"], {})[0] == {
            "proto": "tcp", "port": 80, "to_address": "10.7.0.2", "to_port": 80}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_every_option_is_mapped_or_commented_and_no_key_leaves_the_secrets_file(name):
    result = convert(read(name), "host1", source=name)
    keys = [key for key, _v, _n in parse_env(read(name))]
    unmapped = [key for key, _why in result["unmapped"]]
    for key in keys:
        if key == "CLIENT_MODE":
            assert result["group"] in result["host_vars"]
        elif key not in unmapped:
            assert any(v is not None for v in result["mapped"].values())
        else:
            assert "# %s: " % key in result["host_vars"]  # commented with its reason
    for secret in SECRETS:
        assert secret not in result["host_vars"] and secret not in result["inventory"]
        assert secret not in repr(result["mapped"]) + repr(result["unmapped"]) + repr(result["notes"])
    file_secrets = [v for k, v, _n in parse_env(read(name)) if k in ("WG_PRIVATE_KEY", "WG_PRESHARED_KEY")]
    keys = [v for v in file_secrets if v in SECRETS]
    assert keys and all(secret in result["secrets"] for secret in keys)
    for placeholder in set(file_secrets) - set(keys):  # not a key: named as such, its value shown nowhere
        assert placeholder not in result["host_vars"] + result["secrets"] + repr(result["unmapped"])
    assert "ansible-vault encrypt" in result["secrets"] and "/etc/wireguard/wg0.key" in result["secrets"]
    assert "unknown option" not in result["host_vars"]


def test_the_full_template_covers_every_original_option():
    keys = [key for key, _v, _n in parse_env(read(".env"))]
    assert sorted(keys) == sorted(ORIGINAL_OPTIONS)
    result = convert(read(".env"), "host1")
    why = dict(result["unmapped"])
    assert "wg_server_endpoint: 192.168.30.224:51820" in why["WG_ENDPOINT"]
    assert "read on the hub" in why["WG_PEER_PUBLIC_KEY"]
    assert "resolver" in why["WG_DNS"]
    assert "proxy option" in why["WG_PUBLIC_PORTS"]


def test_parse_env_forms():
    text = ('# c\n\nexport A=1\n  B = "x y"  \nC=\'q\'\nD=v # trailing comment\nA=2\n```E=5\n')
    assert parse_env(text) == [("A", "2", 7), ("B", "x y", 4), ("C", "q", 5), ("D", "v", 6), ("E", "5", 8)]
    with pytest.raises(EnvImportError, match="line 1 is not KEY=value"):
        parse_env("not a line\n")


def test_mode_is_inferred_or_overridden():
    assert convert("WG_ADDRESS=10.7.0.3/32\nWG_PUBLIC_PORTS=80:10.7.0.2:80\n", "h")["group"] == "proxy_clients"
    assert convert("WG_ADDRESS=10.7.0.2/32\nWG_DOCKER_ALLOWED_HOSTS=a:80\n", "h")["group"] == "share_clients"
    assert convert("CLIENT_MODE=disabled\nWG_ADDRESS=10.7.0.2/32\n", "h", mode="proxy")["group"] == "proxy_clients"


def test_an_address_of_each_family_is_a_dual_stack_tunnel():
    """wg-quick's Address list (the original wrote it as given): one of each family is kept, as a list."""
    result = convert("CLIENT_MODE=proxy\nWG_ADDRESS=10.7.0.3/32, fd00:7::3/128\n", "h")
    assert result["mapped"]["proxy_client_address"] == ["10.7.0.3/32", "fd00:7::3/128"]
    assert "wg_server_address" in dict(result["notes"])["WG_ADDRESS"]


def test_more_addresses_of_one_family_keep_the_first_with_a_remark():
    result = convert("CLIENT_MODE=proxy\nWG_ADDRESS=10.7.0.3/32,10.7.0.9/32,fd00:7::3/128\n", "h")
    assert result["mapped"]["proxy_client_address"] == ["10.7.0.3/32", "fd00:7::3/128"]
    assert "the others were 10.7.0.9/32" in dict(result["notes"])["WG_ADDRESS"]
    assert convert("CLIENT_MODE=share\nWG_ADDRESS=10.7.0.2/32\n", "h")["mapped"]["share_client_address"] == "10.7.0.2/32"


@pytest.mark.parametrize("text, message", [
    ("CLIENT_MODE=disabled\nWG_ADDRESS=10.7.0.2/32\n", "CLIENT_MODE=disabled"),
    ("CLIENT_MODE=server\n", "must be share, proxy or disabled"),
    ("WG_MTU=1400\n", "CLIENT_MODE is not set"),
    ("CLIENT_MODE=share\n", "WG_ADDRESS is missing"),
    ("CLIENT_MODE=share\nWG_ADDRESS=10.7.0.2/32\nWG_MTU=big\n", "WG_MTU must be a number"),
    ("CLIENT_MODE=share\nWG_ADDRESS=10.7.0.2/32\nWG_DOCKER_ALLOWED_HOSTS=dummy:tcp\n", "is not name[:proto]:port"),
    ("CLIENT_MODE=proxy\nWG_ADDRESS=10.7.0.3/32\nWG_PUBLIC_PORTS=80\n", "is not public_port:address:port"),
    ("CLIENT_MODE=proxy\nWG_ADDRESS=10.7.0.3/32\nWG_PUBLIC_PORTS=udp:80:10.7.0.2:80\n", "the original's only form"),
    ("CLIENT_MODE=proxy\nWG_ADDRESS=10.7.0.3/32\nACCESS_SERVICES=10.7.0.2:80:sctp\n", "address:port:proto"),
    ("CLIENT_MODE=share\nWG_ADDRESS=10.7.0.2/32\nWG_PRIVATE_KEY=\"UFFSU1RV # open\n", "never closed"),
])
def test_errors_never_show_a_key(text, message):
    with pytest.raises(EnvImportError) as err:
        convert(text, "h")
    assert message in str(err.value) and "UFFSU1RV" not in str(err.value)


def test_bad_host_name():
    with pytest.raises(EnvImportError, match="inventory host name"):
        convert(read(".env.share"), "../etc")


def cli(*args, cwd=None):
    return subprocess.run([CLI, *args], capture_output=True, text=True, check=False, cwd=cwd)


def test_cli_writes_files_with_modes_and_prints_no_key(tmp_path):
    out = tmp_path / "inv"
    proc = cli(os.path.join(FIXTURES, ".env"), "--host", "share1", "--out-dir", str(out), cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    for secret in SECRETS:
        assert secret not in proc.stdout + proc.stderr
    host_vars = out / "host_vars" / "share1.yml"
    secrets = tmp_path / "secrets" / "share1.keys.yml"  # next to the inventory, not in it
    assert stat.S_IMODE(host_vars.stat().st_mode) == 0o644 and stat.S_IMODE(secrets.stat().st_mode) == 0o600
    for created in (out, out / "host_vars", tmp_path / "secrets"):
        assert stat.S_IMODE(created.stat().st_mode) == 0o700, created
    assert not any(path.name.endswith(".keys.yml") for path in out.rglob("*"))
    assert yaml.safe_load(host_vars.read_text()) == EXPECTED[".env"][1]
    assert yaml.safe_load(secrets.read_text()) == {
        "wgsp_import_private_key": "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=",
        "wgsp_import_preshared_key": "ISIjJCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0A="}
    inventory = yaml.safe_load((out / "hosts.yml").read_text())
    assert "share1" in inventory["all"]["children"]["share_clients"]["hosts"]
    # a second import keeps the hosts.yml the user edited
    (out / "hosts.yml").write_text("# mine\n")
    proc = cli(os.path.join(FIXTURES, ".env.proxy"), "--host", "proxy1", "--out-dir", str(out), cwd=str(tmp_path))
    assert proc.returncode == 0 and "kept" in proc.stdout and (out / "hosts.yml").read_text() == "# mine\n"
    proc = cli(os.path.join(FIXTURES, ".env.proxy"), "--host", "proxy1", "--stdout")
    assert proc.returncode == 0 and "proxy_client_public_ports" in proc.stdout and "UFFSU1RV" not in proc.stdout
    proc = cli(str(tmp_path / "missing"), "--host", "x")
    assert proc.returncode == 2 and "No such file" in proc.stderr


def test_a_second_import_never_replaces_what_the_first_wrote_without_force(tmp_path):
    out = tmp_path / "inv"
    run = ["--host", "share1", "--out-dir", str(out)]
    assert cli(os.path.join(FIXTURES, ".env"), *run, cwd=str(tmp_path)).returncode == 0
    host_vars, secrets = out / "host_vars" / "share1.yml", tmp_path / "secrets" / "share1.keys.yml"
    host_vars.write_text("# edited by hand\n")
    secrets.write_text("$ANSIBLE_VAULT;1.1;AES256\n3131\n")  # encrypted since
    proc = cli(os.path.join(FIXTURES, ".env.share"), *run, cwd=str(tmp_path))
    assert proc.returncode == 2 and "exists" in proc.stderr and "--force" in proc.stderr
    assert host_vars.read_text() == "# edited by hand\n" and secrets.read_text().startswith("$ANSIBLE_VAULT")
    proc = cli(os.path.join(FIXTURES, ".env.share"), *run, "--force", cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert yaml.safe_load(host_vars.read_text()) == EXPECTED[".env.share"][1]
    assert "wgsp_import_private_key" in secrets.read_text()


def test_the_key_file_is_never_written_into_the_inventory(tmp_path):
    proc = cli(os.path.join(FIXTURES, ".env"), "--host", "share1", "--out-dir", "inv", "--secrets-dir", "inv/keys",
               cwd=str(tmp_path))
    assert proc.returncode == 2 and "inside the inventory" in proc.stderr
    assert not (tmp_path / "inv").exists()
