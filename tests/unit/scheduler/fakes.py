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

"""Scheduler test helpers: Nova's host states and request specs, built
as nova-scheduler and nova-api build them.
"""

from typing import Any

from nova import objects
from nova.scheduler import host_manager
from nova.virt import hardware as nova_hardware
from oslo_utils.fixture import uuidsentinel as uuids

IMAGE_PROPS = objects.ImageMetaProps()


def host_state(numa_topology: Any, cpu_ratio: float = 16.0,
               ram_ratio: float = 1.5, pci_stats: Any = None) -> Any:
    """A HostState as the scheduler's HostManager fills it."""
    state = host_manager.HostState('host1', 'node1', uuids.cell)
    state.numa_topology = numa_topology
    state.pci_stats = pci_stats
    state.cpu_allocation_ratio = cpu_ratio
    state.ram_allocation_ratio = ram_ratio
    state.allocation_candidates = [{'mappings': {}}]
    state.limits = {}
    return state


def request_spec(vcpus: int, memory_mb: int,
                 extra_specs: dict[str, str],
                 image_props: dict[str, str] | None = None) -> Any:
    """A RequestSpec as nova-api builds it (seams applied)."""
    flavor = objects.Flavor(vcpus=vcpus, memory_mb=memory_mb, root_gb=1,
                            ephemeral_gb=0, swap=0, extra_specs=extra_specs)
    image = objects.ImageMeta(properties=(
        objects.ImageMetaProps.from_dict(image_props) if image_props
        else IMAGE_PROPS))
    return objects.RequestSpec(
        flavor=flavor, image=image, pci_requests=None,
        instance_uuid=uuids.instance,
        numa_topology=nova_hardware.numa_get_constraints(flavor, image))


def two_cell_host(pinned: tuple[set[int], set[int]] = (set(), set()),
                  ) -> Any:
    """Two cells of four dedicated pCPUs (0-3, 4-7), 2 GiB each."""
    return objects.NUMATopology(cells=[
        objects.NUMACell(
            id=cell, cpuset=set(), pcpuset=set(range(cell * 4, cell * 4 + 4)),
            memory=2048, cpu_usage=0, memory_usage=0,
            pinned_cpus=pinned[cell], siblings=[
                {cpu} for cpu in range(cell * 4, cell * 4 + 4)],
            mempages=[objects.NUMAPagesTopology(
                size_kb=4, total=2048 * 256, used=0, reserved=0)],
            network_metadata=objects.NetworkMetadata(
                physnets=set(), tunneled=False),
            socket=0)
        for cell in (0, 1)])


ISOLATE = {'hw:cpu_policy': 'dedicated', 'hw:cpu_emulator_threads': 'isolate'}
