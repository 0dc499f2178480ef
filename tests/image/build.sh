#!/usr/bin/env bash
# Build the test base image (Debian bookworm, no registry needed) and import it into Docker.
#
#   tests/image/build.sh              build the image unless a tag for this package list exists
#   tests/image/build.sh --print-tag  print the tag only
#
# The tag carries a hash of the package list and of this script, so the image is rebuilt only
# when one of them changes. debootstrap uses the Debian mirror apt is configured with here.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
hash=$(cat "$here/packages.txt" "$here/build.sh" | sha256sum | cut -c1-12)
repo=wgsp-test-base
tag="$repo:bookworm-$hash"

if [[ "${1:-}" == "--print-tag" ]]; then
  echo "$tag"
  exit 0
fi

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "image $tag present"
  exit 0
fi

mirror() {
  local uri
  uri=$(grep -hsE '^\s*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
  [[ -n "$uri" ]] || uri=$(grep -hsE '^\s*deb\s' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

packages=$(grep -vE '^\s*(#|$)' "$here/packages.txt" | paste -sd, -)
work=$(mktemp -d /var/tmp/wgsp-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
root="$work/root"
start=$(date +%s)
echo "building $tag with debootstrap from $(mirror) (packages: $packages)"
debootstrap --variant=minbase --include="$packages" bookworm "$root" "$(mirror)" >"$work/debootstrap.log" 2>&1 || {
  tail -n 30 "$work/debootstrap.log"; exit 1; }
# Keep the image small and free of host specifics.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
echo "wgsp-test" >"$root/etc/hostname"
: >"$root/etc/resolv.conf"
tar -C "$root" -c . | docker import \
  --change 'CMD ["/bin/sleep", "infinity"]' \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  - "$tag" >/dev/null
docker tag "$tag" "$repo:latest"
echo "built $tag in $(( $(date +%s) - start ))s"
