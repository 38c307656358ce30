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

"""Packing a guest cell's vCPUs onto a host cell's cores, derived once.

Nova's ``_pack_instance_onto_cores`` and ``_get_reserved``, for
``virt.hardware``'s fitter, and what they derive from a host cell.

Hosts and their cells are immutable, and a scheduler or a packing loop
fits many guests on the same objects, so what the fitter derives from them
(free pCPUs, free sibling sets, the pCPUs each packing hands out in turn,
the order in which cells are tried) is computed once per object and
kept on the object itself (its ``derived`` field) for as long as the
object lives. It belongs to that very object, not to its value: equal
cells whose sets were built differently iterate differently (see
``topology.HostCell``). It changes no answer, only how soon it comes.

Threads: two threads that derive from the same object at once both
compute the value and the last one stays; both values are equal, and
each is complete before it is stored.
"""

import itertools
from collections.abc import Collection, Sequence
from collections.abc import Set as AbstractSet

from nova_emulator_threads.objects import fields
from nova_emulator_threads.virt.topology import HostCell
from nova_emulator_threads.virt.topology import HostTopology
from nova_emulator_threads.virt.topology import MemPages

THREAD_ISOLATE = fields.CPUThreadAllocationPolicy.ISOLATE
THREAD_REQUIRE = fields.CPUThreadAllocationPolicy.REQUIRE

#: What ``pick_pcpus`` answers: the pCPUs the vCPUs get, in vCPU order,
#: and the emulator pCPUs; None when the vCPUs cannot be packed.
Picked = tuple[tuple[int, ...], frozenset[int] | None] | None
#: What ``pack_cell`` answers: ``Picked``, and whether Nova's claim on the
#: cell takes those pCPUs (see ``pinned_core``).
Packed = tuple[tuple[int, ...], frozenset[int] | None, bool] | None


def choose_reserved_pcpus(
    free_siblings: Sequence[Collection[int]],
    pinning: Sequence[tuple[int, int]],
    count: int,
    thread_isolate: bool,
    cores: Sequence[AbstractSet[int]] | None = None,
) -> frozenset[int] | None:
    """Pick the emulator pCPUs on a host cell once the vCPUs are pinned.

    Nova's ``_get_reserved``: the first ``count`` free pCPUs, walking the
    free sibling sets in order, that no vCPU of this guest got; under
    ``cpu_thread_policy=isolate`` a core with a pinned vCPU is skipped
    whole. (A choice point: see ``virt.hardware``.)

    :param cores: the host cell's sibling sets (all its threads, free or
        not), to keep the emulator pCPUs off every core that runs one of
        the guest's vCPUs (``[emulator_threads] emulator_pcpu_siblings =
        avoid``); None takes Nova's choice. The walk order stays Nova's:
        the answer is Nova's first free pCPU on a core without a vCPU.
    """
    used = {pcpu for _vcpu, pcpu in pinning}
    if cores is not None:
        # Every thread of a core that runs a vCPU counts as used. Under
        # cpu_thread_policy=isolate Nova already skips those cores.
        used.update(*[sib for sib in cores if not used.isdisjoint(sib)])
    candidates: list[int] = []
    if thread_isolate:
        for sib in free_siblings:
            if used.isdisjoint(sib):
                # NOTE(nova): set iteration order is the order.
                candidates.extend(sib)
                if len(candidates) >= count:
                    break
    else:
        # The sets' members one after the other: the sibling sets in
        # order, each in its iteration order, as Nova walks them.
        for pcpu in itertools.chain.from_iterable(free_siblings):
            if pcpu not in used:
                candidates.append(pcpu)
                if len(candidates) >= count:
                    break
    reserved = frozenset(candidates[:count])
    return reserved or None


# -- what a host offers ------------------------------------------------------


