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

"""Tests for the shared emulator pool's choices in ``cputune``.

``shared_pool_affinity = numa`` (``numa_local_shared_cpuset``, and
``emulatorpin_cpuset`` with it) and ``shared_pool_quota``
(``emulator_bandwidth``, and the ``<emulator_period>``/``<emulator_quota>``
it writes and reads back).
"""

import ddt
from nova.tests.unit import matchers

from nova_emulator_threads import exception
from nova_emulator_threads.objects import fields
from nova_emulator_threads.virt import topology
from nova_emulator_threads.virt.libvirt import bandwidth
from nova_emulator_threads.virt.libvirt import cputune
from nova_emulator_threads.virt.libvirt import cputune_reader
from tests.unit import base

SHARE = fields.CPUEmulatorThreadsPolicy.SHARE
ISOLATE = fields.CPUEmulatorThreadsPolicy.ISOLATE
NUMA = fields.SharedPoolAffinity.NUMA
ANY = fields.SharedPoolAffinity.ANY


def _guest(*cells: tuple[int, dict[int, int]], policy: str | None = SHARE,
           reserved: frozenset[int] | None = None,
           ) -> topology.InstanceTopology:
    """A fitted guest: one (host cell id, vCPU -> pCPU) per guest cell."""
    return topology.InstanceTopology(
        cells=tuple(
            topology.InstanceCell(
                id=host_cell, cpuset=frozenset(), pcpuset=frozenset(pins),
                memory=1024, cpu_policy='dedicated', cpu_pinning=pins,
                cpuset_reserved=reserved if index == 0 else None)
            for index, (host_cell, pins) in enumerate(cells)),
        emulator_threads_policy=policy)


def _host(*cells: tuple[set[int], set[int]]) -> topology.HostTopology:
    """A host: (shared CPUs, dedicated CPUs) per cell."""
    return topology.HostTopology(cells=tuple(
        topology.HostCell(id=i, cpuset=frozenset(shared),
                          pcpuset=frozenset(dedicated), memory=65536)
        for i, (shared, dedicated) in enumerate(cells)))


#: Two cells: CPU 0 and 8 shared, 1-7 and 9-15 dedicated.
TWO_CELLS = _host(({0}, set(range(1, 8))), ({8}, set(range(9, 16))))
SHARED = frozenset({0, 8})


@ddt.ddt
class NUMALocalTestCase(base.TestCase):

    def test_guest_on_cell_1_gets_cell_1_shared_cpus(self) -> None:
        guest = _guest((1, {0: 9, 1: 10}))
        self.assertEqual(frozenset({8}), cputune.numa_local_shared_cpuset(
            guest, SHARED, TWO_CELLS))
        self.assertEqual(frozenset({8}), cputune.emulatorpin_cpuset(
            guest, SHARED, host=TWO_CELLS, shared_pool_affinity=NUMA))

    def test_any_keeps_novas_whole_set(self) -> None:
        guest = _guest((1, {0: 9, 1: 10}))
        self.assertEqual(SHARED, cputune.emulatorpin_cpuset(
            guest, SHARED, host=TWO_CELLS, shared_pool_affinity=ANY))
        self.assertEqual(SHARED, cputune.emulatorpin_cpuset(
            guest, SHARED, host=TWO_CELLS))

    def test_two_cell_guest_gets_both_cells(self) -> None:
        guest = _guest((0, {0: 1}), (1, {1: 9}))
        self.assertEqual(SHARED, cputune.emulatorpin_cpuset(
            guest, SHARED, host=TWO_CELLS, shared_pool_affinity=NUMA))

    def test_no_shared_cpu_on_the_guests_cell_falls_back(self) -> None:
        host = _host((set(), set(range(0, 8))), ({8, 9}, set(range(10, 16))))
        guest = _guest((0, {0: 1}))
        self.assertEqual(frozenset(), cputune.numa_local_shared_cpuset(
            guest, frozenset({8, 9}), host))
        self.assertEqual(frozenset({8, 9}), cputune.emulatorpin_cpuset(
            guest, frozenset({8, 9}), host=host, shared_pool_affinity=NUMA))

    def test_iothread_follows(self) -> None:
        guest = _guest((1, {0: 9}))
        tune = cputune.cputune_from_topology(
            guest, SHARED, host=TWO_CELLS, shared_pool_affinity=NUMA)
        self.assertEqual({1: frozenset({8})}, tune.iothreadpins)
        self.assertEqual(frozenset({8}), tune.emulatorpin)

    @ddt.data(ISOLATE, None)
    def test_other_policies_unchanged(self, policy: str | None) -> None:
        guest = _guest((1, {0: 9, 1: 10}), policy=policy,
                       reserved=frozenset({11}) if policy else None)
        self.assertEqual(
            cputune.emulatorpin_cpuset(guest, SHARED, host=TWO_CELLS),
            cputune.emulatorpin_cpuset(guest, SHARED, host=TWO_CELLS,
                                       shared_pool_affinity=NUMA))

    def test_needs_the_host(self) -> None:
        guest = _guest((1, {0: 9}))
        exc = self.assertRaises(
            exception.InvalidInstanceTopology, cputune.emulatorpin_cpuset,
            guest, SHARED, shared_pool_affinity=NUMA)
        self.assertIn('shared_pool_affinity = numa', str(exc))

    def test_unknown_host_cell(self) -> None:
        guest = _guest((3, {0: 9}))
        exc = self.assertRaises(
            exception.InvalidInstanceTopology,
            cputune.numa_local_shared_cpuset, guest, SHARED, TWO_CELLS)
        self.assertIn('host cell 3', str(exc))

    def test_unknown_affinity(self) -> None:
        exc = self.assertRaises(
            exception.Invalid, cputune.emulatorpin_cpuset,
            _guest((1, {0: 9})), SHARED, host=TWO_CELLS,
            shared_pool_affinity='socket')
        self.assertIn("shared_pool_affinity='socket'", str(exc))
        self.assertIn('any, numa', str(exc))


