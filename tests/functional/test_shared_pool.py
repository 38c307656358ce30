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

"""The shared emulator pool, through the API: each ``[emulator_threads]``
option, as an operator and a user see it.

* ``shared_pool_affinity = numa``: the ``<emulatorpin>`` and
  ``<iothreadpin>`` of a ``share`` guest in the domain XML;
* ``shared_pool_vcpus``: the placement allocations (``VCPU`` besides
  ``PCPU``), NoValidHost when the pool is full, the room given back by a
  delete, and carried by a cold migration, a resize and a live
  migration;
* ``shared_pool_quota``: ``<emulator_period>``/``<emulator_quota>``;
* a ``share`` guest with realtime vCPUs is never sent to a host without
  a shared pool (whatever the options).
"""

import logging
from typing import Any

import fixtures
from lxml import etree
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.functional.libvirt import base as libvirt_base

from tests.functional import base

#: Every vCPU realtime: allowed only with an emulator threads policy.
REALTIME_SHARE = dict(base.SHARE, hw__cpu_realtime='yes')
NO_VALID_HOST = 'No valid host was found'


class SharedPoolTestBase(base.EmulatorThreadsTestBase):

    def emulator_options(self, **options: Any) -> None:
        self.flags(group='emulator_threads', **options)

    def pool_usage(self, hostname: str) -> int:
        return self.usages(hostname)['VCPU']

    def assert_no_valid_host(self, server: dict[str, Any]) -> None:
        self.assertEqual('ERROR', server['status'])
        self.assertIn(NO_VALID_HOST, server['fault']['message'])
        # Refused by the scheduler, not after a failed spawn and retries.
        self.assertNotIn('retries', server['fault']['message'])
        self.assertIsNone(server['OS-EXT-SRV-ATTR:host'])
        self.assertEqual({}, self._get_allocations_by_server_uuid(
            server['id']))


class NUMAAffinityTest(SharedPoolTestBase):
    """``shared_pool_affinity = numa``: the guest's cells' shared CPUs."""

    def setUp(self) -> None:
        super().setUp()
        self.emulator_options(shared_pool_affinity='numa')

    def test_one_cell_guest_pinned_to_its_cells_shared_cpu(self) -> None:
        # Cells of CPUs 0-3 and 4-7; 0 and 4 are shared.
        host = self.start_host('host1', dedicated='1-3,5-7', shared='0,4')
        flavor = self.flavor(vcpus=2, **base.SHARE)
        # The first fills most of one cell, the second goes to the other.
        # A loop, not cases: both guests of one host, each in its own cell.
        for server in (self.boot(flavor), self.boot(flavor)):
            (cell,) = self.instance_numa(server).cells
            local = {0} if cell.id == 0 else {4}
            tune = self.cputune(server, host)
            self.assertEqual(local, tune['emulatorpin'])
            self.assertEqual({1: local}, tune['iothreadpin'])
            self.assertLessEqual(self.vcpu_pcpus(tune),
                                 set(range(cell.id * 4, cell.id * 4 + 4)))
        self.assertEqual(
            {0, 1}, {c.id for s in self.api.get_servers()
                     for c in self.instance_numa(s).cells})

    def test_two_cell_guest_pinned_to_both(self) -> None:
        host = self.start_host('host1', dedicated='1-3,5-7', shared='0,4')
        server = self.boot(self.flavor(vcpus=4, hw__numa_nodes='2',
                                       **base.SHARE))
        self.assert_shared(server, host, vcpus=4, emulatorpin={0, 4})

    def test_cell_without_shared_cpus_falls_back_to_whole_set(self) -> None:
        # Only cell 0 has a shared CPU.
        host = self.start_host('host1', dedicated='1-3,4-7', shared='0')
        flavor = self.flavor(vcpus=3, **base.SHARE)
        first = self.boot(flavor)
        second = self.boot(flavor)
        cells = {s['id']: self.instance_numa(s).cells[0].id
                 for s in (first, second)}
        self.assertEqual({0, 1}, set(cells.values()))
        # A loop, not cases: both guests of the one host above.
        for server in (first, second):
            # Cell 0's shared CPU either way: local for one, the whole set
            # for the other.
            self.assertEqual({0}, self.cputune(server, host)['emulatorpin'])
        on_cell_1 = [uuid for uuid, cell in cells.items() if cell == 1]
        warnings = [line for line in self.stdlog.logger.output.splitlines()
                    if 'None of the host NUMA cells' in line]
        self.assertEqual(1, len(warnings), warnings)
        self.assertIn('None of the host NUMA cells 1 of the guest has CPUs '
                      'of [compute] cpu_shared_set (0)', warnings[0])
        # Once per guest: a hard reboot rebuilds the XML, no new warning.
        self._reboot_server({'id': on_cell_1[0]}, hard=True)
        warnings = [line for line in self.stdlog.logger.output.splitlines()
                    if 'None of the host NUMA cells' in line]
        self.assertEqual(1, len(warnings), warnings)

    def test_isolate_is_unchanged(self) -> None:
        host = self.start_host('host1', dedicated='1-3,5-7', shared='0,4')
        server = self.boot(self.flavor(vcpus=2, **base.ISOLATE))
        self.assert_isolated(server, host, vcpus=2)


