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


"""The Prometheus collector on a recorded host whose counters move
between scrapes."""

import json
import os
import re

from oslotest import base
from prometheus_client import exposition
from prometheus_client import parser as prom_parser
from prometheus_client import registry as prom_registry

from nova_emulator_threads.host import metrics
from nova_emulator_threads.host import snapshot
from nova_emulator_threads.host import sysfs
from tests.unit.host import fakehost

S = 1000000000
MS = 1000000


class CollectorTestCase(base.BaseTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.tree = self.useFixture(fakehost.HostTree())
        # The chapter's instance-0000001d: 4 vCPUs on 34, 14, 10, 30 and
        # the emulator threads floating over all four.
        self.domains = [fakehost.make_domain(
            fakehost.chapter_1d(self.tree), '0-39')]
        self.collector = metrics.EmulatorThreadsCollector(
            lambda: fakehost.snapshot_of(self.tree, self.domains),
            self.tree.proc_root)
        self.registry = prom_registry.CollectorRegistry(auto_describe=False)
        self.registry.register(self.collector)

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        text = exposition.generate_latest(self.registry).decode()
        return {(sample.name, tuple(sorted(sample.labels.items()))):
                sample.value
                for family in prom_parser.text_string_to_metric_families(text)
                for sample in family.samples}

    def advance(self, seconds: float, ran: dict[int, int],
                waited: dict[int, int]) -> None:
        self.tree.set_uptime(self.tree.uptime + seconds)
        for tid, value in ran.items():
            self.tree.set_sched(fakehost.PID_1D, tid, value,
                                waited.get(tid, 0))

    def test_counters_add_up_between_scrapes(self) -> None:
        uuid = fakehost.UUID_1D
        vcpu0 = (('domain', 'instance-0000001d'), ('uuid', uuid),
                 ('vcpu', '0'))
        guest = (('domain', 'instance-0000001d'), ('uuid', uuid))
        first = self.scrape()
        self.assertEqual(0.0, first[(
            'nova_emulator_threads_vcpu_run_seconds_total', vcpu0)])
        # The emulator threads (main thread 0.4 s, vnc_worker 0.2 s) may
        # run on the four vCPU pCPUs: a quarter of each on vCPU 0's.
        self.advance(6, {73517: 400 * MS, 73540: 200 * MS,
                         73535: 5 * S}, {73535: 300 * MS})
        second = self.scrape()
        self.assertEqual(5.0, second[(
            'nova_emulator_threads_vcpu_run_seconds_total', vcpu0)])
        self.assertEqual(0.3, second[(
            'nova_emulator_threads_vcpu_wait_seconds_total', vcpu0)])
        self.assertAlmostEqual(0.15, second[(
            'nova_emulator_threads_emulator_on_vcpu_pcpus_seconds_total',
            vcpu0)])
        self.assertAlmostEqual(0.6, second[(
            'nova_emulator_threads_emulator_cpu_seconds_total', guest)])
        # The worker exits: the counters do not go down.
        self.tree.remove_thread(fakehost.PID_1D, 73540)
        self.advance(6, {73517: 600 * MS}, {})
        third = self.scrape()
        self.assertAlmostEqual(0.8, third[(
            'nova_emulator_threads_emulator_cpu_seconds_total', guest)])
        # The audit's findings, with the guest's UUID.
        self.assertEqual(1.0, third[(
            'nova_emulator_threads_findings',
            (('check', 'emulator-on-vcpu-pcpu'), *guest))])

    def test_stopped_guest_leaves(self) -> None:
        self.assertIn('instance-0000001d', str(self.scrape()))
        self.domains.clear()
        after = self.scrape()
        self.assertNotIn('instance-0000001d', str(after))


class DashboardTestCase(base.BaseTestCase):
    """The Grafana dashboard asks for the metrics the collector serves."""

    def test_dashboard_metrics_exist(self) -> None:
        path = os.path.join(os.path.dirname(__file__), '..', '..', '..',
                            'etc', 'grafana', 'nova-emulator-threads.json')
        with open(path) as handle:
            dashboard = json.load(handle)
        exprs = [target['expr'] for panel in dashboard['panels']
                 for target in panel['targets']]
        used = set(re.findall(r'nova_emulator_threads_\w+', ' '.join(exprs)))
        collector = metrics.EmulatorThreadsCollector(
            lambda: snapshot.HostSnapshot(
                cpus=sysfs.HostCPUs(online=frozenset({0}),
                                    isolated=frozenset()),
                machine_cpuset=None, guests=()), '/proc')
        served = set()
        for family in collector.collect():
            served |= {family.name + ('_total' if family.type == 'counter'
                                      else '')}
        self.assertEqual(5, len(used))
        self.assertLessEqual(used, served)
