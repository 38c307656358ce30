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

"""``EmulatorThreadsFilter`` reads each host topology object once.

nova-scheduler keeps its host states between requests and replaces a
host's ``NUMATopology`` when the host changes; the filter's views must
follow the replacement, never answer from a stale topology, and go when
the topology object goes.
"""

import gc
import sys
import threading
import weakref

import fixtures

from nova_emulator_threads.scheduler import filters
from nova_emulator_threads.virt import nova_objects
from tests.unit import base
from tests.unit import nova_patch_fixture
from tests.unit.scheduler import fakes as helpers


class TestConversionCache(base.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.useFixture(nova_patch_fixture.NovaPatchFixture(applied=True))
        self.filt = filters.EmulatorThreadsFilter()
        self.converted: list[object] = []
        real = nova_objects.host_view_of_object

        def counting(numa, *args, **kwargs):
            # Its id: a reference would keep the object and its entry.
            self.converted.append(id(numa))
            return real(numa, *args, **kwargs)

        self.useFixture(fixtures.MonkeyPatch(
            'nova_emulator_threads.virt.nova_objects.host_view_of_object',
            counting))

    def passes(self, state, spec) -> bool:
        # As the scheduler does for each request: placement's candidates
        # (the filter keeps those that fit, none if the host fails).
        state.allocation_candidates = [{'mappings': {}}]
        passed: bool = self.filt.host_passes(state, spec)
        return passed

    def test_converted_once_per_topology_object(self) -> None:
        state = helpers.host_state(helpers.two_cell_host())
        # A loop, not cases: the same request again, on one host state.
        for _ in range(3):
            self.assertTrue(self.passes(
                state, helpers.request_spec(2, 1024, helpers.ISOLATE)))
        self.assertEqual([id(state.numa_topology)], self.converted)

    def test_replaced_topology_is_converted_again(self) -> None:
        state = helpers.host_state(helpers.two_cell_host())
        spec = helpers.request_spec(2, 1024, helpers.ISOLATE)
        self.assertTrue(self.passes(state, spec))
        # The host fills up (as a claim or a compute node update leaves
        # it): two free pCPUs a cell, no room for 2 vCPUs and one more.
        state.numa_topology = helpers.two_cell_host(pinned=({0, 1},
                                                            {4, 5}))
        self.assertFalse(self.passes(state, spec))
        # And emptied again.
        state.numa_topology = helpers.two_cell_host()
        self.assertTrue(self.passes(state, spec))
        self.assertEqual(3, len(self.converted))

    def test_each_request_is_converted(self) -> None:
        state = helpers.host_state(helpers.two_cell_host(pinned=({0, 1},
                                                                 {4})))
        # Three free pCPUs in cell 1: 2 vCPUs and the emulator pCPU fit, 3
        # vCPUs and the emulator pCPU do not.
        self.assertTrue(self.passes(
            state, helpers.request_spec(2, 1024, helpers.ISOLATE)))
        self.assertFalse(self.passes(
            state, helpers.request_spec(3, 1024, helpers.ISOLATE)))
        self.assertTrue(self.passes(
            state, helpers.request_spec(2, 1024, helpers.ISOLATE)))

    def test_entries_go_with_their_host_states(self) -> None:
        spec = helpers.request_spec(2, 1024, helpers.ISOLATE)
        states = [helpers.host_state(helpers.two_cell_host())
                  for _ in range(5)]
        for state in states:
            self.passes(state, spec)
        numas = [weakref.ref(state.numa_topology) for state in states]
        self.assertEqual(set(), {id(ref()) for ref in numas} -
                         filters._HOSTS.live_ids())
        del states, state
        gc.collect()
        self.assertEqual([None] * 5, [ref() for ref in numas])
        # No entry is left whose topology object is gone.
        self.assertEqual(0, filters._HOSTS.dead_entries())

    def test_entry_goes_with_a_replaced_topology(self) -> None:
        state = helpers.host_state(helpers.two_cell_host())
        spec = helpers.request_spec(2, 1024, helpers.ISOLATE)
        self.passes(state, spec)
        old = weakref.ref(state.numa_topology)
        key = id(state.numa_topology)
        self.assertIn(key, filters._HOSTS.live_ids())
        # A claim by the scheduler replaces the host's topology object.
        state.numa_topology = helpers.two_cell_host(pinned=({0}, set()))
        gc.collect()
        self.assertIsNone(old())
        self.assertNotIn(key, filters._HOSTS.live_ids())


class TestThreads(base.TestCase):
    """Filters run in several threads share the views, and agree."""

    def setUp(self) -> None:
        super().setUp()
        self.useFixture(nova_patch_fixture.NovaPatchFixture(applied=True))
        interval = sys.getswitchinterval()
        self.addCleanup(sys.setswitchinterval, interval)
        # Switch threads as often as the interpreter can.
        sys.setswitchinterval(1e-6)

    def test_threads_agree_with_one_thread(self) -> None:
        pins = [({0, 1}, {4}), ({0, 1}, {4, 5}), (set(), set()),
                ({0, 1, 2}, {4, 5, 6}), ({0}, {4, 5, 6, 7})]
        specs = [helpers.request_spec(vcpus, 1024, helpers.ISOLATE)
                 for vcpus in (1, 2, 3)]

        def answers(numas: list[object]) -> list[list[bool]]:
            filt = filters.EmulatorThreadsFilter()
            got = []
            for spec in specs:
                # Each thread has its own host states (and candidates), on
                # the shared topology objects, as host states of one
                # scheduler share nothing else between requests.
                states = [helpers.host_state(numa) for numa in numas]
                passed = list(filt.filter_all(states, spec))
                got.append([state in passed for state in states])
            return got

        expected = answers([helpers.two_cell_host(pinned=pin)
                            for pin in pins])
        # New topology objects: the threads race to read them.
        numas = [helpers.two_cell_host(pinned=pin) for pin in pins] * 20
        results: list[list[list[bool]]] = []
        threads = [threading.Thread(
            target=lambda: results.append(answers(numas)))
            for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(8, len(results))
        # A loop, not cases: the answers of each thread of the one race.
        for got in results:
            self.assertEqual([row * 20 for row in expected], got)
