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


"""``measure`` on real guests, and the proof (``proof.py``) in short.

The proof's full run (``make proof``) wants a 20x cut in vCPU wait; here
three short rounds per pinning check the direction and a conservative 5x,
so that CI stays green on a busy machine while a placement that does not
help fails.
"""

import json

import testtools

from tests.hypervisor import base
from tests.hypervisor import proof

#: What CI asks of share and isolate against the default.
CI_RATIO = 5.0


class ProofTestCase(base.HypervisorTestCase):

    def test_measure_a_spinning_guest(self) -> None:
        guest, _directory = self.default_spin_guest('measured', mib=1)
        status, out, err = self.cli('measure', '--seconds', '2',
                                    '--format', 'json', guest.name)
        self.assertIn(status, (0, 1), err)
        result = json.loads(out)
        self.assertGreaterEqual(result['seconds'], 1.9)
        (entry,) = result['guests']
        self.assertEqual((guest.name, guest.uuid.lower(), guest.pid),
                         (entry['domain'], entry['uuid'], entry['pid']))
        (vcpu,) = entry['vcpus']
        # The vCPU spins: it ran most of the time, on the pCPU planned.
        self.assertEqual([1], vcpu['pcpus'])
        self.assertGreater(vcpu['ran_s'], 0.5)
        self.assertTrue(vcpu['exact'])
        # QEMU's main thread is among the emulator threads, on pCPU 1 too.
        main_thread = [t for t in entry['emulator_threads']
                       if t['tid'] == guest.pid]
        self.assertEqual([[1]], [t['cpus'] for t in main_thread])
        kinds = {t['kind'] for t in entry['emulator_threads']}
        self.assertLessEqual({'emulator', 'iothread'}, kinds)
        # The guest reports its stalls on the serial port.
        self.assertIn('up\n', guest.serial())

    def test_isolation_gives_back_the_time(self) -> None:
        results = proof.run_proof(self.daemon, rounds=3, seconds=3.0)
        self.addDetail('proof', testtools.content.text_content(
            proof.format_table(results)))
        by_name = {r.pinning: r for r in results}
        default = by_name['default']
        # Under the default the emulator threads run on the vCPU's pCPU,
        # and the block copies cost it real time.
        self.assertEqual(default.vcpu_pcpus, default.emulator_pcpus)
        self.assertGreater(default.median('emulator_on_pcpus_s'), 0.1)
        self.assertGreater(default.median('waited_s'), 0.1)
        # Loops, not cases: the rows of the one proof run above.
        for name in ('share', 'isolate'):
            moved = by_name[name]
            self.assertFalse(moved.vcpu_pcpus & moved.emulator_pcpus, name)
            self.assertEqual(0.0, moved.median('emulator_on_pcpus_s'), name)
            self.assertGreater(moved.median('copies'), 0, name)
        for name, value in proof.ratio(results).items():
            self.assertGreaterEqual(value, CI_RATIO, name)

