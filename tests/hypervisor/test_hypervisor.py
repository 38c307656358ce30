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


"""The hypervisor tier: our placement on real libvirt and QEMU guests.

Everything here runs against a private libvirtd (``libvirtd.py``) with
real QEMU guests (KVM when libvirt offers it, TCG otherwise) on this
host's real CPUs, and reads the real ``/proc`` and ``/sys``:

* the ``<cputune>`` the engine plans for this host, from the daemon's own
  capabilities, is accepted by libvirt as is, and ``/proc`` shows every
  vCPU thread on its pin and every other thread on the emulator set (I/O
  threads on theirs); ``audit`` reports that guest clean, its Nova
  policy checked;
* ``audit`` reports a guest whose emulator threads float over its vCPU's
  pCPU, naming the vCPU and the real threads; ``pin --live --config``
  moves them, ``/proc`` shows it, the persistent definition holds it (a
  restart keeps it), and ``audit`` then reports the guest clean;
* ``pin --apply-audit`` does the same on its own; a pin the audit would
  report is refused and changes nothing.

The machine of CI has two CPUs: plans use pCPUs 0 and 1.
"""

import os

from nova_emulator_threads.virt import hardware
from nova_emulator_threads.virt.libvirt import cputune
from tests.hypervisor import base
from tests.hypervisor import libvirtd

P = base.P


class HypervisorTest(base.HypervisorTestCase):
    """Our placement, audit and pin on the real daemon."""

    # -- the engine's placement on a real host ------------------------------

    def _engine_guest(self, flavor: str, extra_specs: dict[str, str],
                      dedicated: str, shared: str) -> None:
        host = hardware.host_topology_from_caps(
            self.caps, cpu_dedicated_set=dedicated, cpu_shared_set=shared)
        inst = hardware.instance_topology_from_flavor(1, 64, extra_specs)
        fitted = hardware.fit_instance_to_host(host, inst)
        self.assertIsNotNone(fitted, hardware.explain_no_fit(host, inst))
        shared_set = frozenset(host.cpu_shared_set)
        planned = cputune.cputune_from_topology(fitted, shared_set,
                                                host=host)
        element = cputune.build_cputune(fitted, shared_set, host=host)
        guest = self.guest(flavor, element,
                           iothreads=len(planned.iothreadpins),
                           nova_flavor={'name': flavor, 'vcpus': 1,
                                        'memory': 64,
                                        'extra_specs': extra_specs})

        # libvirt took the element as planned (live and persistent).
        for flags in (0, self.daemon.libvirt.VIR_DOMAIN_XML_INACTIVE):
            actual = cputune.parse_cputune(guest.dom.XMLDesc(flags))
            self.assertEqual(planned.vcpupins, actual.vcpupins)
            self.assertEqual(planned.emulatorpin, actual.emulatorpin)
            self.assertEqual(planned.iothreadpins, actual.iothreadpins)
        # Every thread runs where the plan says.
        self.assertPlacement(guest, planned.vcpupins, planned.emulatorpin,
                             planned.iothreadpins)
        # And the audit finds nothing wrong, having checked the policy.
        status, report = self.audit_json(
            *(['--cpu-shared-set', shared] if shared else []))
        self.assertEqual(([], 0), (report['findings'], status))
        (entry,) = report['guests']
        self.assertEqual(guest.pid, entry['pid'])
        self.assertEqual({'instance': guest.name, 'flavor': flavor,
                          'cpu_policy': 'dedicated',
                          'emulator_threads_policy':
                              extra_specs['hw:cpu_emulator_threads'],
                          'checked': True, 'reason': None}, entry['nova'])

    def test_engine_isolate_placement_is_real(self) -> None:
        # cpu_dedicated_set=0-1: one pCPU for the vCPU, one reserved for
        # the emulator (and I/O) threads.
        self._engine_guest('isolate', {
            'hw:cpu_policy': 'dedicated',
            'hw:cpu_emulator_threads': 'isolate'}, '0-1', '')

    def test_engine_share_placement_is_real(self) -> None:
        # cpu_shared_set=0 for the emulator threads, pCPU 1 for the vCPU.
        self._engine_guest('share', {
            'hw:cpu_policy': 'dedicated',
            'hw:cpu_emulator_threads': 'share'}, '1', '0')

    # -- audit and pin on a badly placed guest ------------------------------

    def bad_guest(self) -> libvirtd.Guest:
        """vCPU 0 on pCPU 1, emulator and I/O threads floating over 0-1."""
        guest = self.guest('bad', base.make_cputune(
            {0: '1'}, '0-1', {1: '0-1'}), iothreads=1)
        self.assertPlacement(guest, {0: P('1')}, P('0-1'), {1: P('0-1')})
        return guest

    def assertReportedBad(self, guest: libvirtd.Guest) -> None:
        status, report = self.audit_json()
        self.assertEqual(1, status)
        codes = [(f['domain'], f['code']) for f in report['findings']]
        self.assertEqual([(guest.name, 'emulator-on-vcpu-pcpu')], codes)
        message = report['findings'][0]['message']
        self.assertIn('on pCPU 1, shared with vCPU 0 on pCPU 1', message)
        # The threads are named from /proc, with their real ids.
        self.assertIn('IO iothread1/', message)
        self.assertIn('/%d' % guest.pid, message)

    def test_pin_fixes_the_bad_guest(self) -> None:
        guest = self.bad_guest()
        self.assertReportedBad(guest)

        status, out, err = self.cli('pin', guest.name, '0', '--live',
                                    '--config')
        self.assertEqual(0, status, err)
        self.assertIn('live   emulator threads 0-1 -> 0: applied', out)
        self.assertIn('config I/O thread 1     0-1 -> 0: applied', out)

        self.assertPlacement(guest, {0: P('1')}, P('0'), {1: P('0')})
        status, report = self.audit_json()
        self.assertEqual(([], 0), (report['findings'], status))
        persistent = cputune.parse_cputune(guest.dom.XMLDesc(
            self.daemon.libvirt.VIR_DOMAIN_XML_INACTIVE))
        self.assertEqual(P('0'), persistent.emulatorpin)
        self.assertEqual({1: P('0')}, persistent.iothreadpins)
        # A new QEMU process starts from the definition: still fixed.
        guest.restart()
        self.assertPlacement(guest, {0: P('1')}, P('0'), {1: P('0')})

    def test_apply_audit_fixes_the_bad_guest(self) -> None:
        guest = self.bad_guest()
        status, out, err = self.cli('pin', '--apply-audit')
        self.assertEqual((0, ''), (status, err))
        self.assertIn('%s: emulator and I/O threads -> 0' % guest.name, out)
        self.assertIn('audit after the changes: no findings', out)
        self.assertPlacement(guest, {0: P('1')}, P('0'), {1: P('0')})

    def test_refused_pin_changes_nothing(self) -> None:
        guest = self.bad_guest()
        status, out, err = self.cli('pin', guest.name, '1')
        self.assertEqual((2, ''), (status, out))
        self.assertIn("pCPU 1 of the guest's own pinned vCPUs", err)
        self.assertPlacement(guest, {0: P('1')}, P('0-1'), {1: P('0-1')})
        self.assertReportedBad(guest)

    def test_host_is_read_for_real(self) -> None:
        status, report = self.audit_json()
        self.assertEqual(0, status)
        self.assertEqual(sorted(os.sched_getaffinity(0)),
                         report['host']['online'])
        self.assertEqual([], report['guests'])
