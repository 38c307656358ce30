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

"""Unit tests of the engine's public API on small literal hosts."""


import ddt

from nova_emulator_threads import exception
from nova_emulator_threads.virt import claims
from nova_emulator_threads.virt import guest_topology
from nova_emulator_threads.virt import hardware
from nova_emulator_threads.virt import topology
from nova_emulator_threads.virt.libvirt import capabilities
from tests.unit import base
from tests.unit.virt import cases

ISOLATE = {'hw:cpu_policy': 'dedicated', 'hw:cpu_emulator_threads': 'isolate'}
DEDICATED = {'hw:cpu_policy': 'dedicated'}


def host(cells: int = 2, cores: int = 4, threads: int = 1,
         dedicated: str = '', shared: str = '', pinned: str = ''):
    xml = cases.caps_xml(cells, cores, threads, True, [4096] * cells, None)
    return capabilities.host_topology_from_caps(xml, dedicated, shared, pinned)


class TestFit(base.TestCase):

    def test_isolate_reserves_one_extra_pcpu_on_cell_of_guest_cell_0(
            self) -> None:
        h = host(cells=2, cores=4)
        inst = guest_topology.instance_topology_from_flavor(2, 1024, dict(
            ISOLATE, **{'hw:numa_nodes': '2'}))
        fitted = hardware.fit_instance_to_host(h, inst)
        self.assertIsNotNone(fitted)
        first, second = fitted.cells
        self.assertEqual(1, len(first.cpuset_reserved))
        self.assertIsNone(second.cpuset_reserved)
        host_cell = next(c for c in h.cells if c.id == first.id)
        self.assertLessEqual(first.cpuset_reserved, host_cell.pcpuset)
        self.assertNotIn(next(iter(first.cpuset_reserved)),
                         fitted.cpu_pinning.values())

    def test_exactly_vcpus_free_is_not_enough_for_isolate(self) -> None:
        h = host(cells=1, cores=4, pinned='0')
        dedicated = guest_topology.instance_topology_from_flavor(
            3, 512, DEDICATED)
        isolate = guest_topology.instance_topology_from_flavor(
            3, 512, ISOLATE)
        self.assertIsNotNone(hardware.fit_instance_to_host(h, dedicated))
        self.assertIsNone(hardware.fit_instance_to_host(h, isolate))

    def test_explain_names_cell_needs_and_haves(self) -> None:
        h = host(cells=2, cores=5, pinned='0,5')
        inst = guest_topology.instance_topology_from_flavor(4, 512, ISOLATE)
        self.assertIsNone(hardware.fit_instance_to_host(h, inst))
        self.assertEqual(
            'not enough free pCPUs on host cell 0 for guest cell 0 (needs 5 '
            'incl. 1 for emulator threads; 4 of its 5 are free); not enough '
            'free pCPUs on host cell 1 for guest cell 0 (needs 5 incl. 1 for '
            'emulator threads; 4 of its 5 are free)',
            hardware.explain_no_fit(h, inst))
        self.assertIsNotNone(hardware.fit_instance_to_host(
            h,
            guest_topology.instance_topology_from_flavor(4, 512, DEDICATED)))

    def test_explain_too_few_cells(self) -> None:
        h = host(cells=1)
        inst = guest_topology.instance_topology_from_flavor(2, 512, dict(
            DEDICATED, **{'hw:numa_nodes': '2'}))
        self.assertEqual('the guest has 2 NUMA cells but the host only 1',
                         hardware.explain_no_fit(h, inst))

    def test_explain_memory(self) -> None:
        h = host(cells=1)
        inst = guest_topology.instance_topology_from_flavor(1, 8192, ISOLATE)
        self.assertIn('not enough free memory on host cell 0 for guest cell '
                      '0 (needs 8192 MiB, has 4096 MiB)',
                      hardware.explain_no_fit(h, inst))

    def test_explain_thread_policy(self) -> None:
        h = host(cells=1, cores=4, threads=1)
        inst = guest_topology.instance_topology_from_flavor(2, 512, dict(
            DEDICATED, **{'hw:cpu_thread_policy': 'require'}))
        self.assertIn('cpu_thread_policy=require puts the vCPUs on thread '
                      'siblings of cores whose threads are free',
                      hardware.explain_no_fit(h, inst))

    def test_explain_pages_needed_and_free(self) -> None:
        # 1024 pages of 2 MiB free: 2048 MiB, and the guest wants 2050.
        xml = cases.caps_xml(1, 4, 1, True, [8192], [[0, 1024]])
        h = capabilities.host_topology_from_caps(xml, '', '', '')
        inst = guest_topology.instance_topology_from_flavor(
            1, 2050, dict(DEDICATED, **{'hw:mem_page_size': '2048'}))
        self.assertIn('(needs 2050 MiB; 2048 MiB free in 2048 KiB pages)',
                      hardware.explain_no_fit(h, inst))

    def test_explain_many_cells_summarised(self) -> None:
        h = host(cells=64, cores=2, pinned='')
        inst = guest_topology.instance_topology_from_flavor(4, 512, ISOLATE)
        reason = hardware.explain_no_fit(h, inst)
        self.assertTrue(reason.startswith(
            'none of the 64 host cells tried fits (64 reasons), among '
            'them: not enough dedicated pCPUs on host cell 0'), reason)
        self.assertIn('on host cell 63 for guest cell 0', reason)
        self.assertLess(len(reason), 600)


