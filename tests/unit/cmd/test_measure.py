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


"""``nova-emulator-threads measure`` (and ``audit --measure``) on
libvirt's test driver and recorded ``/proc`` and ``/sys`` trees whose
scheduler counters move while the command waits, through ``main``."""

import json
from collections.abc import Callable

import ddt
import fixtures
import testscenarios
from oslotest import base

from nova_emulator_threads.cmd import main
from nova_emulator_threads.cmd import measure as measure_cmd
from tests.unit.cmd import command
from tests.unit.host import fakehost
from tests.unit.host import testdriver

UUID_C = 'cccccccc-2222-3333-4444-555555555555'
S = 1000000000  # ns per second
MS = 1000000

#: Nova's default for a dedicated guest: vCPUs on pCPUs 2 and 3, the
#: emulator threads over both, the I/O thread on 3.
DEFAULT = fakehost.domain_xml(
    'instance-0000000a', testdriver.UUID_A, {0: '2', 1: '3'},
    emulatorpin='2-3',
    iothreadpins={1: '3'},
    nova={'name': 'vm-a', 'flavor': 'f', 'vcpus': 2, 'memory': 512,
          'extra_specs': {'hw:cpu_policy': 'dedicated'}})
PID_A = 1000
THREADS_A = [(1000, 'qemu-kvm', '2-3'), (1001, 'qemu-kvm', '2-3'),
             (1002, 'IO iothread1', '3'), (1003, 'CPU 0/KVM', '2'),
             (1004, 'CPU 1/KVM', '3'), (1005, 'kvm-nx-lpage-re', '2-3')]
VHOST_A = 1100
#: isolate: the vCPU on pCPU 5, the emulator threads on pCPU 4.
ISOLATED = fakehost.domain_xml('instance-0000000b', testdriver.UUID_B,
                               {0: '5'}, emulatorpin='4')
PID_B = 2000
THREADS_B = [(2000, 'qemu-kvm', '4'), (2001, 'CPU 0/KVM', '5')]
#: What each thread had run (ns) and waited when the command started.
BEFORE = {1000: (40 * S, 0), 1001: (S, 0), 1002: (3 * S, 0),
          1003: (100 * S, 2 * S), 1004: (100 * S, 3 * S), 1005: (S, 0),
          VHOST_A: (2 * S, 0), 2000: (10 * S, 0), 2001: (100 * S, S)}
#: What they ran and waited in the 6 s.
DURING = {1000: (400 * MS, 0), 1001: (20 * MS, 0), 1002: (300 * MS, 0),
          1003: (5500 * MS, 300 * MS), 1004: (5400 * MS, 500 * MS),
          1005: (100 * MS, 0), VHOST_A: (200 * MS, 0),
          2000: (S, 0), 2001: (5900 * MS, 10 * MS)}
#: The tid -> pid of each thread.
OWNER = {**{tid: PID_A for tid, _, _ in THREADS_A}, VHOST_A: VHOST_A,
         **{tid: PID_B for tid, _, _ in THREADS_B}}


