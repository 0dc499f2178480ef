# shellcheck shell=bash
# Shared by the test builders (tests/image, tests/vm, tests/vmlab build.sh): sourced, never run.
# Each builder's content hash includes this file, so a change here rebuilds what it built.

# debian_mirror: the Debian mirror apt is configured with here (deb822 or one-line sources, the
# security archive left out), else deb.debian.org.
debian_mirror() {
  local uri
  uri=$(grep -hsE '^\s*URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
  [[ -n "$uri" ]] || uri=$(grep -hsE '^\s*deb\s' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

# take_build_lock LOCKFILE OUT: wait for any other build of the same cache (fd 9 holds the lock
# until the builder exits), then print OUT and end the builder when OUT/manifest.txt shows it built.
take_build_lock() {
  mkdir -p "$(dirname "$1")"
  exec 9>"$1"
  flock 9
  if [[ -f "$2/manifest.txt" ]]; then
    echo "$2"
    exit 0
  fi
}
