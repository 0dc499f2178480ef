#!/usr/bin/env bash
# Build (once) the disk image of the kernel-WireGuard lab for one Debian release: a stock Debian
# root (debootstrap of packages.txt from that release's archive) that boots its own kernel with
# systemd as init, sshd, a sudo user, kernel WireGuard and Docker.
#
#   tests/vmlab/build.sh RELEASE              build unless cached; print the cache directory last
#   tests/vmlab/build.sh RELEASE --print-dir  print the cache directory only (it may not exist yet)
#
# RELEASE is bookworm (Debian 12) or trixie (Debian 13). Output in
# /var/cache/wgsp/vmlab/RELEASE-<hash>/ (WGSP_CACHE overrides /var/cache/wgsp): vmlinuz, initrd.img,
# disk.raw (ext4, sparse) and manifest.txt. <hash> covers this script, packages.txt and the
# release, so the image is rebuilt only when one of them changes. The VMs run the image with
# qemu's snapshot=on: the cached disk is never written.
#
# What is lab fixture, not the collection's business, lives under /etc/systemd/network (the
# underlay addresses, matched by MAC address) and /usr/local/sbin/wgsp-lab-ssh-key (the per-run
# SSH key, read from the kernel command line).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/build-lib.sh
source "$here/../lib/build-lib.sh"
release=${1:?usage: build.sh bookworm|trixie [--print-dir]}
case "$release" in bookworm|trixie) ;; *) echo "unknown release $release" >&2; exit 2 ;; esac
cache="${WGSP_CACHE:-/var/cache/wgsp}/vmlab"

lists() { grep -hvE '^\s*(#|$)' "$@"; }

hash=$( { cat "$here/build.sh" "$here/../lib/build-lib.sh" "$here/packages.txt"; echo "$release"; } | sha256sum | cut -c1-16)
out="$cache/$release-$hash"
if [[ "${2:-}" == "--print-dir" ]]; then
  echo "$out"
  exit 0
fi

take_build_lock "$cache/.lock-$release" "$out"


for tool in debootstrap mkfs.ext4 chroot zstd; do
  command -v "$tool" >/dev/null || { echo "$tool is missing (run make setup)" >&2; exit 1; }
done

