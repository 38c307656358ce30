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

"""Extra specs and image properties -> CPURequest: each key, each error."""

from typing import Any

import ddt

from nova_emulator_threads import cpu_request
from nova_emulator_threads import exception
from tests.unit import cpu_request_base
from tests.unit.cpu_request_base import DEDICATED
from tests.unit.cpu_request_base import ISOLATE
from tests.unit.cpu_request_base import parse


@ddt.ddt
class EmulatorThreadsTestCase(cpu_request_base.TestCase):

    @ddt.data(
        ({}, None),
        ({'hw:cpu_emulator_threads': 'share'}, 'share'),
        ({'hw:cpu_emulator_threads': 'isolate'}, 'isolate'),
        ({'hw:emulator_threads_policy': 'share'}, 'share'),
        ({'hw:emulator_threads_policy': 'isolate'}, 'isolate'),
        ({'hw:cpu_emulator_threads': 'isolate',
          'hw:emulator_threads_policy': 'isolate'}, 'isolate'),
        ({'hw:cpu_emulator_threads': 'share',
          'hw:emulator_threads_policy': 'share'}, 'share'),
    )
    @ddt.unpack
    def test_policy(self, specs: dict[str, str], expected: str | None
                    ) -> None:
        self.assertEqual(expected, cpu_request.emulator_threads_policy(specs))
        self.assertEqual(
            expected, parse(dict(DEDICATED, **specs)).emulator_threads_policy)

    def test_policy_of_no_specs(self) -> None:
        self.assertIsNone(cpu_request.emulator_threads_policy(None))

    def test_policy_ignores_the_cpu_policy(self) -> None:
        # Like Nova's get_emulator_thread_policy_constraint: the CPU policy
        # may come from the image, so the check is parse_request's.
        self.assertEqual('share', cpu_request.emulator_threads_policy(
            {'hw:cpu_emulator_threads': 'share'}))

    @ddt.data(
        ('hw:cpu_emulator_threads', 'isolated'),
        ('hw:cpu_emulator_threads', 'Isolate'),
        ('hw:cpu_emulator_threads', ''),
        ('hw:emulator_threads_policy', 'shared'),
        ('hw:emulator_threads_policy', ''),
    )
    @ddt.unpack
    def test_invalid_value(self, key: str, value: str) -> None:
        exc = self.assertRaises(
            exception.InvalidExtraSpec, cpu_request.emulator_threads_policy, {
                key: value})
        self.assertEqual("Invalid %s=%r: must be one of 'share', 'isolate'."
                         % (key, value), str(exc))
        self.assertRejected(exception.InvalidExtraSpec, [(key, value)],
                            dict(DEDICATED, **{key: value}))

    @ddt.data(('share', 'isolate'), ('isolate', 'share'))
    @ddt.unpack
    def test_alias_conflict(self, ours: str, alias: str) -> None:
        specs = {'hw:cpu_emulator_threads': ours,
                 'hw:emulator_threads_policy': alias}
        self.assertRaises(exception.ConflictingExtraSpecs,
                          cpu_request.emulator_threads_policy, specs)
        message = self.assertRejected(
            exception.ConflictingExtraSpecs,
            [('hw:cpu_emulator_threads', ours),
             ('hw:emulator_threads_policy', alias)],
            dict(DEDICATED, **specs))
        self.assertIn('alias', message)

    @ddt.data(
        # Our deliberate rule: any policy needs pinned vCPUs.
        ({'hw:cpu_emulator_threads': 'share'}, exception.InvalidExtraSpec,
         [('hw:cpu_emulator_threads', 'share')]),
        ({'hw:cpu_emulator_threads': 'isolate'}, exception.InvalidExtraSpec,
         [('hw:cpu_emulator_threads', 'isolate')]),
        ({'hw:emulator_threads_policy': 'share'}, exception.InvalidExtraSpec,
         [('hw:emulator_threads_policy', 'share')]),
        ({'hw:cpu_emulator_threads': 'share', 'hw:cpu_policy': 'shared'},
         exception.ConflictingExtraSpecs,
         [('hw:cpu_emulator_threads', 'share'), ('hw:cpu_policy', 'shared')]),
        ({'hw:cpu_emulator_threads': 'isolate', 'resources:VCPU': '4'},
         exception.ConflictingExtraSpecs,
         [('hw:cpu_emulator_threads', 'isolate'), ('resources:VCPU', 4)]),
    )
    @ddt.unpack
    def test_needs_pinned_vcpus(self, specs: dict[str, str],
                                exc_class: type[exception.Invalid],
                                names: list[tuple[str, Any]]) -> None:
        message = self.assertRejected(exc_class, names, specs)
        self.assertIn('hw:cpu_policy=dedicated or mixed', message)

    @ddt.data('share', 'isolate')
    def test_pinned_by_the_image_policy(self, value: str) -> None:
        request = parse({'hw:cpu_emulator_threads': value},
                        {'hw_cpu_policy': 'dedicated'})
        self.assertEqual(('dedicated', value), (
            request.cpu_policy, request.emulator_threads_policy))

    @ddt.data(
        (None, None, False), ('shared', None, False),
        ('dedicated', None, True), ('mixed', None, True),
        (None, 'share', False), ('shared', 'isolate', False),
        ('dedicated', 'share', True), ('mixed', 'isolate', True),
    )
    @ddt.unpack
    def test_check_emulator_threads_cpu_policy(
            self, cpu_policy: str | None, emulator: str | None,
            ok: bool) -> None:
        if ok or emulator is None:
            cpu_request.check_emulator_threads_cpu_policy(emulator, cpu_policy)
        else:
            self.assertRaises(exception.Invalid,
                              cpu_request.check_emulator_threads_cpu_policy,
                              emulator, cpu_policy)


