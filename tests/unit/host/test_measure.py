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


"""Sampling and attribution on the chapter's recorded hosts (the
command's own tests are in tests/unit/cmd/test_measure.py)."""

from oslotest import base

from nova_emulator_threads.host import measure
from tests.unit.host import fakehost

MS = 1000000


class IsolcpusTestCase(base.BaseTestCase):
    """instance-00000009 of the chapter, on isolcpus=1-3.

    Its vCPUs are on 1, 2 and 3; its emulator and vhost threads may run
    on 1-3, so they all run on pCPU 1.
    """

    def setUp(self) -> None:
        super().setUp()
        self.tree = self.useFixture(fakehost.HostTree())
        self.domains = [fakehost.make_domain(
            fakehost.chapter_09(self.tree), '0-3')]

    def sample(self) -> measure.HostSample:
        return measure.sample(
            fakehost.snapshot_of(self.tree, self.domains),
            self.tree.proc_root)

    def test_piled_up_threads_count_on_the_lowest_pcpu(self) -> None:
        first = self.sample()
        self.tree.set_uptime(fakehost.UPTIME + 6)
        # The main thread 300 ms, each vhost thread 100 ms.
        self.tree.set_sched(fakehost.PID_09, fakehost.PID_09, 300 * MS)
        for pid in fakehost.VHOST_09:
            self.tree.set_sched(pid, pid, 100 * MS)
        result = measure.compare(first, self.sample(), 6.0)
        (guest,) = result.guests
        self.assertEqual(
            [(0, frozenset({1}), 0.6, True), (1, frozenset({2}), 0.0, True),
             (2, frozenset({3}), 0.0, True)],
            [(v.vcpu, v.pcpus, round(v.emulator_on_pcpus_s, 6), v.exact)
             for v in guest.vcpus])
        self.assertEqual(['vCPU 0: emulator threads ran 600 ms on pCPU 1'],
                         [f.message.split(',')[0] for f in result.findings])
        self.assertEqual(
            ['qemu-kvm', 'vhost-364936', 'vhost-364936', 'vhost-364936'],
            [t.name for t, _ in guest.vcpus[0].stealers])

    def test_no_time_no_finding(self) -> None:
        first = self.sample()
        result = measure.compare(first, self.sample(), 0.0)
        self.assertEqual((), result.findings)
        self.assertEqual(0, result.guests[0].exited_threads)

    def test_guest_without_process_has_no_figures(self) -> None:
        self.tree.remove_thread(fakehost.PID_09, fakehost.PID_09)
        result = measure.compare(self.sample(), self.sample(), 1.0)
        (guest,) = result.guests
        self.assertEqual((None, (), ()), (guest.pid, guest.vcpus,
                                          guest.emulator_threads))

    def test_select(self) -> None:
        host = fakehost.snapshot_of(self.tree, self.domains)
        self.assertEqual(host, measure.select(host, []))
        self.assertEqual((), measure.select(host, ['other']).guests)
        self.assertEqual(host.guests, measure.select(
            host, [fakehost.UUID_09.upper()]).guests)
