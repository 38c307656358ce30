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

import ddt

from nova_emulator_threads import exception
from nova_emulator_threads.host import cgroup
from nova_emulator_threads.host import cpulist
from nova_emulator_threads.host import procfs
from nova_emulator_threads.host import sysfs
from tests.unit import base
from tests.unit.host import fakehost


@ddt.ddt
class CPUListTestCase(base.TestCase):

    @ddt.unpack
    @ddt.data(
        ('', set()),
        ('\n', set()),
        ('0\n', {0}),
        ('0-3,8-11\n', {0, 1, 2, 3, 8, 9, 10, 11}),
        ('10,14,30,34', {10, 14, 30, 34}),
        # bitmap_parselist strides: 2 of each group of 4.
        ('0-15:2/4', {0, 1, 4, 5, 8, 9, 12, 13}),
        ('1-9:1/4', {1, 5, 9}),
    )
    def test_kernel_formats(self, text: str, expected: set[int]) -> None:
        self.assertEqual(frozenset(expected),
                         cpulist.parse_cpu_list(text, 'f'))

    def test_last_cpu(self) -> None:
        self.assertEqual({2, 3}, cpulist.parse_cpu_list('2-N', 'f', last=3))
        self.assertRaises(exception.HostInspectionFailed,
                          cpulist.parse_cpu_list, '2-N', 'f')

    @ddt.data('1-0', 'a', '^2', '1-2:0/4', '1-8:5/4', '99999', '-1')
    def test_malformed_names_source_and_value(self, bad: str) -> None:
        exc = self.assertRaises(exception.HostInspectionFailed,
                                cpulist.parse_cpu_list, bad, '/x/online')
        self.assertIn('/x/online', str(exc))
        self.assertIn(repr(bad), str(exc))


