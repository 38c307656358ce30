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
stored, one allocation candidate per host. The request is a 2-cell,
16-vCPU ``isolate`` guest, built by Nova's ``numa_get_constraints``.

Each request runs ``EmulatorThreadsFilter`` then ``NUMATopologyFilter``,
and ``NUMATopologyFilter`` alone, on the same host states, and the two
final host lists must be the same. Requests are repeated on the same host
states, as a scheduler's host states persist between requests.
"""

import dataclasses
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

import bench

from nova_emulator_threads.scheduler import filters
from nova_emulator_threads.virt import claims
from nova_emulator_threads.virt import hardware
from nova_emulator_threads.virt import topology

#: How many requests each configuration times (the table shows medians).
REQUESTS = 3
#: Distinct host fills; hosts beyond that many repeat a fill, each with its
#: own objects, as each compute node stores its own.
FILLS = 500
SEED = 20261121

SHARED_SET = '0,16,32,48'
DEDICATED_SET = '1-15,17-31,33-47,49-63'
#: Flavors already running: (weight, vCPUs, extra specs).
RUNNING = (
    (30, 2, bench.SHARE), (25, 4, bench.SHARE), (15, 4, bench.ISOLATE),
    (10, 8, bench.SHARE), (8, 8, bench.ISOLATE),
    (7, 8, dict(bench.SHARE, **bench.TWO_NODES)),
    (5, 16, dict(bench.ISOLATE, **bench.TWO_NODES)),
)
#: The requests: (name, vCPUs, memory MiB, extra specs). The big guest is
#: the case the pre-filter is for: few hosts have room, and rejecting the
#: others is cheap. The small one fits on many hosts, which then pay both
#: filters.
REQUESTS_SPECS = (
    ('2-cell 16 vCPU isolate', 16, 32768,
     dict(bench.ISOLATE, **bench.TWO_NODES)),
    ('1-cell 4 vCPU isolate', 4, 8192, bench.ISOLATE),
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
        inst = hardware.instance_topology_from_flavor(vcpus, vcpus * 2048,
                                                      specs)
        fitted = inst and hardware.fit_instance_to_host(host, inst)
        if fitted is None:
            misses += 1
            continue
        host = claims.numa_usage_from_instance(host, fitted)
    return host


def fills(count: int) -> list[str]:
    """``count`` filled hosts, as the JSON a compute node stores."""
    rng = random.Random(SEED)
    empty = hardware.host_topology_from_caps(
        bench.caps_xml(2, 16, 2, memory_mib=98304), DEDICATED_SET,
        SHARED_SET)
    return [bench.nova_host(_fill(empty, rng))._to_json()
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
    flavor = objects.Flavor(vcpus=vcpus, memory_mb=memory_mb, root_gb=20,
                            ephemeral_gb=0, swap=0, name='bench',
                            extra_specs=dict(extra_specs))
    image = objects.ImageMeta.from_dict({'properties': {}})
    return objects.RequestSpec(
        flavor=flavor, image=image, pci_requests=None,
        instance_uuid='11111111-2222-3333-4444-555555555555',
        numa_topology=nova_hardware.numa_get_constraints(flavor, image))


@dataclasses.dataclass
class Run:
    hosts: int
    #: Hosts each filter passed, and the seconds it took.
    stage_passed: list[int]
    stage_seconds: list[float]

    @property
    def seconds(self) -> float:
        return sum(self.stage_seconds)


def run_request(states: Sequence[Any], spec: Any,
                chain: Sequence[Any]) -> tuple[Run, list[str]]:
    """One request through the filters of ``chain``.

    As the scheduler's filter handler runs them: each filter over the
    hosts the previous one passed.
    """
    for state in states:
        # The scheduler hands each request fresh candidates.
        state.allocation_candidates = _candidates(state, spec)
        state.limits = {}
    passed: list[Any] = list(states)
    run = Run(len(states), [], [])
    for host_filter in chain:
        start = time.perf_counter()
        passed = list(host_filter.filter_all(passed, spec))
        run.stage_seconds.append(time.perf_counter() - start)
        run.stage_passed.append(len(passed))
    return run, [state.host for state in passed]


def scheduler_runs(
    states: Sequence[Any], spec: Any, requests: int = REQUESTS,
) -> tuple[list[Run], list[Run]]:
    """Time ``requests`` requests both ways, one way then the other."""
    nova_filter = numa_topology_filter.NUMATopologyFilter()
    ours = [filters.EmulatorThreadsFilter(), nova_filter]
    alone = [nova_filter]
    ours_runs, nova_runs = [], []
    for _ in range(requests):
        run, ours_hosts = run_request(states, spec, ours)
        ours_runs.append(run)
        run, nova_hosts = run_request(states, spec, alone)
        nova_runs.append(run)
        if ours_hosts != nova_hosts:
            raise SystemExit('%d hosts: the final host lists differ: %d '
                             'with EmulatorThreadsFilter, %d without'
                             % (len(states), len(ours_hosts),
                                len(nova_hosts)))
    return ours_runs, nova_runs


def scheduler_table(sizes: Sequence[int]) -> str:
    rows = []
    for size in sizes:
        states = host_states(size, fills(min(size, FILLS)))
        for name, vcpus, memory_mb, specs in REQUESTS_SPECS:
            spec = request_spec(vcpus, memory_mb, specs)
            ours_runs, nova_runs = scheduler_runs(states, spec)
            ours = statistics.median(run.seconds for run in ours_runs)
            nova = statistics.median(run.seconds for run in nova_runs)
            for label, runs, median in (('ours, then Nova\'s', ours_runs,
                                         ours),
                                        ('Nova\'s alone', nova_runs, nova)):
                middle = sorted(runs, key=lambda run: run.seconds)[
                    len(runs) // 2]
                rows.append([
                    '%d' % size, name, label,
                    ' -> '.join(str(n) for n in runs[0].stage_passed),
                    '%.3f' % runs[0].seconds,
                    ' + '.join('%.3f' % t for t in middle.stage_seconds),
                    '%.3f' % median, '%.1f%%' % (100 * median / nova)])
        del states
    return bench.format_table(
        ['hosts', 'request', 'filters', 'hosts passed', 'first s',
         'median: per filter s', 'median s', 'of Nova alone'], rows,
        right=3)


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
    chain = {'states': [], 'nova': [nova_filter],
             'ours': [filters.EmulatorThreadsFilter(), nova_filter]}[what]
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
            ('ours', 'ours, then Nova\'s')):
        out = subprocess.run(
            [sys.executable, __file__, '--memory-child', str(size), what],
            capture_output=True, text=True, check=True).stdout
        got = json.loads(out.splitlines()[-1])
        rows.append(['%d' % size, label, '%.0f' % got['peak_rss'],
                     '%+.0f' % got['rss_growth'], '%.1f' % got['held'],
                     '%.1f' % got['request_peak']])
    return bench.format_table(
        ['hosts', 'filters', 'peak RSS MiB', 'RSS growth in request MiB',
         'held after MiB', 'allocated at peak MiB'], rows, right=2)


if __name__ == '__main__':
    if sys.argv[1:2] == ['--memory-child']:
        _child(int(sys.argv[2]), sys.argv[3])
