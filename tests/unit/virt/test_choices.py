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

"""Unit tests of the fitter's choice points, on literal topologies."""

import ddt

from nova_emulator_threads import exception
from nova_emulator_threads.virt import choices
from nova_emulator_threads.virt import topology
from tests.unit import base


def _guest(cells: int, policy: str | None,
           cpu_policy: str | None = 'dedicated') -> topology.InstanceTopology:
    return topology.InstanceTopology(
        cells=tuple(topology.InstanceCell(
            id=index, cpuset=frozenset(), pcpuset=frozenset({index}),
            memory=512, cpu_policy=cpu_policy) for index in range(cells)),
        emulator_threads_policy=policy)


def _cell(id: int, free: int, memory_free: int = 1024,
          cpu_usage: int = 0) -> topology.HostCell:
    pcpus = frozenset(range(id * 8, id * 8 + 8))
    return topology.HostCell(
        id=id, cpuset=pcpus, pcpuset=pcpus, memory=4096,
        pinned_cpus=frozenset(sorted(pcpus)[free:]), cpu_usage=cpu_usage,
        memory_usage=4096 - memory_free)


@ddt.ddt
class EmulatorReservationTestCase(base.TestCase):

    def test_isolate_on_guest_cell_0_only(self) -> None:
        inst = _guest(2, 'isolate')
        self.assertEqual([1, 0], [choices.emulator_reservation(inst, index)
                                  for index in range(2)])

    @ddt.data('share', None)
    def test_share_and_no_policy_reserve_nothing(self, policy) -> None:
        self.assertEqual(0, choices.emulator_reservation(_guest(1, policy), 0))


@ddt.ddt
class EmulatorPCPUAvoidsVCPUCoresTestCase(base.TestCase):

    @ddt.unpack
    @ddt.data(('allow', False), ('avoid', True))
    def test_values(self, value: str, avoids: bool) -> None:
        self.assertIs(avoids, choices.emulator_pcpu_avoids_vcpu_cores(value))

    def test_bad_value_names_the_option_and_the_choices(self) -> None:
        exc = self.assertRaises(exception.Invalid,
                                choices.emulator_pcpu_avoids_vcpu_cores,
                                'never')
        self.assertIn("emulator_pcpu_siblings='never' is not allowed; "
                      "expected one of allow, avoid", str(exc))


class HostCellOrderTestCase(base.TestCase):

    def test_as_many_host_cells_as_guest_cells_keeps_the_order(self) -> None:
        host = topology.HostTopology((_cell(0, 2), _cell(1, 8)))
        self.assertEqual([0, 1], [cell.id for cell in choices.host_cell_order(
            host, _guest(2, None))])

    def test_pinned_guest_spreads_to_the_most_free_pcpus(self) -> None:
        host = topology.HostTopology((_cell(0, 2), _cell(1, 8), _cell(2, 5)))
        inst = _guest(1, 'isolate')
        self.assertEqual([1, 2, 0], [cell.id for cell in
                                     choices.host_cell_order(host, inst)])
        self.assertEqual([0, 2, 1], [cell.id for cell in
                                     choices.host_cell_order(host, inst,
                                                             pack=True)])

    def test_unpinned_guest_goes_by_cpu_usage(self) -> None:
        host = topology.HostTopology((_cell(0, 8, cpu_usage=3),
                                      _cell(1, 8, cpu_usage=1),
                                      _cell(2, 8, cpu_usage=2)))
        inst = _guest(1, None, cpu_policy=None)
        self.assertEqual([1, 2, 0], [cell.id for cell in
                                     choices.host_cell_order(host, inst)])
        self.assertEqual([0, 2, 1], [cell.id for cell in
                                     choices.host_cell_order(host, inst,
                                                             pack=True)])
