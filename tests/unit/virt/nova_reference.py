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

"""Build Nova's own objects from ours, to run Nova's code on our inputs.

Test-only: the package never imports Nova outside its integration layers.
"""

import warnings

with warnings.catch_warnings():
    warnings.simplefilter('ignore')
    import nova.conf  # noqa: F401  (registers the options Nova's code reads)
    from nova import exception as nova_exception
    from nova import objects
    from nova.virt import hardware as nova_hardware

from nova_emulator_threads.virt import hardware
from nova_emulator_threads.virt import nova_objects
from nova_emulator_threads.virt import topology

objects.register_all()


def nova_host(host: topology.HostTopology) -> 'objects.NUMATopology':
    return objects.NUMATopology(cells=[
        objects.NUMACell(
            id=cell.id, cpuset=set(cell.cpuset), pcpuset=set(cell.pcpuset),
            memory=cell.memory, cpu_usage=cell.cpu_usage,
            memory_usage=cell.memory_usage,
            pinned_cpus=set(cell.pinned_cpus),
            siblings=[set(sib) for sib in cell.siblings],
            mempages=[objects.NUMAPagesTopology(
                size_kb=p.size_kb, total=p.total, used=p.used,
                reserved=p.reserved) for p in cell.mempages],
            socket=cell.socket)
        for cell in host.cells])


def ours_from_nova(nova: 'objects.NUMATopology') -> topology.HostTopology:
    """Our host, holding the very same set objects as Nova's (the view the
    scheduler filter reads).
    """
    return nova_objects.host_view_of_object(nova)


def nova_instance(
    inst: topology.InstanceTopology,
) -> 'objects.InstanceNUMATopology':
    cells = []
    for cell in inst.cells:
        nova_cell = objects.InstanceNUMACell(
            id=cell.id, cpuset=set(cell.cpuset), pcpuset=set(cell.pcpuset),
            memory=cell.memory, pagesize=cell.pagesize,
            cpu_policy=cell.cpu_policy,
            cpu_thread_policy=cell.cpu_thread_policy)
        cells.append(nova_cell)
    nova_inst = objects.InstanceNUMATopology(cells=cells)
    if inst.emulator_threads_policy is not None:
        nova_inst.emulator_threads_policy = inst.emulator_threads_policy
    return nova_inst


def nova_limits(limits: hardware.Limits | None):
    if limits is None:
        return None
    return objects.NUMATopologyLimits(
        cpu_allocation_ratio=limits.cpu_allocation_ratio,
        ram_allocation_ratio=limits.ram_allocation_ratio)


def nova_fit(host, inst, limits=None):
    """Nova's numa_fit_instance_to_host on the Nova objects given."""
    return nova_hardware.numa_fit_instance_to_host(
        host, inst, provider_mapping=None, limits=limits)


def nova_claimable_fit(host, inst, limits=None):
    """Nova's decision: its fitter's answer, if its own claim can take it.

    Nova's fitter can answer with pins its own claim on the compute host
    (``numa_usage_from_instance_numa``) refuses: an emulator pCPU on a
    core with a pinned sibling under ``cpu_thread_policy=isolate``, or a
    guest cell's pins from another host cell (its fit cache is keyed on
    cell ids it rewrites). The boot then fails on the host. Our engine
    answers "no fit" for exactly those (``hardware._unclaimable``);
    everywhere else the two answers must be equal.
    """
    fitted = nova_fit(host, inst, limits)
    if fitted is None:
        return None
    # The pinning half of numa_usage_from_instance_numa, with Nova's own
    # NUMACell methods (the memory half needs page sizes on every cell).
    cells = {cell.id: cell for cell in host.cells}
    for inst_cell in fitted.cells:
        if inst_cell.cpu_policy not in ('dedicated', 'mixed'):
            continue
        cpus = set((inst_cell.cpu_pinning or {}).values())
        cpus |= inst_cell.cpuset_reserved or set()
        host_cell = cells[inst_cell.id].obj_clone()
        try:
            if inst_cell.cpu_thread_policy == 'isolate':
                host_cell.pin_cpus_with_siblings(cpus)
            else:
                host_cell.pin_cpus(cpus)
        except (nova_exception.CPUPinningInvalid,
                nova_exception.CPUPinningUnknown):
            return None
    return fitted


def summary_of_nova(fitted) -> list[tuple] | None:
    if fitted is None:
        return None
    out = []
    for cell in fitted.cells:
        pins = cell.cpu_pinning if 'cpu_pinning_raw' in cell else None
        reserved = (cell.cpuset_reserved if 'cpuset_reserved' in cell
                    else None)
        out.append((cell.id, dict(pins or {}), set(reserved or ()),
                    cell.pagesize if 'pagesize' in cell else None))
    return out


def summary_of_ours(fitted: topology.InstanceTopology | None):
    if fitted is None:
        return None
    return [(cell.id, dict(cell.cpu_pinning or {}),
             set(cell.cpuset_reserved or ()), cell.pagesize)
            for cell in fitted.cells]
