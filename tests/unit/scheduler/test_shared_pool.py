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

"""The scheduler reads a host's shared pool and a guest's realtime vCPUs
from Nova's objects (``scheduler.shared_pool.rejection``)."""

from typing import Any

import ddt
from nova import objects

from nova_emulator_threads.scheduler import shared_pool
from tests.unit import base
from tests.unit import nova_patch_fixture
from tests.unit.scheduler import fakes

SHARE = {'hw:cpu_policy': 'dedicated', 'hw:cpu_emulator_threads': 'share'}


def host(shared: set[int]) -> Any:
    """One cell: CPUs 0-3, ``shared`` of them in cpu_shared_set."""
    return fakes.host_state(objects.NUMATopology(cells=[
        objects.NUMACell(
            id=0, cpuset=shared, pcpuset=set(range(4)) - shared,
            memory=2048, cpu_usage=0, memory_usage=0, pinned_cpus=set(),
            siblings=[{cpu} for cpu in range(4)], mempages=[],
            network_metadata=objects.NetworkMetadata(
                physnets=set(), tunneled=False))]))


@ddt.ddt
class RejectionTestCase(base.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.useFixture(nova_patch_fixture.NovaPatchFixture(applied=True))

    def rejection(self, shared: set[int], **specs: str) -> str | None:
        return shared_pool.rejection(
            host(shared), fakes.request_spec(2, 1024, dict(
                SHARE, **specs)))

    def test_all_realtime_share_without_pool(self) -> None:
        self.assertEqual(
            "the instance has realtime vCPUs 0-1 and emulator threads "
            "policy 'share', which needs [compute] cpu_shared_set, and the "
            "host has no shared CPUs",
            self.rejection(set(), **{'hw:cpu_realtime': 'yes'}))

    def test_some_realtime_share_without_pool(self) -> None:
        # Nova's driver refuses any realtime vCPU under 'share' without
        # cpu_shared_set, not only all of them.
        self.assertIn('realtime vCPUs 1', self.rejection(
            set(), **{'hw:cpu_realtime': 'yes',
                      'hw:cpu_realtime_mask': '^0'}))

    @ddt.data(
        ({0}, {'hw:cpu_realtime': 'yes'}),
        (set(), {}),
        (set(), {'hw:cpu_realtime': 'yes',
                 'hw:cpu_emulator_threads': 'isolate'}),
    )
    @ddt.unpack
    def test_accepted(self, shared: set[int], specs: dict[str, str]) -> None:
        self.assertIsNone(self.rejection(shared, **specs))
