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

"""The scheduler part of ``tools/bench.py``: filters over many hosts.

The cloud: compute hosts of two sockets of 16 cores with 2 threads (64
CPUs), the first core of each socket (both threads) for the host and
unpinned guests (``cpu_shared_set``), the other 60 for pinned guests
(``cpu_dedicated_set``), 96 GiB a socket. Each host is filled as a compute
host fills up: guests of a mix of pinned flavors, each placed where the
fitter puts it and claimed, until the host reaches its target pinned
utilisation, drawn for a busy cloud (19 hosts in 20 are 85 to 100 % pinned).

The host states are built as nova-scheduler's ``HostManager`` builds them:
each host's ``NUMATopology`` deserialized from the JSON the compute node
stored, one allocation candidate per host. The requests are built by
Nova's ``numa_get_constraints``: a big guest (2 cells, 16 vCPUs, isolate;
few hosts have room) and a small one (1 cell, 4 vCPUs; most hosts do).

Each request runs ``EmulatorThreadsFilter`` alone and
``NUMATopologyFilter`` alone on the same host states, one after the
other, and what they leave must be the same: the same hosts, each with
the same allocation candidates and ``limits['numa_topology']``. The first
request runs on host states whose objects are all new (our filter reads
each host's topology then); the next ones on the same host states, as a
scheduler's host states persist between requests. One more request runs
both filters, ours first, as earlier releases set them up.
"""

import gc
import json
import random
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
import warnings
from collections.abc import Sequence
from typing import Any

with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    from nova import objects
    from nova.scheduler import host_manager
    from nova.scheduler.filters import numa_topology_filter
    from nova.virt import hardware as nova_hardware

import bench_common

from nova_emulator_threads.scheduler import filters
from nova_emulator_threads.virt import claims
from nova_emulator_threads.virt import guest_topology
from nova_emulator_threads.virt import hardware
from nova_emulator_threads.virt import topology
from nova_emulator_threads.virt.libvirt import capabilities

#: How many requests on the same host states each configuration times
#: (the table shows medians).
REQUESTS = 3
#: Distinct host fills; hosts beyond that many repeat a fill, each with its
#: own objects, as each compute node stores its own.
FILLS = 500
SEED = 20261121

SHARED_SET = '0,16,32,48'
DEDICATED_SET = '1-15,17-31,33-47,49-63'
ISOLATE = bench_common.ISOLATE
SHARE = bench_common.SHARE
TWO_NODES = bench_common.TWO_NODES
#: Flavors already running: (weight, vCPUs, extra specs).
RUNNING = (
    (30, 2, SHARE), (25, 4, SHARE), (15, 4, ISOLATE),
    (10, 8, SHARE), (8, 8, ISOLATE),
    (7, 8, dict(SHARE, **TWO_NODES)),
    (5, 16, dict(ISOLATE, **TWO_NODES)),
)
#: The requests: (name, vCPUs, memory MiB, extra specs).
REQUESTS_SPECS = (
    ('big: 2-cell 16 vCPU isolate', 16, 32768, dict(ISOLATE, **TWO_NODES)),
    ('small: 1-cell 4 vCPU isolate', 4, 8192, ISOLATE),
)


def _fill(host: topology.HostTopology,
          rng: random.Random) -> topology.HostTopology:
    """Place running guests until the host reaches its target fill."""
    total = sum(len(cell.pcpuset) for cell in host.cells)
    # A busy cloud: 19 hosts in 20 85 to 100 % pinned, the others 40 to
    # 85 %.
    if rng.random() < 0.95:
        target = rng.uniform(0.85, 1.0)
    else:
        target = rng.uniform(0.4, 0.85)
    weights = [weight for weight, _vcpus, _specs in RUNNING]
    misses = 0
    while misses < 5:
        used = sum(len(cell.pinned_cpus) for cell in host.cells)
        if used >= target * total:
            break
        _weight, vcpus, specs = rng.choices(RUNNING, weights)[0]
        inst = guest_topology.instance_topology_from_flavor(
            vcpus, vcpus * 2048, specs)
        fitted = inst and hardware.fit_instance_to_host(host, inst)
        if fitted is None:
            misses += 1
            continue
        host = claims.numa_usage_from_instance(host, fitted)
    return host


def fills(count: int) -> list[str]:
    """``count`` filled hosts, as the JSON a compute node stores."""
    rng = random.Random(SEED)
    empty = capabilities.host_topology_from_caps(
        bench_common.caps_xml(2, 16, 2, memory_mib=98304), DEDICATED_SET,
        SHARED_SET)
    return [bench_common.nova_host(_fill(empty, rng))._to_json()
            for _ in range(count)]


def host_states(count: int, stored: Sequence[str]) -> list[Any]:
    """``count`` host states, as nova-scheduler's HostManager builds
    them.
    """
    states = []
    for index in range(count):
        state = host_manager.HostState('compute%05d' % index,
                                       'compute%05d' % index, 'cell1')
        state.uuid = '00000000-0000-0000-0000-%012d' % index
        state.numa_topology = objects.NUMATopology.obj_from_db_obj(
            stored[index % len(stored)])
        state.cpu_allocation_ratio = 16.0
        state.ram_allocation_ratio = 1.0
        state.limits = {}
        state.pci_stats = None
        states.append(state)
    return states


def _candidates(state: Any, spec: Any) -> list[dict[str, Any]]:
    """Placement's allocation candidate for the request on ``state``."""
    return [{'allocations': {state.uuid: {'resources': {
        'PCPU': spec.flavor.vcpus + 1, 'MEMORY_MB': spec.flavor.memory_mb,
        'DISK_GB': 20}}}, 'mappings': {'': [state.uuid]}}]