class AccountedPoolTest(SharedPoolTestBase):
    """``shared_pool_vcpus``: the pool is counted in placement."""

    def setUp(self) -> None:
        super().setUp()
        self.emulator_options(shared_pool_vcpus=1)
        # Two shared CPUs, one VCPU each: a pool of 2 VCPU.
        self.flags(cpu_allocation_ratio=1.0)

    def test_allocations(self) -> None:
        host = self.start_host('host1', dedicated='1-3,5-7', shared='0,4')
        server = self.boot(self.flavor(vcpus=2, **base.SHARE))
        self.assert_shared(server, host, vcpus=2, emulatorpin={0, 4})
        self.assertEqual({'DISK_GB': 1, 'MEMORY_MB': 1024, 'PCPU': 2,
                          'VCPU': 1}, self.allocation(server['id'], host))
        self.assertEqual(1, self.pool_usage(host))

    def test_isolate_and_no_policy_take_nothing_from_the_pool(self) -> None:
        host = self.start_host('host1', dedicated='1-3,5-7', shared='0,4')
        self.boot(self.flavor(vcpus=2, **base.ISOLATE))
        self.boot(self.flavor(vcpus=1, hw__cpu_policy='dedicated'))
        self.assertEqual(0, self.pool_usage(host))
        self.assertEqual(4, self.usages(host)['PCPU'])

    def test_mixed_guest_claims_on_top_of_its_shared_vcpus(self) -> None:
        host = self.start_host('host1', dedicated='1-3,5-7', shared='0,4')
        server = self.boot(self.flavor(
            vcpus=2, hw__cpu_policy='mixed', hw__cpu_dedicated_mask='1',
            hw__cpu_emulator_threads='share'))
        # One VCPU for the shared vCPU 0, one for the emulator threads.
        self.assertEqual({'DISK_GB': 1, 'MEMORY_MB': 1024, 'PCPU': 1,
                          'VCPU': 2}, self.allocation(server['id'], host))
        self.assertEqual(2, self.pool_usage(host))
        # The pool is full.
        self.assert_no_valid_host(self.boot(self.flavor(vcpus=1, **base.SHARE),
                                            expected_state='ERROR'))

    def test_full_pool_no_valid_host_then_refill(self) -> None:
        host = self.start_host('host1', dedicated='1-3,5-7', shared='0,4')
        flavor = self.flavor(vcpus=1, **base.SHARE)
        first = self.boot(flavor)
        second = self.boot(flavor)
        self.assertEqual(2, self.pool_usage(host))
        # Four free pCPUs, but no room left in the pool.
        third = self.boot(flavor, expected_state='ERROR')
        self.assert_no_valid_host(third)
        self.assertEqual(2, self.usages(host)['PCPU'])
        self.assertEqual(2, self.pool_usage(host))

        self._delete_server(first)
        self.assertEqual(1, self.pool_usage(host))
        fourth = self.boot(flavor)
        self.assertEqual({'DISK_GB': 1, 'MEMORY_MB': 1024, 'PCPU': 1,
                          'VCPU': 1}, self.allocation(fourth['id'], host))
        self.assertEqual(2, self.pool_usage(host))
        self.assertEqual('ACTIVE', self.api.get_server(second['id'])['status'])

    def test_host_without_shared_pool_is_never_chosen(self) -> None:
        # No cpu_shared_set: no VCPU inventory, no allocation candidate.
        host = self.start_host('host1', dedicated='0-7')
        server = self.boot(self.flavor(vcpus=1, **base.SHARE),
                           expected_state='ERROR')
        self.assert_no_valid_host(server)
        self.assertEqual(0, self.usages(host)['PCPU'])


