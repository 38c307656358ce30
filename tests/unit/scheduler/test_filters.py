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

"""``EmulatorThreadsFilter``: Nova's ``NUMATopologyFilter``'s answers.

What it logs and where it hands the host to Nova's filter; and, on
generated hosts and flavors (Nova's ``HostState`` and ``RequestSpec``
objects, built as the scheduler builds them: the host from the engine's
generated topology, the request by Nova's own ``numa_get_constraints``),
the same answer as Nova's filter. ``test_filter_equivalence`` compares
candidates and limits too, over a fixed generated set.
"""

import logging
from typing import Any

import ddt
import fixtures
import hypothesis
from hypothesis import strategies as st
from nova import exception as nova_exception
from nova import objects
from nova.pci import stats as pci_stats
from nova.scheduler.filters import numa_topology_filter
from nova.virt import hardware as hardware_nova
from oslo_config import fixture as config_fixture

from nova_emulator_threads.scheduler import filters
from nova_emulator_threads.virt import hardware
from nova_emulator_threads.virt import nova_objects
from tests.unit import base
from tests.unit import nova_patch_fixture
from tests.unit.scheduler import fakes
from tests.unit.virt import nova_reference
from tests.unit.virt import strategies

host_state = fakes.host_state
request_spec = fakes.request_spec
two_cell_host = fakes.two_cell_host
ISOLATE = fakes.ISOLATE


