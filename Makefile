# The two commands of the README:
#
#   make demo   plan the bundled example host against the example flavors
#   make test   unit, functional and hypervisor tests, style/type checks
#               and the docs build, a check of the built wheel, then the
#               all-in-one tier: a real OpenStack cloud on this machine
#               and the tempest plugin's tests against it
#
# Both first bootstrap a virtualenv in .venv (tools/bootstrap-venv.sh): on
# a fresh Debian 12 machine with Python 3.11 that means installing the
# build profile of bindep.txt with apt (as root), creating the venv and
# pip-installing this package with its test dependencies and
# doc/requirements.txt. The venv is reused while the files STAMP_KEY
# hashes are unchanged (a stamp file named after their hash).
#
# This Makefile is the one definition of each tier. tox.ini's
# environments run the same targets in tox's own virtualenv: tox passes
# BIN=<its bin directory>, and then .venv is neither made nor used. Make,
# not tox, holds the definition because the README's two commands must
# work on a fresh Debian machine with nothing but python3 and make, and
# because every tier shares one virtualenv (Nova and placement installed
# once, not once per tox environment).

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
STAMP_KEY := $(shell cat pyproject.toml setup.cfg setup.py \
	doc/requirements.txt bindep.txt tools/bootstrap-venv.sh \
	tools/install-deps.sh tools/bindep_packages.py | sha256sum | cut -c1-16)
STAMP := $(VENV)/.bootstrapped-$(STAMP_KEY)

# BIN on the command line (tox: make BIN={envbindir} unit) is a prepared
# environment: use it as it is. Otherwise the tiers bootstrap .venv.
ifeq ($(origin BIN),command line)
VENV_PREREQ :=
else
BIN := $(CURDIR)/$(VENV)/bin
VENV_PREREQ := venv
endif

# Extra arguments for stestr run, e.g. make unit TEST_ARGS=tests.unit.cmd,
# and for the demo and bench commands, e.g. make demo ARGS='--format json'
# (tox passes its positional arguments in these).
TEST_ARGS ?=
ARGS ?=

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

.PHONY: help venv demo test unit functional hypervisor pep8 docs man \
	check-wheel all-in-one aio-up aio-down aio-status aio-tempest bench \
	proof genconfig releasenotes clean distclean

help:
	@echo 'make demo      plan the example host against the example flavors'
	@echo 'make test      run every test suite and check (bootstraps .venv)'
	@echo 'make unit | functional | hypervisor | pep8 | check-wheel | all-in-one'
	@echo '               run one part of make test'
	@echo 'make aio-up    start an all-in-one OpenStack cloud with the extension'
	@echo 'make aio-tempest | aio-status | aio-down'
	@echo '               run the tempest plugin on it, show it, stop it'
	@echo 'make bench     time our fitter against Nova'"'"'s'
	@echo 'make docs      build the documentation (doc/build/html)'
	@echo 'make man       build the nova-emulator-threads(1) man page'
	@echo 'make proof     measure what isolating emulator threads gives a'
	@echo '               busy vCPU (real KVM guest; root; doc/source/admin/proof.rst)'
	@echo 'make genconfig write etc/nova-emulator-threads.conf.sample'
	@echo 'make clean     remove build and test artifacts (distclean: also .venv)'

venv: $(STAMP)

$(STAMP):
	PYTHON=$(PYTHON) bash tools/bootstrap-venv.sh $(VENV) $(STAMP)

demo: $(VENV_PREREQ)
	$(BIN)/nova-emulator-threads plan $(ARGS)

# Runs every part even when one fails, then says which failed, so that one
# run shows everything that is wrong; the exit status is non-zero if any
# part failed. The last line is the grand total of the test tiers.
# The property tests run hypothesis's ci profile (5,000 derandomized
# examples each) unless HYPOTHESIS_PROFILE says otherwise; a tier run on
# its own (make unit) uses the light default profile.
test: $(VENV_PREREQ)
	@: >$(TOTALS); failed=''; \
	export HYPOTHESIS_PROFILE=$${HYPOTHESIS_PROFILE:-ci}; \
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

