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

"""Debian packages and the cloud's virtualenv."""

import hashlib
import os
import subprocess
import sys
import time

from allinone import layout
from allinone import processes

# The releases the cloud was brought up with; Nova is the one the
# project supports (pyproject.toml).
PIP_PACKAGES = (
    'nova==34.0.0', 'openstack-placement==16.0.0', 'keystone==30.0.0',
    'glance==33.0.0', 'neutron==29.0.0', 'tempest==47.0.0', 'SQLAlchemy<2.1',
    'libvirt-python==9.0.0', 'python-openstackclient==10.5.0',
    'uwsgi==2.0.31', 'psycopg2-binary==2.9.13',
)


# ---------------------------------------------------------------------------
# install
# ---------------------------------------------------------------------------


def require_root() -> None:
    if os.geteuid() != 0:
        raise layout.Failed('needs root: it installs Debian packages, starts '
                            'libvirtd in private namespaces and runs QEMU '
                            '(running as uid %d)' % os.geteuid())


def install() -> None:
    """Debian packages and the cloud's virtualenv.

    The virtualenv is reused while the package list and this project's
    packaging files are unchanged.
    """
    require_root()
    for path in (layout.ROOT, layout.LOGS):
        path.mkdir(parents=True, exist_ok=True)
    # Only what is missing; Debian's policy-rc.d keeps the services from
    # starting: the cloud starts its own, with its own configuration.
    install_deps = ['bash', str(layout.REPO / 'tools' / 'install-deps.sh')]
    check = subprocess.run(install_deps + ['--check', 'all-in-one'],
                           capture_output=True, text=True, check=False)
    if check.returncode != 0:
        layout.say(check.stdout.strip())
        processes.run('install', install_deps + ['all-in-one'])
    key = hashlib.sha256('\n'.join(PIP_PACKAGES).encode())
    for path in (layout.REPO / 'pyproject.toml', layout.REPO / 'setup.cfg'):
        key.update(path.read_bytes())
    stamp = layout.VENV / ('.installed-' + key.hexdigest()[:16])
    if stamp.exists():
        return
    started = time.monotonic()
    layout.say('creating the cloud\'s virtualenv %s (about 2 minutes)'
               % layout.VENV)
    if not (layout.VENV / 'bin' / 'python').exists():
        processes.run('install',
                      [sys.executable, '-m', 'venv', str(layout.VENV)])
    pip = [str(layout.VENV / 'bin' / 'python'), '-m', 'pip', 'install',
           '--quiet']
    processes.run('install', pip + ['pip>=23.1'])
    processes.run('install', pip + list(PIP_PACKAGES))
    # Editable: the cloud runs this checkout's code, tempest finds the
    # plugin through its entry point.
    processes.run('install', pip + ['--editable', str(layout.REPO)])
    for old in layout.VENV.glob('.installed-*'):
        old.unlink()
    stamp.touch()
    layout.say('virtualenv ready in %.0f s' % (time.monotonic() - started))
