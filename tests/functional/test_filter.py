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

"""``EmulatorThreadsFilter`` next to ``NUMATopologyFilter`` changes nothing.

Several hosts of different shapes, servers of different policies booted
one after the other (so later requests meet partly pinned hosts). For
every scheduling request the real scheduler makes, the hosts that pass
the configured chain (our filter, then Nova's) are compared with the
hosts that pass the same chain without our filter, on the same host
states: they must be the same hosts.
"""

from typing import Any

from tests.functional import base


class FilterEquivalenceTest(base.EmulatorThreadsTestBase):

    def setUp(self) -> None:
        super().setUp()
        self.start_filter_hosts()
        self.requests = self.spy_filtered_hosts(self._spy)

    @staticmethod
    def _spy(original: Any, requests: list[dict[str, Any]]) -> Any:

        def get_filtered_hosts(manager: Any, hosts: Any, spec_obj: Any,
                               index: int = 0) -> Any:
            hosts = list(hosts)
            chain = manager.enabled_filters
            names = [type(f).__name__ for f in chain]
            assert names.index('EmulatorThreadsFilter') < names.index(
                'NUMATopologyFilter'), names
            ours = chain[names.index('EmulatorThreadsFilter')]
            passed = list(original(manager, hosts, spec_obj, index))
            manager.enabled_filters = [
                f for f in chain if f is not ours]
            try:
                without = list(original(manager, hosts, spec_obj, index))
            finally:
                manager.enabled_filters = chain
            requests.append({
                'flavor': (spec_obj.flavor.vcpus,
                           dict(spec_obj.flavor.extra_specs)),
                'candidates': sorted(h.host for h in hosts),
                'with_ours': sorted(h.host for h in passed),
                'nova_alone': sorted(h.host for h in without),
                'ours_rejected': sorted(
                    h.host for h in hosts
                    if not ours.host_passes(h, spec_obj)),
            })
            return passed
        return get_filtered_hosts

    def test_same_hosts_as_numa_topology_filter_alone(self) -> None:
        outcomes = self.boot_filter_flavors()
        self.assertGreater(len(self.requests), 10)
        # A loop, not cases: every request of the one run above, compared.
        for request in self.requests:
            self.assertEqual(request['nova_alone'], request['with_ours'],
                             request)
        # Not vacuous: our filter did cut hosts placement had offered, and
        # some requests still found a host while others found none.
        self.assertTrue(any(r['ours_rejected'] for r in self.requests))
        self.assertIn('ACTIVE', outcomes)
        self.assertIn('ERROR', outcomes)