@ddt.ddt
class CPUPolicyTestCase(cpu_request_base.TestCase):

    # (flavor, image) -> policy, per Nova's get_cpu_policy_constraint.
    @ddt.data(
        (None, None, None),
        ('dedicated', None, 'dedicated'), ('mixed', None, 'mixed'),
        ('shared', None, 'shared'),
        (None, 'dedicated', 'dedicated'), (None, 'mixed', 'mixed'),
        (None, 'shared', 'shared'),
        ('dedicated', 'dedicated', 'dedicated'),
        ('dedicated', 'mixed', 'dedicated'),
        ('dedicated', 'shared', 'dedicated'),
        ('mixed', 'mixed', 'mixed'), ('mixed', 'shared', 'mixed'),
        ('shared', 'shared', 'shared'),
    )
    @ddt.unpack
    def test_precedence(self, flavor: str | None, image: str | None,
                        expected: str | None) -> None:
        specs = {'hw:cpu_policy': flavor} if flavor else {}
        props = {'hw_cpu_policy': image} if image else {}
        if expected == 'mixed':
            specs['hw:cpu_dedicated_mask'] = '0'
        request = parse(specs, props)
        self.assertEqual(expected, request.cpu_policy)
        pinned = {'dedicated': {0, 1, 2, 3}, 'mixed': {0}}.get(
            expected or '', set())
        self.assertEqual(pinned, request.dedicated_cpus)
        self.assertEqual(bool(pinned), request.needs_numa_topology)

    @ddt.data(('mixed', 'dedicated'), ('shared', 'dedicated'),
              ('shared', 'mixed'))
    @ddt.unpack
    def test_image_may_not_pin_more(self, flavor: str, image: str) -> None:
        self.assertRejected(
            exception.ConflictingExtraSpecs,
            [('hw_cpu_policy', image), ('hw:cpu_policy', flavor)],
            {'hw:cpu_policy': flavor, 'hw:cpu_dedicated_mask': '0'},
            {'hw_cpu_policy': image})

    @ddt.data(('hw:cpu_policy', 'bogus', None), ('hw:cpu_policy', '', None),
              ('hw:cpu_policy', 'Dedicated', None),
              ('hw_cpu_policy', None, 'bogus'))
    @ddt.unpack
    def test_invalid(self, key: str, flavor: str | None,
                     image: str | None) -> None:
        specs = {'hw:cpu_policy': flavor} if flavor is not None else {}
        props = {'hw_cpu_policy': image} if image is not None else {}
        message = self.assertRejected(
            exception.InvalidExtraSpec,
            [(key, flavor if flavor is not None else image)], specs,
            props)
        self.assertIn("'dedicated', 'shared', 'mixed'", message)

    def test_empty_image_value_is_unset(self) -> None:
        self.assertIsNone(parse({}, {'hw_cpu_policy': ''}).cpu_policy)