unit: $(VENV_PREREQ)
	bash tools/run-stestr.sh $(BIN) unit ./tests/unit $(TEST_ARGS)

functional: $(VENV_PREREQ)
	$(FUNCTIONAL_ENV) bash tools/run-stestr.sh $(BIN) functional \
	    ./tests/functional $(TEST_ARGS)

# Real QEMU/KVM guests under a libvirtd the tests start themselves, and
# the host readers on this machine's own /proc and /sys: that needs root,
# both for apt and for the daemons. One guest at a time: the machine has
# two CPUs and the tests pin to them.
hypervisor: $(VENV_PREREQ)
	@if [ "$$(id -u)" -ne 0 ]; then \
	    echo "hypervisor: skipped: needs root to install QEMU/libvirt" \
	         "and start libvirtd (running as uid $$(id -u))"; \
	    exit 0; \
	fi; \
	bash tools/install-deps.sh hypervisor; \
	bash tools/run-stestr.sh $(BIN) hypervisor ./tests/hypervisor \
	    --concurrency 1 $(TEST_ARGS)

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

# Every checker runs even if an earlier one failed. The docs build is one
# of them: a warning (a broken reference, an option without help, a
# docstring autodoc cannot read) fails it.
pep8: $(VENV_PREREQ)
	@failed=''; \
	for check in 'ruff check .' flake8 mypy 'reno -q lint' \
	        '$(SPHINX_HTML)'; do \
	    echo "$$check"; \
	    $(BIN)/$$check || failed="$$failed $${check%% *}"; \
	done; \
	if [ -n "$$failed" ]; then echo "pep8: failed:$$failed"; exit 1; fi

# The documentation and the man page, warnings as errors, offline (no
# intersphinx).
SPHINX := sphinx-build -q -W --keep-going -d doc/build/doctrees
SPHINX_HTML := $(SPHINX) -b html doc/source doc/build/html

docs: $(VENV_PREREQ)
	$(BIN)/$(SPHINX_HTML)

man: $(VENV_PREREQ)
	$(BIN)/$(SPHINX) -b man doc/source doc/build/man
	@echo "man: doc/build/man/nova-emulator-threads.1"

releasenotes: $(VENV_PREREQ)
	$(BIN)/sphinx-build -q -W -a -E -d releasenotes/build/doctrees \
	    -b html releasenotes/source releasenotes/build/html

check-wheel: $(VENV_PREREQ)
	@rm -rf build
	$(BIN)/pip wheel --quiet --no-deps --wheel-dir build/wheel .
	$(BIN)/python tools/check_wheel.py build/wheel/nova_emulator_threads-*.whl

bench: $(VENV_PREREQ)
	$(BIN)/python tools/bench.py $(ARGS)

# The proof of doc/source/admin/proof.rst: a real KVM guest whose vCPU spins,
# block copies of its disk, and `measure` under Nova's default, share and
# isolate (tests/hypervisor/proof.py). Root, like the hypervisor tier.
# ARGS='--rounds 5 --seconds 6' are the defaults.
proof: $(VENV_PREREQ)
	@if [ "$$(id -u)" -ne 0 ]; then \
	    echo "proof: skipped: needs root to start libvirtd and QEMU" \
	         "(running as uid $$(id -u))"; \
	    exit 0; \
	fi; \
	bash tools/install-deps.sh hypervisor; \
	$(BIN)/python -m tests.hypervisor.proof $(ARGS)

genconfig: $(VENV_PREREQ)
	$(BIN)/oslo-config-generator \
	    --config-file=etc/nova-emulator-threads-config-generator.conf

clean:
	rm -rf .stestr .mypy_cache .ruff_cache .hypothesis build dist \
	    *.egg-info releasenotes/build doc/build AUTHORS ChangeLog
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d \
	    -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV) .tox .aio
