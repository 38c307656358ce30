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

The guest topology it fits comes from ``virt.guest_topology``, the
decisions an option may change from ``virt.choices``; ``virt.fit_result``
reads what an answer means for an operator, ``virt.no_fit`` words why
there is none.

Everything here is pure: no I/O, no Nova import, no global state but
memos of what was derived from host objects (``virt.packing``) and from
the last few requests, which change no answer, only how soon it comes.
"""

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from nova_emulator_threads.objects import fields
from nova_emulator_threads.virt import choices
from nova_emulator_threads.virt import no_fit
from nova_emulator_threads.virt import packing
from nova_emulator_threads.virt.topology import HostCell
from nova_emulator_threads.virt.topology import HostTopology
from nova_emulator_threads.virt.topology import InstanceCell
from nova_emulator_threads.virt.topology import InstanceTopology
from nova_emulator_threads.virt.topology import MemPages

MIXED = fields.CPUAllocationPolicy.MIXED
SHARED = fields.CPUAllocationPolicy.SHARED
UNPINNED_POLICIES = (SHARED, MIXED, None)
THREAD_ISOLATE = fields.CPUThreadAllocationPolicy.ISOLATE


@dataclasses.dataclass(frozen=True, slots=True)
class Limits:
    """Allocation ratios the scheduler applies to unpinned guests."""

    cpu_allocation_ratio: float
    ram_allocation_ratio: float


ALLOW_SIBLINGS = fields.EmulatorPCPUSiblings.ALLOW


def _ordered_cells(
    host: HostTopology, info: packing.HostInfo, inst: InstanceTopology,
    pack: bool, devices: Mapping[int, int] | None = None,
) -> tuple[tuple[HostCell, packing.CellInfo], ...]:
    """``choices.host_cell_order`` with each cell's info, remembered per host.

    :param devices: free PCI devices per host cell id, when the host has
        PCI devices and the guest requests none: Nova then tries the
        cells with fewer devices first (a stable sort after the others)
    """
    if len(host.cells) <= len(inst.cells):
        return info.cells(host)
    key = (pack, inst.cells[0].cpu_policy in (None, SHARED))
    orders = info.orders
    if orders is None:
        orders = info.orders = {}
    order = orders.get(key)
    if order is None:
        infos = {id(cell): cell_info
                 for cell, cell_info in info.cells(host)}
        order = orders[key] = tuple(
            (cell, infos[id(cell)])
            for cell in choices.host_cell_order(host, inst, pack))
    if devices:
        order = tuple(sorted(
            order, key=lambda item: devices.get(item[0].id, 0)))
    return order


# -- fitting one guest cell on one host cell ---------------------------------


def _choose_pagesize(
    host_cell: HostCell, requested: int, memory_kb: int,
) -> int | None:
    """Nova's ``_numa_cell_supports_pagesize_request``."""
    sizes = sorted((pages.size_kb for pages in host_cell.mempages),
                   reverse=True)
    if requested == fields.MEMPAGES_SMALL:
        candidates = sizes[-1:]
    elif requested == fields.MEMPAGES_LARGE:
        candidates = sizes[:-1]
    elif requested == fields.MEMPAGES_ANY:
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
            return _pages_fit(pages, memory_kb, use_free)
    # Nova raises MemoryPageSizeNotSupported; its caller treats that as
    # "does not fit", which is what False means here.
    return False


def _pages_fit(pages: MemPages, memory_kb: int, use_free: bool) -> bool:
    avail = pages.free_kb if use_free else pages.total_kb
    return memory_kb <= avail and memory_kb % pages.size_kb == 0


@dataclasses.dataclass(frozen=True, slots=True)
class _Need:
    """What fitting one guest cell asks of a host cell."""

    cell: InstanceCell
    pinned: bool
    unpinned: bool
    memory_kb: int
    #: Emulator pCPUs the cell carries (``choices.emulator_reservation``).
    reserved: int
    #: Its pinned vCPUs in order, which pCPUs are handed out to in order.
    vcpus: tuple[int, ...]
    #: Dedicated pCPUs: the pinned vCPUs and the emulator pCPUs (read on
    #: every host cell tried, so not a property).
    required: int
    #: The answer's cells built for this guest cell, by what they hold
    #: (``_CellState.result``): hosts of equal fill give equal answers.
    results: dict[tuple[Any, ...], InstanceCell] = dataclasses.field(
        default_factory=dict, compare=False)


