# wgsp.service_proxy — the only set-up a new user needs.
#   make setup   Debian packages, .venv, a Docker engine, the test base image (idempotent)
#   make test    setup, then lint, ansible-test sanity, unit, core-range, integration and molecule tests
#   make demo    the demo lab (seed topology in containers); make demo-down removes it
#   make bench   benchmarks (results under bench/results/)
#   make fuzz    the adversarial layer with a long budget (WGSP_FUZZ_EXAMPLES per test, default 400)
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
VENV := $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
export ANSIBLE_CONFIG := $(CURDIR)/ansible.cfg
PYTEST := $(VENV)/bin/pytest

.PHONY: setup test lint sanity unit core-range integration fuzz vm vmlab molecule demo demo-down bench clean help

help:
	@sed -n '2,7p' Makefile

setup:
	@scripts/setup.sh

test: setup
	@$(MAKE) --no-print-directory -k lint sanity unit core-range integration

lint:
	@echo "== lint: yamllint, ansible-lint (production profile)"
	yamllint --strict .
	ansible-lint --profile production --offline --nocolor

sanity:
	@echo "== ansible-test sanity"
	tests/sanity/run.sh

unit:
	@echo "== unit tests"
	$(PYTEST) tests/unit

# The oldest and the newest ansible-core the collection claims (tests/core_range/versions; .venv has
# the one in between): unit tests, ansible-doc of every module and role, syntax check of every
# playbook, one converge on namespace hosts, each version in a cached venv of its own.
core-range:
	@echo "== oldest and newest ansible-core claimed"
	tests/core_range/run.sh

# Integration tests on namespace test hosts, the kernel backend in a qemu VM, the seed topology on
# stock Debian 12 and 13 VMs (kernel WireGuard, SSH + become: converge, idempotence, a public
# request, a real reboot with each Docker start order), then the molecule scenarios and the lab fault
# test (containers). The namespace tests run on a worker per CPU (pytest-xdist; each test builds its
# own namespaces, ~2x on two cores); the VMs and containers one after the other (they share the CPUs
# and the Docker subnets).
# `make vmlab` adds the second reboot round (each release with the other Docker order).
integration:
	@echo "== integration: namespace hosts and the adversarial layer (a worker per CPU), then VM, VM lab and molecule"
	rc=0; $(PYTEST) -n auto --dist loadfile tests/integration tests/adversarial || rc=1; \
	$(PYTEST) tests/vm tests/vmlab tests/molecule -k "not (real_reboot and second)" || rc=1; exit $$rc

# The adversarial layer (tests/adversarial) runs in `make integration` with a fixed seed and a small
# budget; here a random, long run (hypothesis profile "fuzz"; failures replayed from /tmp/wgsp-hypothesis).
fuzz:
	WGSP_FUZZ_PROFILE=fuzz $(PYTEST) tests/adversarial

vm:
	$(PYTEST) tests/vm

vmlab:
	$(PYTEST) tests/vmlab

molecule:
	$(PYTEST) tests/molecule

demo: setup
	@scripts/demo.sh

demo-down:
	ansible-playbook playbooks/lab_down.yml

bench: setup
	@echo "== benchmarks (results under bench/results/)"
	@for b in bench/bench_*.py; do echo "-- $$b"; $(VENV)/bin/python "$$b"; done

clean:
	rm -rf build dist tests/output .pytest_cache