@ddt.ddt
class CPUThreadPolicyTestCase(cpu_request_base.TestCase):

    # (flavor, image) -> policy, per Nova's get_cpu_thread_policy_constraint.
    @ddt.data(
        (None, None, None),
        ('prefer', None, 'prefer'), ('isolate', None, 'isolate'),
        ('require', None, 'require'),
        (None, 'isolate', 'isolate'), (None, 'require', 'require'),
        ('prefer', 'isolate', 'prefer'), ('prefer', 'require', 'prefer'),
        ('isolate', 'isolate', 'isolate'), ('require', 'require', 'require'),
    )
    @ddt.unpack
    def test_precedence(self, flavor: str | None, image: str | None,
                        expected: str | None) -> None:
        specs = dict(DEDICATED)
        if flavor:
            specs['hw:cpu_thread_policy'] = flavor
        props = {'hw_cpu_thread_policy': image} if image else {}
        self.assertEqual(expected, parse(specs, props).cpu_thread_policy)

    @ddt.data(('isolate', 'require'), ('isolate', 'prefer'),
              ('require', 'isolate'), ('require', 'prefer'))
    @ddt.unpack
    def test_image_conflict(self, flavor: str, image: str) -> None:
        self.assertRejected(
            exception.ConflictingExtraSpecs,
            [('hw_cpu_thread_policy', image),
             ('hw:cpu_thread_policy', flavor)],
            dict(DEDICATED, **{'hw:cpu_thread_policy': flavor}),
            {'hw_cpu_thread_policy': image})

    @ddt.data(('hw:cpu_thread_policy', 'bogus'), ('hw:cpu_thread_policy', ''),
              ('hw_cpu_thread_policy', 'bogus'))
    @ddt.unpack
    def test_invalid(self, key: str, value: str) -> None:
        specs, props = dict(DEDICATED), {}
        if key.startswith('hw:'):
            specs[key] = value
        else:
            props[key] = value
        self.assertRejected(exception.InvalidExtraSpec, [(key, value)],
                            specs, props)

    @ddt.data(
        ({'hw:cpu_thread_policy': 'prefer'}, {}, exception.InvalidExtraSpec,
         [('hw:cpu_thread_policy', 'prefer')]),
        ({'hw:cpu_thread_policy': 'isolate', 'hw:cpu_policy': 'shared'}, {},
         exception.ConflictingExtraSpecs,
         [('hw:cpu_thread_policy', 'isolate'), ('hw:cpu_policy', 'shared')]),
        ({}, {'hw_cpu_thread_policy': 'require'}, exception.InvalidExtraSpec,
         [('hw_cpu_thread_policy', 'require')]),
        ({'trait:HW_CPU_HYPERTHREADING': 'forbidden'}, {},
         exception.InvalidExtraSpec,
         [('trait:HW_CPU_HYPERTHREADING', 'forbidden')]),
        ({'hw:cpu_thread_policy': 'isolate', 'resources:VCPU': '4'}, {},
         exception.ConflictingExtraSpecs,
         [('hw:cpu_thread_policy', 'isolate'), ('resources:VCPU', 4)]),
    )
    @ddt.unpack
    def test_needs_pinned_vcpus(self, specs: dict[str, str],
                                props: dict[str, Any],
                                exc_class: type[exception.Invalid],
                                names: list[tuple[str, Any]]) -> None:
        self.assertRejected(exc_class, names, specs, props)


