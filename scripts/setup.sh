#!/usr/bin/env bash
# `make setup`: everything a new Debian/Ubuntu host needs, idempotently.
#   1. Debian packages from requirements-system.txt that are missing (apt-get update only then)
#   2. .venv -> a cached venv with requirements.txt (built only when requirements.txt changes), and the
#      cached venvs of the oldest and newest ansible-core claimed (tests/core_range/run.sh --build)
#   3. a Docker engine (started when none answers)
#   4. the test base images, Debian 12 and 13 (each built when the tag for its package list is absent),
#      the VM kernel image and the kernel-lab disk images (tests/vm, tests/vmlab; cached by content)
set -euo pipefail
cd "$(dirname "$0")/.."
start=$(date +%s%N)

missing=()
while read -r pkg; do
  [[ -z "$pkg" || "$pkg" == \#* ]] && continue
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done < requirements-system.txt
if ((${#missing[@]})); then
  [[ $(id -u) -eq 0 ]] || { echo "missing Debian packages (${missing[*]}); run make setup as root" >&2; exit 1; }
  echo "installing Debian packages: ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The venv lives in a machine-wide cache keyed by requirements.txt and the Python version, like
# the test image and the VM kernel: a fresh clone on a machine that already built it (CI after a
# developer session, a second checkout) reuses it instead of downloading everything again.
cache=${WGSP_CACHE:-/var/cache/wgsp}
pyver=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
want=$(sha256sum < requirements.txt | cut -c1-16)
venv="$cache/venv-py$pyver-$want"
if [[ ! -f "$venv/.complete" ]]; then
  echo "creating $venv and installing requirements.txt"
  rm -rf "$venv"
  mkdir -p "$cache"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check -r requirements.txt
  touch "$venv/.complete"
fi
if [[ "$(readlink .venv 2>/dev/null)" != "$venv" ]]; then
  [[ -L .venv || ! -e .venv ]] || { echo "moving the old .venv directory aside to .venv.old"; rm -rf .venv.old; mv .venv .venv.old; }
  ln -sfn "$venv" .venv
fi

# The venvs of the oldest and newest ansible-core claimed (tests/core_range/versions), same cache.
tests/core_range/run.sh --build

scripts/ensure-dockerd.sh
tests/image/build.sh --release bookworm
tests/image/build.sh --release trixie
tests/vm/build.sh >/dev/null
tests/vmlab/build.sh bookworm >/dev/null
tests/vmlab/build.sh trixie >/dev/null
echo "setup done in $(( ($(date +%s%N) - start) / 1000000 )) ms"
