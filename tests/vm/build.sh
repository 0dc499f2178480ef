#!/usr/bin/env bash
# Build (once) the VM image for the kernel-backend tests: Debian's stock kernel and a base initramfs.
#
#   tests/vm/build.sh              build unless cached; print the cache directory on the last line
#   tests/vm/build.sh --print-dir  print the cache directory only (it may not exist yet)
#
# Output in /var/cache/wgsp/vm/<hash>/ (WGSP_CACHE overrides /var/cache/wgsp): vmlinuz, base.cpio.gz (a debootstrap minbase root with the
# packages of packages.txt, the kernel modules of modules.txt with their dependency closure, the
# PyPI packages of pip-packages.txt) and manifest.txt. <hash> covers this script, the three lists and
# the exact kernel package (name and version), so the image is rebuilt only when one of them changes.
# The collection is not in the image: the test appends it as a second cpio archive on every run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/build-lib.sh
source "$here/../lib/build-lib.sh"
# Machine-wide, outside the work tree, so fresh clones (CI) on this machine reuse it.
cache="${WGSP_CACHE:-/var/cache/wgsp}/vm"

lists() { grep -hvE '^\s*(#|$)' "$@"; }

# The kernel linux-image-amd64 points at, e.g. linux-image-6.1.0-56-amd64 (version 6.1.140-1).
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ {print $2; exit}')
if [[ -z "$kpkg" ]]; then
  echo "cannot resolve linux-image-amd64 (run apt-get update)" >&2
  exit 1
fi
kpkg_version=$(apt-cache show --no-all-versions "$kpkg" | awk '/^Version:/ {print $2; exit}')
kver=${kpkg#linux-image-}

hash=$( { cat "$here/build.sh" "$here/../lib/build-lib.sh" "$here/packages.txt" "$here/pip-packages.txt" "$here/modules.txt"
          echo "$kpkg $kpkg_version"; } | sha256sum | cut -c1-16)
out="$cache/$hash"
if [[ "${1:-}" == "--print-dir" ]]; then
  echo "$out"
  exit 0
fi

take_build_lock "$cache/.lock" "$out"


for tool in debootstrap cpio depmod modprobe apt-get dpkg-deb python3; do
  command -v "$tool" >/dev/null || { echo "$tool is missing (run make setup)" >&2; exit 1; }
done

start=$(date +%s)
work=$(mktemp -d /var/tmp/wgsp-vm.XXXXXX)
trap 'rm -rf "$work"' EXIT
chmod 0755 "$work"  # apt-get download runs as _apt
root="$work/root"
packages=$(lists "$here/packages.txt" | paste -sd, -)

echo "vm image $hash: debootstrap ($packages) from $(debian_mirror)" >&2
debootstrap --variant=minbase --include="$packages" bookworm "$root" "$(debian_mirror)" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log" >&2; exit 1; }

echo "vm image $hash: kernel $kpkg $kpkg_version" >&2
(cd "$work" && apt-get download "$kpkg" >/dev/null)
# Extracted apart from the root (dpkg-deb -x into a merged-/usr root would replace its /lib link).
dpkg-deb -x "$work"/"$kpkg"_*.deb "$work/kernel"
kroot="$work/kernel"
kmods=$kroot/lib/modules/$kver
[[ -d "$kmods" ]] || kmods=$kroot/usr/lib/modules/$kver
depmod -b "${kmods%/lib/modules/*}" "$kver"
dest="$root/usr/lib/modules/$kver"
mkdir -p "$dest"
cp "$kmods"/modules.order "$kmods"/modules.builtin* "$dest/"
mapfile -t wanted < <(lists "$here/modules.txt")
modprobe -a -d "${kmods%/lib/modules/*}" -S "$kver" --show-depends "${wanted[@]}" | awk '$1 == "insmod" {print $2}' | sort -u \
  >"$work/modules.list"
while read -r ko; do
  rel=${ko#*/modules/"$kver"/}
  install -D -m 0644 "$ko" "$dest/$rel"
done <"$work/modules.list"
depmod -b "$root/usr" "$kver"
cp "$kroot/boot/vmlinuz-$kver" "$work/vmlinuz"

echo "vm image $hash: PyPI packages" >&2
while read -r target requirement; do
  python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location --only-binary=:all: \
    --target "$root$target" "$requirement" >>"$work/pip.log" 2>&1 || { tail -n 30 "$work/pip.log" >&2; exit 1; }
done < <(lists "$here/pip-packages.txt")

# Small and free of host specifics; no network configuration at all.
rm -rf "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/usr/share/locale/* \
  "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
echo "wgsp-vm" >"$root/etc/hostname"
printf '127.0.0.1 localhost wgsp-vm\n::1 localhost\n' >"$root/etc/hosts"
: >"$root/etc/resolv.conf"
mkdir -p "$root/etc/wireguard"
chmod 0700 "$root/etc/wireguard"

{
  echo "hash $hash"
  echo "kernel $kpkg $kpkg_version"
  echo "modules $(sed 's|.*/||' "$work/modules.list" | paste -sd' ' -)"
  mapfile -t debs < <(lists "$here/packages.txt")
  # shellcheck disable=SC2016  # dpkg-query's own ${Field} syntax
  echo "debian $(chroot "$root" dpkg-query -W -f '${Package}=${Version} ' "${debs[@]}" 2>/dev/null)"
  echo "pypi $(lists "$here/pip-packages.txt" | awk '{print $2}' | paste -sd' ' -)"
} >"$work/manifest.txt"

(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null --quiet -o -H newc) | gzip -1 >"$work/base.cpio.gz"
mkdir -p "$work/out"
mv "$work/vmlinuz" "$work/base.cpio.gz" "$work/out/"
echo "built in $(( $(date +%s) - start ))s, root $(du -sm "$root" | cut -f1) MB, initramfs $(du -m "$work/out/base.cpio.gz" | cut -f1) MB" \
  >>"$work/manifest.txt"
mv "$work/manifest.txt" "$work/out/"
rm -rf "$out"
mv "$work/out" "$out"
cat "$out/manifest.txt" >&2
echo "$out"