# A scheduler fits one request on host after host: what each guest cell
# needs is worked out once per request object. Requests are immutable;
# the few most recent ones are remembered, by identity.
_NEEDS: dict[int, tuple[InstanceTopology, tuple[_Need, ...]]] = {}
_NEEDS_REMEMBERED = 16
_RESULTS_REMEMBERED = 256


def _needs(inst: InstanceTopology) -> tuple[_Need, ...]:
    entry = _NEEDS.get(id(inst))
    if entry is not None and entry[0] is inst:
        return entry[1]
    needs = []
    for index, cell in enumerate(inst.cells):
        reserved = choices.emulator_reservation(inst, index)
        vcpus = tuple(sorted(cell.pcpuset))
        needs.append(_Need(
            cell, cell.cpu_policy in fields.PINNED_CPU_POLICIES,
            cell.cpu_policy in UNPINNED_POLICIES, cell.memory * 1024,
            reserved, vcpus, len(vcpus) + reserved))
    if len(_NEEDS) >= _NEEDS_REMEMBERED:
        _NEEDS.clear()
    _NEEDS[id(inst)] = (inst, tuple(needs))
    return _NEEDS[id(inst)][1]


@dataclasses.dataclass(slots=True)
class _CellState:
    """One guest cell during one fit.

    Nova mutates its instance cells in place while it walks the
    permutations, and later steps read what earlier steps wrote, so we
    keep the same mutable state.
    """

    need: _Need
    id: int
    pagesize: int | None
    #: The pCPUs of the pinned vCPUs (``_Need.vcpus``), in order: each
    #: packing pins all of them, so the last one's are the cell's.
    chosen: tuple[int, ...] | None = None
    reserved: frozenset[int] | None = None
    reserved_set: bool = False
    #: The host cell of the last packing, and whether Nova's claim takes
    #: its pins there (``packing.pack_cell``).
    packed_on: HostCell | None = None
    claimable: bool = True

    def result(self) -> InstanceCell:
        need = self.need
        key = (self.id, self.pagesize, self.chosen, self.reserved_set,
               self.reserved)
        answer = need.results.get(key)
        if answer is None:
            if len(need.results) >= _RESULTS_REMEMBERED:
                need.results.clear()
            cell = need.cell
            answer = need.results[key] = InstanceCell(
                self.id, cell.cpuset, cell.pcpuset, cell.memory,
                self.pagesize, cell.cpu_policy, cell.cpu_thread_policy,
                None if self.chosen is None else dict(
                    zip(need.vcpus, self.chosen)),
                self.reserved if self.reserved_set else cell.cpuset_reserved)
        return answer

    def claimed_on(self, host_cell: HostCell) -> bool:
        """Whether Nova's claim on ``host_cell`` takes the cell's pins, as
        far as known without looking (False: look, see ``_unclaimable``).
        """
        return not self.need.pinned or (self.packed_on is host_cell and
                                        self.claimable)


def _fit_cell(
    host_cell: HostCell,
    info: packing.CellInfo,
    state: _CellState,
    limits: Limits | None,
    avoid_vcpu_cores: bool = False,
) -> tuple[str, tuple[int, ...]] | None:
    """Fit one guest cell on one host cell (Nova's
    ``_numa_fit_instance_cell``), updating ``state`` on success.

    Nova's steps, in its order: memory (and page size), the cell's CPU
    counts, the pins, then the allocation ratios of unpinned vCPUs.

    :param avoid_vcpu_cores: ``choices.emulator_pcpu_avoids_vcpu_cores``

    :returns: None on success, else ``(reason code, numbers)``
    """
    failure = _memory_failure(host_cell, info, state)
    if failure is not None:
        return failure
    need = state.need
    cell = need.cell
    required = need.required
    if need.pinned and required > len(host_cell.pcpuset):
        return no_fit.PCPUS_TOTAL, (required, len(host_cell.pcpuset))
    if need.unpinned and len(cell.cpuset) > len(host_cell.cpuset):
        return no_fit.CPUS_TOTAL, (len(cell.cpuset), len(host_cell.cpuset))
    if need.pinned:
        failure = _pin(host_cell, info, state, avoid_vcpu_cores)
        if failure is not None:
            return failure
    if need.unpinned and limits:
        failure = _limits_failure(host_cell, cell, limits)
        if failure is not None:
            return failure
    state.id = host_cell.id
    return None


