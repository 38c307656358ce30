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

"""Tests for the ``<cputune>`` builder.

``CPUTuneTestCase`` checks the element against literal XML, the way
Nova's own config tests do. ``MatchesNovaDriverTestCase`` fits guests with
Nova's fitter onto the bundled two-socket host, served by Nova's fake
libvirt, and asserts that Nova's real ``LibvirtDriver`` writes the same
``<cputune>`` as we do.
"""


import ddt
import fixtures
import hypothesis
from hypothesis import strategies as st
from lxml import etree
from nova import exception as nova_exception
from nova import objects
from nova import test
from nova.tests import fixtures as nova_fixtures
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.unit import matchers
from nova.virt import fake
from nova.virt import hardware as nova_hardware
from nova.virt.libvirt import driver as libvirt_driver

from nova_emulator_threads import data
from nova_emulator_threads import exception
from nova_emulator_threads.virt import topology
from nova_emulator_threads.virt.libvirt import cputune
from nova_emulator_threads.virt.libvirt import cputune_reader
from tests.unit import base

ISOLATE = 'isolate'
SHARE = 'share'


def _cell(id, pins=None, reserved=None, shared=(), memory=1024):
    """A fitted guest cell: ``pins`` maps its pinned vCPUs to pCPUs."""
    pins = pins or {}
    return topology.InstanceCell(
        id=id, cpuset=frozenset(shared), pcpuset=frozenset(pins),
        memory=memory, cpu_policy='mixed' if shared else 'dedicated',
        cpu_pinning=pins or None,
        cpuset_reserved=frozenset(reserved) if reserved else None)


def _guest(*cells, policy=None, realtime=()):
    return topology.InstanceTopology(
        cells=cells, emulator_threads_policy=policy,
        realtime_cpus=frozenset(realtime))


def _host(*cpusets):
    """A host whose cell N has shared CPUs ``cpusets[N]``."""
    return topology.HostTopology(cells=tuple(
        topology.HostCell(id=i, cpuset=frozenset(shared),
                          pcpuset=frozenset(), memory=65536)
        for i, shared in enumerate(cpusets)))