@ddt.ddt
class HyperthreadingTraitTestCase(cpu_request_base.TestCase):

    @ddt.data(
        ({'trait:HW_CPU_HYPERTHREADING': 'forbidden'}, {}, 'isolate'),
        ({'trait:HW_CPU_HYPERTHREADING': 'required'}, {}, 'require'),
        ({'trait1:HW_CPU_HYPERTHREADING': 'forbidden'}, {}, 'isolate'),
        ({'trait_net:HW_CPU_HYPERTHREADING': 'required'}, {}, 'require'),
        ({'trait1:HW_CPU_HYPERTHREADING': 'required',
          'trait2:HW_CPU_HYPERTHREADING': 'required'}, {}, 'require'),
        ({}, {'traits_required': ['HW_CPU_HYPERTHREADING']}, 'require'),
        ({}, {'traits_required': ['HW_CPU_X86_AVX']}, None),
        # The flavor's trait wins over the image's, as in Nova.
        ({'trait:HW_CPU_HYPERTHREADING': 'forbidden'},
         {'traits_required': ['HW_CPU_HYPERTHREADING']}, 'isolate'),
        # Not the trait: a longer name.
        ({'trait:HW_CPU_HYPERTHREADING_X': 'required'}, {}, None),
    )
    @ddt.unpack
    def test_trait(self, specs: dict[str, str], props: dict[str, Any],
                   expected: str | None) -> None:
        self.assertEqual(expected, parse(dict(DEDICATED, **specs),
                                         props).cpu_thread_policy)

    @ddt.data(
        ({'trait:HW_CPU_HYPERTHREADING': 'bogus'}, {},
         exception.InvalidExtraSpec,
         [('trait:HW_CPU_HYPERTHREADING', 'bogus')]),
        ({'trait1:HW_CPU_HYPERTHREADING': 'required',
          'trait2:HW_CPU_HYPERTHREADING': 'forbidden'}, {},
         exception.ConflictingExtraSpecs,
         [('trait2:HW_CPU_HYPERTHREADING', 'forbidden'),
          ('trait1:HW_CPU_HYPERTHREADING', 'required')]),
        ({'trait:HW_CPU_HYPERTHREADING': 'required',
          'hw:cpu_thread_policy': 'prefer'}, {},
         exception.ConflictingExtraSpecs,
         [('trait:HW_CPU_HYPERTHREADING', 'required'),
          ('hw:cpu_thread_policy', 'prefer')]),
        ({}, {'traits_required': ['HW_CPU_HYPERTHREADING'],
              'hw_cpu_thread_policy': 'isolate'},
         exception.ConflictingExtraSpecs,
         [('traits_required', 'required'),
          ('hw_cpu_thread_policy', 'isolate')]),
        ({}, {'traits_required': 'HW_CPU_HYPERTHREADING'},
         exception.InvalidExtraSpec,
         [('traits_required', 'HW_CPU_HYPERTHREADING')]),
    )
    @ddt.unpack
    def test_invalid(self, specs: dict[str, str], props: dict[str, Any],
                     exc_class: type[exception.Invalid],
                     names: list[tuple[str, Any]]) -> None:
        self.assertRejected(exc_class, names, dict(DEDICATED, **specs), props)


