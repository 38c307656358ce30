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

"""Tests of the seams: applied once, refused on an untested Nova, and
answering with our policy and our overhead."""

import importlib
import sys
from typing import Any

import ddt
import fixtures
from nova import exception as nova_exception
from nova import objects
from nova.scheduler import utils as scheduler_utils
from nova.virt import hardware as nova_hardware
from oslo_config import fixture as config_fixture

from nova_emulator_threads import conf
from nova_emulator_threads import nova_patch
from nova_emulator_threads.virt import guest_topology
from nova_emulator_threads.virt.libvirt import capabilities
from tests.unit import base
from tests.unit import nova_patch_fixture
from tests.unit.virt import cases
from tests.unit.virt import nova_reference as ref

flavor = nova_patch_fixture.flavor


#: The Nova modules of the API, scheduler and compute services that call
#: the functions the seams rebind.
NOVA_SERVICE_MODULES = (
    'nova.api.openstack.compute.servers', 'nova.scheduler.utils',
    'nova.scheduler.manager', 'nova.scheduler.filters.numa_topology_filter',
    'nova.scheduler.host_manager', 'nova.compute.manager',
    'nova.compute.claims', 'nova.compute.resource_tracker',
    'nova.virt.libvirt.driver')


def _nova_names_holding(value: object, *modules: str) -> list[str]:
    """Import the Nova modules; then every ``module.name`` of a loaded
    Nova module bound to ``value``, sorted.
    """
    for module in modules:
        importlib.import_module(module)
    return sorted(
        f'{name}.{attr}'
        for name, module in list(sys.modules.items())
        if module is not None and name.startswith('nova.')
        for attr, found in list(vars(module).items())
        if found is value)


@ddt.ddt
class TestIsTestedNova(base.TestCase):

    @ddt.data('34.0.0', '34.1.0', '34.0.0.0rc1', '34.2.1.dev12')
    def test_tested_versions(self, version: str) -> None:
        self.assertTrue(nova_patch.is_tested_nova(version))

    @ddt.data('33.1.0', '35.0.0', '35.0.0.0rc1', '2026.2', 'not-a-version',
              '')
    def test_untested_versions(self, version: str) -> None:
        self.assertFalse(nova_patch.is_tested_nova(version))

    def test_installed_nova_is_tested(self) -> None:
        # The venv this suite runs in holds a Nova the seams support.
        self.assertTrue(nova_patch.is_tested_nova(
            nova_patch.installed_nova_version()))


