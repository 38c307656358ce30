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

"""``EmulatorThreadsFilter`` enabled instead of ``NUMATopologyFilter``.

The scheduler runs with ``enabled_filters`` holding our filter and not
Nova's. For every scheduling request the real scheduler makes, the same
chain with ``NUMATopologyFilter`` in our filter's place runs first on the
same host states (their allocation candidates and limits put back
after), and the hosts that pass, with their allocation candidates and
``limits['numa_topology']``, must be the same. Servers of different
policies boot one after the other, so later requests meet partly pinned
hosts, and the guests land where Nova's filter would have let them.
"""

from typing import Any

from nova.scheduler.filters import numa_topology_filter

from tests.functional import base


def _left(hosts: list[Any]) -> list[tuple[Any, ...]]:
    out = []
    for host in hosts:
        limits = host.limits.get('numa_topology')
        out.append((host.host, host.allocation_candidates,
                    limits and limits.obj_to_primitive()))
    return sorted(out, key=lambda item: item[0])


class FilterAloneTest(base.EmulatorThreadsTestBase):

    #: Ours alone: NUMATopologyFilter is not enabled.
    ADDITIONAL_FILTERS = ['EmulatorThreadsFilter']

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
            assert 'NUMATopologyFilter' not in names, names
            ours = names.index('EmulatorThreadsFilter')
            saved = [(h, list(h.allocation_candidates), dict(h.limits))
                     for h in hosts]
            manager.enabled_filters = (
                chain[:ours] +
                [numa_topology_filter.NUMATopologyFilter()] +
                chain[ours + 1:])
            try:
                nova = _left(list(original(manager, hosts, spec_obj,
                                           index)))
            finally:
                manager.enabled_filters = chain
            for host, candidates, limits in saved:
                host.allocation_candidates = candidates
                host.limits = limits
            passed = list(original(manager, hosts, spec_obj, index))
            requests.append({
                'flavor': (spec_obj.flavor.vcpus,
                           dict(spec_obj.flavor.extra_specs)),
                'offered': sorted(h.host for h in hosts),
                'ours': _left(passed), 'nova': nova})
            return passed
        return get_filtered_hosts

    def test_same_hosts_candidates_and_limits_as_nova(self) -> None:
        outcomes = self.boot_filter_flavors()
        self.assertGreater(len(self.requests), 10)
        # A loop, not cases: every request of the one run above, compared.
        for request in self.requests:
            self.assertEqual(request['nova'], request['ours'], request)
        # Not vacuous: hosts placement offered were cut, some requests
        # found a host and others none.
        self.assertTrue(any(len(r['ours']) < len(r['offered'])
                            for r in self.requests))
        self.assertTrue(any(r['ours'] and r['ours'][0][2]
                            for r in self.requests))
        self.assertIn('ACTIVE', outcomes)
        self.assertIn('ERROR', outcomes)
