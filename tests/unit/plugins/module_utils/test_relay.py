"""The cross-family relay (wg_relay): the real program relays TCP and UDP from IPv6 to IPv4 on
loopback, refuses sources outside its networks, and the plan/apply/status that wg_relay,
wg_rule_sets and wg_status share write, start, keep, restart and remove it as declared."""

import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from ansible_collections.wgsp.service_proxy.plugins.module_utils._common.errors import ValidationError, WgspError
from ansible_collections.wgsp.service_proxy.plugins.module_utils._relay import daemon
from ansible_collections.wgsp.service_proxy.plugins.module_utils._relay.manage import (
    RELAY_ARGUMENT_SPEC,
    Plan,
    apply,
    boot_commands,
    status,
)
from ansible_collections.wgsp.service_proxy.plugins.module_utils._firewall.params import module_params

pytestmark = pytest.mark.skipif(not socket.has_ipv6, reason="no IPv6 on this machine")


def free_port(kind=socket.SOCK_STREAM, family=socket.AF_INET6, host="::1"):
    with socket.socket(family, kind) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class Echo(object):
    """A TCP and a UDP echo server on 127.0.0.1 (the IPv4 target), prefixing what they echo."""

    def __init__(self):
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.tcp.bind(("127.0.0.1", 0))
        self.tcp.listen(8)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", self.tcp.getsockname()[1]))
        self.port = self.tcp.getsockname()[1]
        self.peers = []
        self.stopped = False
        for target in (self._tcp, self._udp):
            threading.Thread(target=target, daemon=True).start()

    def _tcp(self):
        while not self.stopped:
            try:
                conn, peer = self.tcp.accept()
            except OSError:
                return
            self.peers.append(peer[0])
            with conn:
                data = conn.recv(1024)
                conn.sendall(b"tcp:" + data)

    def _udp(self):
        while not self.stopped:
            try:
                data, peer = self.udp.recvfrom(1024)
            except OSError:
                return
            self.peers.append(peer[0])
            self.udp.sendto(b"udp:" + data, peer)

    def close(self):
        self.stopped = True
        self.tcp.close()
        self.udp.close()


@pytest.fixture
def echo():
    server = Echo()
    yield server
    server.close()


def params(tmp_path, port, to_port, **extra):
    relay = {"proto": "both", "port": port, "to_address": "127.0.0.1", "to_port": to_port}
    raw = dict(name="relay", interface="lo", relays=[relay],
               path=str(tmp_path / "wg0-relay.json"), pidfile=str(tmp_path / "relay.pid"))
    raw.update(extra)
    return module_params("wg_relay", raw)


def run_command(argv):
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    return proc.returncode, proc.stdout, proc.stderr


@pytest.fixture
def cleanup():
    plans = []
    yield plans.append
    for plan in plans:
        daemon.stop(plan.pidfile, plan.program, plan.path)


def ask_tcp(port, text=b"hello", host="::1"):
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(text)
        return sock.recv(1024)


def ask_udp(port, text=b"hello", host="::1", timeout=3):
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(text, (host, port))
        try:
            return sock.recv(1024)
        except socket.timeout:
            return None


def test_ipv6_is_relayed_to_the_ipv4_target_then_the_set_is_left_alone(tmp_path, echo, cleanup):
    port = free_port()
    plan = Plan(params(tmp_path, port, echo.port))
    cleanup(plan)
    first = apply(plan, run_command, sys.executable, want_diff=True)
    assert first["changes"] == ["wrote config", "wrote program", "started"] and first["running"] and first["pid"]
    assert first["listening"] == ["both [::]:%d -> 127.0.0.1:%d" % (port, echo.port)]
    assert [d["after_header"] for d in first["diff"]] == [plan.path, plan.program]
    assert oct(os.stat(plan.path).st_mode & 0o777) == "0o644"
    assert ask_tcp(port) == b"tcp:hello" and ask_udp(port) == b"udp:hello"
    assert set(echo.peers) == {"127.0.0.1"}  # from this host's own IPv4 address, as a masquerade
    # the relay listens on IPv6 only: the IPv4 side of the port is not taken
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as v4:
        v4.bind(("127.0.0.1", port))
    again = apply(plan, run_command, sys.executable)
    assert again["changes"] == [] and not again["changed"] and again["pid"] == first["pid"]
    assert status(params(tmp_path, port, echo.port))["in_sync"] is True


def test_a_source_outside_the_networks_is_refused(tmp_path, echo, cleanup):
    port = free_port()
    plan = Plan(params(tmp_path, port, echo.port, sources=["2001:db8::/32"]))
    cleanup(plan)
    apply(plan, run_command, sys.executable)
    with socket.create_connection(("::1", port), timeout=5) as sock:
        try:
            sock.sendall(b"hello")
            answer = sock.recv(1024)
        except ConnectionResetError:  # closed with our bytes unread: a reset
            answer = b""
        assert answer == b""  # closed at once, never relayed
    assert ask_udp(port, timeout=1) is None
    assert echo.peers == []


