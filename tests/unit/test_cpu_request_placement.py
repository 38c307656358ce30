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

"""Unit tests of the ``resources:`` and ``trait:`` readers.

How they change the CPU policy and the thread policy is tested through
``parse_request`` in ``test_cpu_request``; here, what each reader reads.
"""

import os_traits

from nova_emulator_threads import cpu_request_placement
from nova_emulator_threads import exception
from tests.unit import base


class CPUResourcesTestCase(base.TestCase):

    def test_none_asked(self) -> None:
        res = cpu_request_placement.cpu_resources(
            {'hw:cpu_policy': 'dedicated', 'resources:MEMORY_MB': '512'})
        self.assertEqual(cpu_request_placement.CPUResources(
            None, None, 'resources:VCPU', 'resources:PCPU'), res)

    def test_groups_are_summed_and_the_first_key_named(self) -> None:
        res = cpu_request_placement.cpu_resources({
            'resources1:PCPU': '2', 'resources_a:PCPU': '3',
            'resources:VCPU': '0'})
        self.assertEqual(cpu_request_placement.CPUResources(
            0, 5, 'resources:VCPU', 'resources1:PCPU'), res)

    def test_negative_amount(self) -> None:
        exc = self.assertRaises(
            exception.Invalid, cpu_request_placement.cpu_resources,
            {'resources:PCPU': '-1'})
        self.assertIn('resources:PCPU', str(exc))
        self.assertIn("'-1'", str(exc))


class HyperthreadingTraitTestCase(base.TestCase):

    def test_trait_name(self) -> None:
        self.assertEqual(os_traits.HW_CPU_HYPERTHREADING,
                         cpu_request_placement.HYPERTHREADING_TRAIT)

    def test_flavor_trait_in_a_group(self) -> None:
        self.assertEqual(
            ('forbidden', 'trait_x:HW_CPU_HYPERTHREADING'),
            cpu_request_placement.hyperthreading_trait(
                {'trait_x:HW_CPU_HYPERTHREADING': 'forbidden'}, {}))

    def test_image_traits(self) -> None:
        self.assertEqual(
            ('required', 'traits_required'),
            cpu_request_placement.hyperthreading_trait(
                {}, {'traits_required': ['HW_CPU_HYPERTHREADING']}))
        self.assertEqual(
            (None, ''), cpu_request_placement.hyperthreading_trait(
                {'trait:HW_CPU_X86_AVX': 'required'},
                {'traits_required': ['HW_CPU_X86_AVX']}))

    def test_disagreeing_keys(self) -> None:
        exc = self.assertRaises(
            exception.Invalid, cpu_request_placement.hyperthreading_trait,
            {'trait:HW_CPU_HYPERTHREADING': 'required',
             'trait1:HW_CPU_HYPERTHREADING': 'forbidden'}, {})
        self.assertIn('trait:HW_CPU_HYPERTHREADING', str(exc))
        self.assertIn('trait1:HW_CPU_HYPERTHREADING', str(exc))

    def test_image_traits_not_a_list(self) -> None:
        exc = self.assertRaises(
            exception.Invalid, cpu_request_placement.hyperthreading_trait,
            {}, {'traits_required': 'HW_CPU_HYPERTHREADING'})
        self.assertIn('traits_required', str(exc))
        self.assertIn('list of trait names', str(exc))
