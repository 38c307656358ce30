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

"""Many isolate servers at once against one host with room for some.

Every create request is sent before any build finishes, so the
scheduler decides on host state that the compute host's claims have not
caught up with, and the compute host's NUMA claims (run under the
resource tracker's lock) are what keeps two guests off one pCPU. Exactly
as many servers go ACTIVE as fit; the others end in ERROR, refused by
the scheduler (NoValidHost) or by the claim and then out of hosts to
reschedule to. Afterwards the host's pinned CPUs, the guests' NUMA
topologies, their ``<cputune>`` and placement all agree, and deleting the
guests gives everything back.
"""

import collections
import time
from typing import Any

from testtools import content

from tests.functional import base

#: How a server that did not fit may end: the scheduler found no host;
#: the compute host's claim refused it (a forced host: nowhere else to
#: go); or the claim refused it and the reschedule found no host left.
NO_VALID_HOST = 'No valid host was found'
CLAIM_REFUSED = ('Insufficient compute resources: Requested instance NUMA '
                 'topology cannot fit the given host NUMA topology')
RETRIES_EXCEEDED = 'Exceeded maximum number of retries'
FAULTS = (NO_VALID_HOST, CLAIM_REFUSED, RETRIES_EXCEEDED)

#: Seconds to wait for every build to finish.
SETTLE_TIMEOUT = 120


class ConcurrentIsolateBootTest(base.EmulatorThreadsTestBase):

    def boot_all_at_once(self, flavor_id: str, count: int,
                         az: str | None = None) -> list[dict[str, Any]]:
        """POST ``count`` servers without waiting; then wait for each to
        be ACTIVE or ERROR (with its fault).
        """
        requests = [
            self.api.post_server({'server': self._build_server(
                name='guest-%d' % index, flavor_id=flavor_id,
                networks='none', az=az)})
            for index in range(count)]
        deadline = time.monotonic() + SETTLE_TIMEOUT
        settled: dict[str, dict[str, Any]] = {}
        while len(settled) < count:
            for request in requests:
                if request['id'] in settled:
                    continue
                server = self.api.get_server(request['id'])
                if server['status'] == 'ACTIVE' or (
                        server['status'] == 'ERROR' and 'fault' in server):
                    settled[server['id']] = server
            if time.monotonic() > deadline:
                self.fail('builds still running after %d s: %s' % (
                    SETTLE_TIMEOUT, [self.api.get_server(r['id'])['status']
                                     for r in requests
                                     if r['id'] not in settled]))
            # Eventlet's sleep under Nova's functional base: the builds run.
            time.sleep(0.2)
        return [settled[request['id']] for request in requests]

    def assert_claims_agree(self, hostname: str,
                            active: list[dict[str, Any]],
                            vcpus: int) -> None:
        """No pCPU twice; host, guests, libvirt and placement agree."""
        owner: dict[int, str] = {}
        for server in active:
            numa = self.instance_numa(server)
            self.assertEqual('isolate', numa.emulator_threads_policy)
            reserved = set(numa.cells[0].cpuset_reserved or ())
            self.assertEqual(1, len(reserved))
            pins = set(numa.cpu_pinning)
            self.assertEqual(vcpus, len(pins))
            # What libvirt runs is what the claim recorded.
            tune = self.cputune(server, hostname)
            self.assertEqual(reserved, tune['emulatorpin'])
            self.assertEqual(pins, set().union(*tune['vcpupin'].values()))
            for pcpu in pins | reserved:
                self.assertNotIn(pcpu, owner, 'pCPU %d given to %s and %s'
                                 % (pcpu, owner.get(pcpu), server['name']))
                owner[pcpu] = server['name']
            self.assertEqual({'PCPU': vcpus + 1, 'MEMORY_MB': 512,
                              'DISK_GB': 1},
                             self.allocation(server['id'], hostname))
        # The compute node's NUMA topology holds exactly the guests' pins
        # and reservations, and placement exactly their PCPU.
        self.assertEqual(set(owner), self.pinned(hostname))
        self.assertEqual(len(active) * (vcpus + 1),
                         self.usages(hostname)['PCPU'])

    def check_one_host(self, hostname: str, vcpus: int, count: int,
                       fit: int, az: str | None = None) -> Any:
        flavor = self.flavor(vcpus=vcpus, memory_mb=512, **base.ISOLATE)
        servers = self.boot_all_at_once(flavor, count, az)
        by_status = collections.defaultdict(list)
        for server in servers:
            by_status[server['status']].append(server)
        self.assertEqual(fit, len(by_status['ACTIVE']),
                         [(s['name'], s['status'], s.get('fault'))
                          for s in servers])
        self.assertEqual(count - fit, len(by_status['ERROR']))
        endings = collections.Counter()
        for server in by_status['ERROR']:
            message = server['fault']['message']
            self.assertTrue(any(fault in message for fault in FAULTS),
                            message)
            endings[message] += 1
            # A failed server holds nothing.
            self.assertEqual({}, self._get_allocations_by_server_uuid(
                server['id']))
        self.addDetail('failures', content.text_content(repr(dict(endings))))
        self.assert_claims_agree(hostname, by_status['ACTIVE'], vcpus)

        # Deleting every server gives every pCPU back.
        for server in servers:
            self._delete_server(server)
        self.assertEqual(set(), self.pinned(hostname))
        self.assertEqual(0, self.usages(hostname)['PCPU'])
        return endings

    def test_numa_cells_are_the_limit(self) -> None:
        # Two cells of three dedicated pCPUs: placement has room for three
        # 1-vCPU isolate guests (2 PCPU each), the cells for two (a guest's
        # vCPU and emulator pCPU share its cell, leaving one pCPU).
        host = self.start_host('host1', dedicated='0-5', cells=2, cores=3)
        self.check_one_host(host, vcpus=1, count=6, fit=2)

    def test_placement_is_the_limit(self) -> None:
        # One cell of eight dedicated pCPUs: two 3-vCPU isolate guests
        # (4 PCPU each) fit by any count.
        host = self.start_host('host1', dedicated='0-7', cells=1, cores=8)
        self.check_one_host(host, vcpus=3, count=5, fit=2)

    def test_shared_set_beside(self) -> None:
        # cpu_shared_set takes CPU 0 and 4; three dedicated pCPUs per cell
        # hold one 2-vCPU isolate guest each.
        host = self.start_host('host1', dedicated='1-3,5-7', shared='0,4',
                               cells=2, cores=4)
        self.check_one_host(host, vcpus=2, count=6, fit=2)

    def test_claims_hold_without_the_scheduler_filters(self) -> None:
        # 'nova:host1' forces the host: the scheduler runs no filter, only
        # placement's count (three 1-vCPU isolate guests) stands before the
        # compute host, whose NUMA claims alone must stop the third.
        host = self.start_host('host1', dedicated='0-5', cells=2, cores=3)
        endings = self.check_one_host(host, vcpus=1, count=6, fit=2,
                                      az='nova:host1')
        # Placement let a third through (and, each time a claim failed and
        # gave its allocation back, one more): the claims refused them.
        self.assertGreaterEqual(
            sum(n for message, n in endings.items()
                if CLAIM_REFUSED in message), 1, endings)
