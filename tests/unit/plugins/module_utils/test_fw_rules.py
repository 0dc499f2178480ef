"""Parsing both syntaxes, validation (one case per bad input) and Docker resolution of wg_dnat rules."""

import pytest

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import ValidationError, WgspError
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.containers import DockerResolver
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.rules import (
    check_set_name,
    listen_ports_from_wg,
    normalise,
    parse_compact,
)

COMPACT = [
    ("dummy:tcp:80", {"proto": "tcp", "to_container": "dummy", "port": "80"}),
    ("dummy:80", {"proto": "tcp", "to_container": "dummy", "port": "80"}),
    ("dns:udp:53", {"proto": "udp", "to_container": "dns", "port": "53"}),
    ("web:both:8080", {"proto": "both", "to_container": "web", "port": "8080"}),
    ("web:ALL:8080", {"proto": "all", "to_container": "web", "port": "8080"}),
    ("80:10.7.0.2:80", {"proto": "tcp", "port": "80", "to_address": "10.7.0.2", "to_port": "80"}),
    ("udp:53:10.7.0.2:5353", {"proto": "udp", "port": "53", "to_address": "10.7.0.2", "to_port": "5353"}),
    ("8000-8010:10.7.0.2:8000-8010", {"proto": "tcp", "port": "8000-8010", "to_address": "10.7.0.2", "to_port": "8000-8010"}),
    ("443:[fd00:7::2]:8443", {"proto": "tcp", "port": "443", "to_address": "fd00:7::2", "to_port": "8443"}),
    ("both:443:[fd00:7::2]:443", {"proto": "both", "port": "443", "to_address": "fd00:7::2", "to_port": "443"}),
]


@pytest.mark.parametrize("text,expected", COMPACT)
def test_parse_compact(text, expected):
    assert parse_compact("compact_rules[0]", text) == expected


@pytest.mark.parametrize("text", ["", "80", "a:b:c:d:e", "80:10.7.0.2", "443:[fd00::2:80", "a b:80"])
def test_parse_compact_rejects(text):
    with pytest.raises(ValidationError) as err:
        parse_compact("compact_rules[3]", text)
    assert err.value.field == "compact_rules[3]"


def rule(**kw):
    base = {"port": 80, "to_address": "10.7.0.2"}
    base.update(kw)
    return base


BAD = [
    ("port 0", rule(port=0), "rules[0].port"),
    ("port 65536", rule(port=65536), "rules[0].port"),
    ("reversed range", rule(port="90-80"), "rules[0].port"),
    ("proto icmpx", rule(proto="icmpx"), "rules[0].proto"),
    ("bad address", rule(to_address="10.7.0.300"), "rules[0].to_address"),
    ("bad cidr", rule(sources=["203.0.113.0/33"]), "rules[0].sources[0]"),
    ("long ifname", rule(in_interface="a" * 16), "rules[0].in_interface"),
    ("newline ifname", rule(in_interface="eth0\n-A INPUT"), "rules[0].in_interface"),
    ("semicolon ifname", rule(out_interface="wg0;reboot"), "rules[0].out_interface"),
    ("space ifname", rule(in_interface="eth 0"), "rules[0].in_interface"),
    ("subshell ifname", rule(in_interface="$(id)"), "rules[0].in_interface"),
    ("newline port", rule(port="80\n"), "rules[0].port"),
    ("subshell container", {"port": 80, "to_container": "$(id)"}, "rules[0].to_container"),
    ("semicolon address", rule(to_address="10.7.0.2;"), "rules[0].to_address"),
    ("newline source", rule(sources=["10.0.0.0/8\n-j ACCEPT"]), "rules[0].sources[0]"),
    ("range to a range of another length", rule(port="80-81", to_port="90-92"), "rules[0].to_port"),
    ("range to one port", rule(port="80-81", to_port=90), "rules[0].to_port"),
    ("both targets", {"port": 80, "to_address": "10.7.0.2", "to_container": "x"}, "rules[0]"),
    ("mixed family source", rule(sources=["2001:db8::/32"]), "rules[0].sources[0]"),
    ("listen port", rule(proto="udp", port="51000-52000"), "rules[0].port"),
]


@pytest.mark.parametrize("case,raw,field", BAD, ids=[c[0] for c in BAD])
def test_bad_input_names_the_field(case, raw, field):
    with pytest.raises(ValidationError) as err:
        normalise([raw], listen_ports={"wg0": 51820})
    assert err.value.field == field, err.value.msg
    assert err.value.msg.startswith(field)


