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


"""The exporter scraped by a real Prometheus server.

A spinning guest with Nova's default placement (emulator threads on its
vCPU's pCPU) under block copies, the exporter serving it, and Debian's
``prometheus`` started on 127.0.0.1 with a private configuration and
data directory, scraping every second. The test asks Prometheus' HTTP
API for the rate of emulator time on the vCPU's pCPU and for the audit's
findings, labelled with the guest's name and UUID.
"""

import json
import os
import subprocess
import time
import urllib.parse
import urllib.request

import fixtures
import testtools

from nova_emulator_threads.cmd import exporter
from nova_emulator_threads.cmd import main
from tests.hypervisor import base
from tests.hypervisor import libvirtd
from tests.hypervisor import spinguest
from tests.unit.cmd import command

PROMETHEUS = '/usr/bin/prometheus'
CONFIG = '''\
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: nova-emulator-threads
    static_configs:
      - targets: ['%s']
'''
QUERY_TIMEOUT = 90.0


class Prometheus(fixtures.Fixture):
    """A Prometheus server of our own, on a free loopback port."""

    def __init__(self, target: str) -> None:
        super().__init__()
        self.target = target

    def _setUp(self) -> None:
        if not os.path.exists(PROMETHEUS):
            raise libvirtd.StartFailed(
                '%s is missing: tools/install-deps.sh hypervisor installs '
                "Debian's prometheus package" % PROMETHEUS)
        tree = self.useFixture(fixtures.TempDir()).path
        config = os.path.join(tree, 'prometheus.yml')
        with open(config, 'w') as handle:
            handle.write(CONFIG % self.target)
        self.url = 'http://127.0.0.1:%d' % command.free_port()
        self.log_path = os.path.join(tree, 'prometheus.log')
        log = open(self.log_path, 'w')  # noqa: SIM115 - closed on cleanup
        self.addCleanup(log.close)
        self.process = subprocess.Popen(
            [PROMETHEUS, '--config.file=' + config,
             '--storage.tsdb.path=' + os.path.join(tree, 'data'),
             '--web.listen-address=' + self.url[len('http://'):]],
            stdout=log, stderr=subprocess.STDOUT)
        self.addCleanup(self._stop)

    def _stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def log(self) -> str:
        with open(self.log_path) as handle:
            return handle.read()

    def query(self, expr: str) -> list[dict]:
        """An instant query's result vector (empty before it has data)."""
        url = '%s/api/v1/query?%s' % (
            self.url, urllib.parse.urlencode({'query': expr}))
        try:
            with urllib.request.urlopen(  # noqa: S310 - our own http URL
                    url, timeout=10) as response:
                body = json.load(response)
        except OSError:
            return []  # not listening yet
        result: list[dict] = body['data']['result']
        return result


class ExporterTestCase(base.HypervisorTestCase):

    def test_prometheus_scrapes_emulator_time(self) -> None:
        guest, directory = self.default_spin_guest('scraped', mib=64)

        listen = '127.0.0.1:%d' % command.free_port()
        args = main.build_parser().parse_args([
            'exporter', '-c', self.daemon.uri, '--listen', listen])
        server, _collector = exporter.start(args)
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        prometheus = self.useFixture(Prometheus(listen))
        self.addOnException(lambda _exc: self.addDetail(
            'prometheus.log', testtools.content.text_content(
                prometheus.log()[-10000:])))

        rate = ('rate(nova_emulator_threads_emulator_on_vcpu_pcpus_seconds_'
                'total{domain="%s"}[10s])' % guest.name)
        found: list[dict] = []
        with spinguest.BlockCopyLoad(guest, directory) as load:
            deadline = time.monotonic() + QUERY_TIMEOUT
            while time.monotonic() < deadline:
                found = prometheus.query(rate)
                if found and float(found[0]['value'][1]) > 0.01:
                    break
                time.sleep(1)
        self.assertGreater(load.copies, 0)
        self.assertEqual(1, len(found), found)
        labels = found[0]['metric']
        self.assertEqual((guest.name, guest.uuid.lower(), '0'),
                         (labels['domain'], labels['uuid'], labels['vcpu']))
        # The block copies keep the emulator threads busy on the vCPU's
        # pCPU for more than 1% of the time.
        self.assertGreater(float(found[0]['value'][1]), 0.01)
        # The vCPU spins, so it ran (how much depends on what else runs
        # on this machine: nothing here keeps other work off its pCPU).
        (run,) = prometheus.query(
            'rate(nova_emulator_threads_vcpu_run_seconds_total{domain="%s"}'
            '[10s])' % guest.name)
        self.assertGreater(float(run['value'][1]), 0.0)
        # And the audit says why: the emulator threads are placed there.
        (finding,) = prometheus.query(
            'nova_emulator_threads_findings{domain="%s",check="emulator-on-'
            'vcpu-pcpu"}' % guest.name)
        self.assertEqual('1', finding['value'][1])
        self.assertEqual(guest.uuid.lower(), finding['metric']['uuid'])