@ddt.ddt
class ResourcesTestCase(cpu_request_base.TestCase):

    @ddt.data(
        ({'resources:PCPU': '4'}, 'dedicated', None, 4),
        ({'resources1:PCPU': '4'}, 'dedicated', None, 4),
        ({'resources1:PCPU': '2', 'resources2:PCPU': '2'}, 'dedicated',
         None, 4),
        # Placement's named group suffixes count, as in Nova's scheduler.
        ({'resources_pinned:PCPU': '4'}, 'dedicated', None, 4),
        ({'resources:PCPU': '5', 'hw:cpu_emulator_threads': 'isolate'},
         'dedicated', None, 5),
        ({'resources:PCPU': '4', 'hw:cpu_emulator_threads': 'share'},
         'dedicated', None, 4),
        ({'resources:VCPU': '4'}, 'shared', 4, None),
        ({'resources:VCPU': '2'}, 'shared', 2, None),
        # Zero asks for nothing and sets no policy (Ironic flavors).
        ({'resources:VCPU': '0'}, None, 0, None),
        ({'resources:PCPU': '0'}, None, None, 0),
        ({'resources:VCPU': '0', 'hw:cpu_policy': 'dedicated'}, 'dedicated',
         0, None),
        # Not ours.
        ({'resources:MEMORY_MB': 'x', 'resources:VCPUS': 'x'}, None, None,
         None),
    )
    @ddt.unpack
    def test_resources(self, specs: dict[str, str], cpu_policy: str | None,
                       vcpu: int | None, pcpu: int | None) -> None:
        request = parse(specs)
        self.assertEqual((cpu_policy, vcpu, pcpu), (
            request.cpu_policy, request.vcpu_resources,
            request.pcpu_resources))
        if cpu_policy == 'dedicated':
            self.assertEqual({0, 1, 2, 3}, request.dedicated_cpus)

    @ddt.data(
        ({'resources:PCPU': '3'}, exception.InvalidExtraSpec,
         [('resources:PCPU', 3)], "flavor's 4 vCPUs"),
        ({'resources:PCPU': '4', 'hw:cpu_emulator_threads': 'isolate'},
         exception.InvalidExtraSpec, [('resources:PCPU', 4)],
         'plus 1 for hw:cpu_emulator_threads=isolate, so 5'),
        ({'resources1:PCPU': '2', 'resources2:PCPU': '2',
          'hw:emulator_threads_policy': 'isolate'},
         exception.InvalidExtraSpec, [('resources1:PCPU', 4)], 'so 5'),
        ({'resources:PCPU': '5'}, exception.InvalidExtraSpec,
         [('resources:PCPU', 5)], "flavor's 4 vCPUs"),
        ({'resources:PCPU': '4', 'hw:cpu_policy': 'dedicated'},
         exception.ConflictingExtraSpecs,
         [('resources:PCPU', 4), ('hw:cpu_policy', 'dedicated')], 'one or'),
        ({'resources:VCPU': '4', 'hw:cpu_policy': 'shared'},
         exception.ConflictingExtraSpecs,
         [('resources:VCPU', 4), ('hw:cpu_policy', 'shared')], 'one or'),
        ({'resources:VCPU': '2', 'resources:PCPU': '4'},
         exception.ConflictingExtraSpecs,
         [('resources:VCPU', 2), ('resources:PCPU', 4)], 'not both'),
        ({'resources:PCPU': 'four'}, exception.InvalidExtraSpec,
         [('resources:PCPU', 'four')], 'integer'),
        ({'resources:VCPU': '-1'}, exception.InvalidExtraSpec,
         [('resources:VCPU', '-1')], 'at least 0'),
        ({'resources:VCPU': '+4'}, exception.InvalidExtraSpec,
         [('resources:VCPU', '+4')], 'integer'),
    )
    @ddt.unpack
    def test_invalid(self, specs: dict[str, str],
                     exc_class: type[exception.Invalid],
                     names: list[tuple[str, Any]], fragment: str) -> None:
        self.assertIn(fragment, self.assertRejected(exc_class, names, specs))

    def test_image_policy_with_resources(self) -> None:
        self.assertRejected(
            exception.ConflictingExtraSpecs,
            [('resources:PCPU', 4), ('hw_cpu_policy', 'dedicated')],
            {'resources:PCPU': '4'}, {'hw_cpu_policy': 'dedicated'})