@ddt.ddt
class CPUTuneTestCase(base.TestCase):

    def assertXmlEqual(self, expected, observed):
        self.assertThat(observed, matchers.XMLMatches(expected))

    def assertBuilds(self, expected, fitted, **kwargs):
        element = cputune.build_cputune(fitted, **kwargs)
        self.assertXmlEqual(expected, cputune.to_string(element))
        # What the builder writes is what the reader reads back.
        self.assertEqual(cputune.cputune_from_topology(fitted, **kwargs),
                         cputune_reader.parse_cputune(cputune.to_string(element)))

    def test_isolate(self):
        fitted = _guest(_cell(0, {0: 2, 1: 22}, reserved={3}),
                        policy=ISOLATE)
        self.assertBuilds("""
            <cputune>
              <emulatorpin cpuset="3"/>
              <iothreadpin iothread="1" cpuset="3"/>
              <vcpupin vcpu="0" cpuset="2"/>
              <vcpupin vcpu="1" cpuset="22"/>
            </cputune>""", fitted, cpu_shared_set=frozenset({0, 1}))

    def test_to_string_is_stable(self):
        # The text, not just the infoset: plan's JSON embeds it, so it must
        # not change from run to run (attribute order as in Nova).
        fitted = _guest(_cell(0, {1: 23, 0: 2}, reserved={3}),
                        policy=ISOLATE, realtime={1})
        self.assertEqual(
            '<cputune>\n'
            '  <emulatorpin cpuset="3"/>\n'
            '  <iothreadpin cpuset="3" iothread="1"/>\n'
            '  <vcpupin vcpu="0" cpuset="2"/>\n'
            '  <vcpupin vcpu="1" cpuset="23"/>\n'
            '  <vcpusched vcpus="1" scheduler="fifo" priority="1"/>\n'
            '</cputune>\n',
            cputune.to_string(cputune.build_cputune(fitted)))

    def test_share_with_shared_set(self):
        fitted = _guest(_cell(0, {0: 2, 1: 22}), policy=SHARE)
        self.assertBuilds("""
            <cputune>
              <emulatorpin cpuset="0-1,20-21"/>
              <iothreadpin iothread="1" cpuset="0-1,20-21"/>
              <vcpupin vcpu="0" cpuset="2"/>
              <vcpupin vcpu="1" cpuset="22"/>
            </cputune>""", fitted,
            cpu_shared_set=frozenset({0, 1, 20, 21}))

    def test_share_with_shared_set_is_not_numa_aware(self):
        # As in Nova: the whole shared set, even CPUs of other cells.
        fitted = _guest(_cell(1, {0: 12, 1: 13}), policy=SHARE)
        self.assertEqual(
            frozenset({0, 10}),
            cputune.emulatorpin_cpuset(fitted, frozenset({0, 10})))

    def test_share_without_shared_set_floats_over_vcpus(self):
        fitted = _guest(_cell(0, {0: 2, 1: 22}), policy=SHARE)
        self.assertBuilds("""
            <cputune>
              <emulatorpin cpuset="2,22"/>
              <iothreadpin iothread="1" cpuset="2,22"/>
              <vcpupin vcpu="0" cpuset="2"/>
              <vcpupin vcpu="1" cpuset="22"/>
            </cputune>""", fitted)

    def test_no_policy_ignores_shared_set(self):
        # Only 'share' uses cpu_shared_set; with no policy at all Nova
        # floats the emulator threads over the vCPUs' pCPUs.
        fitted = _guest(_cell(0, {0: 2, 1: 3}))
        self.assertBuilds("""
            <cputune>
              <emulatorpin cpuset="2-3"/>
              <iothreadpin iothread="1" cpuset="2-3"/>
              <vcpupin vcpu="0" cpuset="2"/>
              <vcpupin vcpu="1" cpuset="3"/>
            </cputune>""", fitted, cpu_shared_set=frozenset({0, 1}))

    def test_realtime_with_mask(self):
        # hw:cpu_realtime_mask=^0-1: vCPUs 2-3 are realtime, and the
        # emulator threads keep off their pCPUs.
        fitted = _guest(_cell(0, {0: 2, 1: 3, 2: 4, 3: 5}),
                        realtime={2, 3})
        self.assertBuilds("""
            <cputune>
              <emulatorpin cpuset="2-3"/>
              <iothreadpin iothread="1" cpuset="2-3"/>
              <vcpupin vcpu="0" cpuset="2"/>
              <vcpupin vcpu="1" cpuset="3"/>
              <vcpupin vcpu="2" cpuset="4"/>
              <vcpupin vcpu="3" cpuset="5"/>
              <vcpusched vcpus="2-3" scheduler="fifo" priority="1"/>
            </cputune>""", fitted)

    def test_realtime_priority(self):
        fitted = _guest(_cell(0, {0: 2, 1: 3}, reserved={4}),
                        policy=ISOLATE, realtime={0, 1})
        self.assertBuilds("""
            <cputune>
              <emulatorpin cpuset="4"/>
              <iothreadpin iothread="1" cpuset="4"/>
              <vcpupin vcpu="0" cpuset="2"/>
              <vcpupin vcpu="1" cpuset="3"/>
              <vcpusched vcpus="0-1" scheduler="fifo" priority="42"/>
            </cputune>""", fitted, realtime_priority=42)

    def test_realtime_share_uses_shared_set(self):
        fitted = _guest(_cell(0, {0: 2, 1: 3}), policy=SHARE,
                        realtime={0, 1})
        self.assertEqual(
            frozenset({0, 1}),
            cputune.emulatorpin_cpuset(fitted, frozenset({0, 1})))

    def test_realtime_share_without_shared_set_is_refused(self):
        # Nova refuses this guest even when the mask leaves vCPUs free.
        fitted = _guest(_cell(0, {0: 2, 1: 3}), policy=SHARE,
                        realtime={1})
        exc = self.assertRaises(exception.InvalidInstanceTopology,
                                cputune.build_cputune, fitted)
        self.assertIn('cpu_shared_set', str(exc))
        self.assertIn("'share'", str(exc))

    def test_all_realtime_without_policy_is_refused(self):
        fitted = _guest(_cell(0, {0: 2, 1: 3}), realtime={0, 1})
        exc = self.assertRaises(exception.InvalidInstanceTopology,
                                cputune.emulatorpin_cpuset, fitted)
        self.assertIn('hw:cpu_realtime_mask', str(exc))

    @ddt.data(0, 100, -1, True, '1')
    def test_bad_realtime_priority(self, priority):
        fitted = _guest(_cell(0, {0: 2}, reserved={3}), policy=ISOLATE,
                        realtime={0})
        exc = self.assertRaises(exception.Invalid, cputune.build_cputune,
                                fitted, realtime_priority=priority)
        self.assertIn('realtime_scheduler_priority=%r' % priority, str(exc))
        self.assertIn('1 to 99', str(exc))

    def test_realtime_vcpu_not_in_guest(self):
        fitted = _guest(_cell(0, {0: 2}, reserved={3}), policy=ISOLATE,
                        realtime={0, 5})
        exc = self.assertRaises(exception.InvalidInstanceTopology,
                                cputune.build_cputune, fitted)
        self.assertIn('realtime vCPUs 5', str(exc))

    def test_mixed(self):
        # vCPUs 0-1 are shared and float over the shared CPUs of the host
        # cell their guest cell is on; 2-3 are pinned.
        fitted = _guest(_cell(1, {2: 14, 3: 15}, shared={0, 1}))
        host = _host({0, 1, 20, 21}, {10, 11, 30, 31})
        self.assertBuilds("""
            <cputune>
              <emulatorpin cpuset="10-11,14-15,30-31"/>
              <iothreadpin iothread="1" cpuset="10-11,14-15,30-31"/>
              <vcpupin vcpu="0" cpuset="10-11,30-31"/>
              <vcpupin vcpu="1" cpuset="10-11,30-31"/>
              <vcpupin vcpu="2" cpuset="14"/>
              <vcpupin vcpu="3" cpuset="15"/>
            </cputune>""", fitted, host=host)

    def test_mixed_isolate(self):
        fitted = _guest(_cell(0, {2: 4, 3: 5}, reserved={6}, shared={0, 1}),
                        policy=ISOLATE)
        self.assertBuilds("""
            <cputune>
              <emulatorpin cpuset="6"/>
              <iothreadpin iothread="1" cpuset="6"/>
              <vcpupin vcpu="0" cpuset="0-1"/>
              <vcpupin vcpu="1" cpuset="0-1"/>
              <vcpupin vcpu="2" cpuset="4"/>
              <vcpupin vcpu="3" cpuset="5"/>
            </cputune>""", fitted, host=_host({0, 1}))

    def test_mixed_needs_host(self):
        fitted = _guest(_cell(0, {2: 4, 3: 5}, shared={0, 1}))
        exc = self.assertRaises(exception.InvalidInstanceTopology,
                                cputune.build_cputune, fitted)
        self.assertIn('vCPUs 0-1 of guest cell 0 are not pinned', str(exc))

    def test_mixed_host_cell_without_shared_cpus(self):
        fitted = _guest(_cell(1, {2: 14, 3: 15}, shared={0, 1}))
        exc = self.assertRaises(exception.InvalidInstanceTopology,
                                cputune.build_cputune, fitted,
                                host=_host({0, 1}, ()))
        self.assertIn('host cell 1, which has none', str(exc))

    def test_mixed_host_cell_missing(self):
        fitted = _guest(_cell(3, {2: 14, 3: 15}, shared={0, 1}))
        exc = self.assertRaises(exception.InvalidInstanceTopology,
                                cputune.build_cputune, fitted,
                                host=_host({0, 1}, {10, 11}))
        self.assertIn('host cell 3, which the host does not have',
                      str(exc))

    def test_multi_cell_isolate(self):
        # The reserved pCPU is on the host cell of guest cell 0 only.
        fitted = _guest(_cell(0, {0: 2, 1: 3}, reserved={4}),
                        _cell(1, {2: 12, 3: 13}), policy=ISOLATE)
        self.assertBuilds("""
            <cputune>
              <emulatorpin cpuset="4"/>
              <iothreadpin iothread="1" cpuset="4"/>
              <vcpupin vcpu="0" cpuset="2"/>
              <vcpupin vcpu="1" cpuset="3"/>
              <vcpupin vcpu="2" cpuset="12"/>
              <vcpupin vcpu="3" cpuset="13"/>
            </cputune>""", fitted)

    def test_multi_cell_no_policy(self):
        # Guest cells may land on host cells in any order; vCPU order wins.
        fitted = _guest(_cell(1, {0: 12, 1: 13}), _cell(0, {2: 2, 3: 3}))
        self.assertBuilds("""
            <cputune>
              <emulatorpin cpuset="2-3,12-13"/>
              <iothreadpin iothread="1" cpuset="2-3,12-13"/>
              <vcpupin vcpu="0" cpuset="12"/>
              <vcpupin vcpu="1" cpuset="13"/>
              <vcpupin vcpu="2" cpuset="2"/>
              <vcpupin vcpu="3" cpuset="3"/>
            </cputune>""", fitted)

    def test_unpinned_numa_guest(self):
        # hw:numa_nodes=2 without pinning: every vCPU floats over its host
        # cell's shared CPUs, and so do the emulator threads.
        fitted = _guest(_cell(0, shared={0, 1}), _cell(1, shared={2, 3}))
        host = _host({0, 1, 20, 21}, {10, 11, 30, 31})
        self.assertBuilds("""
            <cputune>
              <emulatorpin cpuset="0-1,10-11,20-21,30-31"/>
              <iothreadpin iothread="1" cpuset="0-1,10-11,20-21,30-31"/>
              <vcpupin vcpu="0" cpuset="0-1,20-21"/>
              <vcpupin vcpu="1" cpuset="0-1,20-21"/>
              <vcpupin vcpu="2" cpuset="10-11,30-31"/>
              <vcpupin vcpu="3" cpuset="10-11,30-31"/>
            </cputune>""", fitted, host=host)

    def test_unfitted_topology(self):
        unfitted = topology.InstanceTopology(cells=(topology.InstanceCell(
            id=0, cpuset=frozenset(), pcpuset=frozenset({0, 1}),
            memory=1024, cpu_policy='dedicated'),))
        exc = self.assertRaises(exception.InvalidInstanceTopology,
                                cputune.build_cputune, unfitted)
        self.assertIn('dedicated vCPUs 0-1 of guest cell 0 have no pCPU',
                      str(exc))

    def test_isolate_without_reserved(self):
        fitted = _guest(_cell(0, {0: 2}), policy=ISOLATE)
        exc = self.assertRaises(exception.InvalidInstanceTopology,
                                cputune.emulatorpin_cpuset, fitted)
        self.assertIn('cpuset_reserved', str(exc))

    def test_pin_of_foreign_vcpu(self):
        cell = topology.InstanceCell(
            id=0, cpuset=frozenset(), pcpuset=frozenset({0}), memory=1024,
            cpu_pinning={0: 2, 7: 3})
        exc = self.assertRaises(exception.InvalidInstanceTopology,
                                cputune.build_cputune, _guest(cell))
        self.assertIn('names vCPUs 7', str(exc))

    def test_vcpu_in_two_cells(self):
        fitted = _guest(_cell(0, {0: 2}), _cell(1, {0: 12}))
        exc = self.assertRaises(exception.InvalidInstanceTopology,
                                cputune.build_cputune, fitted)
        self.assertIn('vCPU 0 is in more than one guest cell', str(exc))

    def test_no_vcpus(self):
        exc = self.assertRaises(exception.InvalidInstanceTopology,
                                cputune.build_cputune, _guest())
        self.assertIn('no vCPUs', str(exc))

    def test_iothreads_follow_emulator(self):
        self.assertEqual({1: frozenset({4, 5})},
                         cputune.iothreadpin_cpusets(frozenset({4, 5})))
        self.assertEqual({}, cputune.iothreadpin_cpusets(frozenset()))