def _memory_failure(
    host_cell: HostCell, info: packing.CellInfo, state: _CellState,
) -> tuple[str, tuple[int, ...]] | None:
    """The memory step: the requested page size, else the smallest pages
    (free ones for a pinned guest, any otherwise), else the cell's memory.
    Sets ``state.pagesize`` to the size chosen.
    """
    need = state.need
    cell = need.cell
    memory_kb = need.memory_kb
    if state.pagesize:
        pagesize = _choose_pagesize(host_cell, state.pagesize, memory_kb)
        if not pagesize:
            return no_fit.PAGESIZE, (state.pagesize, memory_kb)
        state.pagesize = pagesize
    elif info.small_pages is not None:
        if (memory_kb > (info.small_free_kb if need.pinned else
                         info.small_total_kb) or
                memory_kb % info.small_pages.size_kb):
            return no_fit.MEMORY, (cell.memory, host_cell.memory -
                                host_cell.memory_usage)
    elif need.pinned:
        if host_cell.memory - host_cell.memory_usage < cell.memory:
            return no_fit.MEMORY, (cell.memory, host_cell.memory -
                                host_cell.memory_usage)
    elif host_cell.memory < cell.memory:
        return no_fit.MEMORY, (cell.memory, host_cell.memory)
    return None


def _pin(
    host_cell: HostCell, info: packing.CellInfo, state: _CellState,
    avoid_vcpu_cores: bool,
) -> tuple[str, tuple[int, ...]] | None:
    """The pinning step: the guest cell's dedicated vCPUs and emulator
    pCPUs on the host cell's free pCPUs, into ``state``.
    """
    need = state.need
    required = need.required
    if required > info.free_count:
        return no_fit.PCPUS_FREE, (required, info.free_count,
                                   len(host_cell.pcpuset))
    avoid = avoid_vcpu_cores and bool(need.reserved)
    packed = packing.pack_cell(host_cell, info, need.vcpus,
                               need.cell.cpu_thread_policy, need.reserved,
                               avoid)
    if packed is None:
        if avoid:
            sibling = _emulator_sibling(host_cell, info, need)
            if sibling is not None:
                return no_fit.EMULATOR_CORE, sibling
        return no_fit.PACKING, (required,)
    state.chosen, state.reserved, state.claimable = packed
    state.reserved_set = True
    state.packed_on = host_cell
    # NOTE(nova): packing writes the host cell id into the guest cell even
    # if the limits check after it then rejects the cell.
    state.id = host_cell.id
    return None


def _limits_failure(
    host_cell: HostCell, cell: InstanceCell, limits: Limits,
) -> tuple[str, tuple[int, ...]] | None:
    """The allocation ratios of unpinned vCPUs and memory."""
    cpu_usage = host_cell.cpu_usage + len(cell.cpuset)
    cpu_limit = len(host_cell.cpuset) * limits.cpu_allocation_ratio
    if cpu_usage > cpu_limit:
        return no_fit.CPU_LIMIT, (cpu_usage, int(cpu_limit))
    ram_usage = host_cell.memory_usage + cell.memory
    ram_limit = host_cell.memory * limits.ram_allocation_ratio
    if ram_usage > ram_limit:
        return no_fit.RAM_LIMIT, (ram_usage, int(ram_limit))
    return None


