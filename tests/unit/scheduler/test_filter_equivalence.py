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

"""``EmulatorThreadsFilter`` gives the scheduler what NUMATopologyFilter does.

Both filters run over the same generated host states and requests, each
on its own copy of the host state (the filters write to it), through
``filter_all`` as the scheduler's filter handler calls them, and must
leave the same hosts, the same allocation candidates and the same
``limits['numa_topology']``.

The hosts are the engine's generated hosts (``tests.unit.virt.cases``:
1 to 8 cells, SMT and not, page sizes, partly pinned and used), as Nova's
``NUMATopology``, with one or two allocation candidates; some have no NUMA
topology, some PCI devices on some cells. The requests are the flavor
catalogue of ``tests.unit.virt.strategies`` (no NUMA, dedicated, mixed,
every thread policy, isolate and share, 1 to 4 cells, page sizes,
realtime), built by Nova's own ``numa_get_constraints``; some add a
thread policy in the image, a PCI device request or a physnet, which our
filter must leave to Nova's fitter. Each host topology object serves
several requests in turn, as nova-scheduler's host states do.
"""

import dataclasses
import logging
import random
from typing import Any

import fixtures
from nova import exception as nova_exception
from nova import objects
from nova.pci import stats as pci_stats
from nova.scheduler.filters import numa_topology_filter
from nova.virt import hardware as hardware_nova
from oslo_config import fixture as config_fixture
from oslo_utils.fixture import uuidsentinel as uuids

from nova_emulator_threads.scheduler import filters
from tests.unit import base
from tests.unit import nova_fakes
from tests.unit import nova_patch_fixture
from tests.unit.scheduler import fakes
from tests.unit.virt import cases
from tests.unit.virt import strategies

#: Generated host states; each meets REQUESTS_PER_HOST requests.
HOSTS = 2000
REQUESTS_PER_HOST = 2
SEED = 15


@dataclasses.dataclass
class Request:
    spec: Any
    kind: str


def _pci_stats(rng: random.Random, numa: Any) -> Any:
    """PCI stats with devices on some of the host's cells."""
    pools = objects.PciDevicePoolList(objects=[
        objects.PciDevicePool(
            product_id='1520', vendor_id='8086', numa_node=cell.id,
            count=rng.randint(1, 4), tags={'dev_type': 'type-PF'})
        for cell in numa.cells if rng.random() < 0.5])
    return pci_stats.PciDeviceStats(numa, stats=pools)


def _request(rng: random.Random) -> Request:
    """A valid request of the catalogue, sometimes with more."""
    while True:
        flavor = rng.choice(strategies.CATALOGUE)
        specs = dict(flavor.extra_specs)
        pagesize = rng.choice(strategies.PAGE_SIZES)
        if pagesize and {'hw:cpu_policy', 'hw:numa_nodes'} & set(specs):
            specs['hw:mem_page_size'] = pagesize
        image = None
        kind = 'flavor'
        roll = rng.random()
        if roll < 0.05:
            image = {'hw_cpu_thread_policy': 'require'}
            kind = 'image thread policy'
        try:
            spec = fakes.request_spec(flavor.vcpus, flavor.memory_mb, specs,
                                      image)
        except (nova_exception.Invalid, nova_exception.Forbidden):
            # A flavor and image Nova's API refuses.
            continue
        if 0.05 <= roll < 0.12:
            spec.pci_requests = objects.InstancePCIRequests(requests=[
                objects.InstancePCIRequest(
                    count=1, request_id=uuids.pci,
                    spec=[{'vendor_id': '8086', 'product_id': '1520'}])])
            kind = 'PCI'
        elif 0.12 <= roll < 0.15:
            spec.network_metadata = objects.NetworkMetadata(
                physnets={'physnet1'}, tunneled=False)
            kind = 'physnet'
        elif 0.15 <= roll < 0.2:
            spec.network_metadata = objects.NetworkMetadata(
                physnets=set(), tunneled=False)
        return Request(spec, kind)


def _host(rng: random.Random, index: int) -> tuple[Any, Any, str]:
    """A host topology (or None), its PCI stats, and its kind."""
    if rng.random() < 0.03:
        return None, None, 'no NUMA'
    _xml, _spec, host = cases.random_host(rng)
    numa = nova_fakes.nova_host(host)
    kind = '%d cells' % len(host.cells)
    if any(len(sib) > 1 for cell in host.cells for sib in cell.siblings):
        kind += ', SMT'
    stats = None
    if rng.random() < 0.15:
        stats = _pci_stats(rng, numa)
        kind += ', PCI'
    return numa, stats, kind


