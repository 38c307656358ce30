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

"""The fitting engine: where a guest's vCPUs and emulator threads go.

``fit_instance_to_host`` makes the same decisions as Nova 34's
``nova.virt.hardware.numa_fit_instance_to_host`` (same fit or no fit, same
host cell per guest cell, same vCPU -> pCPU pins, same ``cpuset_reserved``)
but works on the plain dataclasses of ``virt.topology`` instead of
versioned objects, which is where Nova's fitter spends its time.

Being faithful includes Nova's quirks, each marked ``NOTE(nova)`` below:
the order of sibling sets and of the CPUs inside them decides the pins,
and Nova's per-call caches are keyed on instance cell ids that the fitter
itself rewrites as it goes. A scheduler and a compute host running Nova's
code and ours side by side must never disagree, so we reproduce both.

Everything here is pure: no I/O, no Nova import, no global state.
"""

import dataclasses
import itertools
from collections.abc import Mapping
from collections.abc import Sequence
from collections.abc import Set as AbstractSet

from nova_emulator_threads import exception
from nova_emulator_threads.objects import fields
from nova_emulator_threads import policy
from nova_emulator_threads.virt import caps
from nova_emulator_threads.virt import topology
from nova_emulator_threads.virt.topology import HostCell
from nova_emulator_threads.virt.topology import HostTopology
from nova_emulator_threads.virt.topology import InstanceCell
from nova_emulator_threads.virt.topology import InstanceTopology

DEDICATED = fields.CPUAllocationPolicy.DEDICATED
MIXED = fields.CPUAllocationPolicy.MIXED
SHARED = fields.CPUAllocationPolicy.SHARED
PINNED_POLICIES = (DEDICATED, MIXED)
UNPINNED_POLICIES = (SHARED, MIXED, None)
THREAD_ISOLATE = fields.CPUThreadAllocationPolicy.ISOLATE
THREAD_REQUIRE = fields.CPUThreadAllocationPolicy.REQUIRE

#: How many emulator pCPUs ``isolate`` reserves (the spec: exactly one).
EMULATOR_PCPUS_ISOLATE = 1

host_topology_from_caps = caps.host_topology_from_caps


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """Allocation ratios the scheduler applies to unpinned guests."""

    cpu_allocation_ratio: float
    ram_allocation_ratio: float


# Why a guest cell does not fit a host cell. Hot paths return these codes
# with their numbers; only ``explain_no_fit`` turns them into sentences.
_NO_PAGESIZE = 'pagesize'
_NO_MEMORY = 'memory'
_NO_PCPUS_TOTAL = 'pcpus_total'
_NO_CPUS_TOTAL = 'cpus_total'
_NO_PCPUS_FREE = 'pcpus_free'
_NO_PACKING = 'packing'
_NO_CPU_LIMIT = 'cpu_limit'
_NO_RAM_LIMIT = 'ram_limit'


def instance_topology_from_flavor(
    vcpus: int,
    memory_mb: int,
    extra_specs: Mapping[str, str] | None = None,
    image_props: Mapping[str, object] | None = None,
) -> InstanceTopology | None:
    """Build the guest NUMA topology a flavor (and image) asks for.

    :returns: the requested topology, or None when Nova would give the
        guest no NUMA topology at all (no pinning, no NUMA nodes, no page
        size): such a guest floats and there is nothing to fit.
    :raises: exception.Invalid subclasses for bad extra specs
    """
    request = policy.parse_request(vcpus, memory_mb, extra_specs,
                                   image_props)
    return instance_topology_from_request(request)


