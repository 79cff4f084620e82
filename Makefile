# RazorFS: every target bootstraps what it needs (system packages, .venv, generated stubs).
SHELL := /bin/bash
PYTHON_BOOT ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
BIN_CACHE ?= $(HOME)/.cache/razorfs/bin
# The local Kubernetes node (tests/realparts/cluster/) runs containerd + runc with the CNI bridge
# plugin, iptables for kube-proxy, iptables and ipset for kube-router's NetworkPolicy firewall, and
# builds its images with debootstrap and buildah.
APT_PACKAGES := fuse3 libfuse3-dev pkg-config rclone s3fs openssl util-linux gcc iproute2 iptables ipset strace \
  containerd runc containernetworking-plugins buildah debootstrap prometheus
PYTEST_ARGS ?=

.PHONY: setup system-deps proto test-bins lint typecheck unit test demo csi-sanity bench soak dev-up dev-down clean helm-lint

setup: system-deps $(VENV)/.installed proto

system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	fi

$(VENV)/.installed: pyproject.toml
	@test -x $(PY) || $(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test,bench]'
	@touch $@

proto: $(VENV)/.installed
	@$(PY) proto/generate.py

test-bins:
	@tests/bins/build-test-bins.sh all

lint: setup
	$(VENV)/bin/ruff check nodeplugin operator proto/generate.py tests
	$(VENV)/bin/lint-imports --no-cache

typecheck: setup
	$(VENV)/bin/mypy nodeplugin/razorfs operator/razorfs_operator

test: setup test-bins lint typecheck
	$(VENV)/bin/pytest $(PYTEST_ARGS)

demo: setup test-bins
	$(PY) -m tests.realparts.demo $(DEMO_ARGS)

# A real single-node Kubernetes on this machine (etcd, kube-apiserver, controller-manager, scheduler,
# containerd, kubelet, kube-proxy, kube-router's NetworkPolicy firewall, a CNI bridge), SeaweedFS S3
# on the bridge address and the chart installed with helm from locally built images; detached, state
# in .dev/ (source .dev/env).
# Both targets are idempotent; dev-down restores the host as it was.
dev-up: setup test-bins
	$(PY) -m tests.realparts.dev_cluster up

dev-down:
	@test -x $(PY) || { echo "no .venv: nothing was started"; exit 0; }; $(PY) -m tests.realparts.dev_cluster down

helm-lint: test-bins
	$(BIN_CACHE)/helm lint --strict charts/razorfs
	$(BIN_CACHE)/helm lint --strict charts/razorfs --values tests/integration/chart/values-all-on.yaml

csi-sanity: setup test-bins
	$(VENV)/bin/pytest tests/integration/csi/test_csi_sanity.py -v $(PYTEST_ARGS)

bench: setup
	$(PY) -m tests.bench $(BENCH_ARGS)

# The long tests for DURATION of wall time (crash runs, random operations and workloads under
# faults share it); prints operations, crashes and bytes, and fails if it ran short.
DURATION ?= 30m
soak: setup test-bins
	$(PY) -m tests.reliability.soak_run --duration $(DURATION) -- $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) proto/razorfs_wire .mypy_cache .ruff_cache