class TestApply(base.TestCase):

    def setUp(self) -> None:
        super().setUp()
        # Some of the Nova modules the tests below look into import ours,
        # which applies the seams: import them all before the fixture
        # undoes the seams, whatever this process imported before.
        for module in NOVA_SERVICE_MODULES:
            importlib.import_module(module)
        self.useFixture(nova_patch_fixture.NovaPatchFixture(applied=False))
        self.conf = self.useFixture(config_fixture.Config())
        self.log = self.useFixture(fixtures.FakeLogger(
            name='nova_emulator_threads.nova_patch'))
        # Nova's own functions, whatever other tests in this process
        # imported before (our service modules apply the seams).
        self.original_policy = (
            nova_hardware.get_emulator_thread_policy_constraint)
        self.original_pinning = (
            scheduler_utils.ResourceRequest._translate_pinning_policies)
        self.original_packing = nova_hardware._pack_instance_onto_cores
        self.assertEqual('nova.virt.hardware',
                         self.original_policy.__module__)
        self.assertEqual('nova.virt.hardware',
                         self.original_packing.__module__)
        self.assertEqual('nova.scheduler.utils',
                         self.original_pinning.__module__)

    def assert_unpatched(self) -> None:
        self.assertIs(self.original_policy,
                      nova_hardware.get_emulator_thread_policy_constraint)
        self.assertIs(
            self.original_pinning,
            scheduler_utils.ResourceRequest._translate_pinning_policies)
        self.assertIs(self.original_packing,
                      nova_hardware._pack_instance_onto_cores)

    def assert_patched(self) -> None:
        policy_seam = nova_hardware.get_emulator_thread_policy_constraint
        pinning_seam = (
            scheduler_utils.ResourceRequest._translate_pinning_policies)
        self.assertIs(nova_patch.get_emulator_thread_policy_constraint,
                      policy_seam)
        self.assertIs(nova_patch._translate_pinning_policies, pinning_seam)
        # Each wraps Nova's own function, once.
        self.assertIs(self.original_policy, policy_seam.__wrapped__)
        self.assertIs(self.original_pinning, pinning_seam.__wrapped__)
        packing_seam = nova_hardware._pack_instance_onto_cores
        self.assertIs(nova_patch._pack_instance_onto_cores, packing_seam)
        self.assertIs(self.original_packing, packing_seam.__wrapped__)

    def test_starts_unpatched(self) -> None:
        self.assert_unpatched()
        self.assertFalse(nova_patch.is_applied())

    def test_apply_is_idempotent(self) -> None:
        self.assertTrue(nova_patch.apply())
        self.assert_patched()
        self.assertTrue(nova_patch.apply())
        self.assertTrue(nova_patch.apply())
        self.assert_patched()
        self.assertTrue(nova_patch.is_applied())
        # Logged once, not once per call.
        self.assertEqual(1, self.log.output.count('patched Nova'))
        # Nova's own behaviour is reached through the seam, not doubled:
        # one PCPU for the emulator threads.
        request = scheduler_utils.ResourceRequest.from_request_spec(
            objects.RequestSpec(
                flavor=flavor(hw__cpu_policy='dedicated',
                              hw__cpu_emulator_threads='isolate'),
                image=objects.ImageMeta(
                    properties=objects.ImageMetaProps()),
                is_bfv=False))
        self.assertEqual(3, request.merged_resources()['PCPU'])

    def test_revert(self) -> None:
        nova_patch.apply()
        nova_patch.revert()
        self.assert_unpatched()
        self.assertFalse(nova_patch.is_applied())

    def test_only_nova_virt_hardware_holds_the_function(self) -> None:
        # The seam rebinds one name. That is enough only while no Nova
        # module holds its own reference ('from nova.virt.hardware import
        # get_emulator_thread_policy_constraint'): check every Nova module
        # the three services load.
        holders = _nova_names_holding(
            self.original_policy, 'nova.api.openstack.compute.servers',
            'nova.scheduler.utils', 'nova.scheduler.manager',
            'nova.compute.manager', 'nova.virt.libvirt.driver')
        self.assertEqual(
            ['nova.virt.hardware.get_emulator_thread_policy_constraint'],
            holders)
        nova_patch.apply()
        self.assertIs(nova_patch.get_emulator_thread_policy_constraint,
                      nova_hardware.get_emulator_thread_policy_constraint)

    def test_only_nova_virt_hardware_holds_the_packing(self) -> None:
        # Seam (c) too rebinds one name, which reaches every caller only
        # while no Nova module holds its own reference.
        holders = _nova_names_holding(
            self.original_packing,
            'nova.scheduler.filters.numa_topology_filter',
            'nova.scheduler.host_manager', 'nova.compute.claims',
            'nova.compute.resource_tracker', 'nova.virt.libvirt.driver')
        self.assertEqual(['nova.virt.hardware._pack_instance_onto_cores'],
                         holders)

    def test_refuses_untested_nova(self) -> None:
        self.useFixture(fixtures.MockPatch(
            'nova_emulator_threads.nova_patch.installed_nova_version',
            return_value='35.1.0'))
        self.assertFalse(nova_patch.apply())
        self.assert_unpatched()
        self.assertFalse(nova_patch.is_applied())
        self.assertIn('Nova 35.1.0 is installed: its patches to Nova are '
                      'NOT applied', self.log.output)
        self.assertIn('34.0.0', self.log.output)
        self.assertIn('allow_untested_nova', self.log.output)
        # The decision holds: a second import does not patch either, and
        # does not log again.
        self.assertFalse(nova_patch.apply())
        self.assert_unpatched()
        self.assertEqual(1, self.log.output.count('NOT applied'))

    def test_untested_nova_allowed_by_option(self) -> None:
        self.useFixture(fixtures.MockPatch(
            'nova_emulator_threads.nova_patch.installed_nova_version',
            return_value='35.1.0'))
        self.conf.config(allow_untested_nova=True, group='emulator_threads')
        self.assertTrue(nova_patch.apply())
        self.assert_patched()
        self.assertIn('which they were not tested with', self.log.output)