class CorePacking:
    """A host cell's free pCPUs as Nova's packing walks them.

    ``with_free`` is Nova's ``sibling_sets[1]``: each core's free threads
    (``sib & free``), cores with none left out, in sibling order;
    ``free_order`` is their pCPUs one after the other. The pCPUs a packing
    with ``threads_no`` threads per core hands out, and the answers of
    ``pick_pcpus``, are computed when first asked for.

    It must not refer to the cell (see ``CellInfo``).
    """

    __slots__ = ('threads_per_core', 'most_free', 'free_order', 'picked',
                 '_siblings', '_free', '_with_free', '_usable')

    def __init__(self, cell: HostCell, free: AbstractSet[int]) -> None:
        siblings = cell.siblings
        self._siblings = siblings
        self._free = free
        self._with_free: list[AbstractSet[int]] | None = None
        self.threads_per_core = max(map(len, siblings), default=0) or 1
        if self.threads_per_core == 1:
            # No SMT: a core is one CPU, free or not, and a one-CPU set has
            # one order, so the free pCPUs in sibling order say it all.
            self.free_order = [
                cpu for cpu in itertools.chain.from_iterable(siblings)
                if cpu in free]
            self.most_free = 1 if self.free_order else 0
        else:
            # NOTE(nova): 'sib & free' iterates the smaller operand; the
            # resulting set's order decides which thread of a core a vCPU
            # gets.
            self._with_free = [sib for sib in [sib & free for sib in siblings]
                               if sib]
            self.free_order = list(
                itertools.chain.from_iterable(self._with_free))
            self.most_free = max(map(len, self._with_free), default=0)
        #: pack_cell's answers, by (vCPU count, thread policy, emulator
        #: pCPUs, whether they avoid the vCPUs' cores).
        self.picked: dict[tuple[int, str | None, int, bool], Packed] = {}
        self._usable: dict[int, tuple[int, list[int]]] = {}

    @property
    def with_free(self) -> list[AbstractSet[int]]:
        if self._with_free is None:
            # No SMT (see above): the cores' own one-CPU sets will do.
            self._with_free = [sib for sib in self._siblings
                               if not self._free.isdisjoint(sib)]
        return self._with_free

    def cores_with(self, threads_no: int) -> list[AbstractSet[int]]:
        """Nova's ``sibling_sets[threads_no]``.

        The cores with at least ``threads_no`` free threads, in sibling
        order.
        """
        if threads_no == 1:
            return self.with_free
        return [sib for sib in self.with_free if len(sib) >= threads_no]

    def pin(self, threads_no: int,
            vcpus: Sequence[int]) -> list[tuple[int, int]] | None:
        """Nova's ``_get_pinning`` on ``sibling_sets[threads_no]``.

        Up to ``threads_no`` threads of each core, cores in order.
        """
        usable = self._usable.get(threads_no)
        if usable is None:
            # list(sib)[:threads_no] of each core, without the lists.
            if threads_no == 1 and self.threads_per_core == 1:
                pcpus = self.free_order
                cores = len(pcpus)
            elif threads_no == 1:
                pcpus = [next(iter(sib)) for sib in self.with_free]
                cores = len(pcpus)
            else:
                with_threads = self.cores_with(threads_no)
                pcpus = [pcpu for sib in with_threads
                         for pcpu in itertools.islice(sib, threads_no)]
                cores = len(with_threads)
            usable = self._usable[threads_no] = (cores, pcpus)
        if threads_no * usable[0] < len(vcpus):
            return None
        return list(zip(vcpus, usable[1]))


class CellInfo:
    """What the fitter derives from one host cell (``HostCell.derived``).

    It must not refer to the cell: the cell refers to it, and a cycle
    would leave both to the garbage collector.
    """

    __slots__ = ('free_count', 'small_pages', 'small_free_kb',
                 'small_total_kb', '_packing')

    def __init__(self, cell: HostCell, free_count: int | None = None) -> None:
        # Most cells a scheduler looks at are too full for the guest, and
        # their count is all it needs: the free set itself is built again
        # by the packing, for the few cells that get that far.
        self.free_count = (len(cell.free_pcpus)
                           if free_count is None else free_count)
        #: The pages of the smallest size: what a guest cell asking for no
        #: page size gets.
        self.small_pages = min(cell.mempages, key=_page_size, default=None)
        self.small_free_kb = self.small_total_kb = 0
        if self.small_pages is not None:
            self.small_free_kb = self.small_pages.free_kb
            self.small_total_kb = self.small_pages.total_kb
        self._packing: CorePacking | None = None

    def packing(self, cell: HostCell) -> CorePacking:
        """How packing sees the cell (needed only once the counts fit)."""
        if self._packing is None:
            self._packing = CorePacking(cell, cell.free_pcpus)
        return self._packing


def _page_size(pages: MemPages) -> int:
    return pages.size_kb