class AccountedPoolMoveTest(SharedPoolTestBase):
    """Moves carry the pool's VCPU: placement moves the allocations."""

    def setUp(self) -> None:
        super().setUp()
        self.emulator_options(shared_pool_vcpus=1)
        self.start_two_hosts_for_moves()
        self.share = self.flavor(vcpus=2, **base.SHARE)

    def migration_allocation(self, server: dict[str, Any],
                             source: str) -> dict[str, int]:
        migrations = self.api.api_get(
            '/os-migrations?instance_uuid=%s' % server['id']
        ).body['migrations']
        (pending,) = [m['uuid'] for m in migrations
                      if m['status'] == 'finished']
        return self.allocation(pending, source)

    def test_cold_migrate(self) -> None:
        server = self.boot(self.share, host='host1')
        self.assertEqual(1, self.pool_usage('host1'))

        server = self._migrate_server(server)
        self.assertEqual('host2', self.host_of(server))
        # Both hosts hold it until the move is confirmed.
        self.assertEqual({'PCPU': 2, 'VCPU': 1}, {
            rc: n for rc, n in self.allocation(server['id'], 'host2').items()
            if rc in ('PCPU', 'VCPU')})
        held = self.migration_allocation(server, 'host1')
        self.assertEqual((2, 1), (held['PCPU'], held['VCPU']))
        self.assertEqual(1, self.pool_usage('host1'))
        self.assertEqual(1, self.pool_usage('host2'))
        self.assert_shared(server, 'host2', vcpus=2, emulatorpin={0, 4})

        self._confirm_resize(server)
        self.assertEqual(0, self.pool_usage('host1'))
        self.assertEqual(1, self.pool_usage('host2'))
        self._run_periodics()
        self.assertEqual(0, self.pool_usage('host1'))
        self.assertEqual(1, self.pool_usage('host2'))

    def test_resize_share_to_isolate_and_back(self) -> None:
        isolate = self.flavor(vcpus=2, **base.ISOLATE)
        server = self.boot(self.share, host='host1')

        server = self._resize_server(server, isolate)
        self.assertEqual('host2', self.host_of(server))
        self.assert_isolated(server, 'host2', vcpus=2)
        self.assertNotIn('VCPU', self.allocation(server['id'], 'host2'))
        self.assertEqual(0, self.pool_usage('host2'))
        self.assertEqual(1, self.migration_allocation(server,
                                                      'host1')['VCPU'])
        self._confirm_resize(server)
        self.assertEqual(0, self.pool_usage('host1'))

        server = self._resize_server(server, self.share)
        self.assertEqual('host1', self.host_of(server))
        self.assert_shared(server, 'host1', vcpus=2, emulatorpin={0, 4})
        self.assertEqual(1, self.allocation(server['id'], 'host1')['VCPU'])
        self._confirm_resize(server)
        self.assertEqual(1, self.pool_usage('host1'))
        self.assertEqual(0, self.pool_usage('host2'))

    def test_resize_reverted(self) -> None:
        bigger = self.flavor(vcpus=3, **base.SHARE)
        server = self.boot(self.share, host='host1')
        server = self._resize_server(server, bigger)
        self.assertEqual(1, self.pool_usage('host2'))
        self.assertEqual(1, self.pool_usage('host1'))
        self._revert_resize(server)
        self.assertEqual('host1', self.host_of(server))
        self.assertEqual(1, self.pool_usage('host1'))
        self.assertEqual(0, self.pool_usage('host2'))
        self.assertEqual(2, self.allocation(server['id'], 'host1')['PCPU'])


