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

"""Density: identical guests packed until the next one does not fit."""


import ddt

from nova_emulator_threads import exception
from nova_emulator_threads.cmd import plan
from nova_emulator_threads.virt import claims
from nova_emulator_threads.virt import density
from nova_emulator_threads.virt import guest_topology
from nova_emulator_threads.virt import hardware
from nova_emulator_threads.virt.libvirt import capabilities
from tests.unit import base
from tests.unit.virt import cases
from tests.unit.virt.cases import bundled


@ddt.ddt
class TestTwoSocketHost(base.TestCase):

    def test_table(self) -> None:
        host, without = bundled('two-socket-smt', plan.EXAMPLE_DEDICATED_SET,
                                plan.EXAMPLE_SHARED_SET)
        rows = density.density_report(host, without, 4, 1024)
        # 18 dedicated pCPUs a socket: four 4-pCPU guests, or three 5-pCPU
        # isolate guests, per socket.
        self.assertEqual(
            [('no policy', 8), ('share, no cpu_shared_set', 8),
             ('share + cpu_shared_set', 8), ('isolate', 6),
             ('isolate, siblings avoided', 6), ('realtime, mask ^0', 8)],
            [(row.policy, row.guests) for row in rows])
        self.assertEqual([4, 4, 4, 5, 5, 4],
                         [row.pcpus_per_guest for row in rows])
        self.assertTrue(all(row.note is None for row in rows))

    # vCPUs per guest, guests on the host.
    @ddt.data((1, 18), (2, 12), (3, 8))
    @ddt.unpack
    def test_what_avoiding_siblings_costs(self, vcpus: int,
                                          guests: int) -> None:
        # Isolate guests: avoid puts no emulator pCPU on a thread of a
        # guest's vCPU core, and the host still takes as many guests (the
        # pCPU it frees goes to the next guest).
        host, without = bundled('two-socket-smt', plan.EXAMPLE_DEDICATED_SET,
                                plan.EXAMPLE_SHARED_SET)
        rows = {row.policy: row for row in density.density_report(
            host, without, vcpus, 1024)}
        allowed = rows['isolate']
        avoided = rows['isolate, siblings avoided']
        self.assertEqual(guests, allowed.guests)
        self.assertEqual(guests, avoided.guests)
        self.assertEqual(0, avoided.emulator_on_vcpu_sibling)

    def test_where_nova_puts_the_emulator_pcpu(self) -> None:
        # 1-vCPU isolate guests: Nova puts every emulator pCPU on the
        # other thread of the guest's vCPU core.
        host, without = bundled('two-socket-smt', plan.EXAMPLE_DEDICATED_SET,
                                plan.EXAMPLE_SHARED_SET)
        rows = {row.policy: row for row in density.density_report(
            host, without, 1, 1024)}
        self.assertEqual(18, rows['isolate'].emulator_on_vcpu_sibling)
        # An odd number of vCPUs leaves a half core, which Nova fills with
        # the guest's own emulator threads.
        rows = {row.policy: row for row in density.density_report(
            host, without, 3, 1024)}
        self.assertEqual(8, rows['isolate'].emulator_on_vcpu_sibling)
        # 5-vCPU guests: Nova fits three per cell of nine cores exactly,
        # each emulator pCPU the other thread of its fifth vCPU's core;
        # with avoid, the third guest's vCPUs touch every core left.
        rows = {row.policy: row for row in density.density_report(
            host, without, 5, 1024)}
        self.assertEqual((6, 6), (rows['isolate'].guests,
                                  rows['isolate'].emulator_on_vcpu_sibling))
        self.assertEqual((4, 0), (
            rows['isolate, siblings avoided'].guests,
            rows['isolate, siblings avoided'].emulator_on_vcpu_sibling))

    def test_avoiding_siblings_can_cost_a_guest(self) -> None:
        # One cell, two cores of two threads: a 3-vCPU isolate guest takes
        # three threads, and the fourth is a vCPU's sibling.
        xml = cases.caps_xml(1, 2, 2, True, [8192], None)
        host = capabilities.host_topology_from_caps(xml, '0-3', '')
        inst = guest_topology.instance_topology_from_flavor(3, 1024, {
            'hw:cpu_policy': 'dedicated',
            'hw:cpu_emulator_threads': 'isolate'})
        self.assertEqual(1, density.density(host, inst))
        self.assertEqual(0, density.density(
            host, inst, emulator_pcpu_siblings='avoid'))

    def test_no_shared_set(self) -> None:
        host, without = bundled('two-socket-smt', plan.EXAMPLE_DEDICATED_SET,
                                '')
        row = density.density_report(host, without, 4, 1024)[2]
        self.assertEqual('share + cpu_shared_set', row.policy)
        self.assertIsNone(row.guests)
        self.assertEqual('the host has no cpu_shared_set', row.note)

    @ddt.data('hw:cpu_policy', 'hw:cpu_emulator_threads',
              'hw:emulator_threads_policy')
    def test_policy_keys_are_refused(self, key: str) -> None:
        host, without = bundled('two-socket-smt', plan.EXAMPLE_DEDICATED_SET,
                                plan.EXAMPLE_SHARED_SET)
        exc = self.assertRaises(exception.Invalid, density.density_report,
                                host, without, 4, 1024, {key: 'dedicated'})
        self.assertIn(key, str(exc))


class TestDensity(base.TestCase):

    def host(self, pinned: str = ''):
        xml = cases.caps_xml(2, 4, 2, True, [8192, 8192], None)
        return capabilities.host_topology_from_caps(xml, '0-15', '', pinned)

    def inst(self, vcpus: int, **specs: str):
        specs.setdefault('hw:cpu_policy', 'dedicated')
        return guest_topology.instance_topology_from_flavor(vcpus, 1024, specs)

    def test_packs_until_the_next_does_not_fit(self) -> None:
        host = self.host()
        inst = self.inst(3, **{'hw:cpu_emulator_threads': 'isolate'})
        count = density.density(host, inst)
        # 8 pCPUs a cell, 4 a guest: two guests a cell.
        self.assertEqual(4, count)
        for _ in range(count):
            host = claims.numa_usage_from_instance(
                host, hardware.fit_instance_to_host(host, inst))
        self.assertIsNone(hardware.fit_instance_to_host(host, inst))

    def test_counts_what_is_free(self) -> None:
        inst = self.inst(2)
        self.assertEqual(8, density.density(self.host(), inst))
        self.assertEqual(5, density.density(self.host('0-5'), inst))
        self.assertEqual(0, density.density(self.host('0-15'), inst))

    def test_unpinned_guest_needs_limits(self) -> None:
        inst = self.inst(2, **{'hw:cpu_policy': 'shared',
                               'hw:numa_nodes': '1'})
        exc = self.assertRaises(exception.Invalid, density.density,
                                self.host(), inst)
        self.assertIn('limits', str(exc))
