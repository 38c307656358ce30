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
  report is refused and changes nothing;
* the shared pool's CFS cap (``<emulator_period>``/``<emulator_quota>``)
  lands in the guest's emulator cgroup, and the guest still runs.

The machine of CI has two CPUs: plans use pCPUs 0 and 1.
"""

import os
import time

import testtools

from nova_emulator_threads.host import audit
from nova_emulator_threads.host import cgroup
from nova_emulator_threads.host import procfs
from nova_emulator_threads.virt import guest_topology
from nova_emulator_threads.virt import hardware
from nova_emulator_threads.virt import topology
from nova_emulator_threads.virt.libvirt import bandwidth
from nova_emulator_threads.virt.libvirt import capabilities
from nova_emulator_threads.virt.libvirt import cputune
from nova_emulator_threads.virt.libvirt import cputune_reader
from tests.hypervisor import base
from tests.hypervisor import libvirtd
from tests.unit.virt import cases

P = base.P


class HypervisorTest(base.HypervisorTestCase):
    """Our placement, audit and pin on the real daemon."""

    # -- the engine's placement on a real host ------------------------------

    def _engine_guest(self, flavor: str, extra_specs: dict[str, str],
                      dedicated: str, shared: str,
                      host: topology.HostTopology | None = None,
                      emulator_pcpu_siblings: str = 'allow',
                      ) -> cputune.CPUTune:
        """Plan a 1-vCPU guest, boot it with the plan, check /proc.

        :param host: the host to plan for (default: this host, from the
            daemon's capabilities, with the two sets)
        """
        if host is None:
            host = capabilities.host_topology_from_caps(
                self.caps, cpu_dedicated_set=dedicated,
                cpu_shared_set=shared)
        inst = guest_topology.instance_topology_from_flavor(1, 64, extra_specs)
        fitted = hardware.fit_instance_to_host(
            host, inst, emulator_pcpu_siblings=emulator_pcpu_siblings)
        self.assertIsNotNone(fitted, hardware.explain_no_fit(
            host, inst, emulator_pcpu_siblings=emulator_pcpu_siblings))
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
            actual = cputune_reader.parse_cputune(guest.dom.XMLDesc(flags))
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
        return planned

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

    def test_avoided_sibling_placement_is_real(self) -> None:
        # This machine has no SMT. The plan is made for a description of
        # an SMT host instead: one cell, cores {0,2} and {1,3}, pCPU 3
        # pinned by another guest. Nova's choice (allow) puts the vCPU on
        # 0 and the emulator threads on its sibling 2; avoid puts them on
        # 1, the other core. What is real: pCPUs 0 and 1, the guest booted
        # with avoid's plan, and where /proc shows its threads; the SMT
        # relation between 0 and 2 exists only in the description.
        smt = capabilities.host_topology_from_caps(
            cases.caps_xml(1, 2, 2, True, [4096], None),
            cpu_dedicated_set='0-3', cpu_shared_set='', pinned='3')
        self.assertEqual({frozenset({0, 2}), frozenset({1, 3})},
                         set(smt.cells[0].siblings))
        isolate = {'hw:cpu_policy': 'dedicated',
                   'hw:cpu_emulator_threads': 'isolate'}
        inst = guest_topology.instance_topology_from_flavor(1, 64, isolate)
        allowed = hardware.fit_instance_to_host(smt, inst)
        self.assertEqual(({0: 0}, frozenset({2})),
                         (allowed.cpu_pinning, allowed.cpuset_reserved))
        planned = self._engine_guest('isolate', isolate, '', '', host=smt,
                                     emulator_pcpu_siblings='avoid')
        self.assertEqual({0: frozenset({0})}, planned.vcpupins)
        self.assertEqual(frozenset({1}), planned.emulatorpin)

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
        persistent = cputune_reader.parse_cputune(guest.dom.XMLDesc(
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

    # -- the shared emulator pool's CFS cap ----------------------------------

    def test_shared_pool_quota_reaches_the_emulator_cgroup(self) -> None:
        # [emulator_threads] shared_pool_vcpus = 1, shared_pool_quota on,
        # cpu_allocation_ratio 4: a quarter of pCPU 0 for the emulator
        # threads, the vCPU alone on pCPU 1.
        specs = {'hw:cpu_policy': 'dedicated',
                 'hw:cpu_emulator_threads': 'share'}
        host = capabilities.host_topology_from_caps(
            self.caps, cpu_dedicated_set='1', cpu_shared_set='0')
        fitted = hardware.fit_instance_to_host(
            host, guest_topology.instance_topology_from_flavor(1, 64, specs))
        self.assertIsNotNone(fitted)
        cap = bandwidth.emulator_bandwidth('share', 1, 4.0)
        self.assertEqual(bandwidth.EmulatorBandwidth(100000, 25000), cap)
        planned = cputune.cputune_from_topology(
            fitted, frozenset({0}), host=host, emulator_bandwidth=cap)
        guest = self.guest('quota', cputune.format_cputune(planned),
                           iothreads=len(planned.iothreadpins))

        # libvirt kept it, in the live and the persistent definition (a
        # loop, not cases: both definitions of the one guest) ...
        for flags in (0, self.daemon.libvirt.VIR_DOMAIN_XML_INACTIVE):
            self.assertEqual(cap, cputune_reader.parse_cputune(
                guest.dom.XMLDesc(flags)).emulator_bandwidth)
        params = guest.dom.schedulerParameters()
        self.assertEqual((100000, 25000), (params['emulator_period'],
                                           params['emulator_quota']))
        # ... and wrote it to the cgroup the emulator threads run in
        # (libvirt's 'emulator' cgroup of the guest).
        found = cgroup.read_thread_cpu_bandwidth(guest.pid)
        self.assertIsNotNone(found, 'no cpu cgroup for QEMU pid %d'
                             % guest.pid)
        self.addDetail('emulator-cgroup', testtools.content.text_content(
            repr(found)))
        self.assertTrue(found.path.endswith('/emulator'), found.path)
        self.assertEqual((100000, 25000), (found.period, found.quota))
        # The vCPU's own cgroup is not capped.
        vcpu = next(t for t in procfs.process_threads(guest.pid)
                    if audit.classify(t, guest.pid, planned.iothreadpins)
                    .kind == audit.VCPU)
        vcpu_bandwidth = cgroup.read_thread_cpu_bandwidth(guest.pid, vcpu.tid)
        self.assertIsNotNone(vcpu_bandwidth)
        self.assertIsNone(vcpu_bandwidth.quota)

        # The guest boots and runs: its vCPU keeps using CPU time.
        self.assertPlacement(guest, planned.vcpupins, planned.emulatorpin,
                             planned.iothreadpins)
        state, _reason = guest.dom.state()
        self.assertEqual(self.daemon.libvirt.VIR_DOMAIN_RUNNING, state)
        before = guest.dom.info()[4]
        time.sleep(1.0)
        self.assertGreater(guest.dom.info()[4], before)
