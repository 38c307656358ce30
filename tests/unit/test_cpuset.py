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

"""CPU range strings in Nova's syntax."""

import ddt

from nova_emulator_threads import cpuset
from nova_emulator_threads import exception
from tests.unit import base


@ddt.ddt
class TestParse(base.TestCase):

    @ddt.data(('', set()), ('3', {3}), ('1-4,^3,6', {1, 2, 4, 6}),
              (' 0 - 2 , 5 ', {0, 1, 2, 5}), ('0-3,^0-1', {2, 3}),
              ('8191', {8191}), ('2,,3', {2, 3}))
    @ddt.unpack
    def test_valid(self, spec: str, cpus: set[int]) -> None:
        self.assertEqual(frozenset(cpus), cpuset.parse_cpu_spec(spec), spec)

    @ddt.data('0-40,^7', '25,5,17,9', '1-3,64-70')
    def test_nova_ordered_set_has_the_same_members(self, spec: str) -> None:
        self.assertEqual(cpuset.parse_cpu_spec(spec),
                         frozenset(cpuset.nova_ordered_cpu_set(spec)))

    @ddt.named_data(
        ['negative', '-1', "'-1' is neither a CPU id nor a range 'A-B'"],
        ['open range', '1-', "'1-' is neither a CPU id nor a range 'A-B'"],
        ['letter', 'a', "'a' is not a CPU id"],
        ['reversed', '4-2', 'range 4-2 is reversed'],
        ['too large', '8192', 'CPU id 8192 is too large'],
        ['range too large', '0-99999999', 'CPU id 99999999 is too large'],
        ['30 digits', '1' * 30, 'a CPU id of 30 digits is too large'],
        ['arabic digit', '\u0661', 'is not a CPU id'])
    def test_invalid_names_key_value_and_rule(self, spec: str,
                                              reason: str) -> None:
        exc = self.assertRaises(exception.InvalidCPUSpec,
                                cpuset.parse_cpu_spec, spec,
                                'hw:cpu_realtime_mask')
        message = str(exc)
        self.assertIn('hw:cpu_realtime_mask=%r' % spec, message)
        self.assertIn(reason, message)
        self.assertIn('with ids from 0 to 8191', message)
        self.assertEqual(1, len(message.splitlines()))

    def test_not_a_string(self) -> None:
        self.assertRaises(exception.InvalidCPUSpec, cpuset.parse_cpu_spec,
                          [1, 2])


@ddt.ddt
class TestFormat(base.TestCase):

    @ddt.data((set(), ''), ({5}, '5'), ({0, 1, 2, 5}, '0-2,5'),
              ({7, 8, 1}, '1,7-8'))
    @ddt.unpack
    def test_format(self, cpus: set[int], spec: str) -> None:
        self.assertEqual(spec, cpuset.format_cpu_spec(cpus))

    def test_round_trip(self) -> None:
        cpus = frozenset({0, 1, 2, 9, 11, 12, 40})
        self.assertEqual(cpus, cpuset.parse_cpu_spec(
            cpuset.format_cpu_spec(cpus)))