def instance_topology_from_request(
    request: policy.CPURequest,
) -> InstanceTopology | None:
    """Build the guest NUMA topology from a validated ``CPURequest``."""
    if not request.needs_numa_topology:
        return None
    nodes = request.numa_nodes or 1
    pcpus = request.dedicated_cpus
    if request.numa_cpus is not None and request.numa_mem is not None:
        layout = list(zip(request.numa_cpus, request.numa_mem))
    else:
        # Nova's automatic layout: consecutive vCPUs, memory split evenly.
        per_node = request.vcpus // nodes
        layout = [
            (frozenset(range(node * per_node, (node + 1) * per_node)),
             request.memory_mb // nodes)
            for node in range(nodes)]
    cells = tuple(
        InstanceCell(
            id=node, cpuset=cpus - pcpus, pcpuset=cpus & pcpus,
            memory=memory, pagesize=request.pagesize,
            cpu_policy=request.cpu_policy,
            cpu_thread_policy=request.cpu_thread_policy)
        for node, (cpus, memory) in enumerate(layout))
    return InstanceTopology(
        cells=cells,
        emulator_threads_policy=request.emulator_threads_policy,
        realtime_cpus=request.realtime_cpus)


# -- choice points -----------------------------------------------------------
#
# Each decision that later work may want to make differently (behind a
# config option, Nova's behaviour staying the default) is one small
# function.


def emulator_reservation(inst: InstanceTopology, guest_cell_index: int) -> int:
    """How many emulator pCPUs guest cell ``guest_cell_index`` must carry.

    Nova (and the spec): isolate puts one pCPU on the host cell of guest
    cell 0, so that users can predict where it is.
    """
    if inst.emulator_threads_isolated and guest_cell_index == 0:
        return EMULATOR_PCPUS_ISOLATE
    return 0


def choose_reserved_pcpus(
    free_siblings: Sequence[AbstractSet[int]],
    pinning: Sequence[tuple[int, int]],
    count: int,
    thread_isolate: bool,
) -> frozenset[int] | None:
    """Pick the emulator pCPUs on a host cell once the vCPUs are pinned.

    Nova's ``_get_reserved``: the first ``count`` free pCPUs, walking the
    free sibling sets in order, that no vCPU of this guest got; under
    ``cpu_thread_policy=isolate`` a core with a pinned vCPU is skipped
    whole.
    """
    used = {pcpu for _vcpu, pcpu in pinning}
    candidates: list[int] = []
    for sib in free_siblings:
        members = list(sib)  # NOTE(nova): set iteration order is the order
        if thread_isolate:
            if not used.isdisjoint(members):
                continue
            candidates.extend(members)
        else:
            candidates.extend(p for p in members if p not in used)
        if len(candidates) >= count:
            break
    reserved = frozenset(candidates[:count])
    return reserved or None


def host_cell_order(
    host: HostTopology, inst: InstanceTopology, pack: bool = False,
) -> Sequence[HostCell]:
    """The order in which host cells are tried (Nova's balancing sorts).

    :param pack: ``[compute] packing_host_numa_cells_allocation_strategy``
    """
    cells: Sequence[HostCell] = host.cells
    if len(host.cells) <= len(inst.cells):
        return cells
    cells = sorted(cells, reverse=not pack, key=_avail_memory)
    if inst.cells[0].cpu_policy in (None, SHARED):
        return sorted(cells, reverse=pack, key=_cpu_usage)
    return sorted(cells, reverse=not pack, key=_free_pcpu_count)


def _avail_memory(cell: HostCell) -> int:
    return cell.memory - cell.memory_usage


def _cpu_usage(cell: HostCell) -> int:
    return cell.cpu_usage


def _free_pcpu_count(cell: HostCell) -> int:
    return len(cell.pcpuset - cell.pinned_cpus)


# -- packing vCPUs onto cores ------------------------------------------------


def _pin_linear(
    threads_no: int,
    sibling_set: Sequence[AbstractSet[int]],
    vcpus: Sequence[int],
) -> list[tuple[int, int]] | None:
    """Nova's ``_get_pinning``: up to ``threads_no`` threads per core."""
    if threads_no * len(sibling_set) < len(vcpus):
        return None
    usable = itertools.chain.from_iterable(
        list(sib)[:threads_no] for sib in sibling_set)
    return list(zip(vcpus, usable))


def _pack_cell(
    host_cell: HostCell,
    pcpus: frozenset[int],
    thread_policy: str | None,
    num_reserved: int,
) -> tuple[list[tuple[int, int]], frozenset[int] | None] | None:
    """Pin a guest cell's dedicated vCPUs on a host cell's free pCPUs.

    Nova's ``_pack_instance_onto_cores``.

    :returns: ``(pinning, cpuset_reserved)`` or None when it cannot pack
    """
    siblings = host_cell.siblings
    threads_per_core = max(map(len, siblings), default=0) or 1
    free = host_cell.pcpuset - host_cell.pinned_cpus
    # NOTE(nova): 'sib & free' iterates the smaller operand; the resulting
    # set's order decides which thread of a core a vCPU gets.
    with_free = [sib for sib in [sib & free for sib in siblings] if sib]
    vcpus = sorted(pcpus)

    def cores_with(threads_no: int) -> list[AbstractSet[int]]:
        # Nova's 'sibling_sets[threads_no]': the cores with at least
        # 'threads_no' free threads, in sibling order.
        if threads_no == 1:
            return with_free
        return [sib for sib in with_free if len(sib) >= threads_no]

    most_free = max(map(len, with_free), default=0)
    pinning: list[tuple[int, int]] | None = None
    reserved: frozenset[int] | None = None
    if thread_policy == THREAD_ISOLATE:
        if threads_per_core > most_free:
            return None
        # NOTE(nova): only hosts in legacy 'vcpu_pin_set' mode (cpuset ==
        # pcpuset) may use 'isolate' on SMT; elsewhere the scheduler should
        # have filtered the host out via the HW_CPU_HYPERTHREADING trait.
        if threads_per_core != 1 and host_cell.pcpuset != host_cell.cpuset:
            return None
        pinning = _pin_linear(1, cores_with(threads_per_core), vcpus)
        if pinning and num_reserved:
            reserved = choose_reserved_pcpus(
                with_free, pinning, num_reserved, thread_isolate=True)
        if not pinning or (num_reserved and not reserved):
            return None
        return pinning, reserved

    if thread_policy == THREAD_REQUIRE and threads_per_core <= 1:
        return None
    threads_no = 1
    for threads_no in range(most_free, 0, -1):
        if thread_policy == THREAD_REQUIRE and threads_no <= 1:
            continue
        pinning = _pin_linear(threads_no, cores_with(threads_no), vcpus)
        reserved = None
        if pinning and num_reserved:
            reserved = choose_reserved_pcpus(
                with_free, pinning, num_reserved, thread_isolate=False)
        if pinning is None or (num_reserved and not reserved):
            continue
        break
    if thread_policy != THREAD_REQUIRE and not pinning:
        # Fall back to any free pCPUs, each core treated as independent.
        # NOTE(nova): 'threads_no' is whatever the loop above ended with.
        singles = [frozenset((cpu,))
                   for cpu in itertools.chain.from_iterable(with_free)]
        pinning = _pin_linear(threads_no, singles, vcpus)
        reserved = None
        if pinning and num_reserved:
            reserved = choose_reserved_pcpus(
                singles, pinning, num_reserved, thread_isolate=False)
    if pinning is None or (num_reserved and not reserved):
        return None
    return pinning, reserved


# -- fitting one guest cell on one host cell ---------------------------------


def _choose_pagesize(
    host_cell: HostCell, requested: int, memory_kb: int,
) -> int | None:
    """Nova's ``_numa_cell_supports_pagesize_request``."""
    sizes = sorted((pages.size_kb for pages in host_cell.mempages),
                   reverse=True)
    if requested == topology.MEMPAGES_SMALL:
        candidates = sizes[-1:]
    elif requested == topology.MEMPAGES_LARGE:
        candidates = sizes[:-1]
    elif requested == topology.MEMPAGES_ANY:
        candidates = sizes
    else:
        candidates = [requested]
    for size in candidates:
        if _can_fit_pagesize(host_cell, size, memory_kb, use_free=True):
            return size
    return None


def _can_fit_pagesize(
    host_cell: HostCell, size_kb: int, memory_kb: int, use_free: bool,
) -> bool:
    for pages in host_cell.mempages:
        if pages.size_kb == size_kb:
            avail = pages.free_kb if use_free else pages.total_kb
            return memory_kb <= avail and memory_kb % size_kb == 0
    # Nova raises MemoryPageSizeNotSupported; its caller treats that as
    # "does not fit", which is what False means here.
    return False


@dataclasses.dataclass(slots=True)
class _CellState:
    """One guest cell during one fit: Nova mutates its instance cells in
    place while it walks the permutations, and later steps read what
    earlier steps wrote, so we keep the same mutable state."""

    cell: InstanceCell
    id: int
    pagesize: int | None
    pinning: dict[int, int] | None = None
    reserved: frozenset[int] | None = None
    reserved_set: bool = False

    def result(self) -> InstanceCell:
        cell = self.cell
        return InstanceCell(
            self.id, cell.cpuset, cell.pcpuset, cell.memory, self.pagesize,
            cell.cpu_policy, cell.cpu_thread_policy, self.pinning,
            self.reserved if self.reserved_set else cell.cpuset_reserved)


def _fit_cell(
    host_cell: HostCell,
    state: _CellState,
    limits: Limits | None,
    num_reserved: int,
) -> tuple[str, tuple[int, ...]] | None:
    """Fit one guest cell on one host cell (Nova's
    ``_numa_fit_instance_cell``), updating ``state`` on success.

    :returns: None on success, else ``(reason code, numbers)``
    """
    cell = state.cell
    policy_ = cell.cpu_policy
    pinned = policy_ in PINNED_POLICIES
    memory_kb = cell.memory * 1024
    if state.pagesize:
        pagesize = _choose_pagesize(host_cell, state.pagesize, memory_kb)
        if not pagesize:
            return _NO_PAGESIZE, (state.pagesize,)
        state.pagesize = pagesize
    elif host_cell.mempages:
        smallest = min(pages.size_kb for pages in host_cell.mempages)
        if not _can_fit_pagesize(host_cell, smallest, memory_kb,
                                 use_free=pinned):
            return _NO_MEMORY, (cell.memory, host_cell.memory -
                                host_cell.memory_usage)
    elif pinned:
        if host_cell.memory - host_cell.memory_usage < cell.memory:
            return _NO_MEMORY, (cell.memory, host_cell.memory -
                                host_cell.memory_usage)
    elif host_cell.memory < cell.memory:
        return _NO_MEMORY, (cell.memory, host_cell.memory)

    required = len(cell.pcpuset) + num_reserved
    if pinned and required > len(host_cell.pcpuset):
        return _NO_PCPUS_TOTAL, (required, len(host_cell.pcpuset))
    unpinned = policy_ in UNPINNED_POLICIES
    if unpinned and len(cell.cpuset) > len(host_cell.cpuset):
        return _NO_CPUS_TOTAL, (len(cell.cpuset), len(host_cell.cpuset))
    if pinned:
        free = len(host_cell.pcpuset - host_cell.pinned_cpus)
        if required > free:
            return _NO_PCPUS_FREE, (required, free)
        packed = _pack_cell(host_cell, cell.pcpuset, cell.cpu_thread_policy,
                            num_reserved)
        if packed is None:
            return _NO_PACKING, (required,)
        pinning, reserved = packed
        if state.pinning is None:
            state.pinning = {}
        state.pinning.update(pinning)
        state.reserved = reserved
        state.reserved_set = True
        # NOTE(nova): packing writes the host cell id into the guest cell
        # even if the limits check below then rejects the cell.
        state.id = host_cell.id
    if unpinned and limits:
        cpu_usage = host_cell.cpu_usage + len(cell.cpuset)
        cpu_limit = len(host_cell.cpuset) * limits.cpu_allocation_ratio
        if cpu_usage > cpu_limit:
            return _NO_CPU_LIMIT, (cpu_usage, int(cpu_limit))
        ram_usage = host_cell.memory_usage + cell.memory
        ram_limit = host_cell.memory * limits.ram_allocation_ratio
        if ram_usage > ram_limit:
            return _NO_RAM_LIMIT, (ram_usage, int(ram_limit))
    state.id = host_cell.id
    return None


# -- fitting a guest on a host -----------------------------------------------


def fit_instance_to_host(
    host: HostTopology,
    inst: InstanceTopology,
    limits: Limits | None = None,
    pack: bool = False,
) -> InstanceTopology | None:
    """Fit a guest NUMA topology onto a host.

    Tries guest cells on every ordered choice of distinct host cells, in
    Nova's order, and returns the first that fits: the guest topology with
    each cell's ``id`` set to its host cell, ``cpu_pinning`` (vCPU ->
    pCPU) and, on the cell of guest cell 0 under ``isolate``,
    ``cpuset_reserved``.

    :param host: the host, with what is already pinned and used
    :param inst: the request, from ``instance_topology_from_flavor``
    :param limits: allocation ratios for unpinned vCPUs and memory
    :param pack: Nova's ``packing_host_numa_cells_allocation_strategy``
    :returns: the fitted topology, or None (``explain_no_fit`` says why)
    """
    fitted, _failures = _fit(host, inst, limits, pack, explain=False)
    return fitted


def _fit(
    host: HostTopology,
    inst: InstanceTopology,
    limits: Limits | None,
    pack: bool,
    explain: bool,
) -> tuple[InstanceTopology | None,
           list[tuple[int, int, str, tuple[int, ...]]]]:
    failures: list[tuple[int, int, str, tuple[int, ...]]] = []
    if not host.cells or not inst.cells or len(host.cells) < len(inst.cells):
        return None, failures
    host_cells = host_cell_order(host, inst, pack)
    states = [_CellState(cell=cell, id=cell.id, pagesize=cell.pagesize)
              for cell in inst.cells]
    reservations = [emulator_reservation(inst, index)
                    for index in range(len(states))]
    # NOTE(nova): both caches are keyed on (host cell id, instance cell id)
    # where the instance cell id is the one the fitter last wrote into it.
    not_fit: set[tuple[int, int]] = set()
    fit: set[tuple[int, int]] = set()
    for perm in itertools.permutations(host_cells, len(states)):
        chosen = 0
        for index, (host_cell, state) in enumerate(zip(perm, states)):
            pair = (host_cell.id, state.id)
            if pair in not_fit:
                break
            if pair in fit:
                state.id = host_cell.id
                chosen += 1
                continue
            failure = _fit_cell(host_cell, state, limits, reservations[index])
            if failure is not None:
                not_fit.add(pair)
                if explain:
                    failures.append((index, host_cell.id) + failure)
                break
            fit.add(pair)
            chosen += 1
        if chosen == len(states):
            return InstanceTopology(
                cells=tuple(state.result() for state in states),
                emulator_threads_policy=inst.emulator_threads_policy,
                realtime_cpus=inst.realtime_cpus), failures
    return None, failures


def explain_no_fit(
    host: HostTopology,
    inst: InstanceTopology,
    limits: Limits | None = None,
    pack: bool = False,
) -> str:
    """One sentence saying why ``inst`` does not fit ``host``."""
    if len(host.cells) < len(inst.cells):
        return ('the guest has %d NUMA cells but the host only %d'
                % (len(inst.cells), len(host.cells)))
    fitted, failures = _fit(host, inst, limits, pack, explain=True)
    if fitted is not None:
        return 'it fits'
    if not failures:
        return ('no assignment of guest cells to distinct host cells fits')
    reasons: list[str] = []
    for guest_cell, host_cell, code, numbers in failures:
        reason = _describe(code, numbers, guest_cell, host_cell,
                           emulator_reservation(inst, guest_cell))
        if reason not in reasons:
            reasons.append(reason)
    return '; '.join(reasons)


def _describe(code: str, numbers: tuple[int, ...], guest_cell: int,
              host_cell: int, reserved: int) -> str:
    where = 'on host cell %d for guest cell %d' % (host_cell, guest_cell)
    incl = (' incl. %d for emulator threads' % reserved) if reserved else ''
    if code == _NO_PAGESIZE:
        return ('no free pages of the requested size (%s) %s'
                % (_pagesize_name(numbers[0]), where))
    if code == _NO_MEMORY:
        return ('not enough free memory %s (needs %d MiB, has %d MiB)'
                % (where, numbers[0], numbers[1]))
    if code == _NO_PCPUS_TOTAL:
        return ('not enough dedicated pCPUs %s (needs %d%s, has %d)'
                % (where, numbers[0], incl, numbers[1]))
    if code == _NO_CPUS_TOTAL:
        return ('not enough shared CPUs %s (needs %d, has %d)'
                % (where, numbers[0], numbers[1]))
    if code == _NO_PCPUS_FREE:
        return ('not enough free pCPUs %s (needs %d%s, has %d)'
                % (where, numbers[0], incl, numbers[1]))
    if code == _NO_PACKING:
        return ('the free pCPUs %s cannot satisfy the CPU thread policy '
                '(needs %d%s)' % (where, numbers[0], incl))
    if code == _NO_CPU_LIMIT:
        return ('CPU allocation limit reached %s (usage would be %d, limit '
                '%d)' % (where, numbers[0], numbers[1]))
    return ('RAM allocation limit reached %s (usage would be %d MiB, limit '
            '%d MiB)' % (where, numbers[0], numbers[1]))


def _pagesize_name(pagesize: int) -> str:
    names = {topology.MEMPAGES_SMALL: 'small', topology.MEMPAGES_LARGE:
             'large', topology.MEMPAGES_ANY: 'any'}
    return names.get(pagesize, '%d KiB' % pagesize)


# -- claiming and freeing ----------------------------------------------------


def numa_usage_from_instance(
    host: HostTopology, fitted: InstanceTopology, free: bool = False,
) -> HostTopology:
    """Claim (or with ``free``, give back) what a fitted guest uses.

    Nova's ``numa_usage_from_instance_numa``: memory and shared CPU usage,
    pages, and the pinned set, where ``cpuset_reserved`` counts as pinned
    and ``cpu_thread_policy=isolate`` takes whole cores.

    :raises: exception.CPUPinningConflict when claiming a pCPU that is
        already pinned, or freeing one that is not
    """
    sign = -1 if free else 1
    by_id = {cell.id: cell for cell in fitted.cells}
    cells = []
    for host_cell in host.cells:
        inst_cell = by_id.get(host_cell.id)
        if inst_cell is None:
            cells.append(host_cell)
            continue
        pagesize = inst_cell.pagesize or min(
            (pages.size_kb for pages in host_cell.mempages), default=0)
        mempages = tuple(
            dataclasses.replace(pages, used=max(
                0, pages.used + inst_cell.memory * 1024 // pages.size_kb
                * sign))
            if pages.size_kb == pagesize else pages
            for pages in host_cell.mempages)
        pinned_cpus = host_cell.pinned_cpus
        if inst_cell.cpu_policy in PINNED_POLICIES:
            cpus = frozenset((inst_cell.cpu_pinning or {}).values())
            cpus |= inst_cell.cpuset_reserved or frozenset()
            if inst_cell.cpu_thread_policy == THREAD_ISOLATE:
                cpus = frozenset().union(
                    *(sib for sib in host_cell.siblings if sib & cpus))
            pinned_cpus = _update_pinned(host_cell, cpus, free)
        cells.append(dataclasses.replace(
            host_cell, mempages=mempages, pinned_cpus=pinned_cpus,
            memory_usage=max(0, host_cell.memory_usage +
                             sign * inst_cell.memory),
            cpu_usage=max(0, host_cell.cpu_usage +
                          sign * len(inst_cell.cpuset))))
    return dataclasses.replace(host, cells=tuple(cells))


def _update_pinned(host_cell: HostCell, cpus: frozenset[int],
                   free: bool) -> AbstractSet[int]:
    unknown = cpus - host_cell.pcpuset
    if unknown:
        raise exception.CPUPinningConflict(
            cpus=sorted(unknown), cell=host_cell.id,
            reason='they are not dedicated pCPUs of that cell')
    if free:
        if cpus - host_cell.pinned_cpus:
            raise exception.CPUPinningConflict(
                cpus=sorted(cpus - host_cell.pinned_cpus),
                cell=host_cell.id, reason='they are not pinned')
        return host_cell.pinned_cpus - cpus
    if cpus & host_cell.pinned_cpus:
        raise exception.CPUPinningConflict(
            cpus=sorted(cpus & host_cell.pinned_cpus), cell=host_cell.id,
            reason='they are already pinned')
    return host_cell.pinned_cpus | cpus
