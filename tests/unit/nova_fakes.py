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

"""Test helpers: Nova's objects built from the engine's dataclasses.

Test-only: the package never imports Nova outside its integration layers,
and only reads Nova's objects (``virt/nova_objects.py``); tests need to
build them.
"""

import warnings
from typing import Any

from nova_emulator_threads.virt import topology

with warnings.catch_warnings():
    # Importing Nova pulls in eventlet, which warns that it is deprecated.
    warnings.simplefilter('ignore')
    from nova import objects as nova_objects
    from nova.virt import hardware as nova_hardware

nova_objects.register_all()

__all__ = [
    'nova_hardware',
    'nova_host',
    'nova_instance',
    'nova_objects',
]


def nova_host(host: topology.HostTopology) -> Any:
    """Return Nova's ``NUMATopology`` for an engine host topology.

    Cells, their ``siblings`` and ``mempages`` keep ``host``'s order:
    Nova's packing walks them in that order.
    """
    return nova_objects.NUMATopology(cells=[
        nova_objects.NUMACell(
            id=cell.id,
            cpuset=set(cell.cpuset),
            pcpuset=set(cell.pcpuset),
            memory=cell.memory,
            cpu_usage=cell.cpu_usage,
            memory_usage=cell.memory_usage,
            pinned_cpus=set(cell.pinned_cpus),
            siblings=[set(sibling_set) for sibling_set in cell.siblings],
            mempages=[
                nova_objects.NUMAPagesTopology(
                    size_kb=pages.size_kb, total=pages.total,
                    used=pages.used, reserved=pages.reserved)
                for pages in cell.mempages],
            socket=cell.socket,
            network_metadata=nova_objects.NetworkMetadata(
                physnets=set(), tunneled=False))
        for cell in host.cells])


def nova_instance(instance: topology.InstanceTopology,
                  instance_uuid: str | None = None) -> Any:
    """Return Nova's ``InstanceNUMATopology`` for an engine guest topology.

    Like Nova's ``numa_get_constraints``, it always sets
    ``emulator_threads_policy``, to None when the guest has none.
    """
    cells = []
    for cell in instance.cells:
        cell_obj = nova_objects.InstanceNUMACell(
            id=cell.id,
            cpuset=set(cell.cpuset),
            pcpuset=set(cell.pcpuset),
            memory=cell.memory,
            pagesize=cell.pagesize,
            cpu_policy=cell.cpu_policy,
            cpu_thread_policy=cell.cpu_thread_policy,
            cpuset_reserved=(None if cell.cpuset_reserved is None
                             else set(cell.cpuset_reserved)))
        if cell.cpu_pinning is not None:
            cell_obj.cpu_pinning = cell.cpu_pinning
        cells.append(cell_obj)
    obj = nova_objects.InstanceNUMATopology(
        cells=cells,
        emulator_threads_policy=instance.emulator_threads_policy)
    if instance_uuid is not None:
        obj.instance_uuid = instance_uuid
    return obj
