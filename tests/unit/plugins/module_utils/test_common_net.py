"""The one ``host:port`` reading (``_common.net.split_host_port``) and everything that reads through it:
endpoints typed by a user, endpoints a device reports, DNAT targets iptables-save and nft print,
the hub endpoint a status compares, a target the filters resolve."""

import pytest

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common import net
from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import ValidationError
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.state import split_dnat_target
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard import genl_codec
from ansible_collections.wgsp.service_proxy.plugins.module_utils._wireguard.params import normalize_device_endpoint


@pytest.mark.parametrize("text,expected", [
    ("[fd00::1]:51820", ("fd00::1", "51820")),
    (" [fd00::1] ", ("fd00::1", None)),
    ("[fd00::1]:80-90", ("fd00::1", "80-90")),
    ("10.7.0.2:80", ("10.7.0.2", "80")),
    ("10.7.0.2:80-90", ("10.7.0.2", "80-90")),
    ("hub.example.net:51820", ("hub.example.net", "51820")),
    ("share1:web", ("share1", "web")),
    ("10.7.0.2", ("10.7.0.2", None)),
    ("fd00::2", ("fd00::2", None)),  # an unbracketed IPv6 address never carries a port
    ("fd00::2:80", ("fd00::2:80", None)),
    ("", ("", None)),
    (None, ("", None)),
])
def test_split_host_port(text, expected):
    assert net.split_host_port(text) == expected


@pytest.mark.parametrize("text", ["[fd00::1", "[fd00::1]80", "[fd00::1]x:80"])
def test_split_host_port_refuses_broken_brackets(text):
    with pytest.raises(ValueError):
        net.split_host_port(text)


@pytest.mark.parametrize("host,port", [("fd00::1", 51820), ("203.0.113.5", 1), ("hub.example.net", 65535)])
def test_join_is_the_inverse_of_split(host, port):
    assert net.split_host_port(net.join_host_port(host, port)) == (host, str(port))


@pytest.mark.parametrize("value", ["[fd00::1", "[fd00::1]51820", "fd00::1:51820", ":51820", "host:", "host",
                                   "[]:51820", "host:port", "[fd00::1]:", "[203.0.113.5]:51820"])
def test_check_endpoint_refuses_what_is_not_host_port(value):
    with pytest.raises(ValidationError) as info:
        net.check_endpoint("endpoint", value)
    assert info.value.field == "endpoint"


def test_device_endpoints_read_the_same_way():
    assert normalize_device_endpoint("[fd00:0::1]:51820") == "[fd00::1]:51820"
    assert normalize_device_endpoint("203.0.113.5:51820") == "203.0.113.5:51820"
    assert normalize_device_endpoint("[fe80::1%eth0]:51820") == "[fe80::1]:51820"
    assert normalize_device_endpoint("garbage") == "garbage"
    for text in ("[fd00::1]:51820", "203.0.113.5:51820"):
        assert genl_codec.decode_endpoint(genl_codec.encode_endpoint(text)) == text
    with pytest.raises(genl_codec.NetlinkError):
        genl_codec.encode_endpoint("fd00::1:51820")


@pytest.mark.parametrize("dest,expected", [
    ("10.7.0.2:8080", ("10.7.0.2", (8080, 8080))),
    ("10.7.0.2:80-90", ("10.7.0.2", (80, 90))),
    ("10.7.0.2", ("10.7.0.2", (80, 80))),
    ("[fd00::2]:8080", ("fd00::2", (8080, 8080))),
    ("fd00::2", ("fd00::2", (80, 80))),
])
def test_dnat_targets_as_the_firewall_prints_them(dest, expected):
    assert split_dnat_target(dest, (80, 80)) == expected