class TestUsage(base.TestCase):

    def test_claim_and_free_give_everything_back(self) -> None:
        h = host(cells=2, cores=4)
        inst = guest_topology.instance_topology_from_flavor(3, 1024, ISOLATE)
        fitted = hardware.fit_instance_to_host(h, inst)
        claimed = claims.numa_usage_from_instance(h, fitted)
        cell = next(c for c in claimed.cells if c.id == fitted.cells[0].id)
        self.assertEqual(
            frozenset(fitted.cpu_pinning.values()) | fitted.cpuset_reserved,
            cell.pinned_cpus)
        self.assertEqual(1024, cell.memory_usage)
        freed = claims.numa_usage_from_instance(claimed, fitted, free=True)
        self.assertEqual([(c.pinned_cpus, c.memory_usage) for c in h.cells],
                         [(c.pinned_cpus, c.memory_usage)
                          for c in freed.cells])

    def test_fill_host_then_free_one(self) -> None:
        h = host(cells=1, cores=8)
        inst = guest_topology.instance_topology_from_flavor(3, 256, ISOLATE)
        guests = []
        while (fitted := hardware.fit_instance_to_host(h, inst)) is not None:
            h = claims.numa_usage_from_instance(h, fitted)
            guests.append(fitted)
        # 8 pCPUs, 4 per guest (3 vCPUs + 1 emulator pCPU).
        self.assertEqual(2, len(guests))
        h = claims.numa_usage_from_instance(h, guests[0], free=True)
        self.assertIsNotNone(hardware.fit_instance_to_host(h, inst))

    def test_double_claim_is_refused(self) -> None:
        h = host(cells=1, cores=4)
        inst = guest_topology.instance_topology_from_flavor(2, 256, ISOLATE)
        fitted = hardware.fit_instance_to_host(h, inst)
        claimed = claims.numa_usage_from_instance(h, fitted)
        exc = self.assertRaises(exception.CPUPinningConflict,
                                claims.numa_usage_from_instance, claimed,
                                fitted)
        self.assertIn('already pinned', str(exc))
        exc = self.assertRaises(exception.CPUPinningConflict,
                                claims.numa_usage_from_instance, h,
                                fitted, free=True)
        self.assertIn('not pinned', str(exc))

    def test_thread_isolate_claims_whole_cores(self) -> None:
        xml = cases.caps_xml(1, 4, 2, True, [4096], None)
        # legacy: cpuset==pcpuset
        h = capabilities.host_topology_from_caps(xml)
        inst = guest_topology.instance_topology_from_flavor(2, 256, dict(
            DEDICATED, **{'hw:cpu_thread_policy': 'isolate'}))
        fitted = hardware.fit_instance_to_host(h, inst)
        claimed = claims.numa_usage_from_instance(h, fitted)
        self.assertEqual(4, len(claimed.cells[0].pinned_cpus))


class TestTopologyTypes(base.TestCase):

    def test_aggregates(self) -> None:
        inst = topology.InstanceTopology(cells=(
            topology.InstanceCell(0, frozenset(), frozenset({0}), 1,
                                  cpu_pinning={0: 4},
                                  cpuset_reserved=frozenset({5})),
            topology.InstanceCell(1, frozenset(), frozenset({1}), 1,
                                  cpu_pinning={1: 6})),
            emulator_threads_policy='isolate')
        self.assertTrue(inst.emulator_threads_isolated)
        self.assertEqual({0: 4, 1: 6}, inst.cpu_pinning)
        self.assertEqual(frozenset({5}), inst.cpuset_reserved)


