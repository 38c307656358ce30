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

"""libvirt's test driver (``test:///<file>``) with our example guests.

The test driver is libvirt itself (the same XML parser, the same pin
calls, the same error codes) with an in-memory hypervisor, so tests that
use it need libvirt-python but no daemon.
"""

import os

import fixtures

from nova_emulator_threads.host import libvirt_domains
from tests.unit.host import fakehost

try:
    import libvirt
except ImportError:  # pragma: no cover - the test extra installs it
    libvirt = None

UUID_A = '11111111-2222-3333-4444-555555555555'
UUID_B = '66666666-7777-8888-9999-000000000000'


class TestDriverFixture(fixtures.Fixture):
    """A ``test:///`` node file with the given domains, and a connection.

    Each connection to the file starts from the file: changes made
    through one connection are seen by that connection only.
    """

    def __init__(self, domains: list[str]) -> None:
        super().__init__()
        self.domains = domains

    def _setUp(self) -> None:
        if libvirt is None:
            raise self.skipException('libvirt-python is not installed')
        path = os.path.join(self.useFixture(fixtures.TempDir()).path,
                            'node.xml')
        with open(path, 'w') as handle:
            handle.write(fakehost.node_xml(self.domains))
        self.uri = 'test://' + path
        self.conn = libvirt_domains.open_connection(self.uri,
                                                    read_only=False)
        self.addCleanup(self.conn.close)


def isolcpus_guest(name: str = 'instance-00000009',
                   uuid: str = fakehost.UUID_09) -> str:
    # fakehost's isolcpus guest fits the test driver's 8 CPUs as is.
    return fakehost.domain_xml(name, uuid, fakehost.PINS_09,
                               emulatorpin='1-3', iothreadpins={1: '1-3'},
                               nova=fakehost.NOVA_09)