class AccountedPoolLiveMigrationTest(libvirt_base.LibvirtMigrationMixin,
                                     SharedPoolTestBase):
    """A live migration carries the pool's VCPU, and the destination's
    XML pins the emulator threads to the destination cell's shared CPU.

    Fake libvirt cannot move a guest: ``_migrate_stub`` starts the
    destination XML that Nova's source driver built, as Nova's own live
    migration tests do; everything else of the move is real.
    """

    def setUp(self) -> None:
        super().setUp()
        self.emulator_options(shared_pool_vcpus=1,
                              shared_pool_affinity='numa')
        self.start_two_hosts_for_moves()
        self.src = self.computes['host1']
        self.dest = self.computes['host2']
        self.during: dict[str, int] = {}

    def _migrate_stub(self, domain: Any, destination: str, params: Any,
                      flags: int) -> None:
        # While the guest moves, both hosts hold its share of the pool.
        self.during = {host: self.pool_usage(host)
                       for host in ('host1', 'host2')}
        super()._migrate_stub(domain, destination, params, flags)

    def test_live_migrate(self) -> None:
        self.server = self.boot(self.flavor(vcpus=2, **base.SHARE),
                                host='host1')
        self.assertEqual(1, self.pool_usage('host1'))

        server = self._live_migrate(self.server, 'completed')
        self.assertTrue(self.migrate_stub_ran)
        self.assertEqual({'host1': 1, 'host2': 1}, self.during)
        self.assertEqual('host2', self.host_of(server))
        self.assertEqual(0, self.pool_usage('host1'))
        self.assertEqual(1, self.pool_usage('host2'))
        self.assertEqual(1, self.allocation(server['id'], 'host2')['VCPU'])
        (cell,) = self.instance_numa(server).cells
        self.assert_shared(server, 'host2', vcpus=2,
                           emulatorpin={0} if cell.id == 0 else {4})
        self._run_periodics()
        self.assertEqual(0, self.pool_usage('host1'))
        self.assertEqual(1, self.pool_usage('host2'))


class QuotaTest(SharedPoolTestBase):
    """``shared_pool_quota``: the emulator threads' CFS cap in the XML."""

    def setUp(self) -> None:
        super().setUp()
        self.emulator_options(shared_pool_vcpus=1, shared_pool_quota=True)
        self.flags(cpu_allocation_ratio=4.0)
        # Nova's fake libvirt keeps only the elements it models, so read
        # the domain XML the driver defines (libvirt itself keeps it all;
        # the hypervisor tests check what it does with it).
        self.defined: dict[str, Any] = {}
        define = fakelibvirt.Connection.defineXML

        def record(conn: Any, xml: str) -> Any:
            root = etree.fromstring(xml.encode('utf-8'))
            self.defined[root.findtext('uuid')] = root
            return define(conn, xml)

        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.fixtures.libvirt.Connection.defineXML', record))
        self.host = self.start_host('host1', dedicated='1-3,5-7',
                                    shared='0,4')

    def bandwidth(self, server: dict[str, Any]) -> tuple[str | None, ...]:
        root = self.defined[server['id']]
        return (root.findtext('./cputune/emulator_period'),
                root.findtext('./cputune/emulator_quota'))

    def test_share_guest_is_capped_at_what_it_was_accounted(self) -> None:
        server = self.boot(self.flavor(vcpus=2, **base.SHARE))
        # 1 VCPU of a pool at ratio 4: a quarter of a pCPU.
        self.assertEqual(('100000', '25000'), self.bandwidth(server))
        self.assert_shared(server, self.host, vcpus=2, emulatorpin={0, 4})

    def test_isolate_guest_is_not_capped(self) -> None:
        server = self.boot(self.flavor(vcpus=2, **base.ISOLATE))
        self.assertEqual((None, None), self.bandwidth(server))

    def test_no_cap_without_accounting(self) -> None:
        self.emulator_options(shared_pool_vcpus=0)
        server = self.boot(self.flavor(vcpus=2, **base.SHARE))
        self.assertEqual((None, None), self.bandwidth(server))


class RealtimeShareGuardTest(SharedPoolTestBase):
    """A realtime ``share`` guest never lands on a host without a pool."""

    def test_host_without_shared_pool_is_rejected(self) -> None:
        # The reason is logged at debug level.
        reasons = self.useFixture(fixtures.FakeLogger(
            name='nova_emulator_threads.scheduler.filters',
            level=logging.DEBUG))
        host = self.start_host('host1', dedicated='0-7')
        server = self.boot(self.flavor(vcpus=2, **REALTIME_SHARE),
                           expected_state='ERROR')
        self.assert_no_valid_host(server)
        self.assertEqual(set(), self.pinned(host))
        self.assertIn("realtime vCPUs 0-1 and emulator threads policy "
                      "'share', which needs [compute] cpu_shared_set, "
                      "and the host has no shared CPUs", reasons.output)

    def test_host_with_shared_pool_runs_it(self) -> None:
        host = self.start_host('host1', dedicated='1-3,5-7', shared='0,4')
        server = self.boot(self.flavor(vcpus=2, **REALTIME_SHARE))
        self.assert_shared(server, host, vcpus=2, emulatorpin={0, 4})
