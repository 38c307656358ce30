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

"""The emulator threads overhead and the CPU resources placement is asked.

(Against Nova's own scheduler: tests/unit/test_cpu_request_nova.py.)
"""

from typing import Any

import ddt
import fixtures

from nova_emulator_threads import cpu_request
from nova_emulator_threads import overhead
from tests.unit import base

MIXED = {'hw:cpu_policy': 'mixed', 'hw:cpu_dedicated_mask': '0-1'}


@ddt.ddt
class OverheadTestCase(base.TestCase):

    # specs, image props -> (overhead, placement request), 4 vCPUs.
    @ddt.data(
        ({}, {}, {}, {'VCPU': 4}),
        ({'hw:cpu_policy': 'shared'}, {}, {}, {'VCPU': 4}),
        ({'hw:numa_nodes': '2'}, {}, {}, {'VCPU': 4}),
        ({'hw:cpu_policy': 'dedicated'}, {}, {}, {'PCPU': 4}),
        ({'hw:cpu_policy': 'dedicated', 'hw:cpu_emulator_threads': 'share'},
         {}, {}, {'PCPU': 4}),
        ({'hw:cpu_policy': 'dedicated', 'hw:cpu_emulator_threads': 'isolate'},
         {}, {'PCPU': 1}, {'PCPU': 5}),
        ({'hw:cpu_policy': 'dedicated',
          'hw:emulator_threads_policy': 'isolate'},
         {}, {'PCPU': 1}, {'PCPU': 5}),
        ({'hw:cpu_emulator_threads': 'isolate'},
         {'hw_cpu_policy': 'dedicated'}, {'PCPU': 1}, {'PCPU': 5}),
        (MIXED, {}, {}, {'VCPU': 2, 'PCPU': 2}),
        (dict(MIXED, **{'hw:cpu_emulator_threads': 'share'}), {}, {},
         {'VCPU': 2, 'PCPU': 2}),
        # Nova adds the emulator pCPU for mixed guests too.
        (dict(MIXED, **{'hw:cpu_emulator_threads': 'isolate'}), {},
         {'PCPU': 1}, {'VCPU': 2, 'PCPU': 3}),
        # Mixed with every vCPU realtime (and so pinned): no VCPU at all.
        ({'hw:cpu_policy': 'mixed', 'hw:cpu_realtime': 'yes',
          'hw:cpu_emulator_threads': 'isolate'}, {}, {'PCPU': 1},
         {'PCPU': 5}),
        ({'hw:cpu_policy': 'mixed', 'hw:cpu_realtime': 'yes',
          'hw:cpu_realtime_mask': '^0'}, {}, {}, {'VCPU': 1, 'PCPU': 3}),
        # Explicit resources: already the total, overhead included.
        ({'resources:PCPU': '4'}, {}, {}, {'PCPU': 4}),
        ({'resources:PCPU': '5', 'hw:cpu_emulator_threads': 'isolate'}, {},
         {'PCPU': 1}, {'PCPU': 5}),
        ({'resources1:PCPU': '3', 'resources2:PCPU': '2',
          'hw:cpu_emulator_threads': 'isolate'}, {}, {'PCPU': 1},
         {'PCPU': 5}),
        ({'resources:VCPU': '2'}, {}, {}, {'VCPU': 2}),
        ({'resources:VCPU': '0'}, {}, {}, {}),
        ({'resources:PCPU': '0'}, {}, {}, {}),
        ({'resources:VCPU': '0', 'hw:cpu_policy': 'dedicated'}, {}, {},
         {'PCPU': 4}),
    )
    @ddt.unpack
    def test_request(self, specs: dict[str, str], props: dict[str, Any],
                     expected_overhead: dict[str, int],
                     expected_placement: dict[str, int]) -> None:
        request = cpu_request.parse_request(4, 2048, specs, props)
        self.assertEqual(expected_overhead,
                         overhead.estimate_instance_overhead(request))
        self.assertEqual(expected_placement,
                         overhead.placement_request(request))

    # specs -> (overhead, placement request) with shared_pool_vcpus = 2.
    @ddt.data(
        ({'hw:cpu_policy': 'dedicated', 'hw:cpu_emulator_threads': 'share'},
         {'VCPU': 2}, {'PCPU': 4, 'VCPU': 2}),
        ({'hw:cpu_policy': 'dedicated',
          'hw:emulator_threads_policy': 'share'},
         {'VCPU': 2}, {'PCPU': 4, 'VCPU': 2}),
        # Mixed: the emulator threads' VCPU on top of the shared vCPUs'.
        (dict(MIXED, **{'hw:cpu_emulator_threads': 'share'}),
         {'VCPU': 2}, {'VCPU': 4, 'PCPU': 2}),
        # Not 'share': unchanged.
        ({'hw:cpu_policy': 'dedicated', 'hw:cpu_emulator_threads': 'isolate'},
         {'PCPU': 1}, {'PCPU': 5}),
        ({'hw:cpu_policy': 'dedicated'}, {}, {'PCPU': 4}),
        ({}, {}, {'VCPU': 4}),
        # Explicit amounts are totals.
        ({'resources:PCPU': '4', 'hw:cpu_emulator_threads': 'share'},
         {}, {'PCPU': 4}),
    )
    @ddt.unpack
    def test_shared_pool_vcpus(self, specs: dict[str, str],
                               expected_overhead: dict[str, int],
                               expected_placement: dict[str, int]) -> None:
        request = cpu_request.parse_request(4, 2048, specs)
        self.assertEqual(expected_overhead,
                         overhead.estimate_instance_overhead(request, 2))
        self.assertEqual(expected_placement,
                         overhead.placement_request(request, 2))

    def test_one_number(self) -> None:
        # The explicit resources:PCPU check, the overhead and so the
        # placement request all follow the one constant.
        self.useFixture(fixtures.MonkeyPatch(
            'nova_emulator_threads.cpu_request.EMULATOR_THREADS_ISOLATE_PCPUS',
            2))
        isolate = {'hw:cpu_emulator_threads': 'isolate'}
        request = cpu_request.parse_request(
            4, 2048, dict(isolate, **{'hw:cpu_policy': 'dedicated'}))
        self.assertEqual({'PCPU': 2},
                         overhead.estimate_instance_overhead(request))
        self.assertEqual({'PCPU': 6}, overhead.placement_request(request))
        request = cpu_request.parse_request(
            4, 2048, dict(isolate, **{'resources:PCPU': '6'}))
        self.assertEqual({'PCPU': 6}, overhead.placement_request(request))

    def test_placement_adds_the_estimate(self) -> None:
        # placement_request adds what estimate_instance_overhead says; it
        # does not work the emulator pCPU out a second time.
        self.useFixture(fixtures.MonkeyPatch(
            'nova_emulator_threads.overhead.estimate_instance_overhead',
            lambda request, shared_pool_vcpus: {'PCPU': 3, 'VCPU': 1}))
        request = cpu_request.parse_request(4, 2048, MIXED)
        self.assertEqual({'VCPU': 3, 'PCPU': 5},
                         overhead.placement_request(request))

    def test_request_objects_are_not_changed(self) -> None:
        request = cpu_request.parse_request(
            4, 2048, {'hw:cpu_policy': 'dedicated',
                      'hw:cpu_emulator_threads': 'isolate'})
        first = overhead.estimate_instance_overhead(request)
        first['PCPU'] = 99
        self.assertEqual({'PCPU': 1},
                         overhead.estimate_instance_overhead(request))
