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

"""The fitter's choice points: where the emulator pCPU goes, whether it
keeps off the vCPUs' cores, and the order in which host cells are tried.

Each is a decision that an operator may want made differently (behind an
``[emulator_threads]`` option, Nova's behaviour staying the default), so
each is one small function apart from the walk in ``virt.hardware`` that
applies it. Each answers exactly as Nova 34 does by default.
"""

from collections.abc import Sequence

from nova_emulator_threads import cpu_request
from nova_emulator_threads import exception
from nova_emulator_threads.objects import fields
from nova_emulator_threads.virt import packing
from nova_emulator_threads.virt.topology import HostCell
from nova_emulator_threads.virt.topology import HostTopology
from nova_emulator_threads.virt.topology import InstanceTopology


def emulator_reservation(inst: InstanceTopology, guest_cell_index: int) -> int:
    """How many emulator pCPUs guest cell ``guest_cell_index`` must carry.

    Nova (and the spec): isolate puts one pCPU on the host cell of guest
    cell 0, so that users can predict where it is.
    """
    if inst.emulator_threads_isolated and guest_cell_index == 0:
        # The figure placement is asked for too (overhead.py): one number.
        return cpu_request.EMULATOR_THREADS_ISOLATE_PCPUS
    return 0


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
    if inst.cells[0].cpu_policy in (None, fields.CPUAllocationPolicy.SHARED):
        return sorted(cells, reverse=pack, key=_cpu_usage)
    return sorted(cells, reverse=not pack, key=_free_pcpu_count)


def _avail_memory(cell: HostCell) -> int:
    return cell.memory - cell.memory_usage


def _cpu_usage(cell: HostCell) -> int:
    return cell.cpu_usage


def _free_pcpu_count(cell: HostCell) -> int:
    return packing.cell_info(cell).free_count


def emulator_pcpu_avoids_vcpu_cores(emulator_pcpu_siblings: str) -> bool:
    """Whether the emulator pCPU must stay off the cores of the vCPUs.

    ``[emulator_threads] emulator_pcpu_siblings``. Nova (``allow``) takes
    the first free pCPU once the vCPUs are pinned, and on an SMT host that
    is often the other thread of a vCPU's core, which shares the core's
    execution units and caches with the vCPU. With ``avoid`` the emulator
    pCPU is Nova's first free pCPU on a core that runs none of the guest's
    pinned vCPUs, and a host cell without one does not fit guest cell 0.
    ``hw:cpu_thread_policy=isolate`` already keeps those cores free in
    Nova, so ``avoid`` changes nothing for it.

    :raises: exception.Invalid for a value that is neither
    """
    if emulator_pcpu_siblings == fields.EmulatorPCPUSiblings.ALLOW:
        return False
    if emulator_pcpu_siblings == fields.EmulatorPCPUSiblings.AVOID:
        return True
    raise exception.Invalid(
        reason='[emulator_threads] emulator_pcpu_siblings=%r is not '
               'allowed; expected one of %s' % (
                   emulator_pcpu_siblings,
                   ', '.join(fields.EmulatorPCPUSiblings.ALL)))
