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

"""What a fitted guest topology means beyond its pins.

``hardware.fit_instance_to_host`` answers with Nova's placement; the
readers here say what an operator should know about that answer: an
emulator pCPU that shares a core with the guest's vCPUs, and dedicated
vCPUs Nova left without a pCPU.
"""

from nova_emulator_threads.virt.topology import HostTopology
from nova_emulator_threads.virt.topology import InstanceTopology


def emulator_vcpu_siblings(
    host: HostTopology, fitted: InstanceTopology,
) -> list[tuple[int, int, int]]:
    """Where a fitted guest's emulator pCPU shares a core with its vCPUs.

    :returns: ``(emulator pCPU, vCPU, the vCPU's pCPU)`` for each vCPU
        whose pCPU is an SMT sibling of an emulator pCPU (never one under
        ``emulator_pcpu_siblings = avoid``)
    """
    cells = {cell.id: cell for cell in host.cells}
    by_pcpu = {pcpu: vcpu for vcpu, pcpu in fitted.cpu_pinning.items()}
    found = []
    for guest_cell in fitted.cells:
        host_cell = cells.get(guest_cell.id)
        if host_cell is None:
            continue
        for pcpu in sorted(guest_cell.cpuset_reserved or ()):
            for sib in host_cell.siblings:
                if pcpu in sib:
                    found += [(pcpu, by_pcpu[other], other)
                              for other in sorted(sib) if other in by_pcpu]
    return found


def unpinned_dedicated_vcpus(
    fitted: InstanceTopology,
) -> dict[int, frozenset[int]]:
    """The dedicated vCPUs a fitted topology left without a pCPU.

    NOTE(nova): Nova's fitter keys its fit cache on (host cell id,
    instance cell id) and rewrites instance cell ids as it walks. With
    explicit ``hw:numa_cpus.N`` on a host whose cells have little room, a
    guest cell can hit the cache entry another guest cell left, take that
    host cell without being packed, and come back with no
    ``cpu_pinning``. Nova boots such a guest: its claim pins nothing for
    the cell, the driver floats the cell's vCPUs over the host cell's
    shared CPUs, and placement still charges them as PCPU. We return the
    same topology (the scheduler and the compute host must agree with
    Nova); callers that show a plan say what this means.

    :returns: guest cell index -> its dedicated vCPUs without a pin
    """
    unpinned: dict[int, frozenset[int]] = {}
    for index, cell in enumerate(fitted.cells):
        missing = cell.pcpuset - frozenset(cell.cpu_pinning or ())
        if missing:
            unpinned[index] = missing
    return unpinned
