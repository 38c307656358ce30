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

"""A fixture that gives a test the seams of ``nova_patch`` in a known state.

``nova_patch.apply()`` decides once per process; importing our validator,
filter or driver module applies the seams. Tests of the decision itself
need it undone first, and every test must leave the process as it found
it for the tests that follow.
"""

from typing import Any

import fixtures
from nova import objects

from nova_emulator_threads import nova_patch

objects.register_all()


class NovaPatchFixture(fixtures.Fixture):
    """Start with the seams undone (``applied=False``) or applied."""

    def __init__(self, applied: bool) -> None:
        super().__init__()
        self.applied = applied

    def _setUp(self) -> None:
        was_applied = nova_patch.is_applied()
        nova_patch.revert()
        self.addCleanup(self._restore, was_applied)
        if self.applied:
            nova_patch.apply()

    @staticmethod
    def _restore(was_applied: bool) -> None:
        nova_patch.revert()
        if was_applied:
            nova_patch.apply()


def flavor(vcpus: int = 2, **extra_specs: str) -> Any:
    """A Nova flavor; keys use '__' for ':'."""
    return objects.Flavor(
        vcpus=vcpus, memory_mb=1024, root_gb=1, ephemeral_gb=0, swap=0,
        extra_specs={key.replace('__', ':'): value
                     for key, value in extra_specs.items()})