@ddt.ddt
class DedicatedMaskTestCase(cpu_request_base.TestCase):

    @ddt.data(('0', {0}), ('0-1', {0, 1}), ('^0', {1, 2, 3}),
              ('^0,^3', {1, 2}), ('1,3', {1, 3}), (' 2 ', {2}))
    @ddt.unpack
    def test_mixed(self, mask: str, pinned: set[int]) -> None:
        request = parse({'hw:cpu_policy': 'mixed',
                         'hw:cpu_dedicated_mask': mask})
        self.assertEqual(('mixed', pinned),
                         (request.cpu_policy, request.dedicated_cpus))
        self.assertTrue(request.needs_numa_topology)

    def test_mixed_from_the_image(self) -> None:
        request = parse({'hw:cpu_dedicated_mask': '0'},
                        {'hw_cpu_policy': 'mixed'})
        self.assertEqual(('mixed', {0}),
                         (request.cpu_policy, request.dedicated_cpus))

    @ddt.data(
        ({'hw:cpu_policy': 'mixed', 'hw:cpu_dedicated_mask': '0-3'},
         exception.InvalidExtraSpec, 'leave some unpinned'),
        ({'hw:cpu_policy': 'mixed', 'hw:cpu_dedicated_mask': '^0-3'},
         exception.InvalidExtraSpec, 'leave some unpinned'),
        ({'hw:cpu_policy': 'mixed', 'hw:cpu_dedicated_mask': '2-5'},
         exception.InvalidExtraSpec, "only the flavor's vCPUs 0-3"),
        ({'hw:cpu_policy': 'mixed', 'hw:cpu_dedicated_mask': ''},
         exception.InvalidExtraSpec, 'must name vCPUs'),
        ({'hw:cpu_policy': 'mixed', 'hw:cpu_dedicated_mask': '0-x'},
         exception.InvalidCPUSpec, 'not a CPU id'),
        ({'hw:cpu_policy': 'mixed', 'hw:cpu_dedicated_mask': '3-1'},
         exception.InvalidCPUSpec, 'reversed'),
        ({'hw:cpu_policy': 'dedicated', 'hw:cpu_dedicated_mask': '0'},
         exception.ConflictingExtraSpecs, 'hw:cpu_policy=mixed'),
        ({'hw:cpu_policy': 'shared', 'hw:cpu_dedicated_mask': '0'},
         exception.InvalidExtraSpec, 'hw:cpu_policy=mixed'),
        ({'hw:cpu_dedicated_mask': '0'},
         exception.InvalidExtraSpec, 'hw:cpu_policy=mixed'),
    )
    @ddt.unpack
    def test_invalid(self, specs: dict[str, str],
                     exc_class: type[exception.Invalid],
                     fragment: str) -> None:
        message = self.assertRejected(
            exc_class, [('hw:cpu_dedicated_mask',
                         specs['hw:cpu_dedicated_mask'])], specs)
        self.assertIn(fragment, message)

    def test_mixed_needs_a_mask(self) -> None:
        message = self.assertRejected(exception.InvalidExtraSpec,
                                      [('hw:cpu_policy', 'mixed')],
                                      {'hw:cpu_policy': 'mixed'})
        self.assertIn('hw:cpu_dedicated_mask', message)