class TestPolicySeam(base.TestCase):
    """Seam (a): every Nova caller sees our policy."""

    def setUp(self) -> None:
        super().setUp()
        self.useFixture(nova_patch_fixture.NovaPatchFixture(applied=True))
        self.image = objects.ImageMeta(properties=objects.ImageMetaProps())

    def policy(self, **specs: str) -> str | None:
        return nova_hardware.get_emulator_thread_policy_constraint(
            flavor(**specs))

    def test_reads_our_key_and_the_alias(self) -> None:
        self.assertIsNone(self.policy())
        self.assertEqual('isolate',
                         self.policy(hw__cpu_emulator_threads='isolate'))
        self.assertEqual('share',
                         self.policy(hw__emulator_threads_policy='share'))
        self.assertEqual('share', self.policy(
            hw__cpu_emulator_threads='share',
            hw__emulator_threads_policy='share'))

    def test_errors_are_novas_with_our_sentence(self) -> None:
        exc = self.assertRaises(
            nova_exception.InvalidEmulatorThreadsPolicy, self.policy,
            hw__cpu_emulator_threads='isolate',
            hw__emulator_threads_policy='share')
        self.assertIn("hw:cpu_emulator_threads='isolate'",
                      exc.format_message())
        self.assertIn("hw:emulator_threads_policy='share'",
                      exc.format_message())
        exc = self.assertRaises(
            nova_exception.InvalidEmulatorThreadsPolicy, self.policy,
            hw__cpu_emulator_threads='pinned')
        self.assertIn("hw:cpu_emulator_threads='pinned'",
                      exc.format_message())

    def test_numa_get_constraints(self) -> None:
        # The API's (and the compute's resize claim's) NUMA request.
        topology = nova_hardware.numa_get_constraints(
            flavor(hw__cpu_policy='dedicated',
                   hw__cpu_emulator_threads='isolate'), self.image)
        self.assertEqual('isolate', topology.emulator_threads_policy)
        self.assertRaises(
            nova_exception.BadRequirementEmulatorThreadsPolicy,
            nova_hardware.numa_get_constraints,
            flavor(hw__cpu_emulator_threads='isolate'), self.image)

    def test_realtime_constraint(self) -> None:
        # Realtime on every vCPU needs an emulator threads policy: ours
        # counts.
        specs = {'hw__cpu_policy': 'dedicated', 'hw__cpu_realtime': 'yes'}
        self.assertRaises(
            nova_exception.RealtimeMaskNotFoundOrInvalid,
            nova_hardware.get_realtime_cpu_constraint, flavor(**specs),
            self.image)
        self.assertEqual({0, 1}, nova_hardware.get_realtime_cpu_constraint(
            flavor(hw__cpu_emulator_threads='isolate', **specs),
            self.image))


