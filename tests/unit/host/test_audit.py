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


"""The audit on recorded hosts: the two guests of ``fakehost`` (emulator
threads floating over the vCPUs' pCPUs, and everything piled on one
isolated CPU) and the cases around them."""


from nova_emulator_threads import cpuset
from nova_emulator_threads.host import audit
from nova_emulator_threads.host import findings
from nova_emulator_threads.host import remedy
from tests.unit import base
from tests.unit.host import fakehost

P = cpuset.parse_cpu_spec


class AuditTestCase(base.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.tree = self.useFixture(fakehost.HostTree())

    def run_audit(self, domains: list, cpu_shared_set: str | None = None,
                  ) -> audit.AuditReport:
        return audit.audit(fakehost.snapshot_of(self.tree, domains),
                           P(cpu_shared_set) if cpu_shared_set else None)

    def codes(self, report: audit.AuditReport) -> list[tuple[str, str]]:
        return [(f.code, f.severity) for f in report.findings]

    # -- the 4-vCPU guest, emulator threads floating over its vCPUs -------

    def test_chapter_default_emulatorpin(self) -> None:
        xml = fakehost.chapter_1d(self.tree)
        report = self.run_audit([fakehost.make_domain(xml, '0-39')])
        self.assertEqual([(findings.EMULATOR_ON_VCPU, findings.WARNING)],
                         self.codes(report))
        self.assertEqual(
            'emulator threads (qemu-kvm/73517, qemu-kvm/73527, '
            'vnc_worker/73540) may run on pCPUs 10,14,30,34, shared with '
            'vCPU 2 on pCPU 10, vCPU 1 on pCPU 14, vCPU 3 on pCPU 30, '
            'vCPU 0 on pCPU 34: they preempt the vCPU whenever they have '
            'work', report.findings[0].message)
        guest = report.guests[0]
        self.assertEqual(
            [(73517, 'emulator'), (73527, 'emulator'), (73535, 'vcpu'),
             (73536, 'vcpu'), (73537, 'vcpu'), (73538, 'vcpu'),
             (73540, 'emulator')],
            [(t.tid, t.kind) for t in guest.threads])
        self.assertEqual([None, None, 0, 1, 2, 3, None],
                         [t.index for t in guest.threads])
        self.assertEqual("hw:cpu_policy=dedicated, emulator threads policy "
                         "none", guest.policy.describe())

    def test_chapter_manual_emulatorpin_on_vcpu0(self) -> None:
        # "virsh emulatorpin instance-0000001d 34 --live": every non-vCPU
        # thread moves to 34, where vCPU 0 runs (REVERSE_CPUSET(34) = 0).
        config = fakehost.chapter_1d(self.tree)
        threads = [(tid, name, '34' if not name.startswith('CPU') else cpus)
                   for tid, name, cpus in fakehost.THREADS_1D]
        self.tree.add_process(fakehost.PID_1D, fakehost.qemu_argv(
            'instance-0000001d', fakehost.UUID_1D), threads)
        live = fakehost.domain_xml(
            'instance-0000001d', fakehost.UUID_1D, fakehost.PINS_1D,
            emulatorpin='34', nova=fakehost.NOVA_1D)
        report = self.run_audit([fakehost.make_domain(live, '0-39',
                                                      config_xml=config)])
        self.assertEqual([(findings.EMULATOR_ON_VCPU, findings.WARNING),
                          (findings.NOVA_POLICY, findings.WARNING),
                          (findings.LIVE_CONFIG, findings.WARNING)],
                         self.codes(report))
        on_vcpu, nova, drift = report.findings
        self.assertIn('run on pCPU 34, shared with vCPU 0 on pCPU 34',
                      on_vcpu.message)
        self.assertIn('Nova floats the emulator threads over the vCPUs '
                      '(10,14,30,34), but they may run on 34: Nova puts '
                      'them back', nova.message)
        self.assertEqual('live <emulatorpin> is 34 but the persistent '
                         'definition says 10,14,30,34: a restart changes '
                         'where these threads run', drift.message)
        # Apply-audit leaves a Nova guest to Nova.
        advice = remedy.recommend(report, 'instance-0000001d')
        self.assertIsNone(advice.cpus)
        self.assertIn('hw:cpu_emulator_threads=isolate', advice.reason)

    def test_chapter_guest_outside_nova_is_moved_off_its_vcpus(self) -> None:
        xml = fakehost.chapter_1d(self.tree, nova=False)
        report = self.run_audit([fakehost.make_domain(xml, '0-39')])
        advice = remedy.recommend(report, 'instance-0000001d')
        self.assertEqual(P('0-39,^10,^14,^30,^34'), advice.cpus)
        self.assertEqual(
            [], remedy.problems(report, 'instance-0000001d', advice.cpus))
        # The guest as pin leaves it: clean.
        moved = fakehost.domain_xml(
            'instance-0000001d', fakehost.UUID_1D, fakehost.PINS_1D,
            emulatorpin=cpuset.format_cpu_spec(advice.cpus))
        spec = cpuset.format_cpu_spec(advice.cpus)
        self.tree.add_process(fakehost.PID_1D, fakehost.qemu_argv(
            'instance-0000001d', fakehost.UUID_1D),
            [(tid, name, cpus if name.startswith('CPU') else spec)
             for tid, name, cpus in fakehost.THREADS_1D])
        report = self.run_audit([fakehost.make_domain(moved, '0-39')])
        self.assertEqual([], self.codes(report))

    # -- isolcpus=1-3 piles every non-vCPU thread on pCPU 1 ---------------

    def test_chapter_isolcpus(self) -> None:
        xml = fakehost.chapter_09(self.tree)
        report = self.run_audit([fakehost.make_domain(xml, '0-3')])
        self.assertEqual([(findings.EMULATOR_ON_VCPU, findings.WARNING),
                          (findings.VHOST_ON_VCPU, findings.WARNING),
                          (findings.EMULATOR_ON_ISOLATED, findings.ERROR)],
                         self.codes(report))
        emulator, vhost, isolated = report.findings
        self.assertEqual(
            'emulator threads (qemu-kvm/364936, qemu-kvm/364946, '
            'vnc_worker/364956) run on pCPU 1, shared with vCPU 0 on pCPU 1: '
            'they preempt the vCPU whenever they have work',
            emulator.message)
        self.assertEqual(
            'vhost threads (vhost-364936/364948, vhost-364936/364949, '
            'vhost-364936/364950) run on pCPU 1, shared with vCPU 0 on pCPU '
            '1: virtio-net packet processing competes with the vCPU',
            vhost.message)
        self.assertEqual(
            'emulator pin set 1-3 is on isolated CPUs (isolcpus): the '
            'scheduler does not spread threads over isolated CPUs, so they '
            'all run on pCPU 1, where vCPU 0 runs', isolated.message)
        kinds = {t.tid: t.kind for t in report.guests[0].threads}
        self.assertEqual('vhost', kinds[364948])
        self.assertEqual('vcpu', kinds[364952])

    def test_isolcpus_guest_outside_nova_goes_to_the_housekeeping_cpu(
            self) -> None:
        xml = fakehost.chapter_09(self.tree, nova=False)
        report = self.run_audit([fakehost.make_domain(xml, '0-3')])
        self.assertEqual({0}, remedy.recommend(
            report, 'instance-00000009').cpus)

    def test_only_isolated_cpus_free_gives_the_lowest_alone(self) -> None:
        self.tree.set_cpus('0-7', isolated='2-7')
        xml = fakehost.domain_xml('g', fakehost.UUID_09,
                                  {0: '0', 1: '1', 2: '2'}, emulatorpin='0-2')
        report = self.run_audit([fakehost.make_domain(xml, '0-7')])
        self.assertEqual({3}, remedy.recommend(report, 'g').cpus)

    def test_isolated_set_whose_lowest_cpu_is_free(self) -> None:
        self.tree.set_cpus('0-7', isolated='2-7')
        xml = fakehost.domain_xml('g', fakehost.UUID_09, {0: '5', 1: '6'},
                                  emulatorpin='2-4')
        report = self.run_audit([fakehost.make_domain(xml, '0-7')])
        self.assertEqual([(findings.EMULATOR_ON_ISOLATED, findings.WARNING)],
                         self.codes(report))
        self.assertIn('run on pCPU 2, which runs no pinned vCPU',
                      report.findings[0].message)

    # -- more than one guest ------------------------------------------------

    def test_emulator_spanning_another_guests_pcpus(self) -> None:
        self.tree.set_cpus('0-7')
        a = fakehost.domain_xml('a', fakehost.UUID_1D, {0: '2', 1: '3'},
                                emulatorpin='0-1')
        b = fakehost.domain_xml('b', fakehost.UUID_09, {0: '4', 1: '5'},
                                emulatorpin='0-3')
        report = self.run_audit([fakehost.make_domain(a, '0-7'),
                                 fakehost.make_domain(b, '0-7')])
        self.assertEqual([('b', findings.ON_OTHER_GUEST, findings.ERROR)],
                         [(f.domain, f.code, f.severity)
                          for f in report.findings])
        self.assertEqual(
            'emulator, I/O or vhost threads (emulatorpin) may run on pCPUs '
            '2-3, dedicated to '
            'vCPU 0 of a (pCPU 2), vCPU 1 of a (pCPU 3)',
            report.findings[0].message)
        self.assertEqual({0, 1, 6, 7}, remedy.recommend(report, 'b').cpus)
        self.assertEqual(
            ['pCPU 2 is dedicated to other guests (vCPU 0 of a on pCPU 2)'],
            remedy.problems(report, 'b', frozenset({1, 2})))

    def test_nova_isolate_emulator_pcpu_is_dedicated(self) -> None:
        self.tree.set_cpus('0-7')
        a = fakehost.domain_xml(
            'a', fakehost.UUID_1D, {0: '2', 1: '3'}, emulatorpin='4',
            nova=dict(fakehost.NOVA_1D, vcpus=2, extra_specs={
                'hw:cpu_policy': 'dedicated',
                'hw:cpu_emulator_threads': 'isolate'}))
        b = fakehost.domain_xml('b', fakehost.UUID_09, {0: '6'},
                                emulatorpin='4-5')
        report = self.run_audit([fakehost.make_domain(a, '0-7'),
                                 fakehost.make_domain(b, '0-7')])
        self.assertEqual([('b', findings.ON_OTHER_GUEST)],
                         [(f.domain, f.code) for f in report.findings])
        self.assertIn('its isolated emulator threads of a (pCPU 4)',
                      report.findings[0].message)

    # -- SMT: the emulator pCPU and the vCPUs' cores ------------------------

    def smt_isolate_guest(self, vcpupins: dict[int, str],
                          emulatorpin: str,
                          nova: bool = True) -> audit.AuditReport:
        # Two cores of two threads, numbered the Linux way.
        self.tree.set_cpus('0-3')
        self.tree.set_smt_cores(['0,2', '1,3'])
        xml = fakehost.domain_xml(
            'a', fakehost.UUID_1D, vcpupins, emulatorpin=emulatorpin,
            nova=dict(fakehost.NOVA_1D, vcpus=len(vcpupins), extra_specs={
                'hw:cpu_policy': 'dedicated',
                'hw:cpu_emulator_threads': 'isolate'}) if nova else None)
        return self.run_audit([fakehost.make_domain(xml, '0-3')])

    def test_emulator_on_a_vcpu_sibling(self) -> None:
        # Nova's isolate choice on SMT: the vCPU's own core.
        report = self.smt_isolate_guest({0: '1'}, '3')
        self.assertEqual([(findings.EMULATOR_ON_VCPU_SIBLING,
                           findings.WARNING)], self.codes(report))
        self.assertEqual(
            'emulator threads (emulatorpin) run on pCPU 3, '
            'an SMT sibling of pCPU 1 where vCPU 0 runs: the hyperthreads '
            "share the core's execution units and caches, so they slow the "
            "vCPU down ([emulator_threads] emulator_pcpu_siblings = avoid "
            "keeps Nova's isolate pCPU off the vCPUs' cores)",
            report.findings[0].message)
        self.assertFalse(report.findings[0].fixable_by_pin)

    def test_emulator_on_another_core_is_clean(self) -> None:
        report = self.smt_isolate_guest({0: '1'}, '0')
        self.assertEqual([], self.codes(report))

    def test_every_vcpu_sibling_is_named(self) -> None:
        # A guest outside Nova, its emulator threads on both siblings.
        report = self.smt_isolate_guest({0: '0', 1: '1'}, '2-3', nova=False)
        self.assertEqual([findings.EMULATOR_ON_VCPU_SIBLING],
                         [f.code for f in report.findings])
        self.assertIn('may run on pCPU 2, an SMT sibling of pCPU 0 where '
                      'vCPU 0 runs; pCPU 3, an SMT sibling of pCPU 1 where '
                      'vCPU 1 runs', report.findings[0].message)

    def test_without_the_sibling_map_nothing_is_said(self) -> None:
        self.tree.set_cpus('0-3')
        xml = fakehost.domain_xml('a', fakehost.UUID_1D, {0: '1'},
                                  emulatorpin='3')
        report = self.run_audit([fakehost.make_domain(xml, '0-3')])
        self.assertEqual([], self.codes(report))

    # -- /proc versus libvirt -----------------------------------------------

    def test_thread_moved_behind_libvirts_back(self) -> None:
        self.tree.set_cpus('0-7')
        xml = fakehost.domain_xml('g', fakehost.UUID_09, {0: '2'},
                                  emulatorpin='0')
        self.tree.add_process(50, fakehost.qemu_argv('g', fakehost.UUID_09), [
            (50, 'qemu-kvm', '0'), (51, 'CPU 0/KVM', '2'),
            (52, 'vnc_worker', '0-7')])
        report = self.run_audit([fakehost.make_domain(xml, '0-7')])
        self.assertEqual([findings.EMULATOR_ON_VCPU, findings.OUTSIDE_PIN],
                         [f.code for f in report.findings])
        self.assertEqual(
            'thread vnc_worker/52 may run on CPUs 1-7, outside its libvirt '
            '<emulatorpin> (0): its affinity was changed behind libvirt',
            report.findings[1].message)

    def test_kvm_threads_are_listed_not_judged(self) -> None:
        # kvm-nx-lpage-recovery lives in the vCPU's cgroup (seen on the
        # hypervisor tier): nobody can place it.
        self.tree.set_cpus('0-1')
        xml = fakehost.domain_xml('g', fakehost.UUID_09, {0: '1'},
                                  emulatorpin='0', iothreadpins={1: '0'})
        self.tree.add_process(60, fakehost.qemu_argv('g', fakehost.UUID_09), [
            (60, 'qemu-system-x86', '0'), (61, 'IO iothread1', '0'),
            (62, 'IO mon_iothread', '0'), (63, 'CPU 0/KVM', '1'),
            (64, 'kvm-nx-lpage-re', '1')])
        report = self.run_audit([fakehost.make_domain(xml, '0-1')])
        self.assertEqual([], self.codes(report))
        self.assertEqual(['emulator', 'iothread', 'emulator', 'vcpu', 'kvm'],
                         [t.kind for t in report.guests[0].threads])

    def test_guest_without_process_is_audited_from_libvirt(self) -> None:
        self.tree.set_cpus('0-7')
        xml = fakehost.domain_xml('g', fakehost.UUID_09, {0: '2', 1: '3'},
                                  iothreadpins={1: '3'})
        report = self.run_audit([fakehost.make_domain(xml, '0-7')])
        self.assertIsNone(report.guests[0].guest.pid)
        self.assertEqual(
            [('vCPU 0', 'vcpu'), ('vCPU 1', 'vcpu'),
             ('emulatorpin', 'emulator'), ('iothreadpin 1', 'iothread')],
            [(t.name, t.kind) for t in report.guests[0].threads])
        self.assertEqual([findings.EMULATOR_ON_VCPU],
                         [f.code for f in report.findings])
        self.assertIn('emulator threads (emulatorpin, iothreadpin 1) may '
                      'run on pCPUs 2-3',
                      report.findings[0].message)

    def test_floating_guest_is_clean(self) -> None:
        # No single-pCPU pins: vCPUs float and share by design.
        self.tree.set_cpus('0-7')
        xml = fakehost.domain_xml('g', fakehost.UUID_09, {0: '0-7'})
        self.assertEqual([], self.codes(self.run_audit(
            [fakehost.make_domain(xml, '0-7')])))
