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

"""Cold migration and resize keep placement and pinning consistent.

On both source and destination, while the move waits for confirmation
and after it: the placement allocations (the instance's on the
destination, the migration's on the source), the pCPUs each host holds,
and the destination guest's ``<cputune>``.
"""

from typing import Any

from tests.functional import base


class MoveTest(base.EmulatorThreadsTestBase):

    def setUp(self) -> None:
        super().setUp()
        self.start_two_hosts_for_moves()
        self.isolate = self.flavor(vcpus=2, **base.ISOLATE)
        self.share = self.flavor(vcpus=2, **base.SHARE)

    def pending_migration(self, server: dict[str, Any]) -> str:
        """The UUID of the move waiting for confirmation."""
        migrations = self.api.api_get(
            '/os-migrations?instance_uuid=%s' % server['id']
        ).body['migrations']
        (pending,) = [m['uuid'] for m in migrations
                      if m['status'] == 'finished']
        return pending

    def assert_source_held(self, server: dict[str, Any], source: str,
                           pcpus: int) -> None:
        """The source keeps the guest's pCPUs until the move is confirmed.

        In placement (held by the migration) and pinned on the host.
        """
        migration = self.pending_migration(server)
        self.assertEqual(pcpus, self.allocation(migration, source)['PCPU'])
        self.assertEqual({}, self.allocation(server['id'], source))
        self.assertEqual(pcpus, len(self.pinned(source)))
        self.assertEqual(pcpus, self.usages(source)['PCPU'])

    def assert_source_freed(self, source: str) -> None:
        self.assertEqual(set(), self.pinned(source))
        self.assertEqual(0, self.usages(source)['PCPU'])

    def test_cold_migrate_isolate(self) -> None:
        server = self.boot(self.isolate, host='host1')
        self.assert_isolated(server, 'host1', vcpus=2)

        server = self._migrate_server(server)
        self.assertEqual('host2', self.host_of(server))
        self.assert_isolated(server, 'host2', vcpus=2)
        self.assert_source_held(server, 'host1', pcpus=3)

        self._confirm_resize(server)
        self.assert_isolated(server, 'host2', vcpus=2)
        self.assert_source_freed('host1')
        # And the periodic resource audit agrees.
        self._run_periodics()
        self.assert_isolated(server, 'host2', vcpus=2)
        self.assert_source_freed('host1')

    def test_resize_isolate_to_share_and_back(self) -> None:
        server = self.boot(self.isolate, host='host1')

        server = self._resize_server(server, self.share)
        self.assertEqual('host2', self.host_of(server))
        self.assert_shared(server, 'host2', vcpus=2, emulatorpin={0, 4})
        self.assert_source_held(server, 'host1', pcpus=3)
        self._confirm_resize(server)
        self.assert_shared(server, 'host2', vcpus=2, emulatorpin={0, 4})
        self.assert_source_freed('host1')

        server = self._resize_server(server, self.isolate)
        self.assertEqual('host1', self.host_of(server))
        self.assert_isolated(server, 'host1', vcpus=2)
        self.assert_source_held(server, 'host2', pcpus=2)
        self._confirm_resize(server)
        self.assert_isolated(server, 'host1', vcpus=2)
        self.assert_source_freed('host2')
        self._run_periodics()
        self.assert_isolated(server, 'host1', vcpus=2)
        self.assert_source_freed('host2')

    def test_resize_isolate_to_share_reverted(self) -> None:
        server = self.boot(self.isolate, host='host1')
        before = self.cputune(server, 'host1')

        server = self._resize_server(server, self.share)
        self.assert_source_held(server, 'host1', pcpus=3)
        self.assertEqual(2, len(self.pinned('host2')))

        self._revert_resize(server)
        self.assertEqual('host1', self.host_of(server))
        self.assert_isolated(server, 'host1', vcpus=2)
        self.assertEqual(before, self.cputune(server, 'host1'))
        self.assert_source_freed('host2')