class RoundTripTestCase(base.TestCase):
    """What the builder writes, the reader reads back."""

    @hypothesis.settings(max_examples=60, deadline=None)
    @hypothesis.given(
        pcpus=st.lists(st.integers(0, 8191), min_size=2, max_size=12,
                       unique=True),
        policy=st.sampled_from([None, SHARE, ISOLATE]),
        shared=st.frozensets(st.integers(0, 63), max_size=4),
        realtime=st.frozensets(st.integers(0, 11)),
        priority=st.integers(1, 99))
    def test_round_trip(self, pcpus, policy, shared, realtime, priority):
        *pinned, reserved = pcpus
        pins = dict(enumerate(pinned))
        fitted = _guest(_cell(0, pins, reserved={reserved}), policy=policy,
                        realtime=realtime & frozenset(pins))
        try:
            expected = cputune.cputune_from_topology(
                fitted, shared, priority)
        except exception.InvalidInstanceTopology:
            # e.g. every vCPU realtime with no policy: nothing to write.
            hypothesis.assume(False)
        text = cputune.to_string(
            cputune.build_cputune(fitted, shared, priority))
        self.assertEqual(expected, cputune_reader.parse_cputune(text))
        self.assertEqual(expected.emulatorpin,
                         cputune.emulatorpin_cpuset(fitted, shared))


