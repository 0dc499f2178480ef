"""The importer reads every option as the original did (its main.go: getEnvBool, getEnvList, the
mode switch), and a migrated host never exposes what the original would not have exposed.

``original_exposure`` below is an independent model of what the original opens, written from its
source: containers of WG_DOCKER_ALLOWED_HOSTS (applied in every mode), host services only with
WG_SHARE_HOST_SERVICES=true in share mode, WG_EXTERNAL_FORWARDING (every mode), and the public ports
of a proxy only with WG_ENABLE_PUBLIC_FORWARDING=true. ``migrated_exposure`` is what the roles open
from the imported variables, role defaults included (the trap: a role default of true)."""

import glob
import os

import pytest
import yaml

from ansible_collections.wgsp.service_proxy.plugins.plugin_utils.env_import import convert, parse_env

from conftest import REPO

FIXTURES = os.path.join(REPO, "tests", "unit", "fixtures", "env")
SHARE = "CLIENT_MODE=share\nWG_ADDRESS=10.7.0.2/32\n"
PROXY = "CLIENT_MODE=proxy\nWG_ADDRESS=10.7.0.3/32\nWG_PUBLIC_PORTS=80:10.7.0.2:80\n"


def _is_true(values, key):
    return values.get(key, "").strip().lower() == "true"


def _split(values, key):
    return [[part.strip() for part in item.split(":")] for item in values.get(key, "").split(",") if item.strip()]


def original_exposure(text):
    values = dict((key, value) for key, value, _n in parse_env(text))
    mode = values.get("CLIENT_MODE", "").strip().lower()
    opened = set()
    for parts in _split(values, "WG_DOCKER_ALLOWED_HOSTS"):
        proto, port = ("tcp", parts[1]) if len(parts) == 2 else (parts[1].lower(), parts[2])
        for one in {"both": ("tcp", "udp"), "all": ("tcp", "udp")}.get(proto, (proto,)):
            opened.add(("container", parts[0], one, int(port)))
    if mode == "share" and _is_true(values, "WG_SHARE_HOST_SERVICES"):
        for parts in _split(values, "WG_HOST_SERVICES"):
            opened.add(("host", parts[0].lower(), int(parts[1]), int(parts[-1])))
    for parts in _split(values, "WG_EXTERNAL_FORWARDING"):
        if len(parts) == 4:
            opened.add(("external", parts[0].lower(), int(parts[1]), parts[2], int(parts[3])))
    if mode == "proxy" and _is_true(values, "WG_ENABLE_PUBLIC_FORWARDING"):
        for parts in _split(values, "WG_PUBLIC_PORTS"):
            if len(parts) == 3:
                opened.add(("public", "tcp", int(parts[0]), parts[1], int(parts[2])))
    return opened


def _role_defaults(role):
    with open(os.path.join(REPO, "roles", role, "defaults", "main.yml")) as handle:
        return yaml.safe_load(handle)


def migrated_exposure(result):
    role = {"share_clients": "share_client", "proxy_clients": "proxy_client"}[result["group"]]
    values = dict(_role_defaults(role), **yaml.safe_load(result["host_vars"]))
    opened = set()
    if role == "share_client":
        for entry in values["share_client_services"]:
            parts = entry.split(":")
            proto, port = ("tcp", parts[1]) if len(parts) == 2 else (parts[1], parts[2])
            for one in {"both": ("tcp", "udp"), "all": ("tcp", "udp")}.get(proto, (proto,)):
                opened.add(("container", parts[0], one, int(port)))
        for entry in values["share_client_host_services"]:
            parts = entry.split(":")
            opened.add(("host", parts[0], int(parts[1]), int(parts[-1])))
        for entry in values["share_client_external_forwards"]:
            parts = entry.split(":")
            opened.add(("external", parts[0], int(parts[1]), parts[2], int(parts[3])))
    elif values["proxy_client_enable_public_forwarding"]:
        for entry in values["proxy_client_public_ports"]:
            parts = entry.split(":")
            opened.add(("public", "tcp", int(parts[0]), parts[1], int(parts[2])))
    return opened