class ProcfsTestCase(base.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.tree = self.useFixture(fakehost.HostTree())

    def test_chapter_threads(self) -> None:
        # What ps -T -p 73517 / taskset -apc 73517 show for this guest.
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


class SysfsTestCase(base.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.tree = self.useFixture(fakehost.HostTree())

    def test_cpu_nodes(self) -> None:
        node_dir = os.path.join(self.tree.sys_root, 'devices', 'system',
                                'node')
        for node, cpus in (('node0', '0-3,8-11'), ('node1', '4-7,12-15')):
            os.makedirs(os.path.join(node_dir, node))
            with open(os.path.join(node_dir, node, 'cpulist'), 'w') as f:
                f.write(cpus + '\n')
        # Not a node: sysfs has these files beside the node directories.
        with open(os.path.join(node_dir, 'online'), 'w') as f:
            f.write('0-1\n')
        nodes = sysfs.read_cpu_nodes(self.tree.sys_root)
        self.assertEqual({0: 0, 3: 0, 8: 0, 11: 0, 4: 1, 7: 1, 12: 1, 15: 1},
                         {cpu: nodes[cpu] for cpu in (0, 3, 8, 11, 4, 7,
                                                      12, 15)})
        self.assertEqual(16, len(nodes))

    def test_cpu_nodes_without_numa(self) -> None:
        self.assertEqual({}, sysfs.read_cpu_nodes(self.tree.sys_root))

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

    def test_smt_cores(self) -> None:
        self.tree.set_cpus('0-5')
        self.tree.set_smt_cores(['0,3', '1,4', '2,5'])
        cpus = self.read()
        self.assertEqual((frozenset({0, 3}), frozenset({1, 4}),
                          frozenset({2, 5})), cpus.smt_cores)
        self.assertEqual({4}, cpus.siblings(1))

    def test_offline_sibling_is_not_smt(self) -> None:
        # The kernel lists only online siblings; a core whose other thread
        # went offline has one thread left.
        self.tree.set_cpus('0-2,4')
        self.tree.set_smt_cores(['0,3', '1,4', '2,5'])
        cpus = self.read()
        self.assertEqual((frozenset({1, 4}),), cpus.smt_cores)
        self.assertEqual(frozenset(), cpus.siblings(0))

    def test_no_topology_files_no_smt(self) -> None:
        self.tree.set_cpus('0-3')
        self.assertEqual((), self.read().smt_cores)

    def test_malformed_siblings_list(self) -> None:
        self.tree.set_cpus('0-3')
        topology = os.path.join(self.tree.sys_root, 'devices', 'system',
                                'cpu', 'cpu0', 'topology')
        os.makedirs(topology)
        with open(os.path.join(topology, 'thread_siblings_list'), 'w') as f:
            f.write('0,x\n')
        exc = self.assertRaises(exception.HostInspectionFailed, self.read)
        self.assertIn('thread_siblings_list', str(exc))

class CgroupTestCase(base.TestCase):

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


class CPUBandwidthTestCase(base.TestCase):
    """The emulator cgroup's CFS limit, from recorded cgroup trees."""

    #: libvirt's emulator cgroup of a guest, without systemd.
    EMULATOR = 'machine/qemu-1-instance-00000001.libvirt-qemu/emulator'

    def setUp(self) -> None:
        super().setUp()
        self.tree = self.useFixture(fakehost.HostTree())

    def write(self, path: str, text: str) -> str:
        full = os.path.join(self.tree.sys_root, 'fs', 'cgroup', path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, 'w') as f:
            f.write(text + '\n')
        return os.path.dirname(full)

    def proc_cgroup(self, text: str, tid: int | None = None) -> None:
        task = os.path.join(self.tree.proc_root, '4242')
        if tid is not None:
            task = os.path.join(task, 'task', str(tid))
        os.makedirs(task, exist_ok=True)
        with open(os.path.join(task, 'cgroup'), 'w') as f:
            f.write(text)

    def read(self, tid: int | None = None) -> cgroup.CPUBandwidth | None:
        return cgroup.read_thread_cpu_bandwidth(
            4242, tid, self.tree.proc_root, self.tree.sys_root)

    def test_v1_separate_cpu_mount(self) -> None:
        # As on this project's CI machine: cpu and cpuacct mounted apart,
        # and a unified hierarchy beside them.
        self.proc_cgroup('2:cpuacct:/%s\n1:cpu:/%s\n0::/\n'
                         % (self.EMULATOR, self.EMULATOR))
        directory = self.write('cpu/%s/cpu.cfs_quota_us' % self.EMULATOR,
                               '25000')
        self.write('cpu/%s/cpu.cfs_period_us' % self.EMULATOR, '100000')
        self.assertEqual(cgroup.CPUBandwidth(
            path=directory, version=1, period=100000, quota=25000),
            self.read())

    def test_v1_cpu_cpuacct_unlimited(self) -> None:
        self.proc_cgroup('3:cpu,cpuacct:/%s\n' % self.EMULATOR, tid=4250)
        self.write('cpu,cpuacct/%s/cpu.cfs_quota_us' % self.EMULATOR, '-1')
        self.write('cpu,cpuacct/%s/cpu.cfs_period_us' % self.EMULATOR,
                   '100000')
        found = self.read(tid=4250)
        self.assertEqual((1, None, 100000),
                         (found.version, found.quota, found.period))

    def test_v2(self) -> None:
        path = 'machine/qemu-1-instance-00000001.libvirt-qemu/libvirt/emulator'
        self.proc_cgroup('0::/%s\n' % path)
        directory = self.write('%s/cpu.max' % path, '25000 100000')
        self.assertEqual(cgroup.CPUBandwidth(
            path=directory, version=2, period=100000, quota=25000),
            self.read())
        self.write('%s/cpu.max' % path, 'max 100000')
        self.assertIsNone(self.read().quota)

    def test_v2_garbage(self) -> None:
        self.proc_cgroup('0::/x\n')
        self.write('x/cpu.max', 'lots')
        exc = self.assertRaises(exception.HostInspectionFailed, self.read)
        self.assertIn("'lots'", str(exc))

    def test_no_thread_or_no_cgroup(self) -> None:
        self.assertIsNone(self.read())
        self.proc_cgroup('1:cpu:/gone\n')
        self.assertIsNone(self.read())


@ddt.ddt
class SchedStatTestCase(base.TestCase):

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

    @ddt.data(('schedstat', 'x y z\n', "'x y z' is not"),
              ('stat', '11 (CPU 0/KVM) S 1 2\n', 'no start time'))
    @ddt.unpack
    def test_malformed(self, name: str, text: str, words: str) -> None:
        with open(os.path.join(self.task, name), 'w') as handle:
            handle.write(text)
        exc = self.assertRaises(exception.HostInspectionFailed,
                                procfs.read_schedstat, self.task)
        self.assertIn(os.path.join(self.task, name), str(exc))
        self.assertIn(words, str(exc))

    def test_uptime(self) -> None:
        self.tree.set_uptime(12.5)
        self.assertEqual(12.5, procfs.read_uptime(self.tree.proc_root))
        with open(os.path.join(self.tree.proc_root, 'uptime'), 'w') as h:
            h.write('')
        self.assertRaises(exception.HostInspectionFailed,
                          procfs.read_uptime, self.tree.proc_root)