class HostInfo:
    """What the fitter derives from a host (``HostTopology.derived``).

    Built of as few objects as possible: a scheduler holds one for every
    host it has asked about, and most of those hosts are answered from
    ``most_free`` alone (see ``virt.hardware.fit_instance_to_host``), so
    the rest is derived when a fit first gets further. Fewer objects that
    stay alive make the garbage collector's full collections shorter, and
    rarer: it starts one when the objects that survived since the last
    outnumber a quarter of all it holds.

    It must not refer to the host (see ``CellInfo``).
    """

    __slots__ = ('most_free', 'distinct_ids', 'orders', '_free_counts',
                 '_cells', '_by_id')

    def __init__(self, host: HostTopology) -> None:
        free_counts = tuple([len(cell.free_pcpus) for cell in host.cells])
        self._free_counts: tuple[int, ...] | None = free_counts
        #: The most free pCPUs any one cell has.
        self.most_free = max(free_counts, default=0)
        #: Whether no two cells have the same id.
        self.distinct_ids = (len({cell.id for cell in host.cells}) ==
                             len(host.cells))
        self._cells: tuple[tuple[HostCell, CellInfo], ...] | None = None
        self._by_id: dict[int, HostCell] | None = None
        #: The fitter's orders of ``cells``, by what decides the order.
        #: (A dict only once a guest with fewer cells than the host is
        #: fitted: most hosts a scheduler holds are never asked.)
        self.orders: dict[tuple[bool, bool],
                          tuple[tuple[HostCell, CellInfo], ...]] | None = None

    def cells(self, host: HostTopology,
              ) -> tuple[tuple[HostCell, CellInfo], ...]:
        """The host's cells, each with its info (``host`` is the host
        this info was derived from).
        """
        if self._cells is None:
            counts = self._free_counts or (None,) * len(host.cells)
            self._cells = tuple(
                (cell, cell_info(cell, count))
                for cell, count in zip(host.cells, counts))
            self._free_counts = None
        return self._cells

    def by_id(self, host: HostTopology) -> dict[int, HostCell]:
        """The cells by id (the last of a duplicate id, as a dict keeps);
        only a fit needs it, so it is built then.
        """
        if self._by_id is None:
            self._by_id = {cell.id: cell for cell in host.cells}
        return self._by_id


def cell_info(cell: HostCell, free_count: int | None = None) -> CellInfo:
    """What the fitter derives from ``cell``, derived once.

    :param free_count: the cell's free pCPU count, if already counted
    """
    info: CellInfo | None = cell.derived
    if info is None:
        info = CellInfo(cell, free_count)
        # Frozen, but this field is not part of the cell's value.
        object.__setattr__(cell, 'derived', info)
    return info


def host_info(host: HostTopology) -> HostInfo:
    """What the fitter derives from ``host``, derived once."""
    info: HostInfo | None = host.derived
    if info is None:
        info = HostInfo(host)
        object.__setattr__(host, 'derived', info)
    return info


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


def pack_cell(
    host_cell: HostCell,
    info: CellInfo,
    vcpus: Sequence[int],
    thread_policy: str | None,
    num_reserved: int,
    avoid_vcpu_cores: bool = False,
) -> Packed:
    """Pin a guest cell's dedicated vCPUs on a host cell's free pCPUs.

    Nova's ``_pack_instance_onto_cores``. Which pCPUs it picks depends on
    how many vCPUs there are, not on which: it pins them in ascending order
    onto a sequence of pCPUs. So the pick is worked out once per host cell
    and (vCPU count, thread policy, emulator pCPUs) and remembered, with
    whether Nova's claim would take it.

    :param vcpus: the guest cell's dedicated vCPUs, in ascending order
    :param avoid_vcpu_cores: keep the emulator pCPUs off the cores of the
        vCPUs (``choose_reserved_pcpus``)
    :returns: see ``Packed``
    """
    cores = info.packing(host_cell)
    key = (len(vcpus), thread_policy, num_reserved, avoid_vcpu_cores)
    try:
        return cores.picked[key]
    except KeyError:
        pass
    picked = pick_pcpus(host_cell, cores, len(vcpus), thread_policy,
                        num_reserved, avoid_vcpu_cores)
    packed: Packed = None
    if picked is not None:
        chosen, reserved = picked
        # The pick is of free pCPUs of this cell: only whole cores can
        # stand in the way of the claim.
        claimable = (thread_policy != THREAD_ISOLATE or pinned_core(
            host_cell, frozenset(chosen).union(reserved or ())) is None)
        packed = chosen, reserved, claimable
    cores.picked[key] = packed
    return packed