@ddt.ddt
class EmulatorBandwidthTestCase(base.TestCase):

    # (shared_pool_vcpus, cpu_allocation_ratio) -> quota per 100 ms.
    @ddt.data(
        (1, 1.0, 100000),
        (1, 4.0, 25000),
        (2, 4.0, 50000),
        (1, 16.0, 6250),
        # Rounded up: the cap never gives less than was accounted.
        (1, 3.0, 33334),
        (2, 3.0, 66667),
        (3, 3.0, 100000),
        # More than one pCPU's worth: quota above the period.
        (3, 2.0, 150000),
        # libvirt's minimum quota is 1 ms.
        (1, 1000.0, 1000),
    )
    @ddt.unpack
    def test_quota(self, vcpus: int, ratio: float, quota: int) -> None:
        self.assertEqual(
            bandwidth.EmulatorBandwidth(period=100000, quota=quota),
            bandwidth.emulator_bandwidth(SHARE, vcpus, ratio))

    def test_other_period(self) -> None:
        self.assertEqual(
            bandwidth.EmulatorBandwidth(period=10000, quota=2500),
            bandwidth.emulator_bandwidth(SHARE, 1, 4.0, period=10000))

    @ddt.data((ISOLATE, 1), (None, 1), (SHARE, 0))
    @ddt.unpack
    def test_no_cap(self, policy: str | None, vcpus: int) -> None:
        self.assertIsNone(bandwidth.emulator_bandwidth(policy, vcpus, 4.0))

    @ddt.data(
        ({'shared_pool_vcpus': -1}, 'shared_pool_vcpus=-1'),
        ({'shared_pool_vcpus': True}, 'shared_pool_vcpus=True'),
        ({'cpu_allocation_ratio': 0.0}, 'cpu_allocation_ratio=0.0'),
        ({'period': 999}, 'emulator_period=999'),
        ({'period': 1000001}, 'emulator_period=1000001'),
    )
    @ddt.unpack
    def test_bad_input(self, override: dict[str, object], key: str) -> None:
        kwargs: dict[str, object] = dict(
            policy=SHARE, shared_pool_vcpus=1, cpu_allocation_ratio=4.0)
        kwargs.update(override)
        exc = self.assertRaises(exception.Invalid,
                                bandwidth.emulator_bandwidth, **kwargs)
        self.assertIn(key, str(exc))

    def test_written_and_read_back(self) -> None:
        guest = _guest((1, {0: 9}))
        cap = bandwidth.emulator_bandwidth(SHARE, 1, 4.0)
        tune = cputune.cputune_from_topology(
            guest, SHARED, host=TWO_CELLS, shared_pool_affinity=NUMA,
            emulator_bandwidth=cap)
        text = cputune.to_string(cputune.format_cputune(tune))
        self.assertThat(text, matchers.XMLMatches("""
            <cputune>
              <emulator_period>100000</emulator_period>
              <emulator_quota>25000</emulator_quota>
              <emulatorpin cpuset="8"/>
              <iothreadpin iothread="1" cpuset="8"/>
              <vcpupin vcpu="0" cpuset="9"/>
            </cputune>"""))
        self.assertEqual(tune, cputune_reader.parse_cputune(text))

    def test_read_no_cap(self) -> None:
        self.assertIsNone(cputune_reader.parse_cputune(
            '<cputune><emulator_quota>-1</emulator_quota></cputune>'
        ).emulator_bandwidth)
        self.assertEqual(
            bandwidth.EmulatorBandwidth(period=100000, quota=5000),
            cputune_reader.parse_cputune(
                '<cputune><emulator_quota>5000</emulator_quota></cputune>'
            ).emulator_bandwidth)

    def test_read_garbage(self) -> None:
        exc = self.assertRaises(
            exception.InvalidDomainXML, cputune_reader.parse_cputune,
            '<cputune><emulator_quota>lots</emulator_quota></cputune>')
        self.assertIn('<emulator_quota>', str(exc))
