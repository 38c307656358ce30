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

"""Tests for ``virt.shared_pool``: which hosts can run a realtime
``share`` guest's emulator threads."""

import ddt

from nova_emulator_threads.virt import shared_pool
from tests.unit import base


@ddt.ddt
class SharedPoolTestCase(base.TestCase):

    # (cpuset, pcpuset) per cell -> the pool.
    @ddt.data(
        ([({0}, {1, 2, 3})], {0}),
        ([({0}, {1}), ({4}, {5})], {0, 4}),
        # Only cpu_dedicated_set: no pool.
        ([(set(), {0, 1, 2, 3})], set()),
        # Neither option (Nova's legacy layout): every CPU in both sets.
        ([({0, 1}, {0, 1})], set()),
    )
    @ddt.unpack
    def test_pool(self, cells: list[tuple[set[int], set[int]]],
                  pool: set[int]) -> None:
        self.assertEqual(frozenset(pool), shared_pool.shared_pool_cpus(cells))

    def test_realtime_share_without_pool_is_rejected(self) -> None:
        reason = shared_pool.missing_shared_pool('share', {0, 1}, set())
        self.assertEqual(
            "the instance has realtime vCPUs 0-1 and emulator threads "
            "policy 'share', which needs [compute] cpu_shared_set, and the "
            "host has no shared CPUs", reason)

    @ddt.data(
        ('share', {0}, {3}),        # has a pool
        ('share', set(), set()),    # no realtime vCPU: floats over vCPUs
        ('isolate', {0, 1}, set()),  # own pCPU
        (None, {0}, set()),
    )
    @ddt.unpack
    def test_accepted(self, policy: str | None, realtime: set[int],
                      pool: set[int]) -> None:
        self.assertIsNone(shared_pool.missing_shared_pool(
            policy, realtime, pool))
