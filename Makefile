# The two commands of the README:
#
#   make demo   plan the bundled example host against the example flavors
#   make test   unit, functional and hypervisor tests, style/type checks,
#               a check of the built wheel, then the all-in-one tier:
#               a real OpenStack cloud on this machine and the tempest
#               plugin's tests against it
#
# Both first bootstrap a virtualenv in .venv (tools/bootstrap-venv.sh): on
# a fresh Debian 12 machine with Python 3.11 that means installing
# libvirt-dev and pkg-config with apt (as root), creating the venv and
# pip-installing this package with its test dependencies. The venv is
# reused while pyproject.toml, setup.cfg, setup.py and the bootstrap
# script are unchanged (a stamp file named after their hash).
#
# tox.ini has the same tiers as tox environments for those who prefer
# tox; the Makefile does not need it.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP_KEY := $(shell cat pyproject.toml setup.cfg setup.py tools/bootstrap-venv.sh tools/install-deps.sh | sha256sum | cut -c1-16)
STAMP := $(VENV)/.bootstrapped-$(STAMP_KEY)

# Every test tier: fail a test that hangs instead of the whole CI run.
export OS_TEST_TIMEOUT ?= 160
export OS_STDOUT_CAPTURE ?= 1
export OS_STDERR_CAPTURE ?= 1
export OS_LOG_CAPTURE ?= 1
export PYTHONDONTWRITEBYTECODE := 1

# Nova's functional environment (from Nova's tox.ini): its test base class
# refuses to run with eventlet patching off, and the API service loads its
# paste pipeline from the file pip installs into the venv.
FUNCTIONAL_ENV := OS_NOVA_DISABLE_EVENTLET_PATCHING=False \
	OS_WSGI__API_PASTE_CONFIG=$(BIN)/../etc/nova/api-paste.ini

TOTALS := $(CURDIR)/$(VENV)/test-totals

.PHONY: help venv demo test unit functional hypervisor pep8 check-wheel \
	all-in-one aio-up aio-down aio-status aio-tempest bench proof genconfig \
	clean distclean

help:
	@echo 'make demo      plan the example host against the example flavors'
	@echo 'make test      run every test suite and check (bootstraps .venv)'
	@echo 'make unit | functional | hypervisor | pep8 | check-wheel | all-in-one'
	@echo '               run one part of make test'
	@echo 'make aio-up    start an all-in-one OpenStack cloud with the extension'
	@echo 'make aio-tempest | aio-status | aio-down'
	@echo '               run the tempest plugin on it, show it, stop it'
	@echo 'make bench     time our fitter against Nova'"'"'s'
	@echo 'make proof     measure what isolating emulator threads gives a'
	@echo '               busy vCPU (real KVM guest; root; doc/source/proof.rst)'
	@echo 'make genconfig write etc/nova-emulator-threads.conf.sample'
	@echo 'make clean     remove build and test artifacts (distclean: also .venv)'

venv: $(STAMP)

$(STAMP):
	PYTHON=$(PYTHON) bash tools/bootstrap-venv.sh $(VENV) $(STAMP)

demo: venv
	$(BIN)/nova-emulator-threads plan

# Runs every part even when one fails, then says which failed, so that one
# run shows everything that is wrong; the exit status is non-zero if any
# part failed. The last line is the grand total of the test tiers.
test: venv
	@: >$(TOTALS); failed=''; \
	for part in unit functional hypervisor pep8 check-wheel all-in-one; do \
	    echo "===== $$part"; \
	    $(MAKE) --no-print-directory TEST_TOTALS=$(TOTALS) $$part \
	        || failed="$$failed $$part"; \
	done; \
	echo '====='; \
	if [ -n "$$failed" ]; then echo "make test: FAILED:$$failed"; fi; \
	awk '{p += $$1; f += $$2; s += $$3} \
	     END {printf "total: %d passed, %d failed, %d skipped\n", p, f, s}' \
	    $(TOTALS); \
	[ -z "$$failed" ]

unit: venv
	bash tools/run-stestr.sh $(BIN) unit ./tests/unit

functional: venv
	$(FUNCTIONAL_ENV) bash tools/run-stestr.sh $(BIN) functional \
	    ./tests/functional

# Real QEMU/KVM guests under a libvirtd the tests start themselves: that
# needs root, both for apt and for the daemons. One guest at a time: the
# machine has two CPUs and the tests pin to them.
hypervisor: venv
	@if [ "$$(id -u)" -ne 0 ]; then \
	    echo "hypervisor: skipped: needs root to install QEMU/libvirt" \
	         "and start libvirtd (running as uid $$(id -u))"; \
	    exit 0; \
	fi; \
	bash tools/install-deps.sh hypervisor; \
	bash tools/run-stestr.sh $(BIN) hypervisor ./tests/hypervisor \
	    --concurrency 1

# The all-in-one tier: bring a real cloud up (.aio/), run the tempest
# plugin with `tempest run`, tear the cloud down even when a step failed.
# Root, like the hypervisor tier: apt, namespaces, libvirtd, QEMU.
all-in-one:
	@if [ "$$(id -u)" -ne 0 ]; then \
	    echo "all-in-one: skipped: needs root to install and start the" \
	         "cloud's services (running as uid $$(id -u))"; \
	    exit 0; \
	fi; \
	$(PYTHON) tools/all-in-one/aio.py test \
	    $(if $(TEST_TOTALS),--totals $(TEST_TOTALS))

# The all-in-one cloud by hand (tools/all-in-one/aio.py; README.rst).
aio-up:
	$(PYTHON) tools/all-in-one/aio.py up

aio-down:
	$(PYTHON) tools/all-in-one/aio.py down

aio-status:
	$(PYTHON) tools/all-in-one/aio.py status

aio-tempest:
	$(PYTHON) tools/all-in-one/aio.py tempest

# Every checker runs even if an earlier one failed.
pep8: venv
	@failed=''; \
	for check in 'ruff check .' flake8 mypy 'reno -q lint'; do \
	    echo "$$check"; \
	    $(BIN)/$$check || failed="$$failed $${check%% *}"; \
	done; \
	if [ -n "$$failed" ]; then echo "pep8: failed:$$failed"; exit 1; fi

check-wheel: venv
	@rm -rf build
	$(BIN)/pip wheel --quiet --no-deps --wheel-dir build/wheel .
	$(BIN)/python tools/check_wheel.py build/wheel/nova_emulator_threads-*.whl

bench: venv
	$(BIN)/python tools/bench.py

# The proof of doc/source/proof.rst: a real KVM guest whose vCPU spins,
# block copies of its disk, and `measure` under Nova's default, share and
# isolate (tests/hypervisor/proof.py). Root, like the hypervisor tier.
# PROOF_ARGS='--rounds 5 --seconds 6' are the defaults.
PROOF_ARGS ?=
proof: venv
	@if [ "$$(id -u)" -ne 0 ]; then \
	    echo "proof: skipped: needs root to start libvirtd and QEMU" \
	         "(running as uid $$(id -u))"; \
	    exit 0; \
	fi; \
	bash tools/install-deps.sh hypervisor; \
	$(BIN)/python -m tests.hypervisor.proof $(PROOF_ARGS)

genconfig: venv
	$(BIN)/oslo-config-generator \
	    --config-file=etc/nova-emulator-threads-config-generator.conf

clean:
	rm -rf .stestr .mypy_cache .ruff_cache .hypothesis build dist \
	    *.egg-info releasenotes/build doc/build AUTHORS ChangeLog
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d \
	    -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) .tox .aio