@ddt.ddt
class MeasureCommandTestCase(testscenarios.WithScenarios,
                             base.BaseTestCase):

    scenarios = [('cgroup-v1', {'cgroup': 1}), ('cgroup-v2', {'cgroup': 2})]
    cgroup: int

    def setUp(self) -> None:
        super().setUp()
        self.tree = self.useFixture(fakehost.HostTree())
        self.tree.set_cpus('0-7')
        self.tree.set_machine_cpuset('0-7', version=self.cgroup)
        self.tree.add_process(PID_A, fakehost.qemu_argv(
            'instance-0000000a', testdriver.UUID_A), THREADS_A)
        self.tree.add_kernel_thread(VHOST_A, 'vhost-%d' % PID_A, '2-3')
        self.tree.add_process(PID_B, fakehost.qemu_argv(
            'instance-0000000b', testdriver.UUID_B), THREADS_B)
        for tid, (ran, waited) in BEFORE.items():
            self.tree.set_sched(OWNER[tid], tid, ran, waited)
        self.during: list[Callable[[], None]] = [self.six_seconds]

        def wait(seconds: float) -> None:
            self.waited = seconds
            for change in self.during:
                change()
        self.useFixture(fixtures.MonkeyPatch(
            'nova_emulator_threads.host.measure._wait', wait))

    def six_seconds(self) -> None:
        self.tree.set_uptime(fakehost.UPTIME + 6)
        for tid, (ran, waited) in DURING.items():
            self.tree.set_sched(OWNER[tid], tid, BEFORE[tid][0] + ran,
                                BEFORE[tid][1] + waited)

    def cli(self, *argv: str) -> tuple[int, str, str]:
        return command.main(*argv)

    def measure(self, *argv: str, domains: tuple[str, ...] = (DEFAULT,
                                                              ISOLATED),
                ) -> tuple[int, dict, str]:
        uri = self.useFixture(testdriver.TestDriverFixture(list(domains))).uri
        status, out, err = self.cli(
            'measure', '--connect', uri, '--proc-root', self.tree.proc_root,
            '--sys-root', self.tree.sys_root, '--format', 'json', *argv)
        return status, json.loads(out) if out else {}, err

    def test_default_pinning_loses_time_isolate_does_not(self) -> None:
        status, result, err = self.measure()
        self.assertEqual((1, ''), (status, err))
        self.assertEqual(6.0, self.waited)
        self.assertEqual(6.0, result['seconds'])
        a, b = result['guests']
        self.assertEqual(
            ('instance-0000000a', testdriver.UUID_A, PID_A, 'vm-a'),
            (a['domain'], a['uuid'], a['pid'], a['instance']))
        # vCPU 0 on pCPU 2: half of the main thread's 0.4 s and of the RCU
        # thread's 0.02 s (both may run on 2-3) and half of the vhost
        # thread's 0.2 s; the I/O thread is on pCPU 3 and KVM's own
        # thread is not counted.
        vcpu0, vcpu1 = a['vcpus']
        self.assertEqual(
            {'vcpu': 0, 'pcpus': [2], 'ran_s': 5.5, 'waited_s': 0.3,
             'emulator_on_pcpus_s': 0.31, 'exact': False},
            {k: v for k, v in vcpu0.items() if k != 'verdict'})
        self.assertEqual(
            'emulator threads ran about 310 ms on pCPU 2, the pCPU of vCPU '
            '0, which waited 300 ms runnable (most: qemu-kvm/1000 200 ms, '
            'vhost-1000/1100 100 ms, qemu-kvm/1001 10 ms): pin them to '
            'other pCPUs (hw:cpu_emulator_threads=isolate or share, or '
            'nova-emulator-threads pin)', vcpu0['verdict'])
        # vCPU 1 on pCPU 3: the same halves plus all of the I/O thread.
        self.assertEqual((5.4, 0.5, 0.61),
                         (vcpu1['ran_s'], vcpu1['waited_s'],
                          vcpu1['emulator_on_pcpus_s']))
        self.assertAlmostEqual(0.4 + 0.02 + 0.3 + 0.2, a['emulator_cpu_s'])
        self.assertEqual(
            [(1000, 'emulator', 0.4), (1002, 'iothread', 0.3),
             (VHOST_A, 'vhost', 0.2), (1005, 'kvm', 0.1),
             (1001, 'emulator', 0.02)],
            [(t['tid'], t['kind'], t['ran_s'])
             for t in a['emulator_threads']])
        # isolate: a whole second of emulator time, none on pCPU 5.
        (vcpu,) = b['vcpus']
        self.assertEqual((0.0, True, 1.0),
                         (vcpu['emulator_on_pcpus_s'], vcpu['exact'],
                          b['emulator_cpu_s']))
        self.assertEqual('no emulator time on pCPU 5, the pCPU of vCPU 0; '
                         'it waited 10 ms runnable', vcpu['verdict'])
        self.assertEqual(
            [('instance-0000000a', 'emulator-time-on-vcpu-pcpu',
              'vCPU 0: ' + vcpu0['verdict']),
             ('instance-0000000a', 'emulator-time-on-vcpu-pcpu',
              'vCPU 1: ' + vcpu1['verdict'])],
            [(f['domain'], f['code'], f['message'])
             for f in result['findings']])

    def test_named_guest_only(self) -> None:
        status, result, _ = self.measure('--seconds', '2', 'instance-0000000b')
        self.assertEqual(0, status)
        self.assertEqual(2.0, self.waited)
        self.assertEqual(['instance-0000000b'],
                         [g['domain'] for g in result['guests']])
        self.assertEqual([], result['findings'])

    def test_named_by_uuid(self) -> None:
        status, result, _ = self.measure(testdriver.UUID_A.upper())
        self.assertEqual(1, status)
        self.assertEqual([testdriver.UUID_A],
                         [g['uuid'] for g in result['guests']])

    def test_threshold(self) -> None:
        status, result, _ = self.measure('--threshold-ms', '700')
        self.assertEqual((0, []), (status, result['findings']))
        # Below the threshold the verdict still gives the figures.
        vcpu1 = result['guests'][0]['vcpus'][1]
        self.assertEqual(0.61, vcpu1['emulator_on_pcpus_s'])

    def test_wait_behind_other_tasks(self) -> None:
        # No emulator time on pCPU 5, but 0.5 s of waiting: something
        # else runs there.
        self.during.append(lambda: self.tree.set_sched(
            PID_B, 2001, BEFORE[2001][0] + 5 * S, BEFORE[2001][1] + S // 2))
        status, result, _ = self.measure('instance-0000000b')
        self.assertEqual(0, status)
        self.assertEqual(
            'no emulator time on pCPU 5, the pCPU of vCPU 0; it waited 500 '
            'ms runnable behind other tasks there (other guests or host '
            "processes: see isolcpus and the host's CPU affinity)",
            result['guests'][0]['vcpus'][0]['verdict'])

    def test_floating_guest_is_no_finding(self) -> None:
        # A guest without dedicated CPUs: vCPU and emulator threads float
        # over the same pCPUs by design.
        floating = fakehost.domain_xml('instance-0000000f', UUID_C,
                                       {0: '0-7'}, emulatorpin='0-7')
        self.tree.add_process(3000, fakehost.qemu_argv(
            'instance-0000000f', UUID_C),
            [(3000, 'qemu-kvm', '0-7'), (3001, 'CPU 0/KVM', '0-7')])

        def run() -> None:
            self.tree.set_sched(3000, 3000, 800 * MS)
            self.tree.set_sched(3000, 3001, 5 * S, 100 * MS)
        self.during.append(run)
        status, result, _ = self.measure(domains=(floating,))
        self.assertEqual((0, []), (status, result['findings']))
        (vcpu,) = result['guests'][0]['vcpus']
        self.assertEqual((0.8, True), (vcpu['emulator_on_pcpus_s'],
                                       vcpu['exact']))
        self.assertEqual('vCPU 0 floats over pCPUs 0-7 (not pinned) with '
                         'its emulator threads, which ran 800 ms there; it '
                         'waited 100 ms runnable', vcpu['verdict'])

    def test_threads_come_and_go(self) -> None:
        start = int((fakehost.UPTIME + 3) * 100)

        def churn() -> None:
            # The RCU thread exits; a worker starts and runs 250 ms on
            # 2-3; the I/O thread's id is reused by a new thread that ran
            # 40 ms on pCPU 3 since it started; a thread that was there
            # all along but missed by the first read is not counted.
            self.tree.remove_thread(PID_A, 1001)
            self.tree.add_thread(PID_A, 1006, 'worker', '2-3',
                                 start_ticks=start)
            self.tree.set_sched(PID_A, 1006, 250 * MS, start_ticks=start)
            self.tree.remove_thread(PID_A, 1002)
            self.tree.add_thread(PID_A, 1002, 'IO iothread1', '3',
                                 start_ticks=start)
            self.tree.set_sched(PID_A, 1002, 40 * MS, start_ticks=start)
            self.tree.add_thread(PID_A, 1007, 'vnc_worker', '2-3')
            self.tree.set_sched(PID_A, 1007, 9 * S)
        self.during.append(churn)
        status, result, err = self.measure('instance-0000000a')
        self.assertEqual((1, ''), (status, err))
        (a,) = result['guests']
        self.assertEqual((2, 1), (a['exited_threads'],
                                  a['unmeasured_threads']))
        threads = {t['tid']: (t['ran_s'], t['started'])
                   for t in a['emulator_threads']}
        self.assertEqual({1000: (0.4, False), 1002: (0.04, True),
                          1005: (0.1, False), 1006: (0.25, True),
                          VHOST_A: (0.2, False)}, threads)
        vcpu1 = a['vcpus'][1]
        self.assertAlmostEqual(0.2 + 0.04 + 0.125 + 0.1,
                               vcpu1['emulator_on_pcpus_s'])

    def test_guests_stop_and_start(self) -> None:
        fixture = self.useFixture(
            testdriver.TestDriverFixture([DEFAULT, ISOLATED]))
        started = fakehost.domain_xml('instance-0000000c', UUID_C,
                                      {0: '6'}, emulatorpin='6')
        start = int((fakehost.UPTIME + 2) * 100)

        def stop_and_start() -> None:
            fixture.conn.lookupByName('instance-0000000b').destroy()
            self.tree.remove_thread(PID_B, PID_B)
            fixture.conn.createXML(started, 0)
            self.tree.add_process(3000, fakehost.qemu_argv(
                'instance-0000000c', UUID_C),
                [(3000, 'qemu-kvm', '6'), (3001, 'CPU 0/KVM', '6')])
            self.tree.set_sched(3000, 3000, 300 * MS, start_ticks=start)
            self.tree.set_sched(3000, 3001, 3 * S, 600 * MS,
                                start_ticks=start)
        self.during.append(stop_and_start)
        args = main.build_parser().parse_args([
            'measure', '--proc-root', self.tree.proc_root,
            '--sys-root', self.tree.sys_root])
        result, status = measure_cmd.take_measurement(args, fixture.conn)
        self.assertEqual(1, status)
        self.assertEqual(('instance-0000000b',), result.stopped)
        a, c = result.guests
        self.assertEqual(('instance-0000000c', True), (c.domain, c.started))
        (vcpu,) = c.vcpus
        self.assertEqual((3.0, 0.6, 0.3, True),
                         (vcpu.ran_s, vcpu.waited_s,
                          vcpu.emulator_on_pcpus_s, vcpu.exact))
        table = measure_cmd.format_table(result)
        self.assertIn('instance-0000000b stopped during the interval: not '
                      'measured', table)
        self.assertIn('  note: started during the interval', table)
        self.assertIn('  vCPU 0: emulator threads ran 300 ms on pCPU 6, the '
                      'pCPU of vCPU 0, which waited 600 ms runnable', table)

    def test_table(self) -> None:
        uri = self.useFixture(
            testdriver.TestDriverFixture([DEFAULT, ISOLATED])).uri
        status, out, err = self.cli(
            'measure', '-c', uri, '--proc-root', self.tree.proc_root,
            '--sys-root', self.tree.sys_root)
        self.assertEqual((1, ''), (status, err))
        self.assertTrue(out.startswith(
            'measured 6.0 s\n\ninstance-0000000a (pid 1000, uuid %s): Nova '
            'instance vm-a\n'
            '  VCPU  PCPUS        RAN s  WAITED s    EMULATOR s\n'
            '  0     2            5.500     0.300         0.310\n'
            '  1     3            5.400     0.500         0.610\n'
            '  TID      THREAD           KIND      CPUS         RAN s\n'
            '  1000     qemu-kvm         emulator  2-3          0.400\n'
            % testdriver.UUID_A), out)
        self.assertTrue(out.endswith(
            '\n2 guests, 2 vCPUs lost time to emulator threads\n'), out)

    @ddt.data(
        (['--seconds', '0'], '--seconds=0.0: expected a number of seconds '
                             'from 0.1 to 3600'),
        (['--seconds', 'nan'], '--seconds=nan'),
        (['--seconds', 'x'], "invalid float value: 'x'"),
        (['--threshold-ms', '-1'], '--threshold-ms=-1.0'),
        (['nope'], "Domain 'nope' not found"),
        (['--format', 'xml'], "invalid choice: 'xml'"))
    @ddt.unpack
    def test_bad_input_is_one_line(self, argv: list[str], words: str) -> None:
        uri = self.useFixture(testdriver.TestDriverFixture([DEFAULT])).uri
        host = ['-c', uri, '--proc-root', self.tree.proc_root,
                '--sys-root', self.tree.sys_root]
        status, out, err = self.cli('measure', *host, *argv)
        self.assertEqual((2, ''), (status, out), err)
        self.assertEqual(1, err.count('\n'), err)
        self.assertIn(words, err)

    # -- audit --measure --------------------------------------------------

    def test_audit_measure(self) -> None:
        uri = self.useFixture(testdriver.TestDriverFixture([ISOLATED])).uri
        host = ['-c', uri, '--proc-root', self.tree.proc_root,
                '--sys-root', self.tree.sys_root]
        # The isolated guest is clean either way.
        status, out, err = self.cli('audit', *host, '--measure', '6',
                                    '--format', 'json')
        self.assertEqual((0, ''), (status, err))
        result = json.loads(out)
        self.assertEqual([], result['findings'])
        self.assertEqual(6.0, result['measure']['seconds'])
        self.assertEqual(['instance-0000000b'], [
            g['domain'] for g in result['measure']['guests']])
        # Without --measure nothing is measured.
        status, out, _ = self.cli('audit', *host, '--format', 'json')
        self.assertNotIn('measure', json.loads(out))

    def test_audit_measure_counts_lost_time(self) -> None:
        uri = self.useFixture(testdriver.TestDriverFixture([DEFAULT])).uri
        status, out, err = self.cli(
            'audit', '-c', uri, '--proc-root', self.tree.proc_root,
            '--sys-root', self.tree.sys_root, '--measure', '6')
        self.assertEqual((1, ''), (status, err))
        # The audit says where the threads may run, the measurement what
        # it cost.
        self.assertIn('WARNING emulator-on-vcpu-pcpu: emulator threads', out)
        self.assertIn('\nmeasured 6.0 s\n', out)
        self.assertIn('  vCPU 1: emulator threads ran about 610 ms on pCPU '
                      '3, the pCPU of vCPU 1', out)
        # The threshold applies to the measurement's findings only.
        status, out, _ = self.cli(
            'audit', '-c', uri, '--proc-root', self.tree.proc_root,
            '--sys-root', self.tree.sys_root, '--measure', '6',
            '--threshold-ms', '1000', '--format', 'json')
        self.assertEqual(([], 1), (json.loads(out)['measure']['findings'],
                                   status))

    def test_audit_measure_bad_seconds(self) -> None:
        status, out, err = self.cli('audit', '--measure', '-3')
        self.assertEqual((2, ''), (status, out))
        self.assertEqual('nova-emulator-threads audit: Invalid input: '
                         '--measure=-3.0: expected a number of seconds from '
                         '0.1 to 3600\n', err)

    def test_not_a_host(self) -> None:
        uri = self.useFixture(testdriver.TestDriverFixture([DEFAULT])).uri
        status, out, err = self.cli('measure', '-c', uri, '--proc-root',
                                    '/nonexistent', '--sys-root',
                                    self.tree.sys_root)
        self.assertEqual((2, ''), (status, out))
        self.assertIn('/nonexistent', err)



class TestInstalledCommand(base.BaseTestCase):

    def test_measure(self) -> None:
        # The smoke test of the console script, over a real 0.1 s in
        # which the recorded counters do not move: nothing ran.
        tree = self.useFixture(fakehost.HostTree())
        tree.set_cpus('0-7')
        tree.add_process(PID_A, fakehost.qemu_argv(
            'instance-0000000a', testdriver.UUID_A), THREADS_A)
        uri = self.useFixture(testdriver.TestDriverFixture([DEFAULT])).uri
        result = command.run(
            'measure', '--connect', uri, '--proc-root', tree.proc_root,
            '--sys-root', tree.sys_root, '--seconds', '0.1', '-f', 'json')
        self.assertEqual((0, ''), (result.returncode, result.stderr))
        (guest,) = json.loads(result.stdout)['guests']
        self.assertEqual(('instance-0000000a', PID_A),
                         (guest['domain'], guest['pid']))
        self.assertEqual([0.0, 0.0], [vcpu['ran_s'] for vcpu in
                                      guest['vcpus']])