def _emulator_sibling(
    host_cell: HostCell, info: packing.CellInfo, need: _Need,
) -> tuple[int, int, int] | None:
    """Why only ``emulator_pcpu_siblings = avoid`` refused the cell.

    :returns: the emulator pCPU Nova would take, the pCPU of its core that
        runs a vCPU, and that vCPU; None if Nova would not fit either
    """
    packed = packing.pack_cell(host_cell, info, need.vcpus,
                               need.cell.cpu_thread_policy, need.reserved)
    if packed is None or not packed[1]:
        return None
    chosen, reserved = packed[0], packed[1]
    by_pcpu = dict(zip(chosen, need.vcpus))
    for pcpu in sorted(reserved):
        for sib in host_cell.siblings:
            if pcpu in sib:
                for sibling in sorted(sib):
                    if sibling in by_pcpu:
                        return pcpu, sibling, by_pcpu[sibling]
    return None


# -- fitting a guest on a host -----------------------------------------------


def fit_instance_to_host(
    host: HostTopology,
    inst: InstanceTopology,
    limits: Limits | None = None,
    pack: bool = False,
    claimable: bool = True,
    devices: Mapping[int, int] | None = None,
    *,
    emulator_pcpu_siblings: str = ALLOW_SIBLINGS,
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
    :param claimable: answer "no fit" where Nova's fitter answers with
        pins its own claim refuses (see ``_unclaimable``); False gives
        Nova's fitter's answer as it is, which a scheduler filter needs so
        as never to be stricter than Nova's ``NUMATopologyFilter``
    :param emulator_pcpu_siblings: ``[emulator_threads]
        emulator_pcpu_siblings`` (``choices.emulator_pcpu_avoids_vcpu_cores``);
        ``allow`` is Nova's choice
    :param devices: free PCI devices per host cell id, for a guest that
        requests none on a host that has some: Nova tries the cells with
        fewer devices first
    :returns: the fitted topology, or None (``explain_no_fit`` says why)
    :raises: exception.Invalid for a bad ``emulator_pcpu_siblings``
    """
    avoid = choices.emulator_pcpu_avoids_vcpu_cores(emulator_pcpu_siblings)
    if not host.cells or not inst.cells or len(host.cells) < len(inst.cells):
        return None
    host_info = packing.host_info(host)
    needs = _needs(inst)
    if needs[0].pinned and needs[0].required > host_info.most_free:
        # No host cell has the free pCPUs guest cell 0 needs: the common
        # "host too full" answer, without the walk. Every permutation
        # starts with guest cell 0, and until it has fitted once nothing
        # in the caches of the walk can let it pass.
        return None
    fitted, _failures, claimed = _fit(
        host, host_info, inst, needs, limits, pack, explain=False,
        devices=devices, avoid_vcpu_cores=avoid)
    if (fitted is not None and claimable and not claimed and
            _unclaimable(host_info.by_id(host), fitted)):
        return None
    return fitted


def _unclaimable(
    cells: Mapping[int, HostCell], fitted: InstanceTopology,
) -> tuple[int, int, str, tuple[int, ...]] | None:
    """Why claiming Nova's answer on the host would fail, if it would.

    NOTE(nova): Nova's fitter can answer with pins its own claim
    (``numa_usage_from_instance_numa``) refuses, and the boot then fails
    on the compute host:

    * under ``cpu_thread_policy=isolate`` ``_get_reserved`` picks the
      emulator pCPU on any core with a free thread, but the claim takes
      whole cores, so a pinned sibling makes it fail;
    * its fit cache is keyed on instance cell ids it rewrites as it goes,
      so a guest cell can come back with the pins it got on another host
      cell, which are not pCPUs of the cell it is placed on.

    We answer "no fit" exactly there, and Nova's answer everywhere else.

    :param cells: the host's cells by id (``packing.HostInfo.by_id``)
    :returns: None, or a failure as ``explain_no_fit`` lists them
    """
    for index, inst_cell in enumerate(fitted.cells):
        if inst_cell.cpu_policy not in fields.PINNED_CPU_POLICIES:
            continue
        host_cell = cells[inst_cell.id]
        cpus = frozenset((inst_cell.cpu_pinning or {}).values())
        cpus |= inst_cell.cpuset_reserved or frozenset()
        foreign = cpus - host_cell.pcpuset
        if foreign:
            return (index, host_cell.id, no_fit.FOREIGN_PINS, (min(foreign),))
        if inst_cell.cpu_thread_policy == THREAD_ISOLATE:
            conflict = packing.pinned_core(host_cell, cpus)
            if conflict is not None:
                cpu, pinned = conflict
                return (index, host_cell.id, no_fit.PINNED_CORE,
                        (cpu, pinned, cpu in (
                            inst_cell.cpuset_reserved or ())))
        elif cpus & host_cell.pinned_cpus:
            cpu = min(cpus & host_cell.pinned_cpus)
            return (index, host_cell.id, no_fit.PINNED_CORE, (cpu, cpu, False))
    return None


def _fit(
    host: HostTopology,
    host_info: packing.HostInfo,
    inst: InstanceTopology,
    needs: Sequence[_Need],
    limits: Limits | None,
    pack: bool,
    explain: bool,
    devices: Mapping[int, int] | None = None,
    avoid_vcpu_cores: bool = False,
) -> tuple[InstanceTopology | None,
           list[tuple[int, int, str, tuple[int, ...]]], bool]:
    """Nova's walk; ``host`` must have at least as many cells as ``inst``.

    :param needs: ``_needs(inst)``
    :returns: the fitted topology or None; with ``explain`` why each guest
        cell did not fit each host cell tried; and True if Nova's claim is
        known to take the answer's pins (each cell's pins were packed on
        the cell it got, and pass its claim), False if that is not known
    """
    failures: list[tuple[int, int, str, tuple[int, ...]]] = []
    host_cells = _ordered_cells(host, host_info, inst, pack, devices)
    if len(inst.cells) == 1 and host_info.distinct_ids:
        return _fit_one_cell(host_cells, inst, needs[0], limits, explain,
                             avoid_vcpu_cores)
    states = [_CellState(need, need.cell.id, need.cell.pagesize)
              for need in needs]
    # NOTE(nova): both caches are keyed on (host cell id, instance cell id)
    # where the instance cell id is the one the fitter last wrote into it.
    not_fit: set[tuple[int, int]] = set()
    fit: set[tuple[int, int]] = set()
    # Nova walks every permutation of host cells in itertools order. Where
    # walking the next ones cannot change anything (see below), we jump
    # over them: the answer is the same, without the factorial walk.
    perm = list(range(len(states)))
    while True:
        # Whether replaying this permutation's steps before the one that
        # failed would be all cache hits that change nothing.
        replay_is_noop = host_info.distinct_ids
        for index, state in enumerate(states):
            host_cell, info = host_cells[perm[index]]
            at_home = state.id == host_cell.id
            pair = (host_cell.id, state.id)
            if pair in not_fit:
                break
            if pair in fit:
                state.id = host_cell.id
                replay_is_noop = replay_is_noop and at_home
                continue
            failure = _fit_cell(host_cell, info, state, limits,
                                avoid_vcpu_cores)
            if failure is not None:
                not_fit.add(pair)
                if explain:
                    failures.append((index, host_cell.id) + failure)
                break
            fit.add(pair)
            replay_is_noop = replay_is_noop and at_home
        else:
            fitted, claimed = _answer(
                inst, states, [host_cells[i][0] for i in perm],
                host_info.distinct_ids)
            return fitted, failures, claimed
        # The permutation failed at 'index'. If every earlier step was a
        # fit-cache hit on a pair that the next permutations with the same
        # first 'index + 1' host cells would look up again unchanged, and
        # the failing pair is now in the not-fit cache, all of those
        # permutations fail the same way without changing any state: skip
        # them. (Host cell ids must be distinct for the cache pairs of
        # different positions not to collide.)
        if replay_is_noop and (host_cell.id, state.id) in not_fit:
            level = index
        else:
            level = len(states) - 1
        if not _next_permutation(perm, level, len(host_cells)):
            return None, failures, False


def _answer(
    inst: InstanceTopology, states: Sequence[_CellState],
    cells: Sequence[HostCell], distinct_ids: bool,
) -> tuple[InstanceTopology, bool]:
    """The fitted topology of a permutation that fitted every guest cell
    (``cells``, in guest cell order), and whether Nova's claim is known to
    take its pins (``_CellState.claimed_on``). With duplicate host cell
    ids Nova's claim may match a cell other than the one packed on: not
    known.
    """
    claimed = distinct_ids and all([
        state.claimed_on(cell) for state, cell in zip(states, cells)])
    return InstanceTopology(
        tuple([state.result() for state in states]),
        inst.emulator_threads_policy, inst.realtime_cpus), claimed


def _fit_one_cell(
    host_cells: Sequence[tuple[HostCell, packing.CellInfo]],
    inst: InstanceTopology,
    need: _Need,
    limits: Limits | None,
    explain: bool,
    avoid_vcpu_cores: bool,
) -> tuple[InstanceTopology | None,
           list[tuple[int, int, str, tuple[int, ...]]], bool]:
    """``_fit`` of a one-cell guest on a host with distinct cell ids.

    Every permutation is one host cell, and with distinct host cell ids no
    cache pair comes up twice, so Nova tries each cell once, in order.
    """
    failures: list[tuple[int, int, str, tuple[int, ...]]] = []
    first = inst.cells[0]
    state = _CellState(need, first.id, first.pagesize)
    for host_cell, info in host_cells:
        failure = _fit_cell(host_cell, info, state, limits, avoid_vcpu_cores)
        if failure is None:
            return InstanceTopology(
                (state.result(),), inst.emulator_threads_policy,
                inst.realtime_cpus), failures, state.claimed_on(host_cell)
        if explain:
            failures.append((0, host_cell.id) + failure)
    return None, failures, False


def _next_permutation(perm: list[int], level: int, n: int) -> bool:
    """Advance ``perm`` (distinct indices into ``range(n)``) to the next
    permutation, in ``itertools.permutations`` order, that differs from it
    at position ``level`` or before.

    :returns: False when there is none
    """
    size = len(perm)
    while level >= 0:
        before = perm[:level]
        for candidate in range(perm[level] + 1, n):
            if candidate not in before:
                perm[level] = candidate
                # The rest: the smallest indices not taken, in order.
                taken = before + [candidate]
                rest: list[int] = []
                index = 0
                while len(rest) < size - level - 1:
                    if index not in taken:
                        rest.append(index)
                    index += 1
                perm[level + 1:] = rest
                return True
        level -= 1
    return False


def explain_no_fit(
    host: HostTopology,
    inst: InstanceTopology,
    limits: Limits | None = None,
    pack: bool = False,
    devices: Mapping[int, int] | None = None,
    *,
    emulator_pcpu_siblings: str = ALLOW_SIBLINGS,
) -> str:
    """One sentence saying why ``inst`` does not fit ``host``.

    The arguments are ``fit_instance_to_host``'s.

    :raises: exception.Invalid for a bad ``emulator_pcpu_siblings``
    """
    avoid = choices.emulator_pcpu_avoids_vcpu_cores(emulator_pcpu_siblings)
    if len(host.cells) < len(inst.cells):
        return ('the guest has %d NUMA cells but the host only %d'
                % (len(inst.cells), len(host.cells)))
    if not host.cells or not inst.cells:
        return 'no assignment of guest cells to distinct host cells fits'
    fitted, failures, _claimed = _fit(
        host, packing.host_info(host), inst, _needs(inst), limits, pack,
        explain=True, devices=devices, avoid_vcpu_cores=avoid)
    if fitted is not None:
        refused = _unclaimable(packing.host_info(host).by_id(host), fitted)
        if refused is None:
            return 'it fits'
        failures.append(refused)
    reserved = [choices.emulator_reservation(inst, index)
                for index in range(len(inst.cells))]
    return no_fit.sentence(failures, host, inst, reserved)
