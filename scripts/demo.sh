#!/usr/bin/env bash
# `make demo`: the seed topology as containers (hub, share client + dummy service, proxy, public
# user) on internal Docker networks, configured by site.yml, then shown working. Re-runnable.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/.venv/bin:$PATH" ANSIBLE_CONFIG="$PWD/ansible.cfg"
WGSP_TEST_IMAGE=$(tests/image/build.sh --print-tag)
export WGSP_TEST_IMAGE
inv=inventories/lab/hosts.yml

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1/5 Creating the lab's containers and internal networks (playbooks/lab_up.yml)"
ansible-playbook playbooks/lab_up.yml

step "2/5 Configuring hub, share client and proxy client (site.yml, inventories/lab)"
ansible-playbook -i "$inv" site.yml

step "3/5 Testing every connection (playbooks/test_connection.yml)"
ansible-playbook -i "$inv" playbooks/test_connection.yml

step "4/5 A request from the public user to the proxy's public address 198.18.30.20:80"
echo "\$ docker exec wgsp-lab-public curl -s http://198.18.30.20/"
docker exec wgsp-lab-public curl -sS --max-time 5 --retry 5 --retry-all-errors http://198.18.30.20/

step "5/5 What each host reports (playbooks/status.yml; wg_status checks handshakes and rules)"
ANSIBLE_DISPLAY_SKIPPED_HOSTS=false ansible-playbook -i "$inv" playbooks/status.yml | grep -o '"msg": "[^"]*"' | cut -d'"' -f4

echo
echo "The original's status fields, from the proxy (ansible proxy1 -m wg_status, public keys only):"
ansible -i "$inv" proxy1 -m wg_status | python3 -c '
import json, sys
text = sys.stdin.read()
full = json.loads(text[text.index("{"):])
keys = ("status", "interface", "client_mode", "public_exposure", "access_services", "public_key", "handshake_age", "drift")
short = {k: full[k] for k in keys}
short["access_services"] = [s["target"] for s in full["access_services"]]
print(json.dumps(short, indent=2))'

echo
echo "The lab keeps running; make demo-down removes it."
