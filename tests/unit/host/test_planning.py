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

"""Unit tests of the plan and the density rows on a bundled host."""

from nova_emulator_threads import exception
from nova_emulator_threads.host import planning
from nova_emulator_threads.virt import guest_topology
from tests.unit import base
from tests.unit.virt.cases import bundled

REALTIME = {'hw:cpu_realtime': 'yes'}


class TestRealtimeHousekeepingHost(base.TestCase):
    """The price of each policy on a small realtime host.

    Four cores, one of them kept for housekeeping (host load and emulator
    threads), three for 1-vCPU realtime guests.
    """

    def setUp(self) -> None:
        super().setUp()
        self.host, self.without = bundled('four-core-housekeeping', '1-3',
                                          '0')
        self.rows = {row.policy: row for row in planning.density_report(
            self.host, self.without, 1, 1024, REALTIME)}

    def test_isolate_fits_one(self) -> None:
        # "1.05 = 2": each guest takes its vCPU's pCPU and one more.
        row = self.rows['isolate']
        self.assertEqual((1, 2, 1), (row.vcpus, row.pcpus_per_guest,
                                     row.guests))

    def test_shared_emulator_pool_fits_three(self) -> None:
        row = self.rows['share + cpu_shared_set']
        self.assertEqual((1, 1, 3), (row.vcpus, row.pcpus_per_guest,
                                     row.guests))
        self.assertEqual(frozenset({0}), row.cpu_shared_set)
        # The pool really is the housekeeping core: libvirt gets
        # <emulatorpin cpuset='0'/> for the guest.
        result = planning.plan(self.host, 1, 1024, row.extra_specs)
        self.assertEqual([0], result['emulatorpin'])
        self.assertNotIn(0, result['cells'][0]['cpu_pinning'].values())

    def test_accounted_pool_fits_three(self) -> None:
        # The pool (one housekeeping core at Nova's ratio of 4.0: 4 VCPU)
        # has room for three guests claiming 1 VCPU each: the three pCPUs
        # are what ends it, not the pool, and isolate still fits one.
        rows = {row.policy: row for row in planning.density_report(
            self.host, self.without, 1, 1024, REALTIME,
            shared_pool_vcpus=1, cpu_allocation_ratio=4.0)}
        row = rows['share + accounted pool']
        self.assertEqual((1, 1, 3, None), (row.vcpus, row.pcpus_per_guest,
                                           row.guests, row.note))
        self.assertEqual(1, rows['isolate'].guests)
        self.assertIn('1 VCPU per guest of a pool of 4', row.emulator_threads)
        # The guest asks placement for its vCPU's PCPU and 1 VCPU.
        result = planning.plan(self.host, 1, 1024, row.extra_specs,
                               pool=planning.SharedPool(vcpus=1))
        self.assertEqual({'PCPU': 1, 'VCPU': 1}, result['placement'])

    def test_accounted_pool_full_before_the_pcpus(self) -> None:
        # At a ratio of 2 the pool holds two guests' emulator threads.
        rows = planning.density_report(self.host, self.without, 1, 1024,
                                       REALTIME, shared_pool_vcpus=1,
                                       cpu_allocation_ratio=2.0)
        row = rows[-1]
        self.assertEqual(('share + accounted pool', 2), (row.policy,
                                                         row.guests))
        self.assertIn('the shared pool (2 VCPU) is full', row.note)

    def test_no_accounted_row_by_default(self) -> None:
        self.assertNotIn('share + accounted pool', self.rows)

    def test_realtime_mask_needs_two_vcpus_and_fits_one(self) -> None:
        row = self.rows['realtime, mask ^0']
        self.assertIn('hw:cpu_realtime_mask', row.note)
        self.assertIn('counted with 2 vCPUs', row.note)
        self.assertEqual((2, 2, 1), (row.vcpus, row.pcpus_per_guest,
                                     row.guests))
        self.assertRaises(exception.Invalid,
                          guest_topology.instance_topology_from_flavor,
                          1, 1024, row.extra_specs)

    def test_realtime_without_policy_or_mask_is_refused(self) -> None:
        # All vCPUs realtime and no emulator threads policy: Nova refuses
        # the flavor, so there is nothing to count.
        row = self.rows['no policy']
        self.assertIsNone(row.guests)
        self.assertIn('hw:cpu_realtime', row.note)

    def test_realtime_share_without_shared_set_is_refused(self) -> None:
        # The emulator threads would float over the realtime vCPUs' pCPUs,
        # which the libvirt driver refuses.
        row = self.rows['share, no cpu_shared_set']
        self.assertEqual(frozenset(), row.cpu_shared_set)
        self.assertIsNone(row.guests)
        self.assertIn('cpu_shared_set', row.note)

    def test_share_without_shared_set_floats_over_guest_pcpus(self) -> None:
        # Not realtime: the guests boot, their emulator threads on their
        # own pCPU.
        rows = planning.density_report(self.host, self.without, 1, 1024)
        row = rows[1]
        self.assertEqual(('share, no cpu_shared_set', 3, None),
                         (row.policy, row.guests, row.note))
        result = planning.plan(self.without, 1, 1024, row.extra_specs)
        pcpus = list(result['cells'][0]['cpu_pinning'].values())
        self.assertEqual(pcpus, result['emulatorpin'])
        self.assertEqual(
            [('no policy', 3), ('share + cpu_shared_set', 3),
             ('isolate', 1), ('isolate, siblings avoided', 1),
             ('realtime, mask ^0', 1)],
            [(row.policy, row.guests) for row in rows if row is not
             rows[1]])
