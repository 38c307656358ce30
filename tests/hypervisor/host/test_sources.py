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

"""The host readers on this machine's own ``/proc`` and ``/sys``.

The unit tier reads recorded trees (``tests/unit/host/fakehost.py``);
these read the real kernel files, whose content depends on the machine,
so they live in the tier that runs on a real host.
"""

import os

from oslotest import base

from nova_emulator_threads.host import cgroup
from nova_emulator_threads.host import procfs
from nova_emulator_threads.host import sysfs


class RealHostSourcesTestCase(base.BaseTestCase):

    def test_real_proc(self) -> None:
        # This very process, read through the real /proc.
        threads = procfs.process_threads(os.getpid())
        self.assertIn(os.getpid(), [t.tid for t in threads])
        self.assertEqual(os.sched_getaffinity(0), set(
            next(t for t in threads if t.tid == os.getpid()).cpus))

    def test_real_sysfs(self) -> None:
        cpus = sysfs.read_host_cpus()
        self.assertLessEqual(os.sched_getaffinity(0), cpus.online)

    def test_real_host(self) -> None:
        # Whatever this host has, it parses (None when no guest ever ran).
        found = cgroup.read_machine_cpuset()
        if found is not None:
            self.assertLessEqual(found.cpus, sysfs.read_host_cpus().online)

    def test_real_smt_cores(self) -> None:
        # Every core with several threads is made of online CPUs.
        cpus = sysfs.read_host_cpus()
        # A loop, not cases: every core of this one machine.
        for core in cpus.smt_cores:
            self.assertLessEqual(core, cpus.online)

    def test_real_cpu_bandwidth(self) -> None:
        # This process's own cgroup parses, whatever the host has.
        found = cgroup.read_thread_cpu_bandwidth(os.getpid())
        if found is not None:
            self.assertGreater(found.period, 0)

    def test_real_cpu_nodes(self) -> None:
        # Every online CPU of a NUMA host belongs to one node.
        nodes = sysfs.read_cpu_nodes()
        if nodes:
            self.assertLessEqual(sysfs.read_host_cpus().online, set(nodes))
