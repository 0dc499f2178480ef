"""What a namespace test host looks like, for "byte-identical before and after" assertions: the
underlay every single-host trust test starts from, the snapshot of everything the collection could
change (iptables and ip6tables rules, the nftables ruleset, links, addresses, routes of every table,
policy rules, the files under the host's private /etc/wireguard, /etc/wg-service-proxy,
/run/wireguard and /var/lib/wgsp-service-proxy, the wireguard-go processes), and a reset back to that underlay.
"""

import os
import signal
import time

from rig import _pids_in_netns

# the underlay of the single-host cases: eth0 (192.0.2.1/24, fd00:1::1/64) to eth1 inside the host
SETUP = ("ip link add eth0 type veth peer name eth1; ip link set eth0 addrgenmode none; "
         "ip link set eth1 addrgenmode none; ip addr add 192.0.2.1/24 dev eth0; "
         "ip addr add fd00:1::1/64 dev eth0 nodad; ip link set eth0 up; ip link set eth1 up")
SNAPSHOT = r"""
set +e
iptables-save | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]//'
ip6tables-save | grep -v '^#' | sed 's/\[[0-9]*:[0-9]*\]//'
nft list ruleset | sed 's/packets [0-9]* bytes [0-9]*//'
ip -d link show
ip -br addr show
ip route show table all
ip -6 route show table all
ip rule show
ip -6 rule show
find /etc/wireguard /etc/wg-service-proxy /run/wireguard /var/lib/wgsp-service-proxy | sort | while read -r f; do
  stat -c '%n %F %a %s' "$f"; [ -f "$f" ] && sha256sum "$f"; done
true
"""
# Back to SETUP: no rules, no tables, no links but lo/eth0/eth1, no route the kernel did not make,
# empty private directories. (wireguard-go processes are ended by PID first, see ``reset``.)
RESET = r"""
set +e
for cmd in iptables ip6tables; do
  for t in filter nat mangle raw; do $cmd -t $t -F; $cmd -t $t -X; done
  for c in INPUT FORWARD OUTPUT; do $cmd -P $c ACCEPT; done
done 2>/dev/null
nft flush ruleset
for l in $(ip -o link show | awk -F': ' '{print $2}' | cut -d@ -f1); do
  case "$l" in lo|eth0|eth1) ;; *) ip link del "$l" ;; esac
done
for fam in -4 -6; do
  ip $fam route show table all | grep -v 'proto kernel' | grep -v '^\(local\|broadcast\|multicast\|anycast\) ' |
    while read -r r; do ip $fam route del $r; done
done
ip rule flush; ip rule add pref 0 lookup local; ip rule add pref 32766 lookup main; ip rule add pref 32767 lookup default
ip -6 rule flush; ip -6 rule add pref 0 lookup local; ip -6 rule add pref 32766 lookup main
find /etc/wireguard /etc/wg-service-proxy /run/wireguard /var/lib/wgsp-service-proxy -mindepth 1 -delete
true
"""


def wireguard_go(host):
    """wireguard-go processes in the host's network namespace (processes are not hidden by namespaces)."""
    found = []
    for pid in _pids_in_netns(host.inode):
        try:
            with open("/proc/%d/cmdline" % pid, "rb") as handle:
                argv = handle.read().split(b"\0")
        except OSError:
            continue
        if os.path.basename(argv[0]) == b"wireguard-go":
            found.append(pid)
    return sorted(found)


def snapshot(host):
    return host.run(SNAPSHOT).stdout + "wireguard-go: %s\n" % wireguard_go(host)


def settled(host):
    """The snapshot once it stops changing (a fresh veth may still be coming up)."""
    before = snapshot(host)
    for _attempt in range(50):
        time.sleep(0.1)
        now = snapshot(host)
        if now == before:
            return now
        before = now
    raise AssertionError("host %s does not settle" % host.name)


def reset(host):
    """Undo whatever a module did on a SETUP host (its wireguard-go processes ended by PID)."""
    for pid in wireguard_go(host):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    host.run(RESET)