start=$(date +%s)
work=$(mktemp -d /var/tmp/wgsp-vmlab.XXXXXX)
cleanup() {
  for fs in proc sys dev/pts dev; do umount -l "$work/root/$fs" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
chmod 0755 "$work"
root="$work/root"
packages=$(lists "$here/packages.txt" | paste -sd, -)

# Stage 1, the only one that needs the mirror: the debootstrap root of packages.txt, kept as a
# tarball keyed by the release and the package list, so a change to the set-up below rebuilds
# the image offline.
roothash=$( { lists "$here/packages.txt"; echo "$release"; } | sha256sum | cut -c1-16)
roottar="$cache/root-$release-$roothash.tar.zst"
if [[ ! -f "$roottar" ]]; then
  echo "vmlab $release $hash: debootstrap from $(debian_mirror)" >&2
  debootstrap --variant=minbase --include="$packages" "$release" "$root" "$(debian_mirror)" >"$work/debootstrap.log" 2>&1 || {
    tail -n 40 "$work/debootstrap.log" >&2; exit 1; }
  rm -f "$root"/var/cache/apt/archives/*.deb
  tar -C "$root" --numeric-owner -cf - . | zstd -q -T0 -3 -o "$work/root.tar.zst"
  mv "$work/root.tar.zst" "$roottar"
else
  echo "vmlab $release $hash: root from $roottar" >&2
  mkdir -p "$root"
  zstd -q -dc "$roottar" | tar -C "$root" --numeric-owner -xpf -
fi

in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C "$@"; }

# The user Ansible logs in as: no password, a key per run, sudo without a password (become).
in_root id wgsp >/dev/null 2>&1 || in_root useradd --create-home --shell /bin/bash wgsp
echo 'wgsp ALL=(ALL) NOPASSWD:ALL' >"$root/etc/sudoers.d/wgsp"
chmod 0440 "$root/etc/sudoers.d/wgsp"
install -d -m 0700 -o 1000 -g 1000 "$root/home/wgsp/.ssh"
cat >"$root/etc/ssh/sshd_config.d/wgsp-lab.conf" <<'EOF'
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
EOF

# The per-run public key comes on the kernel command line (wgsp.ssh_key=<base64 of the line>).
cat >"$root/usr/local/sbin/wgsp-lab-ssh-key" <<'EOF'
#!/bin/sh
set -eu
for word in $(cat /proc/cmdline); do
  case "$word" in
    wgsp.ssh_key=*) echo "${word#wgsp.ssh_key=}" | base64 -d >/home/wgsp/.ssh/authorized_keys ;;
  esac
done
chown wgsp:wgsp /home/wgsp/.ssh/authorized_keys 2>/dev/null || true
chmod 0600 /home/wgsp/.ssh/authorized_keys 2>/dev/null || true
# the name systemd.hostname= gave this VM resolves, as on an installed Debian host
grep -qw "$(hostname)" /etc/hosts || echo "127.0.1.1 $(hostname)" >>/etc/hosts
EOF
chmod 0755 "$root/usr/local/sbin/wgsp-lab-ssh-key"
cat >"$root/etc/systemd/system/wgsp-lab-ssh-key.service" <<'EOF'
[Unit]
Description=wgsp lab: authorized key from the kernel command line, hostname in /etc/hosts
Before=ssh.service
[Service]
Type=oneshot
ExecStart=/usr/local/sbin/wgsp-lab-ssh-key
[Install]
WantedBy=multi-user.target
EOF

# The underlay (lab fixture): addresses by MAC address, so one image serves hub, share and proxy.
#   52:54:00:77:0H:00  user-mode NIC (SSH and the public side), 10.0.2.15/24, no gateway
#   hub   eth1 192.0.2.1/28 (to the share), eth2 192.0.2.17/28 (to the proxy)
#   share eth1 192.0.2.2/28                 proxy eth1 192.0.2.18/28, route to 192.0.2.0/28 via the hub
net() {  # file MAC address [route-to via]
  {
    printf '[Match]\nMACAddress=%s\n\n[Network]\nAddress=%s\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n' "$2" "$3"
    [[ -z "${4:-}" ]] || printf '\n[Route]\nDestination=%s\nGateway=%s\n' "$4" "$5"
  } >"$root/etc/systemd/network/$1.network"
}
for n in 1 2 3; do net "10-user-$n" "52:54:00:77:0$n:00" 10.0.2.15/24; done
net 20-hub-share 52:54:00:77:01:01 192.0.2.1/28
net 20-hub-proxy 52:54:00:77:01:02 192.0.2.17/28
net 20-share 52:54:00:77:02:01 192.0.2.2/28
net 20-proxy 52:54:00:77:03:01 192.0.2.18/28 192.0.2.0/28 192.0.2.17

in_root systemctl enable systemd-networkd wgsp-lab-ssh-key.service >/dev/null 2>&1
# The emulated CPU is slow: nothing at boot that a headless test host does not need (no consoles
# to log in on, no periodic jobs). Docker starts only where a test enables it (the share).
in_root systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer e2scrub_reap.service \
  fstrim.timer dpkg-db-backup.timer logrotate.timer man-db.timer getty@tty1.service serial-getty@ttyS0.service \
  systemd-networkd-wait-online.service >/dev/null 2>&1 || true
in_root systemctl disable docker.service docker.socket containerd.service >/dev/null 2>&1 || true

# The share's service: a busybox root imported into Docker on the share (no registry reachable).
bb="$work/web"
mkdir -p "$bb/bin" "$bb/www"
cp "$root/bin/busybox" "$bb/bin/busybox"
echo "wgsp kernel lab service" >"$bb/www/index.html"
mkdir -p "$root/opt/wgsp-lab"
tar -C "$bb" -cf "$root/opt/wgsp-lab/web.tar" .

printf '/dev/vda / ext4 defaults,errors=remount-ro 0 1\n' >"$root/etc/fstab"
echo "wgsp-lab" >"$root/etc/hostname"
printf '127.0.0.1 localhost\n::1 localhost\n' >"$root/etc/hosts"
: >"$root/etc/resolv.conf"
: >"$root/etc/machine-id"  # each boot of a snapshot gets its own

kver=""
for kernel in "$root"/boot/vmlinuz-*; do kver=${kernel##*/vmlinuz-}; done  # the release installs one
[[ -n "$kver" ]] || { echo "no kernel in the root" >&2; exit 1; }
# An initramfs with just what finds the root disk (virtio, ext4): a fifth of the default's size,
# which the emulated CPU unpacks and probes at every boot.
printf 'MODULES=list\nCOMPRESS=gzip\n' >"$root/etc/initramfs-tools/conf.d/wgsp-lab.conf"
printf 'virtio_pci\nvirtio_blk\nvirtio_net\next4\n' >>"$root/etc/initramfs-tools/modules"
in_root update-initramfs -c -k "$kver" >/dev/null 2>&1 || in_root update-initramfs -u -k "$kver" >/dev/null
mkdir -p "$work/out"
cp "$root/boot/vmlinuz-$kver" "$work/out/vmlinuz"
cp "$root/boot/initrd.img-$kver" "$work/out/initrd.img"

{
  echo "hash $hash"
  echo "release $release $(cat "$root/etc/debian_version")"
  echo "kernel $kver"
  # shellcheck disable=SC2016  # dpkg-query's own ${Field} syntax
  echo "debian $(in_root dpkg-query -W -f '${Package}=${Version} ' python3 python3-pyroute2 wireguard-tools iptables nftables docker.io systemd openssh-server 2>/dev/null)"
} >"$work/manifest.txt"

rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
  "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
size_mb=$(du -sm "$root" | cut -f1)
mkfs.ext4 -q -L wgsp-root -d "$root" "$work/out/disk.raw" "$((size_mb + 2048))M"
echo "built in $(( $(date +%s) - start ))s, root ${size_mb} MB" >>"$work/manifest.txt"
mv "$work/manifest.txt" "$work/out/"
rm -rf "$out"
mv "$work/out" "$out"
cat "$out/manifest.txt" >&2
echo "$out"
