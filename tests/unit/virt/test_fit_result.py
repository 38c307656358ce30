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

"""Unit tests of what a fitted topology means for an operator."""

from nova_emulator_threads.virt import fit_result
from nova_emulator_threads.virt import topology
from tests.unit import base

#: One host cell of four cores with two threads: pCPU N's sibling is N+4.
HOST = topology.HostTopology((topology.HostCell(
    id=0, cpuset=frozenset(), pcpuset=frozenset(range(8)), memory=4096,
    siblings=tuple(frozenset({core, core + 4}) for core in range(4))),))


def _fitted(pinning: dict[int, int], pcpuset: frozenset[int],
            reserved: frozenset[int] | None) -> topology.InstanceTopology:
    return topology.InstanceTopology((topology.InstanceCell(
        id=0, cpuset=frozenset(), pcpuset=pcpuset, memory=512,
        cpu_policy='dedicated', cpu_pinning=pinning,
        cpuset_reserved=reserved),), emulator_threads_policy='isolate')


class EmulatorVCPUSiblingsTestCase(base.TestCase):

    def test_emulator_pcpu_beside_a_vcpu(self) -> None:
        fitted = _fitted({0: 0, 1: 1}, frozenset({0, 1}), frozenset({4}))
        self.assertEqual([(4, 0, 0)],
                         fit_result.emulator_vcpu_siblings(HOST, fitted))

    def test_emulator_pcpu_on_a_core_of_its_own(self) -> None:
        fitted = _fitted({0: 0, 1: 4}, frozenset({0, 1}), frozenset({2}))
        self.assertEqual([], fit_result.emulator_vcpu_siblings(HOST, fitted))

    def test_no_emulator_pcpu(self) -> None:
        fitted = _fitted({0: 0, 1: 1}, frozenset({0, 1}), None)
        self.assertEqual([], fit_result.emulator_vcpu_siblings(HOST, fitted))


class UnpinnedDedicatedVCPUsTestCase(base.TestCase):

    def test_every_dedicated_vcpu_pinned(self) -> None:
        fitted = _fitted({0: 0, 1: 1}, frozenset({0, 1}), frozenset({2}))
        self.assertEqual({}, fit_result.unpinned_dedicated_vcpus(fitted))

    def test_cell_without_pins(self) -> None:
        fitted = _fitted({}, frozenset({0, 1}), None)
        self.assertEqual({0: frozenset({0, 1})},
                         fit_result.unpinned_dedicated_vcpus(fitted))