class TestPlacementSeam(base.TestCase):
    """Seam (b): the scheduler's PCPU request has our overhead."""

    def setUp(self) -> None:
        super().setUp()
        self.useFixture(nova_patch_fixture.NovaPatchFixture(applied=True))

    def resources(self, vcpus: int = 2, **specs: str) -> dict[str, int]:
        spec = objects.RequestSpec(
            flavor=flavor(vcpus, **specs),
            image=objects.ImageMeta(properties=objects.ImageMetaProps()),
            is_bfv=False)
        resources = scheduler_utils.ResourceRequest.from_request_spec(
            spec).merged_resources()
        return {rc: n for rc, n in resources.items() if rc in ('VCPU',
                                                               'PCPU')}

    def test_dedicated(self) -> None:
        ded = {'hw__cpu_policy': 'dedicated'}
        self.assertEqual({'PCPU': 2}, self.resources(**ded))
        self.assertEqual({'PCPU': 3}, self.resources(
            hw__cpu_emulator_threads='isolate', **ded))
        self.assertEqual({'PCPU': 3}, self.resources(
            hw__emulator_threads_policy='isolate', **ded))
        self.assertEqual({'PCPU': 2}, self.resources(
            hw__cpu_emulator_threads='share', **ded))
        self.assertEqual({'PCPU': 5}, self.resources(
            4, hw__cpu_emulator_threads='isolate', **ded))

    def test_mixed(self) -> None:
        self.assertEqual({'VCPU': 1, 'PCPU': 3}, self.resources(
            3, hw__cpu_policy='mixed', hw__cpu_dedicated_mask='^0',
            hw__cpu_emulator_threads='isolate'))

    def test_explicit_pcpu_request_is_left_alone(self) -> None:
        # The flavor already asks for vCPUs + 1 itself.
        self.assertEqual({'PCPU': 3}, self.resources(
            2, resources__PCPU='3', hw__cpu_emulator_threads='isolate'))

    def test_unpinned(self) -> None:
        self.assertEqual({'VCPU': 2}, self.resources())

    def test_shared_pool_vcpus(self) -> None:
        self.useFixture(config_fixture.Config(conf.CONF)).config(
            shared_pool_vcpus=2, group='emulator_threads')
        ded = {'hw__cpu_policy': 'dedicated'}
        self.assertEqual({'PCPU': 2, 'VCPU': 2}, self.resources(
            hw__cpu_emulator_threads='share', **ded))
        self.assertEqual({'PCPU': 2, 'VCPU': 2}, self.resources(
            hw__emulator_threads_policy='share', **ded))
        # Mixed: on top of the shared vCPUs' VCPU.
        self.assertEqual({'VCPU': 3, 'PCPU': 2}, self.resources(
            3, hw__cpu_policy='mixed', hw__cpu_dedicated_mask='^0',
            hw__cpu_emulator_threads='share'))
        # Other guests: as without the option.
        self.assertEqual({'PCPU': 3}, self.resources(
            hw__cpu_emulator_threads='isolate', **ded))
        self.assertEqual({'PCPU': 2}, self.resources(**ded))
        self.assertEqual({'VCPU': 2}, self.resources())

    def test_overhead_figure_is_ours(self) -> None:
        self.useFixture(fixtures.MockPatch(
            'nova_emulator_threads.overhead.estimate_instance_overhead',
            return_value={'PCPU': 2}))
        self.assertEqual({'PCPU': 4}, self.resources(
            hw__cpu_policy='dedicated', hw__cpu_emulator_threads='isolate'))
        self.assertEqual({'PCPU': 4}, self.resources(
            hw__cpu_policy='dedicated', hw__cpu_emulator_threads='share'))


