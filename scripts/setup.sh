#!/usr/bin/env bash
# `make setup`: everything a new Debian/Ubuntu host needs, idempotently.
#   1. Debian packages from requirements-system.txt that are missing (apt-get update only then)
#   2. .venv with requirements.txt (re-installed only when requirements.txt changes)
#   3. a Docker engine (started when none answers)
#   4. the test base image (built when the tag for its package list is absent)
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

want=$(sha256sum requirements.txt | cut -c1-16)
if [[ ! -x .venv/bin/python || "$(cat .venv/.requirements 2>/dev/null)" != "$want" ]]; then
  echo "creating .venv and installing requirements.txt"
  python3 -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r requirements.txt
  echo "$want" > .venv/.requirements
fi

scripts/ensure-dockerd.sh
tests/image/build.sh
echo "setup done in $(( ($(date +%s%N) - start) / 1000000 )) ms"
