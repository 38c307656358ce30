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

"""Time our fitter and scheduler filter against Nova's, on the same inputs.

    python tools/bench.py [--quick] [--only fit|scheduler|density|memory]

(``tox -e bench`` and ``make bench`` run it.) Four plain tables, made to
be diffed between runs:

fit
    ``virt.hardware.fit_instance_to_host`` against Nova's
    ``numa_fit_instance_to_host``, on the same host (our cells hold Nova's
    very set objects, see ``HostCell``) and the same flavor (each side
    builds its guest topology from it with its own code). Both run in this
    process, in rounds, one after the other, so that both see the same
    machine load; each call is timed on its own and the table shows the
    medians. Every timed answer of both is checked to be the same.
    "ours" calls the fitter again on the same host objects, as a scheduler
    does (its memo of what it derived from the host is warm); "ours, new
    host" calls it once on each of fresh host objects (the memo is cold).
scheduler
    ``EmulatorThreadsFilter`` alone against Nova's ``NUMATopologyFilter``
    alone, over generated host states (see ``bench_scheduler``), with the
    same hosts, allocation candidates and limits asserted; on the first
    request after every host object is new, and in steady state.
density
    ``plan --density`` on the bundled hosts.
memory
    Peak resident memory of the 10,000-host scheduler run, each in its
    own process.

Nova's logging stays at Python's default (WARNING; nothing configures it
here), so Nova formats none of its debug or info messages, the cheapest
setting for Nova. The script refuses to run if a Nova logger is at DEBUG.
"""

import argparse
import dataclasses
import logging
import os
import platform
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from typing import Any

with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    import nova.version
    from nova.virt import hardware as nova_hardware

import bench_scheduler
from bench_common import FOUR_NODES
from bench_common import ISOLATE
from bench_common import SHARE
from bench_common import TWO_NODES
from bench_common import caps_xml
from bench_common import format_table
from bench_common import nova_host
from bench_common import nova_instance
from bench_common import ours_from_nova
from bench_common import summary

from nova_emulator_threads import cpuset
from nova_emulator_threads import data
from nova_emulator_threads.cmd import plan
from nova_emulator_threads.host import planning
from nova_emulator_threads.virt import guest_topology
from nova_emulator_threads.virt import hardware
from nova_emulator_threads.virt.libvirt import capabilities

# -- the fitter table -------------------------------------------------------


@dataclasses.dataclass
class FitCase:
    name: str
    caps: str
    dedicated: str
    vcpus: int
    memory_mb: int
    extra_specs: dict[str, str]
    pinned: str = ''
    shared: str = ''


def _spread_half(cells: int, cpus_per_cell: int) -> str:
    """Every other pCPU of every cell: half the host, as churn leaves it."""
    return cpuset.format_cpu_spec(
        cpu for cpu in range(cells * cpus_per_cell) if cpu % 2)


REQUIRE = {'hw:cpu_thread_policy': 'require'}


