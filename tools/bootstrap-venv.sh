#!/usr/bin/env bash
#    Licensed under the Apache License, Version 2.0 (the "License"); you may
#    not use this file except in compliance with the License. You may obtain
#    a copy of the License at
#
#         http://www.apache.org/licenses/LICENSE-2.0
#
#    Unless required by applicable law or agreed to in writing, software
#    distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
#    WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
#    License for the specific language governing permissions and limitations
#    under the License.

# Create or refresh the development virtualenv: tools/bootstrap-venv.sh VENV
#
# The Makefile calls this only when VENV/.bootstrapped-<key> is missing,
# where <key> is a hash of the packaging files; so an unchanged tree costs
# nothing, and a change to the dependencies reinstalls them.
#
# The package is installed editable ("pip install -e .[test]", with
# doc/requirements.txt for the docs build): its
# console script, its entry points (extra-spec validators, config options)
# and the nova/virt/emulator_threads.py driver shim are registered in the
# venv and always run the code in this tree. `make test` separately builds
# the wheel an operator would install and checks what is in it.

set -euo pipefail

venv=${1:?usage: $0 VENV STAMP}
stamp=${2:?usage: $0 VENV STAMP}
python=${PYTHON:-python3}

if ! command -v "$python" >/dev/null; then
    echo "bootstrap: $python not found; nova-emulator-threads needs" \
         "Python 3.11 or newer." >&2
    exit 1
fi
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    echo "bootstrap: $("$python" --version 2>&1) is too old; Nova 34 and" \
         "nova-emulator-threads need Python 3.11 or newer." >&2
    exit 1
fi

# Debian packages first: libvirt-python compiles against libvirt-dev.
bash "$(dirname "$0")/install-deps.sh" build

# Reuse an existing venv unless its interpreter is gone or is not the one
# asked for (a venv copied from another machine, or made by another
# Python).
if [ -x "$venv/bin/python" ] && "$venv/bin/python" -c 'import sys' 2>/dev/null \
        && [ "$("$venv/bin/python" -c 'import sys; print(sys.version_info[:2])')" \
             = "$("$python" -c 'import sys; print(sys.version_info[:2])')" ]; then
    echo "bootstrap: updating $venv"
else
    echo "bootstrap: creating $venv with $("$python" --version 2>&1)"
    rm -rf "$venv"
    "$python" -m venv "$venv"
fi

"$venv/bin/python" -m pip install --quiet 'pip>=23.1'
# The docs build is part of the pep8 tier, so its requirements go into the
# same venv.
"$venv/bin/python" -m pip install --quiet --editable '.[test]' \
    -r doc/requirements.txt

rm -f "$venv"/.bootstrapped-*
touch "$stamp"
echo "bootstrap: $venv is ready"
