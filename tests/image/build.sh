#!/usr/bin/env bash
# Build a test base image (Debian, no registry needed) and import it into Docker.
#
#   tests/image/build.sh [--release R]              build the image unless its tag exists
#   tests/image/build.sh [--release R] --print-tag  print the tag only
#
# R is a Debian release that debootstrap knows: bookworm (Debian 12, the default) or trixie
# (Debian 13). The tag is wgsp-test-base:<R>-<hash>, the hash covering the release, the package
# list and this script, so an image is rebuilt only when one of them changes. `latest` follows
# the bookworm image (molecule.yml and playbooks/lab_up.yml fall back to it when WGSP_TEST_IMAGE
# is unset). debootstrap uses the Debian mirror apt is configured with here.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=tests/lib/build-lib.sh
source "$here/../lib/build-lib.sh"
release=bookworm
print_tag=false
while (($#)); do
  case "$1" in
    --release) release=${2:?--release needs a value}; shift 2 ;;
    --release=*) release=${1#--release=}; shift ;;
    --print-tag) print_tag=true; shift ;;
    *) echo "usage: $0 [--release bookworm|trixie] [--print-tag]" >&2; exit 2 ;;
  esac
done
case "$release" in
  bookworm|trixie) ;;
  *) echo "unsupported release '$release' (bookworm or trixie)" >&2; exit 2 ;;
esac

# packages.txt: one package a line; "pkg [release ...]" limits a line to those releases.
packages=$(awk -v rel="$release" '
  { sub(/#.*/, "") }
  NF == 0 { next }
  NF == 1 { print $1; next }
  { only = $0; sub(/^[^[]*\[/, "", only); sub(/\].*$/, "", only)
    n = split(only, rels, /[ ,]+/)
    for (i = 1; i <= n; i++) if (rels[i] == rel) { print $1; next } }
' "$here/packages.txt" | paste -sd, -)
hash=$( { echo "$release"; cat "$here/packages.txt" "$here/build.sh" "$here/../lib/build-lib.sh"; } | sha256sum | cut -c1-12)
repo=wgsp-test-base
tag="$repo:$release-$hash"

if $print_tag; then
  echo "$tag"
  exit 0
fi

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "image $tag present"
  exit 0
fi


work=$(mktemp -d /var/tmp/wgsp-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
root="$work/root"
start=$(date +%s)
echo "building $tag with debootstrap from $(debian_mirror) (packages: $packages)"
debootstrap --variant=minbase --include="$packages" "$release" "$root" "$(debian_mirror)" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log"; exit 1; }
# Keep the image small and free of host specifics.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
echo "wgsp-test" >"$root/etc/hostname"
: >"$root/etc/resolv.conf"
tar -C "$root" -c . | docker import \
  --change 'CMD ["/bin/sleep", "infinity"]' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$tag" >/dev/null
[[ "$release" != bookworm ]] || docker tag "$tag" "$repo:latest"
echo "built $tag in $(( $(date +%s) - start ))s"