def _all_but_cells(cells: int, cores: int, threads: int,
                   free: Sequence[int]) -> str:
    """Every pCPU pinned but those of the cells ``free`` (``caps_xml``
    numbering).
    """
    per_thread = cells * cores
    return cpuset.format_cpu_spec(
        cpu for cpu in range(per_thread * threads)
        if (cpu % per_thread) // cores not in free)


def _every_but(cpus: int, step: int) -> str:
    """All pCPUs but every ``step``-th one."""
    return cpuset.format_cpu_spec(cpu for cpu in range(cpus) if cpu % step)


def _first_threads_of_even_cores(cells: int, cores: int) -> str:
    """One thread of every other core pinned: half-used cores, which
    ``require`` cannot use, between free ones.
    """
    return cpuset.format_cpu_spec(range(0, cells * cores, 2))


def fit_cases() -> list[FitCase]:
    two_by_32 = caps_xml(2, 32, 1)
    # Sixteen NUMA cells: a four-socket server of four cells a socket.
    sixteen = caps_xml(16, 8, 2)
    return [
        FitCase('2 x 32 pCPU, no SMT; 2-cell 16 vCPU isolate', two_by_32,
                '0-63', 16, 16384, dict(ISOLATE, **TWO_NODES)),
        FitCase('2 x 32 pCPU, no SMT; 1-cell 8 vCPU isolate', two_by_32,
                '0-63', 8, 8192, ISOLATE),
        FitCase('8 x 16 pCPU, SMT2; 2-cell 16 vCPU isolate',
                caps_xml(8, 8, 2), '0-127', 16, 16384,
                dict(ISOLATE, **TWO_NODES)),
        FitCase('near-full 2 x 32 (8 free a cell); 2-cell 16 vCPU share',
                two_by_32, '0-63', 16, 16384, dict(SHARE, **TWO_NODES),
                pinned='0-23,32-55'),
        FitCase('near-full 2 x 32 (8 free a cell); 2-cell 16 vCPU isolate',
                two_by_32, '0-63', 16, 16384, dict(ISOLATE, **TWO_NODES),
                pinned='0-23,32-55'),
        FitCase('16 x 16 pCPU, SMT2; 4-cell 16 vCPU isolate', sixteen,
                '0-255', 16, 16384, dict(ISOLATE, **FOUR_NODES)),
        FitCase('16 x 16 pCPU, SMT2, 3 cells free; 4-cell 16 vCPU isolate',
                sixteen, '0-255', 16, 16384, dict(ISOLATE, **FOUR_NODES),
                pinned='0-103,128-231'),
        FitCase('2 x 32 pCPU, half pinned; 2-cell 16 vCPU isolate',
                two_by_32, '0-63', 16, 16384, dict(ISOLATE, **TWO_NODES),
                pinned=_spread_half(2, 32)),
        FitCase('8 x 16 pCPU, SMT2, 6 cells full; 2-cell 8 vCPU isolate',
                caps_xml(8, 8, 2), '0-127', 8, 8192,
                dict(ISOLATE, **TWO_NODES),
                pinned=_all_but_cells(8, 8, 2, free=(2, 5))),
        FitCase('8 x 16 pCPU, SMT2, 90% pinned; 1-cell 4 vCPU isolate',
                caps_xml(8, 8, 2), '0-127', 4, 4096, ISOLATE,
                pinned=_every_but(128, 10)),
        FitCase('2 x 32 pCPU, SMT2, half pinned; 2-cell 8 vCPU require',
                caps_xml(2, 16, 2), '0-63', 8, 8192,
                dict(ISOLATE, **TWO_NODES, **REQUIRE),
                pinned=_first_threads_of_even_cores(2, 16)),
        FitCase('2 x 32 pCPU, SMT2, half pinned; 1-cell 4 vCPU require',
                caps_xml(2, 16, 2), '0-63', 4, 4096, dict(ISOLATE, **REQUIRE),
                pinned=_first_threads_of_even_cores(2, 16)),
        FitCase('4 x 16 pCPU, no SMT, half pinned; 4-cell 16 vCPU isolate',
                caps_xml(4, 16, 1), '0-63', 16, 16384,
                dict(ISOLATE, **FOUR_NODES), pinned=_spread_half(4, 16)),
        FitCase('8 x 16 pCPU, SMT2; 4-cell 8 vCPU share', caps_xml(8, 8, 2),
                '0-127', 8, 8192, dict(SHARE, **FOUR_NODES)),
        FitCase('bundled 2 x 20 SMT2 host; 1-cell 4 vCPU isolate',
                data.example_host_xml(), '1-9,11-19,21-29,31-39', 4, 4096,
                ISOLATE, shared='0,10,20,30'),
    ]


@dataclasses.dataclass
class FitResult:
    case: FitCase
    answer: str
    ours: list[float]
    ours_new_host: list[float]
    nova: list[float]


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def run_fit_case(case: FitCase, rounds: int, budget: float) -> FitResult:
    """Time both fitters on one case; fail if any answer differs."""
    ours_host = capabilities.host_topology_from_caps(
        case.caps, case.dedicated, case.shared, case.pinned)
    nova_topology = nova_host(ours_host)
    host = ours_from_nova(nova_topology)
    inst = guest_topology.instance_topology_from_flavor(
        case.vcpus, case.memory_mb, case.extra_specs)
    nova_inst = nova_instance(case.vcpus, case.memory_mb, case.extra_specs)
    if inst is None or nova_inst is None:
        raise SystemExit('%s: the flavor has no NUMA topology' % case.name)

    def ours_call() -> Any:
        return hardware.fit_instance_to_host(host, inst)

    expected = summary(nova_hardware.numa_fit_instance_to_host(
        nova_topology, nova_inst.obj_clone(), provider_mapping=None))
    # Calibrate: how many calls of each fill the budget of a round.
    nova_once, _ = _timed(lambda: nova_hardware.numa_fit_instance_to_host(
        nova_topology, nova_inst.obj_clone(), provider_mapping=None))
    ours_call()  # the first call on a host derives what it remembers
    ours_once, _ = _timed(ours_call)
    nova_calls = max(3, min(200, int(budget / max(nova_once, 1e-6))))
    # Ours in chunks between Nova's calls, so that both see the same load
    # on a shared machine.
    chunk = max(1, min(50, int(nova_once / 4 / max(ours_once, 1e-7))))

    result = FitResult(case, 'fit' if expected else 'no fit', [], [], [])
    answers: list[Any] = []
    for _round in range(rounds):
        # Nova's fitter writes into the guest topology it is given (as
        # NUMATopologyFilter knows, which clones it): a fresh copy each.
        guests = [nova_inst.obj_clone() for _ in range(nova_calls)]
        fresh_hosts = [ours_from_nova(nova_topology)
                       for _ in range(nova_calls)]
        for guest, fresh in zip(guests, fresh_hosts):
            for _ in range(chunk):
                seconds, fitted = _timed(ours_call)
                result.ours.append(seconds)
                answers.append(fitted)
            seconds, fitted = _timed(
                lambda: hardware.fit_instance_to_host(fresh, inst))
            result.ours_new_host.append(seconds)
            answers.append(fitted)
            seconds, fitted = _timed(
                lambda: nova_hardware.numa_fit_instance_to_host(
                    nova_topology, guest, provider_mapping=None))
            result.nova.append(seconds)
            answers.append(fitted)
        for answer in answers:
            if summary(answer) != expected:
                raise SystemExit('%s: answers differ:\n  nova: %r\n  ours: '
                                 '%r' % (case.name, expected,
                                         summary(answer)))
        answers.clear()
    return result


def _us(seconds: Sequence[float]) -> float:
    return statistics.median(seconds) * 1e6


def fit_table(results: Sequence[FitResult]) -> str:
    rows = []
    for result in results:
        ours, new_host, nova = (_us(result.ours), _us(result.ours_new_host),
                                _us(result.nova))
        rows.append([
            result.case.name, result.answer, '%.1f' % ours,
            '%.1f' % new_host, '%.1f' % nova, '%.0fx' % (nova / ours),
            '%.0fx' % (nova / new_host),
            '%d/%d/%d' % (len(result.ours), len(result.ours_new_host),
                          len(result.nova))])
    return format_table(
        ['case', 'answer', 'ours us', 'ours, new host us', 'Nova us',
         'ratio', 'ratio, new host', 'calls'], rows, right=2)


# -- the density table ------------------------------------------------------


def density_tables() -> str:
    """The density tables.

    1-vCPU realtime guests on both bundled hosts, then ordinary 4-vCPU
    guests on the two-socket one.
    """
    realtime = {'hw:cpu_realtime': 'yes'}
    out = []
    for name, dedicated, shared, vcpus, specs in (
            ('four-core-housekeeping', '1-3', '0', 1, realtime),
            ('two-socket-smt', plan.EXAMPLE_DEDICATED_SET,
             plan.EXAMPLE_SHARED_SET, 1, realtime),
            ('two-socket-smt', plan.EXAMPLE_DEDICATED_SET,
             plan.EXAMPLE_SHARED_SET, 4, {})):
        xml = data.example_host_xml(name)
        with_shared = capabilities.host_topology_from_caps(xml, dedicated,
                                                           shared)
        without = capabilities.host_topology_from_caps(xml, dedicated, '')
        rows = planning.density_report(with_shared, without, vcpus, 1024,
                                       specs)
        out.append('host %s (cpu_dedicated_set=%s, cpu_shared_set=%s), '
                   '%d-vCPU guests of 1024 MiB%s:\n%s' % (
                       name, dedicated, shared, vcpus,
                       ', ' + ' '.join('%s=%s' % item for item in
                                      specs.items()) if specs else '',
                       plan.format_density_table(rows)))
    return '\n\n'.join(out)


# -- the command ------------------------------------------------------------


def _check_nova_logging() -> str:
    levels = {name: logging.getLogger(name).getEffectiveLevel()
              for name in ('nova', 'nova.virt.hardware',
                           'nova.scheduler.filters.numa_topology_filter')}
    if min(levels.values()) <= logging.DEBUG:
        raise SystemExit('a Nova logger is at DEBUG: Nova would format its '
                         'debug messages and the timing would be unfair')
    return logging.getLevelName(min(levels.values()))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--quick', action='store_true',
                        help='fewer rounds and hosts: a smoke test, not a '
                             'measurement')
    parser.add_argument('--only', choices=('fit', 'scheduler', 'density',
                                           'memory'), action='append',
                        help='run only these tables (repeatable)')
    args = parser.parse_args(argv)
    parts = args.only or ['fit', 'scheduler', 'density', 'memory']
    level = _check_nova_logging()
    print('nova-emulator-threads benchmark: Python %s, Nova %s, %d CPUs, '
          'Nova log level %s' % (platform.python_version(),
                                 nova.version.version_string(),
                                 os.cpu_count() or 0, level))
    if 'fit' in parts:
        rounds, budget = (2, 0.02) if args.quick else (7, 0.15)
        results = [run_fit_case(case, rounds, budget)
                   for case in fit_cases()]
        print('\nfit: median microseconds per call (same answers checked '
              'for every call)\n')
        print(fit_table(results))
    if 'scheduler' in parts or 'memory' in parts:
        sizes = (200, 1000) if args.quick else (1000, 10000)
        if 'scheduler' in parts:
            print('\nscheduler: seconds per request over generated host '
                  'states; ours = EmulatorThreadsFilter alone, Nova = '
                  'NUMATopologyFilter alone; the same hosts, candidates '
                  'and limits checked; steady state: median of %d requests '
                  'on the same host states; first: the first request on '
                  'new host objects\n' % bench_scheduler.REQUESTS)
            print(bench_scheduler.scheduler_table(sizes))
        if 'memory' in parts:
            print('\nmemory: %d host states and one request (the 2-cell '
                  'one), each configuration in its own process; peak RSS '
                  'includes building the host states; held and allocated: '
                  'Python allocations during the request (tracemalloc)\n'
                  % sizes[-1])
            print(bench_scheduler.memory_table(sizes[-1]))
    if 'density' in parts:
        print('\ndensity: identical guests packed until the next does not '
              'fit\n')
        print(density_tables())
    return 0


if __name__ == '__main__':
    sys.exit(main())
