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


import os

from oslotest import base

from nova_emulator_threads import exception
from nova_emulator_threads.host import cgroup
from nova_emulator_threads.host import cpulist
from nova_emulator_threads.host import procfs
from nova_emulator_threads.host import sysfs
from tests.unit.host import fakehost


class CPUListTestCase(base.BaseTestCase):

    def test_kernel_formats(self) -> None:
        cases = {
            '': frozenset(),
            '\n': frozenset(),
            '0\n': {0},
            '0-3,8-11\n': {0, 1, 2, 3, 8, 9, 10, 11},
            '10,14,30,34': {10, 14, 30, 34},
            # bitmap_parselist strides: 2 of each group of 4.
            '0-15:2/4': {0, 1, 4, 5, 8, 9, 12, 13},
            '1-9:1/4': {1, 5, 9},
        }
        for text, expected in cases.items():
            self.assertEqual(frozenset(expected),
                             cpulist.parse_cpu_list(text, 'f'), text)

    def test_last_cpu(self) -> None:
        self.assertEqual({2, 3}, cpulist.parse_cpu_list('2-N', 'f', last=3))
        self.assertRaises(exception.HostInspectionFailed,
                          cpulist.parse_cpu_list, '2-N', 'f')

    def test_malformed_names_source_and_value(self) -> None:
        for bad in ('1-0', 'a', '^2', '1-2:0/4', '1-8:5/4', '99999', '-1'):
            exc = self.assertRaises(exception.HostInspectionFailed,
                                    cpulist.parse_cpu_list, bad, '/x/online')
            self.assertIn('/x/online', str(exc))
            self.assertIn(repr(bad), str(exc))