@ddt.ddt
class TestEmulatorPCPUSiblings(base.TestCase):
    """``emulator_pcpu_siblings``: the isolate pCPU and the vCPUs' cores.

    The host: one cell of 4 cores, SMT2, numbered the Linux way: the
    cores are {0,4}, {1,5}, {2,6} and {3,7}, which Nova walks in the order
    of its set of sibling sets: {3,7}, {0,4}, {2,6}, {1,5}.
    """

    def fit(self, vcpus: int, siblings: str, pinned: str = '',
            extra: dict[str, str] | None = None):
        h = host(cells=1, cores=4, threads=2, pinned=pinned)
        inst = guest_topology.instance_topology_from_flavor(
            vcpus, 256, dict(ISOLATE, **(extra or {})))
        return h, inst, hardware.fit_instance_to_host(
            h, inst, emulator_pcpu_siblings=siblings)

    def test_allow_is_novas_sibling(self) -> None:
        # Nova packs the vCPU on a thread of core {3,7} and takes the next
        # free thread, its sibling, for the emulator threads.
        _h, _i, fitted = self.fit(1, 'allow')
        self.assertEqual({0: 3}, fitted.cells[0].cpu_pinning)
        self.assertEqual(frozenset({7}), fitted.cells[0].cpuset_reserved)

    def test_avoid_takes_another_core(self) -> None:
        _h, _i, fitted = self.fit(1, 'avoid')
        self.assertEqual({0: 3}, fitted.cells[0].cpu_pinning)
        self.assertEqual(frozenset({0}), fitted.cells[0].cpuset_reserved)

    @ddt.data(*range(1, 7))
    def test_avoid_keeps_the_vcpu_pins(self, vcpus: int) -> None:
        _h, _i, allowed = self.fit(vcpus, 'allow')
        _h, _i, avoided = self.fit(vcpus, 'avoid')
        self.assertEqual(allowed.cells[0].cpu_pinning,
                         avoided.cells[0].cpu_pinning)

    def test_avoid_moves_the_emulator_pcpu_off_the_core(self) -> None:
        # Three vCPUs fill core {3,7} and half of {0,4}: Nova gives the
        # emulator threads 4, beside vCPU 2; avoid moves them to 2.
        _h, _i, allowed = self.fit(3, 'allow')
        _h, _i, avoided = self.fit(3, 'avoid')
        self.assertEqual({0: 3, 1: 7, 2: 0}, avoided.cells[0].cpu_pinning)
        self.assertEqual(frozenset({4}), allowed.cells[0].cpuset_reserved)
        self.assertEqual(frozenset({2}), avoided.cells[0].cpuset_reserved)

    def test_avoid_without_a_free_core_does_not_fit(self) -> None:
        # Only core {0,4} is free: the vCPU takes one thread, and the
        # other is its sibling.
        h, inst, fitted = self.fit(1, 'avoid', pinned='1-3,5-7')
        self.assertIsNone(fitted)
        self.assertEqual(
            "no free pCPU on host cell 0 for guest cell 0 is on a core "
            "without one of the guest's vCPUs: Nova would take pCPU 4 for "
            "the emulator threads, an SMT sibling of pCPU 0 (vCPU 0), "
            "which [emulator_threads] emulator_pcpu_siblings = avoid "
            "forbids",
            hardware.explain_no_fit(h, inst, emulator_pcpu_siblings='avoid'))
        # Nova's choice fits, on the sibling.
        _h, _i, allowed = self.fit(1, 'allow', pinned='1-3,5-7')
        self.assertEqual(frozenset({4}), allowed.cells[0].cpuset_reserved)

    def test_avoid_tries_the_next_host_cell(self) -> None:
        # Cell 0 (tried first: as many free pCPUs as cell 1) has two whole
        # cores free: three vCPUs leave only a vCPU's sibling. Cell 1 has
        # one free thread on each of its four cores.
        h = host(cells=2, cores=4, threads=2,
                 pinned='2-3,10-11,4-7')
        inst = guest_topology.instance_topology_from_flavor(3, 256, ISOLATE)
        allowed = hardware.fit_instance_to_host(h, inst)
        avoided = hardware.fit_instance_to_host(
            h, inst, emulator_pcpu_siblings='avoid')
        self.assertEqual(0, allowed.cells[0].id)
        self.assertEqual(1, avoided.cells[0].id)
        reserved = next(iter(avoided.cells[0].cpuset_reserved))
        core = next(sib for sib in h.cells[1].siblings if reserved in sib)
        self.assertFalse(core & set(avoided.cells[0].cpu_pinning.values()))

    @ddt.data(1, 2, 3)
    def test_thread_isolate_already_avoids(self, vcpus: int) -> None:
        # hw:cpu_thread_policy=isolate keeps the vCPUs' cores whole, and
        # Nova takes the emulator pCPU off them: avoid changes nothing.
        _h, _i, allowed = self.fit(
            vcpus, 'allow', extra={'hw:cpu_thread_policy': 'isolate'})
        _h, _i, avoided = self.fit(
            vcpus, 'avoid', extra={'hw:cpu_thread_policy': 'isolate'})
        self.assertIsNotNone(allowed)
        self.assertEqual(allowed, avoided)

    def test_no_smt_no_difference(self) -> None:
        h = host(cells=1, cores=4, threads=1)
        inst = guest_topology.instance_topology_from_flavor(1, 256, ISOLATE)
        self.assertEqual(
            hardware.fit_instance_to_host(h, inst),
            hardware.fit_instance_to_host(
                h, inst, emulator_pcpu_siblings='avoid'))

    def test_bad_value(self) -> None:
        h = host(cells=1, cores=4, threads=2)
        inst = guest_topology.instance_topology_from_flavor(1, 256, ISOLATE)
        exc = self.assertRaises(
            exception.Invalid, hardware.fit_instance_to_host, h, inst,
            emulator_pcpu_siblings='never')
        self.assertEqual(
            "Invalid input: [emulator_threads] emulator_pcpu_siblings="
            "'never' is not allowed; expected one of allow, avoid", str(exc))
