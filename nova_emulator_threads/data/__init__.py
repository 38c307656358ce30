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

"""Bundled example hosts: ``virsh capabilities`` output of real shapes.

They let ``nova-emulator-threads plan`` and the tests work on a realistic
host without one at hand. Each file is the full text libvirt 9.0 (Debian
12, QEMU 7.2) prints, and validates against libvirt's ``capability``
schema (``virt-xml-validate FILE capability``).

``two-socket-smt``
    Two Intel Xeon Silver 4114 (Skylake-SP, 10 cores with 2 threads each),
    one NUMA cell per socket, 40 CPUs numbered as Linux does: the first
    thread of each core first (socket 0 is CPUs 0-9, socket 1 CPUs 10-19),
    then the second threads (20-29 and 30-39), so CPU N's sibling is
    N+20. Core ids have the gaps Skylake-SP reports (0-4, 8-12). Each cell
    has about 94 GiB, of which 2048 pages of 2 MiB and 16 pages of 1 GiB
    are reserved as huge pages; cell distances 10/21.

``four-core-housekeeping``
    One Intel Xeon E-2224 (Coffee Lake, 4 cores, no SMT), one NUMA cell
    with about 31 GiB and 2048 pages of 2 MiB: the small realtime host of
    the density example, where one core does housekeeping (host load and
    emulator threads) and three are isolated for guests.
"""

import importlib.resources
from importlib.resources.abc import Traversable

from nova_emulator_threads import exception

#: Names of the bundled hosts (file names without ``.xml``).
EXAMPLE_HOSTS = ('two-socket-smt', 'four-core-housekeeping')
#: The host ``plan`` uses when given none.
DEFAULT_EXAMPLE_HOST = 'two-socket-smt'


def _resource(name: str) -> Traversable:
    if name not in EXAMPLE_HOSTS:
        raise exception.Invalid(
            reason='example host %r does not exist; the bundled hosts are '
                   '%s' % (name, ', '.join(EXAMPLE_HOSTS)))
    return importlib.resources.files(__name__) / ('%s.xml' % name)


def example_host_path(name: str = DEFAULT_EXAMPLE_HOST) -> str:
    """The file system path of a bundled host's capabilities XML.

    :param name: one of ``EXAMPLE_HOSTS``
    :raises: Invalid naming the unknown host and the known ones
    :returns: an absolute path (the package is installed unzipped, as pip
        always does)
    """
    return str(_resource(name))


def example_host_xml(name: str = DEFAULT_EXAMPLE_HOST) -> str:
    """The text of a bundled host's capabilities XML.

    :param name: one of ``EXAMPLE_HOSTS``
    :raises: Invalid naming the unknown host and the known ones
    """
    return _resource(name).read_text(encoding='utf-8')
