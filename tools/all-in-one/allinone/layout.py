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

"""Where the all-in-one cloud lives: its directories, ports, URLs and
compute hosts.
"""

import dataclasses
import hashlib
import os
import pathlib

# tools/all-in-one
HERE = pathlib.Path(__file__).resolve().parent.parent
REPO = HERE.parent.parent
TEMPLATES = HERE / 'templates'
ROOT = pathlib.Path(os.environ.get('AIO_DIR', REPO / '.aio')).resolve()
VENV = ROOT / 'venv'
ETC = ROOT / 'etc'
LOGS = ROOT / 'logs'
RUN = ROOT / 'run'
DATA = ROOT / 'data'
#: PostgreSQL runs as the postgres user, which must reach its data and
#: socket directories: the tree may be where it cannot (a clone in root's
#: home, or in a ``mktemp -d`` directory, is mode 0700). So they live in
#: the postgres user's home (Debian's package makes it, and only postgres
#: and root may write there), in a directory named after the tree so that
#: two trees never share one; ``up`` empties it as it empties DATA.
POSTGRESQL = pathlib.Path('/var/lib/postgresql') / (
    'nova-emulator-threads-aio-%s'
    % hashlib.sha256(str(ROOT).encode()).hexdigest()[:12])
TEMPEST = ROOT / 'tempest'

PORTS = {
    'postgres': 15433, 'rabbitmq': 15673, 'rabbitmq_dist': 25673,
    'epmd': 14369, 'keystone': 15000, 'glance': 19292, 'placement': 18778,
    'nova': 18774, 'neutron': 19696,
}
URLS = {
    'keystone': 'http://127.0.0.1:%d' % PORTS['keystone'],
    'glance': 'http://127.0.0.1:%d' % PORTS['glance'],
    'placement': 'http://127.0.0.1:%d' % PORTS['placement'],
    'nova': 'http://127.0.0.1:%d/v2.1' % PORTS['nova'],
    'neutron': 'http://127.0.0.1:%d' % PORTS['neutron'],
}


class Failed(Exception):
    """A step of the cloud failed; the message says which and why."""


def say(message: str) -> None:
    print('all-in-one: %s' % message, flush=True)


# ---------------------------------------------------------------------------
# The compute hosts
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ComputeHost:
    name: str
    cpu_dedicated_set: str
    cpu_shared_set: str | None

    @property
    def tree(self) -> pathlib.Path:
        """The libvirtd's private /etc, /run, /var/lib, /var/cache."""
        return DATA / ('libvirt-' + self.name)

    @property
    def libvirt_uri(self) -> str:
        return 'qemu:///system?socket=%s' % (self.tree / 'run' /
                                             'libvirt-sock')


def compute_hosts() -> tuple[ComputeHost, ComputeHost]:
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        raise Failed('the all-in-one cloud needs at least 2 CPUs (one '
                     'dedicated guest CPU and one for its emulator '
                     'threads); this machine lets us use %d' % len(cpus))
    listed = ','.join(map(str, cpus))
    return (ComputeHost('aio-compute1', listed, None),
            ComputeHost('aio-compute2', ','.join(map(str, cpus[1:])),
                        str(cpus[0])))
