#!/usr/bin/env bash
# `make core-range`: the collection on the oldest and the newest ansible-core it claims (versions).
#   tests/core_range/run.sh              build the venvs that are missing, then test each version
#   tests/core_range/run.sh --build      only build the venvs (`make setup` does this)
#   tests/core_range/run.sh 2.16.19      test one version of versions only
# Per version, in a copy of the work tree whose .venv links to that version's venv (the tests call
# <repo>/.venv/bin/ansible*, so everything they start is that ansible-core):
#   1. the unit tests (they include ansible-doc of every module and the import_env playbook; the
#      built and installed collection is tests/integration/test_packaging.py, main venv only)
#   2. ansible-doc of every module and every role
#   3. ansible-playbook --syntax-check site.yml playbooks/*.yml
#   4. one real converge on namespace hosts: the restart playbook against a wireguard-go host
#   5. wg_metrics through `ansible` on a namespace host (the writer is built from the module payload)
# The versions run side by side. The venvs live in the machine-wide cache like .venv:
# /var/cache/wgsp/venv-core-<version>-<hash of version, python X.Y and requirements.txt>. A python X.Y
# that is missing (not on the PATH, not in pyenv) skips that version, and fails it in CI (CI=true).
# compat_testing.py gives the unit tests ansible-core 2.19's patch_module_args on older releases.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
here="$repo/tests/core_range"
cache=${WGSP_CACHE:-/var/cache/wgsp}
build_only=false
only=""
case "${1:-}" in
  --build) build_only=true ;;
  "") ;;
  *) only=$1 ;;
