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

"""Unit tests of the guest NUMA topology a flavor asks for."""

from nova_emulator_threads.virt import guest_topology
from tests.unit import base
from tests.unit.cpu_request_base import DEDICATED
from tests.unit.cpu_request_base import ISOLATE


class TestInstanceTopology(base.TestCase):

    def test_no_topology_without_pinning(self) -> None:
        self.assertIsNone(
            guest_topology.instance_topology_from_flavor(2, 1024, {}))

    def test_isolate(self) -> None:
        inst = guest_topology.instance_topology_from_flavor(4, 2048, ISOLATE)
        self.assertEqual('isolate', inst.emulator_threads_policy)
        self.assertEqual(1, len(inst.cells))
        cell = inst.cells[0]
        self.assertEqual(frozenset(range(4)), cell.pcpuset)
        self.assertEqual(frozenset(), cell.cpuset)
        self.assertEqual(2048, cell.memory)
        self.assertEqual('dedicated', cell.cpu_policy)

    def test_auto_numa_layout(self) -> None:
        inst = guest_topology.instance_topology_from_flavor(
            4, 2048, dict(DEDICATED, **{'hw:numa_nodes': '2'}))
        self.assertEqual([frozenset({0, 1}), frozenset({2, 3})],
                         [cell.pcpuset for cell in inst.cells])
        self.assertEqual([1024, 1024], [cell.memory for cell in inst.cells])

    def test_manual_numa_layout(self) -> None:
        specs = dict(DEDICATED, **{
            'hw:numa_nodes': '2', 'hw:numa_cpus.0': '0,3',
            'hw:numa_cpus.1': '1-2', 'hw:numa_mem.0': '1536',
            'hw:numa_mem.1': '512'})
        inst = guest_topology.instance_topology_from_flavor(4, 2048, specs)
        self.assertEqual([frozenset({0, 3}), frozenset({1, 2})],
                         [cell.pcpuset for cell in inst.cells])
        self.assertEqual([1536, 512], [cell.memory for cell in inst.cells])

    def test_mixed(self) -> None:
        inst = guest_topology.instance_topology_from_flavor(4, 2048, {
            'hw:cpu_policy': 'mixed', 'hw:cpu_dedicated_mask': '2-3'})
        self.assertEqual(frozenset({2, 3}), inst.cells[0].pcpuset)
        self.assertEqual(frozenset({0, 1}), inst.cells[0].cpuset)

    def test_realtime(self) -> None:
        inst = guest_topology.instance_topology_from_flavor(4, 2048, dict(
            ISOLATE, **{'hw:cpu_realtime': 'yes',
                        'hw:cpu_realtime_mask': '^0'}))
        self.assertEqual(frozenset({1, 2, 3}), inst.realtime_cpus)
