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

"""Plain, immutable NUMA topology types used inside the engine.

Nova's fitter spends most of its time in versioned-object attribute
access (building one two-cell ``InstanceNUMATopology`` costs about as much
as a whole fit), so the engine works on these frozen dataclasses of ints
and frozensets and converts to and from versioned objects only at the
edges (``nova_emulator_threads.objects`` and Nova's own objects). The
attribute names are Nova's, so code written against ``nova.objects``
reads the same.
"""

import dataclasses
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Any

from nova_emulator_threads.objects import fields


@dataclasses.dataclass(frozen=True, slots=True)
class MemPages:
    """Pages of one size on a host cell (sizes in KiB)."""

    size_kb: int
    total: int
    used: int = 0
    reserved: int = 0

    @property
    def free_kb(self) -> int:
        return (self.total - self.used - self.reserved) * self.size_kb

    @property
    def total_kb(self) -> int:
        return self.total * self.size_kb


@dataclasses.dataclass(frozen=True, slots=True)
class HostCell:
    """One host NUMA cell and what is already used on it.

    ``cpuset`` holds the CPUs for unpinned vCPUs (``cpu_shared_set``),
    ``pcpuset`` the CPUs for pinned vCPUs (``cpu_dedicated_set``).

    Which thread of a core Nova gives a vCPU follows the iteration order
    of these sets (and the order of the ``siblings`` list), and CPython's
    set order depends on how a set was built, not only on its members:
    it changes each time Nova's objects rebuild a set. So the sets are
    held as given, never copied, and never mutated: a cell built from
    Nova's objects iterates exactly as Nova's does.
    """

    id: int
    cpuset: AbstractSet[int]
    pcpuset: AbstractSet[int]
    memory: int  # MiB
    siblings: tuple[AbstractSet[int], ...] = ()
    mempages: tuple[MemPages, ...] = ()
    pinned_cpus: AbstractSet[int] = frozenset()
    cpu_usage: int = 0
    memory_usage: int = 0  # MiB
    socket: int | None = None
    #: What the fitter derived from the cell (``virt.packing``), set on
    #: first use: the cell never changes, so it stays right for as long as
    #: the cell lives, and goes with it. Not part of the cell's value.
    derived: Any = dataclasses.field(
        default=None, init=False, repr=False, compare=False)

    @property
    def free_pcpus(self) -> AbstractSet[int]:
        return self.pcpuset - self.pinned_cpus


@dataclasses.dataclass(frozen=True, slots=True)
class HostTopology:
    """A host: its cells, plus the configuration the cells came from."""

    cells: tuple[HostCell, ...]
    #: ``[compute] cpu_shared_set`` as configured (empty when unset); the
    #: libvirt driver pins ``share`` emulator threads to it.
    cpu_shared_set: frozenset[int] = frozenset()
    #: What the fitter derived from the host (``virt.packing``), as on
    #: ``HostCell``.
    derived: Any = dataclasses.field(
        default=None, init=False, repr=False, compare=False)

    def __len__(self) -> int:
        return len(self.cells)


@dataclasses.dataclass(frozen=True, slots=True)
class InstanceCell:
    """One guest NUMA cell: the request, and after fitting, the answer.

    Before fitting ``id`` is the guest cell number; after fitting it is
    the host cell chosen, and ``cpu_pinning`` (vCPU -> pCPU) and, on the
    cell that carries them, ``cpuset_reserved`` (emulator pCPUs) are set.
    """

    id: int
    cpuset: frozenset[int]  # unpinned vCPUs (shared and mixed policies)
    pcpuset: frozenset[int]  # pinned vCPUs (dedicated and mixed policies)
    memory: int  # MiB
    pagesize: int | None = None
    cpu_policy: str | None = None
    cpu_thread_policy: str | None = None
    cpu_pinning: Mapping[int, int] | None = None
    cpuset_reserved: frozenset[int] | None = None

    @property
    def total_cpus(self) -> frozenset[int]:
        return self.cpuset | self.pcpuset


@dataclasses.dataclass(frozen=True, slots=True)
class InstanceTopology:
    """A guest's NUMA topology: the request, or the fitted answer."""

    cells: tuple[InstanceCell, ...]
    emulator_threads_policy: str | None = None
    #: vCPUs with a realtime scheduler (``hw:cpu_realtime_mask``); not part
    #: of Nova's object, but the libvirt XML needs it.
    realtime_cpus: frozenset[int] = frozenset()

    def __len__(self) -> int:
        return len(self.cells)

    @property
    def emulator_threads_isolated(self) -> bool:
        return (self.emulator_threads_policy ==
                fields.CPUEmulatorThreadsPolicy.ISOLATE)

    @property
    def cpu_pinning(self) -> dict[int, int]:
        """All cells' vCPU -> pCPU pins."""
        pins: dict[int, int] = {}
        for cell in self.cells:
            if cell.cpu_pinning:
                pins.update(cell.cpu_pinning)
        return pins

    @property
    def cpuset_reserved(self) -> frozenset[int]:
        """All cells' emulator pCPUs."""
        reserved: frozenset[int] = frozenset()
        for cell in self.cells:
            if cell.cpuset_reserved:
                reserved |= cell.cpuset_reserved
        return reserved
