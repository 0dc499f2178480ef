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

step "4/5 A request from the public user to the proxy's public address 203.0.113.20:80"
echo "\$ docker exec wgsp-lab-public curl -s http://203.0.113.20/"
docker exec wgsp-lab-public curl -sS --max-time 5 --retry 5 --retry-all-errors http://203.0.113.20/

step "5/5 What each host reports (ansible all -m wg_status, public keys only)"
ansible -i "$inv" 'wg_server:share_clients:proxy_clients' -m wg_status -o | cut -c1-400

echo
echo "The lab keeps running; make demo-down removes it."

