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

"""A pinned multi-cell flavor that Nova 34's fitter leaves partly unpinned.

Host: three cells of four CPUs; ``cpu_dedicated_set=0,2,4,9`` gives cell 0
two pCPUs and cells 1 and 2 one each. Flavor: ``hw:numa_cpus.0=0``,
``.1=1``, ``.2=2,3``. It fits (guest cell 2 on host cell 0), but Nova's
fitter, whose fit cache is keyed on guest cell ids it rewrites, returns
guest cell 2 on host cell 0 with no ``cpu_pinning``. These tests record
what Nova does end to end with that, with Nova's own driver and filter
and with ours, which must decide the same.
"""

from typing import Any

from nova_emulator_threads.virt import fit_result
from nova_emulator_threads.virt import nova_objects
from tests.functional import base

SPECS = {'hw__cpu_policy': 'dedicated', 'hw__numa_nodes': '3',
         'hw__numa_cpus.0': '0', 'hw__numa_cpus.1': '1',
         'hw__numa_cpus.2': '2,3', 'hw__numa_mem.0': '512',
         'hw__numa_mem.1': '512', 'hw__numa_mem.2': '512'}


class _FitCacheCase(base.EmulatorThreadsTestBase):

    def boot_on_small_cells(self) -> dict[str, Any]:
        self.start_host('host1', dedicated='0,2,4,9', shared='1,3,5,10',
                        cells=3, cores=4)
        flavor = self.flavor(vcpus=4, memory_mb=1536, **SPECS)
        return self.boot(flavor)

    def assert_nova_decision(self, server: dict[str, Any]) -> None:
        numa = self.instance_numa(server)
        # Guest cell 2 lands on host cell 0 without a single pin ...
        self.assertEqual([1, 2, 0], [cell.id for cell in numa.cells])
        self.assertEqual([{0: 4}, {1: 9}, None],
                         [cell.cpu_pinning or None for cell in numa.cells])
        tune = self.cputune(server, 'host1')
        # ... so its "dedicated" vCPUs float over host cell 0's shared
        # CPUs, and the emulator threads over every vCPU's set.
        self.assertEqual({0: {4}, 1: {9}, 2: {1, 3}, 3: {1, 3}},
                         tune['vcpupin'])
        self.assertEqual({1, 3, 4, 9}, tune['emulatorpin'])
        # Placement charges four PCPU; the host marks two as pinned.
        self.assertEqual(4, self.allocation(server['id'], 'host1')['PCPU'])
        self.assertEqual({4, 9}, self.pinned('host1'))


class TestNovaAlone(_FitCacheCase):
    """Upstream Nova: its driver, NUMATopologyFilter alone."""

    ADDITIONAL_FILTERS = ['NUMATopologyFilter']

    def _setup_compute_service(self) -> None:
        self.flags(compute_driver='libvirt.LibvirtDriver')

    def test_boots_with_unpinned_dedicated_vcpus(self) -> None:
        self.assert_nova_decision(self.boot_on_small_cells())


class TestWithExtension(_FitCacheCase):
    """Our driver and EmulatorThreadsFilter alone decide as Nova does."""

    ADDITIONAL_FILTERS = ['EmulatorThreadsFilter']

    def test_boots_with_unpinned_dedicated_vcpus(self) -> None:
        server = self.boot_on_small_cells()
        self.assert_nova_decision(server)
        # The engine returns Nova's topology and names what is unpinned.
        fitted = nova_objects.instance_from_object(
            self.instance_numa(server), frozenset())
        self.assertEqual({2: frozenset({2, 3})},
                         fit_result.unpinned_dedicated_vcpus(fitted))
