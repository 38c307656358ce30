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


"""The audit of Nova guests against their flavor, and the checks ``pin``
runs before it changes anything."""


from nova_emulator_threads import cpuset
from nova_emulator_threads.host import audit
from nova_emulator_threads.host import findings
from nova_emulator_threads.host import remedy
from tests.unit import base
from tests.unit.host import fakehost

P = cpuset.parse_cpu_spec
UUID = fakehost.UUID_09


def nova(vcpus: int, **extra_specs: str) -> dict[str, object]:
    specs = {'hw:cpu_policy': 'dedicated'}
    specs.update({key.replace('__', ':'): value
                  for key, value in extra_specs.items()})
    return {'name': 'vm', 'flavor': 'f', 'vcpus': vcpus, 'memory': 1024,
            'extra_specs': specs}


class NovaPolicyTestCase(base.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.tree = self.useFixture(fakehost.HostTree())
        self.tree.set_cpus('0-7')

    def check(self, vcpupins: dict[int, str], emulatorpin: str,
              meta: dict[str, object] | None,
              iothreadpins: dict[int, str] | None = None,
              config_emulatorpin: str | None = None,
              cpu_shared_set: str | None = None,
              ) -> tuple[list[tuple[str, str]], audit.AuditReport]:
        xml = fakehost.domain_xml('g', UUID, vcpupins, emulatorpin,
                                  iothreadpins, nova=meta)
        config = (fakehost.domain_xml('g', UUID, vcpupins,
                                      config_emulatorpin, iothreadpins,
                                      nova=meta)
                  if config_emulatorpin else None)
        report = audit.audit(
            fakehost.snapshot_of(self.tree, [fakehost.make_domain(
                xml, '0-7', config_xml=config)]),
            P(cpu_shared_set) if cpu_shared_set else None)
        return [(f.code, f.severity) for f in report.findings], report

    def test_isolate_clean(self) -> None:
        codes, report = self.check(
            {0: '2', 1: '3'}, '4',
            nova(2, hw__cpu_emulator_threads='isolate'), {1: '4'})
        self.assertEqual([], codes)
        self.assertTrue(report.guests[0].policy.isolate)
        self.assertEqual({4}, remedy.recommend(report, 'g').cpus)

    def test_isolate_alias_drifted_onto_vcpus(self) -> None:
        codes, report = self.check(
            {0: '2', 1: '3'}, '2-4',
            nova(2, hw__emulator_threads_policy='isolate'), {1: '2-4'},
            config_emulatorpin='4')
        self.assertEqual([(findings.EMULATOR_ON_VCPU, findings.WARNING),
                          (findings.NOVA_POLICY, findings.ERROR),
                          (findings.LIVE_CONFIG, findings.WARNING)], codes)
        self.assertIn("'isolate' gives the emulator threads one pCPU that "
                      "runs no vCPU of the guest, but they may run on 2-4",
                      report.findings[1].message)
        advice = remedy.recommend(report, 'g')
        self.assertEqual({4}, advice.cpus)
        self.assertEqual('the pCPU Nova reserved for its emulator threads',
                         advice.reason)

    def test_share_with_known_shared_set(self) -> None:
        meta = nova(2, hw__cpu_emulator_threads='share')
        codes, _ = self.check({0: '2', 1: '3'}, '0-1', meta,
                              cpu_shared_set='0-1')
        self.assertEqual([], codes)
        codes, report = self.check({0: '2', 1: '3'}, '0', meta,
                                   cpu_shared_set='0-1')
        self.assertEqual([(findings.NOVA_POLICY, findings.ERROR)], codes)
        self.assertIn('[compute] cpu_shared_set (0-1), but they may run on 0',
                      report.findings[0].message)
        self.assertEqual({0, 1}, remedy.recommend(report, 'g', P('0-1')).cpus)

    def test_share_without_shared_set_accepts_both_nova_shapes(self) -> None:
        meta = nova(2, hw__cpu_emulator_threads='share')
        # Off the vCPUs: presumably [compute] cpu_shared_set.
        self.assertEqual([], self.check({0: '2', 1: '3'}, '0-1', meta)[0])
        # Over the vCPUs: Nova without a shared set (emulator threads
        # that preempt the vCPUs, which the first check reports).
        self.assertEqual([(findings.EMULATOR_ON_VCPU, findings.WARNING)],
                         self.check({0: '2', 1: '3'}, '2-3', meta)[0])
        # Neither.
        codes, report = self.check({0: '2', 1: '3'}, '2,5', meta)
        self.assertEqual([(findings.EMULATOR_ON_VCPU, findings.WARNING),
                          (findings.NOVA_POLICY, findings.ERROR)], codes)

    def test_realtime_vcpus_are_left_out_of_the_float(self) -> None:
        meta = nova(3, hw__cpu_realtime='yes', hw__cpu_realtime_mask='^0')
        self.assertEqual(
            [(findings.EMULATOR_ON_VCPU, findings.WARNING)],
            self.check({0: '2', 1: '3', 2: '4'}, '2', meta)[0])
        codes, report = self.check({0: '2', 1: '3', 2: '4'}, '2-4', meta)
        self.assertEqual([(findings.EMULATOR_ON_VCPU, findings.WARNING),
                          (findings.NOVA_POLICY, findings.WARNING)], codes)
        self.assertIn('over the vCPUs (2), but they may run on 2-4',
                      report.findings[1].message)

    def test_iothreads_follow_the_emulator(self) -> None:
        codes, report = self.check(
            {0: '2', 1: '3'}, '4',
            nova(2, hw__cpu_emulator_threads='isolate'), {1: '2-3'})
        self.assertIn((findings.NOVA_POLICY, findings.ERROR), codes)
        self.assertIn('I/O thread 1 may run on 2-3, but Nova pins I/O '
                      'threads with the emulator threads (4)',
                      [f.message for f in report.findings])

    def test_dedicated_vcpu_that_floats(self) -> None:
        codes, report = self.check({0: '2', 1: '3-4'}, '2-4', nova(2))
        self.assertEqual([(findings.NOVA_POLICY, findings.ERROR)], codes[-1:])
        self.assertIn('vCPUs 1 are dedicated (hw:cpu_policy=dedicated) but '
                      'may run on several pCPUs (vCPU 1: 3-4)',
                      report.findings[-1].message)
        self.assertFalse(report.findings[-1].fixable_by_pin)

    def test_mixed_guest_floats_over_its_shared_vcpus_too(self) -> None:
        meta = nova(3, hw__cpu_policy='mixed', hw__cpu_dedicated_mask='^0')
        # vCPU 0 is shared (floats over 0-1), 1 and 2 are pinned: Nova
        # floats the emulator threads over all of them.
        self.assertEqual(
            [(findings.EMULATOR_ON_VCPU, findings.WARNING)],
            self.check({0: '0-1', 1: '2', 2: '3'}, '0-3', meta)[0])

    def test_unpinned_nova_guest_is_not_checked(self) -> None:
        meta = nova(2, hw__cpu_policy='shared')
        codes, report = self.check({0: '0-7', 1: '0-7'}, '3', meta)
        self.assertEqual([], codes)
        self.assertIsNone(remedy.recommend(report, 'g').cpus)

    def test_older_nova_without_extra_specs(self) -> None:
        meta = dict(nova(2), extra_specs=None)
        codes, report = self.check({0: '2', 1: '3'}, '4', meta)
        self.assertEqual([], codes)
        self.assertIn('policy unknown', report.guests[0].policy.describe())

    def test_unreadable_flavor(self) -> None:
        codes, report = self.check(
            {0: '2', 1: '3'}, '4', nova(2, hw__cpu_emulator_threads='bogus'))
        self.assertEqual([(findings.NOVA_UNCHECKED, findings.WARNING)], codes)
        self.assertIn('hw:cpu_emulator_threads', report.findings[0].message)

    def test_resized_guest(self) -> None:
        codes, _ = self.check({0: '2', 1: '3'}, '4', nova(4))
        self.assertEqual([(findings.NOVA_UNCHECKED, findings.WARNING)], codes)


class ProblemsTestCase(base.TestCase):
    """What ``pin`` refuses, before it changes anything."""

    def setUp(self) -> None:
        super().setUp()
        self.tree = self.useFixture(fakehost.HostTree())
        self.tree.set_cpus('0-7', isolated='5-7')
        self.tree.set_machine_cpuset('0-6')
        guests = [
            fakehost.make_domain(fakehost.domain_xml(
                'g', UUID, {0: '1', 1: '2'}, '1-2'), '0-7'),
            fakehost.make_domain(fakehost.domain_xml(
                'h', fakehost.UUID_1D, {0: '3'}, '0'), '0-7'),
        ]
        self.report = audit.audit(fakehost.snapshot_of(self.tree, guests))

    def problems(self, spec: str, **kwargs: bool) -> list[str]:
        return remedy.problems(self.report, 'g', P(spec), **kwargs)

    def test_fine(self) -> None:
        self.assertEqual([], self.problems('0,4'))
        self.assertEqual([], self.problems('5'))

    def test_each_problem(self) -> None:
        self.assertEqual(['CPUs 8 are not online (online: 0-7)',
                          'CPUs 8 are outside the cpuset of %s (0-6), which '
                          'bounds every guest'
                          % self.report.snapshot.machine_cpuset.path],
                         self.problems('0,8'))
        self.assertEqual(["pCPU 1 of the guest's own pinned vCPUs (vCPU 0 on "
                          "pCPU 1) would be shared with its emulator threads; "
                          "--allow-vcpu-overlap permits that"],
                         self.problems('0-1'))
        self.assertEqual([], self.problems('0-1', allow_vcpu_overlap=True))
        self.assertEqual(['pCPU 3 is dedicated to other guests (vCPU 0 of h '
                          'on pCPU 3)'], self.problems('3'))
        self.assertEqual(['CPUs 5-6 are all isolated, so every emulator '
                          'thread would run on pCPU 5 alone; give one '
                          'isolated CPU or CPUs that are not isolated'],
                         self.problems('5-6'))

    def test_recommendation_avoids_all_of_them(self) -> None:
        advice = remedy.recommend(self.report, 'g')
        self.assertEqual({0, 4}, advice.cpus)
        self.assertEqual([], remedy.problems(self.report, 'g', advice.cpus))

    def test_nothing_free(self) -> None:
        self.tree.set_cpus('0-1')
        self.tree.set_machine_cpuset('0-1')
        guest = fakehost.make_domain(fakehost.domain_xml(
            'g', UUID, {0: '0', 1: '1'}, '0-1'), '0-1')
        report = audit.audit(fakehost.snapshot_of(self.tree, [guest]))
        advice = remedy.recommend(report, 'g')
        self.assertIsNone(advice.cpus)
        self.assertIn('every online pCPU runs a pinned vCPU', advice.reason)


class NUMALocalShareTestCase(base.TestCase):
    """``audit --shared-pool-affinity numa``: a ``share`` guest's
    emulator threads belong on the shared CPUs of its NUMA nodes.
    """

    #: Two nodes of four CPUs.
    NODES = {cpu: cpu // 4 for cpu in range(8)}

    def setUp(self) -> None:
        super().setUp()
        self.tree = self.useFixture(fakehost.HostTree())
        self.tree.set_cpus('0-7')

    def check(self, vcpupins: dict[int, str], emulatorpin: str,
              shared: str, affinity: str) -> audit.AuditReport:
        meta = nova(len(vcpupins), hw__cpu_emulator_threads='share')
        xml = fakehost.domain_xml('g', UUID, vcpupins, emulatorpin,
                                  {1: emulatorpin}, nova=meta)
        return audit.audit(
            fakehost.snapshot_of(self.tree, [fakehost.make_domain(
                xml, '0-7')]), P(shared), affinity, self.NODES)

    def codes(self, report: audit.AuditReport) -> list[str]:
        return [f.code for f in report.findings]

    def test_numa_local_guest_is_clean(self) -> None:
        self.assertEqual([], self.codes(self.check(
            {0: '5', 1: '6'}, '4', '0,4', 'numa')))
        self.assertEqual([], self.codes(self.check(
            {0: '1', 1: '2'}, '0', '0,4', 'numa')))

    def test_whole_set_is_flagged_under_numa(self) -> None:
        report = self.check({0: '5', 1: '6'}, '0,4', '0,4', 'numa')
        self.assertEqual([findings.NOVA_POLICY], self.codes(report))
        self.assertIn("the [compute] cpu_shared_set CPUs of the guest's NUMA "
                      "nodes (4; [emulator_threads] shared_pool_affinity = "
                      "numa), but they may run on 0,4",
                      report.findings[0].message)
        # The remedy puts them where the audit expects them.
        advice = remedy.recommend(report, 'g', P('0,4'), 'numa', self.NODES)
        self.assertEqual({4}, advice.cpus)
        self.assertIn('shared_pool_affinity = numa', advice.reason)
        # As Nova places them (any), the whole set.
        self.assertEqual({0, 4}, remedy.recommend(report, 'g', P('0,4')).cpus)

    def test_other_nodes_shared_cpu_is_flagged(self) -> None:
        report = self.check({0: '5', 1: '6'}, '0', '0,4', 'numa')
        self.assertEqual([findings.NOVA_POLICY], self.codes(report))

    def test_guest_on_both_nodes_gets_both(self) -> None:
        self.assertEqual([], self.codes(self.check(
            {0: '1', 1: '5'}, '0,4', '0,4', 'numa')))

    def test_node_without_shared_cpus_falls_back_to_the_set(self) -> None:
        self.assertEqual([], self.codes(self.check(
            {0: '5', 1: '6'}, '0', '0', 'numa')))

    def test_any_keeps_novas_whole_set(self) -> None:
        self.assertEqual([], self.codes(self.check(
            {0: '5', 1: '6'}, '0,4', '0,4', 'any')))
        self.assertEqual([findings.NOVA_POLICY], self.codes(self.check(
            {0: '5', 1: '6'}, '4', '0,4', 'any')))
