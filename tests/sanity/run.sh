#!/usr/bin/env bash
# `make sanity`: ansible-test sanity on the collection.
# ansible-test wants the collection at .../ansible_collections/wgsp/service_proxy inside a git work
# tree, so the tracked and new (not ignored) files are copied into such a tree in a temp dir.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
venv="$repo/.venv"
python_version=$("$venv/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

# Offline get-pip: see get_pip_offline.py.
pip_version=$(sed -nE "s/^\s*pip='([0-9.]+)',?$/\1/p" \
  "$venv"/lib/python*/site-packages/ansible_test/_internal/python_requirements.py | head -n1)
cache="$HOME/.ansible/test/cache/get_pip_${pip_version//./_}.py"
mkdir -p "$(dirname "$cache")"
cmp -s "$repo/tests/sanity/get_pip_offline.py" "$cache" || cp "$repo/tests/sanity/get_pip_offline.py" "$cache"

work=$(mktemp -d /tmp/wgsp-sanity.XXXXXX)
trap 'rm -rf "$work"' EXIT
dest="$work/ansible_collections/wgsp/service_proxy"
mkdir -p "$dest"
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | grep -zv '^collections/' |
  xargs -0 -I{} sh -c 'test -e "{}" && echo "{}"' | tar -cf - -T - ) | tar -C "$dest" -xf -
(cd "$dest" && git init -q && git add -A && git -c user.email=ci@wgsp.invalid -c user.name=ci commit -qm sanity)
cd "$dest"
PATH="$venv/bin:$PATH" "$venv/bin/ansible-test" sanity --python "$python_version" --color no "$@"