class TestPackingSeam(base.TestCase):
    """Seam (c): Nova's own fitter keeps the emulator pCPU off the cores
    of the guest's vCPUs under ``emulator_pcpu_siblings = avoid``.

    The host: one cell of 4 cores, SMT2, numbered the Linux way: the
    cores are {0,4}, {1,5}, {2,6} and {3,7}, which Nova walks in the order
    of its set of sibling sets: {3,7}, {0,4}, {2,6}, {1,5}.
    """

    def setUp(self) -> None:
        super().setUp()
        self.useFixture(nova_patch_fixture.NovaPatchFixture(applied=True))
        self.conf = self.useFixture(config_fixture.Config())

    def host(self, pinned: str = '') -> Any:
        return ref.nova_host(capabilities.host_topology_from_caps(
            cases.caps_xml(1, 4, 2, True, [4096], None), '', '', pinned))

    def instance(self, vcpus: int = 1, **specs: str) -> Any:
        return ref.nova_instance(guest_topology.instance_topology_from_flavor(
            vcpus, 256, dict({'hw:cpu_policy': 'dedicated',
                              'hw:cpu_emulator_threads': 'isolate'},
                             **{key.replace('__', ':'): value
                                for key, value in specs.items()})))

    def fit(self, siblings: str, pinned: str = '', vcpus: int = 1,
            **specs: str) -> Any:
        self.conf.config(emulator_pcpu_siblings=siblings,
                         group='emulator_threads')
        return ref.nova_fit(self.host(pinned), self.instance(vcpus, **specs))

    def test_allow_is_novas_function(self) -> None:
        fitted = self.fit('allow')
        self.assertEqual({0: 3}, fitted.cells[0].cpu_pinning)
        self.assertEqual({7}, fitted.cells[0].cpuset_reserved)
        # Called as it is: same answer as Nova's own function, which the
        # seam wraps, on a fresh copy of the same objects.
        host, inst = self.host(), self.instance()
        original = nova_hardware._pack_instance_onto_cores.__wrapped__
        expected = original(host.cells[0], inst.cells[0].obj_clone(), 1)
        got = nova_hardware._pack_instance_onto_cores(
            host.cells[0], inst.cells[0].obj_clone(), num_cpu_reserved=1)
        self.assertEqual(expected.obj_to_primitive(),
                         got.obj_to_primitive())

    def test_avoid_takes_another_core(self) -> None:
        fitted = self.fit('avoid')
        self.assertEqual({0: 3}, fitted.cells[0].cpu_pinning)
        self.assertEqual({0}, fitted.cells[0].cpuset_reserved)
        fitted = self.fit('avoid', vcpus=3)
        self.assertEqual({0: 3, 1: 7, 2: 0}, fitted.cells[0].cpu_pinning)
        self.assertEqual({2}, fitted.cells[0].cpuset_reserved)

    def test_avoid_without_a_free_core_does_not_fit(self) -> None:
        self.assertEqual({4}, self.fit('allow', pinned='1-3,5-7')
                         .cells[0].cpuset_reserved)
        self.assertIsNone(self.fit('avoid', pinned='1-3,5-7'))

    def test_refusal_leaves_the_cell_as_nova_does(self) -> None:
        # Nova's packing writes nothing into the instance cell when it
        # fails, and its fitter's caches depend on that.
        self.conf.config(emulator_pcpu_siblings='avoid',
                         group='emulator_threads')
        cell = self.instance().cells[0]
        before = cell.obj_to_primitive()
        self.assertIsNone(nova_hardware._pack_instance_onto_cores(
            self.host('1-3,5-7').cells[0], cell, num_cpu_reserved=1))
        self.assertEqual(before, cell.obj_to_primitive())
        # Also when an earlier packing had written into it.
        cell.id = 7
        cell.pin_vcpus((0, 3))
        cell.cpuset_reserved = {6}
        before = cell.obj_to_primitive()
        self.assertIsNone(nova_hardware._pack_instance_onto_cores(
            self.host('1-3,5-7').cells[0], cell, num_cpu_reserved=1))
        self.assertEqual(before, cell.obj_to_primitive())

    def test_without_emulator_pcpu_nothing_changes(self) -> None:
        # No reservation: Nova's function, whatever the option.
        self.conf.config(emulator_pcpu_siblings='avoid',
                         group='emulator_threads')
        host = self.host()
        inst = ref.nova_instance(guest_topology.instance_topology_from_flavor(
            1, 256, {'hw:cpu_policy': 'dedicated'}))
        fitted = ref.nova_fit(host, inst)
        self.assertEqual({0: 3}, fitted.cells[0].cpu_pinning)
        self.assertIsNone(fitted.cells[0].cpuset_reserved)

    def test_thread_isolate_is_left_as_nova_chose(self) -> None:
        # Legacy mode (no dedicated or shared set) allows thread isolate on
        # SMT; Nova already keeps the emulator pCPU off the vCPUs' cores.
        allowed = self.fit('allow', vcpus=2, hw__cpu_thread_policy='isolate')
        avoided = self.fit('avoid', vcpus=2, hw__cpu_thread_policy='isolate')
        self.assertEqual(allowed.obj_to_primitive(),
                         avoided.obj_to_primitive())
        self.assertEqual({2}, avoided.cells[0].cpuset_reserved)
