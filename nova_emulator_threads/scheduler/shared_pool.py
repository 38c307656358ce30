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

"""The scheduler's side of ``virt.shared_pool``: read Nova's host state.

Kept out of the filter module so that ``EmulatorThreadsFilter`` makes the
decision with one call (``rejection``).
"""

from typing import Any

from nova import exception as nova_exception
from nova import objects
from nova.virt import hardware as nova_hardware

from nova_emulator_threads.objects import fields
from nova_emulator_threads.virt import shared_pool


def rejection(host_state: Any, spec_obj: Any) -> str | None:
    """Why the host has no shared pool for this guest, or None.

    :param host_state: nova-scheduler's ``HostState`` (with a NUMA
        topology)
    :param spec_obj: the ``RequestSpec`` (with a NUMA topology)
    :returns: a sentence for the debug log, or None when the host can run
        the guest's emulator threads
    """
    policy = spec_obj.numa_topology.emulator_threads_policy
    if policy != fields.CPUEmulatorThreadsPolicy.SHARE or not spec_obj.flavor:
        return None
    # Cheap first: most hosts a 'share' guest is sent to have a pool, and
    # then the flavor's realtime mask need not be parsed.
    pool = shared_pool.shared_pool_cpus(
        (cell.cpuset, cell.pcpuset)
        for cell in host_state.numa_topology.cells)
    if pool:
        return None
    image = (spec_obj.image if 'image' in spec_obj and spec_obj.image
             else objects.ImageMeta(properties=objects.ImageMetaProps()))
    try:
        realtime = nova_hardware.get_realtime_cpu_constraint(
            spec_obj.flavor, image) or set()
    except nova_exception.Invalid:
        # nova-api validated the mask; Nova's filters decide the rest.
        return None
    return shared_pool.missing_shared_pool(policy, realtime, pool)