VARIANTS = {
    # booleans: only "true" (any case) is true; anything else is the default
    "forwarding absent": PROXY,
    "forwarding 1": PROXY + "WG_ENABLE_PUBLIC_FORWARDING=1\n",
    "forwarding yes": PROXY + "WG_ENABLE_PUBLIC_FORWARDING=yes\n",
    "forwarding typo": PROXY + "WG_ENABLE_PUBLIC_FORWARDING=ture\n",
    "forwarding empty": PROXY + "WG_ENABLE_PUBLIC_FORWARDING=\n",
    "forwarding TRUE": PROXY + "WG_ENABLE_PUBLIC_FORWARDING=TRUE\n",
    # host services need the switch; WG_DOCKER_FORWARD_TO_HOST is not read
    "host services without switch": SHARE + "WG_HOST_SERVICES=tcp:22\n",
    "host services switch yes": SHARE + "WG_HOST_SERVICES=tcp:22\nWG_SHARE_HOST_SERVICES=yes\n",
    "host services with switch": SHARE + "WG_SHARE_HOST_SERVICES=True\nWG_HOST_SERVICES=TCP:22,udp:53:5353\n",
    "forward to host false": SHARE + "WG_SHARE_HOST_SERVICES=true\nWG_HOST_SERVICES=tcp:22\nWG_DOCKER_FORWARD_TO_HOST=false\n",
    "forward to host only": SHARE + "WG_DOCKER_FORWARD_TO_HOST=true\nWG_HOST_SERVICES=tcp:22\n",
    # what the original accepts
    "upper-case and spaces": SHARE + "WG_DOCKER_ALLOWED_HOSTS=dummy:TCP:80, api : UDP : 53 ,\n",
    "proxy spaces": PROXY.replace("80:10.7.0.2:80", "80: 10.7.0.2 :80") + "WG_ENABLE_PUBLIC_FORWARDING=true\n",
    "quoted with comment": SHARE + 'WG_DOCKER_ALLOWED_HOSTS=dummy:80\nWG_DOCKER_NETWORK="app-network"  # comment\n',
    "share services in a proxy": PROXY + "WG_DOCKER_ALLOWED_HOSTS=dummy:80\nWG_EXTERNAL_FORWARDING=tcp:81:192.0.2.5:80\n",
}


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_a_variant_exposes_nothing_the_original_would_not(name):
    result = convert(VARIANTS[name], "h")
    assert migrated_exposure(result) <= original_exposure(VARIANTS[name])


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(FIXTURES, "*", ".env*")) +
                                        glob.glob(os.path.join(FIXTURES, ".env*"))))
def test_each_fixture_exposes_exactly_what_the_original_did_or_less(path):
    with open(path) as handle:
        text = handle.read()
    result = convert(text, "h")
    migrated, original = migrated_exposure(result), original_exposure(text)
    assert migrated <= original
    if result["group"] == "share_clients":  # a share keeps every service it shared
        assert migrated == original


@pytest.mark.parametrize("value, expected", [
    (None, False), ("1", False), ("yes", False), ("ture", False), ("", False), ("true", True), ("TRUE", True),
    ("false", False)])
def test_public_forwarding_is_written_with_the_original_meaning(value, expected):
    text = PROXY + ("" if value is None else "WG_ENABLE_PUBLIC_FORWARDING=%s\n" % value)
    result = convert(text, "h")
    assert yaml.safe_load(result["host_vars"])["proxy_client_enable_public_forwarding"] is expected
    if value not in ("true", "TRUE", "false"):
        assert "the original reads it as its default, false" in dict(result["notes"])["WG_ENABLE_PUBLIC_FORWARDING"]


def test_host_services_follow_the_switch_not_forward_to_host():
    off = convert(SHARE + "WG_HOST_SERVICES=tcp:22\nWG_DOCKER_FORWARD_TO_HOST=true\n", "h")
    assert "share_client_host_services" not in off["mapped"]
    assert "WG_SHARE_HOST_SERVICES=true" in dict(off["unmapped"])["WG_HOST_SERVICES"]
    assert "not read by the original" in dict(off["unmapped"])["WG_DOCKER_FORWARD_TO_HOST"]
    on = convert(SHARE + "WG_DOCKER_FORWARD_TO_HOST=false\nWG_HOST_SERVICES=TCP:22\nWG_SHARE_HOST_SERVICES=true\n", "h")
    assert on["mapped"]["share_client_host_services"] == ["tcp:22"]