@ddt.ddt
class RealtimeTestCase(cpu_request_base.TestCase):

    @ddt.data(
        ({'hw:cpu_realtime_mask': '^0'}, {}, None, {1, 2, 3}),
        ({'hw:cpu_realtime_mask': '1-2'}, {}, None, {1, 2}),
        ({'hw:cpu_realtime_mask': '^0-1'}, {}, None, {2, 3}),
        # The image's mask is used ahead of the flavor's.
        ({'hw:cpu_realtime_mask': '^0'}, {'hw_cpu_realtime_mask': '^0-2'},
         None, {3}),
        ({}, {'hw_cpu_realtime_mask': '^3'}, None, {0, 1, 2}),
        ({}, {'hw_cpu_realtime_mask': ''}, 'isolate', {0, 1, 2, 3}),
        # Every vCPU realtime is fine when the emulator threads have a
        # policy (and so somewhere else to run).
        ({}, {}, 'isolate', {0, 1, 2, 3}),
        ({'hw:cpu_realtime_mask': '0-3'}, {}, 'share', {0, 1, 2, 3}),
    )
    @ddt.unpack
    def test_realtime(self, specs: dict[str, str], props: dict[str, Any],
                      emulator: str | None, expected: set[int]) -> None:
        specs = dict(DEDICATED, **specs)
        specs['hw:cpu_realtime'] = 'yes'
        if emulator:
            specs['hw:cpu_emulator_threads'] = emulator
        request = parse(specs, props)
        self.assertEqual(expected, request.realtime_cpus)
        self.assertEqual({0, 1, 2, 3}, request.dedicated_cpus)

    @ddt.data('false', 'no', '0', 'off')
    def test_off_ignores_the_mask(self, flag: str) -> None:
        request = parse(dict(DEDICATED, **{'hw:cpu_realtime': flag,
                                           'hw:cpu_realtime_mask': '^9'}))
        self.assertEqual(frozenset(), request.realtime_cpus)

    @ddt.data('True', 'on', '1', 't', 'Y')
    def test_booleans(self, flag: str) -> None:
        request = parse(dict(DEDICATED, **{'hw:cpu_realtime': flag,
                                           'hw:cpu_realtime_mask': '^0'}))
        self.assertEqual({1, 2, 3}, request.realtime_cpus)

    def test_mixed_pins_the_realtime_vcpus(self) -> None:
        request = parse({'hw:cpu_policy': 'mixed', 'hw:cpu_realtime': 'true',
                         'hw:cpu_realtime_mask': '^0-1'})
        self.assertEqual(({2, 3}, {2, 3}), (request.realtime_cpus,
                                            request.dedicated_cpus))

    @ddt.data(
        ({'hw:cpu_realtime': 'maybe'}, {}, exception.InvalidExtraSpec,
         [('hw:cpu_realtime', 'maybe')], 'boolean'),
        ({'hw:cpu_realtime': ''}, {}, exception.InvalidExtraSpec,
         [('hw:cpu_realtime', '')], 'boolean'),
        ({'hw:cpu_realtime': 'yes'}, {}, exception.InvalidExtraSpec,
         [('hw:cpu_realtime', 'yes')], 'nowhere to run'),
        ({'hw:cpu_realtime': 'yes', 'hw:cpu_realtime_mask': '0-3'}, {},
         exception.InvalidExtraSpec, [('hw:cpu_realtime_mask', '0-3')],
         'nowhere to run'),
        ({'hw:cpu_realtime': 'yes', 'hw:cpu_realtime_mask': '^0-3'}, {},
         exception.InvalidExtraSpec, [('hw:cpu_realtime_mask', '^0-3')],
         'at least one vCPU realtime'),
        ({'hw:cpu_realtime': 'yes', 'hw:cpu_realtime_mask': '2-4'}, {},
         exception.InvalidExtraSpec, [('hw:cpu_realtime_mask', '2-4')],
         "only the flavor's vCPUs 0-3"),
        ({'hw:cpu_realtime': 'yes'}, {'hw_cpu_realtime_mask': '7'},
         exception.InvalidExtraSpec, [('hw_cpu_realtime_mask', '7')],
         "only the flavor's vCPUs 0-3"),
        # Malformed masks are errors even where realtime is off.
        ({'hw:cpu_realtime_mask': '^x'}, {}, exception.InvalidCPUSpec,
         [('hw:cpu_realtime_mask', '^x')], 'not a CPU id'),
        ({}, {'hw_cpu_realtime_mask': '2-1'}, exception.InvalidCPUSpec,
         [('hw_cpu_realtime_mask', '2-1')], 'reversed'),
        ({'hw:cpu_realtime_mask': ''}, {}, exception.InvalidExtraSpec,
         [('hw:cpu_realtime_mask', '')], 'must name vCPUs'),
    )
    @ddt.unpack
    def test_invalid(self, specs: dict[str, str], props: dict[str, Any],
                     exc_class: type[exception.Invalid],
                     names: list[tuple[str, Any]], fragment: str) -> None:
        message = self.assertRejected(exc_class, names,
                                      dict(DEDICATED, **specs), props)
        self.assertIn(fragment, message)

    @ddt.data(
        ({}, exception.InvalidExtraSpec, [('hw:cpu_realtime_mask', '^0')]),
        ({'hw:cpu_policy': 'shared'}, exception.InvalidExtraSpec,
         [('hw:cpu_realtime_mask', '^0')]),
    )
    @ddt.unpack
    def test_needs_pinned_vcpus(self, specs: dict[str, str],
                                exc_class: type[exception.Invalid],
                                names: list[tuple[str, Any]]) -> None:
        specs = dict(specs, **{'hw:cpu_realtime': 'true',
                               'hw:cpu_realtime_mask': '^0'})
        self.assertIn('needs pinned vCPUs',
                      self.assertRejected(exc_class, names, specs))

    def test_mixed_takes_one_mask(self) -> None:
        self.assertRejected(
            exception.ConflictingExtraSpecs,
            [('hw:cpu_dedicated_mask', '0'), ('hw:cpu_realtime_mask', '^0')],
            {'hw:cpu_policy': 'mixed', 'hw:cpu_dedicated_mask': '0',
             'hw:cpu_realtime': 'true', 'hw:cpu_realtime_mask': '^0'})


