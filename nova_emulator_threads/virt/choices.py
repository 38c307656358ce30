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

"""The fitter's choice points: where the emulator pCPU goes, and the order
in which host cells are tried.

Each is a decision that an operator may want made differently (behind an
``[emulator_threads]`` option, Nova's behaviour staying the default), so
each is one small function apart from the walk in ``virt.hardware`` that
applies it. Both answer exactly as Nova 34 does. The third,
``[emulator_threads] emulator_pcpu_siblings``, is an argument of the
fitter itself (``hardware.emulator_pcpu_avoids_vcpu_cores``).
"""

from collections.abc import Sequence

from nova_emulator_threads import cpu_request
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
