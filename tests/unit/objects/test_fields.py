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

"""The enums are Nova's: same values, same order, same field behaviour."""

import warnings
from typing import Any

import ddt

from nova_emulator_threads.objects import fields
from tests.unit import base

with warnings.catch_warnings():
    # Nova pulls in eventlet, which warns that it is deprecated.
    warnings.simplefilter('ignore')
    from nova.objects import fields as nova_fields
    from nova.virt import hardware as nova_hardware

#: (ours, Nova's), each named after ours.
PAIRS = [
    (ours.__name__, ours, novas) for ours, novas in (
        (fields.CPUEmulatorThreadsPolicy,
         nova_fields.CPUEmulatorThreadsPolicy),
        (fields.CPUAllocationPolicy, nova_fields.CPUAllocationPolicy),
        (fields.CPUThreadAllocationPolicy,
         nova_fields.CPUThreadAllocationPolicy))]


@ddt.ddt
class TestFieldsAreNovas(base.TestCase):

    @ddt.named_data(*PAIRS)
    def test_values_and_order(self, ours: Any, novas: Any) -> None:
        self.assertEqual(novas.ALL, ours.ALL)
        # A loop, not cases: every value of the one enum.
        for value in ours.ALL:
            self.assertEqual(getattr(novas, value.upper()),
                             getattr(ours, value.upper()))

    def test_pinned_policies(self) -> None:
        # The policies under which Nova's hardware.py pins vCPUs.
        self.assertEqual(
            {nova_fields.CPUAllocationPolicy.DEDICATED,
             nova_fields.CPUAllocationPolicy.MIXED},
            set(fields.PINNED_CPU_POLICIES))

    def test_page_sizes_are_novas(self) -> None:
        self.assertEqual(
            (nova_hardware.MEMPAGES_SMALL, nova_hardware.MEMPAGES_LARGE,
             nova_hardware.MEMPAGES_ANY),
            (fields.MEMPAGES_SMALL, fields.MEMPAGES_LARGE,
             fields.MEMPAGES_ANY))