class ProcfsTestCase(base.BaseTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.tree = self.useFixture(fakehost.HostTree())

    def test_chapter_threads(self) -> None:
        # ps -T -p 73517 / taskset -apc 73517 of seed 000, section 13.3.2.
        fakehost.chapter_1d(self.tree)
        threads = procfs.process_threads(fakehost.PID_1D,
                                         self.tree.proc_root)
        self.assertEqual(
            [(tid, name, fakehost.cpuset.parse_cpu_spec(cpus))
             for tid, name, cpus in fakehost.THREADS_1D],
            [(t.tid, t.name, t.cpus) for t in threads])

    def test_scan_finds_qemu_by_uuid_and_vhost_kernel_threads(self) -> None:
        fakehost.chapter_09(self.tree)
        # Unrelated processes: one mentioning the UUID without -uuid, one
        # vhost worker of another process.
        self.tree.add_process(100, ['grep', fakehost.UUID_09],
                              [(100, 'grep', '0-3')])
        self.tree.add_kernel_thread(101, 'vhost-555', '0-3')
        table = procfs.scan_processes(self.tree.proc_root)
        self.assertEqual({fakehost.UUID_09: fakehost.PID_09},
                         dict(table.qemu_pids))
        self.assertEqual(fakehost.VHOST_09, [
            t.tid for t in table.vhost_threads[fakehost.PID_09]])
        self.assertEqual({1, 2, 3},
                         table.vhost_threads[fakehost.PID_09][0].cpus)
        self.assertEqual([101], [t.tid for t in table.vhost_threads[555]])

    def test_uuid_is_matched_case_insensitively(self) -> None:
        self.tree.add_process(7, fakehost.qemu_argv('g', 'ABCD-EF'),
                              [(7, 'qemu', '0')])
        table = procfs.scan_processes(self.tree.proc_root)
        self.assertEqual({'abcd-ef': 7}, dict(table.qemu_pids))

    def test_thread_that_exits_meanwhile_is_left_out(self) -> None:
        fakehost.chapter_1d(self.tree)
        task = os.path.join(self.tree.proc_root, str(fakehost.PID_1D),
                            'task', '73540')
        os.unlink(os.path.join(task, 'status'))
        threads = procfs.process_threads(fakehost.PID_1D,
                                         self.tree.proc_root)
        self.assertNotIn(73540, [t.tid for t in threads])
        self.assertEqual(6, len(threads))

    def test_gone_process_has_no_threads(self) -> None:
        self.assertEqual((), procfs.process_threads(4242,
                                                    self.tree.proc_root))

    def test_status_without_affinity_is_an_error(self) -> None:
        self.tree.add_process(9, ['x'], [(9, 'x', '0')])
        path = os.path.join(self.tree.proc_root, '9', 'task', '9', 'status')
        with open(path, 'w') as handle:
            handle.write('Name:\tx\n')
        exc = self.assertRaises(exception.HostInspectionFailed,
                                procfs.process_threads, 9,
                                self.tree.proc_root)
        self.assertIn('Cpus_allowed_list', str(exc))

    def test_missing_proc_root(self) -> None:
        self.assertRaises(exception.HostInspectionFailed,
                          procfs.scan_processes, '/nonexistent/proc')

    def test_real_proc(self) -> None:
        # This very process, read through the real /proc.
        threads = procfs.process_threads(os.getpid())
        self.assertIn(os.getpid(), [t.tid for t in threads])
        self.assertEqual(os.sched_getaffinity(0), set(
            next(t for t in threads if t.tid == os.getpid()).cpus))


class SysfsTestCase(base.BaseTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.tree = self.useFixture(fakehost.HostTree())

    def read(self) -> sysfs.HostCPUs:
        return sysfs.read_host_cpus(self.tree.sys_root, self.tree.proc_root)

    def test_no_isolation(self) -> None:
        self.tree.set_cpus('0-39')
        cpus = self.read()
        self.assertEqual(frozenset(range(40)), cpus.online)
        self.assertEqual(frozenset(), cpus.isolated)
        self.assertEqual(frozenset(), cpus.isolcpus)

    def test_isolcpus_chapter(self) -> None:
        fakehost.chapter_09(self.tree)
        cpus = self.read()
        self.assertEqual({1, 2, 3}, cpus.isolated)
        self.assertEqual({1, 2, 3}, cpus.isolcpus)
        self.assertEqual(('domain',), cpus.isolcpus_flags)
        self.assertEqual({1, 2, 3}, cpus.nohz_full)

    def test_isolcpus_flags_and_fallback_without_isolated_file(self) -> None:
        self.tree.set_cpus('0-7', isolated=None)
        self.tree.set_cmdline('ro isolcpus=managed_irq,domain,2-N')
        cpus = self.read()
        self.assertEqual({2, 3, 4, 5, 6, 7}, cpus.isolated)
        self.assertEqual(('managed_irq', 'domain'), cpus.isolcpus_flags)

    def test_nohz_only_isolation_does_not_stop_balancing(self) -> None:
        self.tree.set_cpus('0-7', isolated=None)
        self.tree.set_cmdline('ro isolcpus=nohz,2-7')
        cpus = self.read()
        self.assertEqual(frozenset(), cpus.isolated)
        self.assertEqual({2, 3, 4, 5, 6, 7}, cpus.isolcpus)

    def test_sysfs_wins_over_cmdline(self) -> None:
        # The kernel's view is what applies (e.g. a cpuset partition).
        self.tree.set_cpus('0-7', isolated='4-7')
        self.tree.set_cmdline('ro isolcpus=2-7')
        self.assertEqual({4, 5, 6, 7}, self.read().isolated)

    def test_init_arguments_are_not_kernel_parameters(self) -> None:
        self.tree.set_cpus('0-3')
        self.tree.set_cmdline('ro -- isolcpus=1-3')
        self.assertEqual(frozenset(), self.read().isolcpus)

    def test_missing_online_is_an_error(self) -> None:
        exc = self.assertRaises(exception.HostInspectionFailed, self.read)
        self.assertIn('online', str(exc))

    def test_malformed_isolcpus(self) -> None:
        self.tree.set_cpus('0-3')
        self.tree.set_cmdline('isolcpus=domain,3-1')
        exc = self.assertRaises(exception.HostInspectionFailed, self.read)
        self.assertIn('isolcpus=', str(exc))

    def test_real_sysfs(self) -> None:
        cpus = sysfs.read_host_cpus()
        self.assertLessEqual(os.sched_getaffinity(0), cpus.online)


class CgroupTestCase(base.BaseTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.tree = self.useFixture(fakehost.HostTree())

    def test_none_without_machine_partition(self) -> None:
        self.assertIsNone(cgroup.read_machine_cpuset(self.tree.sys_root))

    def test_v1_machine_slice(self) -> None:
        path = self.tree.set_machine_cpuset('4-15', exclusive=True)
        found = cgroup.read_machine_cpuset(self.tree.sys_root)
        self.assertEqual(cgroup.MachineCpuset(
            path=path, version=1, cpus=frozenset(range(4, 16)),
            configured=frozenset(range(4, 16)), exclusive=True), found)

    def test_v1_machine_without_systemd(self) -> None:
        path = self.tree.set_machine_cpuset('0-1', partition='machine')
        found = cgroup.read_machine_cpuset(self.tree.sys_root)
        self.assertEqual((path, {0, 1}), (found.path, found.cpus))

    def test_v2_inherits(self) -> None:
        path = self.tree.set_machine_cpuset('0-7', version=2)
        found = cgroup.read_machine_cpuset(self.tree.sys_root)
        self.assertEqual(cgroup.MachineCpuset(
            path=path, version=2, cpus=frozenset(range(8)),
            configured=None, exclusive=False), found)

    def test_v2_root_partition(self) -> None:
        self.tree.set_machine_cpuset('2-7', version=2, exclusive=True,
                                     configured='2-7')
        found = cgroup.read_machine_cpuset(self.tree.sys_root)
        self.assertTrue(found.exclusive)
        self.assertEqual(frozenset(range(2, 8)), found.configured)

    def test_real_host(self) -> None:
        # Whatever this host has, it parses (None when no guest ever ran).
        found = cgroup.read_machine_cpuset()
        if found is not None:
            self.assertLessEqual(found.cpus, sysfs.read_host_cpus().online)


class SchedStatTestCase(base.BaseTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.tree = self.useFixture(fakehost.HostTree())
        self.tree.add_process(10, ['x'], [(10, 'a (b) c', '0'),
                                          (11, 'CPU 0/KVM', '1')])
        self.task = os.path.join(self.tree.proc_root, '10', 'task', '11')

    def test_read(self) -> None:
        self.tree.set_sched(10, 11, 5, 7, start_ticks=1234, last_cpu=1)
        self.assertEqual(procfs.SchedStat(ran_ns=5, waited_ns=7,
                                          start_ticks=1234, last_cpu=1),
                         procfs.read_schedstat(self.task))
        # A comm with spaces and parentheses: the fields after the last ')'.
        self.tree.set_sched(10, 10, 1, 2, start_ticks=99)
        self.assertEqual(99, procfs.read_schedstat(os.path.join(
            self.tree.proc_root, '10')).start_ticks)

    def test_gone(self) -> None:
        self.tree.remove_thread(10, 11)
        self.assertIsNone(procfs.read_schedstat(self.task))

    def test_malformed(self) -> None:
        for name, text, words in (
                ('schedstat', 'x y z\n', "'x y z' is not"),
                ('stat', '11 (CPU 0/KVM) S 1 2\n', 'no start time')):
            with open(os.path.join(self.task, name), 'w') as handle:
                handle.write(text)
            exc = self.assertRaises(exception.HostInspectionFailed,
                                    procfs.read_schedstat, self.task)
            self.assertIn(os.path.join(self.task, name), str(exc))
            self.assertIn(words, str(exc))
            self.tree.set_sched(10, 11, 0)

    def test_uptime(self) -> None:
        self.tree.set_uptime(12.5)
        self.assertEqual(12.5, procfs.read_uptime(self.tree.proc_root))
        with open(os.path.join(self.tree.proc_root, 'uptime'), 'w') as h:
            h.write('')
        self.assertRaises(exception.HostInspectionFailed,
                          procfs.read_uptime, self.tree.proc_root)
