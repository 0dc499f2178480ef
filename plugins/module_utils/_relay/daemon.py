# -*- coding: utf-8 -*-
# Copyright: wgsp.service_proxy contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cross-family relay: ports published on IPv6 whose target is an IPv4 address (or the other
way round), which netfilter cannot NAT (DNAT keeps the address family).

One process per relay set listens on every port of its config on the unspecified address of the
listening family only (``IPV6_V6ONLY``), bound to the public interface (``SO_BINDTODEVICE``), and
relays each TCP connection and each UDP peer to the target, from this host's own address (as the
masquerading publish does). Sources outside the config's ``sources`` networks are refused (a TCP
connection is closed at once, a datagram dropped).

This file is the whole program: ``wg_relay`` writes its source to the host and runs it with the
host's ``python3``; it imports only the standard library. Usage::

    python3 RELAY --config CONFIG --pidfile PIDFILE [--daemon]   # run (detached with --daemon)
    python3 RELAY --config CONFIG --pidfile PIDFILE --stop       # end the one running this config

``--daemon`` returns once every port is bound and the pid file written (exit 0), or with the bind
error (exit 1), so a caller (wg_relay, wg-quick's PostUp at boot) sees a failure.

Internal to the collection.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import argparse
import asyncio
import ipaddress
import json
import os
import signal
import socket
import sys
import time

CONNECT_TIMEOUT = 10  # s: a TCP target that does not answer
UDP_IDLE = 120  # s: a UDP peer silent this long loses its upstream socket
UDP_SWEEP = 15  # s
UDP_MAX_PEERS = 4096  # per port: a flood of source addresses cannot exhaust the host's sockets
CHUNK = 65536
SO_BINDTODEVICE = getattr(socket, "SO_BINDTODEVICE", 25)


class ConfigError(Exception):
    pass


def _ports(value):
    text = str(value)
    low, _sep, high = text.partition("-")
    low = int(low)
    return low, int(high) if high else low


def endpoints(config):
    """``[(proto, port, to_address, to_port)]``: each port of each relay, each protocol."""
    out = []
    for relay in config.get("relays") or []:
        protos = ["tcp", "udp"] if relay["proto"] == "both" else [relay["proto"]]
        low, high = _ports(relay["port"])
        to_low, _to_high = _ports(relay.get("to_port") or relay["port"])
        for proto in protos:
            for offset in range(high - low + 1):
                out.append((proto, low + offset, relay["to_address"], to_low + offset))
    return out


def load(path):
    """The config file (JSON written by wg_relay)."""
    try:
        with open(path) as handle:
            config = json.load(handle)
    except (IOError, OSError, ValueError) as exc:
        raise ConfigError("cannot read the relay config %s: %s" % (path, exc))
    if not isinstance(config, dict) or not isinstance(config.get("relays"), list):
        raise ConfigError("the relay config %s has no relays list" % path)
    return config


def listen_family(config):
    return socket.AF_INET if config.get("listen_family") == "ipv4" else socket.AF_INET6


def bind_all(config):
    """Every listening socket of the config, bound (a port already taken raises OSError naming it)."""
    family = listen_family(config)
    any_address = "0.0.0.0" if family == socket.AF_INET else "::"
    interface = config.get("interface")
    out = []
    try:
        for proto, port, to_address, to_port in endpoints(config):
            sock = socket.socket(family, socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM)
            out.append(((proto, port, to_address, to_port), sock))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if interface:
                sock.setsockopt(socket.SOL_SOCKET, SO_BINDTODEVICE, interface.encode("ascii"))
            try:
                sock.bind((any_address, port))
            except OSError as exc:
                raise OSError(exc.errno, "cannot listen on %s/%s port %d: %s" % (
                    "IPv4" if family == socket.AF_INET else "IPv6", proto, port, exc.strerror))
            if proto == "tcp":
                sock.listen(128)
            sock.setblocking(False)
    except BaseException:
        for _endpoint, sock in out:
            sock.close()
        raise
    return out


def allowed_by(config):
    """``allowed(address) -> bool`` from the config's ``sources`` (none: every source)."""
    networks = [ipaddress.ip_network(n) for n in config.get("sources") or []]
    if not networks:
        return lambda address: True

    def allowed(address):
        try:
            ip = ipaddress.ip_address(str(address).split("%", 1)[0])
        except ValueError:
            return False
        return any(ip.version == n.version and ip in n for n in networks)
    return allowed


async def _pipe(reader, writer):
    try:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        try:
            if writer.can_write_eof():
                writer.write_eof()
        except (OSError, RuntimeError):
            pass


def tcp_handler(to_address, to_port, allowed):
    async def handle(reader, writer):
        peer = writer.get_extra_info("peername") or ("",)
        if not allowed(peer[0]):
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(to_address, to_port), CONNECT_TIMEOUT)
        except (OSError, asyncio.TimeoutError):
            writer.close()
            return
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()
            writer.close()
    return handle


