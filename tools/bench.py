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
    ``EmulatorThreadsFilter`` then Nova's ``NUMATopologyFilter``, against
    ``NUMATopologyFilter`` alone, over generated host states (see
    ``bench_scheduler``), with the same final host list asserted.
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

from lxml import etree

with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    import nova.conf  # noqa: F401  (registers the options Nova reads)
    import nova.version
    from nova import objects
    from nova.virt import hardware as nova_hardware

# The Nova reference of the differential tests, so that the benchmark
# feeds both fitters exactly as the tests do.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
from nova_emulator_threads import cpuset
from nova_emulator_threads import data
from nova_emulator_threads.cmd import plan
from nova_emulator_threads.virt import hardware
from nova_emulator_threads.virt import topology
from tests.unit.virt.nova_reference import nova_host  # noqa: E402
from tests.unit.virt.nova_reference import ours_from_nova  # noqa: E402

objects.register_all()

ISOLATE = {'hw:cpu_policy': 'dedicated',
           'hw:emulator_threads_policy': 'isolate'}
SHARE = {'hw:cpu_policy': 'dedicated', 'hw:emulator_threads_policy': 'share'}
TWO_NODES = {'hw:numa_nodes': '2'}
FOUR_NODES = {'hw:numa_nodes': '4'}


# -- hosts and guests, ours and Nova's --------------------------------------


def caps_xml(cells: int, cores: int, threads: int,
             memory_mib: int = 65536) -> str:
    """``virsh capabilities`` of a host of identical cells.

    CPUs are numbered as Linux numbers them: the first thread of every
    core, cell after cell, then the second threads.
    """
    root = etree.Element('capabilities')
    host = etree.SubElement(root, 'host')
    cells_el = etree.SubElement(etree.SubElement(host, 'topology'), 'cells',
                                num=str(cells))
    for cell in range(cells):
        cell_el = etree.SubElement(cells_el, 'cell', id=str(cell))
        etree.SubElement(cell_el, 'memory', unit='KiB').text = str(
            memory_mib * 1024)
        etree.SubElement(cell_el, 'pages', unit='KiB', size='4').text = str(
            memory_mib * 256)
        etree.SubElement(cell_el, 'pages', unit='KiB',
                         size='2048').text = '0'
        cpus_el = etree.SubElement(cell_el, 'cpus', num=str(cores * threads))
        for core in range(cores):
            first = cell * cores + core
            sibs = [thread * cells * cores + first
                    for thread in range(threads)]
            for cpu in sibs:
                etree.SubElement(
                    cpus_el, 'cpu', id=str(cpu), socket_id=str(cell),
                    die_id='0', core_id=str(core),
                    siblings=','.join(map(str, sibs)))
    return etree.tostring(root, encoding='unicode')


def nova_instance(vcpus: int, memory_mb: int,
                  extra_specs: dict[str, str]) -> Any:
    """Nova's guest topology of a flavor, built by Nova."""
    flavor = objects.Flavor(vcpus=vcpus, memory_mb=memory_mb, root_gb=20,
                            ephemeral_gb=0, swap=0, name='bench',
                            extra_specs=dict(extra_specs))
    image = objects.ImageMeta.from_dict({'properties': {}})
    return nova_hardware.numa_get_constraints(flavor, image)


def summary(fitted: Any) -> list[tuple[Any, ...]] | None:
    """What both fitters decide.

    Per guest cell: the host cell, the pins, the emulator pCPUs and the
    page size.
    """
    if fitted is None:
        return None
    if isinstance(fitted, topology.InstanceTopology):
        return [(cell.id, dict(cell.cpu_pinning or {}),
                 set(cell.cpuset_reserved or ()), cell.pagesize)
                for cell in fitted.cells]
    return [(cell.id,
             dict(cell.cpu_pinning if 'cpu_pinning_raw' in cell else {}),
             set(cell.cpuset_reserved if 'cpuset_reserved' in cell and
                 cell.cpuset_reserved else ()),
             cell.pagesize if 'pagesize' in cell else None)
            for cell in fitted.cells]


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
    ours_host = hardware.host_topology_from_caps(
        case.caps, case.dedicated, case.shared, case.pinned)
    nova_topology = nova_host(ours_host)
    host = ours_from_nova(nova_topology)
    inst = hardware.instance_topology_from_flavor(
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


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]],
                 right: int = 1) -> str:
    """A plain table.

    The first ``right`` columns left-aligned, the rest right-aligned.
    """
    table = [list(header)] + [list(row) for row in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]

    def line(row: Sequence[str]) -> str:
        return '  '.join(
            cell.ljust(width) if index < right else cell.rjust(width)
            for index, (cell, width) in enumerate(zip(row, widths))).rstrip()

    return '\n'.join([line(table[0]), line(['-' * w for w in widths])] +
                     [line(row) for row in table[1:]])


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

    1-vCPU realtime guests on both bundled hosts, then ordinary
    4-vCPU guests on the two-socket one.
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
        with_shared = hardware.host_topology_from_caps(xml, dedicated,
                                                       shared)
        without = hardware.host_topology_from_caps(xml, dedicated, '')
        rows = plan.density_report(with_shared, without, vcpus, 1024, specs)
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
        import bench_scheduler
        sizes = (200, 1000) if args.quick else (1000, 10000)
        if 'scheduler' in parts:
            print('\nscheduler: seconds per request over generated host '
                  'states; ours = EmulatorThreadsFilter, Nova\'s = '
                  'NUMATopologyFilter; same final hosts checked; median of '
                  '%d requests\n' % bench_scheduler.REQUESTS)
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