def _nova_to_ours(fitted, realtime):
    """Our fitted topology from Nova's ``InstanceNUMATopology``."""

    def get(obj, name):
        return getattr(obj, name) if obj.obj_attr_is_set(name) else None

    cells = []
    for cell in fitted.cells:
        reserved = get(cell, 'cpuset_reserved')
        cells.append(topology.InstanceCell(
            id=cell.id, cpuset=frozenset(cell.cpuset),
            pcpuset=frozenset(cell.pcpuset), memory=cell.memory,
            pagesize=get(cell, 'pagesize'),
            cpu_policy=get(cell, 'cpu_policy'),
            cpu_thread_policy=get(cell, 'cpu_thread_policy'),
            cpu_pinning=dict(cell.cpu_pinning) if cell.cpu_pinning else None,
            cpuset_reserved=frozenset(reserved) if reserved else None))
    return topology.InstanceTopology(
        cells=tuple(cells),
        emulator_threads_policy=get(fitted, 'emulator_threads_policy'),
        realtime_cpus=frozenset(realtime or ()))


def _nova_host_to_ours(host):
    return topology.HostTopology(cells=tuple(
        topology.HostCell(id=cell.id, cpuset=frozenset(cell.cpuset),
                          pcpuset=frozenset(cell.pcpuset),
                          memory=cell.memory)
        for cell in host.cells))


