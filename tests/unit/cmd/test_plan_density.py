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

"""``nova-emulator-threads plan --density``."""

import json

from nova_emulator_threads import data
from tests.unit import base
from tests.unit.cmd import command

FOUR_CORE = ('--host', data.example_host_path('four-core-housekeeping'),
             '--cpu-dedicated-set', '1-3', '--cpu-shared-set', '0')


class TestPlanDensity(base.TestCase):

    def density(self, *argv: str) -> tuple[int, str, str]:
        return command.main('plan', '--density', *argv)

    def test_realtime_housekeeping_host_json(self) -> None:
        status, out, err = self.density(
            *FOUR_CORE, '--memory-mb', '1024', '--extra-spec',
            'hw:cpu_realtime=yes', '--format', 'json')
        self.assertEqual(0, status, err)
        rows = {row['policy']: row for row in json.loads(out)['density']}
        self.assertEqual(3, rows['share + cpu_shared_set']['guests'])
        self.assertEqual([0], rows['share + cpu_shared_set']
                         ['cpu_shared_set'])
        self.assertEqual((1, 2), (rows['isolate']['guests'],
                                  rows['isolate']['pcpus_per_guest']))
        mask = rows['realtime, mask ^0']
        self.assertEqual((2, 1), (mask['vcpus'], mask['guests']))
        self.assertIn('hw:cpu_realtime_mask', mask['note'])
        self.assertIsNone(rows['no policy']['guests'])
        self.assertEqual({'hw:cpu_policy': 'dedicated',
                          'hw:cpu_realtime': 'yes'},
                         rows['no policy']['extra_specs'])

    def test_table(self) -> None:
        status, out, err = self.density('--vcpus', '4', '--memory-mb', '1024')
        self.assertEqual(0, status, err)
        lines = out.splitlines()
        self.assertTrue(lines[0].startswith('host: cell 0:'))
        self.assertEqual(['policy', 'vCPUs', 'pCPUs/guest', 'guests', 'on',
                          'own', 'vCPU', 'core', 'emulator', 'threads'],
                         lines[1].split())
        isolate = [line for line in lines if line.startswith('isolate')]
        self.assertEqual(['isolate', '4', '5', '6', '0'],
                         isolate[0].split()[:5])
        self.assertEqual(['isolate,', 'siblings', 'avoided', '4', '5', '6',
                          '0'], isolate[1].split()[:7])

    def test_siblings_json(self) -> None:
        status, out, err = self.density('--vcpus', '1', '--format', 'json')
        self.assertEqual(0, status, err)
        rows = {row['policy']: row for row in json.loads(out)['density']}
        self.assertEqual((18, 18), (rows['isolate']['guests'], rows[
            'isolate']['emulator_on_vcpu_sibling']))
        self.assertEqual((18, 0), (
            rows['isolate, siblings avoided']['guests'],
            rows['isolate, siblings avoided']['emulator_on_vcpu_sibling']))

    def test_policy_key_is_one_line_error(self) -> None:
        status, out, err = self.density('--extra-spec',
                                        'hw:cpu_emulator_threads=isolate')
        self.assertEqual(2, status)
        self.assertEqual('', out)
        lines = err.strip().splitlines()
        self.assertEqual(1, len(lines), err)
        self.assertIn('hw:cpu_emulator_threads', lines[0])
        self.assertIn('once per policy', lines[0])

    def test_bad_vcpus(self) -> None:
        status, _out, err = self.density('--vcpus', '0')
        self.assertEqual(2, status)
        self.assertIn('--vcpus=0', err)
        self.assertNotIn('Traceback', err)
