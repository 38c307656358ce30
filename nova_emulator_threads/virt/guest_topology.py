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

"""The guest NUMA topology a flavor and image ask for.

Nova's ``numa_get_constraints``: the validated request
(``cpu_request.parse_request``) becomes the ``InstanceTopology`` that
``hardware.fit_instance_to_host`` fits onto a host, with Nova's automatic
layout where the flavor names no ``hw:numa_cpus.N``.
"""

from collections.abc import Mapping

from nova_emulator_threads import cpu_request
from nova_emulator_threads.virt.topology import InstanceCell
from nova_emulator_threads.virt.topology import InstanceTopology


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
    request = cpu_request.parse_request(vcpus, memory_mb, extra_specs,
                                        image_props)
    return instance_topology_from_request(request)


def instance_topology_from_request(
    request: cpu_request.CPURequest,
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