def request_spec(vcpus: int, memory_mb: int,
                 extra_specs: dict[str, str]) -> Any:
    """The request as nova-api builds it."""
    flavor, image = bench_common.nova_flavor(vcpus, memory_mb, extra_specs)
    return objects.RequestSpec(
        flavor=flavor, image=image, pci_requests=None,
        instance_uuid='11111111-2222-3333-4444-555555555555',
        numa_topology=nova_hardware.numa_get_constraints(flavor, image))


def run_request(states: Sequence[Any], spec: Any,
                chain: Sequence[Any]) -> tuple[float, list[Any]]:
    """One request through the filters of ``chain``, timed.

    As the scheduler's filter handler runs them: each filter over the
    hosts the previous one passed.

    :returns: the seconds the filters took, and what they left: each
        passing host with its allocation candidates and NUMA limits
    """
    for state in states:
        # The scheduler hands each request fresh candidates and limits.
        state.allocation_candidates = _candidates(state, spec)
        state.limits = {}
    passed: list[Any] = list(states)
    start = time.perf_counter()
    for host_filter in chain:
        passed = list(host_filter.filter_all(passed, spec))
    seconds = time.perf_counter() - start
    left = []
    for state in passed:
        limits = state.limits.get('numa_topology')
        left.append((state.host, state.allocation_candidates,
                     limits and limits.obj_to_primitive()))
    return seconds, left


def _same(size: int, name: str, ours: list[Any], nova: list[Any]) -> None:
    if ours != nova:
        raise SystemExit('%d hosts, %s: the filters leave different hosts, '
                         'candidates or limits: %d hosts with ours, %d '
                         'with Nova\'s' % (size, name, len(ours), len(nova)))


def scheduler_table(sizes: Sequence[int]) -> str:
    nova_filter = numa_topology_filter.NUMATopologyFilter()
    ours_filter = filters.EmulatorThreadsFilter()
    rows = []
    for size in sizes:
        stored = fills(min(size, FILLS))
        for name, vcpus, memory_mb, specs in REQUESTS_SPECS:
            spec = request_spec(vcpus, memory_mb, specs)
            # Every host object new: the first request after a start, or
            # after every compute node reported.
            states = host_states(size, stored)
            gc.collect()
            ours_first, ours_left = run_request(states, spec, [ours_filter])
            nova_first, nova_left = run_request(states, spec, [nova_filter])
            _same(size, name, ours_left, nova_left)
            ours_times, nova_times = [], []
            for _ in range(REQUESTS):
                seconds, ours_left = run_request(states, spec,
                                                 [ours_filter])
                ours_times.append(seconds)
                seconds, nova_left = run_request(states, spec,
                                                 [nova_filter])
                nova_times.append(seconds)
                _same(size, name, ours_left, nova_left)
            both, both_left = run_request(states, spec,
                                          [ours_filter, nova_filter])
            _same(size, name, both_left, nova_left)
            ours = statistics.median(ours_times)
            nova = statistics.median(nova_times)
            rows.append([
                '%d' % size, name, '%d' % len(nova_left),
                '%.3f' % nova, '%.4f' % ours, '1/%.0f' % (nova / ours),
                '%.3f' % nova_first, '%.3f' % ours_first,
                '1/%.1f' % (nova_first / ours_first), '%.3f' % both])
            del states, ours_left, nova_left, both_left
            gc.collect()
    return bench_common.format_table(
        ['hosts', 'request', 'hosts passed', 'Nova s', 'ours s',
         'ours/Nova', 'first: Nova s', 'first: ours s', 'first: ours/Nova',
         'ours then Nova s'], rows, right=2)


# -- peak memory, one process per configuration ------------------------------


def _rss_mib() -> float:
    with open('/proc/self/statm') as statm:
        pages = int(statm.read().split()[1])
    return pages * resource.getpagesize() / 2 ** 20


def _child(size: int, what: str) -> None:
    """Build the host states, run one request, print what memory it took."""
    states = host_states(size, fills(min(size, FILLS)))
    spec = request_spec(*REQUESTS_SPECS[0][1:])
    nova_filter = numa_topology_filter.NUMATopologyFilter()
    ours_filter = filters.EmulatorThreadsFilter()
    chain = {'states': [], 'nova': [nova_filter], 'ours': [ours_filter],
             'both': [ours_filter, nova_filter]}[what]
    gc.collect()
    before = _rss_mib()
    # What the request allocates and what it leaves allocated (the
    # filters' caches), counted by Python itself.
    tracemalloc.start()
    run_request(states, spec, chain)
    gc.collect()
    held, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(json.dumps({
        'peak_rss': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        'rss_growth': _rss_mib() - before, 'held': held / 2 ** 20,
        'request_peak': peak / 2 ** 20}))


def memory_table(size: int) -> str:
    rows = []
    for what, label in (
            ('states', 'host states only, no filter'),
            ('nova', 'Nova\'s alone'),
            ('ours', 'ours alone'),
            ('both', 'ours, then Nova\'s')):
        out = subprocess.run(
            [sys.executable, __file__, '--memory-child', str(size), what],
            capture_output=True, text=True, check=True).stdout
        got = json.loads(out.splitlines()[-1])
        rows.append(['%d' % size, label, '%.0f' % got['peak_rss'],
                     '%+.0f' % got['rss_growth'], '%.1f' % got['held'],
                     '%.1f' % got['request_peak']])
    return bench_common.format_table(
        ['hosts', 'filters', 'peak RSS MiB', 'RSS growth in request MiB',
         'held after MiB', 'allocated at peak MiB'], rows, right=2)


if __name__ == '__main__':
    if sys.argv[1:2] == ['--memory-child']:
        _child(int(sys.argv[2]), sys.argv[3])