@ddt.ddt
class TestEmulatorThreadsFilter(base.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.useFixture(nova_patch_fixture.NovaPatchFixture(applied=True))
        self.conf = self.useFixture(config_fixture.Config())
        self.log = self.useFixture(fixtures.FakeLogger(
            name='nova_emulator_threads.scheduler.filters',
            level=logging.DEBUG))
        self.filt = filters.EmulatorThreadsFilter()

    def test_fits(self) -> None:
        # Three free pCPUs in cell 1: 2 vCPUs and the emulator pCPU.
        host = host_state(two_cell_host(pinned=({0, 1}, {4})))
        self.assertTrue(self.filt.host_passes(
            host, request_spec(2, 1024, ISOLATE)))

    def test_rejects_and_says_why(self) -> None:
        # Four free pCPUs, but two per cell: placement would offer the
        # host for PCPU=3, no cell can take it.
        host = host_state(two_cell_host(pinned=({0, 1}, {4, 5})))
        spec = request_spec(2, 1024, ISOLATE)
        self.assertFalse(self.filt.host_passes(host, spec))
        self.assertIn('host1, node1 fails NUMA topology requirements: not '
                      'enough free pCPUs', self.log.output)
        self.assertIn('incl. 1 for emulator threads', self.log.output)
        # Nova's filter agrees.
        self.assertFalse(numa_topology_filter.NUMATopologyFilter()
                         .host_passes(host, spec))

    def test_reason_not_worked_out_when_told_not_to(self) -> None:
        self.conf.config(explain_rejections=False, group='emulator_threads')
        host = host_state(two_cell_host(pinned=({0, 1}, {4, 5})))
        self.assertFalse(self.filt.host_passes(
            host, request_spec(2, 1024, ISOLATE)))
        self.assertIn('the instance does not fit on this host',
                      self.log.output)
        self.assertNotIn('free pCPUs', self.log.output)

    def test_no_numa_request_passes(self) -> None:
        host = host_state(two_cell_host(pinned=({0, 1, 2, 3},
                                                {4, 5, 6, 7})))
        self.assertTrue(self.filt.host_passes(host, request_spec(2, 1024,
                                                                 {})))

    def test_host_without_numa_topology(self) -> None:
        self.assertFalse(self.filt.host_passes(
            host_state(None), request_spec(2, 1024, ISOLATE)))

    # The host's pinned pCPUs per cell; whether the guest fits.
    @ddt.data((({0, 1}, {4, 5}), False), (({0, 1}, {4}), True))
    @ddt.unpack
    def test_pci_request_is_left_to_nova(
            self, pinned: tuple[set[int], set[int]], fits: bool) -> None:
        spec = request_spec(2, 1024, ISOLATE)
        spec.pci_requests = objects.InstancePCIRequests(requests=[
            objects.InstancePCIRequest(count=1, spec=[{'vendor_id': '8086'}])])
        nova = numa_topology_filter.NUMATopologyFilter()
        host = host_state(two_cell_host(pinned=pinned))
        self.assertEqual(fits, nova.host_passes(host, spec))
        host = host_state(two_cell_host(pinned=pinned))
        self.assertEqual(fits, self.filt.host_passes(host, spec))
        self.assertIn('NUMATopologyFilter decides (PCI devices are '
                      'requested)', self.log.output)

    def test_network_affinity_is_left_to_nova(self) -> None:
        spec = request_spec(2, 1024, ISOLATE)
        spec.network_metadata = objects.NetworkMetadata(
            physnets={'foo'}, tunneled=False)
        host = host_state(two_cell_host(pinned=({0, 1}, {4})))
        self.assertTrue(self.filt.host_passes(host, spec))
        self.assertIn('NUMATopologyFilter decides (NUMA affinity of '
                      'networks is requested)', self.log.output)
        # Nova's limits carry the networks, as Nova's filter sets them.
        self.assertEqual(
            spec.network_metadata.obj_to_primitive(),
            host.limits['numa_topology'].network_metadata.obj_to_primitive())

    def test_passing_sets_limits_and_keeps_candidates(self) -> None:
        host = host_state(two_cell_host(pinned=({0, 1}, {4})), 4.0, 1.0)
        candidates = [{'mappings': {'': ['rp1']}}, {'mappings': {'': ['rp2']}}]
        host.allocation_candidates = list(candidates)
        self.assertTrue(self.filt.host_passes(
            host, request_spec(2, 1024, ISOLATE)))
        self.assertEqual(candidates, host.allocation_candidates)
        limits = host.limits['numa_topology']
        self.assertIsInstance(limits, objects.NUMATopologyLimits)
        self.assertEqual((4.0, 1.0), (limits.cpu_allocation_ratio,
                                      limits.ram_allocation_ratio))

    def test_failing_drops_candidates_and_sets_no_limits(self) -> None:
        host = host_state(two_cell_host(pinned=({0, 1}, {4, 5})))
        self.assertFalse(self.filt.host_passes(
            host, request_spec(2, 1024, ISOLATE)))
        self.assertEqual([], host.allocation_candidates)
        self.assertEqual({}, host.limits)

    def test_no_candidates_left_fails(self) -> None:
        # As NUMATopologyFilter: an earlier filter took every candidate.
        host = host_state(two_cell_host())
        host.allocation_candidates = []
        self.assertFalse(self.filt.host_passes(
            host, request_spec(2, 1024, ISOLATE)))
        self.assertIn('no allocation candidate is left', self.log.output)

    def test_require_on_a_host_without_smt(self) -> None:
        # NUMATopologyFilter's CPU policy check, before any fitting.
        spec = request_spec(2, 1024, {**ISOLATE,
                                      'hw:cpu_thread_policy': 'require'})
        self.assertFalse(self.filt.host_passes(
            host_state(two_cell_host()), spec))
        self.assertFalse(numa_topology_filter.NUMATopologyFilter()
                         .host_passes(host_state(two_cell_host()), spec))

    def test_pci_devices_order_the_cells(self) -> None:
        # More host cells than guest cells and PCI devices on one: Nova
        # tries the cell without devices first, and so does the engine.
        numa = two_cell_host()
        stats = pci_stats.PciDeviceStats(numa, stats=objects.PciDevicePoolList(
            objects=[objects.PciDevicePool(
                product_id='1520', vendor_id='8086', numa_node=0, count=2,
                tags={'dev_type': 'type-PF'})]))
        spec = request_spec(2, 1024, ISOLATE)
        expected = hardware_nova.numa_fit_instance_to_host(
            numa, spec.numa_topology.obj_clone(), provider_mapping=None,
            pci_stats=stats)
        self.assertEqual(1, expected.cells[0].id)
        devices = filters._pci_devices(
            stats, nova_objects.host_view_of_object(numa), 1)
        self.assertEqual({0: 2}, devices)
        fitted = hardware.fit_instance_to_host(
            nova_objects.host_view_of_object(numa),
            nova_objects.instance_from_object(spec.numa_topology),
            devices=devices)
        self.assertEqual(1, fitted.cells[0].id)
        host = host_state(numa, pci_stats=stats)
        self.assertTrue(self.filt.host_passes(host, spec))
        self.assertNotIn('NUMATopologyFilter decides', self.log.output)

    def test_rebuild_passes_every_host(self) -> None:
        spec = request_spec(2, 1024, ISOLATE)
        spec.scheduler_hints = {'_nova_check_type': ['rebuild']}
        hosts = [host_state(two_cell_host(pinned=({0, 1}, {4, 5})))]
        self.assertEqual(hosts, list(self.filt.filter_all(hosts, spec)))

    def test_never_stricter_than_nova_on_a_partly_pinned_core(self) -> None:
        # Thread isolate and emulator isolate on an SMT host (with the
        # legacy configuration, cpuset == pcpuset, the only one where Nova
        # takes thread isolate on SMT): Nova's
        # fitter puts the emulator pCPU on the free thread of a core whose
        # other thread is pinned (its claim on the compute host would then
        # fail); the engine refuses that, NUMATopologyFilter accepts the
        # host, and so must we.
        numa = objects.NUMATopology(cells=[objects.NUMACell(
            id=0, cpuset={0, 1, 2, 3}, pcpuset={0, 1, 2, 3}, memory=2048,
            cpu_usage=0, memory_usage=0, pinned_cpus={0},
            siblings=[{0, 2}, {1, 3}],
            mempages=[objects.NUMAPagesTopology(
                size_kb=4, total=2048 * 256, used=0, reserved=0)],
            network_metadata=objects.NetworkMetadata(
                physnets=set(), tunneled=False), socket=0)])
        spec = request_spec(1, 512, {**ISOLATE,
                                     'hw:cpu_thread_policy': 'isolate'})
        self.assertTrue(numa_topology_filter.NUMATopologyFilter()
                        .host_passes(host_state(numa), spec))
        self.assertTrue(self.filt.host_passes(host_state(numa), spec))
        # It is the corner where the engine itself says "no fit".
        inst = nova_objects.instance_from_object(spec.numa_topology)
        host = nova_objects.host_from_object(numa)
        self.assertIsNone(hardware.fit_instance_to_host(host, inst))
        self.assertIn('Nova would pick it and then fail its claim',
                      hardware.explain_no_fit(host, inst))

    def test_not_run_on_rebuild(self) -> None:
        self.assertFalse(self.filt.RUN_ON_REBUILD)


class TestSameAnswer(base.TestCase):
    """The same answer as Nova's NUMATopologyFilter."""

    def setUp(self) -> None:
        super().setUp()
        self.useFixture(nova_patch_fixture.NovaPatchFixture(applied=True))
        self.ours = filters.EmulatorThreadsFilter()
        self.nova = numa_topology_filter.NUMATopologyFilter()

    def decide(self, generated: Any, flavor: Any) -> tuple[bool, bool]:
        """(Nova's answer, ours) for one host and flavor, or skip."""
        try:
            spec = request_spec(flavor.vcpus, flavor.memory_mb,
                                flavor.extra_specs)
        except nova_exception.Invalid:
            hypothesis.reject()
        ratios = generated.limits or strategies.hardware.Limits(16.0, 1.5)
        state = host_state(
            nova_reference.nova_host(generated.host),
            cpu_ratio=ratios.cpu_allocation_ratio,
            ram_ratio=ratios.ram_allocation_ratio)
        ours = self.ours.host_passes(state, spec)
        state.allocation_candidates = [{'mappings': {}}]
        nova = self.nova.host_passes(state, spec)
        return nova, ours

    @hypothesis.settings(max_examples=1000, deadline=None,
                         suppress_health_check=[
                             hypothesis.HealthCheck.too_slow,
                             hypothesis.HealthCheck.filter_too_much])
    @hypothesis.given(strategies.hosts(), strategies.flavors())
    def test_same_answer_as_nova(self, generated: Any,
                                 flavor: Any) -> None:
        nova, ours = self.decide(generated, flavor)
        hypothesis.event('nova %s, ours %s' % (nova, ours))
        # Except where Nova's libvirt driver refuses to build the guest
        # (realtime vCPUs under 'share' and no cpu_shared_set): Nova's
        # filter passes such a host and the build fails at spawn; ours
        # rejects it, and only it.
        requested = request_spec(flavor.vcpus, flavor.memory_mb,
                                 flavor.extra_specs).numa_topology
        spawn_fails = (
            not generated.shared and requested is not None
            and requested.emulator_threads_policy == 'share'
            and bool(hardware_nova.get_realtime_cpu_constraint(
                objects.Flavor(vcpus=flavor.vcpus,
                               extra_specs=flavor.extra_specs),
                objects.ImageMeta(properties=objects.ImageMetaProps()))))
        self.assertEqual(nova and not spawn_fails, ours,
                         '%r\n%r' % (generated, flavor))

    def test_generated_cases_include_rejections(self) -> None:
        # Not vacuous: the generators reach hosts both filters reject.
        found = hypothesis.find(
            st.tuples(strategies.hosts(), strategies.flavors()),
            lambda case: self.decide(*case) == (False, False),
            settings=hypothesis.settings(max_examples=2000, deadline=None,
                                         database=None))
        self.assertIsNotNone(found)