class MatchesNovaDriverTestCase(test.NoDBTestCase):
    """Nova's own libvirt driver, on the bundled two-socket host."""

    # Housekeeping on the first core of socket 0 (both threads), the rest
    # for pinned guests.
    SHARED = '0-1,20-21'
    DEDICATED = '2-19,22-39'

    def setUp(self):
        super().setUp()
        self.useFixture(nova_fixtures.LibvirtFixture())
        caps = etree.fromstring(data.example_host_xml('two-socket-smt'))
        host_info = fakelibvirt.HostInfo(
            cpu_nodes=2, cpu_sockets=1, cpu_cores=10, cpu_threads=2)
        # Serve the bundled host's cells verbatim from the fake libvirt.
        host_info.numa_topology = etree.tostring(
            caps.find('host/topology'), encoding='unicode')
        connection = fakelibvirt.Connection('qemu:///system',
                                            host_info=host_info)
        self.useFixture(fixtures.MockPatch(
            'nova.virt.libvirt.host.Host.get_connection',
            return_value=connection))
        self.driver = libvirt_driver.LibvirtDriver(fake.FakeVirtAPI(), True)
        self.image_meta = objects.ImageMeta.from_dict({})

    def _fit(self, extra_specs, vcpus, shared, dedicated):
        self.flags(cpu_shared_set=shared, cpu_dedicated_set=dedicated,
                   group='compute')
        flavor = objects.Flavor(vcpus=vcpus, memory_mb=2048,
                                extra_specs=extra_specs)
        host = self.driver._get_host_numa_topology()
        request = nova_hardware.numa_get_constraints(flavor, self.image_meta)
        fitted = nova_hardware.numa_fit_instance_to_host(host, request, None)
        self.assertIsNotNone(fitted, 'Nova found no fit')
        realtime = nova_hardware.get_realtime_cpu_constraint(
            flavor, self.image_meta)
        return flavor, host, fitted, realtime

    def assertSameAsNova(self, extra_specs, vcpus=4, shared=SHARED,
                         dedicated=DEDICATED, priority=1):
        self.flags(realtime_scheduler_priority=priority, group='libvirt')
        flavor, host, fitted, realtime = self._fit(
            extra_specs, vcpus, shared, dedicated)
        config = self.driver._get_guest_numa_config(
            fitted, flavor, self.image_meta)
        # Nova also vets the guest while building its memory backing.
        self.driver._get_guest_memory_backing_config(
            fitted, config.numatune, flavor, self.image_meta)
        nova_xml = etree.tostring(config.cputune.format_dom(),
                                  encoding='unicode')

        ours = _nova_to_ours(fitted, realtime)
        shared_set = frozenset(nova_hardware.get_cpu_shared_set() or ())
        our_host = _nova_host_to_ours(host)
        self.assertEqual(
            frozenset(config.cputune.emulatorpin.cpuset),
            cputune.emulatorpin_cpuset(ours, shared_set, host=our_host))
        self.assertXmlEqual(nova_xml, cputune.to_string(
            cputune.build_cputune(ours, shared_set, priority,
                                  host=our_host)))
        return cputune_reader.parse_cputune(nova_xml)

    def test_bundled_host_as_nova_reads_it(self):
        self.flags(cpu_shared_set=None, cpu_dedicated_set=None,
                   group='compute')
        host = self.driver._get_host_numa_topology()
        self.assertEqual([0, 1], [cell.id for cell in host.cells])
        self.assertEqual(set(range(40)), self.driver._host.get_online_cpus())
        # A loop, not cases: both cells of the one host Nova read above.
        for cell, first in zip(host.cells, (0, 10)):
            self.assertEqual(set(range(first, first + 10)) |
                             set(range(first + 20, first + 30)), cell.cpuset)
            self.assertEqual(cell.cpuset, cell.pcpuset)
            self.assertEqual(first // 10, cell.socket)
            self.assertEqual({frozenset({n, n + 20})
                              for n in range(first, first + 10)},
                             {frozenset(sib) for sib in cell.siblings})
            self.assertEqual([(4, None), (2048, 2048), (1048576, 16)],
                             [(p.size_kb, None if p.size_kb == 4 else p.total)
                              for p in cell.mempages])

    def test_isolate(self):
        tune = self.assertSameAsNova({
            'hw:cpu_policy': 'dedicated',
            'hw:emulator_threads_policy': 'isolate'})
        # Sanity: the emulator pCPU is one no vCPU uses.
        self.assertEqual(1, len(tune.emulatorpin))
        self.assertFalse(tune.emulatorpin & set().union(
            *tune.vcpupins.values()))

    def test_isolate_thread_policy_require_hugepages(self):
        self.assertSameAsNova({
            'hw:cpu_policy': 'dedicated',
            'hw:cpu_thread_policy': 'require',
            'hw:mem_page_size': '2MB',
            'hw:emulator_threads_policy': 'isolate'})

    def test_share_with_shared_set(self):
        tune = self.assertSameAsNova({
            'hw:cpu_policy': 'dedicated',
            'hw:emulator_threads_policy': 'share'})
        self.assertEqual({0, 1, 20, 21}, tune.emulatorpin)

    def test_share_without_shared_set(self):
        self.assertSameAsNova({
            'hw:cpu_policy': 'dedicated',
            'hw:emulator_threads_policy': 'share'}, shared=None)

    def test_no_policy(self):
        self.assertSameAsNova({'hw:cpu_policy': 'dedicated'})

    def test_realtime_with_mask(self):
        tune = self.assertSameAsNova({
            'hw:cpu_policy': 'dedicated',
            'hw:cpu_realtime': 'yes',
            'hw:cpu_realtime_mask': '^0-1'}, priority=10)
        self.assertEqual(
            (cputune.VCPUSched(frozenset({2, 3}), 'fifo', 10),),
            tune.vcpusched)

    def test_realtime_isolate(self):
        self.assertSameAsNova({
            'hw:cpu_policy': 'dedicated',
            'hw:cpu_realtime': 'yes',
            'hw:emulator_threads_policy': 'isolate'})

    def test_realtime_share(self):
        self.assertSameAsNova({
            'hw:cpu_policy': 'dedicated',
            'hw:cpu_realtime': 'yes',
            'hw:cpu_realtime_mask': '^0',
            'hw:emulator_threads_policy': 'share'})

    def test_realtime_share_without_shared_set(self):
        extra_specs = {'hw:cpu_policy': 'dedicated',
                       'hw:cpu_realtime': 'yes',
                       'hw:cpu_realtime_mask': '^0',
                       'hw:emulator_threads_policy': 'share'}
        flavor, host, fitted, realtime = self._fit(
            extra_specs, 4, None, self.DEDICATED)
        config = self.driver._get_guest_numa_config(
            fitted, flavor, self.image_meta)
        self.assertRaises(
            nova_exception.RealtimeMaskNotFoundOrInvalid,
            self.driver._get_guest_memory_backing_config,
            fitted, config.numatune, flavor, self.image_meta)
        self.assertRaises(
            exception.InvalidInstanceTopology, cputune.build_cputune,
            _nova_to_ours(fitted, realtime), frozenset(),
            host=_nova_host_to_ours(host))

    def test_mixed(self):
        tune = self.assertSameAsNova({
            'hw:cpu_policy': 'mixed',
            'hw:cpu_dedicated_mask': '^0-1'})
        self.assertEqual({0, 1, 20, 21}, tune.vcpupins[0])

    def test_mixed_isolate(self):
        self.assertSameAsNova({
            'hw:cpu_policy': 'mixed',
            'hw:cpu_dedicated_mask': '^0',
            'hw:emulator_threads_policy': 'isolate'})

    def test_multi_cell_isolate(self):
        tune = self.assertSameAsNova({
            'hw:cpu_policy': 'dedicated',
            'hw:numa_nodes': '2',
            'hw:emulator_threads_policy': 'isolate'}, vcpus=8)
        self.assertEqual(8, len(tune.vcpupins))

    def test_multi_cell_no_policy(self):
        self.assertSameAsNova({
            'hw:cpu_policy': 'dedicated',
            'hw:numa_nodes': '2'}, vcpus=8)

    def test_multi_cell_unpinned(self):
        self.assertSameAsNova(
            {'hw:numa_nodes': '2'}, vcpus=4,
            shared='0-1,10-11,20-21,30-31',
            dedicated='2-9,12-19,22-29,32-39')
