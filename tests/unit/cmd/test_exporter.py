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


"""``nova-emulator-threads exporter`` on libvirt's test driver and a
recorded host: it serves /metrics over HTTP, and bad options are one
line."""

import signal
import subprocess
import urllib.request

import ddt
from oslotest import base

from tests.unit.cmd import command
from tests.unit.host import fakehost
from tests.unit.host import testdriver

GUEST = fakehost.domain_xml('instance-0000000a', testdriver.UUID_A, {0: '2'},
                            emulatorpin='2-3')


@ddt.ddt
class ExporterTestCase(base.BaseTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.tree = self.useFixture(fakehost.HostTree())
        self.tree.set_cpus('0-7')
        self.tree.add_process(1000, fakehost.qemu_argv(
            'instance-0000000a', testdriver.UUID_A),
            [(1000, 'qemu-kvm', '2-3'), (1001, 'CPU 0/KVM', '2')])
        self.uri = self.useFixture(testdriver.TestDriverFixture([GUEST])).uri

    def argv(self, *extra: str) -> list[str]:
        return ['exporter', '-c', self.uri, '--proc-root',
                self.tree.proc_root, '--sys-root', self.tree.sys_root,
                *extra]

    def test_serves_metrics_until_stopped(self) -> None:
        # The installed command in a subprocess (the smoke test of the
        # console script): its HTTP server runs in a thread, which this
        # test process (eventlet-patched by Nova's test modules) must not
        # host.
        listen = '127.0.0.1:%d' % command.free_port()
        process = subprocess.Popen(
            [command.COMMAND, *self.argv('--listen', listen)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.addCleanup(process.kill)
        self.assertEqual(
            'nova-emulator-threads exporter: serving http://%s/metrics\n'
            % listen, process.stdout.readline())
        self.tree.set_uptime(fakehost.UPTIME + 2)
        self.tree.set_sched(1000, 1000, 100 * 1000000)
        with urllib.request.urlopen(  # noqa: S310 - a fixed http URL
                'http://%s/metrics' % listen, timeout=30) as response:
            text = response.read().decode()
        # The main thread's 0.1 s, half of it on vCPU 0's pCPU 2.
        self.assertIn(
            'nova_emulator_threads_emulator_on_vcpu_pcpus_seconds_total{'
            'domain="instance-0000000a",uuid="%s",vcpu="0"} 0.05'
            % testdriver.UUID_A, text)
        self.assertIn(
            'nova_emulator_threads_findings{check="emulator-on-vcpu-pcpu",'
            'domain="instance-0000000a",uuid="%s"} 1.0' % testdriver.UUID_A,
            text)
        process.send_signal(signal.SIGTERM)
        self.assertEqual(0, process.wait(30), process.stderr.read())

    @ddt.data('9733', 'localhost:0', 'localhost:x', ':80', '127.0.0.1:70000')
    def test_bad_listen_is_one_line(self, listen: str) -> None:
        status, out, err = command.main(*self.argv('--listen', listen))
        self.assertEqual((2, ''), (status, out))
        self.assertEqual(
            'nova-emulator-threads exporter: Invalid input: --listen=%r: '
            'expected ADDRESS:PORT with a port from 1 to 65535, e.g. '
            '127.0.0.1:9733\n' % listen, err)