@ddt.ddt
class RequestTestCase(cpu_request_base.TestCase):

    def test_defaults(self) -> None:
        self.assertEqual(
            cpu_request.CPURequest(
                vcpus=4,
                memory_mb=2048),
            parse())
        self.assertFalse(parse().needs_numa_topology)

    def test_full_request(self) -> None:
        request = parse(dict(ISOLATE, **{
            'hw:cpu_thread_policy': 'isolate', 'hw:numa_nodes': '2',
            'hw:mem_page_size': '1GiB', 'hw:cpu_realtime': 'yes',
            'hw:cpu_realtime_mask': '^0', 'other:key': 'ignored'}),
            {'hw_os_type': 'linux'}, vcpus=4, memory_mb=4096)
        self.assertEqual(cpu_request.CPURequest(
            vcpus=4, memory_mb=4096, cpu_policy='dedicated',
            cpu_thread_policy='isolate', emulator_threads_policy='isolate',
            dedicated_cpus=frozenset({0, 1, 2, 3}),
            realtime_cpus=frozenset({1, 2, 3}), numa_nodes=2,
            pagesize=1048576), request)

    @ddt.data(
        (0, 2048, [('vcpus', 0)]), (-1, 2048, [('vcpus', -1)]),
        (8193, 2048, [('vcpus', 8193)]), (True, 2048, [('vcpus', True)]),
        (4.0, 2048, [('vcpus', 4.0)]),
        (4, 0, [('memory_mb', 0)]), (4, None, [('memory_mb', None)]),
    )
    @ddt.unpack
    def test_invalid_flavor(self, vcpus: Any, memory_mb: Any,
                            names: list[tuple[str, Any]]) -> None:
        self.assertRejected(exception.InvalidExtraSpec, names, vcpus=vcpus,
                            memory_mb=memory_mb)

    @ddt.data(({1: 'x'}, None, 'extra spec name', 1),
              (None, {None: 'x'}, 'image property name', None))
    @ddt.unpack
    def test_names_must_be_strings(self, specs: Any, props: Any, key: str,
                                   value: Any) -> None:
        self.assertRejected(exception.InvalidExtraSpec, [(key, value)],
                            specs, props)

    def test_does_not_change_its_input(self) -> None:
        specs = dict(ISOLATE)
        props = {'hw_numa_cpus': [{0, 1}], 'hw_numa_mem': [2048]}
        parse(specs, props, vcpus=2)
        self.assertEqual(ISOLATE, specs)
        self.assertEqual({'hw_numa_cpus': [{0, 1}], 'hw_numa_mem': [2048]},
                         props)
