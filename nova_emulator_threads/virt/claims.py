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

"""Claiming and freeing what a fitted guest uses on a host.

Nova's ``numa_usage_from_instance_numa``, on the engine's types: what
the compute host's NUMA claim (and a scheduler's tally between two
requests) takes from the host for a guest that ``virt.hardware`` fitted.
"""

import dataclasses
from collections.abc import Set as AbstractSet

from nova_emulator_threads import exception
from nova_emulator_threads.objects import fields
from nova_emulator_threads.virt.topology import HostCell
from nova_emulator_threads.virt.topology import HostTopology
from nova_emulator_threads.virt.topology import InstanceTopology

THREAD_ISOLATE = fields.CPUThreadAllocationPolicy.ISOLATE


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
        if inst_cell.cpu_policy in fields.PINNED_CPU_POLICIES:
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
