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


"""``measure`` and ``audit`` as Prometheus metrics.

A prometheus-client collector: every scrape reads the host (a
``snapshot``), samples the guests' threads (``measure.sample``), compares
the sample with the previous scrape's (``measure.compare``) and adds what
happened in between to counters it keeps, and audits the snapshot:

``nova_emulator_threads_vcpu_run_seconds_total{domain,uuid,vcpu}``
    time the vCPU's thread ran;
``nova_emulator_threads_vcpu_wait_seconds_total{domain,uuid,vcpu}``
    time it waited runnable for a CPU;
``nova_emulator_threads_emulator_cpu_seconds_total{domain,uuid}``
    CPU time of the guest's emulator threads (QEMU main loop, I/O
    threads, workers, vhost), wherever they ran;
``nova_emulator_threads_emulator_on_vcpu_pcpus_seconds_total{domain,uuid,vcpu}``
    the part of it spent on the vCPU's pCPUs (attributed as
    ``measure`` says);
``nova_emulator_threads_findings{domain,uuid,check}``
    the audit's findings now, by check (gauge).

``uuid`` is the libvirt domain UUID, which for a Nova guest is the
instance's UUID. The counters are the collector's own sums of the
differences between scrapes, so a thread that exits takes nothing away
(a plain sum of the threads' totals would go down and look like a reset
to Prometheus); they start at zero when the exporter starts, and a
guest's series go away when it stops.
"""

import threading
import typing
from collections.abc import Callable, Iterator

from prometheus_client import core

from nova_emulator_threads.host import audit
from nova_emulator_threads.host import measure
from nova_emulator_threads.host import snapshot

PREFIX = 'nova_emulator_threads_'

#: (domain, uuid) and (domain, uuid, vcpu) label values.
GuestKey = tuple[str, str]
VCPUKey = tuple[str, str, str]


class EmulatorThreadsCollector:
    """The metrics of one host (see the module docstring)."""

    def __init__(self, read_host: Callable[[], snapshot.HostSnapshot],
                 proc_root: str = '/proc',
                 cpu_shared_set: frozenset[int] | None = None) -> None:
        """:param read_host: reads the host now (``take_snapshot``)"""
        self._read_host = read_host
        self._proc_root = proc_root
        self._cpu_shared_set = cpu_shared_set
        self._lock = threading.Lock()
        self._last: measure.HostSample | None = None
        self.vcpu_run: dict[VCPUKey, float] = {}
        self.vcpu_wait: dict[VCPUKey, float] = {}
        self.emulator_on_vcpu: dict[VCPUKey, float] = {}
        self.emulator_cpu: dict[GuestKey, float] = {}
        self.findings: dict[tuple[str, str, str], int] = {}

    def update(self) -> None:
        """Read the host and add what happened since the last read."""
        with self._lock:
            host = self._read_host()
            sample = measure.sample(host, self._proc_root)
            report = audit.audit(host, self._cpu_shared_set)
            guests = {(g.name, g.domain.uuid) for g in host.guests}
            for totals in (self.vcpu_run, self.vcpu_wait,
                           self.emulator_on_vcpu):
                for key in [k for k in totals if k[:2] not in guests]:
                    del totals[key]
            for gkey in [k for k in self.emulator_cpu if k not in guests]:
                del self.emulator_cpu[gkey]
            # The first read only sets every series at zero.
            self._add(measure.compare(
                self._last or sample, sample,
                max(sample.uptime - (self._last or sample).uptime, 0.0)))
            self._last = sample
            uuids = {g.name: g.domain.uuid for g in host.guests}
            self.findings = {}
            for finding in report.findings:
                key = (finding.domain, uuids.get(finding.domain, ''),
                       finding.code)
                self.findings[key] = self.findings.get(key, 0) + 1

    def _add(self, measured: measure.Measurement) -> None:
        for guest in measured.guests:
            key = (guest.domain, guest.uuid)
            self.emulator_cpu[key] = (self.emulator_cpu.get(key, 0.0) +
                                      guest.emulator_cpu_s)
            for vcpu in guest.vcpus:
                vkey = (guest.domain, guest.uuid, str(vcpu.vcpu))
                for totals, value in (
                        (self.vcpu_run, vcpu.ran_s),
                        (self.vcpu_wait, vcpu.waited_s),
                        (self.emulator_on_vcpu, vcpu.emulator_on_pcpus_s)):
                    totals[vkey] = totals.get(vkey, 0.0) + value

    def collect(self) -> Iterator[core.Metric]:
        """What prometheus-client calls on every scrape."""
        self.update()
        vcpu_labels = ['domain', 'uuid', 'vcpu']
        for name, doc, totals in (
                ('vcpu_run_seconds', 'Time the vCPU thread ran on a CPU.',
                 self.vcpu_run),
                ('vcpu_wait_seconds', 'Time the vCPU thread waited runnable '
                 'for a CPU.', self.vcpu_wait),
                ('emulator_on_vcpu_pcpus_seconds', "CPU time of the guest's "
                 "emulator threads on the vCPU's pCPUs.",
                 self.emulator_on_vcpu)):
            family = core.CounterMetricFamily(PREFIX + name, doc,
                                              labels=vcpu_labels)
            for key, value in sorted(totals.items()):
                family.add_metric(list(key), value)
            yield family
        family = core.CounterMetricFamily(
            PREFIX + 'emulator_cpu_seconds', "CPU time of the guest's "
            'emulator threads (main loop, I/O threads, workers, vhost).',
            labels=['domain', 'uuid'])
        for gkey, value in sorted(self.emulator_cpu.items()):
            family.add_metric(list(gkey), value)
        yield family
        gauge = core.GaugeMetricFamily(
            PREFIX + 'findings', 'Findings of the audit now, by check.',
            labels=['domain', 'uuid', 'check'])
        for fkey, count in sorted(self.findings.items()):
            gauge.add_metric(list(fkey), count)
        yield gauge

    def describe(self) -> typing.Iterable[core.Metric]:
        # No read of the host at registration: the names are fixed.
        return ()