esac
ms() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# A python X.Y: pythonX.Y on PATH when it really is X.Y (pyenv shims print an error otherwise),
# else the newest pyenv install of X.Y.
find_python() {
  local want=$1 cand pyenvs=()
  for cand in "${PYENV_ROOT:-$HOME/.pyenv}/versions/$want".*/bin/"python$want"; do
    [[ -x "$cand" ]] && pyenvs+=("$cand")
  done
  ((${#pyenvs[@]})) && mapfile -t pyenvs < <(printf '%s\n' "${pyenvs[@]}" | sort -rV)
  for cand in "$(command -v "python$want" 2>/dev/null || true)" "${pyenvs[@]}"; do
    [[ -n "$cand" ]] || continue
    if [[ "$("$cand" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" == "$want" ]]; then
      echo "$cand"
      return 0
    fi
  done
  echo "python$want not found (on PATH or in pyenv); ansible-core versions listed in $here/versions need it" >&2
  return 1
}

venv_path() {  # <core> <python X.Y>
  local key
  key=$( { echo "ansible-core==$1 python$2"; cat "$here/requirements.txt"; } | sha256sum | cut -c1-16)
  echo "$cache/venv-core-$1-$key"
}

in_ci() { case "${CI:-}" in 1|[Tt][Rr][Uu][Ee]|[Yy][Ee][Ss]) return 0 ;; *) return 1 ;; esac; }

build() {  # <core> <python X.Y>; returns 2 when that python is missing outside CI
  local venv python start
  venv=$(venv_path "$1" "$2")
  if [[ -f "$venv/.complete" ]] && "$venv/bin/python" -c '' 2>/dev/null; then
    return 0
  fi
  if ! python=$(find_python "$2"); then
    in_ci && return 1
    echo "skipping ansible-core $1 (in CI this fails)" >&2
    return 2
  fi
  start=$(date +%s%N)
  echo "creating $venv (ansible-core $1, $python)"
  rm -rf "$venv" && mkdir -p "$cache" && "$python" -m venv "$venv" || return 1
  "$venv/bin/pip" install -q --disable-pip-version-check "ansible-core==$1" -r "$here/requirements.txt" || return 1
  touch "$venv/.complete"
  echo "created $venv in $(ms "$start") ms"
}

mapfile -t entries < <(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' "$here/versions")
((${#entries[@]} >= 2)) || { echo "$here/versions lists fewer than two versions" >&2; exit 1; }

# The oldest tested is the oldest claimed.
claimed=$(sed -nE 's/^requires_ansible:[[:space:]]*["'\'']?>=([0-9]+\.[0-9]+)\.[0-9]+.*/\1/p' "$repo/meta/runtime.yml")
read -r oldest _ <<<"${entries[0]}"
if [[ "${oldest%.*}" != "$claimed" ]]; then
  echo "meta/runtime.yml claims >=$claimed but the oldest version in $here/versions is $oldest" >&2
  exit 1
fi

ready=()
for entry in "${entries[@]}"; do
  read -r core py <<<"$entry"
  [[ -z "$only" || "$only" == "$core" ]] || continue
  rc=0
  build "$core" "$py" || rc=$?
  case $rc in
    0) ready+=("$entry") ;;
    2) ;;
    *) echo "building the venv for ansible-core $core failed" >&2; exit 1 ;;
  esac
done
$build_only && exit 0

start_all=$(date +%s%N)
# Main .venv's site-packages: community.docker (the ansible package) for the syntax check of the roles
# that use it; it declares requires_ansible >=2.15.
main_site=$("$repo/.venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
work=$(mktemp -d /tmp/wgsp-core-range.XXXXXX)
trap 'rm -rf "$work"' EXIT
modules=()
for f in "$repo"/plugins/modules/*.py; do modules+=("wgsp.service_proxy.$(basename "$f" .py)"); done
roles=()
for f in "$repo"/roles/*/meta/argument_specs.yml; do roles+=("wgsp.service_proxy.$(basename "$(dirname "$(dirname "$f")")")"); done

step() {  # <name> <command...>: run it in the copy with this version's venv, report time and result
  local name=$1 t rc=0
  shift
  t=$(date +%s%N)
  (cd "$tree" && export PATH="$venv/bin:$PATH" ANSIBLE_CONFIG="$tree/ansible.cfg" ANSIBLE_NOCOLOR=1 \
    ANSIBLE_FORCE_COLOR=0 && "$@") || rc=$?
  echo "-- $core $name: $([[ $rc == 0 ]] && echo ok || echo "FAILED rc=$rc") in $(ms "$t") ms"
  [[ $rc == 0 ]] || echo "$core $name" >> "$work/failed"
}

clean_doc() {  # ansible-doc must render every name without a warning or an error
  local out
  out=$("$venv/bin/ansible-doc" "$@" 2>&1) || { echo "$out" | tail -20; return 1; }
  # (ansible-core 2.21 warns that its own internal _protomatter collection has no version)
  if grep -E '\[(WARNING|ERROR|DEPRECATION WARNING)\]' <<<"$out" | grep -v '/ansible/_internal/ansible_collections/'; then
    return 1
  fi
}

test_version() {  # <core> <python X.Y>, in a copy of the work tree of its own (.venv -> this venv)
  local core=$1 py=$2 venv tree start
  venv=$(venv_path "$core" "$py")
  tree="$work/$core/service_proxy"
  start=$(date +%s%N)
  echo "== ansible-core $core (python $py): $venv"
  mkdir -p "$tree/collections/ansible_collections/wgsp"
  (cd "$repo" && git ls-files -z --cached --others --exclude-standard | grep -zv -e '^collections/' -e '^\.venv$' |
    xargs -0 -I{} sh -c 'test -e "{}" && echo "{}"' | tar -cf - -T - ) | tar -C "$tree" -xf -
  ln -s ../../.. "$tree/collections/ansible_collections/wgsp/service_proxy"
  ln -s "$venv" "$tree/.venv"
  local pytest=("$venv/bin/python" -m pytest -q -p no:cacheprovider --basetemp "$work/$core/pytest")

  step "version check" "$venv/bin/python" -c "import sys, ansible.release as r; print(r.__version__, sys.version.split()[0]);
assert r.__version__ == '$core', r.__version__"
  step "unit tests" env PYTHONPATH="$tree/tests/core_range" "${pytest[@]}" -p compat_testing tests/unit
  step "ansible-doc modules" clean_doc -t module "${modules[@]}"
  step "ansible-doc roles" clean_doc -t role "${roles[@]}"
  step "syntax check" env ANSIBLE_COLLECTIONS_PATH="$tree/collections:$main_site" \
    "$venv/bin/ansible-playbook" --syntax-check site.yml playbooks/*.yml
  step "converge (restart playbook, namespace hosts)" "${pytest[@]}" \
    tests/integration/test_wg_status_lab.py::test_restart_playbook_reconnects_and_reasserts_rules
  # wg_metrics builds the metrics writer from Ansible's module payload, whose layout is ansible-core's
  step "metrics writer from the module payload (namespace hosts)" "${pytest[@]}" \
    tests/integration/test_wg_metrics_lab.py::test_metrics_follow_the_tunnel_the_traffic_and_the_drift
  echo "-- $core done in $(ms "$start") ms"
}

# The versions run side by side (most of a run is waiting for subprocesses and the tunnel); each
# one's output is shown as a block when it is done.
pids=()
logs=()
for entry in "${ready[@]}"; do
  read -r core py <<<"$entry"
  logs+=("$work/$core.log")
  test_version "$core" "$py" > "$work/$core.log" 2>&1 &
  pids+=($!)
done
if ((${#pids[@]} == 0)); then
  [[ -z "$only" ]] || grep -qw -- "^$only" <<<"$(printf '%s\n' "${entries[@]}")" ||
    { echo "$only is not listed in $here/versions" >&2; exit 1; }
  echo "core-range: no version could be tested"
  exit 0
fi
for i in "${!pids[@]}"; do
  wait "${pids[$i]}" || echo "$(basename "${logs[$i]}" .log) aborted" >> "$work/failed"
  grep -v -e '^$' -e '^playbook: ' "${logs[$i]}"
done

echo "core-range done in $(ms "$start_all") ms"
if [[ -s "$work/failed" ]]; then
  sed 's/^/FAILED: /' "$work/failed" >&2
  exit 1
fi