def test_a_port_range_is_relayed_port_by_port(tmp_path, echo, cleanup):
    low = free_port()
    plan = Plan(params(tmp_path, "%d-%d" % (low, low + 1), "%d-%d" % (echo.port - 1, echo.port)))
    cleanup(plan)
    apply(plan, run_command, sys.executable)
    assert ask_tcp(low + 1) == b"tcp:hello"  # low+1 -> echo.port


def test_a_changed_set_restarts_check_mode_writes_nothing_and_absent_removes_everything(tmp_path, echo, cleanup):
    port, other = free_port(), free_port()
    plan = Plan(params(tmp_path, port, echo.port))
    cleanup(plan)
    first = apply(plan, run_command, sys.executable)
    changed = Plan(params(tmp_path, other, echo.port))
    cleanup(changed)
    check = apply(changed, run_command, sys.executable, check_mode=True)
    assert check["changes"] == ["wrote config", "restarted"] and daemon.pid_of(plan.pidfile, plan.program, plan.path) == first["pid"]
    assert ask_tcp(port) == b"tcp:hello"
    done = apply(changed, run_command, sys.executable)
    assert done["changes"] == ["wrote config", "restarted"] and done["pid"] != first["pid"]
    assert ask_tcp(other) == b"tcp:hello"
    with pytest.raises(OSError):
        ask_tcp(port)
    gone = apply(Plan(dict(params(tmp_path, other, echo.port), state="absent")), run_command, sys.executable)
    assert gone["changes"] == ["stopped", "removed config", "removed program"] and not gone["running"]
    assert not os.path.exists(plan.path) and not os.path.exists(plan.program) and not os.path.exists(plan.pidfile)
    assert apply(Plan(dict(params(tmp_path, other, echo.port), state="absent")), run_command, sys.executable)["changes"] == []


def test_status_reports_a_relay_that_died_and_apply_starts_it_again(tmp_path, echo, cleanup):
    port = free_port()
    plan = Plan(params(tmp_path, port, echo.port))
    cleanup(plan)
    pid = apply(plan, run_command, sys.executable)["pid"]
    os.kill(pid, signal.SIGKILL)
    for _attempt in range(100):
        if daemon.pid_of(plan.pidfile, plan.program, plan.path) is None:
            break
        time.sleep(0.05)
    report = status(params(tmp_path, port, echo.port))
    assert report["in_sync"] is False and report["drift"] == {"process": "not running"} and report["installed"] == []
    assert apply(plan, run_command, sys.executable)["changes"] == ["started"]
    assert ask_tcp(port) == b"tcp:hello"


def test_a_port_already_taken_fails_naming_it(tmp_path, echo, cleanup):
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as taken:
        taken.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        taken.bind(("::", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        plan = Plan(params(tmp_path, port, echo.port, interface=None))
        cleanup(plan)
        with pytest.raises(WgspError, match=r"relay set relay did not start: .*cannot listen on IPv6/tcp port %d" % port):
            apply(plan, run_command, sys.executable)


def test_boot_commands_start_and_stop_the_same_process(tmp_path):
    plan = Plan(params(tmp_path, 80, 80))
    post_up, pre_down = boot_commands(plan)
    assert post_up == "python3 %s --config %s --pidfile %s --daemon || true" % (plan.program, plan.path, plan.pidfile)
    assert pre_down.endswith(" --stop") and plan.program.endswith("/wg0-relay.py")


@pytest.mark.parametrize("change, field, message", [
    ({"relays": [{"port": 80, "to_address": "fd07:7::2"}]}, "relays[0].to_address", "IPv6 like the relay's listening side"),
    ({"relays": [{"port": "80-81", "to_address": "10.7.0.2"}, {"proto": "tcp", "port": 81, "to_address": "10.7.0.3"}]},
     "relays[1].port", "tcp/81 is already relayed by relays[0]"),
    ({"relays": [{"port": 80, "to_address": "10.7.0.2", "to_port": "80-81"}]}, "relays[0].to_port", ""),
    ({"relays": [{"port": 80, "to_address": "127.0.0.1\n"}]}, "relays[0].to_address", ""),
    ({"sources": ["192.0.2.0/24"]}, "sources[0]", "is IPv4, but the relay listens on IPv6"),
    ({"interface": "eth+"}, "interface", ""),
    ({"name": "Relay-1"}, "name", ""),
    ({"path": "/etc/wg-service-proxy/wg0-relay.conf"}, "path", "ending in .json"),
    ({"path": "/etc/wg service/x.json"}, "path", ""),
    ({"relays": [{"proto": "both", "port": "1-4000", "to_address": "10.7.0.2"}]}, "relays", "at most 4096"),
])
def test_bad_values_are_refused_naming_the_field(tmp_path, change, field, message):
    raw = dict(name="relay", relays=[], path=str(tmp_path / "r.json"))
    raw.update(change)
    with pytest.raises(ValidationError) as err:
        Plan(module_params("wg_relay", raw))
    assert err.value.field == field and message in err.value.msg


def test_the_module_spec_is_the_shared_one():
    assert RELAY_ARGUMENT_SPEC["listen_family"]["default"] == "ipv6"
    assert module_params("wg_relay", {"name": "relay", "path": "/x.json"})["state"] == "present"
