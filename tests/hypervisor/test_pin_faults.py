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


"""``pin`` when libvirtd dies half-way, on a real daemon and guest.

The daemon is SIGKILLed for real, from the hook ``pin_emulator`` calls
after each step libvirt applied: after the last step on the persistent
definition, before the first step on the live guest. The result must
say exactly that: the definition changed and could not be undone, the
live guest not changed. The restarted daemon and ``/proc`` must agree
with it, and running ``pin`` again must converge.

Its own class, so its own daemon: the test kills it.
"""

from nova_emulator_threads.host import pinning
from nova_emulator_threads.virt.libvirt import cputune_reader
from tests.hypervisor import base
from tests.hypervisor import libvirtd

P = base.P


class PinFaultTest(base.HypervisorTestCase):

    def test_libvirtd_killed_between_definition_and_live_guest(self) -> None:
        # vCPU 0 on pCPU 1; emulator and I/O thread 1 floating over 0-1.
        guest = self.guest('fault', base.make_cputune(
            {0: '1'}, '0-1', {1: '0-1'}), iothreads=1)
        qemu_pid = guest.pid
        killed = []

        def kill_before_live(step: pinning.Step) -> None:
            if step.scope == pinning.CONFIG and step.iothread == 1:
                killed.append(self.daemon.kill_libvirtd())

        width = int(self.daemon.conn.getCPUMap()[0])
        result = pinning.pin_emulator(guest.dom, P('0'), live=True,
                                      config=True, width=width,
                                      applied=kill_before_live)
        self.assertEqual(1, len(killed))

        # What it reports: the definition changed, and stays changed (the
        # daemon that could undo it is gone); the live guest untouched.
        self.assertFalse(result.ok)
        self.assertEqual([
            (pinning.CONFIG, 'emulator threads', pinning.ROLLBACK_FAILED),
            (pinning.CONFIG, 'I/O thread 1', pinning.ROLLBACK_FAILED),
            (pinning.LIVE, 'emulator threads', pinning.FAILED),
            (pinning.LIVE, 'I/O thread 1', pinning.NOT_ATTEMPTED),
        ], [(s.scope, s.target, s.state) for s in result.steps])
        self.assertEqual(
            'changing the live emulator threads failed; left changed: '
            'config emulator threads = 0, config I/O thread 1 = 0',
            result.summary())
        self.assertIsNotNone(result.steps[2].error)

        # What is real: the guest ran on (the same QEMU) with its old live
        # pins; the restarted daemon reads the new definition.
        self.assertPlacement(guest, {0: P('1')}, P('0-1'), {1: P('0-1')})
        self.daemon.start_libvirtd()
        guest.dom = self.daemon.conn.lookupByName(guest.name)
        self.assertTrue(guest.dom.isActive())
        self.assertEqual(qemu_pid, libvirtd.qemu_pid(
            self.daemon, guest.name))
        live = cputune_reader.parse_cputune(guest.dom.XMLDesc(0))
        self.assertEqual((P('0-1'), {1: P('0-1')}),
                         (live.emulatorpin, live.iothreadpins))
        persistent = cputune_reader.parse_cputune(guest.dom.XMLDesc(
            self.daemon.libvirt.VIR_DOMAIN_XML_INACTIVE))
        self.assertEqual((P('0'), {1: P('0')}),
                         (persistent.emulatorpin, persistent.iothreadpins))
        # The audit sees both: the old live placement, and live and
        # definition apart (the emulator threads and the I/O thread).
        status, report = self.audit_json()
        self.assertEqual(1, status)
        self.assertEqual([(guest.name, 'emulator-on-vcpu-pcpu'),
                          (guest.name, 'live-config-differ'),
                          (guest.name, 'live-config-differ')],
                         [(f['domain'], f['code'])
                          for f in report['findings']])

        # Running pin again converges: both live and definition on 0.
        status, out, err = self.cli('pin', guest.name, '0', '--live',
                                    '--config')
        self.assertEqual(0, status, err)
        self.assertIn('config emulator threads 0 -> 0: applied', out)
        self.assertIn('live   emulator threads 0-1 -> 0: applied', out)
        self.assertPlacement(guest, {0: P('1')}, P('0'), {1: P('0')})
        status, report = self.audit_json()
        self.assertEqual(([], 0), (report['findings'], status))