class UdpRelay(asyncio.DatagramProtocol):
    """One listening UDP port: a connected upstream socket per peer, its replies sent back to it."""

    def __init__(self, loop, to_address, to_port, allowed):
        self.loop = loop
        self.target = (to_address, to_port)
        self.family = socket.AF_INET6 if ":" in to_address else socket.AF_INET
        self.allowed = allowed
        self.peers = {}  # peer address -> [upstream socket, last use]
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        self.loop.call_later(UDP_SWEEP, self.sweep)

    def datagram_received(self, data, addr):
        if not self.allowed(addr[0]):
            return
        entry = self.peers.get(addr)
        if entry is None:
            if len(self.peers) >= UDP_MAX_PEERS:
                return
            upstream = socket.socket(self.family, socket.SOCK_DGRAM)
            try:
                upstream.setblocking(False)
                upstream.connect(self.target)
            except OSError:
                upstream.close()
                return
            entry = self.peers[addr] = [upstream, 0]
            self.loop.add_reader(upstream.fileno(), self.reply, addr, upstream)
        entry[1] = time.monotonic()
        try:
            entry[0].send(data)
        except OSError:
            pass

    def reply(self, addr, upstream):
        try:
            data = upstream.recv(CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:  # e.g. the target's ICMP port unreachable: wait for the next datagram
            return
        entry = self.peers.get(addr)
        if entry is not None:
            entry[1] = time.monotonic()
        if self.transport is not None:
            self.transport.sendto(data, addr)

    def drop(self, addr):
        upstream, _last = self.peers.pop(addr)
        self.loop.remove_reader(upstream.fileno())
        upstream.close()

    def sweep(self):
        now = time.monotonic()
        for addr in [a for a, (_s, last) in self.peers.items() if now - last > UDP_IDLE]:
            self.drop(addr)
        if self.transport is not None and not self.transport.is_closing():
            self.loop.call_later(UDP_SWEEP, self.sweep)

    def connection_lost(self, exc):
        for addr in list(self.peers):
            self.drop(addr)
        self.transport = None


async def serve(config, bound, stopping):
    """Relay on every bound socket until ``stopping`` is set."""
    loop = asyncio.get_running_loop()
    allowed = allowed_by(config)
    servers, transports = [], []
    for (proto, _port, to_address, to_port), sock in bound:
        if proto == "tcp":
            servers.append(await asyncio.start_server(tcp_handler(to_address, to_port, allowed), sock=sock))
        else:
            transport, _protocol = await loop.create_datagram_endpoint(
                lambda to_address=to_address, to_port=to_port: UdpRelay(loop, to_address, to_port, allowed), sock=sock)
            transports.append(transport)
    await stopping.wait()
    for server in servers:
        server.close()
    for transport in transports:
        transport.close()


def pid_of(pidfile, program, config_path):
    """The pid in ``pidfile`` when that process runs ``program`` with ``config_path``; else None (no
    file, a stale one, or a pid now reused by something else)."""
    try:
        with open(pidfile) as handle:
            pid = int(handle.read().strip() or 0)
        with open("/proc/%d/cmdline" % pid, "rb") as handle:
            argv = [a.decode("utf-8", "replace") for a in handle.read().split(b"\0") if a]
    except (IOError, OSError, ValueError):
        return None
    if pid <= 0 or os.path.abspath(program) not in [os.path.abspath(a) for a in argv] or config_path not in argv:
        return None
    return pid


def stop(pidfile, program, config_path, wait=5.0):
    """End the relay running ``config_path`` (SIGTERM, then SIGKILL after ``wait`` s); remove the pid
    file. Returns the pid ended, or None when none ran."""
    pid = pid_of(pidfile, program, config_path)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and pid_of(pidfile, program, config_path) == pid and _alive(pid):
            time.sleep(0.05)
        if _alive(pid) and pid_of(pidfile, program, config_path) == pid:
            os.kill(pid, signal.SIGKILL)
    try:
        os.unlink(pidfile)
    except OSError:
        pass
    return pid


def _alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().split(") ", 1)[-1][:1] not in ("Z", "X")
    except (IOError, OSError):
        return False


def _write_pidfile(pidfile):
    tmp = "%s.%d.tmp" % (pidfile, os.getpid())
    with open(tmp, "w") as handle:
        handle.write("%d\n" % os.getpid())
    os.rename(tmp, pidfile)


def _detach():
    """Fork; the parent waits until the child has written its pid file, then exits 0."""
    read_end, write_end = os.pipe()
    if os.fork() > 0:
        os.close(write_end)
        with os.fdopen(read_end) as pipe:
            ok = pipe.read() == "ready"
        os._exit(0 if ok else 1)
    os.close(read_end)
    os.setsid()
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)
    return write_end


def run(args):
    config = load(args.config)
    bound = bind_all(config)
    ready = _detach() if args.daemon else None
    _write_pidfile(args.pidfile)
    if ready is not None:
        os.write(ready, b"ready")
        os.close(ready)
    loop = asyncio.new_event_loop()
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    try:
        loop.run_until_complete(serve(config, bound, stopping))
    finally:
        loop.close()
        if pid_of(args.pidfile, sys.argv[0], args.config) in (os.getpid(), None):
            try:
                os.unlink(args.pidfile)
            except OSError:
                pass
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="wgsp-relay", description="wgsp.service_proxy cross-family relay")
    parser.add_argument("--config", required=True)
    parser.add_argument("--pidfile", required=True)
    parser.add_argument("--daemon", action="store_true")
    parser.add_argument("--stop", action="store_true")
    args = parser.parse_args(argv)
    if args.stop:
        stop(args.pidfile, sys.argv[0], args.config)
        return 0
    if pid_of(args.pidfile, sys.argv[0], args.config) is not None:
        sys.stderr.write("wgsp-relay: already running for %s (%s)\n" % (args.config, args.pidfile))
        return 1
    try:
        return run(args)
    except (ConfigError, OSError) as exc:
        sys.stderr.write("wgsp-relay: %s\n" % (exc.strerror if isinstance(exc, OSError) and exc.strerror else exc))
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