def test_access_log_is_a_proxy_option():
    proxy = convert(PROXY + "WG_LOG_ACCESS=true\n", "h")
    assert proxy["mapped"]["proxy_client_log_access"] is True
    for typed in ("1", "yes", "TRUEE", ""):  # only `true` is true in the original
        assert convert(PROXY + "WG_LOG_ACCESS=%s\n" % typed, "h")["mapped"]["proxy_client_log_access"] is False
    assert "WG_LOG_ACCESS" not in dict(proxy["unmapped"])
    share = convert(SHARE + "WG_LOG_ACCESS=true\n", "h")
    assert "share_client_log_access" not in share["mapped"]
    assert "not read in share mode" in dict(share["unmapped"])["WG_LOG_ACCESS"]


def test_tunnel_input_policy_applies_in_every_mode():
    text = PROXY + "WG_ALLOWED_TCP_PORTS=22, 80\nWG_ALLOWED_UDP_PORTS=51820\nWG_ALLOW_ICMP=true\n"
    mapped = convert(text, "h")["mapped"]
    assert (mapped["proxy_client_allowed_tcp_ports"], mapped["proxy_client_allowed_udp_ports"],
            mapped["proxy_client_allow_icmp"]) == ([22, 80], [51820], True)
    assert convert(SHARE + "WG_ALLOW_ICMP=yes\n", "h")["mapped"]["share_client_allow_icmp"] is False


def test_values_the_original_accepts():
    text = ("CLIENT_MODE=Proxy\nWG_ADDRESS=10.7.0.3/32\nWG_INTERFACE_NAME=\nWG_MTU=\nWG_PERSISTENT_KEEPALIVE=\n"
            "ACCESS_SERVICES=10.7.0.2:80:TCP, 10.7.0.2 : 53 : udp,10.7.0.4:8080\nWG_PUBLIC_INTERFACE=ens3\n")
    result = convert(text, "h")
    mapped = result["mapped"]
    assert result["group"] == "proxy_clients"
    assert mapped["proxy_client_access_services"] == ["10.7.0.2:80", "udp:10.7.0.2:53", "10.7.0.4:8080"]
    assert mapped["proxy_client_public_interface"] == "ens3"
    for key in ("interface", "mtu", "persistent_keepalive"):
        assert "proxy_client_" + key not in mapped  # empty = the default, as in the original
    why = dict(result["unmapped"])
    assert "empty" in why["WG_MTU"] and "wg0" in why["WG_INTERFACE_NAME"]


def test_placeholders_and_api_options_are_explained_not_fatal():
    text = PROXY + ("WG_PRIVATE_KEY=paste_your_private_key_here\nWG_PRESHARED_KEY=\nSERVER_PORT=8080\n"
                    "AUTO_CONNECT=true\nCONFIG_PATH=/etc/wireguard\nENV_FILE_PATH=.env.proxy\nDEBUG=true\n"
                    "WG_PUBLIC_NETWORK=public-network\n")
    result = convert(text, "h")
    why = dict(result["unmapped"])
    assert result["secrets"] is None and "paste_your_private_key_here" not in result["host_vars"]
    assert "placeholder" in why["WG_PRIVATE_KEY"] and "empty" in why["WG_PRESHARED_KEY"]
    for key in ("SERVER_PORT", "AUTO_CONNECT", "CONFIG_PATH", "ENV_FILE_PATH", "DEBUG"):
        assert "API server" in why[key]
    assert "not read by the original" in why["WG_PUBLIC_NETWORK"]
    assert "proxy_client_public_interface" not in result["mapped"]
    assert "unknown option" not in result["host_vars"]


def test_a_quoted_value_followed_by_a_comment_loses_its_quotes():
    entries = parse_env('A="app-network"  # where dummy runs\nB=\'x # y\' # c\nC="say \\"hi\\""\nD=plain # c\n')
    assert [(key, value) for key, value, _n in entries] == [
        ("A", "app-network"), ("B", "x # y"), ("C", 'say "hi"'), ("D", "plain")]
