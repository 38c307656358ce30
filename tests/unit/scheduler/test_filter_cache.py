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

"""``EmulatorThreadsFilter`` converts each host topology once.

nova-scheduler keeps its host states between requests and replaces a
host's ``NUMATopology`` when the host changes; the filter's conversions
must follow the replacement and never answer from a stale topology.
"""

import gc

import fixtures
from oslotest import base

from nova_emulator_threads.scheduler import filters
from nova_emulator_threads.virt import nova_objects
from tests.unit import nova_patch_fixture
from tests.unit.scheduler import fakes as helpers


class TestConversionCache(base.BaseTestCase):

    def setUp(self) -> None:
        super().setUp()
        self.useFixture(nova_patch_fixture.NovaPatchFixture(applied=True))
        self.filt = filters.EmulatorThreadsFilter()
        self.converted: list[object] = []
        real = nova_objects.host_from_object

        def counting(numa, *args, **kwargs):
            self.converted.append(numa)
            return real(numa, *args, **kwargs)

        self.useFixture(fixtures.MonkeyPatch(
            'nova_emulator_threads.virt.nova_objects.host_from_object',
            counting))

    def test_converted_once_per_topology_object(self) -> None:
        state = helpers.host_state(helpers.two_cell_host())
        for _ in range(3):
            self.assertTrue(self.filt.host_passes(
                state, helpers.request_spec(2, 1024, helpers.ISOLATE)))
        self.assertEqual([state.numa_topology], self.converted)

    def test_replaced_topology_is_converted_again(self) -> None:
        state = helpers.host_state(helpers.two_cell_host())
        spec = helpers.request_spec(2, 1024, helpers.ISOLATE)
        self.assertTrue(self.filt.host_passes(state, spec))
        # The host fills up (as a claim or a compute node update leaves
        # it): two free pCPUs a cell, no room for 2 vCPUs and one more.
        state.numa_topology = helpers.two_cell_host(pinned=({0, 1},
                                                            {4, 5}))
        self.assertFalse(self.filt.host_passes(state, spec))
        # And emptied again.
        state.numa_topology = helpers.two_cell_host()
        self.assertTrue(self.filt.host_passes(state, spec))
        self.assertEqual(3, len(self.converted))

    def test_each_request_is_converted(self) -> None:
        state = helpers.host_state(helpers.two_cell_host(pinned=({0, 1},
                                                                 {4})))
        # Three free pCPUs in cell 1: 2 vCPUs and the emulator pCPU fit, 3
        # vCPUs and the emulator pCPU do not.
        self.assertTrue(self.filt.host_passes(
            state, helpers.request_spec(2, 1024, helpers.ISOLATE)))
        self.assertFalse(self.filt.host_passes(
            state, helpers.request_spec(3, 1024, helpers.ISOLATE)))
        self.assertTrue(self.filt.host_passes(
            state, helpers.request_spec(2, 1024, helpers.ISOLATE)))

    def test_entries_go_with_their_host_states(self) -> None:
        spec = helpers.request_spec(2, 1024, helpers.ISOLATE)
        before = len(filters._HOSTS)
        states = [helpers.host_state(helpers.two_cell_host())
                  for _ in range(5)]
        for state in states:
            self.filt.host_passes(state, spec)
        self.assertEqual(before + 5, len(filters._HOSTS))
        del states, state
        gc.collect()
        self.assertEqual(before, len(filters._HOSTS))
