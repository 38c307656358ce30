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

import fixtures
from nova import exception as nova_exception
from nova import objects
from nova.scheduler import utils as scheduler_utils
from nova.virt import hardware as nova_hardware
from oslo_config import fixture as config_fixture
from oslotest import base

from nova_emulator_threads import conf
from nova_emulator_threads import nova_patch
from tests.unit import nova_patch_fixture

flavor = nova_patch_fixture.flavor


class TestIsTestedNova(base.BaseTestCase):

    def test_versions(self) -> None:
        for version in ('34.0.0', '34.1.0', '34.0.0.0rc1', '34.2.1.dev12'):
            self.assertTrue(nova_patch.is_tested_nova(version), version)
        for version in ('33.1.0', '35.0.0', '35.0.0.0rc1', '2026.2',
                        'not-a-version', ''):
            self.assertFalse(nova_patch.is_tested_nova(version), version)

    def test_installed_nova_is_tested(self) -> None:
        # The venv this suite runs in holds a Nova the seams support.
        self.assertTrue(nova_patch.is_tested_nova(
            nova_patch.installed_nova_version()))


class TestApply(base.BaseTestCase):

    def setUp(self) -> None:
        super().setUp()
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
        self.assertEqual('nova.virt.hardware',
                         self.original_policy.__module__)
        self.assertEqual('nova.scheduler.utils',
                         self.original_pinning.__module__)

    def assert_unpatched(self) -> None:
        self.assertIs(self.original_policy,
                      nova_hardware.get_emulator_thread_policy_constraint)
        self.assertIs(
            self.original_pinning,
            scheduler_utils.ResourceRequest._translate_pinning_policies)

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
        for name in ('nova.api.openstack.compute.servers',
                     'nova.scheduler.utils', 'nova.scheduler.manager',
                     'nova.compute.manager', 'nova.virt.libvirt.driver'):
            importlib.import_module(name)
        holders = sorted(
            f'{name}.{attr}'
            for name, module in list(sys.modules.items())
            if module is not None and name.startswith('nova.')
            for attr, value in list(vars(module).items())
            if value is self.original_policy)
        self.assertEqual(
            ['nova.virt.hardware.get_emulator_thread_policy_constraint'],
            holders)
        nova_patch.apply()
        self.assertIs(nova_patch.get_emulator_thread_policy_constraint,
                      nova_hardware.get_emulator_thread_policy_constraint)

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


class TestPolicySeam(base.BaseTestCase):
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


class TestPlacementSeam(base.BaseTestCase):
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
