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

"""`restart` and `kill` of one service of the all-in-one cloud, on real
processes standing in for the services (the cloud itself runs in the
all-in-one tier, whose tempest tests use these commands as faults).
"""

import io
import os
import pathlib
import re
import signal
import subprocess
import sys
from unittest import mock

import fixtures

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[3] / 'tools'
                       / 'all-in-one'))
import aio  # noqa: E402

from allinone import layout  # noqa: E402
from allinone import lifecycle  # noqa: E402
from allinone import processes  # noqa: E402
from allinone import starts  # noqa: E402
from tests.unit import base  # noqa: E402


def _two_cpus():
    with mock.patch.object(os, 'sched_getaffinity', autospec=True,
                           return_value={0, 1}):
        return layout.compute_hosts()


class StartsTestCase(base.TestCase):

    def test_every_service_has_one_start_in_down_order(self):
        hosts = _two_cpus()
        every = starts.starts(hosts)
        self.assertEqual(len(every), len(set(every)))
        # Loops, not cases: the names of the one list above.
        for name in ('postgresql', 'rabbitmq', 'nova-api',
                     'nova-conductor', 'nova-scheduler'):
            self.assertIn(name, every)
        for host in hosts:
            for daemon in ('virtlogd', 'libvirtd', 'nova-compute'):
                self.assertIn('%s-%s' % (daemon, host.name), every)
        # Each name is one `down` knows where to stop.
        for name in every:
            self.assertTrue(any(
                re.fullmatch(pattern.replace('*', '.*'), name)
                for pattern in lifecycle.ORDER), name)

    def test_guests_outlive_their_libvirt_daemons(self):
        every = starts.starts(_two_cpus())
        alone = {name for name, start in every.items() if not start.group}
        self.assertEqual({'%s-aio-compute%d' % (daemon, n)
                          for daemon in ('virtlogd', 'libvirtd')
                          for n in (1, 2)}, alone)
        self.assertEqual(signal.SIGINT, every['postgresql'].stop_signal)


class RestartKillTestCase(base.TestCase):
    """`restart` and `kill` with a real process for the service."""

    def setUp(self):
        super().setUp()
        tree = pathlib.Path(self.useFixture(fixtures.TempDir()).path)
        for name in ('LOGS', 'RUN', 'ETC'):
            (tree / name.lower()).mkdir()
            self.useFixture(fixtures.MonkeyPatch(
                'allinone.layout.%s' % name, tree / name.lower()))
        self.useFixture(fixtures.MonkeyPatch('allinone.layout.ROOT', tree))
        self.useFixture(fixtures.MonkeyPatch(
            'allinone.install.require_root', lambda: None))
        (tree / 'etc' / 'openrc').write_text(
            'export OS_USERNAME=admin\nexport OS_PASSWORD=secret\n')
        self.readied = []
        # A service whose start also leaves a child in its process
        # group, as libvirtd leaves its guests.
        self.service = starts.Start(
            'svc', lambda: processes.spawn('svc', [
                'sh', '-c', 'sleep 60 & echo $! > %s; exec sleep 60'
                % (tree / 'child')]),
            self.readied.append)
        self.child_file = tree / 'child'
        self.useFixture(fixtures.MockPatch(
            'allinone.starts.starts', return_value={'svc': self.service}))
        self.addCleanup(self._stop_all)

    def _stop_all(self):
        pids = [processes.read_pid(layout.RUN / 'svc.pid')]
        if self.child_file.exists():
            pids.append(processes.read_pid(self.child_file))
        processes.terminate([p for p in pids if p], signal.SIGKILL)

    def start(self):
        self.service.spawn()
        pid = processes.read_pid(layout.RUN / 'svc.pid')
        processes.wait_for('the child', self.child_file.exists, ['svc'], 10)
        processes.wait_for('the environment mark',
                           lambda: processes.ours(pid), ['svc'], 10)
        return pid

    def test_kill_leaves_the_pid_file_and_restart_starts_it_again(self):
        pid = self.start()
        lifecycle.kill('svc')
        self.assertFalse(processes.running(pid))
        self.assertEqual(pid, processes.read_pid(layout.RUN / 'svc.pid'))
        self.assertEqual(1, lifecycle.status())

        lifecycle.restart('svc')
        new = processes.read_pid(layout.RUN / 'svc.pid')
        self.assertNotEqual(pid, new)
        self.assertTrue(processes.running(new))
        # It waited for the service with the cloud's admin password and
        # the time of the restart.
        self.assertEqual(1, len(self.readied))
        self.assertIsNotNone(self.readied[0].since)
        self.assertEqual('secret', self.readied[0]._admin_password)

    def test_restart_stops_the_running_one_first(self):
        pid = self.start()
        lifecycle.restart('svc')
        self.assertFalse(processes.running(pid))
        self.assertTrue(processes.running(
            processes.read_pid(layout.RUN / 'svc.pid')))

    def test_kill_takes_the_group_unless_the_service_says_not(self):
        self.start()
        child = processes.read_pid(self.child_file)
        lifecycle.kill('svc')
        self.assertFalse(processes.running(child))

        self.child_file.unlink()
        self.useFixture(fixtures.MockPatch(
            'allinone.starts.starts', return_value={'svc': starts.Start(
                'svc', self.service.spawn, self.service.ready,
                group=False)}))
        self.start()
        child = processes.read_pid(self.child_file)
        lifecycle.kill('svc')
        self.assertTrue(processes.running(child))

    def test_kill_of_a_dead_service_fails(self):
        pid = self.start()
        lifecycle.kill('svc')
        exc = self.assertRaises(layout.Failed, lifecycle.kill, 'svc')
        self.assertEqual('svc does not run', str(exc))
        self.assertFalse(processes.running(pid))

    def test_a_cloud_that_is_not_up_is_named(self):
        exc = self.assertRaises(layout.Failed, lifecycle.restart, 'svc')
        self.assertEqual('the cloud is not up: no %s' % (
            layout.RUN / 'svc.pid'), str(exc))

    def test_unknown_name_exits_2_with_one_line(self):
        stderr = self.useFixture(fixtures.MonkeyPatch(
            'sys.stderr', io.StringIO())).new_value
        self.useFixture(fixtures.MonkeyPatch(
            'sys.argv', ['aio.py', 'kill', 'nova-compute']))
        self.assertEqual(2, aio.main())
        self.assertEqual(
            "aio.py kill: service 'nova-compute' is not one of the "
            "cloud's; allowed: svc\n", stderr.getvalue())

    def test_the_command_line_reaches_kill(self):
        pid = self.start()
        done = subprocess.run(
            [sys.executable, str(layout.HERE / 'aio.py'), 'kill', 'nope'],
            capture_output=True, text=True, check=False)
        self.assertEqual(2, done.returncode)
        self.assertEqual(1, len(done.stderr.splitlines()), done.stderr)
        self.assertTrue(processes.running(pid))