def _state(numa: Any, stats: Any, ratios: tuple[float, float],
           candidates: int, index: int) -> Any:
    state = fakes.host_state(numa, *ratios, pci_stats=stats)
    state.host = state.nodename = 'host%d' % index
    state.allocation_candidates = [
        {'mappings': {'': [getattr(uuids, 'rp%d' % i)]},
         'allocations': {}} for i in range(candidates)]
    return state


def _spawn_fails(numa: Any, spec: Any) -> bool:
    """Whether Nova's libvirt driver refuses the guest on this host.

    Realtime vCPUs under ``share`` need ``[compute] cpu_shared_set`` for
    the emulator threads; without one Nova fails the build at spawn.
    """
    requested = spec.numa_topology
    if (numa is None or requested is None
            or requested.emulator_threads_policy != 'share'):
        return False
    # Without cpu_dedicated_set and cpu_shared_set (the legacy layout)
    # every CPU is in both sets, and there is no shared set either.
    if any(cell.cpuset - cell.pcpuset for cell in numa.cells):
        return False
    return bool(hardware_nova.get_realtime_cpu_constraint(
        spec.flavor, objects.ImageMeta(properties=objects.ImageMetaProps())))


def _outcome(state: Any, passed: bool) -> tuple[Any, ...]:
    limits = state.limits.get('numa_topology')
    return (passed, state.allocation_candidates,
            None if limits is None else limits.obj_to_primitive())


class TestSameAsNUMATopologyFilter(base.TestCase):

    def setUp(self) -> None:
        super().setUp()
        self.useFixture(nova_patch_fixture.NovaPatchFixture(applied=True))
        self.useFixture(config_fixture.Config())
        # Thousands of decisions: the filters' debug messages would cost
        # most of the test's time.
        self.useFixture(fixtures.FakeLogger(level=logging.INFO))
        self.ours = filters.EmulatorThreadsFilter()
        self.nova = numa_topology_filter.NUMATopologyFilter()

    def test_same_hosts_candidates_and_limits(self) -> None:
        rng = random.Random(SEED)
        mismatches = []
        seen: dict[str, int] = {}
        # A loop, not cases: generated hosts and requests, all compared.
        for index in range(HOSTS):
            numa, stats, host_kind = _host(rng, index)
            ratios = (rng.choice((1.0, 4.0, 16.0)), rng.choice((1.0, 1.5)))
            candidates = rng.choice((1, 1, 2))
            for _ in range(REQUESTS_PER_HOST):
                request = _request(rng)
                ours = _state(numa, stats, ratios, candidates, index)
                nova = _state(numa, stats, ratios, candidates, index)
                got = _outcome(ours, bool(list(
                    self.ours.filter_all([ours], request.spec))))
                want = _outcome(nova, bool(list(
                    self.nova.filter_all([nova], request.spec))))
                if _spawn_fails(numa, request.spec):
                    # The one deliberate difference: Nova's filter passes a
                    # host its libvirt driver then refuses to build on.
                    want = (False, [], None)
                    seen['spawn would fail'] = (
                        seen.get('spawn would fail', 0) + 1)
                for key in (host_kind, request.kind,
                            'passed' if want[0] else 'rejected',
                            '%d candidates passed' % len(want[1])):
                    seen[key] = seen.get(key, 0) + 1
                if got != want:
                    mismatches.append('host %d (%s), %s request %r: ours %r, '
                                      'Nova %r' % (index, host_kind,
                                                   request.kind,
                                                   request.spec.flavor,
                                                   got, want))
        self.assertEqual([], mismatches[:5], '%d mismatches of %d' % (
            len(mismatches), HOSTS * REQUESTS_PER_HOST))
        # Not vacuous: each kind of host and request came up, and both
        # answers, with one and with two surviving candidates.
        # (A loop, not cases: counts of the one run above.)
        for key in ('passed', 'rejected', '1 candidates passed',
                    '2 candidates passed', 'no NUMA', 'PCI', 'physnet',
                    'image thread policy', 'spawn would fail', '1 cells',
                    '1 cells, SMT',
                    '4 cells, SMT', '8 cells', '2 cells, PCI'):
            self.assertGreater(seen.get(key, 0), 10, (key, seen))