def pinned_core(host_cell: HostCell,
                cpus: AbstractSet[int]) -> tuple[int, int] | None:
    """A pCPU of ``cpus`` on a core with a pinned thread, if there is one.

    Under ``cpu_thread_policy=isolate`` Nova's claim takes whole cores,
    and refuses a core another guest has a thread of.

    :returns: the lowest such pCPU and the lowest pinned thread of its
        core, or None
    """
    for sib in host_cell.siblings:
        pinned = sib & host_cell.pinned_cpus
        if pinned and sib & cpus:
            return min(sib & cpus), min(pinned)
    return None


def pick_pcpus(
    host_cell: HostCell,
    cores: CorePacking,
    count: int,
    thread_policy: str | None,
    num_reserved: int,
    avoid_vcpu_cores: bool = False,
) -> Picked:
    """Nova's packing of ``count`` vCPUs onto a host cell's cores.

    With ``avoid_vcpu_cores`` the emulator pCPUs are chosen off the cores
    that run the vCPUs, inside Nova's loop, as if ``_get_reserved`` made
    that choice: a packing with no such pCPU left does not count, and the
    loop goes on. (The vCPUs' pins end up Nova's all the same: a packing
    with fewer threads per core uses at least as many cores, so it never
    leaves a core free that Nova's first packing used.)

    :returns: the pCPUs the vCPUs get, in vCPU order, and the emulator
        pCPUs; None when they cannot be packed
    """
    vcpus = range(count)
    vcpu_cores = host_cell.siblings if avoid_vcpu_cores else None
    if thread_policy == THREAD_ISOLATE:
        return _pick_whole_cores(host_cell, cores, vcpus, num_reserved,
                                 vcpu_cores)
    if thread_policy == THREAD_REQUIRE and cores.threads_per_core <= 1:
        return None
    # Without thread isolation Nova's _get_reserved walks the free pCPUs
    # of all cores as one run: one "sibling set" of them is the same walk.
    free_run = (cores.free_order,)
    pinning: list[tuple[int, int]] | None = None
    reserved: frozenset[int] | None = None
    threads_no = 1
    for threads_no in range(cores.most_free, 0, -1):
        if thread_policy == THREAD_REQUIRE and threads_no <= 1:
            continue
        pinning = cores.pin(threads_no, vcpus)
        reserved = None
        if pinning and num_reserved:
            reserved = choose_reserved_pcpus(
                free_run, pinning, num_reserved, thread_isolate=False,
                cores=vcpu_cores)
        if pinning is None or (num_reserved and not reserved):
            continue
        break
    if thread_policy != THREAD_REQUIRE and not pinning:
        # Fall back to any free pCPUs, each core treated as independent.
        # NOTE(nova): 'threads_no' is whatever the loop above ended with.
        singles = [frozenset((cpu,)) for cpu in cores.free_order]
        pinning = _pin_linear(threads_no, singles, vcpus)
        reserved = None
        if pinning and num_reserved:
            reserved = choose_reserved_pcpus(
                free_run, pinning, num_reserved, thread_isolate=False,
                cores=vcpu_cores)
    if pinning is None or (num_reserved and not reserved):
        return None
    return tuple(pcpu for _vcpu, pcpu in pinning), reserved


def _pick_whole_cores(
    host_cell: HostCell,
    cores: CorePacking,
    vcpus: Sequence[int],
    num_reserved: int,
    vcpu_cores: Sequence[AbstractSet[int]] | None,
) -> Picked:
    """``pick_pcpus`` under ``cpu_thread_policy=isolate``: one vCPU a
    wholly free core, the emulator pCPUs off the vCPUs' cores.
    """
    threads_per_core = cores.threads_per_core
    if threads_per_core > cores.most_free:
        return None
    # NOTE(nova): only hosts in legacy 'vcpu_pin_set' mode (cpuset ==
    # pcpuset) may use 'isolate' on SMT; elsewhere the scheduler should
    # have filtered the host out via the HW_CPU_HYPERTHREADING trait.
    if threads_per_core != 1 and host_cell.pcpuset != host_cell.cpuset:
        return None
    pinning = _pin_linear(1, cores.cores_with(threads_per_core), vcpus)
    reserved = None
    if pinning and num_reserved:
        reserved = choose_reserved_pcpus(
            cores.with_free, pinning, num_reserved, thread_isolate=True,
            cores=vcpu_cores)
    if not pinning or (num_reserved and not reserved):
        return None
    return tuple(pcpu for _vcpu, pcpu in pinning), reserved
