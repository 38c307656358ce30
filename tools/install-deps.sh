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

# Install the Debian packages of some profiles of bindep.txt:
#
#   tools/install-deps.sh build        what `pip install .[test]` needs:
#                                      libvirt-python compiles against
#                                      libvirt-dev, found through pkg-config
#   tools/install-deps.sh hypervisor   a real libvirtd + QEMU/KVM for
#                                      tests/hypervisor, and Prometheus,
#                                      which scrapes the exporter there
#   tools/install-deps.sh all-in-one   everything the all-in-one cloud
#                                      runs (tools/all-in-one)
#   tools/install-deps.sh --check P    only say what is missing (exit 1 if
#                                      something is)
#
# bindep.txt is the one list of packages (`bindep -b PROFILE` reads it
# too); tools/bindep_packages.py reads it here, with Python's standard
# library only, since the build profile is installed before any
# virtualenv exists.
#
# Only packages that are missing are installed, so a second run costs one
# dpkg-query. As root the script runs apt-get itself; as anybody else it
# prints the apt-get command and fails, because nothing after it can work.
#
# Debian's policy-rc.d on these machines keeps services from starting at
# install time. That is what we want: the hypervisor tests start their own
# virtlogd/libvirtd with their own configuration.

set -euo pipefail

here=$(dirname "$0")

usage() {
    echo "usage: $0 [--check] PROFILE... (profiles of bindep.txt)" >&2
    exit 2
}

check_only=false
profiles=()
for arg in "$@"; do
    case "$arg" in
        --check) check_only=true ;;
        -*) usage ;;
        *) profiles+=("$arg") ;;
    esac
done
[ ${#profiles[@]} -gt 0 ] || usage

# An unknown profile fails here (exit 2, naming the profiles there are).
listed=$(python3 "$here/bindep_packages.py" "${profiles[@]}") || exit 2
packages=()
while read -r package; do
    [ -z "$package" ] || packages+=("$package")
done <<<"$listed"

# `python3 -m venv` needs ensurepip, which Debian's own python3 ships
# separately as python3.X-venv.
if ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
    py_version=$(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    if [ "$(command -v python3)" = /usr/bin/python3 ]; then
        packages+=("python${py_version}-venv")
    else
        echo "install-deps: $(command -v python3) has no ensurepip;" \
             "install a Python ${py_version} with venv support." >&2
        exit 1
    fi
fi

is_installed() {
    [ "$(dpkg-query -W -f '${db:Status-Status}' "$1" 2>/dev/null)" = installed ]
}

missing=()
for package in "${packages[@]}"; do
    is_installed "$package" || missing+=("$package")
done

if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi

if $check_only; then
    echo "install-deps: missing Debian packages: ${missing[*]}"
    exit 1
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: missing Debian packages: ${missing[*]}" >&2
    echo "install-deps: run as root, or: sudo apt-get install ${missing[*]}" >&2
    exit 1
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
