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

"""What the fitter derives once per host object, and its permutation walk.

That the answers are Nova's is the differential test's job; these tests
check the machinery that makes them fast: the memo follows object
identity and lifetime, and the walk's jumps land where Nova's walk goes.
"""

import dataclasses
import gc
import itertools

import ddt

from nova_emulator_threads.virt import claims
from nova_emulator_threads.virt import guest_topology
from nova_emulator_threads.virt import hardware
from nova_emulator_threads.virt import packing
from nova_emulator_threads.virt.libvirt import capabilities
from tests.unit import base
from tests.unit.virt import cases

ISOLATE = {'hw:cpu_policy': 'dedicated', 'hw:cpu_emulator_threads': 'isolate'}


def host(pinned: str = ''):
    xml = cases.caps_xml(2, 4, 2, True, [4096, 4096], None)
    return capabilities.host_topology_from_caps(xml, '', '', pinned)


class TestMemo(base.TestCase):

    def test_keyed_on_identity(self) -> None:
        first, second = host(), host()
        self.assertEqual(first, second)
        self.assertIs(packing.host_info(first), packing.host_info(first))
        self.assertIsNot(packing.host_info(first), packing.host_info(second))
        self.assertIs(packing.cell_info(first.cells[0]),
                      packing.host_info(first).cells(first)[0][1])
        # Not part of the value: equal hosts stay equal, and hash alike.
        self.assertEqual(first, second)
        self.assertEqual(hash(first), hash(second))

    @staticmethod
    def _alive(kind: type) -> int:
        gc.collect()
        return sum(1 for obj in gc.get_objects() if type(obj) is kind)

    def test_derived_goes_with_its_object(self) -> None:
        cells = self._alive(packing.CellInfo)
        hosts = self._alive(packing.HostInfo)
        inst = guest_topology.instance_topology_from_flavor(2, 512, ISOLATE)
        topology = host()
        self.assertIsNotNone(hardware.fit_instance_to_host(topology, inst))
        self.assertIs(packing.host_info(topology), topology.derived)
        self.assertEqual(cells + 2, self._alive(packing.CellInfo))
        self.assertEqual(hosts + 1, self._alive(packing.HostInfo))
        del topology
        self.assertEqual(cells, self._alive(packing.CellInfo))
        self.assertEqual(hosts, self._alive(packing.HostInfo))

    def test_too_full_host_derives_no_cells(self) -> None:
        # Most hosts a scheduler asks about are answered from the free
        # pCPU counts: no per-cell info is built for them.
        inst = guest_topology.instance_topology_from_flavor(9, 512, ISOLATE)
        topology = host()
        self.assertIsNone(hardware.fit_instance_to_host(topology, inst))
        self.assertEqual(8, packing.host_info(topology).most_free)
        self.assertEqual([None, None],
                         [cell.derived for cell in topology.cells])

    def test_claims_are_seen(self) -> None:
        # A claim makes new cells for what it changed and keeps the others:
        # each answer is worked out on the cells as they are.
        topology = host()
        inst = guest_topology.instance_topology_from_flavor(3, 512, ISOLATE)
        seen = []
        while True:
            fitted = hardware.fit_instance_to_host(topology, inst)
            if fitted is None:
                break
            again = hardware.fit_instance_to_host(topology, inst)
            self.assertEqual(fitted, again)
            pcpus = set(fitted.cpu_pinning.values()) | fitted.cpuset_reserved
            self.assertFalse(pcpus & set(seen))
            seen.extend(pcpus)
            topology = claims.numa_usage_from_instance(topology, fitted)
        # 8 pCPUs a cell, 4 a guest.
        self.assertEqual(16, len(seen))

    def test_same_answer_on_a_new_copy(self) -> None:
        topology = host('0,9')
        inst = guest_topology.instance_topology_from_flavor(4, 512, dict(
            ISOLATE, **{'hw:numa_nodes': '2'}))
        warm = hardware.fit_instance_to_host(topology, inst)
        copy = dataclasses.replace(topology, cells=tuple(
            dataclasses.replace(cell) for cell in topology.cells))
        self.assertIsNone(copy.derived)
        self.assertIsNot(packing.host_info(copy), packing.host_info(topology))
        self.assertEqual(warm, hardware.fit_instance_to_host(copy, inst))


@ddt.ddt
class TestNextPermutation(base.TestCase):

    # (n, size): permutations of size of range(n).
    @ddt.data(*[(n, size) for n in range(1, 6) for size in range(1, n + 1)])
    @ddt.unpack
    def test_walks_itertools_order(self, n: int, size: int) -> None:
        expected = list(itertools.permutations(range(n), size))
        perm = list(range(size))
        walked = [tuple(perm)]
        while hardware._next_permutation(perm, size - 1, n):
            walked.append(tuple(perm))
        self.assertEqual(expected, walked, (n, size))

    @ddt.data(*[(n, size) for n in range(2, 6) for size in range(2, n + 1)])
    @ddt.unpack
    def test_jumps_to_the_next_other_prefix(self, n: int, size: int) -> None:
        order = list(itertools.permutations(range(n), size))
        # A loop, not cases: every permutation of the one order, from each
        # prefix length.
        for index, start in enumerate(order):
            for level in range(size):
                perm = list(start)
                later = [p for p in order[index + 1:]
                         if p[:level + 1] != start[:level + 1]]
                moved = hardware._next_permutation(perm, level, n)
                self.assertEqual(bool(later), moved, (start, level))
                if later:
                    self.assertEqual(later[0], tuple(perm), (start, level))


@ddt.ddt
class TestChooseReservedPCPUs(base.TestCase):
    """Nova's ``_get_reserved``, and the choice off the vCPUs' cores."""

    CORES = (frozenset({0, 1}), frozenset({2, 3}), frozenset({4, 5}))

    def test_novas_choice_is_the_next_free_pcpu(self) -> None:
        # The vCPU took 0: Nova walks on to its sibling.
        self.assertEqual(frozenset({1}), packing.choose_reserved_pcpus(
            (list(range(6)),), [(0, 0)], 1, thread_isolate=False))

    def test_off_the_vcpus_cores(self) -> None:
        self.assertEqual(frozenset({2}), packing.choose_reserved_pcpus(
            (list(range(6)),), [(0, 0)], 1, thread_isolate=False,
            cores=self.CORES))
        # Every free pCPU in Nova's walk order, cores of vCPUs left out.
        self.assertEqual(frozenset({4}), packing.choose_reserved_pcpus(
            ([0, 1, 2, 3, 4, 5],), [(0, 0), (1, 2)], 1,
            thread_isolate=False, cores=self.CORES))

    def test_none_when_only_siblings_are_free(self) -> None:
        self.assertIsNone(packing.choose_reserved_pcpus(
            ([0, 1],), [(0, 0)], 1, thread_isolate=False, cores=self.CORES))

    @ddt.named_data(['as Nova', None], ['off the vCPUs cores', CORES])
    def test_thread_isolate_already_skips_the_cores(
            self, cores: tuple[frozenset[int], ...] | None) -> None:
        free = [frozenset({0, 1}), frozenset({2, 3})]
        self.assertEqual(frozenset({2}), packing.choose_reserved_pcpus(
            free, [(0, 0)], 1, thread_isolate=True, cores=cores))