def test_protect_ports_option_and_tcp_not_affected():
    with pytest.raises(ValidationError) as err:
        normalise([rule(proto="both", port=4500)], protect_ports=[4500])
    assert "protect_ports" in err.value.msg
    assert normalise([rule(proto="tcp", port=51820)], listen_ports={"wg0": 51820})


def test_bad_set_name():
    for bad in ("Public", "a-b", "x" * 13, "a;b", ""):
        with pytest.raises(ValidationError) as err:
            check_set_name(bad)
        assert err.value.field == "name"


def test_defaults_apply_and_rule_overrides():
    rules = normalise(
        [rule(), rule(port=81, masquerade=False, sources=["198.51.100.7"], in_interface="eth1")],
        ["udp:53:10.7.0.9:5353"],
        defaults={"in_interface": "eth0", "out_interface": "wg0", "masquerade": True,
                  "sources": ["203.0.113.0/24"], "log": True})
    first, second, third = [r.to_dict() for r in rules]
    assert first["in_interface"] == "eth0" and first["masquerade"] and first["sources"] == ["203.0.113.0/24"]
    assert second["in_interface"] == "eth1" and not second["masquerade"] and second["sources"] == ["198.51.100.7/32"]
    assert third["proto"] == "udp" and third["port"] == 53 and third["to_port"] == 5353 and third["log"]


def test_conflicting_rules_and_duplicates():
    assert len(normalise([rule(), rule()])) == 1
    with pytest.raises(ValidationError) as err:
        normalise([rule(port="80-90"), rule(port=85, to_address="10.7.0.3")])
    assert err.value.field == "rules[1]"
    # different protocol or interface: no conflict
    assert len(normalise([rule(), rule(proto="udp", to_address="10.7.0.3")])) == 2


def test_ipv6_rule():
    (r,) = normalise([rule(to_address="FD00:7::2", sources=["2001:db8::/32"])])
    assert r.family == 6 and r.to_address == "fd00:7::2"


class FakeContainer:
    def __init__(self, name, networks):
        self.name = name
        self.attrs = {"NetworkSettings": {"Networks": networks}}


class FakeContainers:
    def __init__(self, containers):
        self.containers = dict((c.name, c) for c in containers)

    def get(self, name):
        if name not in self.containers:
            raise LookupError(name)
        return self.containers[name]

    def list(self, all=False):
        return list(self.containers.values())


class FakeClient:
    def __init__(self, *containers):
        self.containers = FakeContainers(containers)


def no_dns(*args):
    raise OSError("no dns")


def test_docker_resolution():
    client = FakeClient(FakeContainer("dummy", {"svc": {"IPAddress": "172.30.0.5"}}),
                        FakeContainer("multi", {"a": {"IPAddress": "172.31.0.2"}, "b": {"IPAddress": "172.32.0.2"}}))
    resolver = DockerResolver(client, not_found=(LookupError,), getaddrinfo=no_dns)
    rules = normalise(compact_rules=["dummy:tcp:80"], defaults={"in_interface": "wg0"}, resolver=resolver)
    assert rules[0].to_dict()["to_address"] == "172.30.0.5"
    assert rules[0].to_dict()["to_container"] == "dummy" and rules[0].to_dict()["docker_network"] == "svc"
    with pytest.raises(WgspError) as err:
        resolver("nosuch")
    assert "existing containers: dummy, multi" in err.value.msg
    with pytest.raises(WgspError) as err:
        resolver("multi")
    assert "docker_network" in err.value.msg
    assert DockerResolver(client, network="b", not_found=(LookupError,))("multi") == ("172.32.0.2", "b")
    with pytest.raises(WgspError):
        DockerResolver(client, network="zzz", not_found=(LookupError,))("dummy")


def test_docker_dns_fallback():
    resolver = DockerResolver(FakeClient(), not_found=(LookupError,),
                              getaddrinfo=lambda *a: [(2, 1, 6, "", ("10.9.9.9", 0))])
    assert resolver("elsewhere") == ("10.9.9.9", None)


def test_resolver_not_called_when_validation_fails():
    calls = []
    with pytest.raises(ValidationError):
        normalise([{"port": 80, "to_container": "dummy"}, rule(port=0)], resolver=calls.append)
    assert calls == []


class Runner:
    def __init__(self, rc, out):
        self.rc, self.out = rc, out

    def run(self, argv, data=None, check=True):
        return self.rc, self.out, ""


def test_listen_ports_from_wg():
    assert listen_ports_from_wg(Runner(0, "wg0\t51820\nwg1\t0\n")) == {"wg0": 51820}
    assert listen_ports_from_wg(Runner(1, "")) == {}
